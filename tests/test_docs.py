"""docs/backprop.md: every snippet runs, in order, and prints what the page shows.

Numbers are compared with a small tolerance (the page prints a few decimals; BLAS builds may
round the last bit differently); everything else must match exactly. A "max difference" figure
(textbook formulas vs the engine) only has to stay below 1e-6."""
import contextlib
import io
import pathlib
import re

import pytest

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "backprop.md"
BLOCK = re.compile(r"```python\n(.*?)```\s*```(?:text|mermaid)\n(.*?)```", re.S)
NUMBER = re.compile(r"-?\d+\.?\d*(?:e[-+]?\d+)?")


def same_output(got: str, want: str) -> bool:
    got_lines, want_lines = got.strip().splitlines(), want.strip().splitlines()
    if len(got_lines) != len(want_lines):
        return False
    for g, w in zip(got_lines, want_lines):
        if NUMBER.sub("#", g) != NUMBER.sub("#", w):
            return False
        for a, b in zip(NUMBER.findall(g), NUMBER.findall(w)):
            if "max difference" in g:
                if float(a) >= 1e-6:
                    return False
            elif abs(float(a) - float(b)) > max(2e-3, 1e-2 * abs(float(b))):
                return False
    return True


def test_backprop_tutorial_snippets_print_what_the_page_shows():
    blocks = BLOCK.findall(DOC.read_text())
    assert len(blocks) >= 8
    namespace: dict = {}
    for i, (code, expected) in enumerate(blocks):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"{DOC.name} snippet {i + 1}", "exec"), namespace)
        if not same_output(out.getvalue(), expected):
            pytest.fail(f"snippet {i + 1} printed:\n{out.getvalue()}\nthe page shows:\n{expected}")


def test_comparison_is_not_vacuous():
    assert same_output("E = 0.5119\n", "E = 0.512")
    assert not same_output("E = 0.61\n", "E = 0.512")
    assert not same_output("a = 1\n", "b = 1")
