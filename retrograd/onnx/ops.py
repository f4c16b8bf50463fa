"""ONNX translations of retrograd's ops, one converter per op class (see export.py for `Node`).

A converter reads the traced call (arguments, options, shapes in the two traces) and emits ONNX
nodes computing the same values; it returns the name of the value standing for the op's output.
"""
from __future__ import annotations

import math

import numpy as np

from .export import Node, converter

_BIG = np.iinfo(np.int64).max


# -- elementwise -----------------------------------------------------------------------------------

_UNARY = {"Exp": "Exp", "Log": "Log", "Sqrt": "Sqrt", "Abs": "Abs", "Sin": "Sin", "Cos": "Cos",
          "Tanh": "Tanh", "Sigmoid": "Sigmoid", "ReLU": "Relu", "Neg": "Neg", "Clone": "Identity"}
_BINARY = {"Add": "Add", "Sub": "Sub", "Mul": "Mul", "Div": "Div", "Pow": "Pow",
           "Maximum": "Max", "Minimum": "Min", "MatMul": "MatMul"}


@converter(*_UNARY)
def _unary(n: Node) -> str:
    return n.emit(_UNARY[n.name], [n.value(0)])


@converter(*_BINARY)
def _binary(n: Node) -> str:
    # Python numbers take the tensor's dtype (as in retrograd); arrays are cast to it too
    a, b = (n.value(i, n.dtype if n.dtype.kind == "f" else None) for i in (0, 1))
    return n.emit(_BINARY[n.name], [a, b])


@converter("Log1p")
def _log1p(n: Node) -> str:
    return n.emit("Log", [n.emit("Add", [n.value(0), n.b.const(np.ones((), n.dtype), "one")])])


@converter("LeakyReLU")
def _leaky_relu(n: Node) -> str:
    return n.emit("LeakyRelu", [n.value(0)], alpha=float(n.kwargs.get("negative_slope", 0.01)))


@converter("ELU")
def _elu(n: Node) -> str:
    return n.emit("Elu", [n.value(0)], alpha=float(n.kwargs.get("alpha", 1.0)))


@converter("GELU")
def _gelu(n: Node) -> str:
    approximate = n.kwargs.get("approximate", "none")
    x = n.value(0)
    if n.opset >= 20:
        return n.emit("Gelu", [x], approximate=approximate)
    c = lambda v: n.b.const(np.asarray(v, n.dtype), "c")  # noqa: E731
    if approximate == "tanh":   # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = n.emit("Mul", [n.emit("Mul", [x, x]), x])
        inner = n.emit("Add", [x, n.emit("Mul", [cube, c(0.044715)])])
        t = n.emit("Tanh", [n.emit("Mul", [inner, c(math.sqrt(2 / math.pi))])])
    else:                       # 0.5 x (1 + erf(x / sqrt 2))
        t = n.emit("Erf", [n.emit("Mul", [x, c(1 / math.sqrt(2))])])
    return n.emit("Mul", [n.emit("Mul", [x, c(0.5)]), n.emit("Add", [t, c(1.0)])])


@converter("Softplus")
def _softplus(n: Node) -> str:
    beta, threshold = float(n.kwargs.get("beta", 1.0)), float(n.kwargs.get("threshold", 20.0))
    x = n.value(0)
    c = lambda v: n.b.const(np.asarray(v, n.dtype), "c")  # noqa: E731
    bx = x if beta == 1 else n.emit("Mul", [x, c(beta)])
    soft = n.emit("Softplus", [bx])
    if beta != 1:
        soft = n.emit("Div", [soft, c(beta)])
    return n.emit("Where", [n.emit("Greater", [bx, c(threshold)]), x, soft])


@converter("Clamp")
def _clamp(n: Node) -> str:
    out = n.value(0)
    for i, op in ((1, "Max"), (2, "Min")):
        if n.arg(i) is not None:
            out = n.emit(op, [out, n.value(i, n.dtype)])
    return out


@converter("Where")
def _where(n: Node) -> str:
    return n.emit("Where", [n.value(0), n.value(1, n.dtype), n.value(2, n.dtype)])


_COMPARISONS = {np.equal: "Equal", np.less: "Less", np.less_equal: "LessOrEqual",
                np.greater: "Greater", np.greater_equal: "GreaterOrEqual"}
_LOGICAL = {np.logical_and: "And", np.logical_or: "Or", np.logical_xor: "Xor"}


@converter("Predicate")
def _predicate(n: Node) -> str:
    fn, x = n.kwargs["fn"], n.value(0)
    as_bool = lambda i: n.emit("Cast", [n.value(i, np.bool_)], to=9)  # noqa: E731 - 9: BOOL
    if fn in _COMPARISONS or fn is np.not_equal:
        other = n.value(1, np.asarray(n.array(0)).dtype)     # a number takes x's dtype
        if fn is np.not_equal:
            return n.emit("Not", [n.emit("Equal", [x, other])])
        return n.emit(_COMPARISONS[fn], [x, other])
    if fn in _LOGICAL:
        return n.emit(_LOGICAL[fn], [as_bool(0), as_bool(1)])
    if fn is np.isnan or fn is np.isinf:
        return n.emit("IsNaN" if fn is np.isnan else "IsInf", [x])
    if fn is np.isfinite:
        return n.emit("Not", [n.emit("Or", [n.emit("IsNaN", [x]), n.emit("IsInf", [x])])])
    if fn is np.invert and n.dtype == np.bool_:
        return n.emit("Not", [x])
    if fn is np.any or fn is np.all:      # on 0/1 integers: any = max, all = min
        ints = n.emit("Cast", [as_bool(0)], to=6)                      # 6: INT32
        reduced = n.b.reduce("ReduceMax" if fn is np.any else "ReduceMin", ints,
                             n.kwargs.get("axis"), n.kwargs.get("keepdims", False))
        return n.emit("Cast", [reduced], to=9)
    raise n.fail(f"{getattr(fn, '__name__', fn)} on a {np.asarray(n.array(0)).dtype} tensor has "
                 "no ONNX translation")


