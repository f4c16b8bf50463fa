"""In-place updates (`+=`, `-=`, `*=`, `/=`, `x[i] = v`, `fill_`, `copy_`), safe for autograd.

Outside the graph (grad mode off, or no tensor involved requires grad) the array is updated in place.
Inside it, the result is computed out of place by the ordinary op, written back into the tensor's
memory, and the tensor becomes that op's output. Every in-place write bumps the tensor's version, so a
backward that needs the overwritten value fails loudly instead of returning a wrong gradient.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from . import autograd
from .tensor import Tensor


def _records(t: Tensor, other: Any) -> bool:
    return autograd.is_grad_enabled() and (
        t.requires_grad or (isinstance(other, Tensor) and other.requires_grad))


def _check_graph_target(t: Tensor, op: str) -> None:
    if t.grad_fn is None and t.requires_grad:
        raise RuntimeError(
            f"{op}: a leaf tensor that requires grad cannot be modified in place inside the graph; "
            "update it under rg.no_grad() (as optimizers do), or use the out-of-place form")
    if t._base is not None:
        raise RuntimeError(
            f"{op}: in-place modification of a view of a tensor that requires grad is not "
            "supported; use the out-of-place form")


def _write_back(t: Tensor, result: Tensor, op: str) -> Tensor:
    if result.data.shape != t.data.shape:
        raise RuntimeError(f"{op}: the result has shape {result.data.shape} but the tensor being "
                           f"updated has shape {t.data.shape}")
    np.copyto(t.data, result.data, casting="same_kind")
    t._mark_modified()
    t.grad_fn, t.requires_grad = result.grad_fn, True
    return t


def _own_saved_input(t: Tensor, other: Any, result: Tensor) -> None:
    """If the op saved t's old value (y *= w needs y for w's gradient), give it a copy, as PyTorch
    does, since the write-back is about to overwrite that memory."""
    ctx = result.grad_fn
    if ctx is None or not any(s is t.data for s in ctx.saved_tensors):
        return
    ctx.saved_tensors = tuple(s.copy() if s is t.data else s for s in ctx.saved_tensors)
    ctx._saved_cells = autograd._saved_cells(ctx.saved_tensors, (t, other), result)


def apply_inplace(t: Tensor, fn: type, other: Any, ufunc: Callable, op: str) -> Tensor:
    if _records(t, other):
        _check_graph_target(t, op)
        result = fn.apply(t, other)
        _own_saved_input(t, other, result)
        return _write_back(t, result, op)
    value = other.data if isinstance(other, Tensor) else other
    try:
        ufunc(t.data, value, out=t.data, casting="same_kind")
    except (ValueError, TypeError) as e:
        shape = np.shape(value)
        raise RuntimeError(f"{op}: cannot update a tensor of shape {t.data.shape} and dtype "
                           f"{t.data.dtype} in place with a value of shape {shape}: {e}") from None
    t._mark_modified()
    return t


def setitem(t: Tensor, index: Any, value: Any) -> None:
    from .ops.index import IndexPut, _normalize_index
    index, _, _ = _normalize_index(index)
    if _records(t, value):
        _check_graph_target(t, "setitem")
        _write_back(t, IndexPut.apply(t, value, index=index), "setitem")
        return
    t.data[index] = value.data if isinstance(value, Tensor) else value
    t._mark_modified()


def fill_(t: Tensor, value: float) -> Tensor:
    if autograd.is_grad_enabled() and t.requires_grad:
        raise RuntimeError("fill_: cannot fill a tensor that requires grad inside the graph; "
                           "use rg.no_grad()")
    t.data[...] = value
    t._mark_modified()
    return t


def copy_(t: Tensor, src: Any) -> Tensor:
    if _records(t, src):
        raise RuntimeError("copy_: copying into a tensor inside the graph is not supported; "
                           "use rg.no_grad() (e.g. when loading weights)")
    src = src.data if isinstance(src, Tensor) else np.asarray(src)
    try:
        np.copyto(t.data, np.broadcast_to(src, t.data.shape), casting="unsafe")
    except ValueError:
        raise RuntimeError(f"copy_: cannot copy shape {src.shape} into shape {t.data.shape}") from None
    t._mark_modified()
    return t
