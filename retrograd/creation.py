"""Making tensors: from data, filled, ranges, and random draws (PyTorch's signatures)."""
from __future__ import annotations

from typing import Any

import numpy as np

from . import dtypes
from .autograd import array_function
from .random import Generator, rng
from .tensor import Tensor, _shape_arg


def _new(array: np.ndarray, requires_grad: bool = False) -> Tensor:
    t = Tensor.__new__(Tensor)
    t.data, t.grad, t.grad_fn, t.requires_grad = array, None, None, False
    t._version, t._hooks, t._base = None, None, None
    return t.requires_grad_(True) if requires_grad else t


def _float_dtype(dtype: Any) -> np.dtype:
    return dtypes.get_default_dtype() if dtype is None else dtypes.resolve(dtype)


def _like_dtype(t: Tensor, dtype: Any) -> np.dtype:
    # resolved by retrograd's names: "float" is float32 here, float64 to NumPy
    return t.dtype if dtype is None else dtypes.resolve(dtype)


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of `data` (nested lists, numbers, arrays or tensors).

    >>> rg.tensor([[0., 1.], [1., 0.]], requires_grad=True)
    """
    return Tensor(data, dtype=dtype, requires_grad=requires_grad)


def as_tensor(data: Any, dtype: Any = None) -> Tensor:
    """Like `tensor`, but shares memory with a NumPy array (or returns a Tensor) when it can."""
    if isinstance(data, Tensor) and (dtype is None or data.dtype == dtypes.resolve(dtype)):
        return data
    if isinstance(data, np.ndarray) and (dtype is None or data.dtype == dtypes.resolve(dtype)):
        return _new(data)
    return Tensor(data, dtype=dtype)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with `array` (writes to one show in the other)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    return _new(array)


def from_dlpack(obj: Any) -> Tensor:
    """A tensor sharing memory with any DLPack producer on the CPU (a torch tensor, a NumPy or
    JAX array, ...), through NumPy's `np.from_dlpack`: no copy.

    >>> t = rg.from_dlpack(torch.arange(3.0))     # writes to either show in the other
    """
    if isinstance(obj, Tensor):
        return obj
    try:
        array = np.from_dlpack(obj)
    except (TypeError, AttributeError) as e:
        raise TypeError(f"from_dlpack: expected an object with __dlpack__ (e.g. a torch tensor), "
                        f"got {type(obj).__name__}: {e}") from None
    except BufferError as e:     # e.g. a torch tensor that requires grad, or on a GPU
        raise BufferError(f"from_dlpack: {e} (detach it, and move it to the CPU first)") from None
    return _new(array)


def zeros(*size, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _new(np.zeros(_shape_arg(size), _float_dtype(dtype)), requires_grad)


def ones(*size, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _new(np.ones(_shape_arg(size), _float_dtype(dtype)), requires_grad)


def empty(*size, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _new(np.empty(_shape_arg(size), _float_dtype(dtype)), requires_grad)


def full(size, fill_value: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    if dtype is None:
        dtype = dtypes.as_array(fill_value).dtype
    return _new(np.full(tuple(size), fill_value, dtypes.resolve(dtype)), requires_grad)


def zeros_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _new(np.zeros(t.shape, _like_dtype(t, dtype)), requires_grad)


def ones_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _new(np.ones(t.shape, _like_dtype(t, dtype)), requires_grad)


def full_like(t: Tensor, fill_value: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _new(np.full(t.shape, fill_value, _like_dtype(t, dtype)), requires_grad)


def arange(start: float, end: float | None = None, step: float = 1, dtype: Any = None,
           requires_grad: bool = False) -> Tensor:
    """Values in [start, end) spaced by step; integers give int64, floats the default float dtype."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        is_int = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = dtypes.int64 if is_int else dtypes.get_default_dtype()
    return _new(np.arange(start, end, step, dtype=dtypes.resolve(dtype)), requires_grad)


def linspace(start: float, end: float, steps: int, dtype: Any = None,
             requires_grad: bool = False) -> Tensor:
    return _new(np.linspace(start, end, steps, dtype=_float_dtype(dtype)), requires_grad)


def eye(n: int, m: int | None = None, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _new(np.eye(n, m, dtype=_float_dtype(dtype)), requires_grad)


def rand(*size, generator: Generator | None = None, dtype: Any = None,
         requires_grad: bool = False) -> Tensor:
    """Uniform draws from [0, 1). `rg.rand(2, 3)` and `rg.rand((2, 3))` both work."""
    return _new(_draw("random", _shape_arg(size), _float_dtype(dtype), generator), requires_grad)


def randn(*size, generator: Generator | None = None, dtype: Any = None,
          requires_grad: bool = False) -> Tensor:
    """Standard normal draws. `rg.randn(2, 3)` and `rg.randn((2, 3))` both work."""
    return _new(_draw("standard_normal", _shape_arg(size), _float_dtype(dtype), generator),
                requires_grad)


# Draws are `array_function`s: a compiled step (rg.compile) draws anew at each replay, from the
# generator as it is then (manual_seed replaces its NumPy generator), as the eager step would.

@array_function
def _draw(method: str, shape: tuple, dtype: np.dtype, generator: Generator | None) -> np.ndarray:
    """NumPy draws float32 and float64 only: float16 is drawn in float32 and rounded."""
    draw = getattr(rng(generator), method)
    if dtype in (np.float32, np.float64):
        return draw(shape, dtype=dtype)
    return draw(shape, dtype=np.float32).astype(dtype)


@array_function
def _integers(low: int, high: int, shape: tuple, dtype: np.dtype,
              generator: Generator | None) -> np.ndarray:
    return rng(generator).integers(low, high, size=shape).astype(dtype, copy=False)


@array_function
def _permutation(n: int, generator: Generator | None) -> np.ndarray:
    return rng(generator).permutation(n).astype(np.int64)


def randint(*args, size=None, generator: Generator | None = None, dtype: Any = None) -> Tensor:
    """Integers in [low, high): `randint(high, size)` or `randint(low, high, size)`, like PyTorch."""
    if size is not None:
        args = args + (tuple(size),)
    if len(args) == 2:
        low, (high, size) = 0, args
    elif len(args) == 3:
        low, high, size = args
    else:
        raise TypeError("randint: expected randint(high, size) or randint(low, high, size)")
    dtype = dtypes.int64 if dtype is None else dtypes.resolve(dtype)
    return _new(_integers(low, high, tuple(size), dtype, generator))


def rand_like(t: Tensor, generator: Generator | None = None) -> Tensor:
    return rand(t.shape, generator=generator, dtype=t.dtype)


def randn_like(t: Tensor, generator: Generator | None = None) -> Tensor:
    return randn(t.shape, generator=generator, dtype=t.dtype)


def randperm(n: int, generator: Generator | None = None) -> Tensor:
    return _new(_permutation(n, generator))
