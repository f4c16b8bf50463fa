"""Loss functions, with PyTorch's names, arguments and numbers (`torch.nn.functional`).

Each loss is a single graph node: forward computes the elementwise loss and folds in the
reduction, backward writes the gradient directly. Cross-entropy is fused (stable log-softmax, loss,
and a backward of `softmax - target distribution`, one pass each way) because it sits on every
classifier's hot path. These ops work on raw arrays, so they are once-differentiable.

Every loss takes `reduction`: 'mean' (the default), 'sum', or 'none' (the per-element losses).
Unlike PyTorch, which warns and broadcasts when a regression target's shape differs from the
input's, the losses here raise: a (N, 1) prediction against an (N,) target is almost always a bug.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from ..autograd import Function, array_function
from ..tensor import Tensor
from .linalg import axis_sums
from .reduce import unshifted_exp_sums
from .shape import broadcasts_to

_REDUCTIONS = ("mean", "sum", "none")


# -- argument checks -------------------------------------------------------------------------------

def _check_reduction(name: str, reduction: str, allowed: tuple = _REDUCTIONS) -> None:
    if reduction not in allowed:
        raise ValueError(f"{name}: reduction must be one of {', '.join(map(repr, allowed))}, "
                         f"got {reduction!r}")


def _float_input(name: str, x: Any) -> Tensor:
    x = x if isinstance(x, Tensor) else Tensor(x)
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: input must be a floating-point tensor, got dtype {x.dtype} "
                        "(convert it with .float())")
    return x


def _same_shape(name: str, x: Tensor, target: Any) -> Any:
    """The target as a Tensor or array, checked to have exactly the input's shape."""
    if not isinstance(target, Tensor):
        target = np.asarray(target)
    if target.shape != x.shape:
        raise ValueError(f"{name}: target of shape {tuple(target.shape)} does not match input of "
                         f"shape {tuple(x.shape)}; they must be equal (no broadcasting here, "
                         "reshape one of them)")
    return target


def _constant(name: str, what: str, w: Any, shape: tuple, dtype: np.dtype) -> np.ndarray | None:
    """A weight as an array of the input's dtype, checked to broadcast to `shape` (not trained)."""
    if w is None:
        return None
    w = np.asarray(w.data if isinstance(w, Tensor) else w, dtype=dtype)
    if not broadcasts_to(w.shape, shape):
        raise ValueError(f"{name}: {what} of shape {w.shape} does not broadcast to the input's "
                         f"shape {shape}")
    return w


# -- reductions folded into each op ----------------------------------------------------------------

def _reduce(loss: np.ndarray, reduction: str, denom: Any = None) -> np.ndarray:
    """Reduce per-element losses; `denom` replaces the element count of 'mean' (weighted means)."""
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    if reduction == "batchmean":
        return total / (loss.shape[0] if loss.ndim else 1)
    n = loss.size if denom is None else denom
    return total / n if n else total * np.nan    # nothing counted: NaN, as in PyTorch


def _upstream(grad: np.ndarray, reduction: str, shape: tuple, denom: Any = None) -> np.ndarray:
    """dL/d(per-element loss), broadcastable to the per-element shape: the adjoint of `_reduce`."""
    if reduction == "none" or reduction == "sum":
        return grad
    if reduction == "batchmean":
        return grad / (shape[0] if shape else 1)
    n = int(np.prod(shape)) if denom is None else denom
    return grad / n if n else grad * np.nan


def _full(g: np.ndarray | None, shape: tuple) -> np.ndarray | None:
    """A gradient at the input's shape (it may come out smaller, e.g. 0-d g times a 0-d weight)."""
    return g if g is None or g.shape == shape else np.broadcast_to(g, shape)


# -- elementwise losses ----------------------------------------------------------------------------

class _Elementwise(Function):
    """Base of the losses that are a function of (input, target) element by element.

    A subclass defines `loss(ctx, x, t)` (per-element values; keeps on ctx what it needs) and
    `grads(ctx, g)` -> (d/dx, d/dt) for upstream g, either None when not wanted. `weight` multiplies
    each element's loss and is a constant.
    """

    @classmethod
    def forward(cls, ctx, x, t, weight=None, reduction="mean", **params):
        t = t.astype(x.dtype, copy=False)
        loss = cls.loss(ctx, x, t, **params)
        if weight is not None:
            loss = loss * weight
        ctx.weight, ctx.reduction, ctx.shape = weight, reduction, x.shape
        return _reduce(loss, reduction)

    @staticmethod
    def backward(ctx, grad):
        g = _upstream(grad, ctx.reduction, ctx.shape)
        if ctx.weight is not None:
            g = g * ctx.weight
        return tuple(_full(gi, ctx.shape) for gi in type(ctx).grads(ctx, g))


