"""Ordering, scans and triangles: sort, argsort, topk, flip, roll, cumsum, cumprod, tril, triu.

Sort and topk are two ops each: one computes the indices (an int64 output, outside the graph), the
other takes the values at them (`TakeAlongDim`, whose gradient goes back to the chosen elements).
Both are ops, so a compiled step (rg.compile) recomputes the indices on every replay.
"""
from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence

import numpy as np

from ..autograd import Function
from ..tensor import _tensor
from .reduce import TakeAlongDim
from .scatter_gather import _dim

SortResult = namedtuple("SortResult", ["values", "indices"])
TopKResult = namedtuple("TopKResult", ["values", "indices"])


def _dims(op: str, dims, ndim: int) -> tuple:
    dims = (dims,) if isinstance(dims, (int, np.integer)) else tuple(dims)
    return tuple(_dim(op, d, ndim) for d in dims)


# -- sort, argsort, topk ---------------------------------------------------------------------------

def _argsort(x: np.ndarray, axis: int, descending: bool) -> np.ndarray:
    """Stable order along `axis` (NaN counts as the largest, as in PyTorch). Descending keeps
    equal elements in their original order too: a stable ascending sort of the reversed axis,
    reversed back."""
    if not descending:
        return np.argsort(x, axis=axis, kind="stable")
    n = x.shape[axis]
    order = np.argsort(np.flip(x, axis), axis=axis, kind="stable")
    return (n - 1) - np.flip(order, axis)


class ArgSort(Function):
    """Indices that sort `x` along `dim` (the first `k` of them for topk); int64, no gradient."""

    @staticmethod
    def forward(ctx, x, dim=-1, descending=False, k=None):
        order = _argsort(x, dim, descending)
        if k is not None:
            order = order[(slice(None),) * dim + (slice(0, k),)]
        return order.astype(np.int64, copy=False)

    @staticmethod
    def backward(ctx, grad):
        return None


def _sort_indices(x, dim: int, descending: bool, k=None):
    if x.ndim == 0:      # a 0-d tensor is its own sort, at index 0
        return ArgSort.apply(x.reshape(1), dim=0, descending=descending, k=k).reshape(())
    return ArgSort.apply(x, dim=dim, descending=descending, k=k)


def _take(x, indices, dim: int):
    if x.ndim == 0:
        return TakeAlongDim.apply(x.reshape(1), indices.reshape(1), dim=0).reshape(())
    return TakeAlongDim.apply(x, indices, dim=dim)


def sort(input, dim: int = -1, descending: bool = False, stable: bool = False) -> SortResult:
    """Values sorted along `dim` and the indices they came from; NaN sorts as the largest.

    The sort is always stable (`stable=False` allows any order of ties, so this is one of them).
    The gradient of the values goes back to the elements they came from.

    >>> rg.sort(rg.tensor([3.0, 1.0, 2.0]))   # SortResult(values=[1, 2, 3], indices=[1, 2, 0])
    """
    x = _tensor(input)
    dim = _dim("sort", dim, x.ndim)
    indices = _sort_indices(x, dim, bool(descending))
    return SortResult(_take(x, indices, dim), indices)


def argsort(input, dim: int = -1, descending: bool = False, stable: bool = False):
    """The int64 indices that sort `input` along `dim` (stable: ties keep their order).

    >>> rg.argsort(rg.tensor([3.0, 1.0, 2.0]))          # tensor([1, 2, 0])
    """
    x = _tensor(input)
    return _sort_indices(x, _dim("argsort", dim, x.ndim), bool(descending))


