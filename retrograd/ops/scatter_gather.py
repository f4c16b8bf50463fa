"""Gathering and scattering along a dimension: gather, scatter, scatter_add, index_select,
take_along_dim, masked_fill, narrow, select, and one_hot's op.

An index tensor is always a positional input of its op (never a keyword constant), so a compiled
step (rg.compile) gathers at each call's indices. Gradients written back to gathered positions add
up where an index repeats (`_add_at`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import Function
from ..tensor import Tensor, _tensor
from .embedding import _rows_summed_by_id
from .index import BasicIndex

# index elements from which _add_at sums with np.bincount (measured 1.5-2x faster than np.add.at
# from ~4k elements; np.add.at's lower fixed cost wins below), and the largest target for which
# bincount's float64 scratch (8 bytes per target element) is acceptable
_BINCOUNT_MIN, _BINCOUNT_MAX = 1 << 12, 1 << 22


# -- argument checks, shared by the ops ---------------------------------------------------------

def _dim(op: str, dim: int, ndim: int, scalar_ok: bool = True) -> int:
    # a 0-d tensor has one dimension to gather or scatter along, as in torch
    n = max(ndim, 1) if scalar_ok else ndim
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise TypeError(f"{op}: dim must be an int, got {type(dim).__name__}")
    if not -n <= dim < n:
        raise IndexError(f"{op}: dimension {dim} is out of range for a tensor with {ndim} "
                         f"dimensions (expected {-n} to {n - 1})")
    return int(dim) % n


def _integer_index(op: str, index: np.ndarray, name: str = "index") -> None:
    if index.dtype.kind not in "iu":
        raise TypeError(f"{op}: {name} must be an integer tensor, got dtype {index.dtype}")


def _check_range(op: str, index: np.ndarray, size: int, dim: int, negative: bool = False) -> None:
    """Every index in [0, size), or in [-size, size) when negative indices count from the end."""
    if index.size == 0:
        return
    lo, hi = int(index.min()), int(index.max())
    low = -size if negative else 0
    if lo < low or hi >= size:
        bad = lo if lo < low else hi
        raise IndexError(f"{op}: index {bad} is out of range for dimension {dim} of size {size}")


def _check_sizes(op: str, index: np.ndarray, x: np.ndarray, dim: int,
                 src: np.ndarray | None = None) -> None:
    """torch's rule: index no larger than input apart from `dim`, and no larger than src at all."""
    if index.ndim != x.ndim or (src is not None and src.ndim != x.ndim):
        extra = "" if src is None else f" and src of shape {src.shape}"
        raise ValueError(f"{op}: index of shape {index.shape} must have as many dimensions as "
                         f"input of shape {x.shape}{extra}")
    if any(i > n for d, (i, n) in enumerate(zip(index.shape, x.shape)) if d != dim):
        raise ValueError(f"{op}: index of shape {index.shape} is larger than input of shape "
                         f"{x.shape} outside dimension {dim}")
    if src is not None and any(i > n for i, n in zip(index.shape, src.shape)):
        raise ValueError(f"{op}: index of shape {index.shape} is larger than src of shape "
                         f"{src.shape}")


def _same_dtype(op: str, x: np.ndarray, src: np.ndarray) -> None:
    if src.dtype != x.dtype:
        raise TypeError(f"{op}: src of dtype {src.dtype} must have input's dtype {x.dtype}")


def _at_least_1d(*arrays: np.ndarray) -> list[np.ndarray]:
    return [a.reshape(1) if a.ndim == 0 else a for a in arrays]


def _positions(index: np.ndarray, dim: int) -> tuple:
    """The advanced index naming, for each element of `index`, the element it points at: `index`
    along `dim`, the element's own coordinate along every other dimension."""
    nd, index = index.ndim, index.astype(np.intp, copy=False)   # uint64 too, for ravel_multi_index
    return tuple(index if d == dim else
                 np.arange(n).reshape((1,) * d + (n,) + (1,) * (nd - d - 1))
                 for d, n in enumerate(index.shape))


