"""A backprop trace in textbook notation, for small feed-forward networks.

For each layer l of a Sequential of Linear layers and activations (rows are samples):

    z(l) = a(l-1) W(l)^T + b(l)          a(l) = sigma(z(l))
    delta(L) = dE/da(L) * sigma'(z(L))
    delta(l) = (delta(l+1) W(l+1)) * sigma'(z(l))
    dE/dW(l) = delta(l)^T a(l-1)         dE/db(l) = sum over samples of delta(l)

The trace computes the deltas and gradients with these formulas in NumPy, from the forward values,
and checks them against what the engine's backward() produced.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import nn
from ..autograd import no_grad
from ..tensor import Tensor


def _derivative(act: nn.Module | None, z: np.ndarray, a: np.ndarray) -> np.ndarray:
    """sigma'(z) for the activations the textbook uses."""
    if act is None or isinstance(act, nn.Identity):
        return np.ones_like(z)
    if isinstance(act, nn.Sigmoid):
        return a * (1 - a)
    if isinstance(act, nn.Tanh):
        return 1 - a * a
    if isinstance(act, nn.ReLU):
        return (z > 0).astype(z.dtype)
    if isinstance(act, nn.LeakyReLU):
        return np.where(z > 0, 1, act.negative_slope).astype(z.dtype)
    raise TypeError(f"trace: no textbook derivative for {type(act).__name__}; use Sigmoid, Tanh, "
                    "ReLU, LeakyReLU or Identity")


@dataclass
class LayerTrace:
    """Everything backprop computed for one layer; `*_engine` are the engine's own values."""

    index: int
    a_prev: np.ndarray
    z: np.ndarray
    a: np.ndarray
    delta: np.ndarray
    dW: np.ndarray
    db: np.ndarray | None
    delta_engine: np.ndarray
    dW_engine: np.ndarray
    db_engine: np.ndarray | None
    activation: str

    @property
    def max_error(self) -> float:
        """Largest difference between the textbook formulas and the engine's gradients."""
        errors = [np.abs(self.delta - self.delta_engine).max(),
                  np.abs(self.dW - self.dW_engine).max()]
        if self.db is not None:
            errors.append(np.abs(self.db - self.db_engine).max())
        return float(max(errors))


@dataclass
class Trace:
    loss: float
    dE_da: np.ndarray            # dE/da(L), from the loss
    layers: list

    def table(self, precision: int = 4) -> str:
        """The trace as text, layer by layer, output layer last."""
        fmt = {"float_kind": lambda v: f"{v: .{precision}f}"}

        def show(name: str, array: np.ndarray) -> str:
            text = np.array2string(np.atleast_1d(array), formatter=fmt, separator=" ")
            pad = " " * (len(name) + 5)
            return f"  {name} = " + text.replace("\n", "\n" + pad)

        L = len(self.layers)
        out = [f"E = {self.loss:.{precision}f}"]
        for t in self.layers:
            out.append(f"\nlayer {t.index}  (sigma = {t.activation})")
            out.append(show(f"a({t.index - 1})", t.a_prev))
            out.append(show(f"z({t.index})", t.z))
            out.append(show(f"a({t.index})", t.a))
            if t.index == L:
                out.append(show(f"dE/da({L})", self.dE_da))
            out.append(show(f"delta({t.index})", t.delta))
            out.append(show(f"dE/dW({t.index})", t.dW))
            if t.db is not None:
                out.append(show(f"dE/db({t.index})", t.db))
            out.append(f"  textbook formulas vs engine: max difference {t.max_error:.2e}")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.table()


def _layers(model: nn.Module) -> list:
    """[(Linear, activation or None), ...] from a Sequential of Linear layers and activations."""
    modules = list(model) if isinstance(model, nn.Sequential) else [model]
    pairs = []
    for m in modules:
        if isinstance(m, nn.Linear):
            pairs.append([m, None])
        elif pairs and pairs[-1][1] is None and not isinstance(m, nn.Linear):
            _derivative(m, np.zeros(1), np.zeros(1))   # rejects activations without a formula
            pairs[-1][1] = m
        else:
            raise TypeError(f"trace: expected a Sequential of Linear layers each followed by at most "
                            f"one activation, found {type(m).__name__} here")
    if not pairs:
        raise TypeError("trace: the model has no Linear layer")
    return pairs


def trace(model: nn.Module, x: Tensor, y: Tensor,
          loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None) -> Trace:
    """Run one forward and backward pass and record z, a, delta, dE/dW and dE/db of every layer.

    The default loss is the textbook E = 1/2 * sum((y - a)^2). Parameter gradients are left as the
    backward pass made them (zero them before a training step that follows).

    >>> t = rg.inspect.trace(model, X, Y)
    >>> print(t.table())
    """
    pairs = _layers(model)
    loss_fn = loss_fn or (lambda a, target: 0.5 * ((target - a) ** 2).sum())
    for p in model.parameters():
        p.grad = None
    activations, pre = [x], []
    h = x
    for linear, act in pairs:
        z = linear(h)
        z.retain_grad()
        h = act(z) if act is not None else z
        pre.append(z)
        activations.append(h)
    h.retain_grad()
    loss = loss_fn(h, y)
    loss.backward()

    with no_grad():
        dE_da = h.grad.data
        layers = []
        delta_next, W_next = None, None
        for i in reversed(range(len(pairs))):
            linear, act = pairs[i]
            z, a, a_prev = pre[i].data, activations[i + 1].data, activations[i].data
            d_sigma = _derivative(act, z, a)
            if delta_next is None:
                delta = dE_da * d_sigma                          # delta(L)
            else:
                delta = (delta_next @ W_next) * d_sigma          # delta(l)
            a2 = a_prev.reshape(-1, a_prev.shape[-1])
            d2 = delta.reshape(-1, delta.shape[-1])
            layers.append(LayerTrace(
                index=i + 1, a_prev=a_prev, z=z, a=a, delta=delta, dW=d2.T @ a2,
                db=d2.sum(axis=0) if linear.bias is not None else None,
                delta_engine=pre[i].grad.data, dW_engine=linear.weight.grad.data,
                db_engine=linear.bias.grad.data if linear.bias is not None else None,
                activation=type(act).__name__ if act is not None else "identity"))
            delta_next, W_next = delta, linear.weight.data
    return Trace(float(loss.item()), dE_da, layers[::-1])
