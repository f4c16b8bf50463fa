"""Ops written as Numba source, for `rg.compile(..., backend="numba")` (see numba_backend.py).

A lowering turns one recorded op into lines of a Numba function: `forward(op)` defines `op.out`,
`backward(op, g, grads)` defines the gradient names in `grads` (input index -> name) from the
upstream gradient `g`. Each follows the NumPy forward and backward of its op in ops/ (the same
formulas, so the same values up to the last bit where Numba's loops and NumPy's differ: a sum's
order of additions, an exp's last ulp). A value of shape () is a Numba scalar, not a 0-d array.
An op whose arguments a lowering does not cover raises `Unlowerable`: the step is then replayed
with NumPy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..ops import arithmetic, elementwise, linalg, loss, reduce


class Unlowerable(Exception):
    """The step does something the Numba backend has no lowering for (the message says what)."""


@dataclass
class Arg:
    """An op's argument: Numba source for it, and its shape and dtype (None for a Python number,
    whose `value` is then known)."""

    expr: str
    shape: tuple | None = None
    dtype: np.dtype | None = None
    value: Any = None

    def __str__(self) -> str:
        return self.expr

    @property
    def is_array(self) -> bool:
        return self.shape is not None


@dataclass
class Op:
    """One recorded op as its lowering sees it."""

    cls: type
    out: str
    shape: tuple
    dtype: np.dtype
    args: list[Arg]
    attrs: dict = field(default_factory=dict)      # what forward kept on its node
    keywords: dict = field(default_factory=dict)   # keyword -> its expression in the recording

    def number(self, value: Any) -> str:
        """A Python number as a constant of the op's dtype (Numba would make a float64 of it, and
        NumPy makes it the array's dtype)."""
        return f"np.{self.dtype.name}({value!r})"

    def operand(self, arg: Arg) -> str:
        return str(arg) if arg.is_array else self.number(arg.value)

    def like_out(self, name: str) -> Arg:
        """An array of the op's shape and dtype: its output, or the gradient arriving at it."""
        return Arg(name, self.shape, self.dtype)

    def elementwise(self, template: str, **operands: Arg) -> str:
        """`template` with the operands filled in (numbers as constants of the op's dtype). When
        every array operand has the op's shape, of 2 or more dims, over their flat views and
        reshaped back: Numba's loops over 2-D arrays ran ~3x slower than over 1-D ones (ReLU,
        its backward and a multiply on (32, 256) float32: 49 against 13 us; NumPy 32)."""
        arrays = [a for a in operands.values() if a.is_array and a.shape != ()]
        flat = len(self.shape) >= 2 and all(a.shape == self.shape for a in arrays)
        filled = {k: (f"{a}.ravel()" if flat and a in arrays else self.operand(a))
                  for k, a in operands.items()}
        expression = template.format(one=self.number(1), zero=self.number(0), **filled)
        return f"({expression}).reshape({self.shape})" if flat and arrays else expression


@dataclass
class Lowering:
    forward: Callable[[Op], list[str]]
    backward: Callable[[Op, str, dict], list[str]] | None = None
    keywords: tuple = ()        # keyword arguments it reads (through `Op.attrs`, as forward kept them)


LOWERINGS: dict[type, Lowering] = {}


def lowering(cls: type, keywords: tuple = ()) -> Callable:
    def register(pair: tuple) -> tuple:
        LOWERINGS[cls] = Lowering(*pair, keywords=keywords)
        return pair
    return register


def _lines(grads: dict, **by_index: str) -> list[str]:
    """`name = expression` for each wanted gradient; by_index maps "i<k>" to input k's."""
    return [f"{name} = {by_index[f'i{i}']}" for i, name in grads.items()]


# -- arithmetic ----------------------------------------------------------------------------------

def _binary(symbol: str) -> Callable[[Op], list[str]]:
    def forward(op: Op) -> list[str]:
        a, b = op.args
        return [f"{op.out} = " + op.elementwise(f"{{a}} {symbol} {{b}}", a=a, b=b)]
    return forward


def _gradients(**templates: str) -> Callable[[Op, str, dict], list[str]]:
    """backward from one template per input ("i0", "i1") in a, b (the inputs), out and g."""
    def backward(op: Op, g: str, grads: dict) -> list[str]:
        names = dict(zip("ab", op.args), out=op.like_out(op.out), g=op.like_out(g))
        return _lines(grads, **{i: op.elementwise(t, **names) for i, t in templates.items()})
    return backward


