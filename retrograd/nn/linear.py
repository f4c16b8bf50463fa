"""Linear (fully connected) layer, Identity and Flatten."""
from __future__ import annotations

import math

from ..creation import empty
from ..ops.linalg import Linear as _LinearOp
from ..tensor import Tensor
from . import init
from .module import Module
from .parameter import Parameter


class Linear(Module):
    """y = x W^T + b, with W of shape (out_features, in_features) as in PyTorch.

    Initialised like PyTorch: W and b uniform in +-1/sqrt(in_features).

    >>> layer = nn.Linear(784, 10)
    >>> layer(rg.randn(32, 784)).shape
    (32, 10)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(empty(out_features, in_features, dtype=dtype))
        if bias:
            self.bias = Parameter(empty(out_features, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))   # = U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        data, weight, bias = x.data, self.weight, self.bias
        if data.ndim == 0 or data.shape[-1] != self.in_features:
            raise ValueError(f"{self!r}: expected input with last dimension {self.in_features}, "
                             f"got shape {tuple(x.shape)}")
        if data.dtype is not weight.data.dtype and data.dtype != weight.data.dtype:
            # no silent upcast of the whole network
            raise TypeError(f"{self!r}: input dtype {data.dtype} and weight dtype "
                            f"{weight.data.dtype} differ; convert one of them (x.float() or "
                            "model.double()), as PyTorch requires")
        if bias is None:
            return _LinearOp.apply(x, weight)
        return _LinearOp.apply(x, weight, bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Identity(Module):
    """Returns its input; a placeholder (e.g. to switch a layer off)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        return x


class Flatten(Module):
    """Flattens dimensions start_dim..end_dim (by default all but the batch dimension)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
