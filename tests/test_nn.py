"""nn layers and Module semantics against PyTorch.

One table of layers: each row builds the same module in both libraries (`make(lib)`, lib being
torch or retrograd), the torch weights (randomised, running statistics included) are loaded into
ours through `load_state_dict`, and two checks run over it: forward output, input gradient and
every parameter gradient equal torch's in float32, and `rg.gradcheck` passes in float64. Then
train/eval behaviour (Dropout, BatchNorm running statistics), Module semantics (registration, names,
state_dict, hooks, repr, modes, dtypes) and input validation messages.
"""
from __future__ import annotations

import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import torch

import retrograd as rg
from retrograd import nn
from helpers import assert_close

# -- building the same model in both libraries ----------------------------------------------------


class TorchResidual(torch.nn.Module):
    """torch has no Residual: its definition, y = x + fn(x), with the same state_dict keys."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return x + self.fn(x)


def residual(lib):
    body = lib.nn.Sequential(lib.nn.Linear(4, 4), lib.nn.Tanh())
    return TorchResidual(body) if lib is torch else nn.Residual(body)


def with_list(lib):
    class Stack(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = lib.nn.ModuleList([lib.nn.Linear(4, 5), lib.nn.Linear(5, 3)])
            self.act = lib.nn.ELU()

        def forward(self, x):
            for layer in self.layers:
                x = self.act(layer(x))
            return x
    return Stack()


def with_dict(lib):
    class Branches(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.branches = lib.nn.ModuleDict({"left": lib.nn.Linear(4, 3),
                                               "right": lib.nn.Linear(4, 3, bias=False)})

        def forward(self, x):
            return self.branches["left"](x) * self.branches["right"](x)
    return Branches()


def net(lib):
    """A model with every kind of member: nested containers, a bare Parameter, a buffer, and an
    unused layer (its parameters get no gradient)."""
    class Net(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = lib.nn.Linear(4, 6)
            self.bn = lib.nn.BatchNorm1d(6)
            self.body = lib.nn.Sequential(
                lib.nn.Linear(6, 6), lib.nn.ReLU(),
                lib.nn.Sequential(lib.nn.Linear(6, 6), lib.nn.Tanh()))
            self.heads = lib.nn.ModuleList([lib.nn.Linear(6, 2), lib.nn.Linear(6, 3)])
            self.extra = lib.nn.ModuleDict({"proj": lib.nn.Linear(6, 6, bias=False),
                                            "norm": lib.nn.LayerNorm(6)})
            self.unused = lib.nn.Embedding(5, 2)
            self.scale = lib.nn.Parameter(lib.ones(3))
            self.register_buffer("offset", lib.zeros(3))
            self.drop = lib.nn.Dropout(0.2)

        def forward(self, x):
            h = self.body(self.bn(self.fc1(x)))
            h = self.extra["norm"](self.extra["proj"](h))
            return (self.heads[0](h).sum(dim=1, keepdim=True) + self.heads[1](h)) * self.scale \
                + self.offset
    return Net()


def randomise(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every parameter and running statistic a random value, so that loading is visible."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict(keep_vars=True).items():
            if name.endswith("num_batches_tracked"):
                t.fill_(7)
            elif name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            else:
                t.copy_(torch.randn(t.shape, generator=g))


def numpy_state(model: torch.nn.Module) -> dict:
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def pair(make: Callable, seed: int = 0):
    """(torch module, retrograd module) holding the same random weights and buffers."""
    t = make(torch)
    randomise(t, seed)
    r = make(rg)
    result = r.load_state_dict(numpy_state(t))
    assert result == ([], [])
    return t, r


# -- the layer table ------------------------------------------------------------------------------

def normal(*shape, scale=1.0):
    return lambda rng: scale * rng.standard_normal(shape)


def away_from(*kinks, shape, scale=1.0, gap=0.05):
    """Normal draws kept `gap` away from each kink, where finite differences mean nothing."""
    def draw(rng):
        x = scale * rng.standard_normal(shape)
        for k in kinks:
            x = np.where(np.abs(x - k) < gap, x + 2 * gap, x)
        return x
    return draw


def ids(*values):
    return lambda rng: np.array(values, dtype=np.int64)


@dataclass
class Layer:
    name: str
    make: Callable            # lib -> module, lib being torch or retrograd
    x: Callable               # rng -> input array (float64, cast per check; or int64 ids)
    train: bool = True
    gradcheck: bool = True    # False where the gradient is zero by definition, not a derivative

    def input(self) -> np.ndarray:
        return self.x(np.random.default_rng(zlib.crc32(self.name.encode())))


def layer(name, make, x, train=True, gradcheck=True):
    return pytest.param(Layer(name, make, x, train, gradcheck), id=name)


LAYERS = [
    layer("linear_2d", lambda t: t.nn.Linear(4, 3), normal(5, 4)),
    layer("linear_no_bias", lambda t: t.nn.Linear(4, 3, bias=False), normal(5, 4)),
    layer("linear_1d", lambda t: t.nn.Linear(4, 3), normal(4)),
    layer("linear_3d", lambda t: t.nn.Linear(4, 3), normal(2, 3, 4)),
    layer("identity", lambda t: t.nn.Identity(), normal(2, 3)),
    layer("flatten", lambda t: t.nn.Flatten(), normal(2, 3, 2, 2)),
    layer("flatten_0_1", lambda t: t.nn.Flatten(0, 1), normal(2, 3, 2)),
    layer("dropout_eval", lambda t: t.nn.Dropout(0.5), normal(3, 4), train=False),
    layer("batchnorm1d_nc", lambda t: t.nn.BatchNorm1d(3), normal(6, 3, scale=2.0)),
    layer("batchnorm1d_ncl", lambda t: t.nn.BatchNorm1d(3), normal(3, 3, 4)),
    layer("batchnorm1d_momentum_none", lambda t: t.nn.BatchNorm1d(3, momentum=None),
          normal(4, 3)),
    layer("batchnorm1d_no_affine", lambda t: t.nn.BatchNorm1d(3, affine=False), normal(5, 3)),
    layer("batchnorm1d_no_bias", lambda t: t.nn.BatchNorm1d(3, bias=False), normal(5, 3)),
    layer("batchnorm1d_eval", lambda t: t.nn.BatchNorm1d(3), normal(4, 3, 2), train=False),
    layer("batchnorm2d", lambda t: t.nn.BatchNorm2d(3), normal(2, 3, 2, 3)),
    layer("batchnorm2d_eval", lambda t: t.nn.BatchNorm2d(3), normal(2, 3, 2, 2), train=False),
    layer("batchnorm2d_untracked_eval",
          lambda t: t.nn.BatchNorm2d(2, track_running_stats=False), normal(2, 2, 2, 3),
          train=False),
    layer("layernorm", lambda t: t.nn.LayerNorm(5), normal(3, 5)),
    layer("layernorm_2_dims", lambda t: t.nn.LayerNorm((3, 4)), normal(2, 3, 4)),
    layer("layernorm_no_bias", lambda t: t.nn.LayerNorm(5, bias=False), normal(2, 3, 5)),
    layer("layernorm_no_affine", lambda t: t.nn.LayerNorm(5, elementwise_affine=False),
          normal(4, 5)),
    # layer norm works on (rows, features) matrices: several trailing dims, several leading
    # ones, none (a single row), each with and without the affine parameters
    layer("layernorm_3_dims", lambda t: t.nn.LayerNorm((2, 3, 4)), normal(2, 2, 3, 4, scale=3.0)),
    layer("layernorm_3_dims_no_affine",
          lambda t: t.nn.LayerNorm((2, 3, 4), elementwise_affine=False), normal(3, 2, 3, 4)),
    layer("layernorm_2_dims_no_bias", lambda t: t.nn.LayerNorm((3, 4), bias=False),
          normal(2, 5, 3, 4)),
    layer("layernorm_unbatched", lambda t: t.nn.LayerNorm(6), normal(6, scale=3.0)),
    layer("layernorm_unbatched_2_dims", lambda t: t.nn.LayerNorm((2, 6)), normal(2, 6)),
    layer("embedding_repeated_ids", lambda t: t.nn.Embedding(6, 3), ids([1, 4, 1], [5, 1, 0])),
    # the padding row never gets a gradient, though the output depends on it: no gradcheck
    layer("embedding_padding", lambda t: t.nn.Embedding(6, 3, padding_idx=2),
          ids([2, 3, 2, 3, 0]), gradcheck=False),
    layer("embedding_negative_padding", lambda t: t.nn.Embedding(6, 3, padding_idx=-1),
          ids([5, 0, 5]), gradcheck=False),
    layer("embedding_0d_id", lambda t: t.nn.Embedding(6, 3), ids(4)),
    # ids x dim >= 4096: the gradient is summed by a sparse product (with SciPy)
    layer("embedding_many_ids", lambda t: t.nn.Embedding(12, 32),
          lambda rng: rng.integers(0, 12, (5, 30))),
    layer("embedding_many_ids_padding", lambda t: t.nn.Embedding(12, 32, padding_idx=3),
          lambda rng: rng.integers(0, 12, (5, 30)), gradcheck=False),
    layer("relu", lambda t: t.nn.ReLU(), away_from(0, shape=(4, 5))),
    layer("leaky_relu", lambda t: t.nn.LeakyReLU(0.2), away_from(0, shape=(4, 5))),
    layer("elu", lambda t: t.nn.ELU(alpha=0.7), away_from(0, shape=(4, 5))),
    layer("gelu", lambda t: t.nn.GELU(), normal(4, 5, scale=2.0)),
    layer("gelu_tanh", lambda t: t.nn.GELU(approximate="tanh"), normal(4, 5, scale=2.0)),
    layer("sigmoid", lambda t: t.nn.Sigmoid(), normal(4, 5, scale=3.0)),
    layer("tanh", lambda t: t.nn.Tanh(), normal(4, 5, scale=2.0)),
    layer("softplus", lambda t: t.nn.Softplus(), normal(4, 5, scale=3.0)),
    layer("softplus_beta_threshold", lambda t: t.nn.Softplus(beta=2.0, threshold=3.0),
          away_from(1.5, shape=(4, 5), scale=2.0)),
    layer("softmax", lambda t: t.nn.Softmax(dim=1), normal(3, 5, scale=2.0)),
    layer("softmax_dim0", lambda t: t.nn.Softmax(dim=0), normal(3, 5)),
    layer("log_softmax", lambda t: t.nn.LogSoftmax(dim=-1), normal(2, 3, 4, scale=2.0)),
    layer("sequential", lambda t: t.nn.Sequential(t.nn.Linear(4, 5), t.nn.Tanh(),
                                                  t.nn.Linear(5, 2)), normal(3, 4)),
    layer("sequential_named", lambda t: t.nn.Sequential(OrderedDict(
        [("fc", t.nn.Linear(4, 5)), ("norm", t.nn.LayerNorm(5)), ("act", t.nn.Sigmoid())])),
        normal(3, 4)),
    layer("module_list", with_list, normal(3, 4)),
    layer("module_dict", with_dict, normal(3, 4)),
    layer("residual", residual, normal(3, 4)),
    layer("net", net, normal(5, 4)),
]


def _run(module, x, lib, dtype):
    """Forward on `x` (a float input made a leaf that requires grad) -> (input tensor, output)."""
    if x.dtype.kind == "f":
        xt = lib.tensor(x.astype(dtype), requires_grad=True)
    else:
        xt = lib.tensor(x)
    return xt, module(xt)


@pytest.mark.parametrize("c", LAYERS)
def test_layer_matches_torch(c: Layer):
    t, r = pair(c.make)
    t.train(c.train)
    r.train(c.train)
    x = c.input()
    tx, tout = _run(t, x, torch, np.float32)
    rx, rout = _run(r, x, rg, np.float32)
    assert rout.dtype == np.float32
    assert_close(rout.data, tout.detach().numpy(), f"{c.name}: output")
    g = np.random.default_rng(1).standard_normal(tout.shape).astype(np.float32)
    tout.backward(torch.tensor(g))
    rout.backward(g)
    if x.dtype.kind == "f":
        assert_close(rx.grad.data, tx.grad.numpy(), f"{c.name}: input gradient")
    ours = dict(r.named_parameters())
    assert list(ours) == [n for n, _ in t.named_parameters()]
    for name, p in t.named_parameters():
        if p.grad is None:
            assert ours[name].grad is None, f"{c.name}: {name} has a gradient, torch's has none"
        else:
            assert_close(ours[name].grad.data, p.grad.numpy(), f"{c.name}: gradient of {name}")
    # the training step moved the running statistics exactly as torch's did
    for name, b in t.named_buffers():
        assert_close(np.asarray(dict(r.named_buffers())[name].data), b.numpy(), f"{c.name}: {name}")


@pytest.mark.parametrize("c", [p for p in LAYERS if p.values[0].gradcheck])
def test_layer_gradcheck(c: Layer):
    _, r = pair(c.make)
    r.train(c.train).double()
    x = c.input()
    params = list(r.parameters())
    assert all(p.dtype == np.float64 for p in params)
    inputs = (rg.tensor(x, requires_grad=x.dtype.kind == "f"), *params)
    if not any(t.requires_grad for t in inputs):
        pytest.skip("nothing differentiable")
    assert rg.gradcheck(lambda x, *ps: r(x), inputs)


@pytest.mark.parametrize("weight, bias, x_grad", [
    (True, True, True), (True, False, True), (False, True, True), (False, False, True),
    ("constant", True, True), (True, True, False)],
    ids=["affine", "weight_only", "bias_only", "none", "constant_weight", "constant_input"])
def test_functional_layer_norm_matches_torch(weight, bias, x_grad):
    """F.layer_norm over two trailing dims with any of weight and bias, each trained or not."""
    g = np.random.default_rng(7)
    shape = (2, 5)
    x = 2 * g.standard_normal((3, 4, *shape)) + 1
    w = g.standard_normal(shape) if weight else None
    b = g.standard_normal(shape) if bias else None
    needs = (x_grad, weight is True, bias is True)
    up = g.standard_normal(x.shape).astype(np.float32)

    def make(lib, a, need, dtype):
        return None if a is None else lib.tensor(a.astype(dtype), requires_grad=need)
    t_in = [make(torch, a, n, np.float32) for a, n in zip((x, w, b), needs)]
    r_in = [make(rg, a, n, np.float32) for a, n in zip((x, w, b), needs)]
    tout = torch.nn.functional.layer_norm(t_in[0], shape, t_in[1], t_in[2], eps=1e-5)
    rout = nn.functional.layer_norm(r_in[0], shape, r_in[1], r_in[2], eps=1e-5)
    assert rout.dtype == np.float32
    assert_close(rout.data, tout.detach().numpy(), "output")
    tout.backward(torch.tensor(up))
    rout.backward(up)
    for name, t, r, need in zip(("x", "weight", "bias"), t_in, r_in, needs):
        if need:
            assert_close(r.grad.data, t.grad.numpy(), f"gradient of {name}")
        elif r is not None:
            assert r.grad is None

    r64 = [make(rg, a, n, np.float64) for a, n in zip((x, w, b), needs)]
    trained = [i for i, n in enumerate(needs) if n]

    def fn(*ts):
        args = list(r64)
        for i, t in zip(trained, ts):
            args[i] = t
        return nn.functional.layer_norm(args[0], shape, args[1], args[2], eps=1e-5)
    assert rg.gradcheck(fn, [r64[i] for i in trained])


def test_dropout_gradcheck_under_a_fixed_seed():
    drop = nn.Dropout(0.4)
    x = rg.randn(4, 6, dtype=rg.float64, requires_grad=True)

    def fn(x):
        rg.manual_seed(3)      # the same mask at every evaluation
        return drop(x)
    assert rg.gradcheck(fn, (x,))


def test_tied_weight_gradient_accumulates_like_torch():
    def make(lib):
        m = lib.nn.Sequential(lib.nn.Linear(3, 3), lib.nn.Tanh(), lib.nn.Linear(3, 3))
        m[2].weight = m[0].weight
        return m
    t, r = pair(make)
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    t(torch.tensor(x)).sum().backward()
    r(rg.tensor(x)).sum().backward()
    assert r[0].weight is r[2].weight
    assert_close(r[0].weight.grad.data, t[0].weight.grad.numpy(), "tied weight gradient")
    assert len(list(r.parameters())) == len(list(t.parameters())) == 3


# -- train / eval behaviour -----------------------------------------------------------------------

def test_dropout_train_zeros_about_p_and_scales_survivors():
    rg.manual_seed(0)
    p = 0.3
    drop = nn.Dropout(p)
    x = rg.ones(200, 300, requires_grad=True)
    y = drop(x)
    zero = y.data == 0
    assert abs(zero.mean() - p) < 0.01
    np.testing.assert_allclose(y.data[~zero], 1 / (1 - p), rtol=1e-6)
    assert y.dtype == np.float32
    y.sum().backward()      # gradient: the same mask, the same scale
    np.testing.assert_array_equal(x.grad.data, y.data)


def test_dropout_eval_is_identity_and_edge_probabilities():
    x = rg.randn(5, 7)
    drop = nn.Dropout(0.5).eval()
    assert drop(x) is x
    assert nn.Dropout(0.0)(x) is x
    np.testing.assert_array_equal(nn.Dropout(1.0)(x).data, np.zeros((5, 7)))


def test_dropout_keeps_float16_and_float64():
    for dtype in (rg.float16, rg.float64):
        y = nn.Dropout(0.5)(rg.ones(50, dtype=dtype))
        assert y.dtype == dtype and set(np.unique(y.data)) <= {0.0, 2.0}


def test_dropout_reproducible_under_manual_seed():
    drop = nn.Dropout(0.5)
    x = rg.ones(10, 10)
    rg.manual_seed(42)
    a = drop(x).data
    b = drop(x).data
    rg.manual_seed(42)
    np.testing.assert_array_equal(drop(x).data, a)
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("momentum", [0.1, None, 0.5])
@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5), (2, 3, 2, 2)], ids=["nc", "ncl", "nchw"])
def test_batchnorm_running_statistics_follow_torch(momentum, shape):
    cls = "BatchNorm2d" if len(shape) == 4 else "BatchNorm1d"
    t = getattr(torch.nn, cls)(3, momentum=momentum)
    r = getattr(nn, cls)(3, momentum=momentum)
    rng = np.random.default_rng(0)
    for step in range(4):
        x = (rng.standard_normal(shape) * (step + 1) + step).astype(np.float32)
        tout = t(torch.tensor(x))
        rout = r(rg.tensor(x))
        assert_close(rout.data, tout.detach().numpy(), f"train output, step {step}")
    assert int(r.num_batches_tracked.data) == int(t.num_batches_tracked) == 4
    assert_close(r.running_mean.data, t.running_mean.numpy(), "running_mean")
    assert_close(r.running_var.data, t.running_var.numpy(), "running_var")
    # eval: running statistics normalise, and stay as they are
    t.eval()
    r.eval()
    x = rng.standard_normal(shape).astype(np.float32)
    before = r.running_mean.data.copy()
    assert_close(r(rg.tensor(x)).data, t(torch.tensor(x)).detach().numpy(), "eval output")
    np.testing.assert_array_equal(r.running_mean.data, before)
    assert int(r.num_batches_tracked.data) == 4


def test_batchnorm_updates_running_stats_under_no_grad():
    t, r = torch.nn.BatchNorm1d(2), nn.BatchNorm1d(2)
    x = np.random.default_rng(0).standard_normal((6, 2)).astype(np.float32)
    with torch.no_grad():
        t(torch.tensor(x))
    with rg.no_grad():
        r(rg.tensor(x))
    assert_close(r.running_var.data, t.running_var.numpy(), "running_var")
    assert int(r.num_batches_tracked.data) == 1


def test_batchnorm_without_running_stats():
    t = torch.nn.BatchNorm1d(3, track_running_stats=False)
    r = nn.BatchNorm1d(3, track_running_stats=False)
    assert r.running_mean is None and r.num_batches_tracked is None
    assert list(r.state_dict()) == list(t.state_dict()) == ["weight", "bias"]
    assert list(r.buffers()) == []
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    for mode in (True, False):          # batch statistics in both modes
        t.train(mode)
        r.train(mode)
        assert_close(r(rg.tensor(x)).data, t(torch.tensor(x)).detach().numpy(), f"train={mode}")


def test_batchnorm_failed_call_changes_nothing():
    bn = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(rg.randn(1, 3))
    assert int(bn.num_batches_tracked.data) == 0
    np.testing.assert_array_equal(bn.running_var.data, np.ones(3))
    bn.eval()
    assert bn(rg.randn(1, 3)).shape == (1, 3)     # eval uses running stats: one sample is fine


# -- Module semantics -----------------------------------------------------------------------------

def test_names_and_keys_equal_torchs():
    t, r = net(torch), net(rg)
    assert [n for n, _ in r.named_parameters()] == [n for n, _ in t.named_parameters()]
    assert [n for n, _ in r.named_buffers()] == [n for n, _ in t.named_buffers()]
    assert [n for n, _ in r.named_modules()] == [n for n, _ in t.named_modules()]
    assert [n for n, _ in r.named_children()] == [n for n, _ in t.named_children()]
    assert list(r.state_dict()) == list(t.state_dict())
    assert "bn.num_batches_tracked" in r.state_dict()
    assert [type(m).__name__ for m in r.modules()] == [type(m).__name__ for m in t.modules()]
    assert [type(m).__name__ for m in r.children()] == [type(m).__name__ for m in t.children()]
    assert [n for n, _ in r.body.named_parameters(prefix="body")] == \
        [n for n, _ in t.body.named_parameters(prefix="body")]
    assert [n for n, _ in r.named_parameters(recurse=False)] == ["scale"]


def test_state_dict_values_share_memory_and_round_trip_to_torch():
    t, r = pair(net)
    sd = r.state_dict()
    assert not sd["fc1.weight"].requires_grad
    sd["fc1.weight"].data[0, 0] = 123.0           # detached, but the same memory
    assert r.fc1.weight.data[0, 0] == 123.0
    t2 = net(torch)
    t2.load_state_dict({k: torch.from_numpy(np.array(v.data)) for k, v in r.state_dict().items()})
    for k, v in t2.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), np.asarray(r.state_dict()[k].data), err_msg=k)
    # torch tensors load directly too (anything array-like)
    r2 = net(rg)
    r2.load_state_dict(t2.state_dict())
    np.testing.assert_array_equal(r2.fc1.weight.data, r.fc1.weight.data)


def test_shared_module_appears_under_every_path_in_state_dict():
    def make(lib):
        lin = lib.nn.Linear(2, 2)
        return lib.nn.Sequential(lin, lib.nn.ReLU(), lin)
    t, r = pair(make)
    assert list(r.state_dict()) == list(t.state_dict())
    assert [n for n, _ in r.named_parameters()] == [n for n, _ in t.named_parameters()]
    assert [n for n, _ in r.named_modules()] == [n for n, _ in t.named_modules()]
    assert len(list(r.parameters())) == 2


def test_tied_parameters_appear_once():
    def make(lib):
        m = lib.nn.Sequential(lib.nn.Embedding(5, 3), lib.nn.Linear(3, 5))
        m[1].weight = m[0].weight
        return m
    t, r = make(torch), make(rg)
    assert [n for n, _ in r.named_parameters()] == [n for n, _ in t.named_parameters()]
    assert list(r.state_dict()) == list(t.state_dict())       # both keys, as torch
    assert [n for n, _ in r.named_parameters(remove_duplicate=False)] == \
        [n for n, _ in t.named_parameters(remove_duplicate=False)]


def test_load_state_dict_strict_errors_name_the_keys():
    r = net(rg)
    sd = {k: np.asarray(v.data) for k, v in r.state_dict().items()}
    missing = {k: v for k, v in sd.items() if k != "bn.running_mean"}
    with pytest.raises(RuntimeError, match=r"(?s)Net.*missing.*bn\.running_mean"):
        r.load_state_dict(missing)
    with pytest.raises(RuntimeError, match=r"unexpected.*fc9\.weight"):
        r.load_state_dict({**sd, "fc9.weight": np.zeros(2)})
    wrong = dict(sd, **{"heads.1.weight": np.zeros((3, 5))})
    with pytest.raises(RuntimeError) as err:
        r.load_state_dict(wrong)
    msg = str(err.value)
    assert "heads.1.weight" in msg and "(3, 5)" in msg and "(3, 6)" in msg


def test_load_state_dict_invalidates_graphs_that_saved_the_old_weights():
    """As torch: loading writes the parameters in place, so backward through a graph built
    before the load raises instead of using the new weights with the old activations."""
    for lib in (torch, rg):
        m = lib.nn.Linear(2, 2)
        x = lib.ones(1, 2, requires_grad=True)
        out = m(x).sum()
        m.load_state_dict(m.state_dict())
        with pytest.raises(RuntimeError, match="modified by an in-?place operation"):
            out.backward()


def test_vector_to_parameters_round_trip_and_old_graphs_as_torch():
    t, r = pair(lambda lib: lib.nn.Linear(3, 2))
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    outs = []
    for lib, m in ((torch, t), (rg, r)):
        u = lib.nn.utils
        saved = u.parameters_to_vector(m.parameters())
        xs = lib.tensor(x, requires_grad=True)
        out = (m(xs) ** 2).sum()
        u.vector_to_parameters(saved * 2, m.parameters())   # new values, new memory
        out.backward()          # through the old weights, which the graph still holds
        outs.append([v.detach().numpy() for v in
                     (xs.grad, m.weight, u.parameters_to_vector(m.parameters()))])
    for what, ours, theirs in zip(("x.grad", "weight", "vector"), outs[1], outs[0]):
        assert_close(ours, theirs, what)
    before = r.weight.data.copy()
    with pytest.raises(ValueError, match=r"vector_to_parameters: vector of shape \(5,\).*8"):
        rg.nn.utils.vector_to_parameters(rg.zeros(5), r.parameters())
    np.testing.assert_array_equal(r.weight.data, before)    # checked before anything is written


def test_failed_load_leaves_model_unchanged():
    _, r = pair(net)
    before = {k: np.array(v.data) for k, v in r.state_dict().items()}
    changed = {k: v + 1 for k, v in before.items()}
    changed["unused.weight"] = np.zeros((4, 2))          # the last key fails
    with pytest.raises(RuntimeError, match="unused.weight"):
        r.load_state_dict(changed)
    for k, v in r.state_dict().items():
        np.testing.assert_array_equal(v.data, before[k], err_msg=k)
    changed.pop("unused.weight")
    with pytest.raises(RuntimeError, match="missing"):    # strict: a missing key fails it all
        r.load_state_dict(changed)
    np.testing.assert_array_equal(r.fc1.weight.data, before["fc1.weight"])


def test_load_state_dict_non_strict_returns_missing_and_unexpected_like_torch():
    t, r = net(torch), net(rg)
    sd = {k: v for k, v in numpy_state(t).items() if not k.startswith("bn.")}
    sd["extra.other.weight"] = np.ones(2, dtype=np.float32)
    theirs = t.load_state_dict({k: torch.tensor(v) for k, v in sd.items()}, strict=False)
    ours = r.load_state_dict(sd, strict=False)
    # torch quietly fills a missing num_batches_tracked (a shim for old checkpoints); we report it
    assert ours.missing_keys == theirs.missing_keys + ["bn.num_batches_tracked"]
    assert ours.unexpected_keys == theirs.unexpected_keys
    missing, unexpected = ours
    assert "bn.running_mean" in missing and unexpected == ["extra.other.weight"]
    np.testing.assert_array_equal(r.fc1.weight.data, sd["fc1.weight"])   # the rest loaded
    with pytest.raises(RuntimeError, match="size mismatch"):    # shapes are checked regardless
        r.load_state_dict({"fc1.weight": np.zeros((2, 2))}, strict=False)


def test_load_keeps_parameter_identity_and_dtype():
    r = nn.Linear(3, 2).double()
    w = r.weight
    r.load_state_dict({"weight": np.ones((2, 3), dtype=np.float32), "bias": [1.0, 2.0]})
    assert r.weight is w and w.dtype == np.float64
    np.testing.assert_array_equal(r.bias.data, [1.0, 2.0])


def test_registration():
    m = nn.Module()
    m.w = nn.Parameter(rg.ones(2))
    m.plain = rg.ones(2)                    # a plain tensor is not a parameter
    m.child = nn.Linear(2, 2)
    m.register_buffer("stat", rg.zeros(2))
    m.register_buffer("scratch", rg.zeros(2), persistent=False)
    assert [n for n, _ in m.named_parameters()] == ["w", "child.weight", "child.bias"]
    assert [n for n, _ in m.named_buffers()] == ["stat", "scratch"]
    assert list(m.state_dict()) == ["w", "stat", "child.weight", "child.bias"]
    with pytest.raises(TypeError, match="parameter 'w'"):
        m.w = rg.ones(2)
    m.w = None                               # a registered parameter may be set to None
    assert "w" not in dict(m.named_parameters()) and m.w is None
    m.child = nn.Parameter(rg.zeros(1))      # rebinding moves the name between registries
    assert "child" not in m._modules and "child" in m._parameters
    m.stat = rg.ones(2)                      # a buffer takes a new tensor
    np.testing.assert_array_equal(m.state_dict()["stat"].data, [1, 1])
    del m.stat
    assert "stat" not in m.state_dict() and not hasattr(m, "stat")
    with pytest.raises(AttributeError):
        del m.nonexistent


def test_registration_names_are_checked_like_torch():
    m = nn.Linear(2, 2)
    with pytest.raises(KeyError, match="empty or contain"):
        m.add_module("a.b", nn.ReLU())
    with pytest.raises(KeyError, match="empty"):
        m.register_buffer("", rg.zeros(1))
    with pytest.raises(KeyError, match="'in_features' already exists"):
        m.register_buffer("in_features", rg.zeros(1))
    with pytest.raises(KeyError, match="'train' already exists"):
        nn.ModuleDict({"train": nn.ReLU()})          # would hide Module.train
    with pytest.raises(TypeError, match="must be a Module"):
        m.add_module("x", rg.zeros(1))
    with pytest.raises(AttributeError, match="before Module.__init__"):
        class Broken(nn.Module):
            def __init__(self):
                self.fc = nn.Linear(1, 1)
        Broken()


def test_plain_attributes_take_the_normal_route():
    class Scaled(nn.Module):
        def __init__(self, k):
            self.k = k                 # plain values before Module.__init__ are fine, as in torch
            super().__init__()
            self._factor = 1

        @property
        def factor(self):
            return self._factor

        @factor.setter
        def factor(self, value):
            self._factor = 2 * value
    m = Scaled(3)
    m.factor = 5                       # the property's setter runs
    assert m.factor == 10 and m.k == 3 and list(m.state_dict()) == []


def test_containers():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear)
    assert [n for n, _ in seq[1:].named_parameters()] == ["2.weight", "2.bias"]   # as torch
    seq.append(nn.Sigmoid())
    assert list(seq._modules) == ["0", "1", "2", "3"]
    ml = nn.ModuleList([nn.Linear(1, 1)])
    ml.extend([nn.ReLU(), nn.Tanh()])
    ml[-1] = nn.Sigmoid()
    assert [type(m).__name__ for m in ml] == ["Linear", "ReLU", "Sigmoid"]
    with pytest.raises(IndexError, match="index 3 is out of range for 3"):
        ml[3] = nn.ReLU()
    md = nn.ModuleDict({"a": nn.ReLU()})
    md["b"] = nn.Linear(1, 1)
    assert list(md) == ["a", "b"] and "b" in md and len(md) == 2
    del md["a"]
    assert list(md.keys()) == ["b"] and [n for n, _ in md.named_parameters()] == ["b.weight",
                                                                                  "b.bias"]


def test_train_eval_propagate():
    m = net(rg)
    assert m.eval() is m
    assert all(not sub.training for sub in m.modules())
    m.train()
    assert all(sub.training for sub in m.modules())
    m.body.eval()
    assert m.training and not m.body[2][0].training


def test_zero_grad():
    m = nn.Linear(3, 2)
    m(rg.randn(4, 3)).sum().backward()
    assert m.weight.grad is not None
    m.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(m.weight.grad.data, np.zeros((2, 3)))
    m.zero_grad()
    assert m.weight.grad is None and m.bias.grad is None


def test_forward_hooks_and_pre_hooks():
    m = nn.Linear(2, 2)
    x = rg.randn(3, 2)
    seen = []
    h1 = m.register_forward_pre_hook(lambda mod, args: seen.append(("pre", mod, args[0])))
    h2 = m.register_forward_hook(lambda mod, args, out: seen.append(("post", args[0], out)))
    out = m(x)
    assert [s[0] for s in seen] == ["pre", "post"]
    assert seen[0][1] is m and seen[0][2] is x and seen[1][1] is x and seen[1][2] is out
    h3 = m.register_forward_pre_hook(lambda mod, args: args[0] * 2)        # replaces the input
    h4 = m.register_forward_hook(lambda mod, args, out: out + 1)          # replaces the output
    expected = (x.data * 2) @ m.weight.data.T + m.bias.data + 1
    np.testing.assert_allclose(m(x).data, expected, rtol=1e-6)
    for h in (h1, h2, h3, h4):
        h.remove()
    h4.remove()                                                            # twice is harmless
    seen.clear()
    np.testing.assert_allclose(m(x).data, out.data)
    assert seen == []


def test_repr_matches_torch():
    assert repr(net(rg)) == repr(net(torch))
    for make in (lambda t: t.nn.Linear(3, 2, bias=False), lambda t: t.nn.Dropout(0.1),
                 lambda t: t.nn.BatchNorm2d(4, momentum=None, affine=False),
                 lambda t: t.nn.LayerNorm((2, 3), bias=False),
                 lambda t: t.nn.Embedding(10, 4, padding_idx=0), lambda t: t.nn.Flatten(0),
                 lambda t: t.nn.GELU(approximate="tanh"), lambda t: t.nn.Softmax(dim=1),
                 lambda t: t.nn.LeakyReLU(0.2), lambda t: t.nn.ELU(0.5), lambda t: t.nn.Identity(),
                 lambda t: t.nn.Softplus(beta=2.0)):
        assert repr(make(rg)) == repr(make(torch))

    class WithExtra(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(1, 1)

        def extra_repr(self):
            return "k=3"
    assert repr(WithExtra()) == \
        "WithExtra(\n  k=3\n  (fc): Linear(in_features=1, out_features=1, bias=True)\n)"


def test_apply_visits_children_first_like_torch():
    ours, theirs = [], []
    net(rg).apply(lambda m: ours.append(type(m).__name__))
    net(torch).apply(lambda m: theirs.append(type(m).__name__))
    assert ours == theirs

    def init(m):
        if isinstance(m, nn.Linear):
            nn.init.constant_(m.weight, 0.5)
    m = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 2)))
    assert m.apply(init) is m
    assert all((lin.weight.data == 0.5).all() for lin in (m[0], m[1][0]))


def test_to_float64_and_back():
    m = net(rg)
    params = list(m.parameters())
    assert m.to(rg.float64) is m
    assert all(p.dtype == np.float64 for p in m.parameters())
    assert m.bn.running_var.dtype == np.float64 and m.offset.dtype == np.float64
    assert m.bn.num_batches_tracked.dtype == np.int64          # integer buffers keep their type
    assert all(a is b for a, b in zip(params, m.parameters()))  # the same objects (optimizers)
    assert m(rg.randn(3, 4, dtype=rg.float64)).dtype == np.float64
    m.float()
    assert all(p.dtype == np.float32 for p in m.parameters())
    assert nn.Linear(2, 2, dtype=rg.float64).weight.dtype == np.float64
    assert nn.BatchNorm1d(2, dtype="float64").running_mean.dtype == np.float64
    assert nn.LayerNorm(2, dtype=rg.float64).bias.dtype == np.float64
    assert nn.Embedding(3, 2, dtype=rg.float64).weight.dtype == np.float64


def test_requires_grad_false_freezes_parameters():
    m = nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 1))
    assert m[0].requires_grad_(False) is m[0]
    x = rg.randn(2, 3, requires_grad=True)
    m(x).sum().backward()
    assert m[0].weight.grad is None and m[0].bias.grad is None
    assert m[2].weight.grad is not None and x.grad is not None
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())
    assert not m(rg.randn(2, 3)).requires_grad


def test_linear_default_init_bounds_match_torchs():
    rg.manual_seed(0)
    m = nn.Linear(400, 300)
    bound = 1 / np.sqrt(400)
    for p in (m.weight, m.bias):
        assert np.abs(p.data).max() <= bound and np.abs(p.data).max() > 0.98 * bound
    assert abs(m.weight.data.std() - bound / np.sqrt(3)) < 0.01 * bound
    t = torch.nn.Linear(400, 300)     # torch's spread, for the same layer
    assert abs(t.weight.detach().std().item() - m.weight.data.std()) < 0.01 * bound
    rg.manual_seed(0)
    np.testing.assert_array_equal(nn.Linear(400, 300).weight.data, m.weight.data)
    assert nn.Linear(0, 3).weight.shape == (3, 0)


def test_embedding_init_and_padding_row():
    rg.manual_seed(0)
    e = nn.Embedding(1000, 50, padding_idx=3)
    assert abs(e.weight.data.std() - 1.0) < 0.02
    np.testing.assert_array_equal(e.weight.data[3], np.zeros(50))
    assert e.padding_idx == 3 and nn.Embedding(5, 2, padding_idx=-2).padding_idx == 3


@pytest.mark.parametrize("vocab, padding_idx", [(1000, None), (64, 5)])
def test_embedding_gradient_of_repeated_ids_matches_torch(vocab, padding_idx):
    # big enough for the bincount path of the backward (16 x 64 ids of dimension 32)
    g = np.random.default_rng(0)
    ids = g.integers(0, vocab, (16, 64))
    weight = g.standard_normal((vocab, 32)).astype(np.float32)
    upstream = g.standard_normal((16, 64, 32)).astype(np.float32)
    e = nn.Embedding(vocab, 32, padding_idx=padding_idx)
    e.weight.data[...] = weight
    (e(rg.tensor(ids)) * rg.tensor(upstream)).sum().backward()
    tw = torch.tensor(weight, requires_grad=True)
    (torch.nn.functional.embedding(torch.tensor(ids), tw, padding_idx=padding_idx)
     * torch.tensor(upstream)).sum().backward()
    np.testing.assert_allclose(e.weight.grad.data, tw.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_embedding_empty_ids():
    e = nn.Embedding(5, 3)
    out = e(rg.tensor(np.zeros((2, 0), dtype=np.int64)))
    assert out.shape == (2, 0, 3)
    out.sum().backward()
    np.testing.assert_array_equal(e.weight.grad.data, np.zeros((5, 3)))


# -- input validation: the layer and both shapes are named ----------------------------------------

@pytest.mark.parametrize("call, error, texts", [
    (lambda: nn.Linear(4, 3)(rg.randn(2, 5)), ValueError,
     ["Linear(in_features=4, out_features=3", "last dimension 4", "(2, 5)"]),
    (lambda: nn.Linear(4, 3)(rg.tensor(1.0)), ValueError, ["Linear(", "got shape ()"]),
    (lambda: nn.BatchNorm1d(3)(rg.randn(2, 4)), ValueError,
     ["BatchNorm1d(3)", "3 channels in dimension 1", "(2, 4)"]),
    (lambda: nn.BatchNorm1d(3)(rg.randn(2, 3, 2, 2)), ValueError,
     ["BatchNorm1d(3)", "2-D or 3-D", "(2, 3, 2, 2)"]),
    (lambda: nn.BatchNorm2d(3)(rg.randn(2, 3, 4)), ValueError,
     ["BatchNorm2d(3)", "4-D", "(2, 3, 4)"]),
    (lambda: nn.BatchNorm2d(3)(rg.randn(2, 4, 2, 2)), ValueError,
     ["BatchNorm2d(3)", "3 channels", "(2, 4, 2, 2)"]),
    (lambda: nn.LayerNorm((3, 4))(rg.randn(2, 4, 3)), ValueError,
     ["LayerNorm((3, 4))", "(2, 4, 3)"]),
    (lambda: nn.LayerNorm((3, 4))(rg.randn(4)), ValueError, ["LayerNorm((3, 4))", "(4,)"]),
    (lambda: nn.Embedding(5, 2)(rg.tensor([1, 5])), IndexError,
     ["Embedding(5, 2)", "id 5", "[0, 5)"]),
    (lambda: nn.Embedding(5, 2)(rg.tensor([[-1, 2]])), IndexError, ["Embedding(5, 2)", "id -1"]),
    (lambda: nn.Embedding(5, 2)(rg.tensor([1.0])), TypeError,
     ["Embedding(5, 2)", "integer ids", "float32"]),
    (lambda: nn.Embedding(5, 2, padding_idx=5), ValueError, ["padding_idx 5"]),
    (lambda: nn.Dropout(1.5), ValueError, ["Dropout", "1.5"]),
    (lambda: nn.BatchNorm2d(2)(rg.randn(1, 2, 1, 1)), ValueError,
     ["BatchNorm2d(2)", "more than 1 value per channel"]),
])
def test_errors_name_the_layer_and_shapes(call, error, texts):
    with pytest.raises(error) as err:
        call()
    for text in texts:
        assert text in str(err.value), f"{text!r} not in {str(err.value)!r}"
