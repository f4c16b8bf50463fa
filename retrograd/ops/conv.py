"""Convolutions (conv1d, conv2d, conv_transpose2d) as im2col + GEMM, fused, on raw arrays.

Forward gathers the windows of a few images at a time (the padded input's windows, one copy from
a strided view, ~1 MB of columns) and multiplies them by the weight matrix straight into the
output: the columns are read while still in cache, and the full column matrix, 9x the input for a
3x3 kernel, never exists. The product (N*OH*OW, C_out) is the output image in channels-last
memory, returned with PyTorch's shape (N, C, H, W) as a view of it. NumPy's elementwise ops keep
that layout, so the next conv or pool reads its input without a transposing copy.

Backward keeps only the input: dW is a GEMM of the output gradient with the columns gathered
again, chunk by chunk (a copy costs less than holding the columns from forward to backward); dx
is, per kernel offset, one small GEMM whose result is added onto the shifted image while in cache
(kh*kw slice-adds, whatever the size of the image). The ops work on arrays, not on tensor ops:
they are once-differentiable.

1-D convolutions and unbatched inputs run through the same code as height-1 / batch-1 images.
"""
from __future__ import annotations

import operator

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..autograd import Function

# -- arguments -------------------------------------------------------------------------------------


def ntuple(value, n: int, what: str, name: str, minimum: int = 0) -> tuple:
    """An int or a sequence of n ints as a tuple of n ints, each at least `minimum`."""
    try:
        values = (operator.index(value),) * n if not hasattr(value, "__len__") \
            else tuple(operator.index(v) for v in value)
    except TypeError:
        values = ()
    if len(values) != n or any(v < minimum for v in values):
        raise ValueError(f"{name}: {what} must be an int or a tuple of {n} ints, each >= "
                         f"{minimum}, got {value!r}")
    return values


