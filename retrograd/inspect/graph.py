"""The graph autograd recorded for an output, as Mermaid text (the notation tutorials use) or
Graphviz DOT. Nodes are ops (named like `grad_fn`: MulBackward) and leaf tensors; edges point the
way the forward pass ran, from inputs to the output."""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..autograd import Function
from ..io import atomic_write_bytes
from ..tensor import Tensor


@dataclass
class _Node:
    key: str
    label: str
    kind: str          # "op", "leaf" or "output"


def _describe(array: np.ndarray, precision: int = 3) -> str:
    if array.size <= 6:
        return np.array2string(array, precision=precision, separator=", ").replace("\n", "")
    return f"mean {array.mean():.{precision}g}, std {array.std():.{precision}g}"


def _walk(output: Tensor, names: Mapping[int, str], values: bool, grads: bool):
    """Nodes and edges of the graph behind `output`, found iteratively (deep graphs are fine)."""
    if output.grad_fn is None:
        raise ValueError("graph export: this tensor has no recorded graph (grad_fn is None); build "
                         "it from tensors with requires_grad=True outside rg.no_grad()")
    nodes: dict[int, _Node] = {}
    edges: list[tuple[str, str]] = []

    def key_of() -> str:
        return f"n{len(nodes)}"

    def leaf_label(t: Tensor) -> str:
        name = names.get(id(t), "tensor")
        label = f"{name}<br/>{tuple(t.shape)}"
        if values:
            label += f"<br/>value {_describe(t.data)}"
        if grads and t.grad is not None:
            label += f"<br/>grad {_describe(t.grad.data)}"
        return label

    root = output.grad_fn
    out_label = f"output<br/>{tuple(output.shape)}"
    if values:
        out_label += f"<br/>value {_describe(output.data)}"
    out_node = _Node("out", out_label, "output")
    stack = [root]
    nodes[id(root)] = _Node(key_of(), "", "op")
    while stack:
        fn = stack.pop()
        node = nodes[id(fn)]
        shape = getattr(fn, "_shape", None)
        node.label = f"{fn.name()}<br/>{tuple(shape) if shape is not None else ''}"
        for parent in fn.next_functions or ():
            if parent is None:
                continue
            if id(parent) not in nodes:
                if isinstance(parent, Function):
                    nodes[id(parent)] = _Node(key_of(), "", "op")
                    stack.append(parent)
                else:
                    nodes[id(parent)] = _Node(key_of(), leaf_label(parent), "leaf")
            edges.append((nodes[id(parent)].key, node.key))
    edges.append((nodes[id(root)].key, out_node.key))
    return list(nodes.values()) + [out_node], edges


def _names(params: Mapping[str, Tensor] | None) -> dict[int, str]:
    return {id(t): name for name, t in (params or {}).items()}


def to_mermaid(output: Tensor, params: Mapping[str, Tensor] | None = None, direction: str = "LR",
               values: bool = False, grads: bool = False) -> str:
    """Mermaid flowchart text of the graph that produced `output`.

    `params` names leaf tensors (e.g. `dict(model.named_parameters())`); `values`/`grads` add
    leaf values and gradients (small arrays in full, larger ones as mean and std).

    >>> print(rg.inspect.to_mermaid(loss, dict(model.named_parameters())))
    graph LR
      n1["W1<br/>(2, 2)"] --> n0["MulBackward<br/>()"]
      ...
    """
    if direction not in ("LR", "TD", "TB", "RL", "BT"):
        raise ValueError(f"to_mermaid: direction must be LR, TD, TB, RL or BT, got {direction!r}")
    nodes, edges = _walk(output, _names(params), values, grads)
    shapes = {"op": ('["', '"]'), "leaf": ('(["', '"])'), "output": ('[["', '"]]')}
    lines = [f"graph {direction}"]
    for n in nodes:
        lo, hi = shapes[n.kind]
        lines.append(f"  {n.key}{lo}{n.label.replace(chr(34), chr(39))}{hi}")
    lines += [f"  {a} --> {b}" for a, b in edges]
    return "\n".join(lines) + "\n"


def to_dot(output: Tensor, params: Mapping[str, Tensor] | None = None, direction: str = "LR",
           values: bool = False, grads: bool = False) -> str:
    """Graphviz DOT text of the graph that produced `output` (render with `dot -Tsvg`)."""
    nodes, edges = _walk(output, _names(params), values, grads)
    style = {"op": 'shape=box, style="rounded,filled", fillcolor="#dde8f5"',
             "leaf": 'shape=ellipse, style=filled, fillcolor="#e6f2e0"',
             "output": 'shape=box, style=filled, fillcolor="#f5e3c8"'}
    lines = ["digraph backprop {", f"  rankdir={direction if direction != 'TD' else 'TB'};"]
    for n in nodes:
        label = n.label.replace("<br/>", "\\n").replace('"', '\\"')
        lines.append(f'  {n.key} [label="{label}", {style[n.kind]}];')
    lines += [f"  {a} -> {b};" for a, b in edges]
    return "\n".join(lines) + "\n}\n"


def render(output: Tensor, path: str | os.PathLike, params: Mapping[str, Tensor] | None = None,
           **options) -> str:
    """Draw the graph to `path` (.svg or .png) with Graphviz's `dot` (apt-get install graphviz)."""
    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".").lower()
    if fmt not in ("svg", "png", "pdf"):
        raise ValueError(f"render: unsupported file type {fmt!r}; use .svg, .png or .pdf")
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError("render: Graphviz's `dot` program is not installed (e.g. apt-get "
                           "install graphviz); to_dot() gives the text without it")
    result = subprocess.run([dot, f"-T{fmt}"], input=to_dot(output, params, **options).encode(),
                            capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"render: dot failed: {result.stderr.decode(errors='replace')}")
    atomic_write_bytes(path, result.stdout)
    return os.fspath(path)
