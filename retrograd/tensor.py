"""`Tensor`: a NumPy array that remembers how it was made, so gradients can flow back through it.

The class is thin on purpose: each operator and method calls an op from `retrograd.ops`, where forward
and backward live side by side. Data lives in `.data` (a NumPy array); `.grad` is a Tensor or None.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from . import dtypes

_AXIS_ALIASES = ("axis", "keepdims")

# Counts in-place writes to tensors. A graph node remembers its value when it is made; if it has
# not moved by backward time, nothing the node saved can have been overwritten.
WRITE_CLOCK = [0]


class Tensor:
    """An n-dimensional array with reverse-mode automatic differentiation.

    >>> x = rg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad                    # dy/dx = 2x
    tensor([[2., 4.],
            [6., 8.]])
    """

    __slots__ = ("data", "grad", "requires_grad", "grad_fn", "_version", "_hooks", "_base",
                 "__weakref__")
    __array_priority__ = 1000  # so ndarray <op> Tensor defers to Tensor's reflected operator

    def __init__(self, data: Any, dtype: Any = None, requires_grad: bool = False):
        self.data = dtypes.as_array(data.data if isinstance(data, Tensor) else data, dtype)
        self.grad = None
        self.grad_fn = None
        self._version = None
        self._hooks = None
        self._base = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # -- attributes ---------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def T(self) -> "Tensor":
        return Permute.apply(self, dims=tuple(range(self.ndim - 1, -1, -1)))

    @property
    def mT(self) -> "Tensor":
        return self.transpose(-2, -1)

    def size(self, dim: int | None = None):
        return self.data.shape if dim is None else self.data.shape[dim]

    def numel(self) -> int:
        return self.data.size

    def dim(self) -> int:
        return self.data.ndim

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    # -- conversion ---------------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The underlying array (shared memory, like torch's `.numpy()`)."""
        if self.requires_grad:
            raise RuntimeError("numpy(): can't call numpy() on a tensor that requires grad; "
                               "use tensor.detach().numpy()")
        return self.data

    def __array__(self, dtype=None, copy=None):
        """NumPy's protocol: np.asarray(t) is t's memory, no copy (unless a dtype change needs one)."""
        if dtype is not None and dtype != self.data.dtype:
            if copy is False:
                raise ValueError(f"__array__: converting {self.data.dtype} to {np.dtype(dtype)} "
                                 "needs a copy, but copy=False was asked for")
            return self.data.astype(dtype)
        return self.data.copy() if copy else self.data

    def __dlpack__(self, **kwargs):
        """DLPack export (the array-API protocol): torch.from_dlpack(t) and np.from_dlpack(t) share
        this tensor's memory. Keyword arguments (stream, max_version, dl_device, copy) pass through
        to NumPy's own __dlpack__."""
        if self.requires_grad:
            raise RuntimeError("__dlpack__: can't export a tensor that requires grad (its "
                               "consumer would not see the graph); use tensor.detach() first")
        return self.data.__dlpack__(**{k: v for k, v in kwargs.items() if v is not None})

    def __dlpack_device__(self):
        return self.data.__dlpack_device__()

    def item(self) -> float | int | bool:
        if self.data.size != 1:
            raise ValueError(f"item(): only a tensor with one element can be converted to a Python "
                             f"scalar, this one has shape {self.data.shape}")
        return self.data.item()

    def tolist(self) -> Any:
        return self.data.tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise RuntimeError(f"the truth value of a tensor of shape {self.data.shape} is "
                               "ambiguous; use .any() or .all()")
        return bool(self.data)

    def __index__(self) -> int:
        if self.data.dtype.kind not in "iub" or self.data.size != 1:
            raise TypeError("only integer tensors of a single element can be used as an index")
        return int(self.data)

    __hash__ = object.__hash__   # identity, at C speed (tensors key the optimizer's state)

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="tensor(", precision=4,
                               floatmode=_float_mode(self.data))
        extras = []
        if self.data.dtype not in (np.float32, np.int64, np.bool_):
            extras.append(f"dtype={dtypes.name(self.data.dtype)}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn={self.grad_fn!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    def astype(self, dtype: Any) -> "Tensor":
        return Cast.apply(self, dtype=dtypes.resolve(dtype))

    def to(self, *args: Any, dtype: Any = None, device: Any = None, copy: bool = False) -> "Tensor":
        """PyTorch's `to`: a dtype and/or a device. Only the CPU exists here, so "cpu" is accepted
        and any other device is an error. `t.to(rg.float64)`, `t.to("cpu")`, `t.to(other)`."""
        for a in args:
            if isinstance(a, Tensor):
                dtype = a.dtype if dtype is None else dtype
            elif isinstance(a, str) and a.split(":")[0] in ("cpu", "cuda", "mps", "xpu", "meta"):
                device = a
            else:
                dtype = a
        if device is not None and str(device).split(":")[0] != "cpu":
            raise ValueError(f"to: retrograd runs on the CPU only; got device {device!r}")
        if dtype is None or dtypes.resolve(dtype) == self.dtype:
            return self.clone() if copy else self
        return self.astype(dtype)

    def cpu(self) -> "Tensor":
        return self

    def float(self) -> "Tensor":
        return self.astype(np.float32)

    def double(self) -> "Tensor":
        return self.astype(np.float64)

    def long(self) -> "Tensor":
        return self.astype(np.int64)

    def int(self) -> "Tensor":
        return self.astype(np.int32)

    def bool(self) -> "Tensor":
        return self.astype(np.bool_)

    # -- autograd -----------------------------------------------------------------------------------
    def backward(self, gradient: Any = None, retain_graph: bool = False,
                 create_graph: bool = False) -> None:
        """Backpropagate: add d(self)/d(leaf) to the `.grad` of every leaf that requires grad.

        `gradient` is dL/d(self); it may be omitted when self holds one element (a loss).
        """
        autograd.backward(self, gradient, retain_graph, create_graph)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and self.data.dtype.kind != "f":
            raise RuntimeError(f"requires_grad: only floating-point tensors can require gradients, "
                               f"this one has dtype {dtypes.name(self.data.dtype)} "
                               "(convert it with .float() first)")
        if not requires_grad and self.grad_fn is not None:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor; use detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def detach(self) -> "Tensor":
        """A tensor sharing this one's data, cut from the graph (no grad_fn, no requires_grad)."""
        out = Tensor.__new__(Tensor)
        out.data, out.grad, out.requires_grad, out.grad_fn = self.data, None, False, None
        out._version, out._hooks, out._base = self._version_cell(), None, None
        return out

    def detach_(self) -> "Tensor":
        self.grad_fn = None
        self.requires_grad = False
        return self

    def clone(self) -> "Tensor":
        return Clone.apply(self)

    def register_hook(self, hook: Callable) -> "autograd.RemovableHandle":
        """Call `hook(grad)` when the gradient for this tensor is computed; a returned tensor replaces it.

        >>> h = x.register_hook(lambda g: g * 0.5)   # halve the gradient flowing into x
        >>> h.remove()
        """
        if not self.requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that doesn't "
                               "require grad")
        if self.grad_fn is not None:
            return self.grad_fn.register_hook(hook)
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(hook)
        return autograd.RemovableHandle(self._hooks, hook)

    def retain_grad(self) -> None:
        """Keep `.grad` on this non-leaf tensor after backward (leaves always keep it)."""
        if self.grad_fn is None:
            if not self.requires_grad:
                raise RuntimeError("retain_grad: can't retain the grad of a tensor that doesn't "
                                   "require grad")
            return
        self.grad_fn._retain = weakref.ref(self)

    def _version_cell(self) -> list:
        """The tensor's version: a one-element list shared with its views, holding the value of the
        write clock at the tensor's last in-place write (0 if never written)."""
        if self._version is None:
            self._version = [0]
        return self._version

    def _mark_modified(self) -> None:
        """Record an in-place write to this tensor's memory, so a graph that saved the old values
        refuses to backward instead of returning a wrong gradient."""
        now = WRITE_CLOCK[0] = WRITE_CLOCK[0] + 1
        if self._version is None:
            self._version = [now]
        else:
            self._version[0] = now

    # -- arithmetic ---------------------------------------------------------------------------------
    def __add__(self, other): return Add.apply(self, other)
    def __radd__(self, other): return Add.apply(other, self)
    def __sub__(self, other): return Sub.apply(self, other)
    def __rsub__(self, other): return Sub.apply(other, self)
    def __mul__(self, other): return Mul.apply(self, other)
    def __rmul__(self, other): return Mul.apply(other, self)
    def __truediv__(self, other): return Div.apply(self, other)
    def __rtruediv__(self, other): return Div.apply(other, self)
    def __pow__(self, other): return Pow.apply(self, other)
    def __rpow__(self, other): return Pow.apply(other, self)
    def __matmul__(self, other): return MatMul.apply(self, other)
    def __rmatmul__(self, other): return MatMul.apply(other, self)
    def __neg__(self): return Neg.apply(self)
    def __pos__(self): return self
    def __abs__(self): return Abs.apply(self)

    def __iadd__(self, other): return inplace.apply_inplace(self, Add, other, np.add, "+=")
    def __isub__(self, other): return inplace.apply_inplace(self, Sub, other, np.subtract, "-=")
    def __imul__(self, other): return inplace.apply_inplace(self, Mul, other, np.multiply, "*=")
    def __itruediv__(self, other):
        return inplace.apply_inplace(self, Div, other, np.divide, "/=")

    def add_(self, other): return self.__iadd__(other)
    def sub_(self, other): return self.__isub__(other)
    def mul_(self, other): return self.__imul__(other)
    def div_(self, other): return self.__itruediv__(other)

    def zero_(self) -> "Tensor":
        return inplace.fill_(self, 0)

    def fill_(self, value: float) -> "Tensor":
        return inplace.fill_(self, value)

    def copy_(self, src: Any) -> "Tensor":
        return inplace.copy_(self, src)

    def __setitem__(self, index, value) -> None:
        inplace.setitem(self, index, value)

    # -- comparisons and tests: bool tensors, never part of the graph (ops, for rg.compile) -------
    def __eq__(self, other): return _compare(np.equal, self, other)
    def __ne__(self, other): return _compare(np.not_equal, self, other)
    def __lt__(self, other): return _compare(np.less, self, other)
    def __le__(self, other): return _compare(np.less_equal, self, other)
    def __gt__(self, other): return _compare(np.greater, self, other)
    def __ge__(self, other): return _compare(np.greater_equal, self, other)
    def __invert__(self): return Predicate.apply(self, fn=np.invert)
    def __and__(self, other): return _compare(np.logical_and, self, other)
    def __or__(self, other): return _compare(np.logical_or, self, other)
    def __xor__(self, other): return _compare(np.logical_xor, self, other)

    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__

    def any(self, dim=None, keepdim=False, **aliases):
        dim, keepdim = _reduce_args(dim, keepdim, aliases)
        return Predicate.apply(self, fn=np.any, axis=dim, keepdims=keepdim)

    def all(self, dim=None, keepdim=False, **aliases):
        dim, keepdim = _reduce_args(dim, keepdim, aliases)
        return Predicate.apply(self, fn=np.all, axis=dim, keepdims=keepdim)

    def isnan(self): return Predicate.apply(self, fn=np.isnan)
    def isinf(self): return Predicate.apply(self, fn=np.isinf)
    def isfinite(self): return Predicate.apply(self, fn=np.isfinite)

    # -- indexing and shape ---------------------------------------------------------------------------
    def __getitem__(self, index): return ops_index.getitem(self, index)

    def reshape(self, *shape): return Reshape.apply(self, shape=_shape_arg(shape))
    view = reshape

    def view_as(self, other): return self.reshape(other.shape)
    reshape_as = view_as

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        return ops_shape.flatten(self, start_dim, end_dim)

    def transpose(self, dim0: int, dim1: int): return ops_shape.transpose(self, dim0, dim1)
    swapaxes = swapdims = transpose

    def t(self):
        if self.ndim > 2:
            raise ValueError(f"t(): expects a tensor with <= 2 dimensions, got {self.ndim}")
        return self.T

    def permute(self, *dims): return Permute.apply(self, dims=_shape_arg(dims))
    def squeeze(self, dim=None, **aliases): return ops_shape.squeeze(self, _dim(dim, aliases))
    def unsqueeze(self, dim: int): return ops_shape.unsqueeze(self, dim)
    def expand(self, *shape): return ops_shape.expand(self, _shape_arg(shape))
    def broadcast_to(self, shape): return ops_shape.expand(self, tuple(shape))
    def expand_as(self, other): return ops_shape.expand(self, other.shape)
    def repeat(self, *repeats): return Tile.apply(self, reps=_shape_arg(repeats))
    def tile(self, *reps):
        reps = _shape_arg(reps)      # fewer counts than dimensions: leading dimensions repeat once
        return Tile.apply(self, reps=(1,) * (self.ndim - len(reps)) + reps)
    def split(self, split_size, dim: int = 0): return ops_index.split(self, split_size, dim)
    def chunk(self, chunks: int, dim: int = 0): return ops_index.chunk(self, chunks, dim)
    def contiguous(self): return self

    # gathering along a dimension (retrograd/ops/scatter_gather.py)
    def gather(self, dim: int, index): return ops_gather.gather(self, dim, index)
    def take_along_dim(self, indices, dim=None):
        return ops_gather.take_along_dim(self, indices, dim)
    def index_select(self, dim: int, index): return ops_gather.index_select(self, dim, index)
    def scatter(self, dim: int, index, src=None, value=None):
        return ops_gather.scatter(self, dim, index, src, value=value)
    def scatter_add(self, dim: int, index, src):
        return ops_gather.scatter_add(self, dim, index, src)
    def masked_fill(self, mask, value): return ops_gather.masked_fill(self, mask, value)
    def narrow(self, dim: int, start: int, length: int):
        return ops_gather.narrow(self, dim, start, length)
    def select(self, dim: int, index: int): return ops_gather.select(self, dim, index)

    # -- elementwise math -----------------------------------------------------------------------------
    def exp(self): return Exp.apply(self)
    def log(self): return Log.apply(self)
    def log1p(self): return Log1p.apply(self)
    def sqrt(self): return Sqrt.apply(self)
    def rsqrt(self): return ops_elementwise.Rsqrt.apply(self)
    def sign(self): return ops_elementwise.Sign.apply(self)
    def abs(self): return Abs.apply(self)
    def sin(self): return Sin.apply(self)
    def cos(self): return Cos.apply(self)
    def tanh(self): return Tanh.apply(self)
    def sigmoid(self): return Sigmoid.apply(self)
    def relu(self): return ReLU.apply(self)
    def neg(self): return Neg.apply(self)
    def square(self): return Mul.apply(self, self)
    def pow(self, exponent): return Pow.apply(self, exponent)
    def matmul(self, other): return MatMul.apply(self, other)
    def bmm(self, mat2): return ops_linalg.BMM.apply(self, mat2)
    def outer(self, vec2): return ops_linalg.Outer.apply(self, vec2)
    def maximum(self, other): return Maximum.apply(self, other)
    def minimum(self, other): return Minimum.apply(self, other)
    def clamp(self, min=None, max=None): return ops_elementwise.clamp(self, min, max)
    clip = clamp

    # -- reductions -----------------------------------------------------------------------------------
    def sum(self, dim=None, keepdim=False, **aliases):
        if dim is None and not keepdim and not aliases:
            return Sum.apply(self)       # a loss's total: the op's defaults, no options to pass
        dim, keepdim = _reduce_args(dim, keepdim, aliases)
        return Sum.apply(self, dim=dim, keepdim=keepdim)

    def mean(self, dim=None, keepdim=False, **aliases):
        if dim is None and not keepdim and not aliases:
            return Mean.apply(self)
        dim, keepdim = _reduce_args(dim, keepdim, aliases)
        return Mean.apply(self, dim=dim, keepdim=keepdim)

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None, **aliases):
        dim, keepdim = _reduce_args(dim, keepdim, aliases)
        return Var.apply(self, dim=dim, keepdim=keepdim,
                         correction=ops_reduce.correction(unbiased, correction))

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None, **aliases):
        return self.var(dim, unbiased, keepdim, correction=correction, **aliases).sqrt()

    def max(self, dim=None, keepdim=False, **aliases):
        return ops_reduce.max_min(self, dim, keepdim, aliases, "max")

    def min(self, dim=None, keepdim=False, **aliases):
        return ops_reduce.max_min(self, dim, keepdim, aliases, "min")

    def amax(self, dim=None, keepdim=False, **aliases):
        dim, keepdim = _reduce_args(dim, keepdim, aliases)
        return AMax.apply(self, dim=dim, keepdim=keepdim)

    def amin(self, dim=None, keepdim=False, **aliases):
        dim, keepdim = _reduce_args(dim, keepdim, aliases)
        return AMin.apply(self, dim=dim, keepdim=keepdim)

    def argmax(self, dim=None, keepdim=False, **aliases):
        return ops_reduce.arg_reduce(np.argmax, self, dim, keepdim, aliases)

    def argmin(self, dim=None, keepdim=False, **aliases):
        return ops_reduce.arg_reduce(np.argmin, self, dim, keepdim, aliases)

    def prod(self, dim=None, keepdim=False, **aliases):
        return ops_reduce.prod(self, dim, keepdim, aliases)

    def norm(self, p=2, dim=None, keepdim=False):
        return ops_reduce.norm(self, p, dim, keepdim)

    def logsumexp(self, dim=None, keepdim=False, **aliases):
        dim, keepdim = _reduce_args(dim, keepdim, aliases)
        return LogSumExp.apply(self, dim=dim, keepdim=keepdim)

    def softmax(self, dim: int = -1, **aliases):
        return Softmax.apply(self, dim=_dim(dim, aliases))

    def log_softmax(self, dim: int = -1, **aliases):
        return LogSoftmax.apply(self, dim=_dim(dim, aliases))

    # -- ordering, scans and triangles (retrograd/ops/order.py) --------------------------------------
    def sort(self, dim: int = -1, descending: bool = False, stable: bool = False):
        return ops_order.sort(self, dim, descending, stable)

    def argsort(self, dim: int = -1, descending: bool = False, stable: bool = False):
        return ops_order.argsort(self, dim, descending, stable)

    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
        return ops_order.topk(self, k, dim, largest, sorted)

    def flip(self, *args, dims=None):
        """x.flip(0, 1), x.flip((0, 1)) or x.flip(dims=(0, 1))."""
        return ops_order.flip(self, _shape_arg(args) if dims is None else dims)

    def roll(self, shifts, dims=None): return ops_order.roll(self, shifts, dims)
    def cumsum(self, dim: int): return ops_order.cumsum(self, dim)
    def cumprod(self, dim: int): return ops_order.cumprod(self, dim)
    def tril(self, diagonal: int = 0): return ops_order.tril(self, diagonal)
    def triu(self, diagonal: int = 0): return ops_order.triu(self, diagonal)


