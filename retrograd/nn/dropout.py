"""Dropout: randomly zero activations in training so units cannot co-adapt (Srivastava et al., 2014)."""
from __future__ import annotations

from ..tensor import Tensor
from .functional import dropout
from .module import Module


class Dropout(Module):
    """Zeroes each element with probability p in training and scales the rest by 1/(1-p);
    the identity in eval mode.

    >>> drop = nn.Dropout(0.5)
    >>> drop.eval()(x) is x
    True
    """

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = p
        self.inplace = inplace   # accepted for PyTorch compatibility; the output is always new

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