def topk(input, k: int, dim: int = -1, largest: bool = True,
         sorted: bool = True) -> TopKResult:
    """The `k` largest (or, with largest=False, smallest) elements along `dim` and their indices.

    Results always come sorted (with sorted=False any order is allowed, so this is one of them).

    >>> rg.topk(rg.tensor([1.0, 4.0, 2.0, 3.0]), 2)      # values [4, 3], indices [1, 3]
    """
    x = _tensor(input)
    dim = _dim("topk", dim, x.ndim)
    size = x.shape[dim] if x.ndim else 1
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= size:
        raise RuntimeError(f"topk: selected index k={k!r} out of range: dimension {dim} of shape "
                           f"{x.shape} has {size} elements")
    indices = _sort_indices(x, dim, bool(largest), k=int(k))
    return TopKResult(_take(x, indices, dim), indices)


# -- flip, roll ------------------------------------------------------------------------------------

class Flip(Function):
    @staticmethod
    def forward(ctx, x, dims):
        ctx.dims = dims
        return np.flip(x, dims).copy()       # a copy, as PyTorch's flip

    @staticmethod
    def backward(ctx, grad):
        return np.flip(grad, ctx.dims)        # flipping is its own inverse


def flip(input, dims: int | Sequence[int]):
    """Reverse the order of elements along each of `dims`.

    >>> rg.flip(rg.tensor([[1.0, 2.0], [3.0, 4.0]]), (0, 1))   # [[4, 3], [2, 1]]
    """
    x = _tensor(input)
    axes = _dims("flip", dims, x.ndim)
    if len(set(axes)) != len(axes):
        raise RuntimeError(f"flip: dims {tuple(dims)} name a dimension more than once "
                           f"(tensor of shape {x.shape})")
    return Flip.apply(x, dims=axes if x.ndim else ())


class Roll(Function):
    @staticmethod
    def forward(ctx, x, shifts, dims):
        ctx.shifts, ctx.dims = shifts, dims
        if dims is None:                      # roll the flattened tensor, keep the shape
            return np.roll(x, shifts[0])
        return np.roll(x, shifts, axis=dims)

    @staticmethod
    def backward(ctx, grad):
        back = tuple(-s for s in ctx.shifts)
        return np.roll(grad, back[0]) if ctx.dims is None else np.roll(grad, back, axis=ctx.dims)


def roll(input, shifts: int | Sequence[int], dims: int | Sequence[int] | None = None):
    """Shift elements cyclically by `shifts[i]` along `dims[i]`; without dims, over the flattened
    tensor (the shape is kept).

    >>> rg.roll(rg.tensor([1.0, 2.0, 3.0]), 1)          # tensor([3., 1., 2.])
    """
    x = _tensor(input)
    shifts = (shifts,) if isinstance(shifts, (int, np.integer)) else tuple(shifts)
    shifts = tuple(int(s) for s in shifts)
    if dims is None:
        if len(shifts) != 1:
            raise RuntimeError(f"roll: without dims, shifts must be one number, got {shifts}")
        return Roll.apply(x, shifts=shifts, dims=None)
    if x.ndim == 0:
        raise IndexError(f"roll: dims {dims} given for a 0-d tensor, which has no dimensions")
    axes = _dims("roll", dims, x.ndim)
    if len(axes) != len(shifts):
        raise RuntimeError(f"roll: shifts {shifts} and dims {axes} must have the same length")
    return Roll.apply(x, shifts=shifts, dims=axes)


# -- cumsum, cumprod -------------------------------------------------------------------------------

def _reverse_cumsum(a: np.ndarray, axis: int) -> np.ndarray:
    """out[i] = sum of a[j] for j >= i: the adjoint of cumsum."""
    return np.flip(np.cumsum(np.flip(a, axis), axis=axis), axis)


def _scan_dtype(x: np.ndarray):
    """PyTorch's result dtype of a scan: integers and bools accumulate in int64."""
    return np.int64 if x.dtype.kind in "biu" else x.dtype


class CumSum(Function):
    @staticmethod
    def forward(ctx, x, dim):
        ctx.dim = dim
        return np.cumsum(x, axis=dim, dtype=_scan_dtype(x))

    @staticmethod
    def backward(ctx, grad):
        return _reverse_cumsum(grad, ctx.dim)


