"""Gradient clipping, the usual remedy for exploding gradients: rescale by the total norm, or clamp.

Both work in place on the `.grad` arrays, in their own dtype, and skip parameters without a
gradient.
"""
from __future__ import annotations

import math
import types
import warnings
from typing import Iterable

import numpy as np

from ..tensor import Tensor

TensorOrTensors = Tensor | Iterable[Tensor]


def clip_grad_norm_(parameters: TensorOrTensors, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale the gradients so that their total norm (of all of them, as if concatenated into one
    vector) is at most `max_norm`, and return that total norm before clipping (a 0-d Tensor).

    `norm_type` is p of the p-norm; `float("inf")` takes the largest absolute value. As torch, the
    scale is `max_norm / (total_norm + 1e-6)`, applied only when it is below 1.

    >>> loss.backward()
    >>> total = nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    >>> opt.step()
    """
    params = _as_list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    total_norm = get_total_norm(grads, norm_type, error_if_nonfinite)
    clip_grads_with_norm_(params, max_norm, total_norm)
    return total_norm


def clip_grad_value_(parameters: TensorOrTensors, clip_value: float) -> None:
    """Clamp every gradient element into [-clip_value, clip_value], in place.

    >>> nn.utils.clip_grad_value_(model.parameters(), clip_value=0.5)
    """
    clip_value = float(clip_value)
    for p in _as_list(parameters):
        if p.grad is not None:
            np.clip(p.grad.data, -clip_value, clip_value, out=p.grad.data)
            p.grad._mark_modified()


def get_total_norm(tensors: TensorOrTensors, norm_type: float = 2.0,
                   error_if_nonfinite: bool = False) -> Tensor:
    """The p-norm of `tensors` taken together: the norm of their per-tensor norms, as torch does."""
    tensors = _as_list(tensors)
    if not tensors:
        return Tensor(0.0)
    p = float(norm_type)
    norms = [_vector_norm(t.data, p) for t in tensors]
    dtype = np.result_type(*norms)
    total = _vector_norm(np.array(norms, dtype=dtype), p)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {p} of the gradients is "
                           f"{total}, so they cannot be clipped; find where the loss or the "
                           "gradients become non-finite, or pass error_if_nonfinite=False to scale "
                           "by it anyway")
    return Tensor(total)


def clip_grads_with_norm_(parameters: TensorOrTensors, max_norm: float,
                          total_norm: Tensor | float) -> None:
    """Scale the gradients by `max_norm / (total_norm + 1e-6)` where that is below 1."""
    total = np.asarray(total_norm.data if isinstance(total_norm, Tensor) else total_norm)
    if total.dtype.kind != "f":
        total = total.astype(np.float32)
    one = total.dtype.type(1)
    coef = total.dtype.type(max_norm) / (total + total.dtype.type(1e-6))
    if coef >= one:  # multiplying by 1 would change nothing (a NaN coefficient still propagates)
        return
    for p in _as_list(parameters):
        if p.grad is not None:
            g = p.grad.data
            with np.errstate(invalid="ignore"):  # inf·0 = NaN when the norm was inf, as in torch
                np.multiply(g, coef.astype(g.dtype), out=g)
            p.grad._mark_modified()


def _vector_norm(a: np.ndarray, p: float) -> np.ndarray:
    """torch.linalg.vector_norm of a flattened array, as a 0-d array of its dtype."""
    a = a.reshape(-1)
    if p == 2.0:
        out = np.sqrt(np.dot(a, a))
    elif p == math.inf:
        out = np.abs(a).max(initial=0)
    elif p == -math.inf:
        out = np.abs(a).min(initial=math.inf)
    elif p == 0.0:
        out = np.count_nonzero(a)
    elif p == 1.0:
        out = np.abs(a).sum()
    else:
        out = (np.abs(a) ** p).sum() ** (1.0 / p)
    return np.asarray(out, dtype=a.dtype)


def _as_list(parameters: TensorOrTensors) -> list[Tensor]:
    if isinstance(parameters, Tensor):
        return [parameters]
    is_generator = isinstance(parameters, types.GeneratorType)
    parameters = list(parameters)
    if is_generator and not parameters:
        warnings.warn("`parameters` is an empty generator, no gradient clipping will occur "
                      "(was model.parameters() already consumed?)", stacklevel=3)
    return parameters
