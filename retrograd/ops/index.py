"""Indexing and joining: __getitem__, cat, stack, split/chunk, pad, index assignment."""
from __future__ import annotations

import numpy as np

from ..autograd import Function


def _normalize_index(index):
    """Turn Tensors and lists inside an index into arrays; report whether it is advanced indexing."""
    from ..tensor import Tensor
    items = index if isinstance(index, tuple) else (index,)
    out, advanced, integer_arrays = [], False, False
    for item in items:
        if isinstance(item, Tensor):
            item = item.data
        elif isinstance(item, list):
            item = np.asarray(item)
        if isinstance(item, np.ndarray):
            if item.dtype.kind not in "iub":
                raise IndexError(f"index arrays must be integer or bool, got {item.dtype}")
            advanced = True
            integer_arrays |= item.dtype.kind != "b"
        out.append(item)
    return (tuple(out) if isinstance(index, tuple) else out[0]), advanced, integer_arrays


class BasicIndex(Function):
    """Ints, slices, None and Ellipsis: a view; backward writes the gradient into zeros."""

    returns_view = True

    @staticmethod
    def forward(ctx, x, index):
        ctx.shape, ctx.index = x.shape, index
        try:
            return x[index]
        except IndexError as e:
            raise IndexError(f"getitem: index {index!r} is invalid for shape {x.shape}: {e}") from None

    @staticmethod
    def backward(ctx, grad):
        out = np.zeros(ctx.shape, dtype=grad.dtype)
        out[ctx.index] = grad
        return out


class AdvancedIndex(Function):
    """Integer or boolean arrays: a copy. Repeated integer indices accumulate their gradients.

    The index arrays are inputs of the op, not part of a constant: `template` is the index with
    each array's place (listed in `positions`) held by 0. So a compiled step (rg.compile) indexes
    with each call's arrays, e.g. a DQN's `q[rg.arange(n), actions]` with new actions."""

    @staticmethod
    def forward(ctx, x, *arrays, template, positions, accumulate):
        index = list(template)
        for i, a in zip(positions, arrays):
            index[i] = a
        index = tuple(index)
        ctx.shape, ctx.index, ctx.accumulate, ctx.n_arrays = x.shape, index, accumulate, len(arrays)
        try:
            return x[index]
        except IndexError as e:
            raise IndexError(f"getitem: index is invalid for shape {x.shape}: {e}") from None

    @staticmethod
    def backward(ctx, grad):
        out = np.zeros(ctx.shape, dtype=grad.dtype)
        if ctx.accumulate:
            np.add.at(out, ctx.index, grad)
        else:                       # boolean masks select each element at most once
            out[ctx.index] = grad
        return (out,) + (None,) * ctx.n_arrays


def getitem(x, index):
    normalized, advanced, integer_arrays = _normalize_index(index)
    if not advanced:
        return BasicIndex.apply(x, index=normalized)
    items = normalized if isinstance(normalized, tuple) else (normalized,)
    positions = tuple(i for i, item in enumerate(items) if isinstance(item, np.ndarray))
    # index tensors go in as tensors, so that a compiled step names them; lists became arrays
    originals = index if isinstance(index, tuple) else (index,)
    arrays = [originals[i] if _is_tensor(originals[i]) else items[i] for i in positions]
    template = tuple(0 if i in positions else item for i, item in enumerate(items))
    return AdvancedIndex.apply(x, *arrays, template=template, positions=positions,
                               accumulate=integer_arrays)


def _is_tensor(value) -> bool:
    from ..tensor import Tensor
    return isinstance(value, Tensor)


class IndexPut(Function):
    """out = x with out[index] = value: the out-of-place form behind `x[index] = value`."""

    @staticmethod
    def forward(ctx, x, value, index):
        ctx.index, ctx.value_shape = index, np.shape(value)
        out = x.copy()
        out[index] = value
        return out

    @staticmethod
    def backward(ctx, grad):
        grad_x = grad_value = None
        if ctx.needs_input_grad[0]:
            grad_x = grad.copy()
            grad_x[ctx.index] = 0
        if ctx.needs_input_grad[1]:
            grad_value = grad[ctx.index]
        return grad_x, grad_value


