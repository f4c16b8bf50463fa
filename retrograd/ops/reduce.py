"""Reductions (sum, mean, var, max/min, logsumexp, prod, norm) and the softmax family, numerically
stable."""
from __future__ import annotations

import math
from collections import namedtuple
from typing import Any

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
    """Values at given indices along one dimension (max/min with dim, sort, topk); the gradient
    goes back there. `keepdim=False` drops `dim` from the result and takes indices without it
    (one per slice, as max(dim) returns them)."""

    @staticmethod
    def forward(ctx, x, indices, dim, keepdim=True):
        if not keepdim:
            indices = np.expand_dims(indices, dim)
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
    indices = ArgExtreme.apply(x, dim=dim, keepdim=keepdim, smallest=kind == "min")
    return MaxMin(TakeAlongDim.apply(x, indices, dim=dim, keepdim=keepdim), indices)


class ArgExtreme(Function):
    """Indices of the largest (or smallest) elements along `dim`, of all elements for None; int64,
    no gradient. An op rather than a NumPy call on `.data`, so that a compiled step (rg.compile)
    finds them again at every replay: a DQN's `max(1).values` picks each call's maxima."""

    @staticmethod
    def forward(ctx, x, dim=None, keepdim=False, smallest=False):
        find = np.argmin if smallest else np.argmax
        if dim is None:
            return np.asarray(find(x), dtype=np.int64)
        return find(x, axis=dim, keepdims=keepdim).astype(np.int64, copy=False)

    @staticmethod
    def backward(ctx, grad):
        return None


def arg_reduce(fn, x, dim, keepdim, aliases):
    from ..tensor import _reduce_args
    dim, keepdim = _reduce_args(dim, keepdim, aliases)
    return ArgExtreme.apply(x, dim=dim, keepdim=keepdim, smallest=fn is np.argmin)


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


def _others_product(x: np.ndarray, axes: tuple) -> np.ndarray:
    """For each element, the product of the other elements of its slice over `axes`: exclusive
    cumulative products from either end, multiplied (exact with any number of zeros, no
    division)."""
    rest = [i for i in range(x.ndim) if i not in axes]
    moved = np.transpose(x, rest + list(axes))
    flat = moved.reshape(moved.shape[:len(rest)] + (-1,))
    ones = np.ones(flat.shape[:-1] + (1,), x.dtype)
    left = np.concatenate([ones, np.cumprod(flat[..., :-1], axis=-1)], axis=-1)
    right = np.concatenate([np.cumprod(flat[..., :0:-1], axis=-1)[..., ::-1], ones], axis=-1)
    return np.transpose((left * right).reshape(moved.shape), np.argsort(rest + list(axes)))


class Prod(Function):
    """Product of elements. d(prod)/dx_i is the product of the other elements: out / x_i when no
    element is zero, and from exclusive cumulative products otherwise (as PyTorch does)."""

    @staticmethod
    def forward(ctx, x, dim=None, keepdim=False):
        dim = _numpy_dim(dim, x.ndim)
        _axes(dim, x.ndim)      # a dimension out of range is an IndexError naming it
        out = np.prod(x, axis=dim, keepdims=keepdim)   # int32 and bool give int64, as in PyTorch
        ctx.save_for_backward(x, out)
        ctx.dim, ctx.keepdim = dim, keepdim
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        g = _keep(grad, x.shape, ctx.dim, ctx.keepdim)
        if x.ndim == 0:
            return grad
        if x.size == 0 or not (x == 0).any():
            return g * (_keep(out, x.shape, ctx.dim, ctx.keepdim) / x)
        return g * _others_product(x, _axes(ctx.dim, x.ndim))


