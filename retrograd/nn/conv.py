"""Convolution layers Conv1d, Conv2d, ConvTranspose2d: PyTorch's arguments and parameters."""
from __future__ import annotations

import math

from ..creation import empty
from ..ops.conv import conv_padding, convolution, convolution_transpose, ntuple
from ..tensor import Tensor
from . import init
from .module import Module
from .parameter import Parameter

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    dims = 2
    transposed = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 output_padding=0, dtype=None):
        super().__init__()
        name, dims = type(self).__name__, self.dims
        if not isinstance(groups, int) or groups < 1:
            raise ValueError(f"{name}: groups must be a positive int, got {groups!r}")
        for what, n in (("in_channels", in_channels), ("out_channels", out_channels)):
            if n % groups:
                raise ValueError(f"{name}: {what}={n} must be divisible by groups={groups}")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {_PADDING_MODES}, got "
                             f"{padding_mode!r}")
        if padding_mode != "zeros":
            raise NotImplementedError(f"{name}: padding_mode={padding_mode!r} is not supported; "
                                      "only 'zeros'")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = ntuple(kernel_size, dims, "kernel_size", name, 1)
        self.stride = ntuple(stride, dims, "stride", name, 1)
        self.dilation = ntuple(dilation, dims, "dilation", name, 1)
        if isinstance(padding, str):
            if self.transposed:
                raise ValueError(f"{name}: padding must be an int or a tuple of ints, got "
                                 f"{padding!r}")
            conv_padding(padding, self.kernel_size, self.stride, self.dilation, name)  # checks
            self.padding = padding
        else:
            self.padding = ntuple(padding, dims, "padding", name)
        self.output_padding = ntuple(output_padding, dims, "output_padding", name)
        self.padding_mode = padding_mode
        shape = (in_channels, out_channels // groups) if self.transposed \
            else (out_channels, in_channels // groups)
        self.weight = Parameter(empty(*shape, *self.kernel_size, dtype=dtype))
        if bias:
            self.bias = Parameter(empty(out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # PyTorch's: U(+-1/sqrt(fan_in)) for both, fan_in = weight.shape[1] * prod(kernel_size)
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * math.prod(self.kernel_size)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0,) * self.dims:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self.dims:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * self.dims:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class _Conv(_ConvNd):
    """Conv1d and Conv2d: PyTorch's signature (no output_padding), the forward by `dims`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias, padding_mode, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        return convolution(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                           self.groups, dims=self.dims, name=self)


class Conv1d(_Conv):
    """1-D convolution over (N, C_in, L) or unbatched (C_in, L) -> (N, C_out, L_out).

    weight: (out_channels, in_channels / groups, kernel_size), bias: (out_channels,), initialised
    as in PyTorch; padding may be an int, 'valid' or 'same'.

    >>> conv = nn.Conv1d(4, 16, kernel_size=5, padding="same")
    >>> conv(rg.randn(8, 4, 50)).shape
    (8, 16, 50)
    """

    dims = 1


class Conv2d(_Conv):
    """2-D convolution over (N, C_in, H, W) or unbatched (C_in, H, W) -> (N, C_out, OH, OW),
    OH = (H + 2 padding - dilation (kh - 1) - 1) // stride + 1.

    weight: (out_channels, in_channels / groups, kh, kw), bias: (out_channels,), initialised as in
    PyTorch, so `load_state_dict` takes a PyTorch state dict. groups=in_channels is a depthwise
    convolution.

    >>> conv = nn.Conv2d(3, 16, kernel_size=3, padding=1)
    >>> conv(rg.randn(8, 3, 32, 32)).shape
    (8, 16, 32, 32)
    """

    dims = 2


class ConvTranspose2d(_ConvNd):
    """Transposed 2-D convolution (the input-gradient of Conv2d; upsamples with stride > 1):
    (N, C_in, H, W) -> (N, C_out, OH, OW), OH = (H - 1) stride - 2 padding + dilation (kh - 1)
    + output_padding + 1. `forward(x, output_size=...)` picks output_padding to reach a size.

    weight: (in_channels, out_channels / groups, kh, kw), bias: (out_channels,), as in PyTorch.

    >>> up = nn.ConvTranspose2d(16, 8, kernel_size=4, stride=2, padding=1)
    >>> up(rg.randn(2, 16, 7, 7)).shape
    (2, 8, 14, 14)
    """

    transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1,
                 padding_mode: str = "zeros", dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias, padding_mode, output_padding, dtype=dtype)
        if any(op >= s and op >= d for op, s, d in
               zip(self.output_padding, self.stride, self.dilation)):
            raise ValueError(f"ConvTranspose2d: output_padding {self.output_padding} must be "
                             f"smaller than either stride {self.stride} or dilation "
                             f"{self.dilation}")

    def forward(self, x: Tensor, output_size=None) -> Tensor:
        return convolution_transpose(x, self.weight, self.bias, self.stride, self.padding,
                                     self.output_padding, self.groups, self.dilation, dims=2,
                                     name=self, output_size=output_size)
