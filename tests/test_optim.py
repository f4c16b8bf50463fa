"""Optimizers against torch.optim: same initial parameters, same gradient sequence, same result."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import retrograd as rg
from retrograd import optim
from retrograd.nn.parameter import Parameter

SHAPES = [(3, 4), (5,), (2, 3, 2)]
# torch's CPU kernels fuse x + a*y into one FMA (one rounding), NumPy rounds product and sum apart:
# up to an ulp per step, 4.8e-7 at |x| = 4, hence a relative tolerance beside the absolute one.
ATOL = RTOL = 1e-6


def grid(**options) -> list[dict]:
    """Every combination of the listed option values."""
    names = list(options)
    return [dict(zip(names, values)) for values in itertools.product(*options.values())]


def _valid_sgd(o: dict) -> bool:
    return not o["nesterov"] or (o["momentum"] > 0 and o["dampening"] == 0)


CONFIGS = {
    "SGD": [o for o in grid(lr=[0.05], momentum=[0.0, 0.9], dampening=[0.0, 0.3],
                            nesterov=[False, True], weight_decay=[0.0, 0.1],
                            maximize=[False, True]) if _valid_sgd(o)],
    "Adagrad": grid(lr=[0.1], lr_decay=[0.0, 0.05], weight_decay=[0.0, 0.1],
                    initial_accumulator_value=[0.0, 0.5], eps=[1e-10, 1e-2],
                    maximize=[False, True]),
    "RMSprop": grid(lr=[0.01], alpha=[0.99, 0.9], eps=[1e-8, 1e-2], weight_decay=[0.0, 0.1],
                    momentum=[0.0, 0.9], centered=[False, True], maximize=[False, True]),
    "Adam": grid(lr=[0.01], betas=[(0.9, 0.999), (0.8, 0.99)], eps=[1e-8, 1e-3],
                 weight_decay=[0.0, 0.1], amsgrad=[False, True], maximize=[False, True]),
    "AdamW": grid(lr=[0.01], betas=[(0.9, 0.999), (0.8, 0.99)], weight_decay=[0.0, 1e-2, 0.1],
                  amsgrad=[False, True], maximize=[False, True]),
}
CASES = [pytest.param(name, opts, id=f"{name}-" + "-".join(f"{k}={v}" for k, v in opts.items()))
         for name, configs in CONFIGS.items() for opts in configs]


def problem(steps: int, seed: int = 0):
    """Initial float32 parameters of three shapes and a gradient sequence; the second parameter gets
    no gradient on every third step (it must be skipped, state included)."""
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    grads = [[None if (k % 3 == 2 and i == 1) else rng.standard_normal(s).astype(np.float32)
              for i, s in enumerate(SHAPES)] for k in range(steps)]
    return init, grads


def rg_steps(opt, params, grads) -> None:
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = None if g is None else rg.Tensor(g)
        opt.step()


def torch_steps(opt, params, grads) -> None:
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = None if g is None else torch.tensor(g)
        opt.step()


def assert_params_match(ours, theirs) -> None:
    for i, (p, q) in enumerate(zip(ours, theirs)):
        assert p.data.dtype == np.float32, f"parameter {i} became {p.data.dtype}"
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=RTOL, atol=ATOL,
                                   err_msg=f"parameter {i}")


@pytest.mark.parametrize("name, options", CASES)
def test_matches_torch(name, options):
    init, grads = problem(20)
    ours = [Parameter(a) for a in init]
    theirs = [torch.nn.Parameter(torch.tensor(a)) for a in init]
    opt = getattr(optim, name)(ours, **options)
    rg_steps(opt, ours, grads)
    torch_steps(getattr(torch.optim, name)(theirs, **options), theirs, grads)
    assert_params_match(ours, theirs)
    for state in opt.state.values():
        for key, value in state.items():
            if isinstance(value, np.ndarray):
                assert value.dtype == np.float32, f"state {key!r} became {value.dtype}"


@pytest.mark.parametrize("name, options", CASES)
def test_state_dict_round_trip(name, options):
    """Save after 10 steps, load into a new optimizer over new parameters, 10 more steps: the same
    parameters, bit for bit, as 20 uninterrupted steps."""
    init, grads = problem(20)
    straight = [Parameter(a) for a in init]
    rg_steps(getattr(optim, name)(straight, **options), straight, grads)

    first = [Parameter(a) for a in init]
    opt = getattr(optim, name)(first, **options)
    rg_steps(opt, first, grads[:10])
    saved = opt.state_dict()
    resumed = [Parameter(p.data) for p in first]  # copies of the parameters at the time of saving
    rg_steps(opt, first, grads[10:12])  # the saved dict is a snapshot: later steps don't touch it
    other = dict(options, lr=123.0)  # the saved options must win over the new optimizer's
    opt2 = getattr(optim, name)(resumed, **other)
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["lr"] == options["lr"]
    rg_steps(opt2, resumed, grads[10:])
    for p, q in zip(resumed, straight):
        np.testing.assert_array_equal(p.data, q.data)


def test_sgd_without_momentum_has_no_state_like_torch():
    init, grads = problem(2)
    ours = [Parameter(a) for a in init]
    theirs = [torch.nn.Parameter(torch.tensor(a)) for a in init]
    opt, topt = optim.SGD(ours, lr=0.1), torch.optim.SGD(theirs, lr=0.1)
    rg_steps(opt, ours, grads)
    torch_steps(topt, theirs, grads)
    assert opt.state_dict()["state"] == topt.state_dict()["state"] == {}


def test_state_dict_layout_is_torchs():
    init, grads = problem(3)
    ours = [Parameter(a) for a in init]
    theirs = [torch.nn.Parameter(torch.tensor(a)) for a in init]
    opt = optim.Adam([{"params": ours[:1]}, {"params": ours[1:], "lr": 0.1}], amsgrad=True)
    topt = torch.optim.Adam([{"params": theirs[:1]}, {"params": theirs[1:], "lr": 0.1}],
                            amsgrad=True)
    rg_steps(opt, ours, grads)
    torch_steps(topt, theirs, grads)
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1, 2]]
    assert [g["params"] for g in tsd["param_groups"]] == [[0], [1, 2]]
    for g, tg in zip(sd["param_groups"], tsd["param_groups"]):
        assert {k: g[k] for k in ("lr", "betas", "eps", "weight_decay", "amsgrad")} == \
            {k: tg[k] for k in ("lr", "betas", "eps", "weight_decay", "amsgrad")}
    assert sd["state"].keys() == tsd["state"].keys() == {0, 1, 2}
    for i in sd["state"]:
        assert sd["state"][i].keys() == tsd["state"][i].keys()
        assert sd["state"][i]["step"] == tsd["state"][i]["step"].item()
        np.testing.assert_allclose(sd["state"][i]["exp_avg"],
                                   tsd["state"][i]["exp_avg"].numpy(), atol=ATOL)


@pytest.mark.parametrize("name, options", [
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
])
def test_loads_torch_state_dict(name, options):
    """A torch optimizer's state dict loads into ours (tensors become float32 arrays) and the run
    continues as torch's does."""
    init, grads = problem(20)
    theirs = [torch.nn.Parameter(torch.tensor(a)) for a in init]
    topt = getattr(torch.optim, name)(theirs, **options)
    torch_steps(topt, theirs, grads[:10])
    ours = [Parameter(q.detach().numpy().copy()) for q in theirs]
    opt = getattr(optim, name)(ours, **options)
    opt.load_state_dict(topt.state_dict())
    for state in opt.state.values():
        assert all(v.dtype == np.float32 for v in state.values() if isinstance(v, np.ndarray))
    rg_steps(opt, ours, grads[10:])
    torch_steps(topt, theirs, grads[10:])
    assert_params_match(ours, theirs)


