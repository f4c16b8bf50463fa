"""Elementwise math and activations. Each backward is the derivative of its forward, written beside it."""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes
from ..autograd import Function

try:  # SciPy's erf and expit are exact single-pass ufuncs; without SciPy the fallbacks below are
    # exact too, only slower (math.erf per element; sigmoid in five array passes).
    from scipy.special import erf as _erf
    from scipy.special import expit as _sigmoid
except ImportError:  # pragma: no cover - exercised only without SciPy
    _erf_scalar = np.frompyfunc(math.erf, 1, 1)

    def _erf(x):
        return _erf_scalar(x).astype(x.dtype)

    def _sigmoid(x: np.ndarray) -> np.ndarray:
        # exp of a non-positive number never overflows, and keeps sigmoid(-30) accurate (not 1 - 1).
        e = np.exp(-np.abs(x))
        r = 1 / (1 + e)
        return np.where(x >= 0, r, e * r)

_ONES: dict = {}


def _one(dtype: np.dtype) -> np.ndarray:
    """1 as a 0-d array of `dtype`: as an operand it costs NumPy less than the Python number 1,
    which must first be converted (about 0.3 us, much of `1 - x` on a small array)."""
    one = _ONES.get(dtype)
    if one is None:
        one = _ONES[dtype] = np.ones((), dtype)
        one.flags.writeable = False
    return one


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