lowering(arithmetic.Add)((_binary("+"), lambda op, g, grads: _lines(grads, i0=g, i1=g)))
lowering(arithmetic.Sub)((_binary("-"), _gradients(i0="{g}", i1="-{g}")))
lowering(arithmetic.Mul)((_binary("*"), _gradients(i0="{g} * {b}", i1="{g} * {a}")))
lowering(arithmetic.Div)((_binary("/"), _gradients(i0="{g} / {b}", i1="-{g} * {out} / {b}")))
lowering(arithmetic.Neg)((lambda op: [f"{op.out} = " + op.elementwise("-{a}", a=op.args[0])],
                          _gradients(i0="-{g}")))


def _pow_forward(op: Op) -> list[str]:
    a, b = op.args
    if b.is_array or not a.is_array:
        raise Unlowerable("a power with a tensor exponent")
    if b.value == 2:
        return [f"{op.out} = " + op.elementwise("{a} * {a}", a=a)]   # NumPy's power for 2: a square
    return [f"{op.out} = " + op.elementwise("{a} ** {b}", a=a, b=b)]


def _pow_backward(op: Op, g: str, grads: dict) -> list[str]:
    a, b = op.args
    if b.value == 0:
        return _lines(grads, i0=f"np.zeros_like({a})")
    template = "{g} * ({a} + {a})" if b.value == 2 else "{g} * {b} * {a} ** {b1}"
    return _lines(grads, i0=op.elementwise(template, a=a, b=b, g=op.like_out(g),
                                           b1=Arg("", value=b.value - 1)))


lowering(arithmetic.Pow)((_pow_forward, _pow_backward))


# -- elementwise functions -----------------------------------------------------------------------

def _unary(expression: str) -> Callable[[Op], list[str]]:
    """forward of `out = expression` in x (the input), one and zero (of the op's dtype)."""
    def forward(op: Op) -> list[str]:
        return [f"{op.out} = " + op.elementwise(expression, x=op.args[0])]
    return forward


def _unary_backward(expression: str) -> Callable[[Op, str, dict], list[str]]:
    def backward(op: Op, g: str, grads: dict) -> list[str]:
        return _lines(grads, i0=op.elementwise(expression, g=op.like_out(g), x=op.args[0],
                                               out=op.like_out(op.out)))
    return backward


for _cls, _fwd, _bwd in [
        (elementwise.Exp, "np.exp({x})", "{g} * {out}"),
        (elementwise.Log, "np.log({x})", "{g} / {x}"),
        (elementwise.Tanh, "np.tanh({x})", "{g} * ({one} - {out} * {out})"),
        # 1 / (1 + e^-x) is within an ulp of SciPy's expit; for x < -88 (float32) e^-x is inf and
        # the quotient 0, the right limit
        (elementwise.Sigmoid, "{one} / ({one} + np.exp(-{x}))", "{g} * {out} * ({one} - {out})"),
        (elementwise.ReLU, "np.maximum({x}, {zero})", "np.where({out} > {zero}, {g}, {zero})")]:
    lowering(_cls)((_unary(_fwd), _unary_backward(_bwd)))


# -- reductions ----------------------------------------------------------------------------------

def _axes(op: Op, ndim: int) -> tuple[int, ...]:
    """The reduced axes, from the dim forward kept (checked there)."""
    return reduce._axes(op.attrs.get("dim"), ndim)


def _summed(x: Arg, axes: tuple, keepdim: bool) -> str:
    """Source summing x over `axes` (a scalar when all of them and not keepdim)."""
    kept = tuple(1 if i in axes else n for i, n in enumerate(x.shape))
    if len(axes) == len(x.shape):
        total = f"{x}.sum()"
        return f"np.full({kept}, {total}, np.{x.dtype.name})" if keepdim else total
    expr = str(x)
    for axis in reversed(axes):         # the highest first: the lower axes keep their numbers
        expr = f"{expr}.sum(axis={axis})"
    return f"{expr}.reshape({kept})" if keepdim else expr


def _spread(g: str, x: Arg, axes: tuple, keepdim: bool, scale: str = "") -> str:
    """Source for g (the reduced gradient) copied back over x's shape."""
    kept = tuple(1 if i in axes else n for i, n in enumerate(x.shape))
    if len(axes) == len(x.shape) and not keepdim:
        return f"np.full({x.shape}, {g}{scale}, np.{x.dtype.name})"
    if not keepdim:
        g = f"{g}.reshape({kept})"
    return f"np.broadcast_to({g}{scale}, {x.shape}).copy()"


def _sum_forward(op: Op) -> list[str]:
    x = op.args[0]
    if not x.is_array or not x.shape:
        raise Unlowerable("a sum of a scalar")
    return [f"{op.out} = {_summed(x, _axes(op, len(x.shape)), op.attrs.get('keepdim', False))}"]


