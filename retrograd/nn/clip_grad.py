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

from ..autograd import array_function
from ..tensor import Tensor, _wrap

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
    return _wrap(_clip_to_total_norm(_as_list(parameters), float(max_norm), float(norm_type),
                                     error_if_nonfinite))


def clip_grad_value_(parameters: TensorOrTensors, clip_value: float) -> None:
    """Clamp every gradient element into [-clip_value, clip_value], in place.

    >>> nn.utils.clip_grad_value_(model.parameters(), clip_value=0.5)
    """
    _clamp_grads(_as_list(parameters), float(clip_value))


def get_total_norm(tensors: TensorOrTensors, norm_type: float = 2.0,
                   error_if_nonfinite: bool = False) -> Tensor:
    """The p-norm of `tensors` taken together: the norm of their per-tensor norms, as torch does.

    >>> total = nn.utils.get_total_norm([p.grad for p in model.parameters()])
    """
    # not replayable: the .grad tensors are new each step, so a compiled step using this is
    # caught (its recordings differ) and runs eagerly; clip_grad_norm_ compiles
    return _wrap(_total_norm([t.data for t in _as_list(tensors)], float(norm_type),
                             error_if_nonfinite))


def clip_grads_with_norm_(parameters: TensorOrTensors, max_norm: float,
                          total_norm: Tensor | float) -> None:
    """Scale the gradients by `max_norm / (total_norm + 1e-6)` where that is below 1.

    >>> nn.utils.clip_grads_with_norm_(model.parameters(), 1.0, total)
    """
    total = total_norm.data if isinstance(total_norm, Tensor) else np.asarray(total_norm)
    _scale_grads(_as_list(parameters), float(max_norm), total)


# The work itself is done by `array_function`s: these read the gradients and decide on their values
# (clip or not), so a compiled step must run them at each replay, on that call's gradients, rather
# than freeze what the recorded call happened to do.

@array_function
def _clip_to_total_norm(params: list[Tensor], max_norm: float, norm_type: float,
                        error_if_nonfinite: bool) -> np.ndarray:
    total = _total_norm([p.grad.data for p in params if p.grad is not None], norm_type,
                        error_if_nonfinite)
    _scale_grads(params, max_norm, total)     # a plain call: the tape is paused in here
    return total


@array_function
def _clamp_grads(params: list[Tensor], clip_value: float) -> None:
    for p in params:
        if p.grad is not None:
            np.clip(p.grad.data, -clip_value, clip_value, out=p.grad.data)
            p.grad._mark_modified()


def _total_norm(arrays: list[np.ndarray], p: float, error_if_nonfinite: bool) -> np.ndarray:
    if not arrays:
        return np.zeros((), np.float32)
    norms = [_vector_norm(a, p) for a in arrays]
    dtype = np.result_type(*norms)
    total = _vector_norm(np.array(norms, dtype=dtype), p)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {p} of the gradients is "
                           f"{total}, so they cannot be clipped; find where the loss or the "
                           "gradients become non-finite, or pass error_if_nonfinite=False to scale "
                           "by it anyway")
    return total


@array_function
def _scale_grads(params: list[Tensor], max_norm: float, total: np.ndarray) -> None:
    if total.dtype.kind != "f":
        total = total.astype(np.float32)
    one = total.dtype.type(1)
    coef = total.dtype.type(max_norm) / (total + total.dtype.type(1e-6))
    if coef >= one:  # multiplying by 1 would change nothing (a NaN coefficient still propagates)
        return
    for p in params:
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