@converter("Cast")
def _cast(n: Node) -> str:
    return n.emit("Cast", [n.value(0)], to=n.b.helper.np_dtype_to_tensor_dtype(n.dtype))


# -- reductions and softmax ------------------------------------------------------------------------

def _check_static_axes(n: Node, axes) -> None:
    ndim = len(n.shape(0))
    axes = range(ndim) if axes is None else (axes if isinstance(axes, tuple) else (axes,))
    if any(n.shape(0)[a] != n.shape_b(0)[a] for a in axes):
        raise n.fail("reduces over a dynamic axis with a count fixed at trace time; export "
                     "without that dynamic axis")


@converter("Sum")
def _sum(n: Node) -> str:
    x = n.value(0)
    if np.asarray(n.array(0)).dtype != n.dtype:     # bool and int32 sum to int64, as in torch
        x = _cast_to(n, x, n.dtype)
    return n.b.reduce("ReduceSum", x, n.kwargs.get("dim"), n.kwargs.get("keepdim", False))


@converter("Mean")
def _mean(n: Node) -> str:
    return n.b.reduce("ReduceMean", n.value(0), n.kwargs.get("dim"), n.kwargs.get("keepdim", False))


@converter("AMax", "AMin")
def _extreme(n: Node) -> str:
    op = "ReduceMax" if n.name == "AMax" else "ReduceMin"
    return n.b.reduce(op, n.value(0), n.kwargs.get("dim"), n.kwargs.get("keepdim", False))


@converter("LogSumExp")
def _logsumexp(n: Node) -> str:
    return n.b.reduce("ReduceLogSumExp", n.value(0), n.kwargs.get("dim"),
                      n.kwargs.get("keepdim", False))


@converter("Var")
def _var(n: Node) -> str:
    dim, keepdim = n.kwargs.get("dim"), n.kwargs.get("keepdim", False)
    _check_static_axes(n, dim)
    x = n.value(0)
    shape = n.shape(0)
    axes = range(len(shape)) if dim is None else (dim if isinstance(dim, tuple) else (dim,))
    count = math.prod(shape[a] for a in axes) - n.kwargs.get("correction", 1)
    centered = n.emit("Sub", [x, n.b.reduce("ReduceMean", x, dim, True)])
    total = n.b.reduce("ReduceSum", n.emit("Mul", [centered, centered]), dim, keepdim)
    return n.emit("Div", [total, n.b.const(np.asarray(count, n.dtype), "count")])


@converter("TakeAlongDim")
def _take_along_dim(n: Node) -> str:
    # x.max(dim), x.min(dim), sort, topk: values at the indices an op found (ArgExtreme, ArgSort)
    dim, keepdim = n.kwargs["dim"], n.kwargs.get("keepdim", True)
    indices = n.value(1) if keepdim else n.b.unsqueeze(n.value(1), [dim])
    out = n.emit("GatherElements", [n.value(0), indices], axis=int(dim))
    return out if keepdim else n.b.squeeze(out, [dim])


@converter("ArgExtreme")
def _arg_extreme(n: Node) -> str:
    dim, keepdim = n.kwargs.get("dim"), n.kwargs.get("keepdim", False)
    op = "ArgMin" if n.kwargs.get("smallest") else "ArgMax"
    x = n.value(0)
    if dim is None:       # over all elements: the index into the flattened tensor
        flat = n.emit("Reshape", [x, n.b.ints([-1])])
        return n.b.squeeze(n.emit(op, [flat], axis=0, keepdims=1), [0])
    return n.emit(op, [x], axis=int(dim), keepdims=int(bool(keepdim)))


@converter("Softmax", "LogSoftmax")
def _softmax(n: Node) -> str:
    return n.emit(n.name, [n.value(0)], axis=int(n.kwargs.get("dim", -1)))


# -- linear algebra, normalisation, embedding ------------------------------------------------------

@converter("Linear")
def _linear(n: Node) -> str:
    x, w = n.value(0), n.value(1)
    bias = n.value(2) if n.arg(2) is not None else None
    if len(n.shape(0)) == 2:
        return n.emit("Gemm", [x, w, bias], transB=1)
    y = n.emit("MatMul", [x, n.emit("Transpose", [w], perm=[1, 0])])
    return n.emit("Add", [y, bias]) if bias is not None else y


@converter("_Normalize")
def _normalize(n: Node) -> str:
    axes, param_shape, eps = n.kwargs["axes"], n.kwargs["param_shape"], n.kwargs["eps"]
    ndim = len(n.shape(0))
    x = n.value(0)
    trailing = tuple(axes) == tuple(range(ndim - len(axes), ndim))
    weight, bias = n.arg(1), n.arg(2)
    if trailing and n.opset >= 17 and all(n.is_const(i) for i in (1, 2)):   # LayerNorm
        norm_shape = param_shape[ndim - len(axes):]
        scale = n.value(1) if weight is not None else n.b.const(np.ones(norm_shape, n.dtype),
                                                                 "ones")
        inputs = [x, scale] + ([n.value(2)] if bias is not None else [])   # B is optional
        return n.emit("LayerNormalization", inputs, axis=-len(axes), epsilon=float(eps))
    mean = n.b.reduce("ReduceMean", x, axes, True)
    centered = n.emit("Sub", [x, mean])
    var = n.b.reduce("ReduceMean", n.emit("Mul", [centered, centered]), axes, True)
    std = n.emit("Sqrt", [n.emit("Add", [var, n.b.const(np.asarray(eps, n.dtype), "eps")])])
    out = n.emit("Div", [centered, std])
    for i, op in ((1, "Mul"), (2, "Add")):
        if n.arg(i) is not None:
            shaped = n.emit("Reshape", [n.value(i), n.b.ints(param_shape)])
            out = n.emit(op, [out, shaped])
    return out


