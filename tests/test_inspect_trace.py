"""The backprop trace: textbook deltas and gradients, computed by formula, equal the engine's."""
import numpy as np
import pytest

import retrograd as rg
from retrograd import nn
from retrograd.cli import main
from retrograd.demos.xor import X, Y, build
from retrograd.inspect import trace


def test_xor_trace_matches_engine_and_hand_formulas():
    rg.manual_seed(0)
    model = build(2)
    t = trace(model, X, Y)
    assert [layer.index for layer in t.layers] == [1, 2]
    assert all(layer.max_error < 1e-6 for layer in t.layers)
    # Output layer by hand: delta(2) = (a - y) * a * (1 - a) for E = 1/2 sum (y - a)^2
    out = t.layers[1]
    np.testing.assert_allclose(out.delta, (out.a - Y.data) * out.a * (1 - out.a), rtol=1e-6)
    np.testing.assert_allclose(out.dW, out.delta.T @ t.layers[0].a, rtol=1e-6)
    # The trace leaves the engine's gradients on the parameters
    np.testing.assert_allclose(model[0].weight.grad.data, t.layers[0].dW, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("act", [nn.Tanh, nn.ReLU, nn.LeakyReLU, nn.Identity])
def test_deeper_nets_with_other_activations_and_losses(act):
    rg.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 5), act(), nn.Linear(5, 4), act(), nn.Linear(4, 2))
    x, y = rg.randn(6, 3, dtype=rg.float64), rg.randn(6, 2, dtype=rg.float64)
    model.double()
    t = trace(model, x, y, loss_fn=nn.MSELoss())
    assert len(t.layers) == 3 and t.layers[-1].activation == "identity"
    assert max(layer.max_error for layer in t.layers) < 1e-12


def test_table_uses_textbook_notation():
    rg.manual_seed(0)
    text = trace(build(2), X, Y).table()
    for symbol in ["E = ", "z(1)", "a(1)", "delta(2)", "dE/da(2)", "dE/dW(1)", "dE/db(2)"]:
        assert symbol in text


def test_unsupported_models_are_rejected_clearly():
    with pytest.raises(TypeError, match="Softmax"):
        trace(nn.Sequential(nn.Linear(2, 2), nn.Softmax(dim=1)), X, Y)
    with pytest.raises(TypeError, match="Dropout"):
        trace(nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Dropout(0.1)), X, Y)


def test_cli_xor_trace_prints_one_epoch(capsys):
    main(["xor", "--trace", "--epochs", "1"])
    out = capsys.readouterr().out
    assert "delta(1)" in out and "dE/dW(2)" in out and "max difference" in out
