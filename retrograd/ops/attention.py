"""Scaled dot-product attention (Vaswani et al., 2017), fused: softmax(q k^T * scale + mask) v as
one op with a hand-written backward on raw arrays (so it is once-differentiable).

With s = scale * q k^T + b,  p = softmax(s) along the keys,  o = p v:
    dv = p^T do,   dp = do v^T,   ds = p * (dp - rowsum(dp * p)),
    dq = scale * ds k,   dk = scale * ds^T q,   db = ds
One node instead of seven (matmul, scale, mask, softmax, dropout, matmul, head reshapes), and in the
multi-head form no copies either: heads are strided views of the projections, and the output and
input gradients are written straight into the (batch, seq, heads * head_dim) layout.

Masks are additive float biases here (-inf where a key is hidden); callers turn bool masks into
them. A query whose every key is masked has no distribution to take: its weights are zero, so its
output and gradients are zero rather than NaN. PyTorch's scaled_dot_product_attention does the same
(2.5 and later); its MultiheadAttention with need_weights=True returns NaN there instead.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Function, array_function
from ..random import rng
from ..tensor import Tensor
from .linalg import axis_sums
from .norm import _rowdot
from .reduce import unshifted_exp_sums
from .shape import broadcasts_to

_CAUSAL: dict = {}


def causal_bias(n_queries: int, n_keys: int, dtype) -> np.ndarray:
    """(L, S) additive mask: 0 where key j <= query i, -inf above the diagonal (top-left aligned,
    as in PyTorch). Cached and read-only: every layer of every step shares it."""
    key = (n_queries, n_keys, np.dtype(dtype))
    bias = _CAUSAL.get(key)
    if bias is None:
        bias = np.triu(np.full((n_queries, n_keys), -np.inf, dtype=dtype), k=1)
        bias.flags.writeable = False
        if len(_CAUSAL) > 32:
            _CAUSAL.clear()
        _CAUSAL[key] = bias
    return bias


@array_function    # a compiled step draws a new mask each call
def dropout_scale(shape: tuple, p: float, dtype) -> np.ndarray:
    """Inverted-dropout multipliers for attention weights: 0 with probability p, else 1/(1-p)."""
    dtype = np.dtype(dtype)
    if p >= 1:
        return np.zeros(shape, dtype=dtype)
    draw = rng().random(shape, dtype=dtype if dtype in (np.float32, np.float64) else np.float32)
    return (draw >= p) * dtype.type(1.0 / (1.0 - p))


def _softmax_scores(q: np.ndarray, k: np.ndarray, scale: float, biases: list) -> np.ndarray:
    """softmax(scale * q k^T + sum(biases)) along the keys; a row with no visible key is zeros."""
    s = _scores(q, k, scale, biases)
    # without the shift by the row maximum (slow along rows as short as a sequence) when the sums
    # show it is safe (ops/reduce.py); else, or for hidden rows (sum 0), again the shifted way
    total = unshifted_exp_sums(s, s, axis=-1)
    if total is None:
        return _shifted_softmax_scores(q, k, scale, biases)
    s /= total
    return s


def _scores(q: np.ndarray, k: np.ndarray, scale: float, biases: list) -> np.ndarray:
    s = q @ np.swapaxes(k, -1, -2)
    s *= scale
    for b in biases:
        s += b
    return s


def _shifted_softmax_scores(q: np.ndarray, k: np.ndarray, scale: float,
                            biases: list) -> np.ndarray:
    """_softmax_scores the stable way, shifting each row by its maximum."""
    s = _scores(q, k, scale, biases)
    m = s.max(axis=-1, keepdims=True)
    hidden = None
    if biases:
        hidden = m == -np.inf
        if hidden.any():
            m[hidden] = 0      # exp(-inf - 0) = 0 for the whole row, instead of exp(nan)
        else:
            hidden = None
    s -= m
    np.exp(s, out=s)
    total = axis_sums(s, -1)
    if hidden is not None:
        total[hidden] = 1
    s /= total
    return s


def _softmax_backward(p: np.ndarray, dp: np.ndarray) -> np.ndarray:
    """Jacobian-vector product of the row softmax, p * (dp - <dp, p>), in dp's memory."""
    dp -= _rowdot(dp, p)[..., None]
    dp *= p
    return dp