@converter("EmbeddingLookup")
def _embedding(n: Node) -> str:
    return n.emit("Gather", [n.value(0), n.value(1)], axis=0)


# -- shapes and indexing ---------------------------------------------------------------------------

def _relative(n: Node, value_a: int, value_b: int, size_a: int, size_b: int, what: str) -> int:
    """A bound as ONNX should see it: fixed if the same in both traces, else counted from the end
    of a dynamic axis (when it moved with the axis)."""
    if value_a == value_b:
        return value_a
    if value_a - size_a == value_b - size_b:
        return value_a - size_a
    raise n.fail(f"has a {what} that depends on a dynamic axis in a way that can't be written "
                 f"in ONNX ({value_a} for size {size_a}, {value_b} for size {size_b})")


@converter("Reshape")
def _reshape(n: Node) -> str:
    ina, inb = n.shape(0), n.shape_b(0)
    target, rest = [], False
    for d, (a, b) in enumerate(zip(n.out_shape, n.out_shape_b)):
        if a == b:
            target.append(a)
        elif d < len(ina) and ina[d] == a and inb[d] == b:
            target.append(0)              # copy the input's (dynamic) dimension
        elif not rest:
            target.append(-1)
            rest = True
        else:
            raise n.fail(f"from {ina} to {n.out_shape} mixes dynamic axes in a way ONNX's "
                         "Reshape can't express")
    if 0 in n.out_shape:
        raise n.fail("to an empty shape can't be exported")
    return n.emit("Reshape", [n.value(0), n.b.ints(target)])


@converter("Permute")
def _permute(n: Node) -> str:
    ndim = len(n.shape(0))
    return n.emit("Transpose", [n.value(0)], perm=[int(d) % ndim for d in n.kwargs["dims"]])


@converter("Expand")
def _expand(n: Node) -> str:
    ina, inb = n.shape(0), n.shape_b(0)
    lead = len(n.out_shape) - len(ina)
    target = []
    for d, (a, b) in enumerate(zip(n.out_shape, n.out_shape_b)):
        i = d - lead
        if i >= 0 and ina[i] == a and inb[i] == b:
            target.append(1)               # broadcasting keeps the input's dimension
        elif a == b:
            target.append(a)
        else:
            raise n.fail("broadcasts to a size that follows a dynamic axis")
    return n.emit("Expand", [n.value(0), n.b.ints(target)])


@converter("Tile")
def _tile(n: Node) -> str:
    reps = tuple(n.kwargs["reps"])
    x = n.value(0)
    extra = len(reps) - len(n.shape(0))
    if extra > 0:
        x = n.b.unsqueeze(x, range(extra))
    return n.emit("Tile", [x, n.b.ints(reps)])


@converter("BasicIndex")
def _basic_index(n: Node) -> str:
    ina, inb = n.shape(0), n.shape_b(0)
    items = n.kwargs["index"]
    items_b = n.twin.kwargs["index"]
    items = items if isinstance(items, tuple) else (items,)
    items_b = items_b if isinstance(items_b, tuple) else (items_b,)

    def expand(its):
        """Ellipsis and missing trailing dimensions as full slices."""
        consumed = sum(1 for it in its if it is not None and it is not Ellipsis)
        out = []
        for it in its:
            out += [slice(None)] * (len(ina) - consumed) if it is Ellipsis else [it]
        if not any(it is Ellipsis for it in its):
            out += [slice(None)] * (len(ina) - consumed)
        return out

    items, items_b = expand(items), expand(items_b)
    starts, ends, axes, steps, squeeze, unsqueeze = [], [], [], [], [], []
    axis = out_pos = 0
    for it, itb in zip(items, items_b):
        if it is None:
            unsqueeze.append(out_pos)
            out_pos += 1
            continue
        na, nb = ina[axis], inb[axis]
        if isinstance(it, slice):
            sa, ea, step = it.indices(na)
            sb, eb, step_b = itb.indices(nb)
            if step <= 0 or step != step_b:
                raise n.fail("with a negative or dynamic step can't be exported")
            if not (sa == sb == 0 and ea == na and eb == nb and step == 1):
                start = _relative(n, sa, sb, na, nb, "slice start")
                end = _relative(n, ea, eb, na, nb, "slice end")
                starts.append(start)
                ends.append(_BIG if end == 0 and ea == na else end)
                axes.append(axis)
                steps.append(step)
            out_pos += 1
        else:                                   # an int: a slice of one, then squeezed away
            ia, ib = int(it) % na, int(itb) % nb
            start = _relative(n, ia, ib, na, nb, "index")
            starts.append(start)
            ends.append(_BIG if start == -1 else start + 1)
            axes.append(axis)
            steps.append(1)
            squeeze.append(axis)
        axis += 1
    x = n.value(0)
    if axes:
        x = n.emit("Slice", [x, n.b.ints(starts), n.b.ints(ends), n.b.ints(axes),
                             n.b.ints(steps)])
    if squeeze:
        x = n.b.squeeze(x, squeeze)
    if unsqueeze:
        x = n.b.unsqueeze(x, unsqueeze)
    if not (axes or squeeze or unsqueeze):
        x = n.emit("Identity", [x])
    return x


