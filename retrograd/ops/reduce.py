"""Reductions (sum, mean, var, max/min, logsumexp) and the softmax family, numerically stable."""
from __future__ import annotations

import math
from collections import namedtuple

import numpy as np

from ..autograd import Function
from .linalg import axis_sums


def _axes(dim, ndim: int) -> tuple:
    """Normalised, sorted axes of a reduction; None means all of them."""
    if dim is None:
        return tuple(range(ndim))
    dims = dim if isinstance(dim, tuple) else (dim,)
    out = []
    for d in dims:
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise IndexError(f"dimension {d} is out of range for a tensor with {ndim} dimensions")
        out.append(d % ndim if ndim else 0)
    return tuple(sorted(out))


def _numpy_dim(dim, ndim: int):
    """NumPy's axis for a reduction: PyTorch lets a 0-d tensor reduce over dim 0 or -1 (or (0,)),
    NumPy only over axis=None."""
    if ndim == 0:
        _axes(dim, 0)   # still rejects any other dim
        return None
    return dim


def _keep(grad: np.ndarray, shape: tuple, dim, keepdim: bool) -> np.ndarray:
    """Re-insert the reduced axes into a gradient so it broadcasts against the input."""
    if keepdim or not shape:
        return grad
    axes = _axes(dim, len(shape))
    return grad.reshape(tuple(1 if i in axes else n for i, n in enumerate(shape)))


def _count(shape: tuple, dim) -> int:
    return math.prod(shape[a] for a in _axes(dim, len(shape))) if shape else 1


def _broadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """np.broadcast_to(grad, shape) for a gradient with the input's rank, as a zero-stride view
    built directly: np.broadcast_to's Python overhead dominates the backward of small tensors."""
    if grad.shape == shape:
        return grad
    if not grad.flags.c_contiguous or grad.ndim != len(shape):
        return np.broadcast_to(grad, shape)
    strides = tuple(0 if n == 1 else s for n, s in zip(grad.shape, grad.strides))
    return np.ndarray(shape, grad.dtype, grad, 0, strides)


_SMALL = 4096      # elements: below this, a gradient spread by a full reduction is filled in


def _spread(grad: np.ndarray, shape: tuple, dim, keepdim: bool) -> np.ndarray:
    """A reduction's gradient spread back over its input's shape (the adjoint of summing is
    copying): every element that went into an output gets that output's gradient."""
    if grad.size == 1:    # one value for every element (a full reduction)
        if math.prod(shape) <= _SMALL:
            # filled in: NumPy's next op on it then takes its fast path for contiguous operands,
            # which saves more than the fill costs (a stride-0 operand costs ~0.5 us per ufunc)
            out = np.empty(shape, grad.dtype)
            out.fill(grad.item())
            return out
        return np.ndarray(shape, grad.dtype, grad, 0, (0,) * len(shape))   # all strides 0
    return _broadcast(_keep(grad, shape, dim, keepdim), shape)


class Sum(Function):
    @staticmethod
    def forward(ctx, x, dim=None, keepdim=False):
        if x.ndim == 0:
            dim = _numpy_dim(dim, 0)
        ctx.shape, ctx.dim, ctx.keepdim = x.shape, dim, keepdim
        return np.add.reduce(x, dim, keepdims=keepdim)   # ndarray.sum, minus its Python wrapper

    @staticmethod
    def backward(ctx, grad):
        return _spread(grad, ctx.shape, ctx.dim, ctx.keepdim)


class Mean(Function):
    @staticmethod
    def forward(ctx, x, dim=None, keepdim=False):
        dim = _numpy_dim(dim, x.ndim)
        ctx.shape, ctx.dim, ctx.keepdim = x.shape, dim, keepdim
        return x.mean(axis=dim, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad):
        return _spread(grad / _count(ctx.shape, ctx.dim), ctx.shape, ctx.dim, ctx.keepdim)


def correction(unbiased, correction_) -> int:
    """Bessel's correction from PyTorch's `unbiased` flag or its newer `correction` number."""
    if correction_ is not None:
        return correction_
    return 1 if unbiased is None or unbiased else 0


class Var(Function):
    @staticmethod
    def forward(ctx, x, dim=None, keepdim=False, correction=1):
        dim = _numpy_dim(dim, x.ndim)
        centered = x - x.mean(axis=dim, keepdims=True)
        n = _count(x.shape, dim) - correction
        ctx.save_for_backward(centered)
        ctx.dim, ctx.keepdim, ctx.n = dim, keepdim, n
        return (centered * centered).sum(axis=dim, keepdims=keepdim) / n

    @staticmethod
    def backward(ctx, grad):
        (centered,) = ctx.saved_tensors
        return _keep(grad, centered.shape, ctx.dim, ctx.keepdim) * (2 / ctx.n) * centered


class _Extreme(Function):
    """amax/amin: the gradient is shared evenly among tied extremes (PyTorch's rule for amax)."""

    reduce = None

    @classmethod
    def forward(cls, ctx, x, dim=None, keepdim=False):
        if x.size == 0:
            raise ValueError(f"{cls.__name__.lower()}: reduction over an empty tensor")
        dim = _numpy_dim(dim, x.ndim)
        out = cls.reduce(x, axis=dim, keepdims=keepdim)
        ctx.save_for_backward(x, out)
        ctx.dim, ctx.keepdim = dim, keepdim
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        mask = x == _keep(out, x.shape, ctx.dim, ctx.keepdim)
        share = mask / mask.sum(axis=ctx.dim, keepdims=True)
        return _keep(grad, x.shape, ctx.dim, ctx.keepdim) * share