@pytest.mark.parametrize("name, groups", [
    ("SGD", [dict(lr=0.1, momentum=0.9), dict(lr=0.01),
             dict(lr=0.05, nesterov=True, momentum=0.5)]),
    ("Adam", [dict(lr=0.02), dict(lr=0.001, betas=(0.5, 0.9)), dict(weight_decay=0.1)]),
    ("AdamW", [dict(lr=0.02), dict(lr=0.001, weight_decay=0.0), dict(amsgrad=True)]),
    ("RMSprop", [dict(lr=0.02, centered=True), dict(lr=0.001), dict(momentum=0.9)]),
    ("Adagrad", [dict(lr=0.2), dict(lr=0.01, lr_decay=0.1), dict(eps=1e-3, weight_decay=0.1)]),
])
def test_param_groups_with_their_own_options(name, groups):
    init, grads = problem(20)
    ours = [Parameter(a) for a in init]
    theirs = [torch.nn.Parameter(torch.tensor(a)) for a in init]
    defaults = dict(lr=0.03)
    opt = getattr(optim, name)([dict(g, params=[p]) for g, p in zip(groups, ours)], **defaults)
    topt = getattr(torch.optim, name)([dict(g, params=[p]) for g, p in zip(groups, theirs)],
                                      **defaults)
    rg_steps(opt, ours, grads)
    torch_steps(topt, theirs, grads)
    assert_params_match(ours, theirs)
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in topt.param_groups]