@converter("Cat")
def _cat(n: Node) -> str:
    k = len(n.record.args)
    return n.emit("Concat", [n.value(i) for i in range(k)], axis=int(n.kwargs.get("dim", 0)))


@converter("Stack")
def _stack(n: Node) -> str:
    k = len(n.record.args)
    dim = int(n.kwargs.get("dim", 0)) % len(n.out_shape)
    return n.emit("Concat", [n.b.unsqueeze(n.value(i), [dim]) for i in range(k)], axis=dim)


@converter("Pad")
def _pad(n: Node) -> str:
    widths = n.kwargs["widths"]
    pads = [int(lo) for lo, _ in widths] + [int(hi) for _, hi in widths]
    value = n.b.const(np.asarray(n.kwargs.get("value", 0.0), n.dtype), "pad_value")
    return n.emit("Pad", [n.value(0), n.b.ints(pads), value], mode="constant")


# -- convolution and pooling -----------------------------------------------------------------------

def _batched(n: Node, dims: int):
    """(input name, wrap): unbatched inputs get a batch axis of 1, taken off the result again."""
    x = n.value(0)
    if len(n.shape(0)) == dims + 2:
        return x, lambda y: y
    return n.b.unsqueeze(x, [0]), lambda y: n.b.squeeze(y, [0])


def _spatial(n: Node, dims: int, key: str) -> list:
    return [int(v) for v in n.kwargs[key][-dims:]]


def _pads(n: Node, dims: int, key: str) -> list:
    pairs = n.kwargs[key][-dims:]
    return [int(a) for a, _ in pairs] + [int(b) for _, b in pairs]


@converter("Conv", "ConvTranspose")
def _conv(n: Node) -> str:
    """Conv and ConvTranspose share ONNX's attributes; the transpose adds output_padding."""
    dims, op = n.kwargs["dims"], n.name
    x, wrap = _batched(n, dims)
    bias = n.value(2) if n.arg(2) is not None else None
    extra = {"output_padding": _spatial(n, dims, "output_padding")} if op == "ConvTranspose" \
        else {}
    y = n.emit(op, [x, n.value(1), bias], strides=_spatial(n, dims, "stride"),
               pads=_pads(n, dims, "padding"), dilations=_spatial(n, dims, "dilation"),
               group=int(n.kwargs["groups"]), kernel_shape=list(n.shape(1)[2:]), **extra)
    return wrap(y)


@converter("MaxPool")
def _max_pool(n: Node) -> str:
    dims = n.kwargs["dims"]
    x, wrap = _batched(n, dims)
    return wrap(n.emit("MaxPool", [x], kernel_shape=_spatial(n, dims, "kernel"),
                       strides=_spatial(n, dims, "stride"), pads=_pads(n, dims, "pads"),
                       dilations=_spatial(n, dims, "dilation")))


@converter("AvgPool")
def _avg_pool(n: Node) -> str:
    dims = n.kwargs["dims"]
    x, wrap = _batched(n, dims)
    kernel = _spatial(n, dims, "kernel")
    # the window sums over prod(kernel), then PyTorch's divisor (which may vary by position)
    y = n.emit("AveragePool", [x], kernel_shape=kernel, strides=_spatial(n, dims, "stride"),
               pads=_pads(n, dims, "pads"), count_include_pad=1)
    divisor = np.asarray(n.kwargs["divisor"])
    if not (divisor.ndim == 0 and float(divisor) == math.prod(kernel)):
        if dims == 1 and divisor.ndim == 2:
            divisor = divisor[0]
        factor = (math.prod(kernel) / divisor.astype(np.float64)).astype(n.dtype)
        y = n.emit("Mul", [y, n.b.const(factor, "divisor")])
    return wrap(y)


@converter("AdaptiveAvgPool")
def _adaptive_avg_pool(n: Node) -> str:
    from ..ops.pool import _averaging
    out = tuple(n.kwargs["out"])
    h, w = n.shape(0)[-2:]
    if n.shape_b(0)[-2:] != (h, w):
        raise n.fail("over dynamic spatial axes can't be exported")
    x = n.value(0)
    if out == (1, 1):
        return n.b.reduce("ReduceMean", x, [-2, -1], True)
    ph, pw = _averaging(h, out[0], n.dtype), _averaging(w, out[1], n.dtype)
    y = n.emit("MatMul", [n.b.const(ph, "pool_rows"), x])
    return n.emit("MatMul", [y, n.b.const(np.ascontiguousarray(pw.T), "pool_cols")])


@converter("Nearest")
def _nearest(n: Node) -> str:
    x = n.value(0)
    for i, index in enumerate(n.kwargs["indices"]):
        x = n.emit("Gather", [x, n.b.const(np.asarray(index, np.int64), "nearest")], axis=2 + i)
    return x


# -- attention -------------------------------------------------------------------------------------

def _softmax_attention(n: Node, q: str, k: str, v: str | None, scale: float, biases: list) -> str:
    """softmax(scale * q k^T + biases) (@ v): q, k, v (..., L, D)."""
    if n.kwargs.get("drop") is not None:
        raise n.fail("with attention dropout (training mode) can't be exported; call "
                     "model.eval() (export does) and don't pass dropout_p to the functional form")
    rank = 4 if n.name.startswith("Multihead") else len(n.shape(1))
    kt = n.emit("Transpose", [k], perm=list(range(rank - 2)) + [rank - 1, rank - 2])
    s = n.emit("Mul", [n.emit("MatMul", [q, kt]), n.b.const(np.asarray(scale, n.dtype),
                                                            "scale")])
    for bias in biases:
        s = n.emit("Add", [s, bias])
    p = n.emit("Softmax", [s], axis=-1)
    return p if v is None else n.emit("MatMul", [p, v])


