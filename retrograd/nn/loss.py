"""Loss modules (`nn.CrossEntropyLoss`, `nn.MSELoss`, ...) and weight-penalty helpers.

The modules hold a loss's options and call the functional form in `retrograd.ops.loss`. Their
constructors take PyTorch's arguments in PyTorch's order, and class weights are buffers, so
`state_dict()` keys match PyTorch's (`weight`, `pos_weight`; absent when not given).
"""
from __future__ import annotations

import sys
import warnings
from typing import Any, Iterable

from ..ops import loss as F
from ..ops.loss import _REDUCTIONS, _check_reduction
from ..tensor import Tensor
from .module import Module


def _legacy_reduction(size_average: bool | None, reduce: bool | None) -> str:
    """PyTorch's mapping of the deprecated size_average/reduce flags to `reduction`."""
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    reduction = "none" if not reduce else ("mean" if size_average else "sum")
    level, frame = 1, sys._getframe(0)      # point the warning at the caller's line, not ours
    while frame.f_back is not None and frame.f_code.co_filename == __file__:
        frame, level = frame.f_back, level + 1
    warnings.warn(f"size_average and reduce are deprecated; use reduction={reduction!r} instead",
                  DeprecationWarning, stacklevel=level)
    return reduction


def _buffer(value: Any) -> Tensor | None:
    return value if value is None or isinstance(value, Tensor) else Tensor(value)


class _Loss(Module):
    reductions = _REDUCTIONS

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__()
        if size_average is not None or reduce is not None:
            reduction = _legacy_reduction(size_average, reduce)
        _check_reduction(type(self).__name__, reduction, self.reductions)
        self.reduction = reduction


class _WeightedLoss(_Loss):
    """A loss with per-class weights, kept as the buffer `weight` (None when not given)."""

    def __init__(self, weight: Any = None, size_average=None, reduce=None,
                 reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _buffer(weight))


class MSELoss(_Loss):
    """Mean squared error. input and target: the same shape (no broadcasting; reshape one).

    >>> criterion = nn.MSELoss()
    >>> loss = criterion(model(x), y)            # (N, *) both
    """

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error. input and target: the same shape.

    >>> criterion = nn.L1Loss(reduction="sum")
    >>> loss = criterion(model(x), y)
    """

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return F.l1_loss(input, target, reduction=self.reduction)


class HuberLoss(_Loss):
    """Quadratic for |input - target| < delta, linear beyond: robust to outliers.

    >>> criterion = nn.HuberLoss(delta=2.0)
    >>> loss = criterion(model(x), y)
    """

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class SmoothL1Loss(_Loss):
    """HuberLoss divided by beta (0.5 d^2 / beta inside, |d| - 0.5 beta outside); L1 at beta=0.

    >>> criterion = nn.SmoothL1Loss(beta=0.5)
    >>> loss = criterion(boxes_pred, boxes)
    """

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean",
                 beta: float = 1.0):
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class CrossEntropyLoss(_WeightedLoss):
    """Softmax cross-entropy on logits (N, C) or (N, C, d1, ...), fused and stable.

    Targets are int class indices (N) / (N, d1, ...) -- `ignore_index` marks elements to skip -- or
    float class probabilities of the input's shape. `weight` (C,) rescales classes;
    `label_smoothing` mixes the target with the uniform distribution.

    >>> criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    >>> loss = criterion(model(x), y)            # y: (N,) int64
    """

    def __init__(self, weight: Any = None, size_average=None, ignore_index: int = -100,
                 reduce=None, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return F.cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of log-probabilities (after log_softmax) at class-index targets.

    >>> criterion = nn.NLLLoss()
    >>> loss = criterion(model(x).log_softmax(1), y)
    """

    def __init__(self, weight: Any = None, size_average=None, ignore_index: int = -100,
                 reduce=None, reduction: str = "mean"):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return F.nll_loss(input, target, self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class BCELoss(_WeightedLoss):
    """Binary cross-entropy of probabilities in [0, 1]; `weight` broadcasts to the input.

    >>> criterion = nn.BCELoss()
    >>> loss = criterion(model(x).sigmoid(), y)   # prefer BCEWithLogitsLoss on the logits
    """

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return F.binary_cross_entropy(input, target, self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid + binary cross-entropy, stable for any logit. Buffers `weight` (broadcast to the
    input) and `pos_weight` (broadcast along the last dimension, one per class).

    >>> criterion = nn.BCEWithLogitsLoss(pos_weight=rg.tensor([3.0]))
    >>> loss = criterion(model(x), y)             # (N, 1) both
    """

    def __init__(self, weight: Any = None, size_average=None, reduce=None,
                 reduction: str = "mean", pos_weight: Any = None):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _buffer(weight))
        self.register_buffer("pos_weight", _buffer(pos_weight))

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return F.binary_cross_entropy_with_logits(input, target, self.weight,
                                                  reduction=self.reduction,
                                                  pos_weight=self.pos_weight)


class KLDivLoss(_Loss):
    """KL(target || model) with log-probability inputs; reduction='batchmean' is the true KL per
    sample ('mean' averages over all elements, as in PyTorch).

    >>> criterion = nn.KLDivLoss(reduction="batchmean")
    >>> loss = criterion(student(x).log_softmax(1), teacher(x).softmax(1))
    """

    reductions = _REDUCTIONS + ("batchmean",)

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean",
                 log_target: bool = False):
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


# -- weight penalties ------------------------------------------------------------------------------

def _penalised(parameters: Module | Tensor | Iterable[Tensor], exclude_bias: bool) -> list:
    if isinstance(parameters, Module):
        parameters = parameters.parameters()
    elif isinstance(parameters, Tensor):
        parameters = [parameters]
    params = list(parameters)
    for p in params:
        if not isinstance(p, Tensor):
            raise TypeError(f"penalty: expected a Module or tensors, got {type(p).__name__}")
    return [p for p in params if not (exclude_bias and p.ndim <= 1)]


def l1_penalty(parameters: Module | Tensor | Iterable[Tensor], weight: float = 1.0,
               exclude_bias: bool = False) -> Tensor:
    """weight * sum |w| over the parameters: a differentiable scalar to add to a loss (lasso).

    Every parameter counts, biases included, unless exclude_bias=True, which skips all 1-D (and 0-d)
    parameters: biases, and also the scales and shifts of normalisation layers. Frozen parameters
    count in the value but get no gradient.

    >>> loss = criterion(model(x), y) + nn.l1_penalty(model, 1e-4, exclude_bias=True)
    >>> loss.backward()
    """
    return F.penalty(_penalised(parameters, exclude_bias), p=1, weight=weight)


def l2_penalty(parameters: Module | Tensor | Iterable[Tensor], weight: float = 1.0,
               exclude_bias: bool = False) -> Tensor:
    """weight * sum w^2 over the parameters: a differentiable scalar to add to a loss (ridge).

    Biases count unless exclude_bias=True (which skips every parameter of at most one dimension),
    the same set an optimizer's weight_decay covers by default: with plain SGD, adding
    l2_penalty(model, wd / 2) matches weight_decay=wd.

    >>> loss = criterion(model(x), y) + nn.l2_penalty(model.parameters(), 5e-4)
    >>> loss.backward()
    """
    return F.penalty(_penalised(parameters, exclude_bias), p=2, weight=weight)


__all__ = ["MSELoss", "L1Loss", "HuberLoss", "SmoothL1Loss", "CrossEntropyLoss", "NLLLoss",
           "BCELoss", "BCEWithLogitsLoss", "KLDivLoss", "l1_penalty", "l2_penalty"]
