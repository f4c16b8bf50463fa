"""The gradient-flow monitor flags a vanishing and an exploding network and stays quiet on a
healthy one; it records what it claims."""
import warnings

import numpy as np
import pytest

import retrograd as rg
from retrograd import nn, optim
from retrograd.data import datasets
from retrograd.inspect import GradientMonitor
from retrograd.train import fit


def run(model, lr=0.01, epochs=1, every=5, **monitor_options):
    train = datasets.moons(n_samples=256, noise=0.1, seed=0)
    monitor = GradientMonitor(every=every, **monitor_options)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=lr), train,
            epochs=epochs, batch_size=32, progress=False, metrics=(), callbacks=[monitor])
    return monitor, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def mlp(depth, act, width=32):
    layers, d = [], 2
    for _ in range(depth):
        layers += [nn.Linear(d, width), act()]
        d = width
    return nn.Sequential(*layers, nn.Linear(d, 2))


def test_healthy_network_is_quiet_and_recorded():
    rg.manual_seed(0)
    monitor, caught = run(mlp(2, nn.ReLU), every=2)
    assert monitor.warnings == [] and not caught
    assert monitor.steps == list(range(0, 8, 2))
    assert set(monitor.grad_norms) == {"0.weight", "2.weight", "4.weight"}
    assert all(len(v) == 4 for v in monitor.grad_norms.values())
    ratios = np.array(monitor.update_ratios["0.weight"])
    assert np.all((ratios > 0) & (ratios < 1))
    assert set(monitor.activation_stats) == {"1", "3"}
    assert all(0 <= v <= 1 for vals in monitor.activation_stats.values() for v in vals)


def test_deep_sigmoid_network_is_flagged_as_vanishing_once():
    rg.manual_seed(0)
    monitor, caught = run(mlp(30, nn.Sigmoid), vanish=1e-7)
    vanishing = [m for m in monitor.warnings if "vanish" in m]
    assert vanishing and "0.weight" in vanishing[0]
    assert len(vanishing) == len(set(vanishing))          # once per layer
    assert len(caught) == len(monitor.warnings)


def test_exploding_network_is_flagged():
    rg.manual_seed(0)
    model = mlp(6, nn.ReLU)
    with rg.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.data *= 8.0                              # weights far too large: gradients blow up
    monitor, _ = run(model, lr=1e-6, explode=1e3)
    assert any("explode" in m for m in monitor.warnings)


def test_heat_map_png(tmp_path):
    rg.manual_seed(0)
    monitor, _ = run(mlp(2, nn.Tanh), every=1)
    path = monitor.plot(str(tmp_path / "flow.png"))
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_bad_arguments():
    with pytest.raises(ValueError, match="every"):
        GradientMonitor(every=0)
    with pytest.raises(ValueError, match="nothing recorded"):
        GradientMonitor().plot("x.png")