def _causal(n: Node, lq: int, lk: int) -> str:
    from ..ops.attention import causal_bias
    return n.b.const(np.array(causal_bias(lq, lk, n.dtype)), "causal_mask")


@converter("ScaledDotProductAttention")
def _sdpa(n: Node) -> str:
    q_shape, k_shape = n.shape(0), n.shape(1)
    biases = [_causal(n, q_shape[-2], k_shape[-2])] if n.kwargs.get("causal") else []
    if n.arg(3) is not None:
        biases.append(n.value(3, n.dtype))
    return _softmax_attention(n, n.value(0), n.value(1), n.value(2), n.kwargs.get("scale", 1.0),
                              biases)


@converter("MultiheadAttentionCore", "MultiheadAttentionWeights")
def _multihead(n: Node) -> str:
    heads, batch_first = n.kwargs["heads"], n.kwargs["batch_first"]
    q, k, v = n.value(0), n.value(1), n.value(2)
    e_q = n.shape(0)[-1]
    # packed projections: q holds [q | k | v] (self-attention), or k holds [k | v]
    if k is None:
        e = e_q // 3
        q, k, v = (_last_slice(n, n.value(0), i * e, (i + 1) * e) for i in range(3))
        lk = n.shape(0)[1 if batch_first else 0]
    elif v is None:
        e = n.shape(1)[-1] // 2
        k, v = (_last_slice(n, n.value(1), i * e, (i + 1) * e) for i in range(2))
        lk = n.shape(1)[1 if batch_first else 0]
    else:
        lk = n.shape(1)[1 if batch_first else 0]
    lq = n.shape(0)[1 if batch_first else 0]
    perm = [0, 2, 1, 3] if batch_first else [1, 2, 0, 3]   # to (N, heads, L, D)

    def split(x):
        return n.emit("Transpose", [n.emit("Reshape", [x, n.b.ints([0, 0, heads, -1])])],
                      perm=perm)

    biases = [_causal(n, lq, lk)] if n.kwargs.get("causal") else []
    biases += [n.value(i, n.dtype) for i in (3, 4) if n.arg(i) is not None]
    weights_only = n.name == "MultiheadAttentionWeights"
    out = _softmax_attention(n, split(q), split(k), None if weights_only else split(v),
                             n.kwargs["scale"], biases)
    if weights_only:
        return out
    back = [0, 2, 1, 3] if batch_first else [2, 0, 1, 3]
    return n.emit("Reshape", [n.emit("Transpose", [out], perm=back), n.b.ints([0, 0, -1])])


def _last_slice(n: Node, x: str, start: int, end: int) -> str:
    return n.emit("Slice", [x, n.b.ints([start]), n.b.ints([end]), n.b.ints([-1])])


# -- recurrent layers ------------------------------------------------------------------------------
# PyTorch's gate order (LSTM i, f, g, o; GRU r, z, n) and ONNX's (LSTM i, o, f, c; GRU z, r, h)

_GATES = {"LSTMLayer": [0, 3, 1, 2], "GRULayer": [1, 0, 2], "RNNLayer": [0]}


def _gates(a: np.ndarray, order: list) -> np.ndarray:
    parts = np.split(a, len(order), axis=0)
    return np.concatenate([parts[i] for i in order], axis=0)


def _state(n: Node, i: int) -> str | None:
    """An initial state (B, H) as ONNX's (1, B, H), or None for zeros (ONNX's default)."""
    if n.is_const(i) and not np.any(n.array(i)):
        return None
    return n.b.unsqueeze(n.value(i), [0])


def _weight(n: Node, i: int, order: list, hint: str) -> str:
    if not n.is_const(i):
        raise n.fail("with weights computed in the graph can't be exported")
    w = np.asarray(n.array(i))
    name = n.graph.named.get(id(n.arg(i)), hint)
    return n.b.const(_gates(w, order)[None], f"{name}.onnx")


@converter("LSTMLayer", "GRULayer", "RNNLayer")
def _recurrent(n: Node) -> str:
    lstm = n.name == "LSTMLayer"
    first_w = 3 if lstm else 2
    order = _GATES[n.name]
    hidden = n.shape(first_w + 1)[1]
    single_step = len(n.shape(0)) == 2
    x = n.value(0)
    if single_step:
        x = n.b.unsqueeze(x, [0])
    w, r = _weight(n, first_w, order, "W"), _weight(n, first_w + 1, order, "R")
    b_ih, b_hh = n.arg(first_w + 2), n.arg(first_w + 3)
    bias = None
    if b_ih is not None or b_hh is not None:
        g = len(order) * hidden
        parts = [np.zeros(g, n.dtype) if b is None else _gates(np.asarray(getattr(b, "data", b)),
                                                               order) for b in (b_ih, b_hh)]
        bias = n.b.const(np.concatenate(parts)[None], "B.onnx")
    h0 = _state(n, 1)
    inputs = [x, w, r, bias, None, h0]
    attrs = dict(hidden_size=int(hidden),
                 direction="reverse" if n.kwargs.get("reverse") else "forward")
    if lstm:
        inputs.append(_state(n, 2))
    elif n.name == "GRULayer":
        attrs["linear_before_reset"] = 1       # PyTorch applies r after W_hn h + b_hn
    else:
        attrs["activations"] = ["Relu" if n.kwargs.get("nonlinearity") == "relu" else "Tanh"]
    op = {"LSTMLayer": "LSTM", "GRULayer": "GRU", "RNNLayer": "RNN"}[n.name]
    outs = n.b.op(op, inputs, n_out=3 if lstm else 2, hint=op, **attrs)
    y, y_h = outs[0], outs[1]
    if single_step:
        if lstm:                                 # [h, c] as (2, B, H)
            return n.emit("Concat", [y_h, outs[2]], axis=0)
        return n.b.squeeze(y_h, [0])
    y = n.b.squeeze(y, [1])                      # (T, 1, B, H) -> (T, B, H)
    if lstm:                                     # [h_1 .. h_T, c_T] as (T + 1, B, H)
        return n.emit("Concat", [y, outs[2]], axis=0)
    return y