def conv_padding(padding, kernel: tuple, stride: tuple, dilation: tuple, name: str) -> tuple:
    """Padding per spatial dimension as (before, after) pairs; 'same' pads d*(k-1) in total, the
    odd one at the end, as PyTorch does."""
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * len(kernel)
        if padding != "same":
            raise ValueError(f"{name}: padding must be 'same', 'valid', an int or a tuple of ints, "
                             f"got {padding!r}")
        if any(s != 1 for s in stride):
            raise ValueError(f"{name}: padding='same' is not supported for strided convolutions "
                             f"(stride={stride})")
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple((t // 2, t - t // 2) for t in total)
    return tuple((p, p) for p in ntuple(padding, len(kernel), "padding", name))


def _shape_str(shape) -> str:
    return " x ".join(str(s) for s in shape)


def check_input(name: str, x_shape: tuple, dims: int, channels: int) -> None:
    """The input is (N, C, *spatial) or unbatched (C, *spatial), with C == channels."""
    if len(x_shape) not in (dims + 1, dims + 2):
        raise ValueError(f"{name}: expected a {dims + 1}-D (unbatched) or {dims + 2}-D (batched) "
                         f"input of shape (N, C, {'H, W' if dims == 2 else 'L'}), got shape "
                         f"{tuple(x_shape)}")
    if channels is not None and x_shape[-dims - 1] != channels:
        raise ValueError(f"{name}: expected input with {channels} channels in dimension "
                         f"{len(x_shape) - dims - 1}, got shape {tuple(x_shape)}")


def _out_size(name: str, x_shape: tuple, kernel: tuple, stride: tuple, pads: tuple,
              dilation: tuple) -> tuple:
    spatial = x_shape[-len(kernel):]
    padded = tuple(n + a + b for n, (a, b) in zip(spatial, pads))
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    if any(p < s for p, s in zip(padded, span)):
        raise ValueError(f"{name}: input of shape {tuple(x_shape)} is smaller than the kernel: "
                         f"padded size ({_shape_str(padded)}) < dilated kernel size "
                         f"({_shape_str(span)})")
    return tuple((p - s) // st + 1 for p, s, st in zip(padded, span, stride))


# -- rank: 1-D and unbatched inputs become batched 2-D images, as views ----------------------------

def as_image(shape: tuple, dims: int) -> tuple:
    """The (N, C, H, W) shape of an input of `dims` spatial dimensions, batched or not."""
    if len(shape) == dims + 1:
        shape = (1,) + tuple(shape)
    return tuple(shape) if dims == 2 else shape[:2] + (1,) + shape[2:]


def image_like(shape4: tuple, dims: int, batched: bool) -> tuple:
    """Inverse of as_image for an output of shape (N, C, H, W)."""
    shape = shape4 if dims == 2 else shape4[:2] + shape4[3:]
    return shape if batched else shape[1:]


# -- im2col / col2im -------------------------------------------------------------------------------
# Arrays keep PyTorch's axis order (N, C, H, W) throughout; `last` says whether their memory is
# channels-last. It decides only the order in which windows are gathered, so that the copy's inner
# loop runs over contiguous memory: (kh, kw, c) per output pixel when channels-last, shifted image
# rows (c, kh, kw) x (N, OH, OW) otherwise (e.g. a network's input: N, C, H, W, with C of 1 or 3).

def channels_last(x4: np.ndarray) -> bool:
    """True when (N, C, H, W) lies in memory as (N, H, W, C), as the outputs of convs do."""
    return not x4.flags.c_contiguous and x4.transpose(0, 2, 3, 1).flags.c_contiguous


def zeros_image(shape4: tuple, dtype, last: bool) -> np.ndarray:
    """Zeros of shape (N, C, H, W), channels-last in memory if `last`."""
    if not last:
        return np.zeros(shape4, dtype)
    n, c, h, w = shape4
    return np.zeros((n, h, w, c), dtype).transpose(0, 3, 1, 2)


def like(a: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """a in ref's memory layout (a copy unless it has it): elementwise ops between arrays of
    different layouts run at a fraction of the speed."""
    if channels_last(a) == channels_last(ref):
        return a
    out = np.empty_like(ref, dtype=a.dtype, shape=a.shape)
    out[...] = a
    return out


def pad(x4: np.ndarray, pads: tuple, value: float = 0) -> np.ndarray:
    """(N, C, H, W) padded on H and W by ((top, bottom), (left, right)) with `value`: a new array
    in x4's memory layout, or x4 itself when there is nothing to pad."""
    (t, b), (l, r) = pads
    if not (t or b or l or r):
        return x4
    n, c, h, w = x4.shape
    out = np.empty_like(x4, shape=(n, c, h + t + b, w + l + r))   # order 'K': x4's layout
    out[:, :, :t] = out[:, :, t + h:] = value
    out[:, :, t:t + h, :l] = out[:, :, t:t + h, l + w:] = value
    out[:, :, t:t + h, l:l + w] = x4
    return out


def unpad(dxp: np.ndarray, pads: tuple, shape4: tuple, shape: tuple) -> np.ndarray:
    """The gradient of the unpadded input from that of the padded one, in the input's shape;
    dxp itself when possible (the engine copies views before storing them in a leaf's .grad)."""
    (t, _), (l, _) = pads
    if dxp.shape != shape4:
        dxp = dxp[:, :, t:t + shape4[2], l:l + shape4[3]]
    return dxp if dxp.shape == shape else dxp.reshape(shape)


def window_slices(i: int, j: int, out: tuple, stride: tuple, dilation: tuple) -> tuple:
    """The image rows and columns that kernel offset (i, j) touches: one per output pixel."""
    return (slice(i * dilation[0], i * dilation[0] + stride[0] * (out[0] - 1) + 1, stride[0]),
            slice(j * dilation[1], j * dilation[1] + stride[1] * (out[1] - 1) + 1, stride[1]))


def im2col(xp: np.ndarray, kernel: tuple, out: tuple, stride: tuple, dilation: tuple,
           groups: int, last: bool) -> np.ndarray:
    """Padded (N, C, Hp, Wp) -> columns (groups, N*OH*OW, K), K = C/groups*kh*kw: one row per
    output pixel holding its window, in (kh, kw, c) order if `last`, else (c, kh, kw) (then the
    result is a transposed view of a (groups, K, M) array). One gather copy from a strided view."""
    n, c = xp.shape[:2]
    sn, sc, sh, sw = xp.strides
    cg = c // groups
    group = ((groups, sc * cg),)
    channel = ((cg, sc),)
    window = ((kernel[0], sh * dilation[0]), (kernel[1], sw * dilation[1]))
    pixel = ((n, sn), (out[0], sh * stride[0]), (out[1], sw * stride[1]))
    shape, strides = zip(*(group + (pixel + window + channel if last
                                    else channel + window + pixel)))
    windows = as_strided(xp, shape, strides, writeable=False)
    m, k = n * out[0] * out[1], cg * kernel[0] * kernel[1]
    return windows.reshape(groups, m, k) if last \
        else windows.reshape(groups, k, m).transpose(0, 2, 1)


def col2im(cols: np.ndarray, padded: tuple, kernel: tuple, out: tuple, stride: tuple,
           dilation: tuple, groups: int, last: bool) -> np.ndarray:
    """Adjoint of im2col: add every row of `cols` back onto its window of a zero padded image
    (N, C, Hp, Wp), one strided slice-add per kernel offset. Read fastest when cols is contiguous
    (groups, M, K) if `last`, a transposed (groups, K, M) otherwise."""
    n, c, hp, wp = padded
    img = np.zeros((n, hp, wp, groups, c // groups) if last else (n, groups, c // groups, hp, wp),
                   cols.dtype)
    col2im_add(img, cols, kernel, out, stride, dilation, last)
    return img.reshape(n, hp, wp, c).transpose(0, 3, 1, 2) if last else img.reshape(padded)


def col2im_add(img: np.ndarray, cols: np.ndarray, kernel: tuple, out: tuple, stride: tuple,
               dilation: tuple, last: bool) -> None:
    """col2im into `img`, in place: (N, Hp, Wp, groups, C/groups) if `last`, else
    (N, groups, C/groups, Hp, Wp)."""
    kh, kw = kernel
    if last:
        n, _, _, groups, cg = img.shape
        cols = cols.reshape(groups, n, out[0], out[1], kh, kw, cg)
        for i in range(kh):
            for j in range(kw):
                rows, columns = window_slices(i, j, out, stride, dilation)
                img[:, rows, columns] += cols[:, :, :, :, i, j].transpose(1, 2, 3, 0, 4)
        return
    n, groups, cg = img.shape[:3]
    cols = cols.transpose(0, 2, 1).reshape(groups, cg, kh, kw, n, out[0], out[1])
    for i in range(kh):
        for j in range(kw):
            rows, columns = window_slices(i, j, out, stride, dilation)
            img[:, :, :, rows, columns] += cols[:, :, i, j].transpose(2, 0, 1, 3, 4)


_CHUNK_BYTES = 1 << 20    # columns gathered per GEMM: 1 MB, so they are still in cache when read


def batches(n: int, image_bytes: int) -> list:
    """Ranges of images whose columns take about _CHUNK_BYTES together (at least one image)."""
    step = max(1, _CHUNK_BYTES // max(1, image_bytes))
    return [(a, min(a + step, n)) for a in range(0, n, step)]


def weight_matrix(w4: np.ndarray, groups: int, last: bool) -> np.ndarray:
    """(A, B, kh, kw) -> (groups, A/groups, K), K = B*kh*kw in im2col's order for `last`."""
    a, b, kh, kw = w4.shape
    w5 = w4.reshape(groups, a // groups, b, kh, kw)
    if last:
        w5 = w5.transpose(0, 1, 3, 4, 2)
    return w5.reshape(groups, a // groups, b * kh * kw)


def weight_from_matrix(wm: np.ndarray, shape4: tuple, last: bool) -> np.ndarray:
    """Inverse of weight_matrix: (groups, A/groups, K) -> (A, B, kh, kw)."""
    a, b, kh, kw = shape4
    if last:
        return wm.reshape(a, kh, kw, b).transpose(0, 3, 1, 2)
    return wm.reshape(shape4)


def _ungroup(y: np.ndarray) -> np.ndarray:
    """(g, M, k) -> (M, g*k): the groups side by side along the channels."""
    g, m, k = y.shape
    return y.reshape(m, k) if g == 1 else y.transpose(1, 0, 2).reshape(m, g * k)


def _group(y: np.ndarray, groups: int) -> np.ndarray:
    """(M, C) -> (g, M, C/g), a view."""
    m, c = y.shape
    return y.reshape(m, groups, c // groups).transpose(1, 0, 2)


def _rows(a: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (N*H*W, C), copying only when the memory is not channels-last already."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).reshape(-1, a.shape[1])


def _image(y: np.ndarray, n: int, h: int, w: int) -> np.ndarray:
    """(N*H*W, C) -> the (N, C, H, W) view of it (channels-last memory)."""
    return y.reshape(n, h, w, -1).transpose(0, 3, 1, 2)


def _to_image(x: np.ndarray, w: np.ndarray, dims: int) -> tuple:
    """Input and weight as a batched 2-D image and a 2-D kernel (views)."""
    return (x.reshape(as_image(x.shape, dims)),
            w.reshape(w.shape[:2] + (1,) * (2 - dims) + w.shape[2:]))


# -- the ops ---------------------------------------------------------------------------------------

class Conv(Function):
    """y = conv(x, W) + b with W of shape (O, C/groups, kh, kw): each output pixel is a row of the
    column matrix times W^T, all pixels in one GEMM (one per group). Arguments arrive checked and
    2-D (see `convolution`)."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups, dims):
        x4, w4 = _to_image(x, weight, dims)
        n, kernel = x4.shape[0], w4.shape[2:]
        out = _out_size("conv", x4.shape, kernel, stride, padding, dilation)
        last = channels_last(x4)
        wt = weight_matrix(w4, groups, last).transpose(0, 2, 1)       # (groups, K, O/groups)
        pixels = out[0] * out[1]
        y = np.empty((groups, n * pixels, wt.shape[2]), np.result_type(x, weight))
        # a few images at a time: their columns are multiplied while still in cache, and the
        # whole column matrix never exists (backward gathers the columns again from x)
        for i, j in batches(n, pixels * wt.shape[1] * groups * x.itemsize):
            cols = im2col(pad(x4[i:j], padding), kernel, out, stride, dilation, groups, last)
            np.matmul(cols, wt, out=y[:, i * pixels:j * pixels])
        y = _ungroup(y)
        if bias is not None:
            y += bias
        need_x, need_w = ctx.needs_input_grad[:2]
        ctx.save_for_backward(x if need_w else None, weight if need_x else None)
        ctx.args = (x.shape, x4.shape, w4.shape, out, stride, padding, dilation, groups, dims,
                    last)
        return _image(y, n, *out).reshape(image_like((n, y.shape[1]) + out, dims,
                                                     x.ndim > dims + 1))

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        x_shape, shape4, w_shape4, out, stride, padding, dilation, groups, dims, last = ctx.args
        need_x, need_w, need_b = ctx.needs_input_grad
        n, c, h, w = shape4
        kernel, pixels = w_shape4[2:], out[0] * out[1]
        k = w_shape4[1] * kernel[0] * kernel[1]
        g = _rows(grad.reshape((n, -1) + out))                 # (M, O)
        gg = _group(g, groups)                                  # (groups, M, O/groups)
        grad_x = grad_w = grad_b = dw = None
        if need_w:
            x4 = x.reshape(shape4)
        if need_x:
            (t, b), (l, r) = padding
            hp, wp = h + t + b, w + l + r
            img = np.zeros((n, hp, wp, groups, c // groups) if last else
                           (n, groups, c // groups, hp, wp), grad.dtype)
            if last:   # (kh, kw, groups, O/groups, C/groups): one matrix per kernel offset
                wk = np.ascontiguousarray(weight.reshape(
                    (groups, -1, c // groups) + kernel).transpose(3, 4, 0, 1, 2))
            else:
                wm = weight_matrix(weight.reshape(w_shape4), groups, last)   # (groups, O/g, K)
        for i, j in batches(n, pixels * k * groups * grad.itemsize):
            gc = gg[:, i * pixels:j * pixels]
            if need_w:
                cols = im2col(pad(x4[i:j], padding), kernel, out, stride, dilation, groups, last)
                part = np.matmul(gc.transpose(0, 2, 1), cols)  # (groups, O/groups, K)
                if dw is None:
                    dw = part
                else:
                    dw += part
            if need_x and last:
                # col2im one kernel offset at a time: its columns are one small GEMM, added onto
                # the image while in cache, with rows of (OW, C) contiguous on both sides
                part = None
                for ki in range(kernel[0]):
                    for kj in range(kernel[1]):
                        part = np.matmul(gc, wk[ki, kj], out=part)   # (groups, rows, C/groups)
                        rows, columns = window_slices(ki, kj, out, stride, dilation)
                        img[i:j, rows, columns] += part.transpose(1, 0, 2).reshape(
                            (j - i,) + out + part.shape[::2])
            elif need_x:   # dcols laid out as col2im reads fastest
                dcols = np.matmul(wm.transpose(0, 2, 1), gc.transpose(0, 2, 1)).transpose(0, 2, 1)
                col2im_add(img[i:j], dcols, kernel, out, stride, dilation, last)
        if need_w:
            grad_w = weight_from_matrix(dw, w_shape4, last).reshape(
                w_shape4[:2] + w_shape4[4 - dims:])
        if need_x:
            dxp = img.reshape(n, hp, wp, c).transpose(0, 3, 1, 2) if last else \
                img.reshape(n, c, hp, wp)
            grad_x = unpad(dxp, padding, shape4, x_shape)
        if need_b:
            grad_b = np.ones(len(g), g.dtype) @ g              # a GEMV: faster than sum(axis=0)
        return grad_x, grad_w, grad_b


class ConvTranspose(Function):
    """The adjoint of Conv in x (a "fractionally strided" convolution), W of shape
    (C_in, C_out/groups, kh, kw): each input pixel times W is a window added onto the output
    (one GEMM, then col2im); the output is cropped by `padding`. Works channels-last."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, output_padding, dilation, groups, dims):
        x4, w4 = _to_image(x, weight, dims)
        n, _, h, w = x4.shape
        kernel = w4.shape[2:]
        cout = w4.shape[1] * groups
        full = tuple((s - 1) * st + d * (k - 1) + 1 + op for s, st, d, k, op in
                     zip((h, w), stride, dilation, kernel, output_padding))
        xg = _group(_rows(x4), groups)                          # (groups, M, C_in/groups)
        cols = np.matmul(xg, weight_matrix(w4, groups, True))  # (groups, M, kh*kw*C_out/groups)
        img = col2im(cols, (n, cout) + full, kernel, (h, w), stride, dilation, groups, True)
        (t, b), (l, r) = padding
        y = img[:, :, t:full[0] - b, l:full[1] - r]
        y = y + bias[:, None, None] if bias is not None else y.copy(order="K")
        need_x, need_w = ctx.needs_input_grad[:2]
        ctx.save_for_backward(xg if need_w else None, weight if need_x else None)
        ctx.args = (x.shape, x4.shape, w4.shape, full, stride, padding, dilation, groups, dims)
        return y.reshape(image_like(y.shape, dims, x.ndim > dims + 1))

    @staticmethod
    def backward(ctx, grad):
        xg, weight = ctx.saved_tensors
        x_shape, (n, cin, h, w), w_shape4, full, stride, padding, dilation, groups, dims = ctx.args
        need_x, need_w, need_b = ctx.needs_input_grad
        g4 = grad.reshape((n, -1) + (1,) * (2 - dims) + grad.shape[-dims:])
        last = channels_last(g4)
        # the output is a crop of the full image: its gradient is the crop's, zero-padded back
        (t, _), (l, _) = padding
        gp = pad(g4, ((t, full[0] - t - g4.shape[2]), (l, full[1] - l - g4.shape[3])))
        gcols = im2col(gp, w_shape4[2:], (h, w), stride, dilation, groups, last)  # (g, M, K)
        grad_x = grad_w = grad_b = None
        if need_w:
            dw = np.matmul(xg.transpose(0, 2, 1), gcols)       # (groups, C_in/groups, K)
            grad_w = weight_from_matrix(dw, w_shape4, last).reshape(
                w_shape4[:2] + w_shape4[4 - dims:])
        if need_x:
            wm = weight_matrix(weight.reshape(w_shape4), groups, last)
            dx = _ungroup(np.matmul(gcols, wm.transpose(0, 2, 1)))   # (M, C_in)
            grad_x = _image(dx, n, h, w).reshape(x_shape)
        if need_b:
            grad_b = g4.sum(axis=(0, 2, 3))
        return grad_x, grad_w, grad_b


# -- the functional API ----------------------------------------------------------------------------

def _check_weight(name, x, weight, bias, groups, dims, transposed=False):
    if weight.ndim != dims + 2:
        raise ValueError(f"{name}: expected a {dims + 2}-D weight, got shape {tuple(weight.shape)}")
    if groups < 1:
        raise ValueError(f"{name}: groups must be a positive int, got {groups}")
    # conv: (out, in/groups, *k); transposed: (in, out/groups, *k)
    outer = weight.shape[0]
    if outer % groups:
        raise ValueError(f"{name}: groups={groups} must divide the "
                         f"{'input' if transposed else 'output'} channels, weight has shape "
                         f"{tuple(weight.shape)}")
    channels = outer if transposed else weight.shape[1] * groups
    check_input(name, x.shape, dims, None)
    if x.shape[-dims - 1] != channels:
        raise ValueError(f"{name}: expected input with {channels} channels in dimension "
                         f"{x.ndim - dims - 1} (weight of shape {tuple(weight.shape)}, "
                         f"groups={groups}), got input of shape {tuple(x.shape)}")
    n_out = weight.shape[1] * groups if transposed else outer
    for what, a in (("weight", weight), ("bias", bias)):
        if a is not None and a.dtype != x.dtype:
            raise TypeError(f"{name}: input dtype {x.dtype} and {what} dtype {a.dtype} differ; "
                            "convert one of them (e.g. model.double() or x.float())")
    if bias is not None and tuple(bias.shape) != (n_out,):
        raise ValueError(f"{name}: expected a bias of shape ({n_out},), got "
                         f"{tuple(bias.shape)}")


def convolution(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, dims=2,
                name="conv2d"):
    """conv1d / conv2d with arguments checked and normalised; `name` prefixes the errors."""
    _check_weight(name, x, weight, bias, groups, dims)
    kernel = tuple(weight.shape[2:])
    stride = ntuple(stride, dims, "stride", name, 1)
    dilation = ntuple(dilation, dims, "dilation", name, 1)
    pads = conv_padding(padding, kernel, stride, dilation, name)
    _out_size(name, x.shape, kernel, stride, pads, dilation)
    if dims == 1:
        stride, dilation, pads = (1,) + stride, (1,) + dilation, ((0, 0),) + pads
    return Conv.apply(x, weight, bias, stride=stride, padding=pads, dilation=dilation,
                      groups=groups, dims=dims)


def transposed_output_padding(name, x_shape, kernel, stride, padding, dilation, output_padding,
                              output_size=None) -> tuple:
    """The output_padding that makes the output `output_size` (or the given one, checked)."""
    dims = len(kernel)
    smallest = tuple((n - 1) * s - 2 * p + d * (k - 1) + 1 for n, s, p, d, k in
                     zip(x_shape[-dims:], stride, padding, dilation, kernel))
    if output_size is not None:
        size = tuple(output_size)[-dims:]
        if len(size) != dims:
            raise ValueError(f"{name}: output_size must have {dims} or {dims + 2} elements, got "
                             f"{tuple(output_size)}")
        output_padding = tuple(o - m for o, m in zip(size, smallest))
        if any(not 0 <= op < max(s, d) for op, s, d in zip(output_padding, stride, dilation)):
            largest = tuple(m + max(s, d) - 1 for m, s, d in zip(smallest, stride, dilation))
            raise ValueError(f"{name}: requested an output size of {size}, but valid sizes range "
                             f"from {smallest} to {largest} (for an input of shape "
                             f"{tuple(x_shape)})")
    output_padding = ntuple(output_padding, dims, "output_padding", name)
    if any(op >= s and op >= d for op, s, d in zip(output_padding, stride, dilation)):
        raise ValueError(f"{name}: output_padding {output_padding} must be smaller than either "
                         f"stride {stride} or dilation {dilation}")
    if any(m + op <= 0 for m, op in zip(smallest, output_padding)):
        raise ValueError(f"{name}: input of shape {tuple(x_shape)} gives an empty output "
                         f"({_shape_str(m + op for m, op in zip(smallest, output_padding))})")
    return output_padding


def convolution_transpose(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                          dilation=1, *, dims=2, name="conv_transpose2d", output_size=None):
    """conv_transpose2d with arguments checked and normalised; `name` prefixes the errors."""
    if isinstance(padding, str):
        raise ValueError(f"{name}: padding must be an int or a tuple of ints, got {padding!r}")
    _check_weight(name, x, weight, bias, groups, dims, transposed=True)
    kernel = tuple(weight.shape[2:])
    stride = ntuple(stride, dims, "stride", name, 1)
    dilation = ntuple(dilation, dims, "dilation", name, 1)
    padding = ntuple(padding, dims, "padding", name)
    output_padding = transposed_output_padding(name, x.shape, kernel, stride, padding, dilation,
                                               output_padding, output_size)
    pads = tuple((p, p) for p in padding)
    if dims == 1:
        stride, dilation, pads = (1,) + stride, (1,) + dilation, ((0, 0),) + pads
        output_padding = (0,) + output_padding
    return ConvTranspose.apply(x, weight, bias, stride=stride, padding=pads,
                               output_padding=output_padding, dilation=dilation, groups=groups,
                               dims=dims)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution (cross-correlation, as in PyTorch) of (N, C_in, L) with (C_out, C_in/groups,
    k); padding is an int, a 1-tuple, 'valid' or 'same'.

    >>> rg.nn.functional.conv1d(rg.randn(8, 4, 50), rg.randn(16, 4, 5), padding="same").shape
    (8, 16, 50)
    """
    return convolution(input, weight, bias, stride, padding, dilation, groups, dims=1,
                       name="conv1d")


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation, as in PyTorch) of (N, C_in, H, W) with
    (C_out, C_in/groups, kh, kw) -> (N, C_out, OH, OW), OH = (H + 2p - d(kh-1) - 1) // s + 1.

    >>> rg.nn.functional.conv2d(rg.randn(2, 3, 32, 32), rg.randn(8, 3, 3, 3), padding=1).shape
    (2, 8, 32, 32)
    """
    return convolution(input, weight, bias, stride, padding, dilation, groups, dims=2,
                       name="conv2d")


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Transposed 2-D convolution (the gradient of conv2d in its input; "deconvolution") of
    (N, C_in, H, W) with (C_in, C_out/groups, kh, kw) -> (N, C_out, OH, OW),
    OH = (H - 1) s - 2p + d(kh - 1) + output_padding + 1.

    >>> rg.nn.functional.conv_transpose2d(rg.randn(2, 8, 7, 7), rg.randn(8, 4, 4, 4), stride=2,
    ...                                   padding=1).shape
    (2, 4, 14, 14)
    """
    return convolution_transpose(input, weight, bias, stride, padding, output_padding, groups,
                                 dilation, dims=2, name="conv_transpose2d")
