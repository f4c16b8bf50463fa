"""Attention and Transformers against PyTorch.

scaled_dot_product_attention, MultiheadAttention, the encoder and decoder layers and stacks and the
full Transformer are built in both libraries from the same weights (torch's state dict loaded into
ours); outputs, attention weights, input gradients and every parameter gradient must agree in
float32, and rg.gradcheck must pass in float64. Then the behaviour PyTorch leaves open (fully
masked rows, is_causal without a mask), the positional encodings (no torch equivalent: checked
against their formula), error messages, and one small model that learns.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import retrograd as rg
from retrograd import nn
from retrograd.nn import attention, positional, transformer
from retrograd.ops.attention import scaled_dot_product_attention as rg_sdpa
from helpers import assert_close

torch_sdpa = torch.nn.functional.scaled_dot_product_attention


class ours:
    """Our modules under torch.nn's names (whatever nn/__init__ exports), so `make(lib)` builders
    serve both libraries."""
    MultiheadAttention = attention.MultiheadAttention
    TransformerEncoderLayer = transformer.TransformerEncoderLayer
    TransformerEncoder = transformer.TransformerEncoder
    TransformerDecoderLayer = transformer.TransformerDecoderLayer
    TransformerDecoder = transformer.TransformerDecoder
    Transformer = transformer.Transformer
    LayerNorm = nn.LayerNorm
    GELU = nn.GELU
    functional = nn.functional


def rng(seed=0):
    return np.random.default_rng(seed)


def pair(make, seed=0):
    """(torch module, our module) with the same random weights, scaled to keep softmax soft."""
    t = make(torch.nn)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in t.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g))
    r = make(ours)
    assert r.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()}) == ([], [])
    return t, r


def run_both(t, r, args, kwargs=None, train=True, tol=2e-5):
    """Call both modules on the same inputs and compare outputs, input and parameter gradients.

    Float arrays in `args` become leaves that require grad; the same array object passed twice
    becomes the same tensor (self-attention takes the packed path only for `query is key`).
    Arrays in `kwargs` (masks) are constants.
    """
    kwargs = kwargs or {}
    t.train(train)
    r.train(train)
    leaves = {}
    for a in args:
        if id(a) not in leaves:
            leaves[id(a)] = (torch.tensor(a, requires_grad=True), rg.tensor(a, requires_grad=True))
    targs = [leaves[id(a)][0] for a in args]
    rargs = [leaves[id(a)][1] for a in args]
    tkw = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    rkw = {k: rg.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    touts, routs = t(*targs, **tkw), r(*rargs, **rkw)
    touts = list(touts) if isinstance(touts, tuple) else [touts]
    routs = list(routs) if isinstance(routs, tuple) else [routs]
    tloss, rloss = 0, 0
    for i, (to, ro) in enumerate(zip(touts, routs)):
        if to is None:
            assert ro is None, "torch returns no weights, we do"
            continue
        assert_close(ro.data, to.detach().numpy(), f"output {i}", rtol=tol, atol=tol)
        proj = rng(10 + i).standard_normal(to.shape).astype(np.float32)
        tloss = tloss + (to * torch.tensor(proj)).sum()
        rloss = rloss + (ro * proj).sum()
    tloss.backward()
    rloss.backward()
    for n, (tl, rl) in enumerate(leaves.values()):
        assert_close(rl.grad.data, tl.grad.numpy(), f"input {n} gradient", rtol=tol, atol=tol)
    ours_params = dict(r.named_parameters())
    assert list(ours_params) == [n for n, _ in t.named_parameters()]
    for name, p in t.named_parameters():
        assert_close(ours_params[name].grad.data, p.grad.numpy(), f"gradient of {name}",
                     rtol=tol, atol=tol)
    return touts, routs


def causal_bool(n):
    """The causal mask in torch.nn's bool convention: True above the diagonal (hidden)."""
    return np.triu(np.ones((n, n), dtype=bool), 1)


def visible_bool(shape, seed, p=0.3):
    """A bool mask, True (masked, in torch.nn's convention) with probability p, never a full row."""
    m = rng(seed).random(shape) < p
    m[..., 0] = False
    return m


# -- scaled_dot_product_attention -----------------------------------------------------------------

