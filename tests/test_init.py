"""nn.init against torch.nn.init: gains and fans equal torch's, each random initialiser draws from
the same distribution as torch's (statistics of large tensors: bounds, mean, std), orthogonal_ gives
orthonormal rows or columns, and draws are reproducible under rg.manual_seed or a Generator.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import retrograd as rg
from retrograd import nn
from retrograd.nn import init

GAINS = [("linear", None), ("conv1d", None), ("conv2d", None), ("conv3d", None),
         ("conv_transpose1d", None), ("conv_transpose2d", None), ("conv_transpose3d", None),
         ("sigmoid", None), ("tanh", None), ("relu", None), ("leaky_relu", None),
         ("leaky_relu", 0.2), ("leaky_relu", 0), ("leaky_relu", math.sqrt(5)), ("selu", None)]


@pytest.mark.parametrize("nonlinearity, param", GAINS)
def test_calculate_gain_matches_torch(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == \
        pytest.approx(torch.nn.init.calculate_gain(nonlinearity, param), rel=1e-12)


@pytest.mark.parametrize("shape", [(7, 3), (16, 4, 3, 3), (5, 2, 4), (3, 5, 2, 2, 2)])
def test_fans_match_torch(shape):
    assert init._calculate_fan_in_and_fan_out(rg.empty(*shape)) == \
        torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))


# (name, keyword arguments, shape, bounded): each initialiser on a large tensor, ours and torch's
DRAWS = [
    ("uniform_", {"a": -2.0, "b": 5.0}, (400, 500), True),
    ("normal_", {"mean": 3.0, "std": 2.0}, (400, 500), False),
    ("trunc_normal_", {"std": 1.5, "a": -1.0, "b": 2.0}, (400, 500), True),
    ("xavier_uniform_", {}, (400, 500), True),
    ("xavier_uniform_", {"gain": 5.0 / 3}, (64, 32, 3, 3), True),
    ("xavier_normal_", {}, (400, 500), False),
    ("xavier_normal_", {"gain": 2.0}, (64, 32, 3, 3), False),
    ("kaiming_uniform_", {}, (400, 500), True),
    ("kaiming_uniform_", {"a": math.sqrt(5)}, (400, 500), True),
    ("kaiming_uniform_", {"mode": "fan_out", "nonlinearity": "relu"}, (64, 32, 3, 3), True),
    ("kaiming_uniform_", {"a": 0.2, "mode": "fan_in", "nonlinearity": "leaky_relu"},
     (64, 32, 3, 3), True),
    ("kaiming_normal_", {}, (400, 500), False),
    ("kaiming_normal_", {"mode": "fan_out", "nonlinearity": "relu"}, (64, 32, 3, 3), False),
    ("kaiming_normal_", {"nonlinearity": "tanh"}, (300, 600), False),
]


@pytest.mark.parametrize("name, kwargs, shape, bounded", DRAWS,
                         ids=[f"{d[0]}{i}" for i, d in enumerate(DRAWS)])
def test_distribution_matches_torch(name, kwargs, shape, bounded):
    rg.manual_seed(0)
    torch.manual_seed(0)
    ours = getattr(init, name)(rg.empty(*shape), **kwargs).data
    theirs = getattr(torch.nn.init, name)(torch.empty(shape), **kwargs).numpy()
    assert ours.dtype == np.float32 and ours.shape == shape
    std = theirs.std()
    assert ours.std() == pytest.approx(std, rel=0.02)
    assert abs(ours.mean() - theirs.mean()) < 0.02 * std
    if bounded:      # the same support: both extremes within 1% of the spread of torch's draws
        assert abs(ours.max() - theirs.max()) < 0.01 * std
        assert abs(ours.min() - theirs.min()) < 0.01 * std


def test_bounds_and_stds_follow_the_formulas():
    rg.manual_seed(1)
    fan_in, fan_out = 500, 400
    w = init.xavier_uniform_(rg.empty(fan_out, fan_in), gain=2.0).data
    a = 2.0 * math.sqrt(6 / (fan_in + fan_out))
    assert np.abs(w).max() <= a and np.abs(w).max() > 0.99 * a
    w = init.kaiming_normal_(rg.empty(fan_out, fan_in), nonlinearity="relu").data
    assert w.std() == pytest.approx(math.sqrt(2 / fan_in), rel=0.02)
    w = init.kaiming_uniform_(rg.empty(fan_out, fan_in), mode="fan_out", nonlinearity="relu").data
    b = math.sqrt(2) * math.sqrt(3 / fan_out)
    assert np.abs(w).max() <= b and w.std() == pytest.approx(b / math.sqrt(3), rel=0.02)
    w = init.trunc_normal_(rg.empty(fan_out, fan_in), mean=1.0, std=1.0, a=0.5, b=1.5).data
    assert w.min() >= 0.5 and w.max() <= 1.5


@pytest.mark.parametrize("shape", [(5, 8), (8, 5), (6, 6), (4, 3, 2)])
@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_orthogonal(shape, gain):
    rg.manual_seed(0)
    w = init.orthogonal_(rg.empty(*shape, dtype=rg.float64), gain=gain).data
    flat = w.reshape(shape[0], -1)
    small = min(flat.shape)
    gram = flat @ flat.T if flat.shape[0] == small else flat.T @ flat
    np.testing.assert_allclose(gram, gain ** 2 * np.eye(small), atol=1e-12)
    assert w.shape == shape


def test_constant_fills():
    t = rg.empty(3, 4)
    assert init.zeros_(t) is t and (t.data == 0).all()
    assert (init.ones_(t).data == 1).all()
    assert (init.constant_(t, 0.25).data == 0.25).all()
    np.testing.assert_array_equal(init.eye_(rg.empty(3, 4)).data, np.eye(3, 4))
    assert init.zeros_(rg.empty(2, dtype=rg.float64)).dtype == np.float64


def test_in_place_on_parameters_keeps_identity_dtype_and_leafness():
    p = nn.Parameter(rg.zeros(20, 30, dtype=rg.float64))
    data = p.data
    for fn in (init.xavier_uniform_, init.kaiming_normal_, init.orthogonal_, init.normal_):
        assert fn(p) is p
        assert p.data is data and p.dtype == np.float64
        assert p.requires_grad and p.grad_fn is None


def test_reproducible_under_manual_seed_and_generators():
    rg.manual_seed(7)
    a = init.kaiming_uniform_(rg.empty(10, 10)).data.copy()
    b = init.kaiming_uniform_(rg.empty(10, 10)).data.copy()
    rg.manual_seed(7)
    np.testing.assert_array_equal(init.kaiming_uniform_(rg.empty(10, 10)).data, a)
    assert not np.array_equal(a, b)
    g1, g2 = rg.Generator().manual_seed(3), rg.Generator().manual_seed(3)
    x = init.orthogonal_(rg.empty(6, 4), generator=g1).data
    rg.manual_seed(99)              # the global seed does not touch an explicit generator
    np.testing.assert_array_equal(init.orthogonal_(rg.empty(6, 4), generator=g2).data, x)
    rg.manual_seed(7)
    m1 = nn.Sequential(nn.Linear(5, 4), nn.Embedding(3, 2))
    rg.manual_seed(7)
    m2 = nn.Sequential(nn.Linear(5, 4), nn.Embedding(3, 2))
    for (k, v1), v2 in zip(m1.state_dict().items(), m2.state_dict().values()):
        np.testing.assert_array_equal(v1.data, v2.data, err_msg=k)


def test_zero_element_tensors_are_left_alone():
    t = rg.empty(0, 3)
    assert init.kaiming_uniform_(t) is t and init.orthogonal_(t) is t
    assert init.kaiming_normal_(t).shape == (0, 3)


@pytest.mark.parametrize("call, text", [
    (lambda: init.xavier_uniform_(rg.empty(5)), "at least 2 dimensions"),
    (lambda: init.kaiming_normal_(rg.empty(3, 3), mode="fan_avg"), "fan_avg"),
    (lambda: init.calculate_gain("swish"), "swish"),
    (lambda: init.orthogonal_(rg.empty(4)), "at least 2 dimensions"),
    (lambda: init.eye_(rg.empty(2, 2, 2)), "2-D"),
])
def test_errors(call, text):
    with pytest.raises(ValueError, match=text):
        call()
