"""Embedding: a lookup table of learned vectors, one per token id."""
from __future__ import annotations

import numpy as np

from ..creation import empty
from ..tensor import Tensor
from . import init
from .functional import embedding
from .module import Module
from .parameter import Parameter


class Embedding(Module):
    """Maps integer ids of any shape to vectors: (*ids.shape) -> (*ids.shape, embedding_dim).

    Weights start N(0, 1) as in PyTorch; the `padding_idx` row starts at zero and is never updated.

    >>> emb = nn.Embedding(1000, 32, padding_idx=0)
    >>> emb(rg.tensor([[1, 2, 0]])).shape
    (1, 3, 32)
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 *, dtype=None):
        super().__init__()
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} out of range for "
                                 f"{num_embeddings} embeddings")
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = padding_idx
        self.weight = Parameter(empty(num_embeddings, embedding_dim, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, ids: Tensor) -> Tensor:
        array = ids.data if isinstance(ids, Tensor) else np.asarray(ids)
        if array.dtype.kind not in "iu":
            raise TypeError(f"{self!r}: expected integer ids, got dtype {array.dtype}")
        if array.size and (array.min() < 0 or array.max() >= self.num_embeddings):
            bad = int(array.min() if array.min() < 0 else array.max())
            raise IndexError(f"{self!r}: id {bad} is out of range; expected ids in "
                             f"[0, {self.num_embeddings})")
        return embedding(ids, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        pad = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"
