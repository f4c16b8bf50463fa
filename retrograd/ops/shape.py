"""Shape ops: reshape/view, permute/transpose, expand/broadcast_to, repeat/tile, squeeze/unsqueeze.

Reshape, permute and expand return NumPy views of their input (as PyTorch's views share storage);
their backward undoes the rearrangement on the gradient.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function


def broadcasts_to(shape: tuple, target: tuple) -> bool:
    """Whether an array of `shape` broadcasts to exactly `target` (not to something larger)."""
    try:
        return np.broadcast_shapes(shape, target) == tuple(target)
    except ValueError:
        return False


def _resolve_shape(shape: tuple, size: int, op: str, in_shape: tuple) -> tuple:
    shape = tuple(int(s) for s in shape)
    if shape.count(-1) > 1:
        raise ValueError(f"{op}: only one dimension can be -1, got {shape}")
    known = int(np.prod([s for s in shape if s != -1]))
    if -1 in shape:
        if known == 0 or size % known:
            raise ValueError(f"{op}: shape {shape} is invalid for input of shape {in_shape} "
                             f"({size} elements)")
        shape = tuple(size // known if s == -1 else s for s in shape)
    elif known != size:
        raise ValueError(f"{op}: shape {shape} is invalid for input of shape {in_shape} "
                         f"({size} elements)")
    return shape


class Reshape(Function):
    returns_view = True

    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        return x.reshape(_resolve_shape(shape, x.size, "reshape", x.shape))

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.shape)


class Permute(Function):
    returns_view = True

    @staticmethod
    def forward(ctx, x, dims):
        if sorted(d % max(x.ndim, 1) for d in dims) != list(range(x.ndim)):
            raise ValueError(f"permute: dims {tuple(dims)} are not a permutation of the "
                             f"{x.ndim} dimensions of shape {x.shape}")
        ctx.dims = dims
        return x.transpose(dims)

    @staticmethod
    def backward(ctx, grad):
        return grad.transpose(np.argsort([d % grad.ndim for d in ctx.dims]))


class Expand(Function):
    returns_view = True

    @staticmethod
    def forward(ctx, x, shape):
        try:
            return np.broadcast_to(x, shape)
        except ValueError:
            raise ValueError(f"expand: cannot expand shape {x.shape} to {shape}") from None

    @staticmethod
    def backward(ctx, grad):
        return grad    # the engine sums broadcast dimensions back


class Tile(Function):
    """PyTorch's `repeat` (NumPy's `tile`): copies of the whole tensor along each dimension."""

    @staticmethod
    def forward(ctx, x, reps):
        if len(reps) < x.ndim:
            raise ValueError(f"repeat: {len(reps)} repeat counts for a tensor of {x.ndim} "
                             f"dimensions (shape {x.shape}); give at least one per dimension")
        ctx.in_shape = (1,) * (len(reps) - x.ndim) + x.shape
        ctx.shape, ctx.reps = x.shape, reps
        return np.tile(x, reps)

    @staticmethod
    def backward(ctx, grad):
        # Split every axis into (copy, original) and sum over the copies.
        split = []
        for r, n in zip(ctx.reps, ctx.in_shape):
            split += [r, n]
        summed = grad.reshape(split).sum(axis=tuple(range(0, len(split), 2)))
        return summed.reshape(ctx.shape)


def transpose(x, dim0: int, dim1: int):
    dims = list(range(x.ndim))
    dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
    return Permute.apply(x, dims=tuple(dims))


def flatten(x, start_dim: int = 0, end_dim: int = -1):
    if x.ndim == 0:
        return Reshape.apply(x, shape=(1,))
    start, end = start_dim % x.ndim, end_dim % x.ndim
    shape = x.shape[:start] + (-1,) + x.shape[end + 1:]
    return Reshape.apply(x, shape=shape)


def squeeze(x, dim=None):
    if dim is None:
        shape = tuple(s for s in x.shape if s != 1)
    else:
        dims = {d % max(x.ndim, 1) for d in (dim if isinstance(dim, tuple) else (dim,))}
        shape = tuple(s for i, s in enumerate(x.shape) if not (i in dims and s == 1))
    return Reshape.apply(x, shape=shape)


def unsqueeze(x, dim: int):
    if not -x.ndim - 1 <= dim <= x.ndim:
        raise IndexError(f"unsqueeze: dim {dim} out of range for a tensor of {x.ndim} dimensions")
    dim = dim % (x.ndim + 1)
    return Reshape.apply(x, shape=x.shape[:dim] + (1,) + x.shape[dim:])


def expand(x, shape: tuple):
    """Broadcast to `shape`; -1 keeps a dimension's size (PyTorch's expand)."""
    lead = len(shape) - x.ndim
    if lead < 0:
        raise ValueError(f"expand: target {tuple(shape)} has fewer dimensions than {x.shape}")
    if -1 in shape[:lead]:   # a new dimension has no size to keep
        raise ValueError(f"expand: -1 is not allowed in a new leading dimension, as in "
                         f"{tuple(shape)} for shape {x.shape}")
    shape = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(shape))
    return Expand.apply(x, shape=shape)
