"""What the network looks at: attributions of an output to each input feature, from input gradients.

- `saliency`: |d f_c(x) / dx| (Simonyan et al., 2013).
- `smoothgrad`: the input gradient averaged over noisy copies of x (Smilkov et al., 2017).
- `integrated_gradients`: (x - x') times the average gradient on the straight path from a baseline
  x' to x (Sundararajan et al., 2017); the attributions add up to f_c(x) - f_c(x') (completeness).

`f_c` is the model's output for class `target` (default: the predicted class); for models with a
single output per sample it is that output. The model runs in eval mode and its parameters' `.grad`
are left untouched.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import nn
from ..autograd import grad, no_grad
from ..random import Generator, rng
from ..tensor import Tensor


def _as_array(x: Any) -> np.ndarray:
    return x.data if isinstance(x, Tensor) else np.asarray(x, dtype=np.float32)


def _selected(out: Tensor, target: np.ndarray | None) -> Tensor:
    """The sum over samples of each sample's chosen output, as one scalar to differentiate."""
    if out.ndim == 1 or (out.ndim == 2 and out.shape[1] == 1):
        return out.sum()
    if out.ndim != 2:
        raise ValueError(f"attribution: expected model outputs of shape (N, C) or (N,), got "
                         f"{tuple(out.shape)}")
    rows = np.arange(out.shape[0])
    return out[rows, target].sum()


def _targets(model: nn.Module, x: np.ndarray, target: Any) -> np.ndarray | None:
    if target is not None:
        t = np.asarray(target.data if isinstance(target, Tensor) else target, dtype=np.int64)
        return np.broadcast_to(t, (x.shape[0],)).copy()
    with no_grad():
        out = model(Tensor(x))
    return out.data.argmax(axis=1) if out.ndim == 2 and out.shape[1] > 1 else None


def _input_gradient(model: nn.Module, x: np.ndarray, target: np.ndarray | None) -> np.ndarray:
    xt = Tensor(x, requires_grad=True)
    (g,) = grad(_selected(model(xt), target), xt)
    return g.data


class _EvalMode:
    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self):
        self.modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()

    def __exit__(self, *exc):
        for m, mode in self.modes:
            m.training = mode


def saliency(model: nn.Module, x: Any, target: Any = None, absolute: bool = True) -> np.ndarray:
    """d f_c / dx for a batch x (first dimension = samples), by default its absolute value.

    >>> maps = rg.inspect.saliency(model, images)      # same shape as images
    """
    x = _as_array(x)
    with _EvalMode(model):
        g = _input_gradient(model, x, _targets(model, x, target))
    return np.abs(g) if absolute else g


def smoothgrad(model: nn.Module, x: Any, target: Any = None, samples: int = 25,
               noise: float = 0.15, generator: Generator | None = None) -> np.ndarray:
    """The input gradient averaged over `samples` copies of x with Gaussian noise of standard
    deviation `noise` times the range of x; sharper maps than plain saliency."""
    x = _as_array(x)
    sigma = noise * float(x.max() - x.min() or 1.0)
    with _EvalMode(model):
        target = _targets(model, x, target)
        noisy = x[None] + rng(generator).normal(0, sigma, (samples,) + x.shape).astype(x.dtype)
        tiled = None if target is None else np.tile(target, samples)
        g = _input_gradient(model, noisy.reshape((-1,) + x.shape[1:]), tiled)
    return g.reshape((samples,) + x.shape).mean(axis=0)


def integrated_gradients(model: nn.Module, x: Any, target: Any = None, baseline: Any = None,
                         steps: int = 64) -> np.ndarray:
    """Integrated Gradients with the trapezoidal rule over `steps` intervals; baseline zeros unless
    given. `attributions.sum()` per sample approximates f_c(x) - f_c(baseline).

    >>> attr = rg.inspect.integrated_gradients(model, images, target=labels)
    """
    x = _as_array(x)
    base = np.zeros_like(x) if baseline is None else np.broadcast_to(_as_array(baseline), x.shape)
    if steps < 1:
        raise ValueError(f"integrated_gradients: steps must be >= 1, got {steps}")
    alphas = np.linspace(0.0, 1.0, steps + 1, dtype=x.dtype)
    with _EvalMode(model):
        target = _targets(model, x, target)
        path = base[None] + alphas.reshape((-1,) + (1,) * x.ndim) * (x - base)[None]
        tiled = None if target is None else np.tile(target, steps + 1)
        g = _input_gradient(model, path.reshape((-1,) + x.shape[1:]), tiled)
    g = g.reshape((steps + 1,) + x.shape)
    average = (g[:-1] + g[1:]).mean(axis=0) / 2        # trapezoids between consecutive points
    return (x - base) * average
