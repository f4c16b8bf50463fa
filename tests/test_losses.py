"""Losses against torch.nn.functional: one table of cases, each checked three ways -- forward value
and gradients (input, and a float target where it is differentiable) equal PyTorch's in float32,
and `rg.gradcheck` passes in float64. Then stability at huge logits, error messages, the modules
(state_dict keys, legacy arguments), and the weight penalties.

A case is `fn(L, c, x, t)`: L is `retrograd.ops.loss` or `torch.nn.functional` (same names and
keywords), c turns a NumPy constant (class weights) into that library's tensor.
"""
from __future__ import annotations

import warnings
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import retrograd as rg
from retrograd import nn
from retrograd.nn import loss as nn_loss
from retrograd.ops import loss as L

REDUCTIONS = ["mean", "sum", "none"]


# -- input domains: each draws an array from a NumPy generator -------------------------------------

def normal(*shape, scale=2.0):
    return lambda rng: scale * rng.standard_normal(shape)


def uniform(lo, hi, *shape):
    return lambda rng: rng.uniform(lo, hi, shape)


def classes(shape, n_classes, ignored=0, ignore_index=-100):
    """Integer class targets, `ignored` of them (at random places) set to ignore_index."""
    def draw(rng):
        t = rng.integers(0, n_classes, shape)
        flat = t.reshape(-1)
        flat[rng.permutation(flat.size)[:ignored]] = ignore_index
        return t
    return draw


def probabilities(*shape):
    """Class distributions along axis 1 (softmax of normal draws): soft targets."""
    def draw(rng):
        z = rng.standard_normal(shape)
        e = np.exp(z - z.max(axis=1 if len(shape) > 1 else 0, keepdims=True))
        return e / e.sum(axis=1 if len(shape) > 1 else 0, keepdims=True)
    return draw


def log_probabilities(*shape):
    return lambda rng: np.log(probabilities(*shape)(rng))


def away_from_kinks(*kinks, gap=0.05, shape=(4, 5)):
    """Differences input - target at least `gap` from each kink (finite differences need that)."""
    def draw(rng):
        d = 1.5 * rng.standard_normal(shape)
        for k in kinks:
            for sign in (1, -1):
                near = np.abs(d - sign * k) < gap
                d = np.where(near, d + 2 * gap, d)
        return d
    return draw


W5 = np.array([0.5, 2.0, 1.0, 0.25, 1.5])     # class weights for C = 5
W4 = W5[:4]
POS_W = np.array([2.0, 0.5, 1.0, 3.0, 0.8])


# -- the table ------------------------------------------------------------------------------------

@dataclass
class Case:
    name: str
    fn: Callable
    x: Callable
    t: Callable
    target_grad: bool = False   # the target is a float tensor the loss is differentiable in
    relative: bool = False      # the target is drawn as an offset from the input (kink control)

    def arrays(self):
        rng = np.random.default_rng(zlib.crc32(self.name.encode()))
        x, t = self.x(rng), self.t(rng)
        return x, (x - t if self.relative else t)


def case(name, fn, x, t, target_grad=False, relative=False):
    return pytest.param(Case(name, fn, x, t, target_grad, relative), id=name)


def ce(**kw):
    return lambda L, c, x, t: L.cross_entropy(x, t, **kw)


def ce_w(w, **kw):
    return lambda L, c, x, t: L.cross_entropy(x, t, c(w), **kw)