class CumProd(Function):
    """Once differentiable: the backward works on arrays.

    d out[j] / d x[i] = prod of x[k] for k <= j, k != i (j >= i). Along a line whose first zero
    is at z: for i < z that is out[j] / x[i] (x[i] is not zero there); for i = z it is
    out[z-1] * prod of x[k] for z < k <= j, computed without dividing; for i > z it is 0."""

    @staticmethod
    def forward(ctx, x, dim):
        out = np.cumprod(x, axis=dim, dtype=_scan_dtype(x))
        ctx.save_for_backward(x, out)
        ctx.dim = dim
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        dim = ctx.dim
        zero = x == 0
        if not zero.any():
            return _reverse_cumsum(grad * out, dim) / x
        n = x.shape[dim]
        pos = np.arange(n).reshape((n,) + (1,) * (x.ndim - dim - 1))
        first = np.where(zero.any(axis=dim, keepdims=True), np.argmax(zero, axis=dim,
                                                                       keepdims=True), n)
        before, at = pos < first, pos == first
        # i < z: the usual rule, dividing only by the nonzero x[i]
        g = np.where(before, _reverse_cumsum(grad * out, dim) / np.where(before, x, 1), 0)
        # i = z: out[z-1] * sum over j >= z of grad[j] * prod(x[z+1 .. j])
        prefix = np.prod(np.where(before, x, 1), axis=dim, keepdims=True)
        after = np.cumprod(np.where(pos > first, x, 1), axis=dim)
        tail = np.sum(np.where(pos >= first, grad * after, 0), axis=dim, keepdims=True)
        g = np.where(at, prefix * tail, g)
        return g.astype(x.dtype, copy=False)


def _scan(cls, name: str, input, dim: int):
    x = _tensor(input)
    dim = _dim(name, dim, x.ndim)
    if x.ndim == 0:
        return cls.apply(x.reshape(1), dim=0).reshape(())
    return cls.apply(x, dim=dim)


def cumsum(input, dim: int):
    """Running sums along `dim` (integers and bools sum in int64, as in PyTorch).

    >>> rg.cumsum(rg.tensor([1.0, 2.0, 3.0]), 0)        # tensor([1., 3., 6.])
    """
    return _scan(CumSum, "cumsum", input, dim)


def cumprod(input, dim: int):
    """Running products along `dim`; the gradient is exact where the input has zeros.

    >>> rg.cumprod(rg.tensor([1.0, 2.0, 3.0]), 0)       # tensor([1., 2., 6.])
    """
    return _scan(CumProd, "cumprod", input, dim)


# -- tril, triu ------------------------------------------------------------------------------------

class Tri(Function):
    """The lower (tril) or upper (triu) triangle of the last two dimensions; zeros elsewhere."""

    @staticmethod
    def forward(ctx, x, diagonal=0, upper=False):
        ctx.diagonal, ctx.upper = diagonal, upper
        return (np.triu if upper else np.tril)(x, k=diagonal)

    @staticmethod
    def backward(ctx, grad):
        return (np.triu if ctx.upper else np.tril)(grad, k=ctx.diagonal)   # the same mask


def _tri(name: str, input, diagonal: int, upper: bool):
    x = _tensor(input)
    if x.ndim < 2:
        raise RuntimeError(f"{name}: input tensor must have at least 2 dimensions, got shape "
                           f"{x.shape}")
    return Tri.apply(x, diagonal=int(diagonal), upper=upper)


def tril(input, diagonal: int = 0):
    """Elements on and below the `diagonal`-th diagonal of the last two dimensions, zeros above.

    >>> rg.tril(rg.ones(3, 3), -1)          # strictly lower triangle
    """
    return _tri("tril", input, diagonal, False)


def triu(input, diagonal: int = 0):
    """Elements on and above the `diagonal`-th diagonal of the last two dimensions, zeros below.

    >>> rg.triu(rg.ones(3, 3), 1)           # strictly upper triangle
    """
    return _tri("triu", input, diagonal, True)