class AMax(_Extreme):
    reduce = staticmethod(np.max)


class AMin(_Extreme):
    reduce = staticmethod(np.min)


class TakeAlongDim(Function):
    """Values at given indices along one dimension (max/min with dim); the gradient goes back there."""

    @staticmethod
    def forward(ctx, x, indices, dim, keepdim=True):
        ctx.save_for_backward(indices)
        ctx.shape, ctx.dim, ctx.keepdim = x.shape, dim, keepdim
        out = np.take_along_axis(x, indices, axis=dim)
        return out if keepdim else out.squeeze(dim)

    @staticmethod
    def backward(ctx, grad):
        (indices,) = ctx.saved_tensors
        g = grad if ctx.keepdim else np.expand_dims(grad, ctx.dim)
        out = np.zeros(ctx.shape, dtype=grad.dtype)
        np.put_along_axis(out, indices, g, axis=ctx.dim)
        return out, None        # none for the indices


MaxMin = namedtuple("MaxMin", ["values", "indices"])


def max_min(x, dim, keepdim, aliases, kind: str):
    """`x.max()` (all elements), `x.max(dim)` -> (values, indices), or `x.max(other)` (elementwise)."""
    from ..tensor import Tensor, _reduce_args, _wrap
    from .elementwise import Maximum, Minimum
    if isinstance(dim, Tensor):
        return (Maximum if kind == "max" else Minimum).apply(x, dim)
    dim, keepdim = _reduce_args(dim, keepdim, aliases)
    if dim is None or x.ndim == 0:   # a 0-d tensor's max over dim 0 is itself, at index 0
        values = (AMax if kind == "max" else AMin).apply(x, dim=dim, keepdim=keepdim)
        return values if dim is None else MaxMin(values, _wrap(np.zeros((), dtype=np.int64)))
    if x.data.shape[dim] == 0:
        raise ValueError(f"{kind}(): dimension {dim} of shape {x.shape} is empty")
    indices = (np.argmax if kind == "max" else np.argmin)(x.data, axis=dim, keepdims=True)
    values = TakeAlongDim.apply(x, indices, dim=dim, keepdim=keepdim)
    return MaxMin(values, _wrap(indices if keepdim else indices.squeeze(dim)))


def arg_reduce(fn, x, dim, keepdim, aliases):
    from ..tensor import _reduce_args, _wrap
    dim, keepdim = _reduce_args(dim, keepdim, aliases)
    if dim is None:
        return _wrap(np.asarray(fn(x.data), dtype=np.int64))
    return _wrap(fn(x.data, axis=dim, keepdims=keepdim).astype(np.int64, copy=False))


def _stable_max(x: np.ndarray, dim) -> np.ndarray:
    m = np.max(x, axis=dim, keepdims=True)
    return np.where(np.isfinite(m), m, 0)   # rows of -inf stay -inf instead of becoming NaN


class LogSumExp(Function):
    @staticmethod
    def forward(ctx, x, dim=None, keepdim=False):
        dim = _numpy_dim(dim, x.ndim)
        m = _stable_max(x, dim)
        out = np.log(np.exp(x - m).sum(axis=dim, keepdims=True)) + m
        ctx.save_for_backward(x, out)
        ctx.dim, ctx.keepdim = dim, keepdim
        return out if keepdim else np.squeeze(out, axis=dim)

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        return _keep(grad, x.shape, ctx.dim, ctx.keepdim) * np.exp(x - out)   # grad * softmax


# exp(x) / sum(exp(x)) is softmax(x) without the shift by the maximum along the axis, as long as
# no exp overflowed and no sum underflowed, which the sums tell: in [tiny^(1/4), max] nothing
# overflowed and the largest term is far from the subnormals. Skipping the maximum and the
# subtraction saves two passes of four (cross-entropy on (1024, 1000) float32 logits: 1.47 ->
# 0.65 ms; attention weights: 1.12 -> 0.64 ms with the q k^T product).
_EXP_SUM_RANGE = {c: (float(np.finfo(c).tiny) ** 0.25, float(np.finfo(c).max)) for c in "efd"}


def unshifted_exp_sums(x: np.ndarray, out: np.ndarray, axis: int) -> np.ndarray | None:
    """exp(x) into `out` (x itself allowed) and its sums along `axis` (keepdims), or None when the
    sums show that softmax must be taken the shifted way (an overflow, an underflowing or empty
    row, NaN: NaN fails both bounds)."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        np.exp(x, out=out)
        sums = axis_sums(out, axis)
    lo, hi = _EXP_SUM_RANGE.get(x.dtype.char, (np.inf, 0.0))
    return sums if lo <= sums.min() and sums.max() <= hi else None


class Softmax(Function):
    @staticmethod
    def forward(ctx, x, dim=-1):
        e = np.exp(x - _stable_max(x, dim))
        out = e / e.sum(axis=dim, keepdims=True)
        ctx.save_for_backward(out)
        ctx.dim = dim
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        # Jacobian-vector product of softmax: s * (g - <g, s>)
        return out * (grad - (grad * out).sum(axis=ctx.dim, keepdims=True))


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx, x, dim=-1):
        shifted = x - _stable_max(x, dim)
        out = shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))
        ctx.save_for_backward(out)
        ctx.dim = dim
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad - np.exp(out) * grad.sum(axis=ctx.dim, keepdims=True)