CASES = [
    # -- cross_entropy, class indices --------------------------------------------------------------
    *[case(f"ce_{r}", ce(reduction=r), normal(6, 5), classes(6, 5)) for r in REDUCTIONS],
    *[case(f"ce_weight_{r}", ce_w(W5, reduction=r), normal(6, 5), classes(6, 5))
      for r in REDUCTIONS],
    *[case(f"ce_ignore_{r}", ce(reduction=r), normal(6, 5), classes(6, 5, ignored=2))
      for r in REDUCTIONS],
    case("ce_ignore_real_class", ce(ignore_index=1), normal(8, 5), classes(8, 5)),
    case("ce_ignore_weight", ce_w(W5), normal(6, 5), classes(6, 5, ignored=2)),
    *[case(f"ce_smooth_{r}", ce(reduction=r, label_smoothing=0.2), normal(6, 5), classes(6, 5))
      for r in REDUCTIONS],
    *[case(f"ce_smooth_weight_ignore_{r}", ce_w(W5, reduction=r, label_smoothing=0.3),
           normal(7, 5), classes(7, 5, ignored=2)) for r in REDUCTIONS],
    case("ce_smooth_ignore", ce(label_smoothing=0.1), normal(7, 5), classes(7, 5, ignored=3)),
    case("ce_smooth_one", ce(label_smoothing=1.0), normal(6, 5), classes(6, 5)),
    *[case(f"ce_kdim_{r}", ce_w(W4, reduction=r, label_smoothing=0.1), normal(2, 4, 3, 2),
           classes((2, 3, 2), 4, ignored=2)) for r in REDUCTIONS],
    case("ce_3d", ce(), normal(3, 4, 5), classes((3, 5), 4)),
    case("ce_unbatched", ce(), normal(5), classes((), 5)),
    case("ce_unbatched_none", ce(reduction="none", label_smoothing=0.2), normal(5), classes((), 5)),
    # -- cross_entropy, class probabilities --------------------------------------------------------
    *[case(f"ce_probs_{r}", ce(reduction=r), normal(6, 5), probabilities(6, 5), target_grad=True)
      for r in REDUCTIONS],
    *[case(f"ce_probs_weight_smooth_{r}", ce_w(W5, reduction=r, label_smoothing=0.2),
           normal(6, 5), probabilities(6, 5), target_grad=True) for r in REDUCTIONS],
    case("ce_probs_kdim", ce_w(W4, label_smoothing=0.1), normal(2, 4, 3, 2),
         probabilities(2, 4, 3, 2), target_grad=True),
    case("ce_probs_unbatched", ce(), normal(5), probabilities(5), target_grad=True),
    # -- nll_loss ----------------------------------------------------------------------------------
    *[case(f"nll_{r}", lambda L, c, x, t, r=r: L.nll_loss(x, t, reduction=r),
           log_probabilities(6, 5), classes(6, 5)) for r in REDUCTIONS],
    *[case(f"nll_weight_ignore_{r}", lambda L, c, x, t, r=r: L.nll_loss(x, t, c(W5), reduction=r),
           log_probabilities(7, 5), classes(7, 5, ignored=2)) for r in REDUCTIONS],
    case("nll_ignore_real_class", lambda L, c, x, t: L.nll_loss(x, t, ignore_index=0),
         log_probabilities(8, 5), classes(8, 5)),
    case("nll_kdim", lambda L, c, x, t: L.nll_loss(x, t, c(W4), reduction="none"),
         log_probabilities(2, 4, 3), classes((2, 3), 4, ignored=1)),
    case("nll_unbatched", lambda L, c, x, t: L.nll_loss(x, t), log_probabilities(5),
         classes((), 5)),
    # -- regression --------------------------------------------------------------------------------
    *[case(f"mse_{r}", lambda L, c, x, t, r=r: L.mse_loss(x, t, reduction=r), normal(4, 5),
           normal(4, 5), target_grad=True) for r in REDUCTIONS],
    case("mse_0d", lambda L, c, x, t: L.mse_loss(x, t), normal(), normal(), target_grad=True),
    *[case(f"l1_{r}", lambda L, c, x, t, r=r: L.l1_loss(x, t, reduction=r), normal(4, 5),
           away_from_kinks(0), target_grad=True, relative=True) for r in REDUCTIONS],
    *[case(f"huber_{r}_delta{d}", lambda L, c, x, t, r=r, d=d: L.huber_loss(x, t, reduction=r,
                                                                          delta=d),
           normal(4, 5), away_from_kinks(d), target_grad=True, relative=True)
      for r in REDUCTIONS for d in (1.0, 0.5)],
    case("huber_positional", lambda L, c, x, t: L.huber_loss(x, t, "sum", 2.0), normal(4, 5),
         away_from_kinks(2.0), target_grad=True, relative=True),
    *[case(f"smooth_l1_{r}_beta{b}", lambda L, c, x, t, r=r, b=b: L.smooth_l1_loss(
        x, t, reduction=r, beta=b), normal(4, 5), away_from_kinks(b), target_grad=True,
        relative=True) for r in REDUCTIONS for b in (1.0, 0.3)],
    case("smooth_l1_beta0", lambda L, c, x, t: L.smooth_l1_loss(x, t, beta=0.0), normal(4, 5),
         away_from_kinks(0), target_grad=True, relative=True),
    # -- binary cross-entropy ----------------------------------------------------------------------
    *[case(f"bce_{r}", lambda L, c, x, t, r=r: L.binary_cross_entropy(x, t, reduction=r),
           uniform(0.05, 0.95, 4, 5), uniform(0, 1, 4, 5), target_grad=True) for r in REDUCTIONS],
    case("bce_weight", lambda L, c, x, t: L.binary_cross_entropy(x, t, c(W5)),
         uniform(0.05, 0.95, 4, 5), uniform(0, 1, 4, 5), target_grad=True),
    case("bce_weight_full", lambda L, c, x, t: L.binary_cross_entropy(
        x, t, c(np.linspace(0.2, 2, 20).reshape(4, 5)), reduction="none"),
        uniform(0.05, 0.95, 4, 5), uniform(0, 1, 4, 5), target_grad=True),
    *[case(f"bce_logits_{r}", lambda L, c, x, t, r=r: L.binary_cross_entropy_with_logits(
        x, t, reduction=r), normal(4, 5), uniform(0, 1, 4, 5), target_grad=True)
      for r in REDUCTIONS],
    case("bce_logits_weight", lambda L, c, x, t: L.binary_cross_entropy_with_logits(x, t, c(W5)),
         normal(4, 5), uniform(0, 1, 4, 5), target_grad=True),
    *[case(f"bce_logits_pos_weight_{r}", lambda L, c, x, t, r=r:
           L.binary_cross_entropy_with_logits(x, t, reduction=r, pos_weight=c(POS_W)),
           normal(4, 5), uniform(0, 1, 4, 5), target_grad=True) for r in REDUCTIONS],
    case("bce_logits_both_weights", lambda L, c, x, t: L.binary_cross_entropy_with_logits(
        x, t, c(W5[::-1].copy()), pos_weight=c(POS_W), reduction="sum"), normal(4, 5),
        uniform(0, 1, 4, 5), target_grad=True),
    # -- kl_div ------------------------------------------------------------------------------------
    *[case(f"kl_div_{r}_log_target{lt}", lambda L, c, x, t, r=r, lt=lt: L.kl_div(
        x, t, reduction=r, log_target=lt), log_probabilities(4, 5),
        (log_probabilities if lt else probabilities)(4, 5), target_grad=True)
      for r in REDUCTIONS + ["batchmean"] for lt in (False, True)],
    case("kl_div_zero_target", lambda L, c, x, t: L.kl_div(x, t, reduction="batchmean"),
         log_probabilities(3, 4), lambda rng: np.array([[0.5, 0.5, 0, 0], [1, 0, 0, 0],
                                                        [0.25, 0.25, 0.25, 0.25]])),
]