def _region(shape: tuple) -> tuple:
    """The leading block of shape `shape` (the part of src an index of that shape reads)."""
    return tuple(slice(0, n) for n in shape)


def _add_at(out: np.ndarray, positions: tuple, values: np.ndarray) -> np.ndarray:
    """out[positions] += values, repeated positions adding up (np.add.at); `out` is C-ordered.

    Large float cases sum with np.bincount over flat positions (in float64, rounded once to
    out's dtype), which is faster than np.add.at there; see _BINCOUNT_MIN."""
    if (not _BINCOUNT_MIN <= values.size or out.size > _BINCOUNT_MAX
            or out.dtype.char not in "efd"):
        np.add.at(out, positions, values)
        return out
    flat = np.ravel_multi_index(positions, out.shape)
    flat = np.broadcast_to(flat, values.shape).reshape(-1)
    sums = np.bincount(flat, weights=values.reshape(-1), minlength=out.size)
    out += sums.reshape(out.shape).astype(out.dtype, copy=False)
    return out


# -- gather and its relatives ---------------------------------------------------------------------

def _along_args(op: str, x: np.ndarray, index: np.ndarray, dim: int, src=None) -> tuple:
    """The checked dim, and x, index (and src, if given) at least 1-d: gather's and scatter's
    arguments, checked as torch checks them."""
    _integer_index(op, index)
    dim = _dim(op, dim, x.ndim)
    if src is None:
        x1, index1 = _at_least_1d(x, index)
        _check_sizes(op, index1, x1, dim)
    else:
        x1, index1, src = _at_least_1d(x, index, np.asarray(src))
        _same_dtype(op, x1, src)
        _check_sizes(op, index1, x1, dim, src)
    _check_range(op, index1, x1.shape[dim], dim)
    return dim, x1, index1, src


class Gather(Function):
    """out[i][j] = x[index[i][j]][j] (dim=0): the value at each index along `dim`."""

    @staticmethod
    def forward(ctx, x, index, dim):
        dim, x1, index1, _ = _along_args("gather", x, index, dim)
        ctx.save_for_backward(index)
        ctx.shape, ctx.dim = x.shape, dim
        return x1[_positions(index1, dim)].reshape(index.shape)

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        (index1,) = _at_least_1d(index)
        shape1 = ctx.shape or (1,)
        out = np.zeros(shape1, dtype=grad.dtype)
        _add_at(out, _positions(index1, ctx.dim), grad.reshape(index1.shape))
        return out.reshape(ctx.shape), None


class TakeAlong(Function):
    """torch.take_along_dim: gather after broadcasting input and indices outside `dim`; negative
    indices count from the end. (Not named TakeAlongDim: that is max/min's op in reduce.py.)"""

    @staticmethod
    def forward(ctx, x, indices, dim):
        _integer_index("take_along_dim", indices, "indices")
        dim = _dim("take_along_dim", dim, x.ndim, scalar_ok=False)
        x1, index1 = x, indices
        if x1.ndim != index1.ndim:
            raise ValueError(f"take_along_dim: indices of shape {indices.shape} must have as many "
                             f"dimensions as input of shape {x.shape}")
        try:
            outer = np.broadcast_shapes(*[tuple(1 if d == dim else n for d, n in enumerate(s))
                                          for s in (x1.shape, index1.shape)])
        except ValueError:
            raise ValueError(f"take_along_dim: input of shape {x.shape} and indices of shape "
                             f"{indices.shape} do not broadcast outside dimension {dim}") from None
        n = x1.shape[dim]
        _check_range("take_along_dim", index1, n, dim, negative=True)
        xb = np.broadcast_to(x1, outer[:dim] + (n,) + outer[dim + 1:])
        ib = np.broadcast_to(index1, outer[:dim] + (index1.shape[dim],) + outer[dim + 1:])
        ib = np.where(ib < 0, ib + n, ib)
        ctx.save_for_backward(ib)
        ctx.shape, ctx.xb_shape, ctx.dim = x.shape, xb.shape, dim
        return np.take_along_axis(xb, ib, axis=dim)

    @staticmethod
    def backward(ctx, grad):
        (ib,) = ctx.saved_tensors
        out = np.zeros(ctx.xb_shape, dtype=grad.dtype)
        _add_at(out, _positions(ib, ctx.dim), grad.reshape(ib.shape))
        return out, None        # in the broadcast shape: the engine sums it to the input's


