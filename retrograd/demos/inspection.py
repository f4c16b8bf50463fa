"""`retrograd inspect ...`: the inspection tools on ready-made networks, from the command line.

- `graph`: the recorded graph of the XOR network's error, as Mermaid or DOT text, or drawn to SVG/PNG.
- `trace`: one forward and backward pass of the XOR network in textbook notation.
- `flow`: per-layer gradient norms while a deep MLP trains on digits, a heat map PNG, and the
  monitor's warnings -- the vanishing-gradient story with `--activation sigmoid`.
"""
from __future__ import annotations

import os
import sys
import warnings

import numpy as np

from .. import nn, optim, random
from ..data import DataLoader, datasets
from . import xor


def _xor_error(hidden: int, seed: int):
    random.manual_seed(seed)
    model = xor.build(hidden)
    error = 0.5 * ((xor.Y - model(xor.X)) ** 2).sum()
    error.backward(retain_graph=True)     # keep the graph: it is what gets drawn
    return model, error


def graph(fmt: str = "mermaid", out: str | None = None, hidden: int = 2, seed: int = 0,
          values: bool = False, grads: bool = False, direction: str = "LR") -> int:
    """Print (or write to `out`) the graph of the XOR network's error E = 1/2 sum (y - a)^2."""
    from ..inspect import render, to_dot, to_mermaid
    model, error = _xor_error(hidden, seed)
    params = dict(model.named_parameters())
    if fmt in ("svg", "png"):
        path = out or f"xor_graph.{fmt}"
        try:
            render(error, path, params, values=values, grads=grads, direction=direction)
        except RuntimeError as e:          # Graphviz missing or failing: say so, no traceback
            print(f"retrograd inspect graph: {e}", file=sys.stderr)
            return 2
        print(f"graph drawn to {path}")
        return 0
    make = to_mermaid if fmt == "mermaid" else to_dot
    text = make(error, params, direction=direction, values=values, grads=grads)
    if out:
        from ..io import atomic_write_bytes
        atomic_write_bytes(out, text.encode())
        print(f"graph written to {out}")
    else:
        print(text, end="")
    return 0


def trace(hidden: int = 2, seed: int = 0, precision: int = 4) -> int:
    """Print z, a, delta, dE/dW and dE/db of each layer of the XOR network for one pass."""
    from ..inspect import trace as run_trace
    random.manual_seed(seed)
    result = run_trace(xor.build(hidden), xor.X, xor.Y)
    print(f"XOR 2-{hidden}-1 sigmoid network, seed {seed}: one forward and backward pass\n")
    print(result.table(precision))
    return 0


def build_deep(depth: int, width: int, activation: str) -> nn.Module:
    """A `depth`-hidden-layer MLP for 8x8 digits; ReLU layers get He init, sigmoid/tanh Xavier."""
    act = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}[activation]
    layers, size = [], 64
    for _ in range(depth):
        linear = nn.Linear(size, width)
        if activation == "relu":
            nn.init.kaiming_uniform_(linear.weight, nonlinearity="relu")
        else:
            nn.init.xavier_uniform_(linear.weight)
        nn.init.zeros_(linear.bias)
        layers += [linear, act()]
        size = width
    layers.append(nn.Linear(size, 10))
    return nn.Sequential(*layers)


def flow(activation: str = "sigmoid", depth: int = 8, width: int = 64, epochs: int = 2,
         lr: float = 0.05, every: int = 5, seed: int = 0, out: str | None = "gradient_flow.png",
         progress: bool = False) -> dict:
    """Train a deep MLP on digits with a `GradientMonitor`; print per-layer gradient norms.

    Returns the monitor's record: {"layers", "first", "last", "warnings", "plot"}.
    """
    from ..inspect import GradientMonitor
    from ..train import fit

    random.manual_seed(seed)
    train_set, _ = datasets.digits(split="both", seed=seed)
    model = build_deep(depth, width, activation)
    monitor = GradientMonitor(every=every, warn=False)
    fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=lr, momentum=0.9),
        DataLoader(train_set, batch_size=32, shuffle=True), epochs=epochs, metrics=(),
        callbacks=[monitor], progress=progress)

    names = list(monitor.grad_norms)
    first = {n: monitor.grad_norms[n][0] for n in names}
    last = {n: monitor.grad_norms[n][-1] for n in names}
    print(f"{depth} hidden layers of {width} {activation} units, SGD momentum lr={lr}, "
          f"{epochs} epochs; ||dE/dW|| per layer (input side first)")
    print(f"  {'layer':<14} {'first step':>12} {'last step':>12}")
    for n in names:
        print(f"  {n:<14} {first[n]:>12.3e} {last[n]:>12.3e}")
    ratio = first[names[0]] / max(first[names[-1]], 1e-30)
    print(f"first layer / last layer at the first step: {ratio:.2e}")
    for message in monitor.warnings:
        print(f"warning: {message}")
    plot = None
    if out:
        try:
            plot = monitor.plot(out)
            print(f"heat map: {plot}")
        except ImportError as e:
            warnings.warn(str(e), RuntimeWarning, stacklevel=2)
    return {"layers": names, "first": first, "last": last, "warnings": list(monitor.warnings),
            "plot": plot, "first_to_last": ratio}


def main(command: str, **options) -> int:
    if command == "graph":
        return graph(**options)
    if command == "trace":
        return trace(**options)
    if command == "flow":
        out = options.get("out")
        if out:
            os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        record = flow(**options)
        return 0 if np.isfinite(record["first_to_last"]) else 1
    raise ValueError(f"retrograd inspect: unknown command {command!r}")