# -- more elementwise and reductions ---------------------------------------------------------------

def _scalar(n: Node, value, dtype) -> str:
    """A 0-d constant of `dtype`."""
    return n.b.const(np.asarray(value, dtype), "scalar")


def _arg(n: Node, i: int) -> str:
    """n.value(i), but a 0-d constant (a mask or an index) keeps its own dtype."""
    if n.is_const(i) and np.ndim(n.array(i)) == 0 and n.arg(i) is not None:
        return n.b.const(np.asarray(n.array(i)), "scalar")
    return n.value(i)


def _cast_to(n: Node, x: str, dtype) -> str:
    return n.emit("Cast", [x], to=n.b.helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))


def _as_out_dtype(n: Node, i: int) -> str:
    """Argument i, cast to the op's output dtype when it has another (ints summed in int64...)."""
    x = n.value(i)
    return x if np.asarray(n.array(i)).dtype == n.dtype else _cast_to(n, x, n.dtype)


@converter("Rsqrt")
def _rsqrt(n: Node) -> str:
    return n.emit("Reciprocal", [n.emit("Sqrt", [_as_out_dtype(n, 0)])])


@converter("Sign")
def _sign(n: Node) -> str:
    if n.dtype == np.bool_:
        return n.emit("Identity", [n.value(0)])
    return n.emit("Sign", [n.value(0)])


def _reduce_dim(n: Node):
    """(dim, keepdim) of a reduction, or None for a 0-d input (reducing it is the identity)."""
    if len(n.shape(0)) == 0:
        return None
    return n.kwargs.get("dim"), bool(n.kwargs.get("keepdim", False))


@converter("Prod")
def _prod(n: Node) -> str:
    x = _as_out_dtype(n, 0)                  # int32 and bool multiply in int64
    args = _reduce_dim(n)
    if args is None:
        return n.emit("Identity", [x])
    return n.b.reduce("ReduceProd", x, *args)


@converter("Norm")
def _norm(n: Node) -> str:
    p = float(n.kwargs.get("p", 2.0))
    x = n.value(0)
    args = _reduce_dim(n)
    if args is None:                         # a 0-d tensor: |x| (or x != 0 for p = 0)
        args = (None, False)
    dim, keepdim = args
    if p == 2:
        return n.b.reduce("ReduceL2", x, dim, keepdim)
    if p == 1:
        return n.b.reduce("ReduceL1", x, dim, keepdim)
    if p == 0:                               # the count of nonzero elements, in x's dtype
        zero = _scalar(n, 0, n.dtype)
        nonzero = _cast_to(n, n.emit("Not", [n.emit("Equal", [x, zero])]), n.dtype)
        return n.b.reduce("ReduceSum", nonzero, dim, keepdim)
    if math.isinf(p):
        return n.b.reduce("ReduceMax" if p > 0 else "ReduceMin", n.emit("Abs", [x]), dim, keepdim)
    power, root = _scalar(n, p, n.dtype), _scalar(n, 1 / p, n.dtype)
    total = n.b.reduce("ReduceSum", n.emit("Pow", [n.emit("Abs", [x]), power]), dim, keepdim)
    return n.emit("Pow", [total, root])


# -- more linear algebra ---------------------------------------------------------------------------

@converter("Einsum")
def _einsum(n: Node) -> str:
    from ..ops.linalg import _einsum_plan
    equation = n.kwargs["equation"].replace(" ", "")
    k = len(n.record.args)
    shapes = [n.shape(i) for i in range(k)]
    plan = _einsum_plan(equation, tuple(len(s) for s in shapes))
    # retrograd (like torch) lets a named index of size 1 broadcast; ONNX's Einsum does not
    sizes: dict = {}
    for term, shape in zip(plan.ins, shapes):
        for c, size in zip(term, shape):
            if c in equation and sizes.setdefault(c, size) != size:
                raise n.fail(f"{equation!r}: subscript {c} has sizes {sizes[c]} and {size} in "
                             "different operands (size-1 broadcasting of a named index has no "
                             "ONNX Einsum translation)")
    lhs, arrow, rhs = equation.partition("->")
    if not arrow:        # implicit output made explicit: "...", then the indices used once
        letters = lhs.replace("...", "").replace(",", "")
        rhs = ("..." if "..." in lhs else "") + "".join(
            sorted(c for c in set(letters) if letters.count(c) == 1))
    inputs = [n.value(i) for i in range(k)]
    return n.emit("Einsum", inputs, equation=f"{lhs}->{rhs}")


@converter("BMM")
def _bmm(n: Node) -> str:
    return n.emit("MatMul", [n.value(0), n.value(1)])


@converter("Outer")
def _outer(n: Node) -> str:
    a, b = (_as_out_dtype(n, i) for i in (0, 1))
    return n.emit("Mul", [n.b.unsqueeze(a, [1]), n.b.unsqueeze(b, [0])])


# -- gather, scatter, masks ------------------------------------------------------------------------