def _rg_const(dtype):
    return lambda a: rg.tensor(np.asarray(a, dtype=dtype))


def _torch_const(dtype):
    return lambda a: torch.tensor(np.asarray(a, dtype=dtype))


def _target_arrays(t: np.ndarray, dtype):
    return t.astype(np.int64) if t.dtype.kind in "iu" else t.astype(dtype)


def assert_close(actual, expected, what, rtol=1e-5, atol=1e-6):
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(1.0, float(np.abs(expected[np.isfinite(expected)]).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale, err_msg=what)


@pytest.mark.parametrize("c", CASES)
def test_matches_torch(c: Case):
    """Forward value and gradients equal PyTorch's, in float32, and stay float32."""
    x, t = c.arrays()
    x = x.astype(np.float32)
    t = _target_arrays(t, np.float32)
    float_target = c.target_grad
    xr = rg.tensor(x, requires_grad=True)
    tr = rg.tensor(t, requires_grad=float_target)
    xt = torch.tensor(x, requires_grad=True)
    tt = torch.tensor(t, requires_grad=float_target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # torch's kl_div 'mean' warning
        out_t = c.fn(TF, _torch_const(np.float32), xt, tt)
    out_r = c.fn(L, _rg_const(np.float32), xr, tr)
    assert out_r.dtype == np.float32, f"loss dtype {out_r.dtype}"
    assert_close(out_r.data, out_t.detach().numpy(), "forward")
    upstream = np.random.default_rng(1).uniform(0.5, 1.5, out_r.shape).astype(np.float32)
    out_r.backward(rg.tensor(upstream))
    out_t.backward(torch.tensor(upstream))
    assert xr.grad.dtype == np.float32
    assert_close(xr.grad.data, xt.grad.numpy(), "input gradient")
    if float_target:
        assert_close(tr.grad.data, tt.grad.numpy(), "target gradient")


@pytest.mark.parametrize("c", CASES)
def test_gradcheck(c: Case):
    """Finite differences in float64 agree with the analytical gradients (input, float target)."""
    x, t = c.arrays()
    xr = rg.tensor(x.astype(np.float64), requires_grad=True)
    tr = rg.tensor(_target_arrays(t, np.float64), requires_grad=c.target_grad)
    assert rg.gradcheck(lambda a, b: c.fn(L, _rg_const(np.float64), a, b), (xr, tr))


def test_cross_entropy_is_one_fused_node():
    x = rg.randn(4, 3, requires_grad=True)
    loss = L.cross_entropy(x, rg.tensor([0, 2, 1, 1]))
    assert loss.grad_fn.next_functions == (x, None)


def test_cross_entropy_backward_twice_with_retain_graph():
    x = rg.randn(5, 4, requires_grad=True)
    y = rg.tensor([0, 3, 1, 2, 1])
    loss = L.cross_entropy(x, y, label_smoothing=0.1)
    loss.backward(retain_graph=True)
    first = x.grad.data.copy()
    loss.backward()
    np.testing.assert_allclose(x.grad.data, 2 * first, rtol=1e-6)


def test_cross_entropy_accepts_numpy_and_int32_targets():
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    y = np.array([0, 2, 1, 1], dtype=np.int32)
    expected = TF.cross_entropy(torch.tensor(x), torch.tensor(y).long()).item()
    assert L.cross_entropy(rg.tensor(x), y).item() == pytest.approx(expected, rel=1e-6)


def test_everything_ignored_gives_nan_like_torch():
    x = np.zeros((3, 4), dtype=np.float32)
    y = np.full(3, -100)
    assert np.isnan(TF.cross_entropy(torch.tensor(x), torch.tensor(y)).item())
    assert np.isnan(L.cross_entropy(rg.tensor(x), y).item())
    assert np.isnan(L.nll_loss(rg.tensor(x), y).item())
    assert L.cross_entropy(rg.tensor(x), y, reduction="sum").item() == 0


# -- numerical stability --------------------------------------------------------------------------

HUGE = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [1e4, 1e4, -1e4]], dtype=np.float32)


