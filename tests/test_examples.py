"""The examples teach what they claim: each is run at a reduced size and its numbers checked."""
import os
import pathlib
import re
import subprocess
import sys

import pytest

pytest.importorskip("sklearn")       # the digits data
pytest.importorskip("matplotlib")    # every example draws a figure

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(EXAMPLES))

import digits_mlp  # noqa: E402
import optimizers  # noqa: E402
import regularization  # noqa: E402
import vanishing  # noqa: E402


def is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_digits_mlp_learns_to_read_digits(tmp_path):
    model, history, test = digits_mlp.main(hidden=64, epochs=8, out=str(tmp_path),
                                           progress=False)
    assert test["accuracy"] >= 0.90                      # 10 classes: chance is 0.10
    assert history["loss"][-1] < history["loss"][0] / 5
    assert len(history["val_accuracy"]) == 8
    assert is_png(tmp_path / "curves.png")


def test_optimizers_all_descend_and_momentum_and_adam_beat_sgd(tmp_path, capsys):
    losses = optimizers.main(hidden=32, epochs=3, out=str(tmp_path))
    assert list(losses) == ["SGD", "Momentum", "Nesterov", "Adagrad", "RMSprop", "Adam"]
    for name, curve in losses.items():
        assert len(curve) == 3
        assert curve[-1] < curve[0], name
    # At the same lr=0.01, plain SGD has barely left log(10) = 2.30 after 3 epochs.
    for name in ("Momentum", "Nesterov", "Adam"):
        assert losses[name][-1] < 0.8 * losses["SGD"][-1], name
    assert is_png(tmp_path / "losses.png")
    out = capsys.readouterr().out
    assert all(name in out for name in losses)


def test_regularization_closes_the_train_test_gap(tmp_path):
    results = regularization.main(n_train=60, hidden=128, epochs=300, lr=1e-2, seed=0,
                                  out=str(tmp_path))
    base = results["none"]
    assert base["train"] >= 0.95 and base["gap"] > 0.10         # it memorised the noise
    regularised = [r for name, r in results.items() if name != "none"]
    assert min(r["gap"] for r in regularised) < base["gap"] / 2
    assert max(r["test"] for r in regularised) > base["test"]
    assert results["early stopping"]["epochs"] < 300             # it did stop early
    assert is_png(tmp_path / "boundaries.png")


def test_vanishing_gradients_in_deep_sigmoid_net_and_the_remedies(tmp_path):
    results = vanishing.main(depth=15, epochs=3, out=str(tmp_path))
    sigmoid = results["sigmoid"]
    assert len(sigmoid["norms"]) == 16                          # 15 hidden Linear + output
    assert sigmoid["ratio"] < 1e-9                               # measured ~2e-13
    assert sigmoid["norms"][0] < sigmoid["norms"][7] < sigmoid["norms"][-1]
    assert sigmoid["test_accuracy"] < 0.2 and sigmoid["loss"][-1] > 2.2   # learned nothing
    for name in ("ReLU+He", "+BatchNorm", "+residual"):
        r = results[name]
        assert r["ratio"] > 1e-2, name
        assert r["norms"][0] > 0.1, name
        assert r["test_accuracy"] > 0.4 and r["loss"][-1] < sigmoid["loss"][-1], name
    assert is_png(tmp_path / "grad_norms.png")


def test_digits_mlp_script_with_defaults(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, str(EXAMPLES / "digits_mlp.py")], cwd=tmp_path,
                         env=env, capture_output=True, text=True, check=True).stdout
    accuracy = float(re.search(r"test accuracy ([\d.]+)", out).group(1))
    assert accuracy >= 0.95
    assert is_png(tmp_path / "runs" / "digits_mlp" / "curves.png")