def _scalar_safe(n: Node, names: list, shapes: list, axis: int):
    """Gather's and scatter's 0-d arguments as 1-d (and a 0-d result back), as the ops take them."""
    ones = [n.b.unsqueeze(x, [0]) if len(s) == 0 else x for x, s in zip(names, shapes)]
    axis = 0 if len(shapes[0]) == 0 else axis
    return ones, axis, lambda y: n.b.squeeze(y, [0]) if len(n.out_shape) == 0 else y


@converter("Gather")
def _gather(n: Node) -> str:
    (x, index), axis, back = _scalar_safe(n, [_arg(n, 0), _arg(n, 1)],
                                          [n.shape(0), n.shape(1)], int(n.kwargs["dim"]))
    return back(n.emit("GatherElements", [x, index], axis=axis))


@converter("TakeAlong")
def _take_along(n: Node) -> str:
    # gather after broadcasting input and indices against each other outside dim: each is
    # expanded (bidirectionally) to the other's shape with a 1 at dim, which keeps its own size
    ndim = len(n.shape(0))
    dim = int(n.kwargs["dim"]) % ndim
    ones = np.ones(ndim, np.int64)
    ones[dim] = 0
    names = [n.value(0), n.value(1)]
    inputs = []
    for i in (0, 1):
        other = 1 - i
        covers = all(n.shape(i)[d] == max(n.shape(i)[d], n.shape(other)[d]) and
                     n.shape_b(i)[d] == max(n.shape_b(i)[d], n.shape_b(other)[d])
                     for d in range(ndim) if d != dim)
        if covers:
            inputs.append(names[i])
            continue
        target = n.emit("Add", [n.emit("Mul", [n.emit("Shape", [names[other]]),
                                               n.b.const(ones, "keep")]),
                                n.b.const(1 - ones, "at_dim")])
        inputs.append(n.emit("Expand", [names[i], target]))
    return n.emit("GatherElements", inputs, axis=dim)     # negative indices count from the end


@converter("IndexSelect")
def _index_select(n: Node) -> str:
    x = _arg(n, 0)
    ids = n.emit("Reshape", [n.value(1), n.b.ints([-1])])   # a 0-d index keeps the axis
    if len(n.shape(0)) == 0:
        y = n.emit("Gather", [n.b.unsqueeze(x, [0]), ids], axis=0)
        return n.emit("Reshape", [y, n.b.ints([])])
    return n.emit("Gather", [x, ids], axis=int(n.kwargs["dim"]))


def _scatter(n: Node, updates: str, reduction: str) -> str:
    """ScatterElements; `updates` has index's shape."""
    attrs = {"reduction": reduction} if reduction != "none" else {}
    (x, index, updates), axis, back = _scalar_safe(
        n, [_arg(n, 0), _arg(n, 1), updates], [n.shape(0), n.shape(1), n.shape(1)],
        int(n.kwargs["dim"]))
    return back(n.emit("ScatterElements", [x, index, updates], axis=axis, **attrs))


def _src_block(n: Node) -> str:
    """src cut to index's shape (scatter reads only that leading block of it)."""
    src = _arg(n, 2)
    shape, shape_b = n.shape(1), n.shape_b(1)
    if n.shape(2) == shape and n.shape_b(2) == shape_b:
        return src
    ends = [_relative(n, a, b, sa, sb, "src block end") or _BIG for a, b, sa, sb in
            zip(shape, shape_b, n.shape(2), n.shape_b(2))]
    return n.emit("Slice", [src, n.b.ints([0] * len(shape)), n.b.ints(ends),
                            n.b.ints(range(len(shape)))])


@converter("Scatter")
def _scatter_src(n: Node) -> str:
    return _scatter(n, _src_block(n), "none")


@converter("ScatterAdd")
def _scatter_add(n: Node) -> str:
    if n.opset < 16:
        raise n.fail(f"needs ScatterElements with reduction='add' (opset 16 or later); export "
                     f"with opset_version >= 16 (got {n.opset})")
    return _scatter(n, _src_block(n), "add")


@converter("ScatterValue")
def _scatter_value(n: Node) -> str:
    value = _scalar(n, n.kwargs["value"], n.dtype)
    updates = n.emit("Expand", [value, n.emit("Shape", [n.value(1)])])
    return _scatter(n, updates, "none")


@converter("MaskedFill")
def _masked_fill(n: Node) -> str:
    mask = _arg(n, 1)
    if np.asarray(n.array(1)).dtype != np.bool_:
        mask = _cast_to(n, mask, np.bool_)
    if n.is_const(2):        # a number (or 0-d array): 0-d, so that a 0-d x stays 0-d
        value = _scalar(n, np.asarray(n.array(2)), n.dtype)
    else:
        value = _as_out_dtype(n, 2)
    return n.emit("Where", [mask, value, n.value(0)])


@converter("OneHot")
def _one_hot(n: Node) -> str:
    ids = _arg(n, 0)
    if np.asarray(n.array(0)).dtype != np.int64:
        ids = _cast_to(n, ids, np.int64)
    classes = int(n.kwargs.get("num_classes", -1))
    if classes == -1:     # one more than the largest id, computed at run time as retrograd does
        if len(n.shape(0)) == 0:
            top = ids
        else:
            top = n.b.reduce("ReduceMax", ids, None, False)
        depth = n.emit("Add", [top, _scalar(n, 1, np.int64)])
    else:
        depth = _scalar(n, classes, np.int64)
    values = n.b.const(np.asarray([0, 1], np.int64), "one_hot_values")
    return n.emit("OneHot", [ids, depth, values], axis=-1)