@pytest.mark.parametrize("kw", [{}, {"label_smoothing": 0.1}, {"reduction": "none"}],
                         ids=["plain", "smooth", "none"])
def test_cross_entropy_huge_logits(kw):
    y = np.array([1, 2, 0])
    xr, xt = rg.tensor(HUGE, requires_grad=True), torch.tensor(HUGE, requires_grad=True)
    out_r, out_t = L.cross_entropy(xr, y, **kw), TF.cross_entropy(xt, torch.tensor(y), **kw)
    out_r.sum().backward()
    out_t.sum().backward()
    assert np.isfinite(out_r.data).all() and np.isfinite(xr.grad.data).all()
    assert_close(out_r.data, out_t.detach().numpy(), "forward")
    assert_close(xr.grad.data, xt.grad.numpy(), "gradient")


def _logit_regime(name):
    """(8, 6) logits; the forward skips the shift by the row maximum where exp and the row sums
    stay in range ('normal', 'offset', 'confident', 'far_target'), else shifts ('overflow_row':
    a single row over 88 shifts all, 'underflow': every logit around -120)."""
    g = np.random.default_rng(zlib.crc32(name.encode()))
    x = g.standard_normal((8, 6))
    y = g.integers(0, 6, 8)
    rows = np.arange(8)
    if name == "offset":
        x += 60.0                        # lse ~ 62: the loss must not cancel in lse - x_y
    elif name == "confident":
        x += 40.0
        x[rows, y] += 9.0                # losses ~ 1e-3, from log(s / e_y)
    elif name == "far_target":
        x[rows[:4], y[:4]] -= 60.0       # p_y < 1e-19 in float32: the loss is lse - x_y
    elif name == "overflow_row":
        x[3] += 100.0
    elif name == "underflow":
        x -= 120.0
    return x, y


