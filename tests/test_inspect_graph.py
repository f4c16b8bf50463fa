"""Graph export: Mermaid and DOT text of the recorded graph, checked structurally (and by Graphviz
when it is installed)."""
import re
import shutil
import subprocess

import pytest

import retrograd as rg
from retrograd import nn
from retrograd.inspect import render, to_dot, to_mermaid


def xor_loss():
    rg.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Linear(2, 1), nn.Sigmoid())
    x, y = rg.tensor([[0.0, 1.0]]), rg.tensor([[1.0]])
    return model, 0.5 * ((y - model(x)) ** 2).sum()


def mermaid_structure(text):
    lines = text.strip().splitlines()
    declared = {m.group(1) for line in lines[1:]
                if (m := re.match(r'\s+(\w+)[\[\(]+"[^"]*"[\]\)]+$', line))}
    edges = [re.match(r"\s+(\w+) --> (\w+)$", line).groups() for line in lines[1:] if "-->" in line]
    return lines[0], declared, edges


def test_mermaid_lists_every_op_and_named_parameter():
    model, loss = xor_loss()
    text = to_mermaid(loss, dict(model.named_parameters()))
    header, declared, edges = mermaid_structure(text)
    assert header == "graph LR"
    assert all(a in declared and b in declared for a, b in edges)
    for name in ["0.weight", "0.bias", "2.weight", "2.bias", "LinearBackward", "SigmoidBackward",
                 "PowBackward", "SumBackward", "MulBackward"]:
        assert name in text
    # 8 ops + 4 parameters + the output node; one edge into each op input and one to the output
    assert len(declared) == 13 and len(edges) == 12


def test_shared_input_appears_once_with_two_edges():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    header, declared, edges = mermaid_structure(to_mermaid(y, {"x": x}, direction="TD"))
    assert header == "graph TD"
    leaf = [line for line in to_mermaid(y, {"x": x}).splitlines() if '"x<br/>' in line]
    assert len(leaf) == 1
    x_key = leaf[0].split("(")[0].strip()
    assert sum(a == x_key for a, _ in edges) == 2


def test_dot_has_values_and_gradients_when_asked():
    model, loss = xor_loss()
    loss.backward(retain_graph=True)
    text = to_dot(loss, dict(model.named_parameters()), values=True, grads=True)
    assert text.startswith("digraph backprop {") and text.rstrip().endswith("}")
    assert "grad [" in text and "value [" in text
    assert text.count("->") == 12


def test_a_tensor_without_graph_is_a_clear_error():
    with pytest.raises(ValueError, match="no recorded graph"):
        to_mermaid(rg.tensor([1.0]))
    with pytest.raises(ValueError, match="direction"):
        to_mermaid(xor_loss()[1], direction="UP")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_graphviz_accepts_the_dot_and_renders_svg(tmp_path):
    model, loss = xor_loss()
    text = to_dot(loss, dict(model.named_parameters()))
    subprocess.run(["dot", "-Tsvg"], input=text.encode(), check=True, capture_output=True)
    path = render(loss, tmp_path / "graph.svg", dict(model.named_parameters()))
    assert open(path).read().lstrip().startswith(("<?xml", "<svg"))
