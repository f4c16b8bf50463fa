"""The README's main job, `retrograd train`: defaults reach >= 97% test accuracy and save their files."""
import os

import numpy as np
import pytest

import retrograd as rg
from retrograd.cli import main
from retrograd.demos.digits import DigitsConfig, build_model, run


@pytest.mark.slow
def test_default_digits_run_reaches_97_percent(tmp_path):
    summary = run(DigitsConfig(out=str(tmp_path), progress=False))
    assert summary["test_accuracy"] >= 0.97
    weights = rg.load(summary["weights"])
    model = build_model(DigitsConfig.hidden, DigitsConfig.depth, DigitsConfig.dropout)
    model.load_state_dict(weights)          # the saved file is a complete, loadable state dict
    assert os.path.getsize(summary["curves"]) > 1000


def test_cli_train_short_run(tmp_path, capsys):
    code = main(["train", "--epochs", "2", "--hidden", "32", "--quiet", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    accuracy = float(out.split("test accuracy")[1].split()[0])
    assert 0.5 < accuracy <= 1.0            # two epochs of a small net already learn something
    assert (tmp_path / "model.safetensors").exists()


def test_same_seed_gives_bit_identical_weights(tmp_path):
    a = run(DigitsConfig(epochs=2, hidden=32, out=str(tmp_path / "a"), progress=False))
    b = run(DigitsConfig(epochs=2, hidden=32, out=str(tmp_path / "b"), progress=False))
    wa, wb = rg.load(a["weights"]), rg.load(b["weights"])
    assert wa.keys() == wb.keys()
    for key in wa:
        np.testing.assert_array_equal(wa[key].numpy(), wb[key].numpy())


def test_unknown_optimizer_is_a_clear_error():
    with pytest.raises(SystemExit):
        main(["train", "--optimizer", "lbfgs"])