# -- argument helpers shared by Tensor methods and the functional API --------------------------------

def _dim(dim, aliases: dict):
    """PyTorch's `dim` with NumPy's `axis` accepted as an alias."""
    if aliases:
        unknown = set(aliases) - {"axis"}
        if unknown:
            raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")
        if dim is not None and dim != -1:
            raise TypeError("pass either dim or axis, not both")
        dim = aliases["axis"]
    return tuple(dim) if isinstance(dim, list) else dim


def _reduce_args(dim, keepdim, aliases: dict):
    """(dim, keepdim) from PyTorch's names or NumPy's (`axis`, `keepdims`)."""
    if aliases:
        unknown = set(aliases) - set(_AXIS_ALIASES)
        if unknown:
            raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")
        if "axis" in aliases:
            if dim is not None:
                raise TypeError("pass either dim or axis, not both")
            dim = aliases["axis"]
        keepdim = aliases.get("keepdims", keepdim)
    return (tuple(dim) if isinstance(dim, list) else dim), bool(keepdim)


def _shape_arg(shape: tuple) -> tuple:
    """Accept both f(2, 3) and f((2, 3)), as PyTorch does."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(int(s) for s in shape)


def _float_mode(a: np.ndarray) -> str:
    """torch's print style: whole numbers as `1.`, anything else with four decimals (`1.5000`)."""
    if a.dtype.kind != "f":
        return "maxprec"
    finite = np.abs(a[np.isfinite(a)]).astype(np.float64)   # float16 would overflow at 1e8
    nonzero = finite[finite != 0]
    # the range in which NumPy (like torch) switches to scientific notation, digits fixed there too
    wide = nonzero.size > 0 and (nonzero.max() >= 1e8 or nonzero.max() > 1e3 * nonzero.min())
    return "maxprec" if np.array_equal(finite, np.round(finite)) and not wide else "fixed"


