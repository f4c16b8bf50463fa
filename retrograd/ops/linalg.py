"""Matrix products: matmul (1-D, 2-D, batched N-D) and the fused affine map of a Linear layer."""
from __future__ import annotations

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
    """y = x W^T + b with W of shape (out, in), as nn.Linear stores it; one GEMM each way."""

    @staticmethod
    def forward(ctx, x, weight, bias=None):
        if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
            raise ValueError(f"linear: input of shape {x.shape} does not match weight of shape "
                             f"{weight.shape} (expected last dimension {weight.shape[1]})")
        ctx.save_for_backward(x, weight)
        out = _mm(x, weight.T)
        if bias is not None:
            out += bias
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grad_x = _mm(grad, weight) if needs[0] else None
        if grad.ndim != 2:       # fold batch dimensions: dW and db sum over every sample
            grad, x = grad.reshape(-1, grad.shape[-1]), x.reshape(-1, x.shape[-1])
        grad_w = _mm(grad.T, x) if needs[1] else None
        if len(needs) == 2:
            return grad_x, grad_w
        # np.add.reduce is what ndarray.sum calls, minus a Python wrapper
        return grad_x, grad_w, (np.add.reduce(grad, 0) if needs[2] else None)


def matmul(a, b):
    """Matrix product with NumPy/PyTorch semantics (1-D, 2-D and broadcast batched N-D)."""
    return MatMul.apply(a, b)


def linear(x, weight, bias=None):
    """x @ weight.T + bias, fused: the op behind nn.Linear."""
    return Linear.apply(x, weight, bias) if bias is not None else Linear.apply(x, weight)
