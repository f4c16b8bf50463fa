"""Normalisation ops (batch norm, layer norm), fused: one forward pass and a closed-form backward.

With x_hat = (x - mean) / sqrt(var + eps) over N elements, y = w * x_hat + b, the input gradient is
    dx = inv_std / N * (N * dx_hat - sum(dx_hat) - x_hat * sum(dx_hat * x_hat)),  dx_hat = dy * w,
which saves the cost (and the graph) of differentiating mean and variance op by op.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function


class _Normalize(Function):
    """Normalise x over `axes` and apply a per-feature affine map whose parameters have `param_shape`
    once broadcast (their own shape is whatever weight/bias have)."""

    @staticmethod
    def forward(ctx, x, weight, bias, axes, param_shape, eps):
        mean = x.mean(axis=axes, keepdims=True)
        centered = x - mean
        var = (centered * centered).mean(axis=axes, keepdims=True)
        inv_std = 1.0 / np.sqrt(var + eps)
        x_hat = centered * inv_std
        ctx.save_for_backward(x_hat, inv_std, weight)
        ctx.axes, ctx.param_shape = axes, param_shape
        ctx.batch_mean, ctx.batch_var = mean, var   # read by BatchNorm for its running statistics
        out = x_hat
        if weight is not None:
            out = out * weight.reshape(param_shape)
        if bias is not None:
            out = out + bias.reshape(param_shape)
        return out

    @staticmethod
    def backward(ctx, grad):
        x_hat, inv_std, weight = ctx.saved_tensors
        axes, param_shape = ctx.axes, ctx.param_shape
        need_x, need_w, need_b = ctx.needs_input_grad
        param_axes = tuple(i for i, n in enumerate(param_shape) if n == 1)
        grad_w = grad_b = grad_x = None
        if need_w:
            grad_w = (grad * x_hat).sum(axis=param_axes).reshape(weight.shape)
        if need_b:
            grad_b = grad.sum(axis=param_axes).reshape(-1 if weight is None else weight.shape)
        if need_x:
            g_hat = grad if weight is None else grad * weight.reshape(param_shape)
            n = x_hat.size // inv_std.size
            grad_x = (inv_std / n) * (n * g_hat - g_hat.sum(axis=axes, keepdims=True)
                                      - x_hat * (g_hat * x_hat).sum(axis=axes, keepdims=True))
        return grad_x, grad_w, grad_b


def batch_norm_train(x, weight, bias, eps: float):
    """Batch norm with batch statistics over every axis but the channel axis 1.

    Returns (output, batch_mean, batch_var) with the biased variance; the caller updates running stats.
    """
    axes = (0,) + tuple(range(2, x.ndim))
    param_shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    out = _Normalize.apply(x, weight, bias, axes=axes, param_shape=param_shape, eps=eps)
    node = out.grad_fn
    if node is None:  # not recorded (no_grad): statistics were not kept, recompute them cheaply
        mean = x.data.mean(axis=axes, keepdims=True)
        return out, mean, ((x.data - mean) ** 2).mean(axis=axes, keepdims=True)
    return out, node.batch_mean, node.batch_var


def layer_norm(x, normalized_shape: tuple, weight=None, bias=None, eps: float = 1e-5):
    """Normalise over the trailing `normalized_shape` dimensions (PyTorch's F.layer_norm)."""
    k = len(normalized_shape)
    if tuple(x.shape[-k:]) != tuple(normalized_shape):
        raise ValueError(f"layer_norm: input of shape {tuple(x.shape)} does not end with the "
                         f"normalized shape {tuple(normalized_shape)}")
    axes = tuple(range(x.ndim - k, x.ndim))
    param_shape = (1,) * (x.ndim - k) + tuple(normalized_shape)
    return _Normalize.apply(x, weight, bias, axes=axes, param_shape=param_shape, eps=eps)
