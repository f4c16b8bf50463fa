"""Adagrad (Duchi et al., 2011): per-coordinate steps shrinking with the summed squared gradient."""
from __future__ import annotations

from typing import Any

import numpy as np

from .optimizer import Optimizer, ParamsT


class Adagrad(Optimizer):
    """Adagrad, as torch.optim.Adagrad.

        g ← g + λ·x                             (weight_decay λ)
        η_t = lr / (1 + (t − 1)·lr_decay)
        s ← s + g²                              (s starts at initial_accumulator_value)
        x ← x − η_t · g / (√s + ε)

    >>> opt = rg.optim.Adagrad(model.parameters(), lr=0.01)
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, *, maximize: bool = False):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps, maximize=maximize))

    def _check_options(self, group: dict[str, Any]) -> None:
        self._require_nonnegative(group, "lr", "lr_decay", "weight_decay",
                                  "initial_accumulator_value", "eps")

    def _step_group(self, group: dict[str, Any]) -> None:
        lr, lr_decay, eps = float(group["lr"]), float(group["lr_decay"]), float(group["eps"])
        weight_decay, maximize = float(group["weight_decay"]), group["maximize"]
        for x, g, state in self._grads(group):
            if not state:
                state["step"] = 0
                state["sum"] = np.full_like(x, group["initial_accumulator_value"])
            state["step"] = t = state["step"] + 1
            if maximize:
                g = -g
            if weight_decay:
                g = g + weight_decay * x
            s = state["sum"]
            tmp = np.multiply(g, g)
            s += tmp                                          # s ← s + g²
            denom = np.sqrt(s, out=tmp)
            denom += eps
            step = np.divide(g, denom, out=denom)             # g / (√s + ε)
            step *= lr / (1 + (t - 1) * lr_decay)
            x -= step