class Exp(Function):
    @staticmethod
    def forward(ctx, x):
        out = np.exp(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * out


class Log(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.log(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / x


class Log1p(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.log1p(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / (1 + x)


class Sqrt(Function):
    @staticmethod
    def forward(ctx, x):
        out = np.sqrt(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad / (2 * out)


class Rsqrt(Function):
    """1 / sqrt(x); integer inputs give the default float dtype, as in PyTorch."""

    @staticmethod
    def forward(ctx, x):
        if x.dtype.kind != "f":
            x = x.astype(dtypes.get_default_dtype())
        out = np.sqrt(x, out=np.empty_like(x))      # an array even when x is 0-d
        np.divide(1, out, out=out)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * (out * out * out) * -0.5     # d/dx x^(-1/2) = -x^(-3/2) / 2


class Sign(Function):
    """-1, 0 or 1; piecewise constant, so its gradient is zero everywhere (as in PyTorch)."""

    @staticmethod
    def forward(ctx, x):
        return x.copy() if x.dtype == np.bool_ else np.sign(x)

    @staticmethod
    def backward(ctx, grad):
        return np.zeros(grad.shape, grad.dtype)


class Abs(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.abs(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * np.sign(x)   # 0 at x == 0, like PyTorch


class Sin(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.sin(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * np.cos(x)


class Cos(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.cos(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return -grad * np.sin(x)


class Tanh(Function):
    @staticmethod
    def forward(ctx, x):
        out = np.tanh(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * (1 - out * out)


class Sigmoid(Function):
    @staticmethod
    def forward(ctx, x):
        out = _sigmoid(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * out * (_one(out.dtype) - out)    # sigma'(z) = sigma(z) (1 - sigma(z))


class ReLU(Function):
    @staticmethod
    def forward(ctx, x):
        out = np.maximum(x, 0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * (out > 0)


class LeakyReLU(Function):
    @staticmethod
    def forward(ctx, x, negative_slope=0.01):
        ctx.save_for_backward(x)
        ctx.slope = negative_slope
        return np.where(x > 0, x, x * negative_slope)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return np.where(x > 0, grad, grad * ctx.slope)


class ELU(Function):
    @staticmethod
    def forward(ctx, x, alpha=1.0):
        out = np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))
        ctx.save_for_backward(x, out)
        ctx.alpha = alpha
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        return np.where(x > 0, grad, grad * (out + ctx.alpha))   # d/dx alpha(e^x - 1) = out + alpha


class GELU(Function):
    """x * Phi(x); approximate='tanh' uses the tanh form of Phi (as in GPT-2), 'none' the exact erf."""

    @staticmethod
    def forward(ctx, x, approximate="none"):
        ctx.save_for_backward(x)
        ctx.approximate = approximate
        if approximate == "tanh":
            # x * x * x, not x ** 3: NumPy's general power is ~30x slower than two multiplies
            u = x * x
            u *= 0.044715
            u += 1
            u *= x
            u *= _SQRT_2_OVER_PI
            t = ctx.t = np.tanh(u, out=u)
            return 0.5 * x * (1 + t)
        if approximate != "none":
            raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
        # Phi(x) is kept for backward: erf is the costly part, computed once per step
        cdf = ctx.cdf = 0.5 * (1 + _erf(x * _INV_SQRT_2))
        return x * cdf

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        if ctx.approximate == "tanh":
            t = ctx.t
            inner = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
            return grad * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * inner)
        pdf = np.exp(-0.5 * x * x) * _INV_SQRT_2PI
        pdf *= x
        pdf += ctx.cdf
        return grad * pdf


class Softplus(Function):
    """log(1 + exp(beta x)) / beta, linear above `threshold` (PyTorch's definition)."""

    @staticmethod
    def forward(ctx, x, beta=1.0, threshold=20.0):
        bx = x * beta
        ctx.save_for_backward(bx)
        ctx.threshold = threshold
        return np.where(bx > threshold, x, np.logaddexp(0, bx) / beta)

    @staticmethod
    def backward(ctx, grad):
        (bx,) = ctx.saved_tensors
        return np.where(bx > ctx.threshold, grad, grad * _sigmoid(bx))


class Maximum(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.maximum(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return _split_ties(grad, a > b, a == b)


class Minimum(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.minimum(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return _split_ties(grad, a < b, a == b)


def _split_ties(grad, a_wins, tie):
    """Gradient of max/min of two: to the winner, half to each on a tie (as PyTorch does)."""
    share_a = a_wins + 0.5 * tie
    return grad * share_a, grad * (1 - share_a)


class Clamp(Function):
    """Bounds are numbers, arrays or tensors (then they get gradients too), either may be None."""

    @staticmethod
    def forward(ctx, x, lo=None, hi=None):
        ctx.save_for_backward(x, lo, hi)
        return np.clip(x, lo, hi)

    @staticmethod
    def backward(ctx, grad):
        x, lo, hi = ctx.saved_tensors
        # PyTorch's rule, ties included: x gets the gradient where lo <= x <= hi, each bound where
        # the output took its value (with lo > hi, that is hi everywhere).
        below = False if lo is None else (x < lo if hi is None else (x < lo) & (lo < hi))
        above = False if hi is None else (x > hi if lo is None else (x > hi) | (hi < lo))
        inside = True if lo is None else x >= lo
        inside = inside if hi is None else inside & (x <= hi)
        zero = np.zeros((), dtype=grad.dtype)
        return (np.where(inside, grad, zero),
                np.where(below, grad, zero) if ctx.needs_input_grad[1] else None,
                np.where(above, grad, zero) if ctx.needs_input_grad[2] else None)


class Predicate(Function):
    """A comparison, logical operation or test (`a < b`, `m & n`, `~m`, `isnan`, `any`): a bool
    (or, for `~` on integers, integer) result outside the graph. An op rather than a NumPy call on
    `.data`, so that a compiled step (rg.compile) computes it again at every replay: a mask or an
    accuracy counted inside the step follows each call's values."""

    @staticmethod
    def forward(ctx, *arrays, fn, **options):
        return fn(*arrays, **options)

    @staticmethod
    def backward(ctx, grad):
        return (None,) * len(ctx.needs_input_grad)


class Where(Function):
    @staticmethod
    def forward(ctx, condition, a, b):
        ctx.save_for_backward(condition)
        return np.where(condition, a, b)

    @staticmethod
    def backward(ctx, grad):
        (condition,) = ctx.saved_tensors
        zero = np.zeros((), dtype=grad.dtype)
        return (None,
                np.where(condition, grad, zero) if ctx.needs_input_grad[1] else None,
                np.where(condition, zero, grad) if ctx.needs_input_grad[2] else None)


class Cast(Function):
    @staticmethod
    def forward(ctx, x, dtype):
        return x.astype(dtype, copy=x.dtype != dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad    # the engine casts it back to the input's dtype


class Clone(Function):
    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, grad):
        return grad


def clamp(x, min=None, max=None):
    """Limit values to [min, max]; bounds may be numbers or tensors. The gradient passes inside."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    return Clamp.apply(x, min, max)
