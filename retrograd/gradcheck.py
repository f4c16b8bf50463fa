"""Finite-difference gradient checking: is an op's backward the derivative of its forward?"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from . import autograd
from .tensor import Tensor


class GradcheckError(AssertionError):
    """Raised by `gradcheck` with the input and element whose gradients disagree."""


def _outputs(fn: Callable, inputs: Sequence[Any]) -> list[Tensor]:
    out = fn(*inputs)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    return [o for o in outs if isinstance(o, Tensor) and o.dtype.kind == "f"]


def gradcheck(fn: Callable, inputs: Any, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, seed: int = 0) -> bool:
    """Compare the engine's gradients of `fn` with central finite differences, in float64.

    For a random projection v of the outputs, the analytical gradient of sum(v * fn(*inputs)) with
    respect to every input element is checked against (s(x + eps) - s(x - eps)) / (2 eps). Returns
    True, or raises GradcheckError naming the input, the element and both values.

    >>> x = rg.randn(3, 4, dtype=rg.float64, requires_grad=True)
    >>> rg.gradcheck(lambda t: (t.sigmoid() * t).sum(dim=1), (x,))
    True
    """
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad")
    for i in checked:
        if inputs[i].dtype != np.float64:
            raise ValueError(f"gradcheck: input {i} has dtype {inputs[i].dtype}; finite "
                             "differences need float64 inputs")
    outs = _outputs(fn, inputs)
    if not outs:
        raise ValueError("gradcheck: fn returned no floating-point tensor")
    rng = np.random.default_rng(seed)
    projections = [rng.standard_normal(o.shape) for o in outs]

    def projected() -> float:
        with autograd.no_grad():
            return float(sum(np.sum(p * o.data) for p, o in zip(projections, _outputs(fn, inputs))))

    differentiable = [(o, p) for o, p in zip(outs, projections) if o.requires_grad]
    if not differentiable:
        raise GradcheckError("gradcheck: no output depends on an input that requires grad")
    analytic = autograd.grad([o for o, _ in differentiable], [inputs[i] for i in checked],
                             grad_outputs=[p for _, p in differentiable], allow_unused=True)

    for i, a_grad in zip(checked, analytic):
        x = inputs[i].data
        a = np.zeros_like(x) if a_grad is None else a_grad.data
        if a.shape != x.shape:
            raise GradcheckError(f"gradcheck: gradient of input {i} has shape {a.shape}, "
                                 f"the input {x.shape}")
        numeric = np.zeros_like(x)
        for j in np.ndindex(x.shape):  # perturb the input's own array in place, restore after
            orig = x[j]
            x[j] = orig + eps
            plus = projected()
            x[j] = orig - eps
            minus = projected()
            x[j] = orig
            numeric[j] = (plus - minus) / (2 * eps)
        bad = ~np.isclose(a, numeric, atol=atol, rtol=rtol)
        if bad.any():
            err = np.abs(a - numeric)
            worst = np.unravel_index(np.argmax(np.where(bad, err, -1)), x.shape)
            raise GradcheckError(
                f"gradcheck: input {i} (shape {x.shape}) element {tuple(int(k) for k in worst)}: "
                f"analytical {a[worst]:.8g} vs numerical {numeric[worst]:.8g} "
                f"({int(bad.sum())} of {x.size} elements differ)")
    return True