class IndexSelect(Function):
    """The slices at a vector of indices along `dim`: np.take(x, index, axis=dim)."""

    @staticmethod
    def forward(ctx, x, index, dim):
        _integer_index("index_select", index)
        if index.ndim > 1:
            raise ValueError(f"index_select: index must be a vector (0-d or 1-d), got shape "
                             f"{index.shape}")
        dim = _dim("index_select", dim, x.ndim)
        (x1,) = _at_least_1d(x)
        ids = index.reshape(-1)
        if x.ndim == 0 and ids.size != 1:
            raise ValueError(f"index_select: a 0-d input takes one index, got {ids.size}")
        _check_range("index_select", ids, x1.shape[dim], dim)
        ctx.save_for_backward(index)
        ctx.shape, ctx.dim = x.shape, dim
        out = np.take(x1, ids, axis=dim)
        return out if x.ndim else out.reshape(())

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        ids = index.reshape(-1)
        shape1 = ctx.shape or (1,)
        moved = np.moveaxis(grad.reshape(shape1[:ctx.dim] + (ids.size,) + shape1[ctx.dim + 1:]),
                            ctx.dim, 0)
        rows = _rows_summed_by_id(shape1[ctx.dim], ids, moved.reshape(ids.size, -1))
        rest = moved.shape[1:]
        out = np.moveaxis(rows.reshape((shape1[ctx.dim],) + rest), 0, ctx.dim)
        return np.ascontiguousarray(out).reshape(ctx.shape), None


# -- scatter: out-of-place writes ------------------------------------------------------------------

class Scatter(Function):
    """out = x with out[index[i][j]][j] = src[i][j] (dim=0). Where an index repeats, one of the
    writes wins (unspecified in torch too); src's gradient is the output gradient gathered back."""

    @staticmethod
    def forward(ctx, x, index, src, dim):
        dim, x1, index1, src1 = _along_args("scatter", x, index, dim, src)
        ctx.save_for_backward(index)
        ctx.shape, ctx.src_shape, ctx.dim = x.shape, np.shape(src), dim
        out = x1.copy()
        out[_positions(index1, dim)] = src1[_region(index1.shape)]
        return out.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        return _scatter_grads(ctx, grad, index, overwrite=True)


class ScatterValue(Function):
    """out = x with `value` written at the indexed positions (torch.scatter(..., value=v))."""

    @staticmethod
    def forward(ctx, x, index, dim, value):
        dim, x1, index1, _ = _along_args("scatter", x, index, dim)
        ctx.save_for_backward(index)
        ctx.shape, ctx.src_shape, ctx.dim = x.shape, None, dim
        out = x1.copy()
        out[_positions(index1, dim)] = value
        return out.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        return _scatter_grads(ctx, grad, index, overwrite=True)[:2]


class ScatterAdd(Function):
    """out = x, then out[index[i][j]][j] += src[i][j] (dim=0), repeated indices adding up."""

    @staticmethod
    def forward(ctx, x, index, src, dim):
        dim, x1, index1, src1 = _along_args("scatter_add", x, index, dim, src)
        ctx.save_for_backward(index)
        ctx.shape, ctx.src_shape, ctx.dim = x.shape, np.shape(src), dim
        out = np.array(x1, order="C")
        return _add_at(out, _positions(index1, dim), src1[_region(index1.shape)]).reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        return _scatter_grads(ctx, grad, index, overwrite=False)


