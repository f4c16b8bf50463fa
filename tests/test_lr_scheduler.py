"""Schedulers against torch.optim.lr_scheduler: the same lrs and momenta, step by step."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from retrograd import optim
from retrograd.nn.parameter import Parameter
from retrograd.optim import lr_scheduler

STEPS = 40
GROUP_LRS = (0.1, 0.02)


def make_optimizers(kind: str):
    """Ours and torch's, with two parameter groups of different lrs."""
    ours = [Parameter(np.ones(3, np.float32)), Parameter(np.ones(2, np.float32))]
    theirs = [torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))]
    kw = dict(momentum=0.9) if kind == "SGD" else {}

    def groups(params):
        return [{"params": [p], "lr": lr} for p, lr in zip(params, GROUP_LRS)]

    return (getattr(optim, kind)(groups(ours), **kw),
            getattr(torch.optim, kind)(groups(theirs), **kw))


def _scaled(epoch):
    return 0.9 ** epoch + 0.1 * (epoch % 4)


SCHEDULERS = [
    ("StepLR", dict(step_size=7, gamma=0.5), "SGD"),
    ("MultiStepLR", dict(milestones=[3, 10, 10, 25], gamma=0.3), "SGD"),
    ("ExponentialLR", dict(gamma=0.93), "SGD"),
    ("CosineAnnealingLR", dict(T_max=12), "SGD"),  # past T_max it rises again, twice
    ("CosineAnnealingLR", dict(T_max=35, eta_min=1e-3), "Adam"),
    ("LambdaLR", dict(lr_lambda=_scaled), "SGD"),
    ("LambdaLR", dict(lr_lambda=[_scaled, lambda e: 1 / (1 + e)]), "SGD"),
    ("LinearLR", dict(), "SGD"),
    ("LinearLR", dict(start_factor=0.1, end_factor=0.8, total_iters=12), "Adam"),
    ("OneCycleLR", dict(max_lr=0.5, total_steps=STEPS), "SGD"),
    ("OneCycleLR", dict(max_lr=[0.5, 0.2], total_steps=STEPS, anneal_strategy="linear"), "SGD"),
    ("OneCycleLR", dict(max_lr=0.3, total_steps=STEPS, three_phase=True, pct_start=0.25), "Adam"),
    ("OneCycleLR", dict(max_lr=0.3, epochs=4, steps_per_epoch=10, cycle_momentum=False,
                        div_factor=10.0), "Adam"),
    ("OneCycleLR", dict(max_lr=0.3, total_steps=STEPS, base_momentum=[0.8, 0.7],
                        max_momentum=0.99), "Adam"),
]
IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(SCHEDULERS)]


def trace(opt, sched, steps):
    """(lrs, momenta) after each step: get_last_lr(), and the groups' momentum or beta1."""
    lrs, momenta = [], []
    for _ in range(steps):
        opt.step()
        sched.step()
        lrs.append(list(sched.get_last_lr()))
        momenta.append([g["betas"][0] if "betas" in g else g["momentum"] for g in opt.param_groups])
    return lrs, momenta


@pytest.mark.parametrize("name, kwargs, kind", SCHEDULERS, ids=IDS)
def test_matches_torch(name, kwargs, kind):
    opt, topt = make_optimizers(kind)
    sched = getattr(lr_scheduler, name)(opt, **kwargs)
    tsched = getattr(torch.optim.lr_scheduler, name)(topt, **kwargs)
    assert sched.get_last_lr() == tsched.get_last_lr()
    steps = STEPS - 1 if name == "OneCycleLR" else STEPS  # OneCycleLR may not go past total_steps
    lrs, momenta = trace(opt, sched, steps)
    tlrs, tmomenta = trace(topt, tsched, steps)
    assert lrs == tlrs  # the same float arithmetic, in the same order: the same bits
    assert momenta == tmomenta
    assert [g["lr"] for g in opt.param_groups] == lrs[-1]
    assert [g["initial_lr"] for g in opt.param_groups] == \
        [g["initial_lr"] for g in topt.param_groups]