SDPA = {
    "4d": dict(q=(2, 3, 4, 5), k=(2, 3, 6, 5), v=(2, 3, 6, 7)),
    "3d_self": dict(q=(2, 5, 4), k=(2, 5, 4), v=(2, 5, 4)),
    "2d": dict(q=(4, 3), k=(6, 3), v=(6, 2)),
    "broadcast_heads": dict(q=(2, 3, 4, 5), k=(2, 1, 6, 5), v=(1, 3, 6, 5)),
    "causal_square": dict(q=(2, 2, 5, 4), k=(2, 2, 5, 4), v=(2, 2, 5, 4), is_causal=True),
    "causal_rect": dict(q=(2, 6, 3), k=(2, 4, 3), v=(2, 4, 3), is_causal=True),
    "scale": dict(q=(2, 4, 3), k=(2, 5, 3), v=(2, 5, 3), scale=0.3),
    "bool_mask": dict(q=(2, 3, 4, 5), k=(2, 3, 6, 5), v=(2, 3, 6, 5), bool_mask=(4, 6)),
    "bool_mask_batched": dict(q=(2, 3, 4, 5), k=(2, 3, 6, 5), v=(2, 3, 6, 5),
                              bool_mask=(2, 1, 4, 6)),
    "float_mask": dict(q=(2, 3, 4, 5), k=(2, 3, 6, 5), v=(2, 3, 6, 5), float_mask=(2, 3, 4, 6)),
    "float_mask_broadcast": dict(q=(2, 4, 5), k=(2, 6, 5), v=(2, 6, 5), float_mask=(1, 6)),
    "grouped_query": dict(q=(2, 6, 4, 5), k=(2, 2, 3, 5), v=(2, 2, 3, 4), enable_gqa=True,
                          is_causal=True),
}


def sdpa_inputs(spec, seed=0):
    g = rng(seed)
    arrays = [g.standard_normal(spec[n]) for n in "qkv"]
    mask = None
    if "bool_mask" in spec:
        mask = ~visible_bool(spec["bool_mask"], seed + 1)     # sdpa: True = attend
    if "float_mask" in spec:
        mask = g.standard_normal(spec["float_mask"])
    options = {k: spec[k] for k in ("is_causal", "scale", "enable_gqa") if k in spec}
    return arrays, mask, options


@pytest.mark.parametrize("name", SDPA)
def test_sdpa_matches_torch(name):
    arrays, mask, options = sdpa_inputs(SDPA[name])
    float_mask = mask is not None and mask.dtype.kind == "f"
    t_in = [torch.tensor(a, dtype=torch.float32, requires_grad=True) for a in arrays]
    r_in = [rg.tensor(a.astype(np.float32), requires_grad=True) for a in arrays]
    t_mask = r_mask = None
    if mask is not None:   # a float mask is an input too: it gets a gradient
        t_mask = torch.tensor(mask.astype(np.float32) if float_mask else mask,
                              requires_grad=float_mask)
        r_mask = rg.tensor(mask.astype(np.float32) if float_mask else mask,
                           requires_grad=float_mask)
    tout = torch_sdpa(*t_in, attn_mask=t_mask, **options)
    rout = rg_sdpa(*r_in, attn_mask=r_mask, **options)
    assert rout.dtype == np.float32
    assert_close(rout.data, tout.detach().numpy(), f"{name}: output")
    g = rng(1).standard_normal(tout.shape).astype(np.float32)
    tout.backward(torch.tensor(g))
    rout.backward(g)
    for i, (t, r) in enumerate(zip(t_in, r_in)):
        assert_close(r.grad.data, t.grad.numpy(), f"{name}: gradient of input {i}")
    if float_mask:
        assert_close(r_mask.grad.data, t_mask.grad.numpy(), f"{name}: gradient of the mask")


@pytest.mark.parametrize("name", ["4d", "broadcast_heads", "causal_rect", "bool_mask",
                                  "float_mask_broadcast", "grouped_query"])
def test_sdpa_gradcheck(name):
    arrays, mask, options = sdpa_inputs(SDPA[name], seed=3)
    inputs = [rg.tensor(a, requires_grad=True) for a in arrays]
    if mask is not None and mask.dtype.kind == "f":
        inputs.append(rg.tensor(mask, requires_grad=True))
        assert rg.gradcheck(lambda q, k, v, m: rg_sdpa(q, k, v, attn_mask=m, **options), inputs)
    else:
        m = None if mask is None else rg.tensor(mask)
        assert rg.gradcheck(lambda q, k, v: rg_sdpa(q, k, v, attn_mask=m, **options), inputs)


def test_sdpa_dropout_gradcheck_and_statistics():
    q, k, v = (rg.randn(2, 3, 5, 4, dtype=rg.float64, requires_grad=True) for _ in range(3))

    def fn(q, k, v):
        rg.manual_seed(5)          # the same dropout mask at every evaluation
        return rg_sdpa(q, k, v, dropout_p=0.4)
    assert rg.gradcheck(fn, (q, k, v))
    # dropout zeroes whole weights: with v = ones, each output is the sum of the kept weights
    # divided by 0.6, 1 in expectation
    rg.manual_seed(0)
    out = rg_sdpa(rg.randn(4, 50, 8), rg.randn(4, 50, 8), rg.ones(4, 50, 8), dropout_p=0.4)
    assert abs(out.data.mean() - 1) < 0.05
    assert np.all(rg_sdpa(q, k, v, dropout_p=1.0).data == 0)