LOGIT_REGIMES = ["normal", "offset", "confident", "far_target", "overflow_row", "underflow"]


@pytest.mark.parametrize("kw", [{"reduction": "none"},
                                {"reduction": "none", "label_smoothing": 0.2, "weight": W5[:3]},
                                {"reduction": "sum", "ignore_index": 2}],
                         ids=["plain", "smooth_weight", "ignore"])
@pytest.mark.parametrize("regime", LOGIT_REGIMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_logit_regimes_match_torch(regime, kw, dtype):
    x, y = _logit_regime(regime)
    kw = dict(kw)
    w = kw.pop("weight", None)
    if w is not None:
        w = np.concatenate([w, w])
    xr = rg.tensor(x.astype(dtype), requires_grad=True)
    xt = torch.tensor(x.astype(dtype), requires_grad=True)
    out_r = L.cross_entropy(xr, y, None if w is None else w.astype(dtype), **kw)
    out_t = TF.cross_entropy(xt, torch.tensor(y), None if w is None else torch.tensor(
        w.astype(dtype)), **kw)
    assert out_r.dtype == dtype
    tol = {} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-13}
    assert_close(out_r.data, out_t.detach().numpy(), "forward", **tol)
    up = np.random.default_rng(1).uniform(0.5, 1.5, out_r.shape).astype(dtype)
    out_r.backward(rg.tensor(up))
    out_t.backward(torch.tensor(up))
    assert_close(xr.grad.data, xt.grad.numpy(), "input gradient", **tol)


def test_cross_entropy_huge_logits_probability_targets():
    t = np.array([[0.5, 0.5, 0], [0, 0, 1], [0.2, 0.3, 0.5]], dtype=np.float32)
    xr = rg.tensor(HUGE, requires_grad=True)
    loss = L.cross_entropy(xr, t)
    loss.backward()
    expected = TF.cross_entropy(torch.tensor(HUGE), torch.tensor(t)).item()
    assert np.isfinite(loss.item()) and np.isfinite(xr.grad.data).all()
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_bce_with_logits_huge_logits():
    x = np.array([1e4, -1e4, 1e4, -1e4, 0.0], dtype=np.float32)
    t = np.array([1.0, 0.0, 0.0, 1.0, 0.5], dtype=np.float32)
    pw = np.array(2.0, dtype=np.float32)
    xr, xt = rg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out_r = L.binary_cross_entropy_with_logits(xr, t, reduction="none", pos_weight=pw)
    out_t = TF.binary_cross_entropy_with_logits(xt, torch.tensor(t), reduction="none",
                                                pos_weight=torch.tensor(pw))
    out_r.sum().backward()
    out_t.sum().backward()
    assert np.isfinite(out_r.data).all() and np.isfinite(xr.grad.data).all()
    assert_close(out_r.data, out_t.detach().numpy(), "forward")
    assert_close(xr.grad.data, xt.grad.numpy(), "gradient")


def test_bce_clamps_log_at_minus_100_like_torch():
    p = np.array([0.0, 1.0, 0.0, 1.0], dtype=np.float32)
    t = np.array([1.0, 0.0, 0.0, 1.0], dtype=np.float32)
    pr, pt = rg.tensor(p, requires_grad=True), torch.tensor(p, requires_grad=True)
    out_r = L.binary_cross_entropy(pr, t, reduction="none")
    out_t = TF.binary_cross_entropy(pt, torch.tensor(t), reduction="none")
    out_r.sum().backward()
    out_t.sum().backward()
    np.testing.assert_array_equal(out_r.data, [100, 100, 0, 0])
    assert_close(out_r.data, out_t.detach().numpy(), "forward")
    assert_close(pr.grad.data, pt.grad.numpy(), "gradient")       # +-1e12, finite


