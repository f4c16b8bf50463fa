"""Anomaly detection: the first op that makes a NaN/Inf, forward or backward, is named with its
input shapes and the line of the test that called it; off by default; results unchanged."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import retrograd as rg


def _line() -> int:
    """The line number of the caller."""
    return inspect.currentframe().f_back.f_lineno


@pytest.fixture(autouse=True)
def _quiet():
    with np.errstate(all="ignore"):
        yield
    rg.autograd.set_detect_anomaly(False)


def test_off_by_default():
    assert not rg.autograd.is_anomaly_enabled()
    x = rg.tensor([-1.0, 0.0, 1.0], requires_grad=True)
    y = x.log()                                   # NaN and -inf, silently (as in PyTorch)
    assert np.isnan(y.data[0]) and np.isinf(y.data[1])


def test_forward_nan_names_log_and_the_line():
    x = rg.tensor([[-1.0, 2.0]], requires_grad=True)
    with rg.autograd.detect_anomaly():
        with pytest.raises(RuntimeError) as info:
            line = _line() + 1
            x.log()
    message = str(info.value)
    assert "Log" in message and "NaN" in message and "(1, 2)" in message
    assert f"test_anomaly.py\", line {line}" in message
    assert not rg.autograd.is_anomaly_enabled()           # the context restores the mode


def test_forward_inf_from_zero():
    with rg.autograd.detect_anomaly():
        with pytest.raises(RuntimeError, match=r"Log produced Inf"):
            rg.log(rg.zeros(3))


def test_backward_inf_names_the_op_and_where_it_was_made():
    x = rg.tensor([0.0, 4.0], requires_grad=True)
    with rg.autograd.detect_anomaly():
        line = _line() + 1
        loss = (x.sqrt() * 3).sum()              # forward is finite; d sqrt / dx at 0 is inf
        with pytest.raises(RuntimeError) as info:
            loss.backward()
    message = str(info.value)
    assert "SqrtBackward" in message and "Inf" in message and "[(2,)]" in message
    assert f"test_anomaly.py\", line {line}" in message


def test_backward_nan_from_a_custom_function():
    class Bad(rg.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * np.nan

    x = rg.randn(2, 3, requires_grad=True)
    rg.autograd.set_detect_anomaly(True)
    try:
        y = (Bad.apply(x) + 1).sum()
        with pytest.raises(RuntimeError, match=r"BadBackward .*NaN.*input 0"):
            y.backward()
    finally:
        rg.autograd.set_detect_anomaly(False)


def test_inputs_already_nonfinite_are_not_blamed_on_the_op():
    mask = rg.tensor([0.0, -np.inf])
    with rg.autograd.detect_anomaly():
        p = rg.softmax(rg.randn(2, requires_grad=True) + mask, dim=0)   # -inf mask is fine
    assert p.data[1] == 0


def test_no_effect_on_results_and_as_decorator():
    rg.manual_seed(0)
    model = rg.nn.Sequential(rg.nn.Linear(4, 8), rg.nn.Tanh(), rg.nn.Linear(8, 1))
    x = rg.randn(5, 4)

    def step():
        model.zero_grad()
        loss = (model(x) ** 2).mean()
        loss.backward()
        return loss.item(), [p.grad.data.copy() for p in model.parameters()]

    plain = step()
    checked = rg.autograd.detect_anomaly()(step)()
    assert plain[0] == checked[0]
    for a, b in zip(plain[1], checked[1]):
        np.testing.assert_array_equal(a, b)
    assert not rg.autograd.is_anomaly_enabled()


def test_node_made_outside_the_mode_says_so():
    x = rg.tensor([0.0], requires_grad=True)
    y = x.sqrt().sum()
    with rg.autograd.detect_anomaly():
        with pytest.raises(RuntimeError, match="anomaly detection was off"):
            y.backward()
