"""Attributions: saliency is the input gradient; Integrated Gradients is complete."""
import numpy as np
import pytest
import torch

import retrograd as rg
from retrograd import nn
from retrograd.inspect import integrated_gradients, saliency, smoothgrad


def model_and_data(seed=0):
    rg.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)).double()
    x = rg.randn(5, 6, dtype=rg.float64)
    return model, x


def test_saliency_equals_torch_input_gradient():
    model, x = model_and_data()
    tm = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    tm.double().load_state_dict({k: torch.from_numpy(v.numpy().copy())
                                 for k, v in model.state_dict().items()})
    target = np.array([0, 2, 1, 1, 0])
    tx = torch.from_numpy(x.numpy().copy()).requires_grad_()
    tm(tx)[torch.arange(5), torch.from_numpy(target)].sum().backward()
    ours = saliency(model, x, target=target, absolute=False)
    np.testing.assert_allclose(ours, tx.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(saliency(model, x, target=target), np.abs(tx.grad.numpy()))
    assert all(p.grad is None for p in model.parameters())     # the model's .grad is untouched


def test_default_target_is_the_predicted_class():
    model, x = model_and_data()
    predicted = model(x).data.argmax(1)
    np.testing.assert_array_equal(saliency(model, x), saliency(model, x, target=predicted))


@pytest.mark.parametrize("baseline", [None, 0.5])
def test_integrated_gradients_completeness(baseline):
    model, x = model_and_data(1)
    target = np.array([2, 0, 1, 2, 1])
    attr = integrated_gradients(model, x, target=target, baseline=baseline, steps=128)
    base = np.zeros_like(x.numpy()) if baseline is None else np.full_like(x.numpy(), baseline)
    with rg.no_grad():
        f_x = model(x).data[np.arange(5), target]
        f_b = model(rg.tensor(base)).data[np.arange(5), target]
    np.testing.assert_allclose(attr.sum(axis=1), f_x - f_b, rtol=1e-4, atol=1e-6)


def test_smoothgrad_is_reproducible_and_averages_gradients():
    model, x = model_and_data()
    a = smoothgrad(model, x, samples=8, generator=rg.Generator(3))
    b = smoothgrad(model, x, samples=8, generator=rg.Generator(3))
    np.testing.assert_array_equal(a, b)
    assert a.shape == x.shape
    # with no noise, SmoothGrad is the plain (signed) input gradient
    np.testing.assert_allclose(smoothgrad(model, x, samples=2, noise=0.0),
                               saliency(model, x, absolute=False))


def test_single_output_models_and_errors():
    rg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 1)).double()
    x = rg.randn(3, 4, dtype=rg.float64)
    np.testing.assert_allclose(saliency(model, x, absolute=False),
                               np.broadcast_to(model[0].weight.data, (3, 4)))
    with pytest.raises(ValueError, match="steps"):
        integrated_gradients(model, x, steps=0)