def test_sdpa_fully_masked_row_is_zero_like_torch():
    g = rng(4)
    q, k, v = (g.standard_normal((2, 3, 4)).astype(np.float32) for _ in range(3))
    mask = np.ones((3, 3), dtype=bool)
    mask[1] = False                                 # query 1 may attend to nothing
    t_in = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    r_in = [rg.tensor(a, requires_grad=True) for a in (q, k, v)]
    tout = torch_sdpa(*t_in, attn_mask=torch.tensor(mask))
    rout = rg_sdpa(*r_in, attn_mask=rg.tensor(mask))
    assert np.all(rout.data[:, 1] == 0) and np.isfinite(rout.data).all()
    assert_close(rout.data, tout.detach().numpy(), "output")
    tout.sum().backward()
    rout.sum().backward()
    for t, r in zip(t_in, r_in):
        assert np.isfinite(r.grad.data).all()
        assert_close(r.grad.data, t.grad.numpy(), "gradient")
    # the same with a float mask of -inf
    fmask = np.where(mask, 0, -np.inf).astype(np.float32)
    assert_close(rg_sdpa(*r_in, attn_mask=fmask).data, rout.data, "float -inf mask")


@pytest.mark.parametrize("regime", ["peaked", "overflow", "underflow_row", "hidden_row"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sdpa_score_regimes_match_torch(regime, dtype):
    """The weights skip the shift by the row maximum when exp and the row sums stay in range
    ('peaked': scores up to ~60), else are computed again the stable way: scores over 88 in
    float32 ('overflow'), a row whose every score is under -120 ('underflow_row'), a row with
    no visible key ('hidden_row')."""
    g = rng(11)
    q, k, v = (g.standard_normal((2, 3, 5, 4)) for _ in range(3))
    mask = np.zeros((5, 5))
    if regime == "peaked":
        q *= 8
    elif regime == "overflow":
        q *= 300
    elif regime == "underflow_row":
        mask[2] = -150.0
    else:
        mask[2] = -np.inf
    t_in = [torch.tensor(a.astype(dtype), requires_grad=True) for a in (q, k, v)]
    r_in = [rg.tensor(a.astype(dtype), requires_grad=True) for a in (q, k, v)]
    tout = torch_sdpa(*t_in, attn_mask=torch.tensor(mask.astype(dtype)))
    rout = rg_sdpa(*r_in, attn_mask=mask.astype(dtype))
    assert rout.dtype == dtype and np.isfinite(rout.data).all()
    tol = {} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-10}
    expected = tout.detach().numpy()
    if regime == "hidden_row":     # torch's math kernel gives NaN there; ours zeros (see above)
        assert np.all(rout.data[..., 2, :] == 0)
        expected = np.nan_to_num(expected)
    assert_close(rout.data, expected, "output", **tol)
    up = rng(1).standard_normal(tout.shape)
    if regime == "hidden_row":
        up[..., 2, :] = 0
    tout.backward(torch.tensor(up.astype(dtype)))
    rout.backward(up.astype(dtype))
    for i, (t, r) in enumerate(zip(t_in, r_in)):
        assert_close(r.grad.data, t.grad.numpy(), f"gradient of input {i}", **tol)


def test_sdpa_keeps_float64_and_defaults_scale():
    q = rg.randn(2, 3, 16, dtype=rg.float64)
    out = rg_sdpa(q, q, q)
    assert out.dtype == np.float64
    ref = torch_sdpa(*(torch.tensor(q.data),) * 3)
    np.testing.assert_allclose(out.data, ref.numpy(), rtol=1e-10)


# -- MultiheadAttention ---------------------------------------------------------------------------

E, H, N, L, S = 8, 2, 3, 5, 4


def x_(shape, seed):
    return rng(seed).standard_normal(shape).astype(np.float32)


MHA_CASES = {
    # name: (constructor kwargs, "self" or (q shape, k shape, v shape), forward kwargs)
    "self_seq_first": ({}, "self", {}),
    "self_batch_first_no_weights": ({"batch_first": True}, "self", {"need_weights": False}),
    "self_per_head_weights": ({}, "self", {"average_attn_weights": False}),
    "attn_mask_2d_bool": ({}, "self", {"attn_mask": visible_bool((L, L), 1)}),
    "attn_mask_2d_float": ({}, "self", {"attn_mask": x_((L, L), 2)}),
    "attn_mask_3d_float": ({"batch_first": True}, "self", {"attn_mask": x_((N * H, L, L), 3)}),
    "attn_mask_3d_bool_no_weights": ({}, "self", {"attn_mask": visible_bool((N * H, L, L), 4),
                                                  "need_weights": False}),
    "key_padding_bool": ({}, "self", {"key_padding_mask": visible_bool((N, L), 5, p=0.4)}),
    "key_padding_float": ({"batch_first": True}, "self",
                          {"key_padding_mask": x_((N, L), 6), "need_weights": False}),
    "both_masks": ({}, "self", {"attn_mask": visible_bool((L, L), 7),
                                "key_padding_mask": visible_bool((N, L), 8)}),
    "causal_hint_with_mask": ({"batch_first": True}, "self",
                              {"attn_mask": np.triu(np.full((L, L), -np.inf, np.float32), 1),
                               "is_causal": True, "need_weights": False}),
    "cross_key_is_value": ({}, ((L, N, E), (S, N, E), "key"),
                           {"key_padding_mask": visible_bool((N, S), 9)}),
    "cross_all_different": ({"batch_first": True}, ((N, L, E), (N, S, E), (N, S, E)),
                            {"attn_mask": x_((L, S), 10)}),
    "kdim_vdim": ({"kdim": 6, "vdim": 3}, ((L, N, E), (S, N, 6), (S, N, 3)), {}),
    "kdim_vdim_no_weights": ({"kdim": 6, "vdim": 3, "batch_first": True},
                             ((N, L, E), (N, S, 6), (N, S, 3)), {"need_weights": False}),
    "no_bias": ({"bias": False}, "self", {"attn_mask": visible_bool((L, L), 11)}),
    "no_bias_cross": ({"bias": False}, ((L, N, E), (S, N, E), "key"), {}),
    "unbatched": ({}, ((L, E), (S, E), (S, E)),
                  {"key_padding_mask": x_((S,), 12), "attn_mask": x_((H, L, S), 13)}),
    "unbatched_self": ({"batch_first": True}, ((L, E), "query", "query"), {}),
    "one_head": ({"num_heads": 1}, "self", {}),
}


def mha_args(spec, batch_first):
    if spec == "self":
        x = x_((N, L, E) if batch_first else (L, N, E), 20)
        return [x, x, x]
    q = x_(spec[0], 21)
    k = q if spec[1] == "query" else x_(spec[1], 22)
    v = {"key": k, "query": q}.get(spec[2]) if isinstance(spec[2], str) else x_(spec[2], 23)
    return [q, k, v]


@pytest.mark.parametrize("name", MHA_CASES)
def test_multihead_attention_matches_torch(name):
    ctor, spec, fwd = MHA_CASES[name]
    ctor = dict(ctor)
    heads = ctor.pop("num_heads", H)
    t, r = pair(lambda lib: lib.MultiheadAttention(E, heads, **ctor))
    run_both(t, r, mha_args(spec, ctor.get("batch_first", False)), fwd)


def count_calls(monkeypatch, name):
    """Count calls of torch.<name> (to know that torch took its fused inference path)."""
    calls = []
    original = getattr(torch, name)
    monkeypatch.setattr(torch, name, lambda *a, **k: calls.append(1) or original(*a, **k))
    return calls


def test_multihead_attention_eval_matches_torch_fast_path(monkeypatch):
    """In eval mode under no_grad torch takes its fused fast path; results must not change."""
    fast = count_calls(monkeypatch, "_native_multi_head_attention")
    t, r = pair(lambda lib: lib.MultiheadAttention(E, H, dropout=0.3, batch_first=True))
    t.eval()
    r.eval()
    x = x_((N, L, E), 30)
    kpm = visible_bool((N, L), 31)
    tx, rx = torch.tensor(x), rg.tensor(x)
    for need_weights in (True, False):
        with torch.no_grad():
            tout, tw = t(tx, tx, tx, key_padding_mask=torch.tensor(kpm),
                         need_weights=need_weights)
        with rg.no_grad():
            rout, rw = r(rx, rx, rx, key_padding_mask=rg.tensor(kpm), need_weights=need_weights)
        assert_close(rout.data, tout.numpy(), "eval output")
        if need_weights:
            assert_close(rw.data, tw.numpy(), "eval weights")
    assert len(fast) == 2


@pytest.mark.parametrize("need_weights", [True, False])
def test_multihead_attention_float_masks_get_gradients(need_weights):
    """A float mask is added to the scores: one that requires grad gets dL/d(scores), summed."""
    t, r = pair(lambda lib: lib.MultiheadAttention(E, H))
    x = x_((L, N, E), 32)
    masks = {"attn_mask": x_((N * H, L, L), 33), "key_padding_mask": x_((N, L), 34)}
    tm = {k: torch.tensor(v, requires_grad=True) for k, v in masks.items()}
    rm = {k: rg.tensor(v, requires_grad=True) for k, v in masks.items()}
    tout, tw = t(*(torch.tensor(x),) * 3, need_weights=need_weights, **tm)
    rout, rw = r(*(rg.tensor(x),) * 3, need_weights=need_weights, **rm)
    proj = rng(35).standard_normal(tout.shape).astype(np.float32)
    ((tout * torch.tensor(proj)).sum() + (0 if tw is None else tw.square().sum())).backward()
    ((rout * proj).sum() + (0 if rw is None else (rw * rw).sum())).backward()
    for k in masks:
        assert_close(rm[k].grad.data, tm[k].grad.numpy(), f"gradient of {k}")


def test_multihead_attention_init_and_names_like_torch():
    t = torch.nn.MultiheadAttention(12, 3)
    r = ours.MultiheadAttention(12, 3)
    assert [(n, tuple(p.shape)) for n, p in r.named_parameters()] == \
           [(n, tuple(p.shape)) for n, p in t.named_parameters()]
    assert np.all(r.in_proj_bias.data == 0) and np.all(r.out_proj.bias.data == 0)
    bound = np.sqrt(6 / (12 + 36))                  # Glorot-uniform over the (36, 12) stack
    w = r.in_proj_weight.data
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    sep = ours.MultiheadAttention(12, 3, kdim=5, vdim=7, bias=False)
    assert [(n, tuple(p.shape)) for n, p in sep.named_parameters()] == \
           [("q_proj_weight", (12, 12)), ("k_proj_weight", (12, 5)), ("v_proj_weight", (12, 7)),
            ("out_proj.weight", (12, 12))]


def test_multihead_attention_dropout_gradcheck():
    """Dropout on the weights in train mode; the same mask at every evaluation under a seed."""
    _, r = pair(lambda lib: lib.MultiheadAttention(4, 2, dropout=0.3))
    r.double().train()
    x = rg.tensor(rng(40).standard_normal((3, 2, 4)), requires_grad=True)
    kpm = rg.tensor(visible_bool((2, 3), 41))

    def fn(x, *params):
        rg.manual_seed(7)
        out, w = r(x, x, x, key_padding_mask=kpm, average_attn_weights=False)
        return out, w
    assert rg.gradcheck(fn, (x, *r.parameters()))


@pytest.mark.parametrize("name", ["cross_key_is_value", "kdim_vdim", "unbatched"])
def test_multihead_attention_gradcheck(name):
    ctor, spec, fwd = MHA_CASES[name]
    _, r = pair(lambda lib: lib.MultiheadAttention(E, H, **ctor))
    r.double()
    args = mha_args(spec, ctor.get("batch_first", False))
    leaves = {}
    for a in args:
        leaves.setdefault(id(a), rg.tensor(a.astype(np.float64), requires_grad=True))
    kw = {k: rg.tensor(v) for k, v in fwd.items()}
    ids = [id(a) for a in args]
    keys = list(leaves)

    def fn(*inputs):
        xs = dict(zip(keys, inputs))
        return r(*(xs[i] for i in ids), **kw)
    assert rg.gradcheck(fn, (*leaves.values(), *r.parameters()))


def test_multihead_attention_fully_masked_rows_are_zero_not_nan():
    """torch gives NaN with need_weights=True and zeros without; ours gives zeros both ways."""
    t, r = pair(lambda lib: lib.MultiheadAttention(E, H, batch_first=True))
    x = x_((N, L, E), 50)
    kpm = visible_bool((N, L), 51)
    kpm[1] = True                                  # sample 1: every key is padding
    run_both(t, r, [x, x, x], {"key_padding_mask": kpm, "need_weights": False})
    rout, rw = r(rg.tensor(x), rg.tensor(x), rg.tensor(x), key_padding_mask=rg.tensor(kpm))
    assert np.all(rw.data[1] == 0) and np.isfinite(rw.data).all()
    # no attention: the output is out_proj of zeros, its bias
    np.testing.assert_allclose(rout.data[1], np.broadcast_to(r.out_proj.bias.data, (L, E)),
                               rtol=1e-6)


def test_is_causal_without_mask_applies_the_causal_mask():
    """torch requires the mask with the is_causal hint; we build it."""
    _, r = pair(lambda lib: lib.MultiheadAttention(E, H, batch_first=True))
    x = rg.tensor(x_((N, L, E), 60))
    mask = transformer.generate_square_subsequent_mask(L)
    with_mask, w1 = r(x, x, x, attn_mask=mask)
    hinted, w2 = r(x, x, x, is_causal=True)
    assert_close(hinted.data, with_mask.data, "causal output")
    assert_close(w2.data, w1.data, "causal weights")
    assert np.all(np.triu(w2.data, 1) == 0)


def test_generate_square_subsequent_mask_matches_torch():
    ours_mask = ours.Transformer.generate_square_subsequent_mask(4)
    np.testing.assert_array_equal(ours_mask.data,
                                  torch.nn.Transformer.generate_square_subsequent_mask(4).numpy())
    assert ours_mask.dtype == np.float32
    assert transformer.generate_square_subsequent_mask(3, dtype=rg.float64).dtype == np.float64


# -- Transformer layers and stacks ----------------------------------------------------------------

D, FF = 8, 12


def encoder_layer(lib, norm_first=False, activation="relu", batch_first=False, **kw):
    if activation == "module_gelu":
        activation = lib.GELU()
    elif activation == "function_gelu":
        activation = lib.functional.gelu
    return lib.TransformerEncoderLayer(D, H, FF, dropout=kw.pop("dropout", 0.0),
                                       activation=activation, batch_first=batch_first,
                                       norm_first=norm_first, **kw)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post_ln", "pre_ln"])
@pytest.mark.parametrize("activation", ["relu", "gelu", "module_gelu", "function_gelu"])
def test_encoder_layer_matches_torch(norm_first, activation):
    t, r = pair(lambda lib: encoder_layer(lib, norm_first, activation))
    x = x_((L, N, D), 70)
    run_both(t, r, [x], {"src_mask": causal_bool(L),
                         "src_key_padding_mask": visible_bool((N, L), 71)}, tol=5e-5)


@pytest.mark.parametrize("options", [{"batch_first": True}, {"bias": False, "norm_first": True},
                                     {"layer_norm_eps": 1e-3, "batch_first": True}],
                         ids=["batch_first", "no_bias", "eps"])
def test_encoder_layer_options_match_torch(options):
    t, r = pair(lambda lib: encoder_layer(lib, **options))
    x = x_((N, L, D) if options.get("batch_first") else (L, N, D), 72)
    run_both(t, r, [x], {"src_mask": x_((L, L), 73)}, tol=5e-5)


def test_unbatched_layers_match_torch():
    t, r = pair(lambda lib: encoder_layer(lib, True, "gelu"))
    run_both(t, r, [x_((L, D), 76)], {"src_mask": causal_bool(L),
                                      "src_key_padding_mask": visible_bool((L,), 77)}, tol=5e-5)
    t, r = pair(lambda lib: decoder_layer(lib))
    run_both(t, r, [x_((L, D), 78), x_((S, D), 79)],
             {"tgt_mask": causal_bool(L), "memory_key_padding_mask": visible_bool((S,), 80)},
             tol=5e-5)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post_ln", "pre_ln"])
def test_encoder_layer_eval_matches_torch_fast_path(norm_first, monkeypatch):
    """Dropout 0.1, eval mode, no_grad: torch's fused encoder path; the same numbers."""
    fast = count_calls(monkeypatch, "_transformer_encoder_layer_fwd")
    t, r = pair(lambda lib: encoder_layer(lib, norm_first, batch_first=True, dropout=0.1))
    t.eval()
    r.eval()
    x = x_((N, L, D), 74)
    kpm = visible_bool((N, L), 75)
    with torch.no_grad():
        tout = t(torch.tensor(x), src_key_padding_mask=torch.tensor(kpm))
    with rg.no_grad():
        rout = r(rg.tensor(x), src_key_padding_mask=rg.tensor(kpm))
    assert len(fast) == 1
    assert_close(rout.data, tout.numpy(), "eval output", rtol=5e-5, atol=5e-5)


def test_encoder_stack_matches_torch_and_copies_layers():
    def make(lib):
        kw = {"enable_nested_tensor": False} if lib is torch.nn else {}
        return lib.TransformerEncoder(encoder_layer(lib, True, batch_first=True), 2,
                                      norm=lib.LayerNorm(D), **kw)
    t, r = pair(make)
    names = [n for n, _ in r.named_parameters()]
    assert names[0] == "layers.0.self_attn.in_proj_weight" and names[-1] == "norm.bias"
    x = x_((N, L, D), 80)
    run_both(t, r, [x], {"mask": causal_bool(L), "is_causal": True,
                         "src_key_padding_mask": visible_bool((N, L), 81)},
             tol=5e-5)
    # deep copies: the same starting weights, separate parameters
    layer = encoder_layer(ours)
    stack = ours.TransformerEncoder(layer, 3)
    a, b = stack.layers[0].linear1.weight, stack.layers[1].linear1.weight
    assert a is not b and a is not layer.linear1.weight
    np.testing.assert_array_equal(a.data, b.data)
    a.data[...] = 0
    assert not np.all(b.data == 0)


def decoder_layer(lib, norm_first=False, batch_first=False, **kw):
    return lib.TransformerDecoderLayer(D, H, FF, dropout=kw.pop("dropout", 0.0),
                                       batch_first=batch_first, norm_first=norm_first, **kw)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post_ln", "pre_ln"])
def test_decoder_layer_matches_torch(norm_first):
    t, r = pair(lambda lib: decoder_layer(lib, norm_first, activation="gelu"))
    tgt, memory = x_((L, N, D), 90), x_((S, N, D), 91)
    run_both(t, r, [tgt, memory], {
        "tgt_mask": causal_bool(L),
        "memory_mask": visible_bool((L, S), 92),
        "tgt_key_padding_mask": visible_bool((N, L), 93),
        "memory_key_padding_mask": visible_bool((N, S), 94),
        "tgt_is_causal": True}, tol=5e-5)


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
def test_decoder_stack_and_transformer_match_torch():
    def make_decoder(lib):
        return lib.TransformerDecoder(decoder_layer(lib, batch_first=True), 2,
                                      norm=lib.LayerNorm(D))
    t, r = pair(make_decoder)
    run_both(t, r, [x_((N, L, D), 95), x_((N, S, D), 96)],
             {"tgt_mask": transformer.generate_square_subsequent_mask(L).data}, tol=5e-5)

    def make_model(lib):
        return lib.Transformer(D, H, 2, 1, FF, dropout=0.0, norm_first=True)
    t, r = pair(make_model)
    run_both(t, r, [x_((S, N, D), 97), x_((L, N, D), 98)],
             {"tgt_mask": causal_bool(L),
              "src_key_padding_mask": visible_bool((N, S), 99),
              "memory_key_padding_mask": visible_bool((N, S), 99)}, tol=1e-4)


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
def test_transformer_init_is_glorot_like_torch():
    model = ours.Transformer(16, 2, 1, 1, 32)
    w = model.encoder.layers[0].linear1.weight.data              # (32, 16)
    bound = np.sqrt(6 / (16 + 32))
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    names = [n for n, _ in model.named_parameters()]
    assert names == [n for n, _ in torch.nn.Transformer(16, 2, 1, 1, 32).named_parameters()]


@pytest.mark.parametrize("which", ["encoder", "decoder"])
def test_layer_gradcheck(which):
    if which == "encoder":
        _, r = pair(lambda lib: lib.TransformerEncoderLayer(4, 2, 6, dropout=0.0,
                                                            activation="gelu"))
        inputs = [rg.tensor(rng(100).standard_normal((3, 2, 4)), requires_grad=True)]
        kpm = rg.tensor(visible_bool((2, 3), 101))
        r.double()
        fn = lambda x, *ps: r(x, src_key_padding_mask=kpm, is_causal=True)  # noqa: E731
    else:
        _, r = pair(lambda lib: lib.TransformerDecoderLayer(4, 2, 6, dropout=0.0,
                                                            norm_first=True))
        inputs = [rg.tensor(rng(102).standard_normal((3, 2, 4)), requires_grad=True),
                  rg.tensor(rng(103).standard_normal((2, 2, 4)), requires_grad=True)]
        r.double()
        fn = lambda x, m, *ps: r(x, m, tgt_is_causal=True)  # noqa: E731
    assert rg.gradcheck(fn, (*inputs, *r.parameters()))


# -- positional encodings -------------------------------------------------------------------------

def test_sinusoidal_encoding_is_the_paper_formula():
    d, max_len = 6, 20
    enc = positional.SinusoidalPositionalEncoding(d, max_len=max_len, dropout=0.0)
    expected = np.zeros((max_len, d))
    for pos in range(max_len):
        for i in range(0, d, 2):
            expected[pos, i] = np.sin(pos / 10000 ** (i / d))
            expected[pos, i + 1] = np.cos(pos / 10000 ** (i / d))
    np.testing.assert_allclose(enc.pe.data, expected, rtol=1e-6, atol=1e-6)
    assert enc.state_dict() == {} and enc.pe.dtype == np.float32
    x = rg.randn(7, 2, d, requires_grad=True)                  # (seq, batch, d)
    out = enc(x)
    np.testing.assert_allclose(out.data, x.data + expected[:7, None], atol=1e-6)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.ones((7, 2, d)))
    first = positional.SinusoidalPositionalEncoding(d, max_len, dropout=0.0, batch_first=True)
    xb = rg.randn(2, 7, d)
    np.testing.assert_allclose(first(xb).data, xb.data + expected[None, :7], atol=1e-6)
    odd = positional.SinusoidalPositionalEncoding(5, 4, dropout=0.0)
    np.testing.assert_allclose(odd.pe.data[:, 4], np.sin(np.arange(4) / 10000 ** (4 / 5)),
                               rtol=1e-6)