class Cat(Function):
    @staticmethod
    def forward(ctx, *arrays, dim=0):
        _check_same_rank("cat", arrays)
        ctx.dim = dim
        ctx.offsets = np.cumsum([a.shape[dim] for a in arrays])[:-1]
        try:
            return np.concatenate(arrays, axis=dim)
        except ValueError:
            shapes = ", ".join(str(a.shape) for a in arrays)
            raise ValueError(f"cat: shapes {shapes} differ outside dimension {dim}") from None

    @staticmethod
    def backward(ctx, grad):
        return tuple(np.split(grad, ctx.offsets, axis=ctx.dim))


class Stack(Function):
    @staticmethod
    def forward(ctx, *arrays, dim=0):
        _check_same_rank("stack", arrays)
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1:
            raise ValueError(f"stack: all tensors must have the same shape, got "
                             f"{', '.join(str(a.shape) for a in arrays)}")
        ctx.dim = dim
        return np.stack(arrays, axis=dim)

    @staticmethod
    def backward(ctx, grad):
        moved = np.moveaxis(grad, ctx.dim, 0)
        return tuple(moved[i] for i in range(moved.shape[0]))


def _check_same_rank(op, arrays):
    if not arrays:
        raise ValueError(f"{op}: expected a non-empty sequence of tensors")


def cat(tensors, dim: int = 0, axis: int | None = None):
    """Join tensors along an existing dimension (`dim`; NumPy's `axis` also accepted)."""
    return Cat.apply(*tensors, dim=dim if axis is None else axis)


def stack(tensors, dim: int = 0, axis: int | None = None):
    """Join tensors along a new dimension."""
    return Stack.apply(*tensors, dim=dim if axis is None else axis)


def split(x, split_size_or_sections, dim: int = 0):
    """Views of consecutive pieces: equal `split_size` pieces (the last may be smaller) or given sizes."""
    n = x.shape[dim]
    if isinstance(split_size_or_sections, int):
        if split_size_or_sections <= 0:
            raise ValueError(f"split: split_size must be positive, got {split_size_or_sections}")
        sizes = [split_size_or_sections] * (n // split_size_or_sections)
        if n % split_size_or_sections:
            sizes.append(n % split_size_or_sections)
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise ValueError(f"split: sizes {sizes} do not add up to {n} (dimension {dim} of "
                             f"shape {x.shape})")
    dim = dim % x.ndim
    pieces, start = [], 0
    for size in sizes:
        index = (slice(None),) * dim + (slice(start, start + size),)
        pieces.append(BasicIndex.apply(x, index=index))
        start += size
    return tuple(pieces)


def chunk(x, chunks: int, dim: int = 0):
    n = x.shape[dim]
    return split(x, -(-n // chunks) if n else 1, dim)


class Pad(Function):
    @staticmethod
    def forward(ctx, x, widths, value=0.0):
        ctx.slices = tuple(slice(lo, lo + n) for (lo, _), n in zip(widths, x.shape))
        return np.pad(x, widths, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx, grad):
        return grad[ctx.slices]


def pad(x, pad: tuple, mode: str = "constant", value: float = 0.0):
    """Constant padding with PyTorch's `pad` order: (left, right) of the last dim, then the one before...

    >>> rg.pad(x, (1, 1))          # one zero on each side of the last dimension
    """
    if mode != "constant":
        raise NotImplementedError(f"pad: mode {mode!r} is not supported (only 'constant')")
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: padding {tuple(pad)} must be pairs for at most {x.ndim} dimensions")
    if any(p < 0 for p in pad):
        raise ValueError(f"pad: negative padding {tuple(pad)} is not supported")
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    return Pad.apply(x, widths=tuple(widths), value=value)