class MSE(_Elementwise):
    @staticmethod
    def loss(ctx, x, t):
        d = x - t
        ctx.d = d
        return d * d

    @staticmethod
    def grads(ctx, g):
        gx = (2 * g) * ctx.d
        return gx, (-gx if ctx.needs_input_grad[1] else None)


class L1(_Elementwise):
    @staticmethod
    def loss(ctx, x, t):
        d = x - t
        ctx.d = d
        return np.abs(d)

    @staticmethod
    def grads(ctx, g):
        gx = g * np.sign(ctx.d)          # 0 at d == 0, as PyTorch
        return gx, (-gx if ctx.needs_input_grad[1] else None)


class Huber(_Elementwise):
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta): quadratic near 0, linear beyond."""

    @staticmethod
    def loss(ctx, x, t, delta=1.0):
        d = x - t
        a = np.abs(d)
        ctx.d, ctx.delta = d, delta
        return np.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta))

    @staticmethod
    def grads(ctx, g):
        gx = g * np.clip(ctx.d, -ctx.delta, ctx.delta)
        return gx, (-gx if ctx.needs_input_grad[1] else None)


class SmoothL1(_Elementwise):
    """Huber divided by beta: 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta; L1 at beta=0."""

    @staticmethod
    def loss(ctx, x, t, beta=1.0):
        d = x - t
        a = np.abs(d)
        ctx.d, ctx.beta = d, beta
        if beta == 0:
            return a
        return np.where(a < beta, (0.5 / beta) * d * d, a - 0.5 * beta)

    @staticmethod
    def grads(ctx, g):
        d = ctx.d
        slope = np.sign(d) if ctx.beta == 0 else np.clip(d * (1 / ctx.beta), -1, 1)
        gx = g * slope
        return gx, (-gx if ctx.needs_input_grad[1] else None)


class BCE(_Elementwise):
    """-(t log p + (1 - t) log(1 - p)) with each log clamped at -100, as PyTorch does."""

    @staticmethod
    def loss(ctx, p, t):
        if np.any((p < 0) | (p > 1)):    # NaN passes, as in PyTorch
            raise ValueError("binary_cross_entropy: all elements of input should be probabilities "
                             "in [0, 1]; for logits use binary_cross_entropy_with_logits")
        with np.errstate(divide="ignore"):
            log_p = np.maximum(np.log(p), -100)
            log_q = np.maximum(np.log1p(-p), -100)
        ctx.p, ctx.t = p, t
        ctx.log_p, ctx.log_q = (log_p, log_q) if ctx.needs_input_grad[1] else (None, None)
        return -(log_q + t * (log_p - log_q))

    @staticmethod
    def grads(ctx, g):
        p, t = ctx.p, ctx.t
        gx = gt = None
        if ctx.needs_input_grad[0]:
            # PyTorch's form, finite at p = 0 and 1
            gx = g * (p - t) / np.maximum(p * (1 - p), 1e-12)
        if ctx.needs_input_grad[1]:
            gt = g * (ctx.log_q - ctx.log_p)
        return gx, gt


class BCEWithLogits(_Elementwise):
    """BCE of sigmoid(x) in log-sum-exp form: (1 - t) x + (1 + (pw - 1) t) log(1 + exp(-x)),
    with log(1 + exp(-x)) = log1p(exp(-|x|)) + max(-x, 0), finite for any x."""

    @staticmethod
    def loss(ctx, x, t, pos_weight=None):
        e = np.exp(-np.abs(x))
        softplus_neg = np.log1p(e) + np.maximum(-x, 0)
        lw = 1 if pos_weight is None else 1 + (pos_weight - 1) * t
        ctx.x, ctx.t, ctx.e, ctx.pos_weight, ctx.lw = x, t, e, pos_weight, lw
        ctx.softplus_neg = softplus_neg if ctx.needs_input_grad[1] else None
        return (1 - t) * x + lw * softplus_neg

    @staticmethod
    def grads(ctx, g):
        x, t, pw = ctx.x, ctx.t, ctx.pos_weight
        gx = gt = None
        if ctx.needs_input_grad[0]:
            sig = np.where(x >= 0, 1, ctx.e) / (1 + ctx.e)     # sigmoid(x) without overflow
            gx = g * (sig - t) if pw is None else g * (ctx.lw * sig - pw * t)
        if ctx.needs_input_grad[1]:
            gt = -g * x if pw is None else g * ((pw - 1) * ctx.softplus_neg - x)
        return gx, gt


class KLDiv(_Elementwise):
    """t (log t - x) (0 where t == 0), or exp(t) (t - x) when the target is given as log t."""

    @staticmethod
    def loss(ctx, x, t, log_target=False):
        ctx.x, ctx.t, ctx.log_target = x, t, log_target
        if log_target:
            ctx.pt = np.exp(t)
            return ctx.pt * (t - x)
        with np.errstate(divide="ignore", invalid="ignore"):
            ctx.log_t = np.log(np.where(t > 0, t, 1))     # x log x -> 0 at x = 0
        return t * (ctx.log_t - x)

    @staticmethod
    def grads(ctx, g):
        x, t = ctx.x, ctx.t
        pt = ctx.pt if ctx.log_target else t
        gx = -g * pt if ctx.needs_input_grad[0] else None
        gt = None
        if ctx.needs_input_grad[1]:
            gt = g * pt * (t - x + 1) if ctx.log_target else g * (ctx.log_t + 1 - x)
        return gx, gt


def mse_loss(input: Tensor, target: Any, *, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Mean squared error, (input - target)^2 reduced. Shapes must be equal (no broadcasting).

    >>> loss = rg.nn.functional.mse_loss(pred, y)        # pred, y: (N, *)
    >>> loss.backward()
    """
    return _elementwise("mse_loss", MSE, input, target, reduction)


