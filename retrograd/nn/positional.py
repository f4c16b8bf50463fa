"""Positional encodings: attention is blind to order, so each position adds a vector of its own,
either fixed sinusoids (Vaswani et al., 2017) or learned (as in BERT and GPT)."""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes
from ..tensor import Tensor
from .dropout import Dropout
from .module import Module
from .sparse import Embedding


def sinusoidal_table(max_len: int, d_model: int, dtype=None) -> np.ndarray:
    """(max_len, d_model): PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(same)."""
    position = np.arange(max_len, dtype=np.float64)[:, None]
    div_term = np.exp(np.arange(0, d_model, 2, dtype=np.float64) * (-math.log(10000.0) / d_model))
    table = np.zeros((max_len, d_model))
    table[:, 0::2] = np.sin(position * div_term)
    table[:, 1::2] = np.cos(position * div_term[: d_model // 2])
    return table.astype(dtypes.get_default_dtype() if dtype is None else dtypes.resolve(dtype))


def _check_length(module: Module, x: Tensor, seq_dim: int, max_len: int) -> int:
    if x.ndim not in (2, 3) or x.shape[-1] != module.d_model:
        raise ValueError(f"{type(module).__name__}: expected input (seq, batch, {module.d_model}), "
                         f"(batch, seq, {module.d_model}) with batch_first, or "
                         f"(seq, {module.d_model}); got shape {tuple(x.shape)}")
    length = x.shape[seq_dim if x.ndim == 3 else 0]
    if length > max_len:
        raise ValueError(f"{type(module).__name__}: sequence of length {length} is longer than "
                         f"max_len={max_len}")
    return length


class SinusoidalPositionalEncoding(Module):
    """x + PE[:seq_len], then dropout; PE[pos, 2i] = sin(pos / 10000^(2i/d_model)) and
    PE[pos, 2i+1] = cos(pos / 10000^(2i/d_model)). No parameters: the table is a buffer `pe`
    (max_len, d_model), kept out of the state dict since it is a formula.

    Input (seq, batch, d_model), or (batch, seq, d_model) with batch_first, or (seq, d_model).

    >>> pos = nn.SinusoidalPositionalEncoding(64, max_len=512, dropout=0.1, batch_first=True)
    >>> pos(rg.randn(8, 10, 64)).shape
    (8, 10, 64)
    """

    def __init__(self, d_model: int, max_len: int = 5000, dropout: float = 0.1,
                 batch_first: bool = False, *, dtype=None):
        super().__init__()
        self.d_model, self.max_len, self.batch_first = d_model, max_len, batch_first
        self.dropout = Dropout(dropout)
        self.register_buffer("pe", Tensor(sinusoidal_table(max_len, d_model, dtype)),
                             persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        length = _check_length(self, x, 1 if self.batch_first else 0, self.max_len)
        table = self.pe.data[:length]
        if x.ndim == 3 and not self.batch_first:
            table = table[:, None, :]
        return self.dropout(x + table.astype(x.dtype, copy=False))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}, batch_first={self.batch_first}"


class LearnedPositionalEncoding(Module):
    """x + E[position], E a trained Embedding(max_len, d_model) (state dict key `embedding.weight`,
    initialised N(0, 1) as nn.Embedding), then dropout.

    Input (seq, batch, d_model), or (batch, seq, d_model) with batch_first, or (seq, d_model).

    >>> pos = nn.LearnedPositionalEncoding(512, 64, batch_first=True)
    >>> pos(rg.randn(8, 10, 64)).shape
    (8, 10, 64)
    """

    def __init__(self, max_len: int, d_model: int, dropout: float = 0.0,
                 batch_first: bool = False, *, dtype=None):
        super().__init__()
        self.d_model, self.max_len, self.batch_first = d_model, max_len, batch_first
        self.embedding = Embedding(max_len, d_model, dtype=dtype)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        length = _check_length(self, x, 1 if self.batch_first else 0, self.max_len)
        positions = self.embedding(np.arange(length))
        if x.ndim == 3 and not self.batch_first:
            positions = positions.unsqueeze(1)
        return self.dropout(x + positions)

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, d_model={self.d_model}, batch_first={self.batch_first}"