def test_sinusoidal_encoding_dropout_only_in_training():
    enc = positional.SinusoidalPositionalEncoding(8, 16, dropout=0.5)
    x = rg.zeros(10, 3, 8)
    rg.manual_seed(0)
    train = enc(x).data
    assert (train == 0).mean() > 0.3
    np.testing.assert_allclose(enc.eval()(x).data, np.broadcast_to(enc.pe.data[:10, None],
                                                                   (10, 3, 8)))


def test_learned_positional_encoding_adds_trained_rows():
    enc = positional.LearnedPositionalEncoding(10, 4, batch_first=True)
    assert [n for n, _ in enc.named_parameters()] == ["embedding.weight"]
    x = rg.randn(3, 6, 4, requires_grad=True)
    out = enc(x)
    np.testing.assert_allclose(out.data, x.data + enc.embedding.weight.data[None, :6], atol=1e-6)
    out.sum().backward()
    grad = enc.embedding.weight.grad.data
    np.testing.assert_allclose(grad[:6], np.full((6, 4), 3.0))     # summed over the batch
    assert np.all(grad[6:] == 0)
    seq_first = positional.LearnedPositionalEncoding(10, 4)
    y = rg.randn(6, 3, 4)
    np.testing.assert_allclose(seq_first(y).data,
                               y.data + seq_first.embedding.weight.data[:6, None], atol=1e-6)