def _wrap(array: Any) -> Tensor:
    out = Tensor.__new__(Tensor)
    out.data = array if type(array) is np.ndarray else np.asarray(array)
    out.grad, out.requires_grad, out.grad_fn = None, False, None
    out._version, out._hooks, out._base = None, None, None
    return out


def _tensor(x: Any) -> Tensor:
    """x itself if it is a Tensor, else a new Tensor holding it (an op's non-tensor argument)."""
    return x if isinstance(x, Tensor) else Tensor(x)


def _compare(ufunc, a: Tensor, b: Any) -> Tensor:
    return Predicate.apply(a, b, fn=ufunc)


import weakref  # noqa: E402

from . import autograd, inplace  # noqa: E402
from .ops import elementwise as ops_elementwise  # noqa: E402
from .ops import index as ops_index  # noqa: E402
from .ops import linalg as ops_linalg  # noqa: E402
from .ops import order as ops_order  # noqa: E402
from .ops import scatter_gather as ops_gather  # noqa: E402
from .ops import reduce as ops_reduce  # noqa: E402
from .ops import shape as ops_shape  # noqa: E402
from .ops.arithmetic import Add, Div, Mul, Neg, Pow, Sub  # noqa: E402
from .ops.elementwise import (Abs, Cast, Clone, Cos, Exp, Log, Log1p, Maximum,  # noqa: E402
                              Minimum, Predicate, ReLU, Sigmoid, Sin, Sqrt, Tanh)
from .ops.linalg import MatMul  # noqa: E402
from .ops.reduce import (AMax, AMin, LogSoftmax, LogSumExp, Mean, Softmax, Sum,  # noqa: E402
                         Var)
from .ops.shape import Permute, Reshape, Tile  # noqa: E402

# by name: `from .ops import gather` would give the function rg.gather, not the module
