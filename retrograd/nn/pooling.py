"""Pooling and upsampling layers: MaxPool1d/2d, AvgPool2d, AdaptiveAvgPool2d, Upsample (nearest)."""
from __future__ import annotations

from ..ops.pool import AdaptiveAvgPool, adaptive_output_size, average_pooling, max_pooling, resize
from ..tensor import Tensor
from .module import Module


class _MaxPoolNd(Module):
    dims = 2

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__()
        if return_indices:
            raise NotImplementedError(f"{type(self).__name__}: return_indices=True is not "
                                      "supported")
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, x: Tensor) -> Tensor:
        return max_pooling(x, self.kernel_size, self.stride, self.padding, self.dilation,
                           self.ceil_mode, dims=self.dims, name=self)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    """Maximum over windows of (N, C, L) or (C, L); stride defaults to kernel_size.

    >>> nn.MaxPool1d(2)(rg.randn(4, 8, 10)).shape
    (4, 8, 5)
    """

    dims = 1


class MaxPool2d(_MaxPoolNd):
    """Maximum over windows of (N, C, H, W) or (C, H, W); stride defaults to kernel_size, padding
    (at most half the kernel) counts as -inf. The gradient goes to each window's first maximum.

    >>> nn.MaxPool2d(2)(rg.randn(4, 8, 28, 28)).shape
    (4, 8, 14, 14)
    """


class AvgPool2d(Module):
    """Mean over windows of (N, C, H, W) or (C, H, W). Zero padding counts in the mean unless
    count_include_pad=False; divisor_override replaces the window size.

    >>> nn.AvgPool2d(2)(rg.randn(4, 8, 28, 28)).shape
    (4, 8, 14, 14)
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, x: Tensor) -> Tensor:
        return average_pooling(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                               self.count_include_pad, self.divisor_override, dims=2, name=self)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size (OH, OW) whatever the input's, with PyTorch's windows
    [floor(i H / OH), ceil((i + 1) H / OH)); None in output_size keeps that input size.

    >>> nn.AdaptiveAvgPool2d((1, 1))(rg.randn(4, 64, 7, 7)).shape     # global average pooling
    (4, 64, 1, 1)
    """

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        out = adaptive_output_size(self, x.shape, self.output_size)
        return AdaptiveAvgPool.apply(x, out=out)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class Upsample(Module):
    """Resize (N, C, *spatial) to `size` or by `scale_factor`; only mode='nearest'.

    >>> nn.Upsample(scale_factor=2)(rg.randn(1, 3, 4, 4)).shape
    (1, 3, 8, 8)
    """

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        if mode != "nearest":
            raise NotImplementedError(f"Upsample: mode={mode!r} is not supported; only 'nearest'")
        self.size = size
        self.scale_factor = (tuple(float(s) for s in scale_factor)
                             if isinstance(scale_factor, (tuple, list))
                             else None if scale_factor is None else float(scale_factor))
        self.mode, self.align_corners = mode, align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, x: Tensor) -> Tensor:
        return resize(x, self.size, self.scale_factor, self.mode, self.align_corners,
                      self.recompute_scale_factor, name=self)

    def extra_repr(self) -> str:
        info = (f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None
                else f"size={self.size!r}")
        return info + f", mode={self.mode!r}"