def _scatter_grads(ctx, grad: np.ndarray, index: np.ndarray, overwrite: bool) -> tuple:
    """(grad_x, None, grad_src): x's gradient is grad, zero where scatter overwrote x; src's is
    grad gathered at the indices, in src's leading block, zero elsewhere."""
    (index1,) = _at_least_1d(index)
    positions = _positions(index1, ctx.dim)
    grad1 = grad.reshape(ctx.shape or (1,))
    grad_x = grad_src = None
    if ctx.needs_input_grad[0]:
        grad_x = grad1
        if overwrite:
            grad_x = grad1.copy()
            grad_x[positions] = 0
        grad_x = grad_x.reshape(ctx.shape)
    if ctx.src_shape is not None and ctx.needs_input_grad[2]:
        grad_src = np.zeros(ctx.src_shape or (1,), dtype=grad.dtype)
        grad_src[_region(index1.shape)] = grad1[positions]
        grad_src = grad_src.reshape(ctx.src_shape)
    return grad_x, None, grad_src


# -- masks and one-hot -----------------------------------------------------------------------------

class MaskedFill(Function):
    """`value` where mask is True, x elsewhere (both broadcast); the mask gets no gradient."""

    @staticmethod
    def forward(ctx, x, mask, value):
        mask = np.asarray(mask)
        if mask.dtype != np.bool_:
            raise TypeError(f"masked_fill: mask must be a bool tensor, got dtype {mask.dtype}")
        if np.ndim(value) != 0:
            raise ValueError(f"masked_fill: value must be a number or a 0-d tensor, got shape "
                             f"{np.shape(value)}")
        try:
            np.broadcast_shapes(x.shape, mask.shape)
        except ValueError:
            raise ValueError(f"masked_fill: mask of shape {mask.shape} does not broadcast with "
                             f"input of shape {x.shape}") from None
        ctx.save_for_backward(mask)
        return np.where(mask, np.asarray(value, dtype=x.dtype), x)

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        grad_x = np.where(mask, 0, grad) if ctx.needs_input_grad[0] else None
        grad_value = np.where(mask, grad, 0).sum() if ctx.needs_input_grad[2] else None
        return grad_x, None, grad_value


class OneHot(Function):
    """(*ids.shape, num_classes) int64 array with a 1 at each id; no gradient."""

    @staticmethod
    def forward(ctx, ids, num_classes=-1):
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"one_hot: class values must be an integer tensor, got dtype "
                            f"{ids.dtype}")
        if num_classes == -1:
            if ids.size == 0:
                raise ValueError("one_hot: cannot infer num_classes from an empty tensor; "
                                 "pass num_classes")
            num_classes = int(ids.max()) + 1
        if num_classes < 0:
            raise ValueError(f"one_hot: num_classes must be -1 or non-negative, got {num_classes}")
        if ids.size and ids.min() < 0:
            raise ValueError(f"one_hot: class values must be non-negative, got {int(ids.min())}")
        if ids.size and ids.max() >= num_classes:
            raise ValueError(f"one_hot: class value {int(ids.max())} is too large for "
                             f"num_classes={num_classes}")
        out = np.zeros(ids.shape + (num_classes,), dtype=np.int64)
        np.put_along_axis(out, ids[..., None].astype(np.intp, copy=False), 1, axis=-1)
        return out

    @staticmethod
    def backward(ctx, grad):
        return None


# -- the functional API (rg.gather, ...; Tensor methods call these) --------------------------------

def _index_arg(index: Any) -> Any:
    """Tensors go in as tensors (a compiled step names them); lists and arrays as arrays."""
    return index if isinstance(index, Tensor) else np.asarray(index)


def gather(x: Tensor, dim: int, index: Any) -> Tensor:
    """Values of x at `index` along `dim`; index has x's number of dimensions and its shape is
    the output's (no larger than x's outside `dim`). Repeated indices add their gradients.

    >>> rg.gather(rg.tensor([[1., 2.], [3., 4.]]), 1, rg.tensor([[0, 0], [1, 0]]))  # [[1,1],[4,3]]
    """
    return Gather.apply(x, _index_arg(index), dim=dim)


def take_along_dim(x: Tensor, indices: Any, dim: int | None = None) -> Tensor:
    """gather with x and indices broadcast against each other outside `dim` (negative indices
    count from the end); with dim=None, both are flattened first.

    >>> rg.take_along_dim(x, x.argmax(1, keepdim=True), 1)    # the row maxima, shape (n, 1)
    """
    indices = _index_arg(indices)
    if dim is None:
        x = _tensor(x).reshape(-1)
        indices = indices.reshape(-1)
        dim = 0
    return TakeAlong.apply(x, indices, dim=dim)


