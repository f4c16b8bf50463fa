"""Matrix products: matmul (1-D, 2-D, batched N-D) and the fused affine map of a Linear layer."""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Function


def _check_matmul(a: np.ndarray, b: np.ndarray) -> None:
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both arguments need at least 1 dimension, got shapes "
                         f"{a.shape} and {b.shape}")
    inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if a.shape[-1] != inner_b:
        raise ValueError(f"matmul: cannot multiply {a.shape} by {b.shape} "
                         f"({a.shape[-1]} != {inner_b})")


def _mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b. For 2-D arrays laid out for BLAS (C or Fortran order, as W.T is) `ndarray.dot`
    makes the same GEMM call, bit for bit, without the ufunc dispatch of `@`, which costs more
    than the product itself on small matrices. Strided views keep `@`: there the two may round
    differently."""
    if a.ndim == 2 and b.ndim == 2 and a.flags.forc and b.flags.forc:
        return a.dot(b)
    return a @ b


_ONES: dict = {}    # (n, dtype) -> a read-only vector of n ones


def ones_vector(n: int, dtype: np.dtype) -> np.ndarray:
    """A read-only vector of n ones, cached: `a @ ones` sums a's rows, `ones @ a` its columns, as
    one BLAS matrix-vector product (no temporary, and faster than ufunc reductions along short
    rows or down columns)."""
    key = (n, dtype)
    ones = _ONES.get(key)
    if ones is None:
        if len(_ONES) > 64:
            _ONES.clear()
        ones = _ONES[key] = np.ones(n, dtype)
        ones.flags.writeable = False
    return ones


def axis_sums(a: np.ndarray, axis: int) -> np.ndarray:
    """a.sum(axis, keepdims=True); along the last axis of a C-contiguous float array as one
    matrix-vector product with ones (~8x faster than the ufunc reduction on rows of 64)."""
    n = a.shape[axis]
    if axis not in (-1, a.ndim - 1) or not a.flags.c_contiguous or a.dtype.char not in "fd":
        return a.sum(axis=axis, keepdims=True)
    return (a.reshape(-1, n) @ ones_vector(n, a.dtype)).reshape(a.shape[:-1] + (1,))


def _sum_rows(g: np.ndarray) -> np.ndarray:
    """g.sum(0) of a 2-D array; for float32/float64 a product with a vector of ones. NumPy's
    reduction down axis 0 adds the rows one after another, BLAS in blocks: both faster and closer
    (1024 x 384 float32: 54 -> 22 us, largest error 1.3e-4 -> 2.7e-5 against a float64 sum; on 4 x 2,
    0.3 vs 1.2 us)."""
    if g.dtype.char not in "fd":
        return np.add.reduce(g, 0)
    return ones_vector(g.shape[0], g.dtype).dot(g)


class MatMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        _check_matmul(a, b)
        ctx.save_for_backward(a, b)
        try:
            return a @ b
        except ValueError as e:  # batch dimensions that do not broadcast
            raise ValueError(f"matmul: cannot multiply {a.shape} by {b.shape}: {e}") from None

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        grad_a = grad_b = None
        if a.ndim == 1 and b.ndim == 1:          # dot product
            return (grad * b if need_a else None), (grad * a if need_b else None)
        if a.ndim == 1:                          # (k) @ (..., k, m) -> (..., m)
            g = grad[..., None, :]
            if need_a:
                grad_a = (g @ np.swapaxes(b, -1, -2))[..., 0, :]
            if need_b:
                grad_b = a[:, None] * g
        elif b.ndim == 1:                        # (..., n, k) @ (k) -> (..., n)
            g = grad[..., :, None]
            if need_a:
                grad_a = g * b
            if need_b:
                grad_b = (np.swapaxes(a, -1, -2) @ g)[..., 0]
        else:
            if need_a:
                grad_a = grad @ np.swapaxes(b, -1, -2)
            if need_b:
                grad_b = np.swapaxes(a, -1, -2) @ grad
        return grad_a, grad_b


class Linear(Function):
    """y = x W^T + b with W of shape (out, in), as nn.Linear stores it; one GEMM each way. Batch
    dimensions are folded into the rows first: one (N, in) @ (in, out) product is faster than a
    stack of them (about 1.1-1.7x on a Transformer's (16, 64, 128) activations)."""

    @staticmethod
    def forward(ctx, x, weight, bias=None):
        if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
            raise ValueError(f"linear: input of shape {x.shape} does not match weight of shape "
                             f"{weight.shape} (expected last dimension {weight.shape[1]})")
        ctx.save_for_backward(x, weight)
        # ndarray.dot: the GEMM without the ufunc dispatch of `@` (see _mm); an operand that is
        # not laid out for BLAS is copied into one that is, never multiplied by a slow loop
        if x.ndim == 2:
            out = x.dot(weight.T)
        else:
            rows = x.reshape(math.prod(x.shape[:-1]), x.shape[-1])
            out = rows.dot(weight.T).reshape(x.shape[:-1] + weight.shape[:1])
        if bias is not None:
            out += bias
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        if grad.ndim != 2:       # fold batch dimensions: dW and db sum over every sample
            grad = grad.reshape(math.prod(grad.shape[:-1]), grad.shape[-1])
            x2 = x.reshape(grad.shape[0], x.shape[-1])
            grad_x = grad.dot(weight).reshape(x.shape) if needs[0] else None
        else:
            x2 = x
            grad_x = grad.dot(weight) if needs[0] else None
        grad_w = grad.T.dot(x2) if needs[1] else None
        if len(needs) == 2:
            return grad_x, grad_w
        return grad_x, grad_w, (_sum_rows(grad) if needs[2] else None)


def matmul(a, b):
    """Matrix product with NumPy/PyTorch semantics (1-D, 2-D and broadcast batched N-D)."""
    return MatMul.apply(a, b)


def linear(x, weight, bias=None):
    """x @ weight.T + bias, fused: the op behind nn.Linear."""
    return Linear.apply(x, weight, bias) if bias is not None else Linear.apply(x, weight)