def test_float32_stays_float32_with_float64_targets():
    x = rg.randn(3, 4, requires_grad=True)
    t = np.random.default_rng(0).standard_normal((3, 4))            # float64
    for loss in (L.mse_loss(x, t), L.l1_loss(x, t), L.huber_loss(x, t),
                 L.binary_cross_entropy_with_logits(x, np.abs(t) / 3),
                 L.cross_entropy(x, np.abs(t) / np.abs(t).sum(1, keepdims=True))):
        assert loss.dtype == np.float32
        x.grad = None
        loss.backward()
        assert x.grad.dtype == np.float32


# -- errors ---------------------------------------------------------------------------------------

X = rg.randn(4, 10)


@pytest.mark.parametrize("call, error, text", [
    (lambda: L.cross_entropy(X, np.zeros(3, dtype=np.int64)), ValueError,
     r"cross_entropy: target of shape \(3,\) does not match input of shape \(4, 10\)"),
    (lambda: L.cross_entropy(X, np.zeros((4, 10), dtype=np.int64)), TypeError,
     "class-probability targets .* must be floating point, got dtype int64"),
    (lambda: L.cross_entropy(X, np.zeros(4, dtype=np.float32)), TypeError,
     "cross_entropy: class-index targets must be integers, got dtype float32"),
    (lambda: L.cross_entropy(X, np.array([0, 1, 10, 2])), IndexError,
     "cross_entropy: target class 10 is out of range for 10 classes"),
    (lambda: L.cross_entropy(X, np.array([0, -1, 3, 2])), IndexError,
     "target class -1 is out of range .* ignore_index=-100"),
    (lambda: L.cross_entropy(X, np.array([0, -100, 10, 2])), IndexError,
     "target class 10 is out of range"),
    (lambda: L.cross_entropy(X, np.array([0, 1, 2, 3]), ignore_index=3, reduction="avg"),
     ValueError, "cross_entropy: reduction must be one of 'mean', 'sum', 'none', got 'avg'"),
    (lambda: L.cross_entropy(X, np.array([0, 1, 2, 3]), rg.ones(9)), ValueError,
     r"cross_entropy: weight of shape \(9,\) does not broadcast|one entry per class"),
    (lambda: L.cross_entropy(X, np.array([0, 1, 2, 3]), label_smoothing=1.5), ValueError,
     r"label_smoothing must be in \[0, 1\], got 1.5"),
    (lambda: L.cross_entropy(X, np.full((4, 10), 0.1), ignore_index=0), ValueError,
     "ignore_index=0 is not supported with class-probability targets"),
    (lambda: L.cross_entropy(rg.tensor(1.0), np.array(0)), ValueError,
     "input must have a class dimension"),
    (lambda: L.cross_entropy(rg.tensor([[1, 2]]), np.array([0])), TypeError,
     "cross_entropy: input must be a floating-point tensor, got dtype int64"),
    (lambda: L.nll_loss(X, np.zeros((4, 10), dtype=np.float32)), ValueError,
     r"nll_loss: target of shape \(4, 10\) does not match input of shape \(4, 10\): expected "
     r"class indices of shape \(4,\)$"),
    (lambda: L.nll_loss(rg.randn(2, 3, 5), np.zeros((2, 3), dtype=np.int64)), ValueError,
     r"expected class indices of shape \(2, 5\)"),
    (lambda: L.mse_loss(rg.randn(4, 1), rg.randn(4)), ValueError,
     r"mse_loss: target of shape \(4,\) does not match input of shape \(4, 1\)"),
    (lambda: L.l1_loss(X, rg.randn(10)), ValueError, "l1_loss: target of shape"),
    (lambda: L.mse_loss(X, X, reduction="batchmean"), ValueError,
     "mse_loss: reduction must be one of 'mean', 'sum', 'none', got 'batchmean'"),
    (lambda: L.kl_div(X, X, reduction="avg"), ValueError,
     "kl_div: reduction must be one of 'mean', 'sum', 'none', 'batchmean'"),
    (lambda: L.huber_loss(X, X, delta=0.0), ValueError, "huber_loss: delta must be positive"),
    (lambda: L.smooth_l1_loss(X, X, beta=-1.0), ValueError, "beta must be non-negative"),
    (lambda: L.binary_cross_entropy(rg.tensor([0.5, 1.5]), rg.tensor([0.0, 1.0])), ValueError,
     r"binary_cross_entropy: all elements of input should be probabilities in \[0, 1\]"),
    (lambda: L.binary_cross_entropy_with_logits(X, rg.randn(4, 10), pos_weight=rg.ones(3)),
     ValueError, r"pos_weight of shape \(3,\) does not broadcast to the input's shape \(4, 10\)"),
    (lambda: L.binary_cross_entropy(rg.rand(4, 10), rg.rand(4, 10), rg.ones(4)), ValueError,
     r"binary_cross_entropy: weight of shape \(4,\) does not broadcast"),
    (lambda: L.mse_loss(X, X, "sum"), TypeError, "positional"),
    (lambda: nn_loss.CrossEntropyLoss(reduction="avg"), ValueError,
     "CrossEntropyLoss: reduction must be one of"),
    (lambda: nn_loss.l2_penalty([rg.ones(2), "w"]), TypeError,
     "expected a Module or tensors, got str"),
])
def test_errors(call, error, text):
    with pytest.raises(error, match=text):
        call()


