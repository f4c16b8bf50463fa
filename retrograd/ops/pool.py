"""Pooling and resizing: max_pool1d/2d, avg_pool2d, adaptive_avg_pool2d, interpolate (nearest).

Max and average pooling loop over the kh*kw kernel offsets, each a vectorised operation on a strided
slice of the whole batch (the slice of every window's (i, j)-th element), never over pixels. The
same loop, run backwards with slice-adds, scatters the gradient. Arrays keep the memory layout of
their input (channels-last after a conv), so no transposing copies are made. Once-differentiable.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Function
from .conv import (as_image, channels_last, check_input, image_like, like, ntuple, pad, unpad,
                   window_slices, zeros_image)


def _offsets(kernel: tuple, out: tuple, stride: tuple, dilation: tuple):
    """(k, rows, cols) for each kernel offset: the image slices holding every window's k-th
    element, in row-major window order (PyTorch's scan order, which decides ties)."""
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            yield (i * kernel[1] + j,) + window_slices(i, j, out, stride, dilation)


class MaxPool(Function):
    """Maximum over each window. Backward sends the gradient to the window's first maximum (NaN
    counts as the maximum, the last NaN winning), as PyTorch does."""

    @staticmethod
    def forward(ctx, x, kernel, stride, pads, dilation, out, dims):
        x4 = x.reshape(as_image(x.shape, dims))
        low = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
        xp = pad(x4, pads, low)
        slices = list(_offsets(kernel, out, stride, dilation))
        _, rows, cols = slices[0]
        y = xp[:, :, rows, cols].copy(order="K")
        need = ctx.needs_input_grad[0]
        if need:   # which offset holds the maximum; plain arithmetic (masked `where=` is slow)
            index = np.zeros_like(y, dtype=np.uint8 if len(slices) < 256 else np.int32)
            step = np.empty_like(index)
        for k, rows, cols in slices[1:]:
            v = xp[:, :, rows, cols]
            if need:   # strict >: a tie keeps the first maximum; k exceeds every earlier index
                np.multiply(v > y, index.dtype.type(k), out=step)
                np.maximum(index, step, out=index)
            np.maximum(y, v, out=y)                  # propagates NaN
        if need:
            if y.dtype.kind == "f" and np.isnan(y).any():    # rare: the last NaN is the maximum
                for k, rows, cols in slices:
                    np.copyto(index, k, where=np.isnan(xp[:, :, rows, cols]))
            ctx.index = index
            ctx.args = (x.shape, x4.shape, xp.shape, kernel, stride, pads, dilation, out)
        return y.reshape(image_like(y.shape, dims, x.ndim > dims + 1))

    @staticmethod
    def backward(ctx, grad):
        x_shape, shape4, padded, kernel, stride, pads, dilation, out = ctx.args
        index = ctx.index
        g = like(grad.reshape(index.shape), index)
        dxp = np.zeros_like(index, dtype=grad.dtype, shape=padded)
        overlap = any(s < d * (k - 1) + 1 for k, s, d in zip(kernel, stride, dilation))
        for k, rows, cols in _offsets(kernel, out, stride, dilation):
            if overlap:
                dxp[:, :, rows, cols] += g * (index == k)
            else:     # each input pixel is in at most one window: write, don't add
                np.multiply(g, index == k, out=dxp[:, :, rows, cols])
        return unpad(dxp, pads, shape4, x_shape)


class AvgPool(Function):
    """Mean over each window: the sum of the kh*kw offset slices, divided by `divisor` (a number,
    or an (OH, OW) array when windows overlapping the padding count fewer elements)."""

    @staticmethod
    def forward(ctx, x, kernel, stride, pads, out, divisor, dims):
        x4 = x.reshape(as_image(x.shape, dims))
        xp = pad(x4, pads, 0)
        slices = list(_offsets(kernel, out, stride, (1, 1)))
        _, rows, cols = slices[0]
        y = xp[:, :, rows, cols].copy(order="K")
        for _, rows, cols in slices[1:]:
            y += xp[:, :, rows, cols]
        y /= divisor
        ctx.args = (x.shape, x4.shape, xp.shape, kernel, stride, pads, out, divisor,
                    channels_last(x4))
        return y.reshape(image_like(y.shape, dims, x.ndim > dims + 1))

    @staticmethod
    def backward(ctx, grad):
        x_shape, shape4, padded, kernel, stride, pads, out, divisor, last = ctx.args
        dxp = zeros_image(padded, grad.dtype, last)
        g = like(grad.reshape(shape4[:2] + out), dxp) / divisor
        for _, rows, cols in _offsets(kernel, out, stride, (1, 1)):
            dxp[:, :, rows, cols] += g
        return unpad(dxp, pads, shape4, x_shape)


class AdaptiveAvgPool(Function):
    """Average over PyTorch's adaptive windows [floor(i*H/OH), ceil((i+1)*H/OH)): a reshape and a
    mean when OH divides H (and OW divides W), else the linear map P_h x P_w^T with averaging
    matrices, whose adjoint P_h^T g P_w is the backward."""

    @staticmethod
    def forward(ctx, x, out):
        x4 = x.reshape(as_image(x.shape, 2))
        n, c, h, w = x4.shape
        ctx.args = (x.shape, x4.shape, out)
        if h % out[0] == 0 and w % out[1] == 0:
            kh, kw = h // out[0], w // out[1]
            y = x4.reshape(n, c, out[0], kh, out[1], kw).mean(axis=(3, 5))
            ctx.mats = None
        else:
            ph, pw = _averaging(h, out[0], x.dtype), _averaging(w, out[1], x.dtype)
            y = np.matmul(np.matmul(ph, x4), pw.T)
            ctx.mats = ph, pw
        return y.reshape(x.shape[:-2] + out)

    @staticmethod
    def backward(ctx, grad):
        x_shape, (n, c, h, w), out = ctx.args
        g = grad.reshape((n, c) + out)
        if ctx.mats is None:
            kh, kw = h // out[0], w // out[1]
            g = g / (kh * kw)
            dx = np.broadcast_to(g[:, :, :, None, :, None], (n, c, out[0], kh, out[1], kw))
            return dx.reshape(x_shape)
        ph, pw = ctx.mats
        return np.matmul(np.matmul(ph.T, g), pw).reshape(x_shape)


def _averaging(size: int, out: int, dtype) -> np.ndarray:
    """(out, size) matrix whose row i averages PyTorch's adaptive window i."""
    i = np.arange(out)
    start, end = (i * size) // out, -((-(i + 1) * size) // out)
    j = np.arange(size)
    inside = (j >= start[:, None]) & (j < end[:, None])
    return (inside / (end - start)[:, None]).astype(dtype)


class Nearest(Function):
    """Nearest-neighbour resize: output pixel o of each spatial axis reads input index[o]. The
    indices never decrease, so backward sums runs of equal indices (np.add.reduceat)."""

    @staticmethod
    def forward(ctx, x, indices):
        ctx.args = (x.shape, indices)
        return x[(Ellipsis,) + np.ix_(*indices)]

    @staticmethod
    def backward(ctx, grad):
        x_shape, indices = ctx.args
        spatial = len(indices)
        for a, index in enumerate(indices):
            axis = len(x_shape) - spatial + a
            starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
            sums = np.add.reduceat(grad, starts, axis=axis)
            if len(starts) != x_shape[axis]:                  # some inputs were never read
                shape = list(sums.shape)
                shape[axis] = x_shape[axis]
                full = np.zeros(shape, grad.dtype)
                full[(slice(None),) * axis + (index[starts],)] = sums
                sums = full
            grad = sums
        return grad


# -- sizes -----------------------------------------------------------------------------------------

def pool_out_size(name, x_shape, kernel, stride, padding, dilation, ceil_mode) -> tuple:
    """PyTorch's pooling output size; in ceil mode the last window must start inside the input or
    its left padding."""
    dims = len(kernel)
    spatial = x_shape[-dims:]
    if any(p > k // 2 for k, p in zip(kernel, padding)):
        raise ValueError(f"{name}: padding should be at most half of the kernel size, got "
                         f"padding={padding}, kernel_size={kernel}")
    out = []
    for n, k, s, p, d in zip(spatial, kernel, stride, padding, dilation):
        span = n + 2 * p - d * (k - 1) - 1
        o = (span + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (o - 1) * s >= n + p:
            o -= 1
        out.append(o)
    if any(o <= 0 for o in out):
        raise ValueError(f"{name}: input of shape {tuple(x_shape)} is too small for the kernel "
                         f"{kernel} (padding {padding}, dilation {dilation}): the output would be "
                         f"{' x '.join(map(str, out))}")
    return tuple(out)


def _pads(spatial, kernel, stride, padding, dilation, out) -> tuple:
    """Padding (before, after) per axis: `padding` each side, more after if ceil mode needs it."""
    return tuple((p, max(p, (o - 1) * s + d * (k - 1) + 1 - n - p))
                 for n, k, s, p, d, o in zip(spatial, kernel, stride, padding, dilation, out))


def _pool_args(name, x, kernel_size, stride, padding, dilation, dims):
    check_input(name, x.shape, dims, None)
    kernel = ntuple(kernel_size, dims, "kernel_size", name, 1)
    stride = kernel if stride is None or stride == [] or stride == () \
        else ntuple(stride, dims, "stride", name, 1)
    padding = ntuple(padding, dims, "padding", name)
    dilation = ntuple(dilation, dims, "dilation", name, 1)
    return kernel, stride, padding, dilation


def _as_2d(dims, *args):
    """1-D pooling arguments as those of a height-1 image."""
    if dims == 2:
        return args
    return tuple(((0, 0),) + a if a and isinstance(a[0], tuple) else (1,) + a for a in args)


def max_pooling(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                return_indices=False, *, dims=2, name="max_pool2d"):
    """max_pool1d / max_pool2d with arguments checked; `name` prefixes the errors."""
    if return_indices:
        raise NotImplementedError(f"{name}: return_indices=True is not supported")
    kernel, stride, padding, dilation = _pool_args(name, x, kernel_size, stride, padding,
                                                   dilation, dims)
    out = pool_out_size(name, x.shape, kernel, stride, padding, dilation, ceil_mode)
    pads = _pads(x.shape[-dims:], kernel, stride, padding, dilation, out)
    kernel, stride, pads, dilation, out = _as_2d(dims, kernel, stride, pads, dilation, out)
    return MaxPool.apply(x, kernel=kernel, stride=stride, pads=pads, dilation=dilation, out=out,
                         dims=dims)


def average_pooling(x, kernel_size, stride=None, padding=0, ceil_mode=False,
                    count_include_pad=True, divisor_override=None, *, dims=2, name="avg_pool2d"):
    """avg_pool2d with arguments checked; `name` prefixes the errors."""
    kernel, stride, padding, _ = _pool_args(name, x, kernel_size, stride, padding, 1, dims)
    out = pool_out_size(name, x.shape, kernel, stride, padding, (1,) * dims, ceil_mode)
    spatial = x.shape[-dims:]
    pads = _pads(spatial, kernel, stride, padding, (1,) * dims, out)
    if divisor_override is not None:
        if divisor_override == 0:
            raise ValueError(f"{name}: divisor_override must not be zero")
        divisor = divisor_override
    else:
        # PyTorch's divisor: the window clipped to the padded input (count_include_pad) or to the
        # input itself; a product of one factor per axis
        divisor = np.ones((1,) * dims)
        for a, (n, k, s, p, o) in enumerate(zip(spatial, kernel, stride, padding, out)):
            start = np.arange(o) * s - p
            end = np.minimum(start + k, n + p)
            if not count_include_pad:
                start, end = np.maximum(start, 0), np.minimum(end, n)
            divisor = divisor * (end - start).reshape((-1,) + (1,) * (dims - 1 - a))
        divisor = divisor.astype(x.dtype)
        if (divisor == divisor.flat[0]).all():
            divisor = divisor.flat[0].item()
        elif dims == 1:
            divisor = divisor[None, :]
    kernel, stride, pads, out = _as_2d(dims, kernel, stride, pads, out)
    return AvgPool.apply(x, kernel=kernel, stride=stride, pads=pads, out=out, divisor=divisor,
                         dims=dims)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Maximum over windows of (N, C, L) -> (N, C, OL); stride defaults to kernel_size.

    >>> rg.nn.functional.max_pool1d(rg.randn(2, 3, 10), 2).shape
    (2, 3, 5)
    """
    return max_pooling(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
                       dims=1, name="max_pool1d")


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Maximum over windows of (N, C, H, W) -> (N, C, OH, OW); stride defaults to kernel_size,
    padding (at most half the kernel) counts as -inf.

    >>> rg.nn.functional.max_pool2d(rg.randn(2, 3, 28, 28), 2).shape
    (2, 3, 14, 14)
    """
    return max_pooling(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
                       dims=2, name="max_pool2d")


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Mean over windows of (N, C, H, W); zero padding counts in the mean unless
    count_include_pad=False.

    >>> rg.nn.functional.avg_pool2d(rg.randn(2, 3, 8, 8), 2).shape
    (2, 3, 4, 4)
    """
    return average_pooling(input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                           divisor_override, dims=2, name="avg_pool2d")


def adaptive_output_size(name, x_shape, output_size) -> tuple:
    check_input(name, x_shape, 2, None)
    if output_size is None or isinstance(output_size, int) or not hasattr(output_size, "__len__"):
        output_size = (output_size, output_size)
    if len(output_size) != 2:
        raise ValueError(f"{name}: output_size must be an int or a pair, got {output_size!r}")
    out = tuple(n if o is None else int(o) for o, n in zip(output_size, x_shape[-2:]))
    if any(o <= 0 for o in out) or any(n == 0 for n in x_shape[-2:]):
        raise ValueError(f"{name}: output_size {out} and input size {tuple(x_shape[-2:])} must be "
                         "positive")
    return out


def adaptive_avg_pool2d(input, output_size):
    """Average pooling of (N, C, H, W) to a fixed (OH, OW), PyTorch's windows; None keeps a size.

    >>> rg.nn.functional.adaptive_avg_pool2d(rg.randn(2, 3, 7, 9), (2, 4)).shape
    (2, 3, 2, 4)
    """
    out = adaptive_output_size("adaptive_avg_pool2d", input.shape, output_size)
    return AdaptiveAvgPool.apply(input, out=out)


def nearest_indices(in_size: int, out_size: int, scale: float | None) -> np.ndarray:
    """PyTorch's nearest source index: floor(o * in/out) in float32 (1/scale_factor when the scale
    is given), clamped to the input."""
    if out_size == in_size:
        return np.arange(out_size)
    if out_size == 2 * in_size:
        return np.arange(out_size) >> 1
    step = np.float32(1.0 / scale if scale else in_size / out_size)
    index = np.floor(np.arange(out_size, dtype=np.float32) * step).astype(np.int64)
    return np.minimum(index, in_size - 1)


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize (N, C, *spatial) with 1 to 3 spatial dimensions to `size`, or by `scale_factor`
    (output size floor(in * scale)). Only mode='nearest', with PyTorch's index rule.

    >>> rg.nn.functional.interpolate(rg.randn(2, 3, 4, 4), scale_factor=2).shape
    (2, 3, 8, 8)
    """
    return resize(input, size, scale_factor, mode, align_corners, recompute_scale_factor,
                  antialias, name="interpolate")


def resize(x, size=None, scale_factor=None, mode="nearest", align_corners=None,
           recompute_scale_factor=None, antialias=False, *, name="interpolate"):
    """interpolate with `name` prefixing the errors."""
    if mode != "nearest":
        raise NotImplementedError(f"{name}: mode={mode!r} is not supported; only 'nearest'")
    if align_corners is not None:
        raise ValueError(f"{name}: align_corners can only be set with the interpolating modes "
                         "(linear, bilinear, bicubic, trilinear), not with mode='nearest'")
    if antialias:
        raise ValueError(f"{name}: antialias is only available for the bilinear and bicubic modes")
    dims = x.ndim - 2
    if dims not in (1, 2, 3):
        raise ValueError(f"{name}: expected a 3-D, 4-D or 5-D input (N, C, *spatial), got shape "
                         f"{tuple(x.shape)}")
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{name}: give exactly one of size and scale_factor")
    spatial = x.shape[2:]
    if size is not None:
        size = ntuple(size, dims, "size", name, 1)
        scales = (None,) * dims
    else:
        scales = tuple(float(s) for s in scale_factor) if hasattr(scale_factor, "__len__") \
            else (float(scale_factor),) * dims
        if len(scales) != dims or any(not s > 0 for s in scales):
            raise ValueError(f"{name}: scale_factor must be a positive number or {dims} of them, "
                             f"got {scale_factor!r}")
        size = tuple(int(math.floor(n * s)) for n, s in zip(spatial, scales))
        if any(o <= 0 for o in size):
            raise ValueError(f"{name}: scale_factor {scale_factor!r} gives an empty output "
                             f"{size} for an input of shape {tuple(x.shape)}")
        if recompute_scale_factor:
            scales = (None,) * dims
    indices = tuple(nearest_indices(n, o, s) for n, o, s in zip(spatial, size, scales))
    return Nearest.apply(x, indices=indices)
