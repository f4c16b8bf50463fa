"""Make backpropagation visible: the recorded graph of any output (Mermaid, Graphviz DOT) and a
layer-by-layer trace of z, a, delta and the gradients in textbook notation."""
from .attribution import integrated_gradients, saliency, smoothgrad
from .graph import render, to_dot, to_mermaid
from .monitor import GradientMonitor
from .trace import LayerTrace, Trace, trace

__all__ = ["to_mermaid", "to_dot", "render", "trace", "Trace", "LayerTrace",
           "GradientMonitor", "saliency", "smoothgrad", "integrated_gradients"]