# -- modules --------------------------------------------------------------------------------------

MODULES = [
    ("MSELoss", {}, "regression"), ("L1Loss", {"reduction": "sum"}, "regression"),
    ("HuberLoss", {"delta": 0.5}, "regression"), ("SmoothL1Loss", {"beta": 0.5}, "regression"),
    ("CrossEntropyLoss", {"weight": W5, "ignore_index": 2, "label_smoothing": 0.1}, "classes"),
    ("CrossEntropyLoss", {"reduction": "none"}, "classes"),
    ("NLLLoss", {"weight": W5}, "classes"),
    ("BCELoss", {"weight": W5}, "probabilities"),
    ("BCEWithLogitsLoss", {"weight": W5, "pos_weight": POS_W}, "probabilities"),
    ("KLDivLoss", {"reduction": "batchmean", "log_target": True}, "regression"),
]


@pytest.mark.parametrize("name, kwargs, kind", MODULES,
                         ids=[f"{m[0]}-{i}" for i, m in enumerate(MODULES)])
def test_module_matches_torch(name, kwargs, kind):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    if name == "BCELoss":
        x = 1 / (1 + np.exp(-x))
    if name == "NLLLoss":
        x = x - np.log(np.exp(x).sum(1, keepdims=True))
    t = {"regression": rng.standard_normal((4, 5)).astype(np.float32),
         "classes": rng.integers(0, 5, 4),
         "probabilities": rng.uniform(0, 1, (4, 5)).astype(np.float32)}[kind]
    rg_kwargs = {k: rg.tensor(v.astype(np.float32)) if isinstance(v, np.ndarray) else v
                 for k, v in kwargs.items()}
    t_kwargs = {k: torch.tensor(v.astype(np.float32)) if isinstance(v, np.ndarray) else v
                for k, v in kwargs.items()}
    m_rg, m_t = getattr(nn_loss, name)(**rg_kwargs), getattr(torch.nn, name)(**t_kwargs)
    assert list(m_rg.state_dict()) == list(m_t.state_dict())
    xr = rg.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    out_r, out_t = m_rg(xr, rg.tensor(t)), m_t(xt, torch.tensor(t))
    out_r.sum().backward()
    out_t.sum().backward()
    assert_close(out_r.data, out_t.detach().numpy(), "forward")
    assert_close(xr.grad.data, xt.grad.numpy(), "gradient")


