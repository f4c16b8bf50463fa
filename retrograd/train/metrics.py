"""Metrics for `fit` and `evaluate`, accumulated over an epoch as a sum and a count.

Each metric turns one batch of (outputs, targets) into `(sum, count)` with a few NumPy operations
on the raw arrays (no graph, no per-sample Python); the epoch's value is total sum / total count,
so it is exact however the batches are sized.

Built-in names:

- `"accuracy"` (`"acc"`): for class scores of shape (N, C, ...) with C > 1, the argmax over dim 1
  against integer labels (N, ...) or one-hot/probability targets (N, C, ...). For a single output,
  (N,) or (N, 1), a probability of class 1: predicted 1 when above 0.5, which suits a Sigmoid
  output. If the loss is `BCEWithLogitsLoss` (or `F.binary_cross_entropy_with_logits`) the outputs
  are logits and the threshold becomes 0 automatically; otherwise name it explicitly:
- `"binary_accuracy"` (threshold 0.5, for probabilities), `"binary_accuracy_logits"` (threshold 0);
- `"mse"`, `"mae"`: mean squared / absolute error over all elements.

Any callable `fn(output, target) -> float` is a metric too: it gets the batch's (detached) output
and target Tensors and its batch values are averaged weighted by batch size; it is named by
`fn.__name__`, or by its key when metrics are given as a dict.

>>> fit(model, loss_fn, opt, data, metrics=("accuracy", "mae"))
>>> fit(model, loss_fn, opt, data, metrics={"top1": my_top1})
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from ..tensor import Tensor

MetricFn = Callable[[Tensor, Tensor], float]
MetricsSpec = Iterable["str | MetricFn | Metric"] | Mapping[str, "str | MetricFn | Metric"]


class Metric:
    """Base class: `batch(output, target)` returns (sum, count) for one batch; the epoch's value
    is the sum of sums over the sum of counts. `name` is the key in History ("val_" + name for
    validation)."""

    name = "metric"

    def batch(self, output: Tensor, target: Tensor) -> tuple[float, int]:
        raise NotImplementedError


class Accuracy(Metric):
    """Fraction of correct predictions: argmax over dim 1 for class scores, `output > threshold`
    for a single output (see the module docstring)."""

    def __init__(self, threshold: float = 0.5, name: str = "accuracy"):
        self.threshold = threshold
        self.name = name
        self._checked = False

    def batch(self, output: Tensor, target: Tensor) -> tuple[float, int]:
        o, t = output.data, target.data
        if o.ndim >= 2 and o.shape[1] > 1:  # class scores along dim 1
            pred = o.argmax(1)
            if t.shape == o.shape:  # one-hot or probability targets
                t = t.argmax(1)
        else:
            pred = o.reshape(-1) > self.threshold
            t = t.reshape(-1)
            if not self._checked:
                self._check_binary(o, t)
            t = t > 0.5 if t.dtype.kind == "f" else t != 0
        if t.shape != pred.shape:
            if t.size != pred.size:
                raise ValueError(f"{self.name}: outputs of shape {o.shape} and targets of shape "
                                 f"{target.data.shape} don't match (expected class labels of "
                                 f"shape {pred.shape})")
            t = t.reshape(pred.shape)
        return float(np.count_nonzero(pred == t)), pred.size

    def _check_binary(self, o: np.ndarray, t: np.ndarray) -> None:
        self._checked = True
        if o.size and self.threshold == 0.5 and (o.min() < 0 or o.max() > 1):
            warnings.warn(f"{self.name}: single outputs outside [0, 1] look like logits, but "
                          "accuracy thresholds them at 0.5 (for probabilities); use "
                          "metrics=('binary_accuracy_logits',) or end the model with a Sigmoid",
                          stacklevel=5)
        if t.size and not np.isin(t, (0, 1)).all():
            warnings.warn(f"{self.name}: targets are not 0/1 class labels; for regression pass "
                          "metrics=('mse',), ('mae',) or ()", stacklevel=5)


class _ErrorMetric(Metric):
    def batch(self, output: Tensor, target: Tensor) -> tuple[float, int]:
        o, t = output.data, target.data
        if t.shape != o.shape:
            if t.size != o.size:
                raise ValueError(f"{self.name}: outputs of shape {o.shape} and targets of shape "
                                 f"{t.shape} have different sizes")
            t = t.reshape(o.shape)
        d = (o - t).reshape(-1)
        return self._reduce(d), d.size


class MeanSquaredError(_ErrorMetric):
    """Mean of (output - target)^2 over all elements."""

    name = "mse"

    def _reduce(self, d: np.ndarray) -> float:
        return float(np.dot(d, d))


class MeanAbsoluteError(_ErrorMetric):
    """Mean of |output - target| over all elements."""

    name = "mae"

    def _reduce(self, d: np.ndarray) -> float:
        return float(np.abs(d).sum())


class FunctionMetric(Metric):
    """A user function `fn(output, target) -> float`, averaged over batches weighted by size."""

    def __init__(self, fn: MetricFn, name: str | None = None):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", type(fn).__name__)

    def batch(self, output: Tensor, target: Tensor) -> tuple[float, int]:
        n = target.data.shape[0] if target.data.ndim else 1
        return float(self.fn(output.detach(), target)) * n, n


def takes_logits(loss_fn: Any) -> bool:
    """True for losses that apply the sigmoid themselves (so single outputs are logits)."""
    names = [c.__name__ for c in type(loss_fn).__mro__] + [getattr(loss_fn, "__name__", "")]
    return "BCEWithLogitsLoss" in names or "binary_cross_entropy_with_logits" in names


def get_metric(spec: str | MetricFn | Metric, loss_fn: Any = None,
               name: str | None = None) -> Metric:
    """A fresh `Metric` from a name, a callable or a Metric (see the module docstring)."""
    if isinstance(spec, Metric):
        if name is not None:
            spec.name = name
        return spec
    if isinstance(spec, str):
        key = spec.lower()
        if key in ("accuracy", "acc"):
            return Accuracy(0.0 if takes_logits(loss_fn) else 0.5, name or spec)
        if key == "binary_accuracy":
            return Accuracy(0.5, name or spec)
        if key == "binary_accuracy_logits":
            return Accuracy(0.0, name or spec)
        if key in ("mse", "mean_squared_error"):
            m = MeanSquaredError()
        elif key in ("mae", "mean_absolute_error"):
            m = MeanAbsoluteError()
        else:
            raise ValueError(f"unknown metric {spec!r}: use 'accuracy', 'binary_accuracy', "
                             "'binary_accuracy_logits', 'mse', 'mae', or a function "
                             "fn(output, target) -> float")
        m.name = name or spec
        return m
    if callable(spec):
        return FunctionMetric(spec, name)
    raise TypeError(f"a metric must be a name or a callable fn(output, target) -> float, "
                    f"got {spec!r}")


def get_metrics(metrics: MetricsSpec | None, loss_fn: Any = None) -> list[Metric]:
    """Resolve `fit`'s `metrics=` argument (a sequence, or a dict naming each metric)."""
    if metrics is None:
        return []
    if isinstance(metrics, (str, Metric)) or callable(metrics):
        metrics = (metrics,)
    if isinstance(metrics, Mapping):
        out = [get_metric(m, loss_fn, name) for name, m in metrics.items()]
    else:
        out = [get_metric(m, loss_fn) for m in metrics]
    names = [m.name for m in out]
    if "loss" in names or len(set(names)) != len(names):
        raise ValueError(f"metric names must be unique and not 'loss', got {names}")
    return out
