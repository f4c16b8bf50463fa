"""The textbook XOR network, trained by plain gradient descent: the hello-world of backpropagation.

2 inputs -> `hidden` sigmoid units -> 1 sigmoid output, error E = 1/2 * sum((y - a)^2) over the four
points, update w <- w - lr * dE/dw, stopped as soon as E falls below `threshold`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import nn, no_grad, random, tensor

X = tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
Y = tensor([[0.0], [1.0], [1.0], [0.0]])


@dataclass
class XorResult:
    model: nn.Module
    epochs: int                      # epochs run
    converged: bool                  # error fell below the threshold
    error: float                     # final total error E
    predictions: np.ndarray          # network outputs for the four inputs, shape (4,)
    errors: list = field(default_factory=list)   # (epoch, E) every print_every epochs


def build(hidden: int = 2) -> nn.Module:
    return nn.Sequential(nn.Linear(2, hidden), nn.Sigmoid(), nn.Linear(hidden, 1), nn.Sigmoid())


def train_xor(lr: float = 0.5, epochs: int = 10_000, threshold: float = 0.01, seed: int = 0,
              hidden: int = 2, print_every: int = 1000,
              log: Callable[[str], None] | None = print) -> XorResult:
    """Train the XOR network; returns the model, the epoch it stopped at and its predictions."""
    random.manual_seed(seed)
    model = build(hidden)
    params = list(model.parameters())
    errors = []
    error = float("nan")
    for epoch in range(1, epochs + 1):
        a = model(X)                                  # forward pass
        E = 0.5 * ((Y - a) ** 2).sum()                # E = 1/2 sum (y - a)^2
        for p in params:
            p.grad = None
        E.backward()                                  # dE/dw for every weight, by the chain rule
        with no_grad():
            for p in params:
                p.data -= lr * p.grad.data            # w <- w - lr * dE/dw
        error = E.item()
        if epoch % print_every == 0 or epoch == 1:
            errors.append((epoch, error))
            if log:
                log(f"epoch {epoch:6d}   error {error:.6f}")
        if error < threshold:
            break
    with no_grad():
        predictions = model(X).data.reshape(-1)
    return XorResult(model, epoch, error < threshold, error, predictions, errors)


def main(lr: float = 0.5, epochs: int = 10_000, threshold: float = 0.01, seed: int = 0,
         hidden: int = 2, print_every: int = 1000, show_trace: bool = False) -> int:
    print(f"XOR: 2-{hidden}-1 sigmoid network, E = 1/2 sum (y - a)^2, gradient descent lr={lr}, "
          f"seed={seed}")
    if show_trace:
        from ..inspect import trace
        random.manual_seed(seed)        # the same initial weights the training run starts from
        print("\nepoch 1, step by step: forward (z, a), then backward (delta, dE/dW, dE/db)\n")
        print(trace(build(hidden), X, Y).table())
        print()
    result = train_xor(lr, epochs, threshold, seed, hidden, print_every)
    if result.converged:
        print(f"stopped at epoch {result.epochs}: error {result.error:.6f} < {threshold}")
    else:
        print(f"did not reach error < {threshold} in {epochs} epochs (error {result.error:.6f}); "
              "try another --seed or a larger --lr (XOR has local minima)")
    print("predictions:")
    for (x1, x2), y, a in zip(X.data, Y.data.reshape(-1), result.predictions):
        print(f"  {int(x1)} xor {int(x2)} = {int(y)}   network: {a:.4f} -> {int(round(float(a)))}")
    return 0 if result.converged else 1
