"""`retrograd inspect graph|trace|flow`: the inspection tools from the command line."""
import re
import shutil

from retrograd.cli import main
from retrograd.demos import inspection


def test_graph_prints_mermaid_of_the_xor_error(capsys):
    assert main(["inspect", "graph", "--grads"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("graph LR\n")
    assert text.count("LinearBackward") == 2 and text.count("SigmoidBackward") == 2
    for name in ("0.weight", "0.bias", "2.weight", "2.bias"):
        assert re.search(rf'"{re.escape(name)}<br/>\([0-9, ]+\)<br/>grad ', text), name
    # every edge joins two declared nodes
    declared = set(re.findall(r"^  (\w+)[\[(]", text, re.M))
    for a, b in re.findall(r"^  (\w+) --> (\w+)$", text, re.M):
        assert a in declared and b in declared


def test_graph_dot_to_file(tmp_path, capsys):
    out = tmp_path / "g.dot"
    assert main(["inspect", "graph", "--format", "dot", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("digraph backprop {") and text.rstrip().endswith("}")
    assert "->" in text


def test_graph_svg_without_graphviz_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert main(["inspect", "graph", "--format", "svg", "--out", str(tmp_path / "g.svg")]) == 2
    assert "Graphviz" in capsys.readouterr().err


def test_trace_prints_each_layer_and_agrees_with_the_engine(capsys):
    assert main(["inspect", "trace", "--seed", "1"]) == 0
    text = capsys.readouterr().out
    assert "layer 1" in text and "layer 2" in text and "delta(2)" in text
    errors = [float(v) for v in re.findall(r"max difference ([0-9.e+-]+)", text)]
    assert len(errors) == 2 and max(errors) < 1e-6


def test_flow_shows_sigmoid_gradients_vanishing_and_relu_keeping_them(tmp_path, capsys):
    deep = inspection.flow("sigmoid", depth=6, width=32, epochs=1, every=5,
                           out=str(tmp_path / "sig.png"))
    healthy = inspection.flow("relu", depth=6, width=32, epochs=1, every=5, out=None)
    assert deep["first_to_last"] < 1e-3          # input-side layers get almost nothing
    assert healthy["first_to_last"] > 1e-2
    assert (tmp_path / "sig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "||dE/dW|| per layer" in capsys.readouterr().out