def _sum_backward(op: Op, g: str, grads: dict) -> list[str]:
    x = op.args[0]
    return _lines(grads, i0=_spread(g, x, _axes(op, len(x.shape)), op.attrs.get("keepdim", False)))


def _count(op: Op) -> int:
    x = op.args[0]
    return math.prod(x.shape[a] for a in _axes(op, len(x.shape)))


def _mean_forward(op: Op) -> list[str]:
    (line,) = _sum_forward(op)
    return [f"{line} / {op.number(_count(op))}"]


def _mean_backward(op: Op, g: str, grads: dict) -> list[str]:
    x = op.args[0]
    return _lines(grads, i0=_spread(g, x, _axes(op, len(x.shape)), op.attrs.get("keepdim", False),
                                    f" / {op.number(_count(op))}"))


lowering(reduce.Sum, ("dim", "keepdim"))((_sum_forward, _sum_backward))
lowering(reduce.Mean, ("dim", "keepdim"))((_mean_forward, _mean_backward))


# -- products ------------------------------------------------------------------------------------

def _two_d(op: Op, *args: Arg) -> None:
    if any(not a.is_array or len(a.shape) != 2 for a in args):
        raise Unlowerable(f"{op.cls.__name__} of other than 2-D arrays")


def _linear_forward(op: Op) -> list[str]:
    x, w = op.args[:2]
    _two_d(op, x, w)
    bias = f" + {op.args[2]}" if len(op.args) > 2 and op.args[2].is_array else ""
    return [f"{op.out} = {x} @ {w}.T{bias}"]


def _linear_backward(op: Op, g: str, grads: dict) -> list[str]:
    x, w = op.args[:2]
    return _lines(grads, i0=f"{g} @ {w}", i1=f"{g}.T @ {x}", i2=f"{g}.sum(axis=0)")


def _matmul_forward(op: Op) -> list[str]:
    a, b = op.args
    _two_d(op, a, b)
    return [f"{op.out} = {a} @ {b}"]


def _matmul_backward(op: Op, g: str, grads: dict) -> list[str]:
    a, b = op.args
    return _lines(grads, i0=f"{g} @ {b}.T", i1=f"{a}.T @ {g}")


lowering(linalg.Linear)((_linear_forward, _linear_backward))
lowering(linalg.MatMul)((_matmul_forward, _matmul_backward))


# -- losses --------------------------------------------------------------------------------------

def _mse_forward(op: Op) -> list[str]:
    x, t = op.args[:2]
    reduction = op.attrs.get("reduction")
    if op.attrs.get("weight", 0) is not None or reduction not in ("mean", "sum") \
            or not t.is_array or t.dtype != x.dtype:
        raise Unlowerable("mse_loss with a weight, reduction='none' or a target of another dtype")
    d = f"{op.out}_d"
    total = f"({d} * {d}).sum()"
    if reduction == "mean":
        total += f" / {op.number(math.prod(x.shape))}"
    return [f"{d} = {x} - {t}", f"{op.out} = {total}"]


def _mse_backward(op: Op, g: str, grads: dict) -> list[str]:
    x = op.args[0]
    upstream = g if op.attrs["reduction"] == "sum" else f"({g} / {op.number(math.prod(x.shape))})"
    gx = f"(({op.number(2)} * {upstream}) * {op.out}_d)"
    return _lines(grads, i0=gx, i1=f"-{gx}")


lowering(loss.MSE, ("weight", "reduction"))((_mse_forward, _mse_backward))


def _cross_entropy_forward(op: Op) -> list[str]:
    x, targets = op.args
    if not (isinstance(targets.value, tuple) and targets.value[0] == "class targets") \
            or len(x.shape) != 2 or op.keywords.get("weight", "None") != "None" \
            or op.attrs.get("eps") or op.attrs.get("reduction") not in ("mean", "sum"):
        raise Unlowerable("cross_entropy with class weights, label smoothing, reduction='none' or "
                          "other than (N, C) logits")
    mean = op.attrs["reduction"] == "mean"
    return [(f"{op.out}, {op.out}_e, {op.out}_s, {op.out}_n = "
             f"kernels.cross_entropy_forward({x}, {targets}, {targets.value[1]}, {mean})")]


def _cross_entropy_backward(op: Op, g: str, grads: dict) -> list[str]:
    targets = op.args[1]
    mean = op.attrs["reduction"] == "mean"
    return _lines(grads, i0=f"kernels.cross_entropy_backward({op.out}_e, {op.out}_s, {targets}, "
                            f"{targets.value[1]}, {g}, {op.out}_n, {mean})")


lowering(loss.CrossEntropyIndices, ("weight", "reduction", "label_smoothing"))(
    (_cross_entropy_forward, _cross_entropy_backward))