def prod(x, dim=None, keepdim: bool = False, aliases: dict | None = None):
    """Product of all elements, or along one dimension (`dim` an int, as torch.prod).

    >>> rg.tensor([[1.0, 2.0], [3.0, 4.0]]).prod(dim=1)     # tensor([ 2., 12.])
    """
    from ..tensor import _reduce_args
    dim, keepdim = _reduce_args(dim, keepdim, aliases or {})
    if dim is not None and not isinstance(dim, (int, np.integer)):
        raise TypeError(f"prod: dim must be an int or None, got {dim!r}")
    return Prod.apply(x, dim=dim, keepdim=keepdim)


class Norm(Function):
    """The vector p-norm over `dim` (PyTorch's linalg.vector_norm), with PyTorch's gradients: zero
    where the norm is zero (p >= 1) or the element is zero (p < 1), the gradient of the max-norm
    shared evenly among tied elements."""

    @staticmethod
    def forward(ctx, x, p=2.0, dim=None, keepdim=False):
        dim = _numpy_dim(dim, x.ndim)
        _axes(dim, x.ndim)
        if p == 2:
            out = np.sqrt(np.add.reduce(x * x, dim, keepdims=keepdim))
        elif p == 1:
            out = np.add.reduce(np.abs(x), dim, keepdims=keepdim)
        elif p == 0:
            out = np.add.reduce(x != 0, dim, dtype=x.dtype, keepdims=keepdim)
        elif math.isinf(p):
            if x.size == 0:
                raise ValueError(f"norm: the {p} norm of an empty tensor (shape {x.shape}) is not "
                                 "defined: the reduction has no identity")
            out = (np.max if p > 0 else np.min)(np.abs(x), axis=dim, keepdims=keepdim)
        else:
            out = np.add.reduce(np.abs(x) ** p, dim, keepdims=keepdim) ** (1 / p)
        ctx.save_for_backward(x, out)
        ctx.p, ctx.dim, ctx.keepdim = p, dim, keepdim
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        p, dim = ctx.p, ctx.dim
        g = _keep(grad, x.shape, dim, ctx.keepdim)
        norm = _keep(out, x.shape, dim, ctx.keepdim)
        if p == 0:
            return None     # a count: no gradient (PyTorch leaves it undefined too)
        if p == 1:
            return g * np.sign(x)
        if math.isinf(p):
            a = np.abs(x)
            mask = (a == norm) | np.isnan(a)
            return np.sign(x) * mask * (g / mask.sum(axis=dim, keepdims=True))
        with np.errstate(divide="ignore", invalid="ignore"):
            if p == 2:
                return x * np.where(norm == 0, 0, g / norm)
            a = np.abs(x)
            if p < 1:
                return (np.sign(x) * np.where(x == 0, 0, a ** (p - 1))) * (g * norm ** (1 - p))
            scale = np.where(norm == 0, 0, g / norm ** (p - 1))
            return (np.sign(x) * a ** (p - 1) if p < 2 else x * a ** (p - 2)) * scale


def norm(x, p: Any = 2, dim=None, keepdim: bool = False):
    """The p-norm of the elements over `dim` (all of them by default): p in {1, 2, inf, -inf, 0} or
    any other number, or "fro" (the 2-norm over at most two dimensions), as torch.norm.

    >>> rg.tensor([[3.0, 4.0], [0.0, 0.0]]).norm(dim=1)      # tensor([5., 0.])
    """
    if isinstance(dim, list):
        dim = tuple(dim)
    if isinstance(p, str):
        if p != "fro":
            raise ValueError(f"norm: p={p!r} is not supported; use a number or 'fro'")
        if isinstance(dim, tuple) and len(dim) > 2:
            raise ValueError(f"norm: p='fro' takes at most 2 dimensions, got dim={dim}")
        p = 2
    if not isinstance(p, (int, float, np.integer, np.floating)) or isinstance(p, bool):
        raise TypeError(f"norm: p must be a number or 'fro', got {p!r}")
    if np.dtype(x.dtype).kind != "f":
        raise RuntimeError(f"norm: expected a floating-point tensor, got dtype {x.dtype} (convert "
                           "it with .float() first)")
    return Norm.apply(x, p=float(p), dim=dim, keepdim=bool(keepdim))
