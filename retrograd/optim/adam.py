"""Adam (Kingma & Ba, 2015), and AdamW with decoupled weight decay (Loshchilov & Hutter, 2019)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .optimizer import Optimizer, ParamsT


class Adam(Optimizer):
    """Adam, as torch.optim.Adam.

        g ← g + λ·x                            (weight_decay λ; AdamW instead: x ← x − lr·λ·x)
        m ← β1·m + (1 − β1)·g
        v ← β2·v + (1 − β2)·g²                 (amsgrad: v̂max ← max(v̂max, v), used in place of v)
        x ← x − lr · m̂ / (√v̂ + ε),  m̂ = m / (1 − β1^t),  v̂ = v / (1 − β2^t)

    >>> opt = rg.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999))
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
                 maximize: bool = False, decoupled_weight_decay: bool = False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize,
                                      decoupled_weight_decay=decoupled_weight_decay))

    def _check_options(self, group: dict[str, Any]) -> None:
        self._require_nonnegative(group, "lr", "eps", "weight_decay")
        betas = group["betas"]
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"{self._name}: invalid betas={betas!r} (two values, each in [0, 1))")

    def _step_group(self, group: dict[str, Any]) -> None:
        lr, eps = float(group["lr"]), float(group["eps"])
        weight_decay = float(group["weight_decay"])
        beta1, beta2 = float(group["betas"][0]), float(group["betas"][1])
        amsgrad, maximize = group["amsgrad"], group["maximize"]
        decoupled = group["decoupled_weight_decay"]
        for x, g, state in self._grads(group):
            if not state:
                state.update(step=0, exp_avg=np.zeros_like(x), exp_avg_sq=np.zeros_like(x))
                if amsgrad:
                    state["max_exp_avg_sq"] = np.zeros_like(x)
            state["step"] = t = state["step"] + 1
            m, v = state["exp_avg"], state["exp_avg_sq"]
            if maximize:
                g = -g
            if weight_decay and decoupled:
                x *= 1 - lr * weight_decay
            elif weight_decay:
                g = g + weight_decay * x
            tmp = g - m
            tmp *= 1 - beta1
            m += tmp                              # m ← β1·m + (1 − β1)·g, in torch's lerp form
            v *= beta2
            np.multiply(g, 1 - beta2, out=tmp)
            tmp *= g
            v += tmp                              # v ← β2·v + (1 − β2)·g²
            if amsgrad:
                v = np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            # x ← x − α_t·m / (√v + ε̂), α_t = lr·√(1 − β2^t) / (1 − β1^t), ε̂ = ε·√(1 − β2^t):
            # the bias corrections folded into two scalars (Kingma & Ba, end of section 2)
            root_bc2 = (1 - beta2 ** t) ** 0.5
            denom = np.sqrt(v, out=tmp)
            denom += eps * root_bc2
            step = np.divide(m, denom, out=denom)
            step *= lr * root_bc2 / (1 - beta1 ** t)
            x -= step


class AdamW(Adam):
    """Adam with decoupled weight decay, as torch.optim.AdamW: `x ← x − lr·λ·x` before the Adam
    step, instead of adding λ·x to the gradient (so the decay is not rescaled by √v).

    >>> opt = rg.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)
