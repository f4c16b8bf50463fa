"""Make backpropagation visible: the recorded graph of any output, as Mermaid or Graphviz DOT."""
from .graph import render, to_dot, to_mermaid

__all__ = ["to_mermaid", "to_dot", "render"]
