"""retrograd: backpropagation done completely and well.

A NumPy-backed `Tensor` with reverse-mode automatic differentiation, and PyTorch's names on top:

>>> import retrograd as rg
>>> x = rg.tensor([1.0, 2.0, 3.0], requires_grad=True)
>>> loss = (x ** 2).sum()
>>> loss.backward()
>>> x.grad
tensor([2., 4., 6.])
"""
from .tensor import Tensor  # noqa: I001 - first: it wires the engine modules together
from . import dtypes
from .autograd import Function, enable_grad, grad, is_grad_enabled, no_grad, set_grad_enabled
from .creation import (arange, as_tensor, empty, eye, from_dlpack, from_numpy, full, full_like,
                       linspace, ones, ones_like, rand, rand_like, randint, randn, randn_like,
                       randperm, tensor, zeros, zeros_like)
from .dtypes import (bool_, double, float16, float32, float64, get_default_dtype, half, int8, int16,
                     int32, int64, long, set_default_dtype, uint8)
from .gradcheck import GradcheckError, gradcheck
from .ops import *  # noqa: F401,F403 - the functional API (rg.exp, rg.cat, rg.softmax, ...)
from .ops import __all__ as _ops_all
from .parallel import get_num_threads, set_num_threads
from .random import Generator, get_rng_state, manual_seed, seed, set_rng_state
from . import allocator
allocator.tune_on_import()   # reuse freed memory between steps: no page faults (see allocator.py)

bool = bool_  # noqa: A001 - rg.bool, as torch.bool

# The packages above the engine, reachable as rg.nn, rg.optim, ... like torch.nn, torch.optim.
from . import data, distributed, io, nn, onnx, optim, train  # noqa: E402
from .compile import compile  # noqa: E402,A001 - rg.compile, as torch.compile
from .io import load, save  # noqa: E402
__version__ = "0.1.0"

__all__ = [
    "Tensor", "Function", "Generator", "GradcheckError", "tensor", "as_tensor", "from_numpy",
    "from_dlpack",
    "zeros", "ones", "empty", "full", "zeros_like", "ones_like", "full_like", "arange", "linspace",
    "eye", "rand", "randn", "randint", "rand_like", "randn_like", "randperm", "manual_seed", "seed",
    "get_rng_state", "set_rng_state", "get_num_threads", "set_num_threads", "no_grad", "enable_grad", "is_grad_enabled",
    "set_grad_enabled", "grad", "gradcheck", "get_default_dtype", "set_default_dtype", "float16",
    "float32", "float64", "half", "double", "int8", "int16", "int32", "int64", "long", "uint8",
    "bool", "dtypes", *_ops_all,
]
