"""The seed example: the textbook XOR network learns, from the library API and from the CLI."""
import subprocess
import sys

import numpy as np

from retrograd.cli import main
from retrograd.demos.xor import train_xor


def test_xor_converges_and_predicts_0110():
    result = train_xor(seed=0, log=None)
    assert result.converged and result.error < 0.01
    assert result.epochs < 10_000
    np.testing.assert_array_equal(np.round(result.predictions), [0, 1, 1, 0])


def test_xor_is_reproducible():
    a = train_xor(seed=1, epochs=300, log=None)
    b = train_xor(seed=1, epochs=300, log=None)
    assert a.error == b.error
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        np.testing.assert_array_equal(pa.data, pb.data)


def test_xor_reports_a_local_minimum_honestly(capsys):
    # Seed 2 with 2 hidden units falls into the classic XOR local minimum (E stays near 0.25).
    code = main(["xor", "--seed", "2", "--epochs", "3000", "--print-every", "1000"])
    out = capsys.readouterr().out
    assert code == 1
    assert "did not reach error < 0.01" in out


def test_python_dash_m_retrograd_xor():
    out = subprocess.run([sys.executable, "-m", "retrograd", "xor", "--print-every", "500"],
                         capture_output=True, text=True, check=True).stdout
    assert "stopped at epoch" in out
    rounded = [line.split("->")[-1].strip() for line in out.splitlines() if "->" in line]
    assert rounded == ["0", "1", "1", "0"]