def index_select(x: Tensor, dim: int, index: Any) -> Tensor:
    """The slices of x at a vector of indices along `dim` (repeats allowed: gradients add up).

    >>> rg.index_select(rg.eye(3), 0, rg.tensor([2, 0]))       # rows 2 and 0
    """
    return IndexSelect.apply(x, _index_arg(index), dim=dim)


def scatter(x: Tensor, dim: int, index: Any, src: Any = None, *, value: Any = None) -> Tensor:
    """A copy of x with src's values (or one number, `value`) written at `index` along `dim`:
    out[index[i][j]][j] = src[i][j] for dim=0. The inverse of gather.

    >>> rg.scatter(rg.zeros(2, 3), 1, rg.tensor([[2], [0]]), value=1.0)   # [[0,0,1],[1,0,0]]
    """
    if (src is None) == (value is None):
        raise TypeError("scatter: pass exactly one of src (a tensor) and value (a number)")
    if src is not None and not isinstance(src, (Tensor, np.ndarray)):
        src, value = None, src           # torch.scatter(x, dim, index, 2.0): a number is a value
    if src is None:
        if np.ndim(value) != 0:
            raise ValueError(f"scatter: value must be a number, got shape {np.shape(value)}")
        value = value.item() if isinstance(value, (Tensor, np.ndarray, np.generic)) else value
        return ScatterValue.apply(x, _index_arg(index), dim=dim, value=value)
    return Scatter.apply(x, _index_arg(index), src, dim=dim)


def scatter_add(x: Tensor, dim: int, index: Any, src: Tensor) -> Tensor:
    """A copy of x with src's values added at `index` along `dim`; repeated indices add up.

    >>> rg.scatter_add(rg.zeros(3), 0, rg.tensor([0, 0, 2]), rg.ones(3))   # [2, 0, 1]
    """
    return ScatterAdd.apply(x, _index_arg(index), src, dim=dim)


def masked_fill(x: Tensor, mask: Any, value: Any) -> Tensor:
    """x with `value` (a number or 0-d tensor) where the bool `mask` (broadcast) is True.

    >>> scores.masked_fill(~causal, float("-inf"))
    """
    if isinstance(value, np.generic):
        value = value.item()
    return MaskedFill.apply(x, _index_arg(mask), value)


def narrow(x: Tensor, dim: int, start: int, length: int) -> Tensor:
    """The view of `length` elements from `start` (negative counts from the end) along `dim`.

    >>> rg.narrow(x, 1, -2, 2)          # x[:, -2:]
    """
    x = _tensor(x)
    dim = _dim("narrow", dim, x.ndim)
    if x.ndim == 0:
        raise IndexError("narrow: cannot narrow a 0-d tensor")
    n = x.shape[dim]
    if not -n <= start <= n:
        raise IndexError(f"narrow: start {start} is out of range for dimension {dim} of size {n}")
    start = int(start) + n if start < 0 else int(start)
    if length < 0 or start + length > n:
        raise ValueError(f"narrow: start ({start}) + length ({length}) exceeds dimension {dim} "
                         f"of size {n}" if length >= 0 else
                         f"narrow: length must be non-negative, got {length}")
    return BasicIndex.apply(x, index=(slice(None),) * dim + (slice(start, start + int(length)),))


def select(x: Tensor, dim: int, index: int) -> Tensor:
    """The view at `index` (negative counts from the end) along `dim`, which is removed.

    >>> rg.select(x, -1, 0)             # x[..., 0]
    """
    x = _tensor(x)
    dim = _dim("select", dim, x.ndim)
    if x.ndim == 0:
        raise IndexError("select: cannot select from a 0-d tensor")
    n = x.shape[dim]
    if not -n <= index < n:
        raise IndexError(f"select: index {index} is out of range for dimension {dim} of size {n} "
                         f"(shape {x.shape})")
    return BasicIndex.apply(x, index=(slice(None),) * dim + (int(index),))