def test_adagrad_honours_a_groups_initial_accumulator_value():
    """torch 2.13 fills every accumulator with the constructor's value, ignoring the group's; the
    option is documented per group, so here it is: s starts at 1, the first step is lr·g/√(1+g²)."""
    p, q = Parameter(np.zeros(2, np.float32)), Parameter(np.zeros(2, np.float32))
    opt = optim.Adagrad([{"params": [p], "initial_accumulator_value": 1.0}, {"params": [q]}],
                        lr=0.1)
    p.grad = rg.Tensor(np.array([1.0, 3.0], np.float32))
    q.grad = rg.Tensor(np.array([1.0, 3.0], np.float32))
    opt.step()
    np.testing.assert_allclose(p.data, -0.1 * np.array([1 / np.sqrt(2), 3 / np.sqrt(10)]),
                               rtol=1e-6)
    np.testing.assert_allclose(q.data, [-0.1, -0.1], rtol=1e-6)


def test_add_param_group_fills_defaults_and_steps():
    init, grads = problem(10)
    ours = [Parameter(a) for a in init]
    theirs = [torch.nn.Parameter(torch.tensor(a)) for a in init]
    opt = optim.SGD(ours[:1], lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(theirs[:1], lr=0.1, momentum=0.9)
    rg_steps(opt, ours[:1], [g[:1] for g in grads[:5]])
    torch_steps(topt, theirs[:1], [g[:1] for g in grads[:5]])
    opt.add_param_group({"params": ours[1:], "lr": 0.01})
    topt.add_param_group({"params": theirs[1:], "lr": 0.01})
    assert opt.param_groups[1]["momentum"] == 0.9
    rg_steps(opt, ours, grads[5:])
    torch_steps(topt, theirs, grads[5:])
    assert_params_match(ours, theirs)


def test_hyper_parameters_of_numpy_type_do_not_upcast():
    init, grads = problem(5)
    for make in (lambda ps: optim.SGD(ps, lr=np.float64(0.1), momentum=np.float64(0.9)),
                 lambda ps: optim.Adam(ps, lr=np.float64(0.01), betas=(np.float64(0.9), 0.99)),
                 lambda ps: optim.Adagrad(ps, lr=np.float64(0.1)),
                 lambda ps: optim.RMSprop(ps, lr=np.float64(0.01), centered=True)):
        params = [Parameter(a) for a in init]
        opt = make(params)
        rg_steps(opt, params, grads)
        assert all(p.data.dtype == np.float32 for p in params)
        assert all(v.dtype == np.float32 for s in opt.state.values() for v in s.values()
                   if isinstance(v, np.ndarray))


def test_float64_parameters_stay_float64():
    p = Parameter(np.ones(3))
    p.data = p.data.astype(np.float64)
    p.grad = rg.Tensor(np.full(3, 0.5))
    opt = optim.Adam([p], lr=0.1)
    opt.step()
    assert p.data.dtype == np.float64 and opt.state[p]["exp_avg"].dtype == np.float64


def test_a_parameter_without_grad_is_left_alone():
    a, b = Parameter(np.ones(2, np.float32)), Parameter(np.ones(3, np.float32))
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = rg.Tensor(np.ones(2, np.float32))
    opt.step()
    np.testing.assert_array_equal(b.data, np.ones(3, np.float32))
    assert b not in opt.state and opt.state[a]["step"] == 1


# -- zero_grad, step(closure), version counters ---------------------------------------------------

def test_zero_grad():
    p = Parameter(np.ones(3, np.float32))
    opt = optim.SGD([p], lr=0.1)
    p.grad = rg.Tensor(np.ones(3, np.float32))
    grad_array = p.grad.data
    opt.zero_grad(set_to_none=False)
    assert p.grad.data is grad_array and not grad_array.any()
    opt.zero_grad()
    assert p.grad is None


def test_step_with_closure_returns_the_loss_and_enables_grad():
    x = Parameter(np.array([1.0, -2.0], np.float32))
    tx = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt, topt = optim.SGD([x], lr=0.1), torch.optim.SGD([tx], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (x * x).sum()
        loss.backward()
        return loss

    def tclosure():
        topt.zero_grad()
        loss = (tx * tx).sum()
        loss.backward()
        return loss

    with rg.no_grad():
        loss = opt.step(closure)
    assert loss.item() == pytest.approx(5.0)
    topt.step(tclosure)
    np.testing.assert_allclose(x.data, tx.detach().numpy(), atol=ATOL)


def test_step_bumps_version_so_a_stale_graph_refuses_to_backward():
    p = Parameter(np.array([1.0, 2.0], np.float32))
    opt = optim.SGD([p], lr=0.1)
    p.grad = rg.Tensor(np.ones(2, np.float32))
    loss = (p * p).sum()  # saves p for backward
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        loss.backward()


def test_learns_a_least_squares_fit():
    rng = np.random.default_rng(0)
    X = rg.Tensor(rng.standard_normal((64, 3)).astype(np.float32))
    w_true = np.array([1.5, -2.0, 0.5], np.float32)
    y = rg.Tensor(X.data @ w_true)
    w = Parameter(np.zeros(3, np.float32))
    opt = optim.Adam([w], lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        ((X @ w - y) ** 2).mean().backward()
        opt.step()
    np.testing.assert_allclose(w.data, w_true, atol=1e-3)


# -- errors ----------------------------------------------------------------------------------------

def _p():
    return Parameter(np.zeros(2, np.float32))


@pytest.mark.parametrize("make, message", [
    (lambda: optim.SGD([_p()], lr=-0.1), r"SGD: invalid lr=-0\.1"),
    (lambda: optim.SGD([_p()], lr=0.1, momentum=-1), r"SGD: invalid momentum=-1"),
    (lambda: optim.SGD([_p()], lr=0.1, weight_decay=-1e-4), r"SGD: invalid weight_decay=-0\.0001"),
    (lambda: optim.SGD([_p()], lr=0.1, nesterov=True), r"SGD: nesterov=True needs momentum > 0"),
    (lambda: optim.SGD([_p()], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
     r"dampening = 0"),
    (lambda: optim.SGD([{"params": [_p()], "lr": -1.0}], lr=0.1), r"SGD: invalid lr=-1\.0"),
    (lambda: optim.Adam([_p()], lr=-1e-3), r"Adam: invalid lr=-0\.001"),
    (lambda: optim.Adam([_p()], betas=(1.0, 0.999)), r"Adam: invalid betas=\(1\.0, 0\.999\)"),
    (lambda: optim.Adam([_p()], betas=(0.9, -0.1)), r"Adam: invalid betas"),
    (lambda: optim.Adam([_p()], eps=-1e-8), r"Adam: invalid eps"),
    (lambda: optim.AdamW([_p()], weight_decay=-0.01), r"AdamW: invalid weight_decay=-0\.01"),
    (lambda: optim.Adagrad([_p()], lr_decay=-0.1), r"Adagrad: invalid lr_decay=-0\.1"),
    (lambda: optim.Adagrad([_p()], initial_accumulator_value=-1), r"initial_accumulator_value=-1"),
    (lambda: optim.RMSprop([_p()], alpha=-0.5), r"RMSprop: invalid alpha=-0\.5"),
    (lambda: optim.RMSprop([_p()], lr=float("nan")), r"RMSprop: invalid lr=nan"),
    (lambda: optim.SGD([], lr=0.1), r"empty parameter list"),
])
def test_bad_hyper_parameters(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_parameter_in_two_groups_is_an_error():
    p, q = _p(), _p()
    with pytest.raises(ValueError, match="appears twice"):
        optim.SGD([{"params": [p, q]}, {"params": [p], "lr": 0.01}], lr=0.1)
    opt = optim.SGD([p], lr=0.1)
    with pytest.raises(ValueError, match="appears twice"):
        opt.add_param_group({"params": [q, p]})
    assert len(opt.param_groups) == 1


def test_params_must_be_an_ordered_collection_of_leaf_tensors():
    p = _p()
    with pytest.raises(TypeError, match="single tensor"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(TypeError, match="ordered collection"):
        optim.SGD([{"params": {p}}], lr=0.1)
    with pytest.raises(TypeError, match="can only optimize Tensors"):
        optim.SGD([np.zeros(2)], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([p * 2], lr=0.1)


def test_load_state_dict_checks_group_sizes():
    opt = optim.SGD([_p(), _p()], lr=0.1)
    with pytest.raises(ValueError, match="parameter group 0 has 1 parameters in the state dict"):
        opt.load_state_dict(optim.SGD([_p()], lr=0.1).state_dict())
    with pytest.raises(ValueError, match="2 parameter groups"):
        opt.load_state_dict(optim.SGD([{"params": [_p()]}, {"params": [_p()]}], lr=0.1)
                            .state_dict())


def test_repr_lists_group_options():
    text = repr(optim.SGD([_p()], lr=0.1, momentum=0.9))
    assert text.startswith("SGD (\nParameter Group 0\n") and "    momentum: 0.9\n" in text


ZERO_D_CASES = [
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "maximize": True}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1}),
    ("AdamW", {"lr": 0.01, "maximize": True}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9, "centered": True}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.1}),
]


@pytest.mark.parametrize("name, options", ZERO_D_CASES, ids=[c[0] for c in ZERO_D_CASES])
def test_a_0d_parameter_is_updated_in_place_as_torch_does(name, options):
    """NumPy's arithmetic on 0-d arrays returns scalars, which in-place updates can't reach (this
    raised in Adam, RMSprop and Adagrad, and froze SGD's momentum buffer)."""
    theirs = torch.nn.Parameter(torch.tensor(1.5))
    t_opt = getattr(torch.optim, name)([theirs], **options)
    ours = Parameter(np.array(1.5, np.float32))
    opt = getattr(optim, name)([ours], **options)
    data = ours.data
    for k in range(6):
        g = np.float32(0.3 * k - 0.7)
        theirs.grad = torch.tensor(g)
        t_opt.step()
        ours.grad = rg.tensor(np.array(g))
        opt.step()
        assert ours.data is data and data.shape == ()
        assert abs(data.item() - theirs.item()) < ATOL, f"step {k}"
    for key, value in opt.state[ours].items():
        if isinstance(value, np.ndarray):
            assert value.shape == (), key
            np.testing.assert_allclose(value, t_opt.state[theirs][key].numpy(), atol=ATOL)


def test_sgd_momentum_on_large_parameters_is_the_whole_array_arithmetic():
    """Above a cache-sized block the heavy-ball update runs block by block: the same values as
    torch, and bit for bit those of the whole-array form (taken for a non-contiguous gradient)."""
    rng = np.random.default_rng(0)
    init = rng.standard_normal((300, 200)).astype(np.float32)
    theirs = torch.nn.Parameter(torch.tensor(init))
    t_opt = torch.optim.SGD([theirs], lr=0.05, momentum=0.9)
    blocked, whole = Parameter(init.copy()), Parameter(init.copy())
    opts = [optim.SGD([p], lr=0.05, momentum=0.9) for p in (blocked, whole)]
    for _ in range(4):
        g = rng.standard_normal(init.shape).astype(np.float32)
        theirs.grad = torch.tensor(g)
        t_opt.step()
        blocked.grad = rg.tensor(g.copy())
        whole.grad = rg.tensor(np.asfortranarray(g))     # not C-contiguous: the whole-array form
        for opt in opts:
            opt.step()
    np.testing.assert_array_equal(blocked.data, whole.data)
    np.testing.assert_allclose(blocked.data, theirs.detach().numpy(), rtol=RTOL, atol=ATOL)