# -- errors ---------------------------------------------------------------------------------------

def test_error_messages():
    with pytest.raises(ValueError, match="embed_dim must be divisible by num_heads, got "
                                         "embed_dim=10 and num_heads=3"):
        ours.MultiheadAttention(10, 3)
    mha = ours.MultiheadAttention(8, 2)
    x = rg.randn(5, 3, 8)
    with pytest.raises(ValueError, match=r"expected query with last dimension embed_dim=8, got "
                                         r"shape \(5, 3, 6\)"):
        y = rg.randn(5, 3, 6)
        mha(y, y, y)
    with pytest.raises(ValueError, match=r"expected key with last dimension kdim=8"):
        mha(x, rg.randn(4, 3, 7), rg.randn(4, 3, 7))
    with pytest.raises(ValueError, match=r"attn_mask of shape \(5, 4\) should be \(L, S\) = "
                                         r"\(5, 5\) or \(N \* num_heads, L, S\) = \(6, 5, 5\)"):
        mha(x, x, x, attn_mask=rg.zeros(5, 4))
    with pytest.raises(ValueError, match=r"attn_mask of shape \(3, 5, 5\) should be"):
        mha(x, x, x, attn_mask=rg.zeros(3, 5, 5))
    with pytest.raises(ValueError, match=r"key_padding_mask should have shape \(N, S\) = "
                                         r"\(3, 5\), got \(5, 3\)"):
        mha(x, x, x, key_padding_mask=rg.zeros(5, 3).bool())
    with pytest.raises(TypeError, match="only bool and floating-point attn_mask"):
        mha(x, x, x, attn_mask=rg.zeros(5, 5).long())
    with pytest.raises(ValueError, match="query and key have different batch sizes"):
        mha(x, rg.randn(4, 2, 8), rg.randn(4, 2, 8))
    with pytest.raises(ValueError, match="key and value should have the same sequence"):
        mha(x, rg.randn(4, 3, 8), rg.randn(6, 3, 8))
    with pytest.raises(ValueError, match="query should be unbatched 2-D or batched 3-D"):
        mha(rg.randn(8), rg.randn(8), rg.randn(8))
    with pytest.raises(ValueError, match=r"query and key need the same last dimension, got "
                                         r"shapes \(2, 3, 4\) and \(2, 5, 6\)"):
        rg_sdpa(rg.randn(2, 3, 4), rg.randn(2, 5, 6), rg.randn(2, 5, 6))
    with pytest.raises(ValueError, match="key and value need the same sequence length"):
        rg_sdpa(rg.randn(2, 3, 4), rg.randn(2, 5, 4), rg.randn(2, 6, 4))
    with pytest.raises(ValueError, match=r"attn_mask of shape \(3, 4\) does not broadcast to "
                                         r"the attention weights' shape \(2, 3, 5\)"):
        rg_sdpa(rg.randn(2, 3, 4), rg.randn(2, 5, 4), rg.randn(2, 5, 4),
                attn_mask=rg.zeros(3, 4))
    with pytest.raises(ValueError, match=r"with enable_gqa the query's heads \(dimension -3\) "
                                         r"must be a multiple of the key's and value's"):
        rg_sdpa(rg.randn(1, 3, 2, 4), rg.randn(1, 2, 2, 4), rg.randn(1, 2, 2, 4),
                enable_gqa=True)
    with pytest.raises(ValueError, match="either attn_mask or is_causal=True, not both"):
        rg_sdpa(x, x, x, attn_mask=rg.zeros(3, 3), is_causal=True)
    with pytest.raises(ValueError, match="activation should be 'relu', 'gelu' or a callable, "
                                         "not 'tanh'"):
        ours.TransformerEncoderLayer(8, 2, activation="tanh")
    with pytest.raises(ValueError, match="sequence of length 12 is longer than max_len=10"):
        positional.SinusoidalPositionalEncoding(8, 10)(rg.randn(12, 2, 8))
    with pytest.raises(ValueError, match=r"expected input \(seq, batch, 8\)"):
        positional.LearnedPositionalEncoding(10, 8)(rg.randn(4, 2, 6))