class ScaledDotProductAttention(Function):
    """softmax(q k^T * scale + mask) v over the last two axes, any leading (batch, head) axes.

    `mask` is an additive float mask broadcastable to (..., L, S) (a Tensor gets its gradient),
    `drop` the dropout multipliers for the weights, or None.
    """

    @staticmethod
    def forward(ctx, q, k, v, mask=None, scale=1.0, causal=False, drop=None):
        biases = [causal_bias(q.shape[-2], k.shape[-2], q.dtype)] if causal else []
        if mask is not None:
            biases.append(mask)
        p = _softmax_scores(q, k, scale, biases)
        out = (p if drop is None else p * drop) @ v
        ctx.save_for_backward(q, k, v, p)
        ctx.scale, ctx.drop = scale, drop
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v, p = ctx.saved_tensors
        need_q, need_k, need_v, need_mask = ctx.needs_input_grad
        scale, drop = ctx.scale, ctx.drop
        dq = dk = dv = None
        if need_v:
            dv = np.swapaxes(p if drop is None else p * drop, -1, -2) @ grad
        if need_q or need_k or need_mask:
            dp = grad @ np.swapaxes(v, -1, -2)
            if drop is not None:
                dp *= drop
            ds = _softmax_backward(p, dp)
            if need_q:
                dq = ds @ k
                dq *= scale
            if need_k:
                dk = np.swapaxes(ds, -1, -2) @ q
                dk *= scale
        return dq, dk, dv, (ds if need_mask else None)


# -- the multi-head form: projections in, merged heads out ---------------------------------------

