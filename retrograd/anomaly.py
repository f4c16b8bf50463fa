"""Anomaly detection: find the op that first made a NaN or an infinity, forward or backward.

>>> with rg.autograd.detect_anomaly():
...     loss = model(x).log().sum()     # RuntimeError: Log produced NaN ... at train.py:12
...     loss.backward()

While the mode is on, every op checks its output, and records where in the user's code it was
called; the backward walk checks every gradient an op returns. The first op that turns finite
inputs into NaN/Inf raises a RuntimeError naming the op, its input shapes and that line of code.
Off (the default), the cost is one flag check per op and per backward walk.
"""
from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import numpy as np

from . import autograd
from .tensor import Tensor

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_STACK_LIMIT = 6     # frames of user code kept per op


def is_anomaly_enabled() -> bool:
    """True while anomaly detection is on."""
    return autograd._anomaly_mode


def set_detect_anomaly(mode: bool) -> None:
    """Turn anomaly detection on or off for the rest of the program (see `detect_anomaly`)."""
    mode = bool(mode)
    autograd._anomaly_mode = mode
    if mode and _check_forward not in autograd._apply_observers:
        autograd._apply_observers.append(_check_forward)
    elif not mode and _check_forward in autograd._apply_observers:
        autograd._apply_observers.remove(_check_forward)


class detect_anomaly:
    """Context manager (and decorator) that turns anomaly detection on for a block.

    Inside it, the first op whose output or whose gradient is NaN or infinite, while what it was
    given was finite, raises a RuntimeError naming the op, its input shapes and the line of your
    code that called it. Slow (a short stack is recorded per op): use it to debug, not to train.

    >>> with rg.autograd.detect_anomaly():
    ...     y = rg.tensor([-1.0], requires_grad=True).log()
    RuntimeError: anomaly: Log produced NaN in its forward output ...
    """

    def __init__(self, check_nan: bool = True):
        self.check_nan = bool(check_nan)

    def __enter__(self) -> None:
        self._previous = autograd._anomaly_mode
        set_detect_anomaly(self.check_nan)

    def __exit__(self, *exc: Any) -> None:
        set_detect_anomaly(self._previous)

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with detect_anomaly(self.check_nan):
                return fn(*args, **kwargs)
        return wrapper


# -- forward ---------------------------------------------------------------------------------------

def _user_stack() -> traceback.StackSummary:
    """The innermost frames outside the retrograd package (the user's code), innermost last."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
    # lookup_lines=False: source lines are read only if an error is reported
    stack = traceback.StackSummary.extract(traceback.walk_stack(frame), limit=_STACK_LIMIT,
                                           lookup_lines=False)
    stack.reverse()
    return stack


def _bad_kind(a: np.ndarray) -> str | None:
    """'NaN', 'Inf' or None for an array (non-float arrays are always fine)."""
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "fc":
        return None
    if np.isfinite(a).all():
        return None
    return "NaN" if np.isnan(a).any() else "Inf"


def _shapes(args: tuple) -> list:
    return [tuple(a.shape) if isinstance(a, (Tensor, np.ndarray)) else type(a).__name__
            for a in args]


def _where(stack) -> str:
    if not stack:
        return "  (no user code on the stack)"
    return "".join(traceback.format_list(stack)).rstrip()


def _check_forward(ctx, args: tuple, kwargs: dict, result: Tensor) -> None:
    """Called by Function.apply for every op while the mode is on."""
    stack = _user_stack()
    ctx.__dict__["_anomaly"] = (stack, _shapes(args))
    kind = _bad_kind(result.data)
    if kind is None:
        return
    inputs = [a.data if isinstance(a, Tensor) else a for a in args]
    if any(_bad_kind(a) for a in inputs if isinstance(a, np.ndarray)):
        return       # not this op's doing: it was handed NaN/Inf (e.g. an -inf attention mask)
    name = type(ctx).__name__
    raise RuntimeError(
        f"anomaly: {name} produced {kind} in its forward output (shape {tuple(result.shape)}) "
        f"from finite inputs of shapes {_shapes(args)}. The op was called from:\n{_where(stack)}")


# -- backward --------------------------------------------------------------------------------------

def check_backward(node, grad_in: np.ndarray, grads: tuple) -> None:
    """Called by the backward walk for every node while the mode is on."""
    for i, g in enumerate(grads):
        if g is None:
            continue
        kind = _bad_kind(g if isinstance(g, np.ndarray) else np.asarray(getattr(g, "data", g)))
        if kind is None or _bad_kind(grad_in) is not None:
            continue       # fine, or not this op's doing: the gradient it was handed was bad
        info = node.__dict__.get("_anomaly")
        if info is None:
            origin = ("The op was made while anomaly detection was off, so where it was called "
                      "is unknown: turn the mode on before the forward pass.")
        else:
            origin = (f"The op took inputs of shapes {info[1]} and was called from:\n"
                      f"{_where(info[0])}")
        raise RuntimeError(
            f"anomaly: {node.name()} (backward of {type(node).__name__}) returned {kind} in its "
            f"gradient for input {i} from a finite incoming gradient. {origin}")