def test_weight_buffers_state_dict_round_trip():
    torch_m = torch.nn.BCEWithLogitsLoss(weight=torch.rand(3), pos_weight=torch.rand(3))
    m = nn_loss.BCEWithLogitsLoss(weight=rg.ones(3), pos_weight=rg.ones(3))
    m.load_state_dict(torch_m.state_dict())
    np.testing.assert_array_equal(m.pos_weight.data, torch_m.pos_weight.numpy())
    assert list(nn_loss.CrossEntropyLoss().state_dict()) == []
    assert list(nn_loss.CrossEntropyLoss(weight=[1.0, 2.0]).state_dict()) == ["weight"]
    assert nn_loss.NLLLoss(weight=rg.ones(3)).double().weight.dtype == np.float64
    assert not list(nn_loss.CrossEntropyLoss(weight=rg.ones(3)).parameters())


def test_module_positional_arguments_follow_torch():
    # CrossEntropyLoss(weight, size_average, ignore_index, reduce, reduction, label_smoothing)
    m = nn_loss.CrossEntropyLoss(None, None, 3, None, "sum", 0.2)
    assert (m.ignore_index, m.reduction, m.label_smoothing) == (3, "sum", 0.2)
    assert nn_loss.HuberLoss("none", 2.0).delta == 2.0
    assert repr(m) == "CrossEntropyLoss()"


@pytest.mark.parametrize("size_average, reduce, expected", [
    (False, None, "sum"), (None, False, "none"), (True, True, "mean")])
def test_legacy_size_average_and_reduce(size_average, reduce, expected):
    with pytest.warns(DeprecationWarning, match=f"reduction='{expected}'") as record:
        m = nn_loss.CrossEntropyLoss(size_average=size_average, reduce=reduce)
    assert record[0].filename == __file__           # attributed to the caller's line
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert m.reduction == expected == torch.nn.MSELoss(size_average, reduce).reduction


# -- weight penalties -----------------------------------------------------------------------------

def _model():
    rg.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


@pytest.mark.parametrize("exclude_bias", [False, True])
def test_penalties_values_and_gradients(exclude_bias):
    model = _model()
    params = [p for p in model.parameters() if not (exclude_bias and p.ndim == 1)]
    arrays = [p.data for p in params]
    l1 = nn_loss.l1_penalty(model, weight=0.1, exclude_bias=exclude_bias)
    l2 = nn_loss.l2_penalty(model, weight=0.01, exclude_bias=exclude_bias)
    assert l1.dtype == l2.dtype == np.float32 and l1.shape == ()
    assert l1.item() == pytest.approx(0.1 * sum(np.abs(a).sum() for a in arrays), rel=1e-6)
    assert l2.item() == pytest.approx(0.01 * sum((a * a).sum() for a in arrays), rel=1e-6)
    (l1 + l2).backward()
    for p in model.parameters():
        if exclude_bias and p.ndim == 1:
            assert p.grad is None
        else:
            np.testing.assert_allclose(p.grad.data, 0.1 * np.sign(p.data) + 0.02 * p.data,
                                       rtol=1e-6)


def test_penalties_accept_iterables_and_match_sgd_weight_decay():
    model = _model()
    wd = 0.1
    x = rg.randn(5, 3)
    loss = model(x).sum() + nn_loss.l2_penalty(model.parameters(), wd / 2)
    loss.backward()
    with_penalty = [p.grad.data.copy() for p in model.parameters()]
    model.zero_grad()
    model(x).sum().backward()
    for g, p in zip(with_penalty, model.parameters()):
        np.testing.assert_allclose(g, p.grad.data + wd * p.data, rtol=1e-5, atol=1e-7)
    assert nn_loss.l1_penalty([]).item() == 0
    w = rg.tensor([3.0, -4.0], requires_grad=True)
    assert nn_loss.l2_penalty(w).item() == 25


def test_penalties_gradcheck():
    a = rg.randn(3, 2, dtype=rg.float64, requires_grad=True)
    b = rg.tensor([0.5, -1.5, 2.0], dtype=rg.float64, requires_grad=True)
    assert rg.gradcheck(lambda a, b: nn_loss.l1_penalty([a, b], 0.3), (a, b))
    assert rg.gradcheck(lambda a, b: nn_loss.l2_penalty([a, b], 0.3), (a, b))
