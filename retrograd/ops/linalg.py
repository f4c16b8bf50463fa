"""Matrix products: matmul (1-D, 2-D, batched N-D), the fused affine map of a Linear layer, bmm,
outer and einsum."""
from __future__ import annotations

import functools
import math
import string
from collections import namedtuple
from typing import Any

import numpy as np

from ..autograd import Function


def _check_matmul(a: np.ndarray, b: np.ndarray) -> None:
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both arguments need at least 1 dimension, got shapes "
                         f"{a.shape} and {b.shape}")
    inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if a.shape[-1] != inner_b:
        raise ValueError(f"matmul: cannot multiply {a.shape} by {b.shape} "
                         f"({a.shape[-1]} != {inner_b})")


def _mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b. For 2-D arrays laid out for BLAS (C or Fortran order, as W.T is) `ndarray.dot`
    makes the same GEMM call, bit for bit, without the ufunc dispatch of `@`, which costs more
    than the product itself on small matrices. Strided views keep `@`: there the two may round
    differently."""
    if a.ndim == 2 and b.ndim == 2 and a.flags.forc and b.flags.forc:
        return a.dot(b)
    return a @ b


_ONES: dict = {}    # (n, dtype) -> a read-only vector of n ones


def ones_vector(n: int, dtype: np.dtype) -> np.ndarray:
    """A read-only vector of n ones, cached: `a @ ones` sums a's rows, `ones @ a` its columns, as
    one BLAS matrix-vector product (no temporary, and faster than ufunc reductions along short
    rows or down columns)."""
    key = (n, dtype)
    ones = _ONES.get(key)
    if ones is None:
        if len(_ONES) > 64:
            _ONES.clear()
        ones = _ONES[key] = np.ones(n, dtype)
        ones.flags.writeable = False
    return ones


def axis_sums(a: np.ndarray, axis: int) -> np.ndarray:
    """a.sum(axis, keepdims=True); along the last axis of a C-contiguous float array as one
    matrix-vector product with ones (~8x faster than the ufunc reduction on rows of 64)."""
    n = a.shape[axis]
    if axis not in (-1, a.ndim - 1) or not a.flags.c_contiguous or a.dtype.char not in "fd":
        return a.sum(axis=axis, keepdims=True)
    return (a.reshape(-1, n) @ ones_vector(n, a.dtype)).reshape(a.shape[:-1] + (1,))


def _sum_rows(g: np.ndarray) -> np.ndarray:
    """g.sum(0) of a 2-D array; for float32/float64 a product with a vector of ones. NumPy's
    reduction down axis 0 adds the rows one after another, BLAS in blocks: both faster and closer
    (1024 x 384 float32: 54 -> 22 us, largest error 1.3e-4 -> 2.7e-5 against a float64 sum; on 4 x 2,
    0.3 vs 1.2 us)."""
    if g.dtype.char not in "fd":
        return np.add.reduce(g, 0)
    return ones_vector(g.shape[0], g.dtype).dot(g)


class MatMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        _check_matmul(a, b)
        ctx.save_for_backward(a, b)
        try:
            return a @ b
        except ValueError as e:  # batch dimensions that do not broadcast
            raise ValueError(f"matmul: cannot multiply {a.shape} by {b.shape}: {e}") from None

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        grad_a = grad_b = None
        if a.ndim == 1 and b.ndim == 1:          # dot product
            return (grad * b if need_a else None), (grad * a if need_b else None)
        if a.ndim == 1:                          # (k) @ (..., k, m) -> (..., m)
            g = grad[..., None, :]
            if need_a:
                grad_a = (g @ np.swapaxes(b, -1, -2))[..., 0, :]
            if need_b:
                grad_b = a[:, None] * g
        elif b.ndim == 1:                        # (..., n, k) @ (k) -> (..., n)
            g = grad[..., :, None]
            if need_a:
                grad_a = g * b
            if need_b:
                grad_b = (np.swapaxes(a, -1, -2) @ g)[..., 0]
        else:
            if need_a:
                grad_a = grad @ np.swapaxes(b, -1, -2)
            if need_b:
                grad_b = np.swapaxes(a, -1, -2) @ grad
        return grad_a, grad_b


class Linear(Function):
    """y = x W^T + b with W of shape (out, in), as nn.Linear stores it; one GEMM each way. Batch
    dimensions are folded into the rows first: one (N, in) @ (in, out) product is faster than a
    stack of them (about 1.1-1.7x on a Transformer's (16, 64, 128) activations)."""

    @staticmethod
    def forward(ctx, x, weight, bias=None):
        if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
            raise ValueError(f"linear: input of shape {x.shape} does not match weight of shape "
                             f"{weight.shape} (expected last dimension {weight.shape[1]})")
        ctx.save_for_backward(x, weight)
        # ndarray.dot: the GEMM without the ufunc dispatch of `@` (see _mm); an operand that is
        # not laid out for BLAS is copied into one that is, never multiplied by a slow loop
        if x.ndim == 2:
            out = x.dot(weight.T)
        else:
            rows = x.reshape(math.prod(x.shape[:-1]), x.shape[-1])
            out = rows.dot(weight.T).reshape(x.shape[:-1] + weight.shape[:1])
        if bias is not None:
            out += bias
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        if grad.ndim != 2:       # fold batch dimensions: dW and db sum over every sample
            grad = grad.reshape(math.prod(grad.shape[:-1]), grad.shape[-1])
            x2 = x.reshape(grad.shape[0], x.shape[-1])
            grad_x = grad.dot(weight).reshape(x.shape) if needs[0] else None
        else:
            x2 = x
            grad_x = grad.dot(weight) if needs[0] else None
        grad_w = grad.T.dot(x2) if needs[1] else None
        if len(needs) == 2:
            return grad_x, grad_w
        return grad_x, grad_w, (_sum_rows(grad) if needs[2] else None)


def matmul(a, b):
    """Matrix product with NumPy/PyTorch semantics (1-D, 2-D and broadcast batched N-D)."""
    return MatMul.apply(a, b)


def linear(x, weight, bias=None):
    """x @ weight.T + bias, fused: the op behind nn.Linear."""
    return Linear.apply(x, weight, bias) if bias is not None else Linear.apply(x, weight)


# -- einsum ----------------------------------------------------------------------------------------

_SUBSCRIPTS = frozenset(string.ascii_letters)

# Below this many terms in the plain loop (the product of every index's size) NumPy's own C loop is
# fastest; above it a contraction order with BLAS products wins. np.einsum(optimize=...) costs
# ~30 us of Python on every call, more than a small product: (8, 8) @ (8, 8) takes 7 us plain and
# 45 us optimized, (64, 64) @ (64, 64) 91 us plain and 66 us optimized; a bilinear form
# "bi,ij,bj->b" at 48 per index 206 us plain, 93 us optimized; the crossover is near 50k terms.
_EINSUM_PLAIN = 50_000
_PATHS: dict = {}   # (spec, shapes) -> contraction order from np.einsum_path


def _einsum_error(equation: str, message: str) -> ValueError:
    return ValueError(f"einsum(): {message} (equation {equation!r})")


# The gradient of operand k: `spec` contracts the output gradient with the `others` operands onto
# k's `unique` indices, but for the ones at positions `missing`, which appear nowhere else.
_EinsumGrad = namedtuple("_EinsumGrad", ["spec", "others", "unique", "missing"])
_EinsumPlan = namedtuple("_EinsumPlan", ["ins", "out", "spec", "grads"])


@functools.lru_cache(maxsize=512)
def _einsum_plan(equation: str, ndims: tuple) -> _EinsumPlan:
    """Subscripts of each operand and of the output, with every ellipsis spelled out in letters
    the equation does not use (the rest of einsum sees named indices only), and the einsum that
    gives each operand's gradient. Parsed once per equation and operand ranks."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    for ch in lhs + rhs:
        if ch not in _SUBSCRIPTS and ch not in ",.":
            raise _einsum_error(equation, f"invalid subscript {ch!r}: subscripts must be in "
                                          "[a-zA-Z]")
    if "," in rhs or "->" in rhs:
        raise _einsum_error(equation, "the output subscripts must be a single term")
    terms = lhs.split(",")
    if len(terms) != len(ndims):
        raise _einsum_error(equation, f"the equation names {len(terms)} operand(s) but "
                                      f"{len(ndims)} were given")
    for term in (*terms, rhs):
        if term.count(".") not in (0, 3) or (term.count(".") == 3 and "..." not in term):
            raise _einsum_error(equation, f"'.' is only allowed as one ellipsis '...', got "
                                          f"{term!r}")
    n_ell = 0
    for k, (term, nd) in enumerate(zip(terms, ndims)):
        named = len(term.replace("...", ""))
        if "..." in term and nd >= named:
            n_ell = max(n_ell, nd - named)
        elif named != nd:
            raise _einsum_error(equation, f"operand {k} has {nd} dimension(s) but its subscripts "
                                          f"{term!r} name {named}")
    free = [c for c in string.ascii_letters if c not in eq]
    if n_ell > len(free):
        raise _einsum_error(equation, "too many dimensions under the ellipsis")
    ell = "".join(free[:n_ell])
    ins = tuple(t.replace("...", ell[n_ell - (nd - len(t) + 3):]) if "..." in t else t
                for t, nd in zip(terms, ndims))
    if arrow:
        out = rhs.replace("...", ell)
        for c in out:
            if out.count(c) > 1:
                raise _einsum_error(equation, f"output subscript {c} appears more than once")
            if not any(c in t for t in ins):
                raise _einsum_error(equation, f"output subscript {c} does not appear in any "
                                              "operand")
    else:   # implicit output: the ellipsis, then the indices used once, in alphabetical order
        joined = "".join(ins)
        out = ell + "".join(sorted(c for c in set(joined) if c not in ell and joined.count(c) == 1))
    grads = []
    for k, term in enumerate(ins):
        others = tuple(j for j in range(len(ins)) if j != k)
        known = set(out).union(*(ins[j] for j in others))
        unique = "".join(dict.fromkeys(term))
        have = "".join(c for c in unique if c in known)
        spec = ",".join([out] + [ins[j] for j in others]) + "->" + have
        missing = tuple(i for i, c in enumerate(unique) if c not in known)
        grads.append(_EinsumGrad(spec, others, unique, missing))
    return _EinsumPlan(ins, out, ",".join(ins) + "->" + out, tuple(grads))


def _einsum_sizes(equation: str, ins: tuple, shapes: tuple) -> dict:
    """The size of every index; sizes of 1 broadcast, as in torch.einsum."""
    sizes: dict = {}
    for k, (term, shape) in enumerate(zip(ins, shapes)):
        seen: dict = {}
        for c, n in zip(term, shape):
            if seen.setdefault(c, n) != n:
                raise _einsum_error(equation, f"subscript {c} is repeated for operand {k} (shape "
                                              f"{shape}) but its sizes differ, {seen[c]} != {n}")
            known = sizes.setdefault(c, n)
            if known != n and known != 1 and n != 1:
                raise _einsum_error(equation, f"subscript {c} has size {n} in operand {k} (shape "
                                              f"{shape}), which does not match size {known} "
                                              "elsewhere")
            if known == 1:
                sizes[c] = n        # 1 broadcasts to any size, 0 included
    return sizes


def _contract(spec: str, arrays: list, plain: bool) -> np.ndarray:
    """np.einsum(spec, *arrays), in NumPy's plain loop or along a cached BLAS contraction order
    (the faster at large sizes, see _EINSUM_PLAIN)."""
    if plain or len(arrays) < 2:
        return np.einsum(spec, *arrays)
    key = (spec, tuple(a.shape for a in arrays))
    path = _PATHS.get(key)
    if path is None:
        if len(_PATHS) > 256:
            _PATHS.clear()
        path = _PATHS[key] = np.einsum_path(spec, *arrays, optimize="greedy")[0]
    return np.einsum(spec, *arrays, optimize=path)


class Einsum(Function):
    """Einstein summation. The gradient of operand k is another einsum: the output gradient with
    the other operands, contracted onto k's indices. An index of k that appears nowhere else was
    summed, so its gradient is copied along it; an index repeated within k (a diagonal, "ii->i")
    gets its gradient on that diagonal and zero elsewhere."""

    @staticmethod
    def forward(ctx, *operands, equation):
        shapes = tuple(np.shape(o) for o in operands)
        plan = _einsum_plan(equation, tuple(len(s) for s in shapes))
        sizes = _einsum_sizes(equation, plan.ins, shapes)
        # the backward einsums run over the same indices (less those of one operand alone)
        plain = math.prod(sizes.values()) < _EINSUM_PLAIN
        ctx.plan, ctx.sizes, ctx.plain = plan, sizes, plain
        ctx.save_for_backward(*operands)
        result = _contract(plan.spec, list(operands), plain)
        if any(np.may_share_memory(result, o) for o in operands):   # "ij->ji" gives a view
            result = result.copy()
        return result

    @staticmethod
    def backward(ctx, grad):
        operands, plan, sizes = ctx.saved_tensors, ctx.plan, ctx.sizes
        grads = []
        for k, need in enumerate(ctx.needs_input_grad):
            if not need:
                grads.append(None)
                continue
            term, (spec, others, unique, missing) = plan.ins[k], plan.grads[k]
            g = _contract(spec, [grad] + [operands[j] for j in others], ctx.plain)
            if missing:     # indices summed within operand k alone: copied along them
                g = np.expand_dims(g, missing)
            shape = tuple(sizes[c] for c in unique)
            if g.shape != shape:    # and along indices of size 1 everywhere but in operand k
                g = np.broadcast_to(g, shape)
            if unique != term:      # a repeated index: the gradient goes onto the diagonal
                full = np.zeros([sizes[c] for c in term], grad.dtype)
                strides = [sum(s for t, s in zip(term, full.strides) if t == c)
                           for c in unique]
                np.lib.stride_tricks.as_strided(full, g.shape, strides, writeable=True)[...] = g
                g = full
            grads.append(g)     # of the broadcast shape: the engine sums it back to operand k's
        return tuple(grads) if len(grads) > 1 else grads[0]


class BMM(MatMul):
    """A batch of matrix products: (b, n, k) @ (b, k, m) -> (b, n, m), no broadcasting."""

    @staticmethod
    def forward(ctx, a, b):
        for name, x in (("input", a), ("mat2", b)):
            if np.ndim(x) != 3:
                raise ValueError(f"bmm: {name} must be a 3-D tensor, got shape {np.shape(x)}")
        if a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
            raise ValueError(f"bmm: cannot multiply {a.shape} by {b.shape}: expected mat2 of "
                             f"shape ({a.shape[0]}, {a.shape[2]}, m)")
        ctx.save_for_backward(a, b)
        return np.matmul(a, b)


class Outer(Function):
    @staticmethod
    def forward(ctx, a, b):
        for name, x in (("input", a), ("vec2", b)):
            if np.ndim(x) != 1:
                raise ValueError(f"outer: {name} must be 1-D, got shape {np.shape(x)}")
        ctx.save_for_backward(a, b)
        return np.multiply.outer(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (grad @ b if need_a else None), (a @ grad if need_b else None)


def einsum(equation: str, *operands: Any) -> Any:
    """Einstein summation over the operands' indices, as torch.einsum: explicit ("ij,jk->ik") or
    implicit ("ij,jk") output, "..." for broadcast dimensions; operands as arguments or one list.

    >>> rg.einsum("bi,ij,bj->b", x, W, y)      # a bilinear form per row
    """
    from ..tensor import Tensor
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not isinstance(equation, str):
        raise TypeError(f"einsum(): the equation must be a string, got {type(equation).__name__}")
    operands = tuple(o if isinstance(o, Tensor) else Tensor(o) for o in operands)
    return Einsum.apply(*operands, equation=equation)


def bmm(input: Any, mat2: Any) -> Any:
    """Batched matrix product of two 3-D tensors with the same batch size.

    >>> rg.bmm(rg.randn(8, 2, 3), rg.randn(8, 3, 4)).shape   # (8, 2, 4)
    """
    return BMM.apply(input, mat2)


def outer(input: Any, vec2: Any) -> Any:
    """Outer product of two vectors: out[i, j] = input[i] * vec2[j].

    >>> rg.outer(rg.tensor([1.0, 2.0]), rg.tensor([1.0, 0.0, -1.0])).shape   # (2, 3)
    """
    return Outer.apply(input, vec2)
