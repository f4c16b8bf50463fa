"""The README's promises: its quick start runs and does what it says; its first lines are the two
set-up commands, and the test command is the one .ci/run executes."""
import contextlib
import io
import pathlib
import re

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_quick_start_learns_xor():
    code = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    printed = np.array([float(v) for v in out.getvalue().strip().strip("[]").split()])
    np.testing.assert_array_equal(np.round(printed), [0, 1, 1, 0])


def test_first_lines_are_the_main_job_and_the_test_command():
    block = re.search(r"```bash\n(.*?)```", README, re.S).group(1).strip().splitlines()
    assert "retrograd train" in block[0]
    assert 'pip install -e ".[test]" && python -m pytest' in block[1]
    assert 'pip install --quiet -e ".[test]" && python -m pytest' in (ROOT / ".ci/run").read_text()
