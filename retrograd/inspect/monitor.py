"""Gradient-flow monitor: a `fit` callback that watches backprop's health layer by layer.

Every `every` steps it records, per weight tensor, the gradient norm and the update/weight ratio
(||w_after - w_before|| / ||w_before||; around 1e-3 is the classic healthy value), and per
activation module the fraction of dead ReLUs (exactly 0 for every sample) or saturated
sigmoid/tanh units. It warns once, naming the layer, when gradients vanish (a layer's norm below
`vanish` times the largest layer's) or explode (non-finite or above `explode`).
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import nn
from ..io import atomic_write_bytes
from ..train.callbacks import Callback

_SATURATING = (nn.Sigmoid, nn.Tanh)


class GradientMonitor(Callback):
    """Record per-layer gradient norms, update ratios and activation statistics during `fit`.

    >>> monitor = GradientMonitor(every=10)
    >>> fit(model, loss_fn, opt, data, epochs=5, callbacks=[monitor])
    >>> monitor.plot("grad_flow.png")
    """

    def __init__(self, every: int = 10, vanish: float = 1e-7, explode: float = 1e3,
                 activations: bool = True, warn: bool = True):
        if every < 1:
            raise ValueError(f"GradientMonitor: every must be >= 1, got {every}")
        self.every, self.vanish, self.explode = every, vanish, explode
        self.watch_activations, self.warn = activations, warn
        self.steps: list[int] = []
        self.grad_norms: dict[str, list[float]] = {}
        self.update_ratios: dict[str, list[float]] = {}
        self.activation_stats: dict[str, list[float]] = {}
        self.warnings: list[str] = []
        self._step = 0
        self._before: dict[str, np.ndarray] = {}
        self._handles: list = []
        self._warned: set[tuple[str, str]] = set()

    # -- fit hooks --------------------------------------------------------------------------------
    def on_train_begin(self, logs=None) -> None:
        self._weights = [(name, p) for name, p in self.model.named_parameters() if p.ndim >= 2]
        if self.watch_activations:
            for name, module in self.model.named_modules():
                if isinstance(module, (nn.ReLU, *_SATURATING)):
                    self._handles.append(module.register_forward_hook(self._activation_hook(name)))

    def on_train_end(self, logs=None) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def on_after_backward(self) -> None:
        if self._step % self.every:
            return
        self.steps.append(self._step)
        norms = {}
        for name, p in self._weights:
            g = p.grad
            norms[name] = float(np.linalg.norm(g.data)) if g is not None else 0.0
            self.grad_norms.setdefault(name, []).append(norms[name])
            self._before[name] = p.data.copy()
        self._check(norms)

    def on_batch_end(self, batch: int, logs: dict) -> None:
        if self._before:
            for name, p in self._weights:
                before = self._before[name]
                scale = float(np.linalg.norm(before)) or 1.0
                ratio = float(np.linalg.norm(p.data - before)) / scale
                self.update_ratios.setdefault(name, []).append(ratio)
            self._before = {}
        self._step += 1

    # -- internals --------------------------------------------------------------------------------
    def _activation_hook(self, name: str):
        def hook(module, inputs, output):
            if self._step % self.every or not module.training:
                return
            a = output.data.reshape(output.shape[0], -1) if output.ndim > 1 else output.data[None]
            if isinstance(module, nn.ReLU):
                value = float(np.mean(np.all(a <= 0, axis=0)))      # units dead on the whole batch
            elif isinstance(module, nn.Sigmoid):
                value = float(np.mean((a < 0.01) | (a > 0.99)))
            else:
                value = float(np.mean(np.abs(a) > 0.99))
            self.activation_stats.setdefault(name, []).append(value)
        return hook

    def _check(self, norms: dict[str, float]) -> None:
        finite = [v for v in norms.values() if np.isfinite(v)]
        largest = max(finite, default=0.0)
        for name, value in norms.items():
            if not np.isfinite(value) or value > self.explode:
                self._say(name, "explode", f"gradients explode in {name}: norm {value:.3g} at step "
                          f"{self._step} (threshold {self.explode:g}); try gradient clipping, a "
                          "lower learning rate or normalisation")
            elif largest > 0 and value < self.vanish * largest:
                self._say(name, "vanish", f"gradients vanish in {name}: norm {value:.3g} at step "
                          f"{self._step}, {value / largest:.1e} of the largest layer's; try ReLU "
                          "with He init, BatchNorm or residual connections")

    def _say(self, name: str, kind: str, message: str) -> None:
        if (name, kind) in self._warned:
            return
        self._warned.add((name, kind))
        self.warnings.append(message)
        if self.warn:
            warnings.warn(message, RuntimeWarning, stacklevel=2)

    # -- reporting ------------------------------------------------------------------------------------
    def plot(self, path: str, title: str = "gradient norm per layer (log10)") -> str:
        """Heat map of log10 gradient norms, layers x recorded steps, written atomically as PNG."""
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError('GradientMonitor.plot needs matplotlib: pip install '
                              '"retrograd[plot]"') from None
        import io

        if not self.steps:
            raise ValueError("GradientMonitor.plot: nothing recorded yet (run fit with this "
                             "callback first)")
        names = list(self.grad_norms)
        grid = np.log10(np.maximum(np.array([self.grad_norms[n] for n in names]), 1e-30))
        fig, ax = plt.subplots(figsize=(8, 0.4 * len(names) + 1.5))
        image = ax.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest",
                          extent=(self.steps[0], self.steps[-1] + self.every, len(names), 0))
        ax.set_yticks(np.arange(len(names)) + 0.5, labels=names)
        ax.set_xlabel("step")
        ax.set_title(title)
        fig.colorbar(image, ax=ax, label="log10 ||dE/dW||")
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        plt.close(fig)
        atomic_write_bytes(path, buffer.getvalue())
        return path
