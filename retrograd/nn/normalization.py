"""Normalisation layers: BatchNorm1d/2d (Ioffe & Szegedy, 2015) and LayerNorm (Ba et al., 2016)."""
from __future__ import annotations

from ..autograd import array_function
from ..creation import ones, tensor, zeros
from ..dtypes import int64
from ..tensor import Tensor
from . import functional as F
from .module import Module
from .parameter import Parameter


class _BatchNorm(Module):
    expected_dims: tuple = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, *, bias: bool = True,
                 dtype=None):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(ones(num_features, dtype=dtype))
            if bias:
                self.bias = Parameter(zeros(num_features, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", tensor(0, dtype=int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.weight is not None:
            self.weight.data[...] = 1
        if self.bias is not None:
            self.bias.data[...] = 0

    def _check_input(self, x: Tensor) -> None:
        if x.ndim not in self.expected_dims or x.shape[1] != self.num_features:
            dims = " or ".join(f"{d}-D" for d in self.expected_dims)
            raise ValueError(f"{type(self).__name__}({self.num_features}): expected {dims} input "
                             f"with {self.num_features} channels in dimension 1, got shape "
                             f"{tuple(x.shape)}")
        _check_dtype(self, x, self.weight if self.weight is not None else self.running_mean)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        use_batch_stats = self.training or not self.track_running_stats
        if use_batch_stats and x.data.size // x.shape[1] <= 1:
            raise ValueError(f"{type(self).__name__}({self.num_features}): expected more than 1 "
                             f"value per channel when training, got input of shape "
                             f"{tuple(x.shape)}")
        momentum = self.momentum
        update = self.training and self.track_running_stats
        if update:   # only once the input passed every check: a failed call changes nothing
            _count_batch(self.num_batches_tracked)
            if momentum is None:   # cumulative moving average
                momentum = _cumulative_momentum(self.num_batches_tracked)
        return F.batch_norm(x, self.running_mean if update or not use_batch_stats else None,
                            self.running_var if update or not use_batch_stats else None,
                            self.weight, self.bias, use_batch_stats, momentum, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


# State updates outside ops, marked so that a compiled step replays them (rg.compile). A Python
# number computed from a tensor cannot be replayed: with momentum=None the step stays eager.
@array_function
def _count_batch(num_batches_tracked: Tensor) -> None:
    num_batches_tracked.data += 1


@array_function
def _cumulative_momentum(num_batches_tracked: Tensor) -> float:
    return 1.0 / int(num_batches_tracked.data)


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L) inputs, per channel C.

    >>> bn = nn.BatchNorm1d(64)
    """

    expected_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W) inputs, per channel C."""

    expected_dims = (4,)


class LayerNorm(Module):
    """Normalises each sample over its trailing `normalized_shape` dimensions.

    >>> ln = nn.LayerNorm(512)
    """

    def __init__(self, normalized_shape: int | tuple, eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True, *, dtype=None):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape, self.eps = tuple(int(n) for n in normalized_shape), eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(ones(self.normalized_shape, dtype=dtype))
            if bias:
                self.bias = Parameter(zeros(self.normalized_shape, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        k = len(self.normalized_shape)
        if x.ndim < k or tuple(x.shape[-k:]) != self.normalized_shape:
            raise ValueError(f"LayerNorm({self.normalized_shape}): expected input whose last "
                             f"{k} dimension(s) are {self.normalized_shape}, got shape "
                             f"{tuple(x.shape)}")
        _check_dtype(self, x, self.weight)
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")


def _check_dtype(layer: Module, x: Tensor, reference: Tensor | None) -> None:
    """As PyTorch: a float64 input into a float32 layer is an error, not a silent upcast."""
    if reference is not None and x.data.dtype != reference.data.dtype:
        raise TypeError(f"{layer!r}: input dtype {x.data.dtype} and parameter dtype "
                        f"{reference.data.dtype} differ; convert one of them (x.float() or "
                        "model.double()), as PyTorch requires")