def split_heads(x: np.ndarray, heads: int, batch_first: bool) -> np.ndarray:
    """(N, L, H*D) or (L, N, H*D) -> a (N, H, L, D) view (no copy: BLAS takes the strides)."""
    a, b, e = x.shape
    x = x.reshape(a, b, heads, e // heads)
    return x.transpose(0, 2, 1, 3) if batch_first else x.transpose(1, 2, 0, 3)


def _unpack(q, k, v):
    """The q, k, v parts of possibly packed projections: k None means q holds [q | k | v] along its
    last axis; v None means k holds [k | v]."""
    if k is None:
        e = q.shape[-1] // 3
        return q[..., :e], q[..., e:2 * e], q[..., 2 * e:]
    if v is None:
        e = k.shape[-1] // 2
        return q, k[..., :e], k[..., e:]
    return q, k, v


class _HeadsAttention(Function):
    """Shared by the two multi-head ops: forward computes the weights; backward the gradients of
    the inputs from dL/d(weights) (`ds`, before the softmax), in the inputs' packed layout."""

    @staticmethod
    def _weights(ctx, q, k, v, attn_mask, padding_mask, heads, batch_first, causal, scale, drop):
        qa, ka, _ = _unpack(q, k, v)
        qh, kh = split_heads(qa, heads, batch_first), split_heads(ka, heads, batch_first)
        biases = [causal_bias(qh.shape[2], kh.shape[2], qh.dtype)] if causal else []
        biases += [m for m in (attn_mask, padding_mask) if m is not None]
        p = _softmax_scores(qh, kh, scale, biases)
        ctx.heads, ctx.batch_first, ctx.scale, ctx.drop = heads, batch_first, scale, drop
        return p

    @staticmethod
    def _input_grads(ctx, q, k, v, ds, dv_of=None):
        """Gradients of q, k, v (packed as they came) from ds; dv_of(view) writes v's gradient."""
        needs = ctx.needs_input_grad
        heads, bf, scale = ctx.heads, ctx.batch_first, ctx.scale
        grads = [np.empty_like(x) if (x is not None and need) else None
                 for x, need in zip((q, k, v), needs[:3])]
        if k is None:                      # one buffer [dq | dk | dv]
            gq, gk, gv = _unpack(grads[0], None, None) if grads[0] is not None else (None,) * 3
        elif v is None:                    # dq, and one buffer [dk | dv]
            gq = grads[0]
            gk, gv = _unpack(None, grads[1], None)[1:] if grads[1] is not None else (None,) * 2
        else:
            gq, gk, gv = grads
        qa, ka, _ = _unpack(q, k, v)
        if gq is not None and gk is not None and not (needs[3] or needs[4]):
            # ds is not the masks' gradient: scale it once, in place and contiguous, rather than
            # dq and dk, strided views into the packed buffer (0.08 -> 0.02 ms per Transformer
            # benchmark layer)
            ds *= scale
            scale = None
        if gq is not None:
            np.matmul(ds, split_heads(ka, heads, bf), out=split_heads(gq, heads, bf))
            if scale is not None:
                gq *= scale
        if gk is not None:
            np.matmul(np.swapaxes(ds, -1, -2), split_heads(qa, heads, bf),
                      out=split_heads(gk, heads, bf))
            if scale is not None:
                gk *= scale
        if gv is not None:
            if dv_of is None:
                gv[...] = 0      # the weights do not depend on v
            else:
                dv_of(split_heads(gv, heads, bf))
        return grads


class MultiheadAttentionCore(_HeadsAttention):
    """Attention over `heads` heads of projected queries, keys and values in their sequence layout,
    (N, L, E) if batch_first else (L, N, E); returns the heads merged back, same layout.

    q, k, v may be packed (k None: q is [q | k | v]; v None: k is [k | v]), as a fused in-projection
    leaves them. Masks broadcast to (N, heads, L, S); `drop` holds dropout multipliers or None.
    """

    @staticmethod
    def forward(ctx, q, k, v, attn_mask, padding_mask, heads, batch_first, causal, scale,
                drop=None):
        p = _HeadsAttention._weights(ctx, q, k, v, attn_mask, padding_mask, heads, batch_first,
                                     causal, scale, drop)
        qa, _, va = _unpack(q, k, v)
        out = np.empty(qa.shape[:2] + va.shape[-1:], dtype=p.dtype)
        np.matmul(p if drop is None else p * drop, split_heads(va, heads, batch_first),
                  out=split_heads(out, heads, batch_first))
        ctx.save_for_backward(q, k, v, p)
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v, p = ctx.saved_tensors
        drop, heads, bf = ctx.drop, ctx.heads, ctx.batch_first
        gh = split_heads(grad, heads, bf)
        pd = p if drop is None else p * drop
        _, _, va = _unpack(q, k, v)
        dp = gh @ np.swapaxes(split_heads(va, heads, bf), -1, -2)
        if drop is not None:
            dp *= drop
        ds = _softmax_backward(p, dp)
        grads = _HeadsAttention._input_grads(
            ctx, q, k, v, ds, lambda out: np.matmul(np.swapaxes(pd, -1, -2), gh, out=out))
        needs = ctx.needs_input_grad
        return (*grads, ds if needs[3] else None, ds if needs[4] else None)


class MultiheadAttentionWeights(_HeadsAttention):
    """The attention weights (N, heads, L, S) of MultiheadAttentionCore with the same arguments
    (after dropout, as PyTorch returns them): the op behind need_weights=True."""

    @staticmethod
    def forward(ctx, q, k, v, attn_mask, padding_mask, heads, batch_first, causal, scale,
                drop=None):
        p = _HeadsAttention._weights(ctx, q, k, v, attn_mask, padding_mask, heads, batch_first,
                                     causal, scale, drop)
        ctx.save_for_backward(q, k, v, p)
        return p if drop is None else p * drop

    @staticmethod
    def backward(ctx, grad):
        q, k, v, p = ctx.saved_tensors
        dp = grad * ctx.drop if ctx.drop is not None else grad.copy()
        ds = _softmax_backward(p, dp)
        grads = _HeadsAttention._input_grads(ctx, q, k, v, ds)
        needs = ctx.needs_input_grad
        return (*grads, ds if needs[3] else None, ds if needs[4] else None)


# -- the functional form ---------------------------------------------------------------------------

def _repeat_heads(x: Tensor, q: Tensor) -> Tensor:
    """Key or value heads repeated to the query's head count: head j serves query heads
    j*g .. j*g + g - 1 (torch's repeat_interleave along dimension -3)."""
    if x.ndim < 3 or q.ndim < 3 or q.shape[-3] % x.shape[-3]:
        raise ValueError(f"scaled_dot_product_attention: with enable_gqa the query's heads "
                         f"(dimension -3) must be a multiple of the key's and value's, got shapes "
                         f"{q.shape} and {x.shape}")
    groups = q.shape[-3] // x.shape[-3]
    if groups == 1:
        return x
    lead, (h, n, e) = x.shape[:-3], x.shape[-3:]
    return x.reshape(*lead, h, 1, n, e).expand(*lead, h, groups, n, e).reshape(
        *lead, h * groups, n, e)


def _array(x):
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False) -> Tensor:
    """softmax(query key^T * scale + mask) value, PyTorch's F.scaled_dot_product_attention.

    query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev); leading (batch, head)
    dimensions broadcast. `attn_mask` broadcasts to (..., L, S): a bool mask is True where a query
    may attend (the opposite of MultiheadAttention's masks), a float mask is added to the scores.
    `is_causal` hides keys after each query (top-left aligned); scale defaults to 1/sqrt(E).
    Dropout on the weights is always applied when dropout_p > 0: pass 0.0 in evaluation. A query
    with no visible key gets zero weights and a zero output (as in PyTorch), never NaN.
    enable_gqa=True lets key and value have fewer heads (dimension -3) than query, each shared by
    a group of consecutive query heads (grouped-query attention).

    >>> q = rg.randn(2, 4, 10, 16)                       # (batch, heads, L, head_dim)
    >>> F.scaled_dot_product_attention(q, q, q, is_causal=True).shape
    (2, 4, 10, 16)
    """
    q, k, v = (x if isinstance(x, Tensor) else Tensor(x) for x in (query, key, value))
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ValueError(f"scaled_dot_product_attention: query, key and value need at least 2 "
                         f"dimensions (..., seq, features), got shapes {q.shape}, {k.shape}, "
                         f"{v.shape}")
    if enable_gqa:
        k, v = _repeat_heads(k, q), _repeat_heads(v, q)
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"scaled_dot_product_attention: query and key need the same last "
                         f"dimension, got shapes {q.shape} and {k.shape}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention: key and value need the same sequence "
                         f"length (dimension -2), got shapes {k.shape} and {v.shape}")
    try:
        batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except ValueError:
        raise ValueError(f"scaled_dot_product_attention: the leading dimensions of query, key "
                         f"and value do not broadcast: {q.shape}, {k.shape}, {v.shape}") from None
    if not 0 <= dropout_p <= 1:
        raise ValueError(f"scaled_dot_product_attention: dropout_p must be in [0, 1], "
                         f"got {dropout_p}")
    weights_shape = batch + (q.shape[-2], k.shape[-2])
    mask = None
    if attn_mask is not None:
        if is_causal:
            raise ValueError("scaled_dot_product_attention: pass either attn_mask or "
                             "is_causal=True, not both (combine them into one mask)")
        m = _array(attn_mask)
        if not broadcasts_to(m.shape, weights_shape):
            raise ValueError(f"scaled_dot_product_attention: attn_mask of shape {m.shape} does "
                             f"not broadcast to the attention weights' shape {weights_shape} "
                             "(..., L, S)")
        if m.dtype == np.bool_:
            mask = np.where(m, q.dtype.type(0), q.dtype.type(-np.inf))
        elif m.dtype.kind == "f":
            mask = attn_mask if isinstance(attn_mask, Tensor) else m.astype(q.dtype, copy=False)
        else:
            raise TypeError(f"scaled_dot_product_attention: attn_mask must be bool or floating "
                            f"point, got dtype {m.dtype}")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    drop = dropout_scale(weights_shape, dropout_p, q.dtype) if dropout_p > 0 else None
    return ScaledDotProductAttention.apply(q, k, v, mask, scale=scale, causal=bool(is_causal),
                                           drop=drop)