# -- it learns ------------------------------------------------------------------------------------

def test_tiny_causal_language_model_learns():
    """A one-layer pre-LN encoder with learned positions learns to continue a counting sequence
    (next token = token + 1 mod vocab) from a random start."""
    rg.manual_seed(0)
    vocab, d, length = 11, 16, 8

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab, d)
            self.pos = positional.LearnedPositionalEncoding(length, d, batch_first=True)
            self.encoder = ours.TransformerEncoder(ours.TransformerEncoderLayer(
                d, 2, 32, dropout=0.0, batch_first=True, norm_first=True), 1)
            self.head = nn.Linear(d, vocab)

        def forward(self, ids):
            h = self.pos(self.embed(ids) * 0.3)
            return self.head(self.encoder(h, is_causal=True))

    model = LM()
    opt = rg.optim.Adam(model.parameters(), lr=0.01)
    g = rng(0)
    losses = []
    for _ in range(60):
        start = g.integers(0, vocab, (16, 1))
        seq = (start + np.arange(length + 1)) % vocab
        logits = model(rg.tensor(seq[:, :-1]))
        loss = nn.functional.cross_entropy(logits.reshape(-1, vocab),
                                           rg.tensor(seq[:, 1:].reshape(-1)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 2.0 and np.mean(losses[-5:]) < 0.3, losses[::10]
