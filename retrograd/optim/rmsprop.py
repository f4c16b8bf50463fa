"""RMSprop: divide the gradient by a running root-mean-square of recent gradients (Hinton, 2012)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .optimizer import Optimizer, ParamsT


class RMSprop(Optimizer):
    """RMSprop, as torch.optim.RMSprop.

        g ← g + λ·x                             (weight_decay λ)
        v ← α·v + (1 − α)·g²
        ḡ ← α·ḡ + (1 − α)·g,  v̂ = v − ḡ²        (centered; otherwise v̂ = v)
        b ← μ·b + g / (√v̂ + ε),  x ← x − lr·b   (momentum μ > 0)
        x ← x − lr · g / (√v̂ + ε)               (momentum μ = 0)

    >>> opt = rg.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, centered=True)
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, *,
                 maximize: bool = False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    def _check_options(self, group: dict[str, Any]) -> None:
        self._require_nonnegative(group, "lr", "alpha", "eps", "weight_decay", "momentum")

    def _step_group(self, group: dict[str, Any]) -> None:
        lr, alpha, eps = float(group["lr"]), float(group["alpha"]), float(group["eps"])
        weight_decay, momentum = float(group["weight_decay"]), float(group["momentum"])
        centered, maximize = group["centered"], group["maximize"]
        for x, g, state in self._grads(group):
            if not state:
                state["step"] = 0
                state["square_avg"] = np.zeros_like(x)
                if centered:
                    state["grad_avg"] = np.zeros_like(x)
            state["step"] += 1
            if maximize:
                g = -g
            if weight_decay:
                g = g + weight_decay * x
            v = state["square_avg"]
            v *= alpha
            tmp = np.multiply(g, 1 - alpha)
            tmp *= g
            v += tmp                                  # v ← α·v + (1 − α)·g²
            if centered:
                g_avg = state["grad_avg"]
                np.subtract(g, g_avg, out=tmp)
                tmp *= 1 - alpha
                g_avg += tmp                          # ḡ ← α·ḡ + (1 − α)·g, in torch's lerp form
                np.multiply(g_avg, g_avg, out=tmp)
                v = np.subtract(v, tmp, out=tmp)      # v̂ = v − ḡ²
            denom = np.sqrt(v, out=tmp)
            denom += eps
            step = np.divide(g, denom, out=denom)     # g / (√v̂ + ε)
            if momentum > 0:
                b = state.get("momentum_buffer")
                if b is None:  # created on first use: a scheduler may turn momentum on later
                    b = state["momentum_buffer"] = np.zeros_like(x)
                b *= momentum
                b += step
                step = np.multiply(b, lr, out=step)
            else:
                step *= lr
            x -= step
