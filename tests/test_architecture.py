"""Arrows point down: the engine never imports nn/optim/data, and those never import the loop,
IO, demos or the CLI. Checked on the import statements of every source file."""
import ast
import pathlib

import pytest

PKG = pathlib.Path(__file__).resolve().parents[1] / "retrograd"
ENGINE = {"tensor", "autograd", "creation", "dtypes", "random", "inplace", "gradcheck", "parallel",
          "ops", "anomaly"}
MIDDLE = {"nn", "optim", "data"}
TOP = {"train", "io", "inspect", "demos", "cli", "__main__", "onnx", "distributed", "compile"}
ALLOWED = {
    "engine": ENGINE,
    "middle": ENGINE | MIDDLE,
    "io": ENGINE,
    "top": ENGINE | MIDDLE | TOP,
}


def layer_of(top: str) -> str:
    if top in ENGINE:
        return "engine"
    if top in MIDDLE:
        return "middle"
    if top == "io":
        return "io"
    return "top"


def imported_packages(path: pathlib.Path) -> set[str]:
    """Top-level retrograd subpackages/modules a file imports (relative or absolute)."""
    rel = path.relative_to(PKG).parts
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = list(rel[:-1])[: len(rel) - node.level]
                parts = base + (node.module.split(".") if node.module else [])
                if parts:
                    names.add(parts[0])
                else:  # `from .. import x`: x counts only if it is a module or package
                    names.update(a.name for a in node.names
                                 if (PKG / a.name).is_dir() or (PKG / f"{a.name}.py").exists())
            elif node.module and node.module.startswith("retrograd."):
                names.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[1] for a in node.names
                         if a.name.startswith("retrograd."))
    return names


SOURCES = [p for p in sorted(PKG.rglob("*.py")) if p != PKG / "__init__.py"]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PKG)))
def test_imports_point_down(path):
    top = path.relative_to(PKG).parts[0].removesuffix(".py")
    layer = layer_of(top)
    bad = {name for name in imported_packages(path) - {top} if name not in ALLOWED[layer]}
    assert not bad, f"{path.relative_to(PKG)} ({layer} layer) imports {sorted(bad)}"
