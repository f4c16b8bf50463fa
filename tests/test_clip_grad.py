"""Gradient clipping against torch.nn.utils: the returned total norm and the clipped gradients."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import retrograd as rg
from retrograd.nn.clip_grad import clip_grad_norm_, clip_grad_value_
from retrograd.nn.parameter import Parameter

SHAPES = [(4, 5), (7,), (2, 3, 3)]


def pair(scale: float = 1.0, seed: int = 0, without_grad: int | None = 1):
    """The same parameters and float32 gradients, ours and torch's; one parameter has no grad."""
    rng = np.random.default_rng(seed)
    ours, theirs = [], []
    for i, shape in enumerate(SHAPES):
        p = Parameter(rng.standard_normal(shape).astype(np.float32))
        q = torch.nn.Parameter(torch.tensor(p.data))
        if i != without_grad:
            g = (scale * rng.standard_normal(shape)).astype(np.float32)
            p.grad, q.grad = rg.Tensor(g), torch.tensor(g)
        ours.append(p)
        theirs.append(q)
    return ours, theirs


def assert_grads_match(ours, theirs, rtol=1e-6):
    for p, q in zip(ours, theirs):
        if q.grad is None:
            assert p.grad is None
            continue
        assert p.grad.data.dtype == np.float32
        np.testing.assert_allclose(p.grad.data, q.grad.numpy(), rtol=rtol, atol=1e-7)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, -math.inf, 3.5, 0.5, 0.0, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e4])  # clips / leaves alone
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    ours, theirs = pair(scale=2.0)
    total = clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    assert isinstance(total, rg.Tensor) and total.shape == () and total.dtype == np.float32
    np.testing.assert_allclose(total.item(), ttotal.item(), rtol=1e-6)
    assert_grads_match(ours, theirs)


def test_clipped_norm_is_max_norm():
    ours, _ = pair(scale=5.0)
    clip_grad_norm_(ours, 1.0)
    total = math.sqrt(sum(float((p.grad.data.astype(np.float64) ** 2).sum())
                          for p in ours if p.grad is not None))
    assert total == pytest.approx(1.0, rel=1e-5)


def test_clip_grad_norm_accepts_a_single_tensor_and_a_generator():
    ours, theirs = pair(scale=3.0, without_grad=None)
    total = clip_grad_norm_(ours[0], 0.1)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs[0], 0.1)
    np.testing.assert_allclose(total.item(), ttotal.item(), rtol=1e-6)
    total = clip_grad_norm_((p for p in ours), 0.1, norm_type=1)
    ttotal = torch.nn.utils.clip_grad_norm_((p for p in theirs), 0.1, norm_type=1)
    np.testing.assert_allclose(total.item(), ttotal.item(), rtol=1e-6)
    assert_grads_match(ours, theirs)


def test_no_gradients_gives_a_zero_norm():
    p = Parameter(np.ones(3, np.float32))
    assert clip_grad_norm_([p], 1.0).item() == 0.0
    with pytest.warns(UserWarning, match="empty generator"):
        clip_grad_norm_((q for q in []), 1.0)


@pytest.mark.parametrize("norm_type", [2.0, math.inf])
def test_non_finite_norm(norm_type):
    ours, theirs = pair()
    ours[0].grad.data[0, 0] = np.inf
    theirs[0].grad[0, 0] = math.inf
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(ours, 1.0, norm_type=norm_type, error_if_nonfinite=True)
    total = clip_grad_norm_(ours, 1.0, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs, 1.0, norm_type=norm_type)
    assert total.item() == ttotal.item() == math.inf
    for p, q in zip(ours, theirs):  # scaled by 0: inf·0 = NaN, the rest 0, as torch
        if q.grad is not None:
            np.testing.assert_array_equal(p.grad.data, q.grad.numpy())


def test_nan_gradient_propagates_like_torch():
    ours, theirs = pair()
    ours[2].grad.data[1, 1, 1] = np.nan
    theirs[2].grad[1, 1, 1] = math.nan
    total = clip_grad_norm_(ours, 1.0)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    assert math.isnan(total.item()) and math.isnan(ttotal.item())
    for p, q in zip(ours, theirs):
        if q.grad is not None:
            np.testing.assert_array_equal(np.isnan(p.grad.data), np.isnan(q.grad.numpy()))


@pytest.mark.parametrize("clip_value", [0.1, 1.0, 10.0])
def test_clip_grad_value_matches_torch(clip_value):
    ours, theirs = pair(scale=2.0)
    assert clip_grad_value_(ours, clip_value) is None
    torch.nn.utils.clip_grad_value_(theirs, clip_value)
    assert_grads_match(ours, theirs, rtol=0)
    assert max(np.abs(p.grad.data).max() for p in ours if p.grad is not None) <= clip_value


def test_clip_grad_value_single_tensor_in_place():
    p = Parameter(np.zeros(4, np.float32))
    p.grad = rg.Tensor(np.array([-3.0, -0.5, 0.5, 3.0], np.float32))
    array = p.grad.data
    clip_grad_value_(p, 1)
    assert p.grad.data is array
    np.testing.assert_array_equal(array, [-1.0, -0.5, 0.5, 1.0])


def test_clip_grad_norm_works_in_the_gradients_dtype():
    p = Parameter(np.ones(3, np.float32))
    p.data = np.ones(3, np.float64)
    p.grad = rg.Tensor(np.full(3, 10.0, np.float64))
    total = clip_grad_norm_([p], 1.0)
    assert total.dtype == np.float64 and p.grad.data.dtype == np.float64
    assert total.item() == pytest.approx(math.sqrt(300.0), rel=1e-12)