@pytest.mark.parametrize("name, kwargs, kind", SCHEDULERS, ids=IDS)
def test_state_dict_round_trip(name, kwargs, kind):
    steps = STEPS - 1 if name == "OneCycleLR" else STEPS
    opt, _ = make_optimizers(kind)
    straight, _ = trace(opt, getattr(lr_scheduler, name)(opt, **kwargs), steps)

    opt, _ = make_optimizers(kind)
    sched = getattr(lr_scheduler, name)(opt, **kwargs)
    first, _ = trace(opt, sched, 15)
    opt_state, sched_state = opt.state_dict(), sched.state_dict()
    assert "optimizer" not in sched_state
    # as with torch: build the new scheduler first (it writes the lrs), then load both states
    opt2, _ = make_optimizers(kind)
    sched2 = getattr(lr_scheduler, name)(opt2, **kwargs)
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(sched_state)
    assert sched2.last_epoch == 15 and sched2.get_last_lr() == first[-1]
    rest, _ = trace(opt2, sched2, steps - 15)
    np.testing.assert_array_equal(first + rest, straight)


PLATEAU = [
    dict(),
    dict(mode="min", factor=0.5, patience=2),
    dict(mode="min", factor=0.5, patience=1, threshold=0.05, threshold_mode="abs", cooldown=2),
    dict(mode="max", factor=0.3, patience=2, threshold=0.01),
    dict(mode="max", factor=0.5, patience=0, threshold_mode="abs", min_lr=[0.01, 0.005]),
    dict(mode="min", factor=0.2, patience=1, cooldown=1, min_lr=1e-3, eps=1e-4),
]


def metric_sequence(n: int = 60) -> list[float]:
    """Improves, stalls, improves a little (below a relative threshold), wobbles."""
    rng = np.random.default_rng(3)
    base = np.concatenate([np.linspace(1.0, 0.5, 10), np.full(8, 0.5), 0.5 - 1e-6 * np.arange(6),
                           np.linspace(0.5, 0.3, 6), 0.3 + 0.02 * rng.standard_normal(n - 30)])
    return [float(v) for v in base[:n]]


@pytest.mark.parametrize("kwargs", PLATEAU, ids=[str(i) for i in range(len(PLATEAU))])
def test_reduce_lr_on_plateau_matches_torch(kwargs):
    opt, topt = make_optimizers("SGD")
    sched = lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    metrics = metric_sequence()
    if kwargs.get("mode") == "max":
        metrics = [-m for m in metrics]
    lrs, tlrs = [], []
    for m in metrics:
        opt.step()
        topt.step()
        sched.step(m)
        tsched.step(m)
        lrs.append(sched.get_last_lr())
        tlrs.append(tsched.get_last_lr())
        assert (sched.num_bad_epochs, sched.cooldown_counter, sched.best) == \
            (tsched.num_bad_epochs, tsched.cooldown_counter, tsched.best)
    assert lrs == tlrs
    assert len({tuple(lr) for lr in lrs}) > 1, "the metric sequence should trigger a reduction"


def test_reduce_lr_on_plateau_state_dict_round_trip():
    metrics = metric_sequence()
    opt, _ = make_optimizers("SGD")
    sched = lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1)
    straight = []
    for m in metrics:
        sched.step(m)
        straight.append(sched.get_last_lr())

    opt, _ = make_optimizers("SGD")
    sched = lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1)
    resumed = []
    for m in metrics[:25]:
        sched.step(m)
        resumed.append(sched.get_last_lr())
    opt2, _ = make_optimizers("SGD")
    sched2 = lr_scheduler.ReduceLROnPlateau(opt2, factor=0.5, patience=2, cooldown=1)
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(sched.state_dict())
    for m in metrics[25:]:
        sched2.step(m)
        resumed.append(sched2.get_last_lr())
    assert resumed == straight