# -- ordering, scans, triangles --------------------------------------------------------------------

@converter("CumSum")
def _cumsum(n: Node) -> str:
    return n.emit("CumSum", [_as_out_dtype(n, 0),
                             _scalar(n, int(n.kwargs["dim"]), np.int64)])


_CUMPROD_MAX = 64


@converter("CumProd")
def _cumprod(n: Node) -> str:
    # ONNX has no scan of products: unrolled, one Mul per element along a static dim
    dim = int(n.kwargs["dim"])
    size, size_b = n.shape(0)[dim], n.shape_b(0)[dim]
    if size != size_b:
        raise n.fail(f"along dimension {dim}, whose size follows a dynamic axis, has no ONNX "
                     "translation (ONNX has no cumulative product)")
    if size > _CUMPROD_MAX:
        raise n.fail(f"along a dimension of {size} elements (more than {_CUMPROD_MAX}) has no "
                     "ONNX translation (ONNX has no cumulative product; it is unrolled for "
                     "short dimensions only)")
    x = _as_out_dtype(n, 0)
    axes = n.b.ints([dim])
    running, parts = None, []
    for i in range(size):
        item = n.emit("Slice", [x, n.b.ints([i]), n.b.ints([i + 1]), axes])
        running = item if running is None else n.emit("Mul", [running, item])
        parts.append(running)
    return n.emit("Concat", parts, axis=dim) if len(parts) > 1 else n.emit("Identity", parts)


@converter("Flip")
def _flip(n: Node) -> str:
    dims = [int(d) for d in n.kwargs["dims"]]
    if not dims:
        return n.emit("Identity", [n.value(0)])
    k = len(dims)
    return n.emit("Slice", [n.value(0), n.b.ints([-1] * k), n.b.ints([-_BIG - 1] * k),
                            n.b.ints(dims), n.b.ints([-1] * k)])


def _roll_axis(n: Node, x: str, shift: int, axis: int, size: int, size_b: int) -> str:
    """x rolled by `shift` along `axis`: [x[-s:], x[:-s]] (s = shift mod size)."""
    if size == size_b:
        shift %= max(size, 1)
    elif not -min(size, size_b) < shift < min(size, size_b):
        raise n.fail(f"by {shift} along dimension {axis}, whose size follows a dynamic axis, "
                     "depends on that size (the shift is taken modulo it)")
    if shift == 0:
        return x
    cut = -shift            # where the part that comes first starts: x[-s:], then x[:-s]
    axes = n.b.ints([axis])
    head = n.emit("Slice", [x, n.b.ints([cut]), n.b.ints([_BIG]), axes])
    tail = n.emit("Slice", [x, n.b.ints([0]), n.b.ints([cut]), axes])
    return n.emit("Concat", [head, tail], axis=axis)


@converter("Roll")
def _roll(n: Node) -> str:
    shifts, dims = n.kwargs["shifts"], n.kwargs["dims"]
    x = first = n.value(0)
    shape, shape_b = n.shape(0), n.shape_b(0)
    if dims is None:          # over the flattened tensor, the shape kept
        flat = n.emit("Reshape", [x, n.b.ints([-1])])
        rolled = _roll_axis(n, flat, int(shifts[0]), 0, math.prod(shape), math.prod(shape_b))
        return n.emit("Reshape", [rolled, n.emit("Shape", [x])])
    for shift, dim in zip(shifts, dims):
        x = _roll_axis(n, x, int(shift), int(dim), shape[dim], shape_b[dim])
    return x if x != first else n.emit("Identity", [x])


@converter("Tri")
def _tri(n: Node) -> str:
    diagonal, upper = int(n.kwargs.get("diagonal", 0)), bool(n.kwargs.get("upper", False))
    x = n.value(0)
    if n.opset >= 14:
        return n.emit("Trilu", [x, _scalar(n, diagonal, np.int64)],
                      upper=int(upper))
    # before opset 14 (no Trilu): keep where col - row <= diagonal (>= for triu), from Ranges
    shape = n.emit("Shape", [x])

    def positions(axis: int) -> str:
        size = n.b.squeeze(n.emit("Slice", [shape, n.b.ints([axis]), n.b.ints([axis + 1 or _BIG])]),
                           [0])
        return n.emit("Range", [_scalar(n, 0, np.int64), size, _scalar(n, 1, np.int64)])
    offset = n.emit("Sub", [positions(-1), n.b.unsqueeze(positions(-2), [1])])
    k = _scalar(n, diagonal, np.int64)
    keep = n.emit("GreaterOrEqual" if upper else "LessOrEqual", [offset, k])
    return n.emit("Where", [keep, x, _scalar(n, 0, n.dtype)])


@converter("ArgSort")
def _argsort(n: Node) -> str:
    # TopK puts equal elements in index order, as retrograd's stable sort does (for NaN it may
    # differ: retrograd sorts NaN as the largest)
    dim, k = int(n.kwargs.get("dim", -1)), n.kwargs.get("k")
    x = n.value(0)
    if k is None:            # a full sort: k = the size of dim (at run time, if dynamic)
        ndim = len(n.shape(0))
        d = dim % ndim
        if n.shape(0)[d] == n.shape_b(0)[d]:
            kk = n.b.ints([n.shape(0)[d]], "k")
        else:
            kk = n.emit("Slice", [n.emit("Shape", [x]), n.b.ints([d]), n.b.ints([d + 1])])
    else:
        kk = n.b.ints([int(k)], "k")
    _, indices = n.b.op("TopK", [x, kk], n_out=2, hint="TopK", axis=dim,
                        largest=int(bool(n.kwargs.get("descending", False))), sorted=1)
    return indices
