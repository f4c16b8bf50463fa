"""The functional API of the engine: `rg.exp(x)`, `rg.cat([a, b])`, `rg.softmax(x, dim=1)`, ...

Every function here is a thin front to an op class (forward and backward together) in this package.
"""
from __future__ import annotations

from typing import Sequence

from ..tensor import _dim, _reduce_args, _shape_arg
from ..tensor import _tensor as _t
from .arithmetic import Add, Div, Mul, Neg, Pow, Sub
from .elementwise import (ELU, GELU, Abs, Cos, Exp, LeakyReLU, Log, Log1p, Maximum, Minimum, ReLU,
                          Sigmoid, Sin, Softplus, Sqrt, Tanh, Where, clamp)
from .scatter_gather import (gather, index_select, masked_fill, narrow, scatter, scatter_add, select,
                     take_along_dim)
from .index import cat, chunk, pad, split, stack
from .linalg import bmm, einsum, linear, matmul, outer
from .order import argsort, cumprod, cumsum, flip, roll, sort, topk, tril, triu
from .reduce import LogSoftmax, LogSumExp, Softmax


def add(a, b): return Add.apply(a, b)
def sub(a, b): return Sub.apply(a, b)
def mul(a, b): return Mul.apply(a, b)
def div(a, b): return Div.apply(a, b)
def pow(a, b): return Pow.apply(a, b)  # noqa: A001 - PyTorch's name
def neg(x): return Neg.apply(x)
def square(x): return Mul.apply(x, x)
def exp(x): return Exp.apply(x)
def log(x): return Log.apply(x)
def log1p(x): return Log1p.apply(x)
def sqrt(x): return Sqrt.apply(x)
def rsqrt(x): return _t(x).rsqrt()
def sign(x): return _t(x).sign()
def abs(x): return Abs.apply(x)  # noqa: A001
def sin(x): return Sin.apply(x)
def cos(x): return Cos.apply(x)
def tanh(x): return Tanh.apply(x)
def sigmoid(x): return Sigmoid.apply(x)
def relu(x): return ReLU.apply(x)
def maximum(a, b): return Maximum.apply(a, b)
def minimum(a, b): return Minimum.apply(a, b)


def leaky_relu(x, negative_slope: float = 0.01):
    return LeakyReLU.apply(x, negative_slope=negative_slope)


def elu(x, alpha: float = 1.0):
    return ELU.apply(x, alpha=alpha)


def gelu(x, approximate: str = "none"):
    """Gaussian error linear unit: x * Phi(x); approximate='tanh' for the tanh form."""
    return GELU.apply(x, approximate=approximate)


def softplus(x, beta: float = 1.0, threshold: float = 20.0):
    return Softplus.apply(x, beta=beta, threshold=threshold)


clip = clamp


def where(condition, a, b):
    """Elementwise choice: a where condition holds, else b (numbers or tensors, broadcast)."""
    return Where.apply(_t(condition).data.astype(bool, copy=False), a, b)


def sum(x, dim=None, keepdim=False, **aliases): return _t(x).sum(dim, keepdim, **aliases)  # noqa
def mean(x, dim=None, keepdim=False, **aliases): return _t(x).mean(dim, keepdim, **aliases)
def amax(x, dim=None, keepdim=False, **aliases): return _t(x).amax(dim, keepdim, **aliases)
def amin(x, dim=None, keepdim=False, **aliases): return _t(x).amin(dim, keepdim, **aliases)
def max(x, dim=None, keepdim=False, **aliases): return _t(x).max(dim, keepdim, **aliases)  # noqa
def min(x, dim=None, keepdim=False, **aliases): return _t(x).min(dim, keepdim, **aliases)  # noqa
def argmax(x, dim=None, keepdim=False, **aliases): return _t(x).argmax(dim, keepdim, **aliases)
def argmin(x, dim=None, keepdim=False, **aliases): return _t(x).argmin(dim, keepdim, **aliases)


def prod(x, dim=None, keepdim=False, **aliases):
    """Product of all elements, or along one dimension.

    >>> rg.prod(rg.tensor([[1.0, 2.0], [3.0, 4.0]]), dim=1)     # tensor([ 2., 12.])
    """
    return _t(x).prod(dim, keepdim, **aliases)


def norm(x, p=2, dim=None, keepdim: bool = False):
    """The p-norm over `dim` (all elements by default); p a number (inf and 0 too) or 'fro'.

    >>> rg.norm(rg.tensor([[3.0, 4.0], [0.0, 0.0]]), dim=1)      # tensor([5., 0.])
    """
    return _t(x).norm(p, dim, keepdim)


def var(x, dim=None, unbiased=None, keepdim=False, *, correction=None, **aliases):
    return _t(x).var(dim, unbiased, keepdim, correction=correction, **aliases)


def std(x, dim=None, unbiased=None, keepdim=False, *, correction=None, **aliases):
    return _t(x).std(dim, unbiased, keepdim, correction=correction, **aliases)


def logsumexp(x, dim=None, keepdim=False, **aliases):
    """log(sum(exp(x))) computed stably (the maximum is factored out first)."""
    dim, keepdim = _reduce_args(dim, keepdim, aliases)
    return LogSumExp.apply(x, dim=dim, keepdim=keepdim)


def softmax(x, dim: int = -1, **aliases):
    """exp(x) / sum(exp(x)) along `dim`; stable for logits of any size."""
    return Softmax.apply(x, dim=_dim(dim, aliases))


def log_softmax(x, dim: int = -1, **aliases):
    return LogSoftmax.apply(x, dim=_dim(dim, aliases))


def reshape(x, *shape): return _t(x).reshape(*shape)
def flatten(x, start_dim: int = 0, end_dim: int = -1): return _t(x).flatten(start_dim, end_dim)
def transpose(x, dim0: int, dim1: int): return _t(x).transpose(dim0, dim1)
def permute(x, *dims): return _t(x).permute(*dims)
def squeeze(x, dim=None, **aliases): return _t(x).squeeze(dim, **aliases)
def unsqueeze(x, dim: int): return _t(x).unsqueeze(dim)
def broadcast_to(x, shape: Sequence[int]): return _t(x).broadcast_to(shape)


def tile(x, *reps):
    """Copies of x along each dimension; missing leading reps count as 1 (as in torch.tile)."""
    x, reps = _t(x), _shape_arg(reps)
    return x.tile((1,) * (x.ndim - len(reps)) + reps)


swapaxes = swapdims = transpose
concatenate = concat = cat

__all__ = [
    "add", "sub", "mul", "div", "pow", "neg", "square", "exp", "log", "log1p", "sqrt", "abs", "sin",
    "cos", "tanh", "sigmoid", "relu", "leaky_relu", "elu", "gelu", "softplus", "maximum", "minimum",
    "clamp", "clip", "where", "sum", "mean", "var", "std", "max", "min", "amax", "amin", "argmax",
    "argmin", "logsumexp", "softmax", "log_softmax", "matmul", "linear", "reshape", "flatten",
    "transpose", "swapaxes", "swapdims", "permute", "squeeze", "unsqueeze", "broadcast_to", "tile",
    "cat", "concatenate", "concat", "stack", "split", "chunk", "pad",
    "gather", "scatter", "scatter_add", "index_select", "take_along_dim", "masked_fill", "narrow",
    "select",
    "sort", "argsort", "topk", "flip", "roll", "cumsum", "cumprod", "tril", "triu",
    "einsum", "bmm", "outer", "prod", "norm", "sign", "rsqrt",
]