def test_lambda_lr_saves_callable_objects_but_not_functions():
    class Warmup:
        def __init__(self, n):
            self.n = n

        def __call__(self, epoch):
            return min(1.0, (epoch + 1) / self.n)

    opt, _ = make_optimizers("SGD")
    sched = lr_scheduler.LambdaLR(opt, [Warmup(5), lambda e: 1.0])
    state = sched.state_dict()
    assert state["lr_lambdas"] == [{"n": 5}, None]
    opt2, _ = make_optimizers("SGD")
    sched2 = lr_scheduler.LambdaLR(opt2, [Warmup(100), lambda e: 1.0])
    sched2.load_state_dict(state)
    assert sched2.lr_lambdas[0].n == 5


def test_schedulers_chain_like_torchs():
    opt, topt = make_optimizers("SGD")
    ours = [lr_scheduler.LinearLR(opt, start_factor=0.2, total_iters=4),
            lr_scheduler.ExponentialLR(opt, gamma=0.9)]
    theirs = [torch.optim.lr_scheduler.LinearLR(topt, start_factor=0.2, total_iters=4),
              torch.optim.lr_scheduler.ExponentialLR(topt, gamma=0.9)]
    for _ in range(12):
        opt.step()
        topt.step()
        for s in ours + theirs:
            s.step()
        assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in topt.param_groups]


def test_resuming_with_last_epoch_needs_initial_lr():
    opt, _ = make_optimizers("SGD")
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(opt, step_size=3, last_epoch=5)


def test_stepping_the_scheduler_before_the_optimizer_warns():
    opt, _ = make_optimizers("SGD")
    sched = lr_scheduler.StepLR(opt, step_size=3)
    with pytest.warns(UserWarning, match="before optimizer.step"):
        sched.step()
    opt, _ = make_optimizers("SGD")
    sched = lr_scheduler.StepLR(opt, step_size=3)
    opt.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched.step()


@pytest.mark.parametrize("make, error, message", [
    (lambda o: lr_scheduler.StepLR("not an optimizer", 3), TypeError, "not an Optimizer"),
    (lambda o: lr_scheduler.LinearLR(o, start_factor=0.0), ValueError, "start_factor"),
    (lambda o: lr_scheduler.LambdaLR(o, [lambda e: 1.0]), ValueError, "expected 2 lr_lambdas"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.1), ValueError, "total_steps"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=[0.1], total_steps=5), ValueError, "2 parameter"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=5, anneal_strategy="x"),
     ValueError, "anneal_strategy"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, factor=1.0), ValueError, "factor"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, mode="lowest"), ValueError, "mode"),
])
def test_bad_arguments(make, error, message):
    opt, _ = make_optimizers("SGD")
    with pytest.raises(error, match=message):
        make(opt)


def test_one_cycle_refuses_to_step_past_total_steps():
    opt, _ = make_optimizers("SGD")
    sched = lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=3)
    for _ in range(3):
        opt.step()
        sched.step()
    with pytest.raises(ValueError, match="total_steps is 3"):
        sched.step()


def test_one_cycle_needs_momentum_to_cycle():
    opt = optim.Adagrad([Parameter(np.ones(2, np.float32))])
    with pytest.raises(ValueError, match="momentum or betas"):
        lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=5)


@pytest.mark.parametrize("name, kwargs", [("CosineAnnealingLR", dict(T_max=10, eta_min=1e-3)),
                                          ("StepLR", dict(step_size=4, gamma=0.5)),
                                          ("ExponentialLR", dict(gamma=0.9))])
def test_resuming_from_last_epoch_matches_torch(name, kwargs):
    """Constructed with last_epoch=k over groups that carry initial_lr, as after a checkpoint."""
    opt, topt = make_optimizers("SGD")
    for o in (opt, topt):
        for group in o.param_groups:
            group["initial_lr"] = group["lr"] * 2
    sched = getattr(lr_scheduler, name)(opt, last_epoch=6, **kwargs)
    tsched = getattr(torch.optim.lr_scheduler, name)(topt, last_epoch=6, **kwargs)
    assert trace(opt, sched, 20) == trace(topt, tsched, 20)