def l1_loss(input: Tensor, target: Any, *, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Mean absolute error, |input - target| reduced (gradient 0 where they are equal).

    >>> loss = rg.nn.functional.l1_loss(pred, y)         # pred, y: (N, *)
    """
    return _elementwise("l1_loss", L1, input, target, reduction)


def huber_loss(input: Tensor, target: Any, reduction: str = "mean",  # noqa: A002
               delta: float = 1.0) -> Tensor:
    """Huber loss: 0.5 d^2 for |d| < delta, delta (|d| - 0.5 delta) beyond (d = input - target).

    >>> loss = rg.nn.functional.huber_loss(pred, y, delta=2.0)
    """
    if not delta > 0:
        raise ValueError(f"huber_loss: delta must be positive, got {delta}")
    return _elementwise("huber_loss", Huber, input, target, reduction, delta=float(delta))


def smooth_l1_loss(input: Tensor, target: Any, *, reduction: str = "mean",  # noqa: A002
                   beta: float = 1.0) -> Tensor:
    """Smooth L1: 0.5 d^2 / beta for |d| < beta, |d| - 0.5 beta beyond; huber_loss / beta.

    >>> loss = rg.nn.functional.smooth_l1_loss(pred, y, beta=0.5)
    """
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be non-negative, got {beta}")
    return _elementwise("smooth_l1_loss", SmoothL1, input, target, reduction, beta=float(beta))


def binary_cross_entropy(input: Tensor, target: Any, weight: Any = None, *,  # noqa: A002
                         reduction: str = "mean") -> Tensor:
    """Binary cross-entropy of probabilities `input` in [0, 1] against targets in [0, 1].

    Each log is clamped at -100, so p = 0 or 1 gives a finite loss. `weight` (broadcastable to the
    input) rescales each element. Prefer binary_cross_entropy_with_logits: it is stabler.

    >>> loss = rg.nn.functional.binary_cross_entropy(model(x).sigmoid(), y)   # (N, *) both
    """
    t = target.data if isinstance(target, Tensor) else np.asarray(target)
    if t.size and not (t.min() >= 0 and t.max() <= 1):  # as PyTorch: a silent wrong loss otherwise
        raise ValueError(f"binary_cross_entropy: all elements of target should be in [0, 1], got "
                         f"values from {t.min()} to {t.max()}")
    return _elementwise("binary_cross_entropy", BCE, input, target, reduction, weight=weight)


def binary_cross_entropy_with_logits(input: Tensor, target: Any,  # noqa: A002
                                     weight: Any = None, *, reduction: str = "mean",
                                     pos_weight: Any = None) -> Tensor:
    """Sigmoid + binary cross-entropy in one stable step: finite loss and gradient for any logit.

    `weight` rescales each element; `pos_weight` (broadcast along the last dimension, e.g. one per
    class of shape (C,)) rescales the positive term, trading recall for precision.

    >>> loss = rg.nn.functional.binary_cross_entropy_with_logits(logits, y)   # (N, *) both
    """
    x = _float_input("binary_cross_entropy_with_logits", input)
    pos_weight = _constant("binary_cross_entropy_with_logits", "pos_weight", pos_weight, x.shape,
                           x.dtype)
    return _elementwise("binary_cross_entropy_with_logits", BCEWithLogits, x, target, reduction,
                        weight=weight, pos_weight=pos_weight)


def kl_div(input: Tensor, target: Any, *, reduction: str = "mean",  # noqa: A002
           log_target: bool = False) -> Tensor:
    """KL(target || model) with `input` the model's log-probabilities: target (log target - input).

    `log_target=True` takes the target as log-probabilities too. reduction='batchmean' (sum / N) is
    the true KL divergence per sample; 'mean' averages over every element, as PyTorch's does.

    >>> log_q, p = student(x).log_softmax(1), teacher(x).softmax(1)
    >>> loss = rg.nn.functional.kl_div(log_q, p, reduction="batchmean")
    """
    return _elementwise("kl_div", KLDiv, input, target, reduction,
                        allowed=_REDUCTIONS + ("batchmean",), log_target=bool(log_target))


def _elementwise(name: str, op: type, input: Any, target: Any, reduction: str,  # noqa: A002
                 weight: Any = None, allowed: tuple = _REDUCTIONS, **params) -> Tensor:
    _check_reduction(name, reduction, allowed)
    x = _float_input(name, input)
    target = _same_shape(name, x, target)
    weight = _constant(name, "weight", weight, x.shape, x.dtype)
    return op.apply(x, target, weight=weight, reduction=reduction, **params)


# -- classification over C classes: class axis 1 of (N, C, d1, ...) --------------------------------

class _ClassIndices:
    """Checked class-index targets for cross_entropy and nll_loss.

    For input (N, C, d1, ...) and target (N, d1, ...):
    at: an index tuple picking input[n, target[n, ...], ...] -- shape (N, d1, ...) -- with 0 in
        place of ignored targets; fancy indexing, cheaper than take_along_axis on small batches.
    valid: True where not ignored, or None when nothing is ignored.
    wy: weight of each element's class, 0 where ignored, or None when every element weighs 1.
    denom: the normaliser of reduction='mean', the sum of wy (or the count of valid elements).
    """

    def __init__(self, name: str, x: np.ndarray, target: np.ndarray, weight: np.ndarray | None,
                 ignore_index: int):
        n_classes = x.shape[1]
        valid = None
        lo, hi = (target.min(), target.max()) if target.size else (0, 0)
        if not (0 <= lo and hi < n_classes and not 0 <= ignore_index < n_classes):
            valid = target != ignore_index      # only built when something may be ignored
            counted = target[valid]
            if counted.size and (counted.min() < 0 or counted.max() >= n_classes):
                bad = counted.min() if counted.min() < 0 else counted.max()
                raise IndexError(f"{name}: target class {int(bad)} is out of range for "
                                 f"{n_classes} classes (expected 0 to {n_classes - 1}, or "
                                 f"ignore_index={ignore_index})")
            if valid.all():
                valid = None
        safe = target if valid is None else np.where(valid, target, 0)
        grid = [np.arange(n).reshape((-1,) + (1,) * (target.ndim - 1 - i))
                for i, n in enumerate(target.shape)]
        self.at = (grid[0], safe, *grid[1:])
        self.shape, self.keep = target.shape, x.shape[:1] + (1,) + x.shape[2:]
        self.valid = valid
        if weight is not None:
            wy = weight[safe]
            self.wy = wy if valid is None else wy * valid
            self.denom = self.wy.sum()
        elif valid is not None:
            self.wy = valid.astype(x.dtype)
            self.denom = int(valid.sum())
        else:
            self.wy, self.denom = None, target.size


# Built from the target values outside the op: a compiled step rebuilds it each call.
_class_indices = array_function(_ClassIndices)


def _per_element(g: np.ndarray, targets: _ClassIndices, reduction: str) -> np.ndarray:
    """Upstream gradient of each element's loss, shaped like the targets (or 0-d)."""
    return _upstream(g, reduction, targets.shape, targets.denom)


# -log p_y is taken as log(s) - x_y where s / e_y is over this (p_y under 1e-19 in float32)
_FAR = {c: 1 / float(np.finfo(c).tiny) ** 0.5 for c in "efd"}


class CrossEntropyIndices(Function):
    """Fused log-softmax + negative log-likelihood for class-index targets (label smoothing too).

    With eps = label_smoothing, element n's loss is -sum_c a_nc log p_nc for the target
    distribution a_n = (1 - eps) w[y_n] onehot(y_n) + (eps / C) w, so d/dx_n = p_n sum_c a_nc - a_n:
    softmax minus the target distribution, scaled. One pass over (N, C, ...) each way; the rest
    works on (N, d1, ...) arrays.
    """

    @staticmethod
    def forward(ctx, x, targets, weight=None, reduction="mean", label_smoothing=0.0):
        eps, n_classes, t = label_smoothing, x.shape[1], targets
        if eps:
            w_c = 1 if weight is None else weight.reshape((-1,) + (1,) * (x.ndim - 2))
            w_total = n_classes if weight is None else weight.sum()

            def weighted_sum(logits):    # sum_c w_c logits_c; -sum_c w_c log p_c = w_total lse - it
                return logits.sum(axis=1) if weight is None else (logits * w_c).sum(axis=1)
        # softmax without the shift by the maximum when the sums show it is safe (ops/reduce.py)
        e = np.empty_like(x)
        s = unshifted_exp_sums(x, e, axis=1)
        if s is not None:
            # -log p at the target as log(s / e_y): as accurate as the shifted form's log(s) -
            # (x_y - max), where log(s) - x_y could cancel (a confident prediction with large
            # logits); used only where p_y < 1e-19 (float32) and so the loss is over 43.
            s_t = s.reshape(t.shape)
            with np.errstate(divide="ignore", over="ignore"):
                ratio = s_t / e[t.at]
            lse = np.log(s_t)
            loss = np.log(ratio)
            far = ratio > _FAR[x.dtype.char]          # inf where e_y is 0 or subnormal
            if far.any():
                loss[far] = (lse - x[t.at])[far]
            dot = weighted_sum(x) if eps else None
        else:
            shifted = np.subtract(x, x.max(axis=1, keepdims=True), out=e)
            loss = -shifted[t.at]
            dot = weighted_sum(shifted) if eps else None
            e = np.exp(shifted, out=shifted)    # reuse the buffer: shifted is not needed any more
            s = axis_sums(e, 1)
            lse = np.log(s).reshape(t.shape)
            loss += lse                          # -log p at the target
        if t.wy is not None:
            loss *= t.wy
        if eps:
            smooth = w_total * lse - dot         # -sum_c w_c log p_c
            if t.valid is not None:
                smooth *= t.valid
            loss = (1 - eps) * loss + (eps / n_classes) * smooth
            ctx.w_c, ctx.w_total = w_c, w_total
        ctx.save_for_backward(e, s)
        ctx.targets, ctx.reduction, ctx.eps = targets, reduction, eps
        return _reduce(loss, reduction, t.denom)

    @staticmethod
    def backward(ctx, grad):
        e, s = ctx.saved_tensors
        t, eps = ctx.targets, ctx.eps
        g = _per_element(grad, t, ctx.reduction)
        at_target = g if t.wy is None else g * t.wy     # a_n at y_n, times upstream
        if eps:
            at_target = (1 - eps) * at_target
            spread = g * (eps / e.shape[1])              # (eps / C) per unit of w_c
            if t.valid is not None:
                spread = spread * t.valid
            spread = spread.reshape(t.keep) if spread.ndim else spread
            coef = (at_target.reshape(t.keep) if at_target.ndim else at_target) + \
                spread * ctx.w_total
            out = e * (coef / s)
            out -= spread * ctx.w_c
        else:
            out = e * ((at_target.reshape(t.keep) if at_target.ndim else at_target) / s)
        out[t.at] -= at_target
        return out, None


class CrossEntropyProbs(Function):
    """Fused log-softmax + cross-entropy for class-probability targets (soft labels).

    Loss -sum_c w_c q_nc log p_nc with q = (1 - eps) target + eps / C; d/dx_n = p_n sum_c a_nc - a_n
    for a = w q, and d/dtarget = -(1 - eps) w log p (a target may be learned, as in PyTorch).
    """

    @staticmethod
    def forward(ctx, x, t, weight=None, reduction="mean", label_smoothing=0.0):
        eps, n_classes = label_smoothing, x.shape[1]
        t = t.astype(x.dtype, copy=False)
        q = t if not eps else (1 - eps) * t + eps / n_classes
        w_c = None if weight is None else weight.reshape((-1,) + (1,) * (x.ndim - 2))
        a = q if w_c is None else q * w_c
        shifted = x - x.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        s = e.sum(axis=1, keepdims=True)
        log_p = np.subtract(shifted, np.log(s), out=shifted)
        loss = -(a * log_p).sum(axis=1)
        ctx.save_for_backward(e, s)
        ctx.a, ctx.w_c, ctx.eps, ctx.reduction = a, w_c, eps, reduction
        ctx.log_p = log_p if ctx.needs_input_grad[1] else None
        return _reduce(loss, reduction)

    @staticmethod
    def backward(ctx, grad):
        e, s = ctx.saved_tensors
        a = ctx.a
        g = _upstream(grad, ctx.reduction, e.shape[:1] + e.shape[2:])
        if ctx.reduction == "none":
            g = np.expand_dims(g, 1)
        gx = gt = None
        if ctx.needs_input_grad[0]:
            gx = g * (e * (a.sum(axis=1, keepdims=True) / s) - a)
        if ctx.needs_input_grad[1]:
            gt = (-(1 - ctx.eps) * g) * ctx.log_p
            if ctx.w_c is not None:
                gt = gt * ctx.w_c
        return gx, gt


class NLL(Function):
    """Negative log-likelihood of log-probabilities at class-index targets: -w[y] input[y]."""

    @staticmethod
    def forward(ctx, x, targets, reduction="mean"):
        loss = -x[targets.at]
        if targets.wy is not None:
            loss *= targets.wy
        ctx.shape, ctx.targets, ctx.reduction = x.shape, targets, reduction
        return _reduce(loss, reduction, targets.denom)

    @staticmethod
    def backward(ctx, grad):
        t = ctx.targets
        g = _per_element(grad, t, ctx.reduction)
        out = np.zeros(ctx.shape, dtype=grad.dtype)
        out[t.at] = -g if t.wy is None else -g * t.wy
        return out, None


def _class_input(name: str, input: Any, target: Any, weight: Any,  # noqa: A002
                 probabilities: bool):
    """Common checks of cross_entropy and nll_loss; (C,) inputs are made (1, C).

    Returns the input tensor, the target (array or tensor), the weight array, whether the target
    holds class indices (else probabilities, accepted only when `probabilities`), and whether the
    input was unbatched (C,).
    """
    x = _float_input(name, input)
    if x.ndim == 0:
        raise ValueError(f"{name}: input must have a class dimension, (C,), (N, C) or "
                         "(N, C, d1, ...); got a 0-d tensor")
    if not isinstance(target, Tensor):
        target = np.asarray(target)
    index_shape = x.shape[:1] + x.shape[2:] if x.ndim > 1 else ()
    if probabilities and target.shape == x.shape:
        if target.dtype.kind != "f":
            raise TypeError(f"{name}: class-probability targets (the input's shape {x.shape}) "
                            f"must be floating point, got dtype {target.dtype}; class indices "
                            f"have shape {index_shape}")
        indices = False
    elif target.shape == index_shape:
        if target.dtype.kind not in "iu":
            raise TypeError(f"{name}: class-index targets must be integers, got dtype "
                            f"{target.dtype}" + (f" (for class probabilities, give the target the "
                                                 f"input's shape {x.shape})" if probabilities
                                                 else ""))
        indices = True
    else:
        raise ValueError(f"{name}: target of shape {tuple(target.shape)} does not match input of "
                         f"shape {x.shape}: expected class indices of shape {index_shape}"
                         + (f" or class probabilities of shape {x.shape}" if probabilities
                            else ""))
    n_classes = x.shape[1] if x.ndim > 1 else x.shape[0]
    weight = _constant(name, "weight", weight, (n_classes,), x.dtype)
    if weight is not None and weight.shape != (n_classes,):
        raise ValueError(f"{name}: weight must have one entry per class, shape ({n_classes},); "
                         f"got {weight.shape}")
    unbatched = x.ndim == 1
    if unbatched:
        x = x.reshape(1, n_classes)
        target = target.reshape((1,) + tuple(target.shape))
    return x, target, weight, indices, unbatched


def cross_entropy(input: Tensor, target: Any, weight: Any = None, *,  # noqa: A002
                  ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy between logits and targets: log_softmax and nll_loss fused into one stable op.

    input: logits (N, C), (N, C, d1, ...) or (C,). target: integer class indices (N), (N, d1, ...)
    or () -- elements equal to `ignore_index` are skipped -- or class probabilities of the input's
    shape (float). `weight` (C,) rescales each class; with reduction='mean' index-target losses are
    divided by the summed weight of the counted elements. `label_smoothing` mixes the target with
    the uniform distribution. Options after `weight` are keyword-only (PyTorch has deprecated
    arguments in between).

    >>> logits = model(x)                                   # (N, C)
    >>> loss = rg.nn.functional.cross_entropy(logits, y)    # y: (N,) int64
    """
    name = "cross_entropy"
    _check_reduction(name, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{name}: label_smoothing must be in [0, 1], got {label_smoothing}")
    x, target, weight, indices, unbatched = _class_input(name, input, target, weight,
                                                         probabilities=True)
    eps = float(label_smoothing)
    if indices:
        targets = _class_indices(name, x.data,
                                 target.data if isinstance(target, Tensor) else target,
                                 weight, ignore_index)
        out = CrossEntropyIndices.apply(x, targets, weight=weight, reduction=reduction,
                                        label_smoothing=eps)
    else:
        if ignore_index >= 0:
            raise ValueError(f"{name}: ignore_index={ignore_index} is not supported with class-"
                             "probability targets (give such elements zero probability mass)")
        out = CrossEntropyProbs.apply(x, target, weight=weight, reduction=reduction,
                                      label_smoothing=eps)
    return out.reshape(()) if unbatched and reduction == "none" else out


def nll_loss(input: Tensor, target: Any, weight: Any = None, *,  # noqa: A002
             ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities `input` at integer class targets.

    Shapes as cross_entropy's index form; nll_loss(log_softmax(x, 1), y) == cross_entropy(x, y).

    >>> loss = rg.nn.functional.nll_loss(logits.log_softmax(1), y)   # y: (N,) int64
    """
    name = "nll_loss"
    _check_reduction(name, reduction)
    x, target, weight, _, unbatched = _class_input(name, input, target, weight,
                                                   probabilities=False)
    targets = _class_indices(name, x.data, target.data if isinstance(target, Tensor) else target,
                             weight, ignore_index)
    out = NLL.apply(x, targets, reduction=reduction)
    return out.reshape(()) if unbatched and reduction == "none" else out


# -- weight penalties ------------------------------------------------------------------------------

class Penalty(Function):
    """weight * sum |w| (p=1) or weight * sum w^2 (p=2) over several tensors, as one graph node."""

    @staticmethod
    def forward(ctx, *params, p=2, weight=1.0):
        dtype = params[0].dtype
        total = np.zeros((), dtype=dtype)
        for w in params:
            flat = w.reshape(-1)
            total = total + (np.abs(flat).sum() if p == 1 else np.dot(flat, flat)).astype(dtype)
        ctx.save_for_backward(*params)
        ctx.p, ctx.weight = p, weight
        return total * weight

    @staticmethod
    def backward(ctx, grad):
        scale = grad * ctx.weight if ctx.p == 1 else grad * (2 * ctx.weight)
        return tuple((scale * (np.sign(w) if ctx.p == 1 else w)) if need else None
                     for w, need in zip(ctx.saved_tensors, ctx.needs_input_grad))


def penalty(params: Iterable[Tensor], p: int = 2, weight: float = 1.0) -> Tensor:
    """weight * sum |w|^p over the tensors (p = 1 or 2): a differentiable scalar, to regularise."""
    params = list(params)
    if p not in (1, 2):
        raise ValueError(f"penalty: p must be 1 or 2, got {p}")
    if not params:
        return Tensor(0.0)
    return Penalty.apply(*params, p=p, weight=float(weight))


__all__ = ["mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss", "cross_entropy", "nll_loss",
           "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div"]
