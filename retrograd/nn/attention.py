"""Multi-head attention (Vaswani et al., 2017), with PyTorch's parameters, masks and layouts."""
from __future__ import annotations

import math

import numpy as np

from ..creation import empty
from ..ops.attention import MultiheadAttentionCore, MultiheadAttentionWeights, dropout_scale
from ..ops.linalg import linear
from ..tensor import Tensor
from . import init
from .linear import Linear
from .module import Module
from .parameter import Parameter


class MultiheadAttention(Module):
    """Attention of queries over keys and values in `num_heads` parallel heads of d = embed_dim /
    num_heads features: concat(head_1, ..., head_h) W_o with
    head_i = softmax(Q W_i^Q (K W_i^K)^T / sqrt(d)) V W_i^V.

    Parameters as in PyTorch, so a torch state dict loads as it is: `in_proj_weight` (3E, E) and
    `in_proj_bias` (3E) hold the q, k, v projections stacked (or `q_proj_weight`, `k_proj_weight`,
    `v_proj_weight` when kdim or vdim differ from embed_dim), then `out_proj` (a Linear).

    Shapes: query (L, N, E) or (N, L, E) with batch_first, or (L, E) unbatched; key (S, N, kdim),
    value (S, N, vdim) alike. Masks follow PyTorch: a bool mask is True where attention is NOT
    allowed, a float mask is added to the scores. key_padding_mask is (N, S); attn_mask is (L, S)
    or (N * num_heads, L, S). Returns (output, weights): weights (N, L, S) averaged over heads, or
    (N, num_heads, L, S), or None when need_weights=False (the faster path, which the Transformer
    layers use). A query whose keys are all masked gets zero weights rather than NaN.

    >>> mha = nn.MultiheadAttention(64, 4, batch_first=True)
    >>> x = rg.randn(8, 10, 64)
    >>> out, w = mha(x, x, x)         # out (8, 10, 64), w (8, 10, 10)
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, *, dtype=None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"MultiheadAttention: embed_dim and num_heads must be greater than 0, "
                             f"got embed_dim={embed_dim} and num_heads={num_heads}")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim must be divisible by num_heads, got "
                             f"embed_dim={embed_dim} and num_heads={num_heads}")
        if add_bias_kv or add_zero_attn:
            raise NotImplementedError("MultiheadAttention: add_bias_kv and add_zero_attn are not "
                                      "supported")
        if not 0 <= dropout <= 1:
            raise ValueError(f"MultiheadAttention: dropout must be in [0, 1], got {dropout}")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        self.add_zero_attn = False
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(empty(3 * embed_dim, embed_dim, dtype=dtype))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = Parameter(empty(embed_dim, embed_dim, dtype=dtype))
            self.k_proj_weight = Parameter(empty(embed_dim, self.kdim, dtype=dtype))
            self.v_proj_weight = Parameter(empty(embed_dim, self.vdim, dtype=dtype))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(empty(3 * embed_dim, dtype=dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        self.bias_k = self.bias_v = None
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # PyTorch's: Glorot-uniform projections, zero biases; out_proj keeps Linear's weight init
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)

    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                key_padding_mask: Tensor | None = None, need_weights: bool = True,
                attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        """Attend from `query` over `key`/`value`; returns (output, weights or None).

        `is_causal=True` hides keys after each query. PyTorch takes it as a hint that `attn_mask`
        already is the causal mask (and requires the mask); here the mask, when given, is used as
        it is, and without one the causal mask is applied.
        """
        batched = self._check_inputs(query, key, value)
        if not batched:       # (L, E): run as a batch of one, batch first
            q1 = query.unsqueeze(0)      # keeping `query is key` (the packed self-attention path)
            k1 = q1 if key is query else key.unsqueeze(0)
            value = q1 if value is query else k1 if value is key else value.unsqueeze(0)
            query, key = q1, k1
        batch_first = self.batch_first or not batched
        n, tgt_len = (query.shape[0], query.shape[1]) if batch_first else query.shape[1::-1]
        src_len = key.shape[1] if batch_first else key.shape[0]
        heads = self.num_heads
        attn_bias = self._mask(attn_mask, "attn_mask", query.dtype)
        if attn_bias is not None:
            if tuple(attn_bias.shape) == (n * heads, tgt_len, src_len):
                attn_bias = attn_bias.reshape(n, heads, tgt_len, src_len)
            elif tuple(attn_bias.shape) != (tgt_len, src_len):
                raise ValueError(f"MultiheadAttention: attn_mask of shape "
                                 f"{tuple(attn_bias.shape)} should be (L, S) = ({tgt_len}, "
                                 f"{src_len}) or (N * num_heads, L, S) = ({n * heads}, {tgt_len}, "
                                 f"{src_len})")
        pad_bias = self._mask(key_padding_mask, "key_padding_mask", query.dtype)
        if pad_bias is not None:
            if not batched:
                pad_bias = pad_bias.reshape(1, -1) if pad_bias.ndim == 1 else pad_bias
            if pad_bias.shape != (n, src_len):
                raise ValueError(f"MultiheadAttention: key_padding_mask should have shape "
                                 f"(N, S) = ({n}, {src_len}), got {tuple(pad_bias.shape)}")
            pad_bias = pad_bias.reshape(n, 1, 1, src_len)
        causal = bool(is_causal) and attn_bias is None

        q, k, v = self._in_projection(query, key, value)
        scale = 1.0 / math.sqrt(self.head_dim)
        drop = None
        if self.training and self.dropout > 0:
            drop = dropout_scale((n, heads, tgt_len, src_len), self.dropout, query.dtype)
        args = (q, k, v, attn_bias, pad_bias)
        options = dict(heads=heads, batch_first=batch_first, causal=causal, scale=scale, drop=drop)
        out = MultiheadAttentionCore.apply(*args, **options)
        out = self.out_proj(out)
        weights = None
        if need_weights:
            weights = MultiheadAttentionWeights.apply(*args, **options)
            if average_attn_weights:
                weights = weights.mean(dim=1)
        if not batched:
            out = out.squeeze(0)
            weights = weights.squeeze(0) if weights is not None else None
        return out, weights

    def _in_projection(self, query: Tensor, key: Tensor, value: Tensor) -> tuple:
        """q, k, v projections; one GEMM for self-attention ([q | k | v] packed, k and v None) and
        one for keys and values together when they are the same tensor ([k | v] packed, v None)."""
        e, b = self.embed_dim, self.in_proj_bias
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            if query is key and key is value:
                return linear(query, w, b), None, None
            if key is value:
                return (linear(query, w[:e], None if b is None else b[:e]),
                        linear(key, w[e:], None if b is None else b[e:]), None)
            ws = (w[:e], w[e:2 * e], w[2 * e:])
        else:
            ws = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        bs = (None,) * 3 if b is None else (b[:e], b[e:2 * e], b[2 * e:])
        return tuple(linear(x, wi, bi) for x, wi, bi in zip((query, key, value), ws, bs))

    def _check_inputs(self, query, key, value) -> bool:
        """Raise on wrong ranks or feature sizes; True if the input is batched (3-D)."""
        name = f"MultiheadAttention(embed_dim={self.embed_dim}, num_heads={self.num_heads})"
        if query.ndim not in (2, 3):
            raise ValueError(f"{name}: query should be unbatched 2-D or batched 3-D, got shape "
                             f"{tuple(query.shape)}")
        if key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(f"{name}: key and value should be {query.ndim}-D like query, got "
                             f"shapes {tuple(key.shape)} and {tuple(value.shape)}")
        for what, x, dim in (("query", query, self.embed_dim), ("key", key, self.kdim),
                             ("value", value, self.vdim)):
            if x.shape[-1] != dim:
                expected = "embed_dim" if what == "query" else f"{what[0]}dim"
                raise ValueError(f"{name}: expected {what} with last dimension {expected}={dim}, "
                                 f"got shape {tuple(x.shape)}")
        w = self.in_proj_weight if self._qkv_same_embed_dim else self.q_proj_weight
        if query.data.dtype != w.data.dtype:  # as PyTorch: no silent upcast
            raise TypeError(f"{name}: input dtype {query.data.dtype} and weight dtype "
                            f"{w.data.dtype} differ; convert one of them (x.float() or "
                            "model.double())")
        if key.shape[:-1] != value.shape[:-1]:
            raise ValueError(f"{name}: key and value should have the same sequence and batch "
                             f"dimensions, got shapes {tuple(key.shape)} and {tuple(value.shape)}")
        if query.ndim == 3:
            b = 0 if self.batch_first else 1
            if query.shape[b] != key.shape[b]:
                raise ValueError(f"{name}: query and key have different batch sizes "
                                 f"(shapes {tuple(query.shape)} and {tuple(key.shape)}, "
                                 f"batch_first={self.batch_first})")
        return query.ndim == 3

    @staticmethod
    def _mask(mask, name: str, dtype):
        """A PyTorch-style mask as an additive float bias: bool True -> -inf, float as it is.
        A float Tensor that requires grad stays a Tensor, and gets its gradient."""
        if mask is None:
            return None
        array = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
        if array.dtype == np.bool_:
            return np.where(array, np.dtype(dtype).type(-np.inf), np.dtype(dtype).type(0))
        if array.dtype.kind != "f":
            raise TypeError(f"MultiheadAttention: only bool and floating-point {name} are "
                            f"supported, got dtype {array.dtype}")
        if isinstance(mask, Tensor) and mask.requires_grad:
            return mask
        return array.astype(dtype, copy=False)

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, "
                f"batch_first={self.batch_first}")

