"""`export`: run the model once in eval mode, record every op it calls, translate each to ONNX.

The trace is the graph autograd records, plus what a node does not keep for backward: each
`Function.apply` call's inputs and options, seen through `autograd._apply_observers`. Inputs are
told apart by identity: the example inputs become graph inputs, the model's parameters and buffers
named initializers, any other array a constant. A node none of whose inputs depends on a graph
input is folded into a constant (a weight sliced or reshaped once, a causal mask).

Dynamic axes (the batch dimension by default) are found by tracing a second time with those axes
one longer: a shape that changes between the two runs is symbolic, and shape arguments (reshape
targets, slice bounds) are written relative to it (0 = "copy this dimension", -1 = "the rest", an
index counted from the end), or the export fails saying which op depends on the axis.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np

from .. import autograd
from ..tensor import Tensor

_MIN_OPSET = 13
DEFAULT_OPSET = 17


class UnsupportedOpError(NotImplementedError):
    """An op the exporter has no ONNX translation for (the message names its class)."""


def _require_onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise ImportError("rg.onnx.export needs the onnx package: pip install 'retrograd[onnx]' "
                          "(or pip install onnx)") from None
    return onnx, helper, numpy_helper


# -- tracing ---------------------------------------------------------------------------------------

class _Record:
    __slots__ = ("ctx", "op", "args", "kwargs", "result")

    def __init__(self, ctx, args, kwargs, result):
        self.ctx, self.op, self.args, self.kwargs, self.result = \
            ctx, type(ctx), args, kwargs, result


def _trace(model, inputs: tuple) -> tuple[list, Any]:
    records: list[_Record] = []

    def observe(ctx, args, kwargs, result):
        records.append(_Record(ctx, args, kwargs, result))

    autograd._apply_observers.append(observe)
    try:
        with autograd.enable_grad():
            out = model(*inputs)
    finally:
        autograd._apply_observers.remove(observe)
    return records, out


def _flatten(out: Any) -> list:
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flatten(o)]
    if out is None:
        return []
    raise TypeError(f"onnx.export: the model returned a {type(out).__name__}; expected tensors "
                    "(or tuples/lists of them)")


def _longer(x: Tensor, axes: Sequence[int]) -> Tensor:
    """x with each of `axes` one longer (its first entry repeated): the second trace's input."""
    a = x.data
    for axis in axes:
        a = np.concatenate([a, np.take(a, [0], axis=axis)], axis=axis)
    return Tensor(a)


def _axes_spec(spec: Any, ndim: int, name: str) -> dict[int, str]:
    """torch's dynamic_axes entry ({0: 'batch'} or [0]) as {axis: symbol}."""
    if isinstance(spec, dict):
        out = {int(k) % ndim: str(v) for k, v in spec.items()}
    else:
        out = {int(k) % ndim: f"{name}_dim{int(k) % ndim}" for k in spec}
    return out


# -- the graph builder -----------------------------------------------------------------------------

class _Value:
    """Where an argument of a traced op comes from."""

    __slots__ = ("kind", "ref", "obj")

    def __init__(self, kind: str, ref: Any, obj: Any):
        self.kind, self.ref, self.obj = kind, ref, obj   # kind: input, node, const, literal


class _Builder:
    def __init__(self, helper, numpy_helper, opset: int):
        self.helper, self.numpy_helper, self.opset = helper, numpy_helper, opset
        self.nodes: list = []
        self.initializers: list = []
        self._const_names: dict[int, str] = {}    # id(array) -> initializer name
        self._keep: list = []                     # arrays whose ids are keys above
        self._used: set[str] = set()

    def fresh(self, hint: str) -> str:
        hint = hint.replace("/", ".")
        name, k = hint, 1
        while name in self._used:
            name, k = f"{hint}_{k}", k + 1
        self._used.add(name)
        return name

    def const(self, array: Any, hint: str = "const", dtype: Any = None) -> str:
        array = np.asarray(array)
        if dtype is not None and array.dtype != dtype:
            array = array.astype(dtype)
        key = id(array)
        if key in self._const_names:
            return self._const_names[key]
        name = self.fresh(hint)
        # reshaped back: np.ascontiguousarray makes a 0-d array 1-d, which would turn a result
        # computed with a scalar constant (x.sum() * 2.0) 1-d too
        contiguous = np.ascontiguousarray(array).reshape(array.shape)
        self.initializers.append(self.numpy_helper.from_array(contiguous, name))
        self._const_names[key] = name
        self._keep.append(array)
        return name

    def ints(self, values: Sequence[int], hint: str = "shape") -> str:
        return self.const(np.asarray(list(values), dtype=np.int64), hint)

    def op(self, op_type: str, inputs: Sequence[str | None], n_out: int = 1, hint: str = "",
           **attrs) -> Any:
        outs = [self.fresh(f"{hint or op_type}_out{i}" if n_out > 1 else (hint or op_type))
                for i in range(n_out)]
        inputs = ["" if i is None else i for i in inputs]
        while inputs and inputs[-1] == "":
            inputs.pop()
        self.nodes.append(self.helper.make_node(op_type, inputs, outs, name=self.fresh(
            f"node.{hint or op_type}"), **attrs))
        return outs[0] if n_out == 1 else outs

    # helpers whose form changed between opsets
    def reduce(self, op_type: str, x: str, axes, keepdims: bool) -> str:
        axes = None if axes is None else [int(a) for a in
                                          (axes if isinstance(axes, (tuple, list)) else (axes,))]
        axis_input = op_type == "ReduceSum" or self.opset >= 18
        if axes is None:
            return self.op(op_type, [x], keepdims=int(keepdims))
        if axis_input:
            return self.op(op_type, [x, self.ints(axes, "axes")], keepdims=int(keepdims))
        return self.op(op_type, [x], axes=axes, keepdims=int(keepdims))

    def squeeze(self, x: str, axes: Sequence[int]) -> str:
        return self.op("Squeeze", [x, self.ints(axes, "axes")])

    def unsqueeze(self, x: str, axes: Sequence[int]) -> str:
        return self.op("Unsqueeze", [x, self.ints(axes, "axes")])


class Node:
    """One traced op as a converter sees it: its arguments, options and shapes in both traces."""

    def __init__(self, graph: "_Graph", index: int):
        self.graph, self.b, self.index = graph, graph.b, index
        self.record = graph.records[index]
        self.twin = graph.records_b[index]
        self.op, self.kwargs = self.record.op, self.record.kwargs
        self.name = self.op.__name__
        self.out = self.record.result.data
        self.out_shape, self.out_shape_b = self.out.shape, self.twin.result.data.shape
        self.dtype = self.out.dtype
        self.opset = graph.b.opset

    # -- arguments
    def arg(self, i: int) -> Any:
        return self.record.args[i] if i < len(self.record.args) else None

    def source(self, i: int) -> _Value:
        return self.graph.source(self.arg(i))

    def is_const(self, i: int) -> bool:
        return self.source(i).kind in ("const", "literal")

    def array(self, i: int) -> Any:
        """The value of argument i in the first trace (an array, or the literal itself)."""
        a = self.arg(i)
        return a.data if isinstance(a, Tensor) else a

    def shape(self, i: int) -> tuple:
        return np.shape(self.array(i))

    def shape_b(self, i: int) -> tuple:
        a = self.twin.args[i]
        return np.shape(a.data if isinstance(a, Tensor) else a)

    def value(self, i: int, dtype: Any = None) -> str | None:
        """ONNX name of argument i (constants become initializers, literals take `dtype`)."""
        v = self.source(i)
        if v.kind == "literal" and v.obj is None:
            return None
        if v.kind in ("const", "literal"):
            if self.shape(i) != self.shape_b(i):
                raise UnsupportedOpError(
                    f"onnx.export: {self.name} takes an array computed outside the graph whose "
                    f"shape follows a dynamic axis ({self.shape(i)} in one trace, "
                    f"{self.shape_b(i)} in the other), e.g. a mask made with .data or NumPy; "
                    "compute it with tensor ops, or export without that dynamic axis")
            if v.kind == "literal" and dtype is None:
                dtype = self.dtype if self.dtype.kind in "fc" else None
            return self.graph.const_name(v, dtype)
        return self.graph.name_of(v)

    def emit(self, op_type: str, inputs: Sequence[str | None], **attrs) -> str:
        return self.b.op(op_type, inputs, hint=op_type, **attrs)

    def fail(self, why: str) -> UnsupportedOpError:
        return UnsupportedOpError(f"onnx.export: {self.name} {why}")

    def dynamic_out(self) -> set:
        return {d for d, (a, b) in enumerate(zip(self.out_shape, self.out_shape_b)) if a != b}


class _Graph:
    def __init__(self, b: _Builder, records: list, records_b: list, inputs: list,
                 input_names: list, named: dict):
        self.b, self.records, self.records_b = b, records, records_b
        self._by_ctx = {id(r.ctx): i for i, r in enumerate(records)}
        self._by_result = {id(r.result): i for i, r in enumerate(records)}
        self._by_data = {}
        for i, r in enumerate(records):
            self._by_data.setdefault(id(r.result.data), i)
        self._inputs = {id(t): k for k, t in enumerate(inputs)}
        self._input_data = {id(t.data): k for k, t in enumerate(inputs)}
        self.input_names = input_names
        self.named = named                  # id(tensor or array) -> parameter/buffer name
        self.names: dict[int, str] = {}     # record index -> ONNX value name
        self.dynamic: dict[int, bool] = {}  # record index -> depends on a graph input

    def source(self, obj: Any) -> _Value:
        if isinstance(obj, Tensor):
            if id(obj) in self._inputs:
                return _Value("input", self._inputs[id(obj)], obj)
            if obj.grad_fn is not None and id(obj.grad_fn) in self._by_ctx:
                return _Value("node", self._by_ctx[id(obj.grad_fn)], obj)
            if id(obj) in self._by_result:
                return _Value("node", self._by_result[id(obj)], obj)
            obj_data = obj.data
        elif isinstance(obj, np.ndarray):
            obj_data = obj
        else:
            return _Value("literal", None, obj)
        if id(obj_data) in self._input_data:        # e.g. x.detach() or x.data of an input
            return _Value("input", self._input_data[id(obj_data)], obj)
        if not isinstance(obj, Tensor) and id(obj_data) in self._by_data:
            return _Value("node", self._by_data[id(obj_data)], obj)
        return _Value("const", None, obj)

    def depends(self, v: _Value) -> bool:
        return v.kind == "input" or (v.kind == "node" and self.dynamic.get(v.ref, False))

    def name_of(self, v: _Value) -> str:
        if v.kind == "input":
            return self.input_names[v.ref]
        return self.names[v.ref]

    def const_name(self, v: _Value, dtype: Any = None) -> str:
        obj = v.obj
        array = obj.data if isinstance(obj, Tensor) else obj
        hint = (self.named.get(id(obj)) or self.named.get(id(array))
                or self.named.get(id(getattr(array, "base", None))) or "const")  # a view of one
        if not isinstance(array, np.ndarray):
            array = np.asarray(array, dtype=dtype)
        elif dtype is not None and array.dtype.kind in "fciu" and array.dtype != dtype:
            array = array.astype(dtype)
        return self.b.const(array, hint)


# -- the converters: one function per op class, registered by name ---------------------------------

CONVERTERS: dict[str, Callable[[Node], str]] = {}


def converter(*names: str):
    def register(fn):
        for name in names:
            CONVERTERS[name] = fn
        return fn
    return register


def supported_ops() -> list[str]:
    """Names of the op classes (Function subclasses) the exporter translates."""
    from . import ops  # noqa: F401 - registers the converters
    return sorted(CONVERTERS)


# -- export ----------------------------------------------------------------------------------------

def _names(given, n: int, default: str) -> list[str]:
    if given is None:
        return [default] if n == 1 else [f"{default}{i}" for i in range(n)]
    given = list(given)
    if len(given) != n:
        raise ValueError(f"onnx.export: {len(given)} names given for {n} {default}s")
    return given


def export(model, args, path: str | os.PathLike | None = None, *,
           input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
           dynamic_axes: dict | None = None, opset_version: int = DEFAULT_OPSET,
           check: bool = True):
    """Export `model` (a Module or any callable of tensors) to an ONNX file for inference.

    `args` is an example input (a Tensor, or a tuple of them). The model runs on it in eval mode
    (restored afterwards), and each op it calls becomes ONNX nodes; parameters and buffers become
    initializers with their `state_dict` names. `dynamic_axes` follows torch.onnx:
    {"input": {0: "batch"}, ...}; by default axis 0 of every input is dynamic ("batch"), and each
    output axis that follows it. Pass `dynamic_axes={}` for fully static shapes.

    Returns the `onnx.ModelProto` (also written to `path` when given). Raises UnsupportedOpError
    naming the op class for ops without an ONNX translation (`rg.onnx.supported_ops()`).

    >>> rg.onnx.export(model, rg.randn(1, 784), "mlp.onnx", input_names=["x"])
    """
    onnx, helper, numpy_helper = _require_onnx()
    from . import ops  # noqa: F401 - registers the converters
    if not _MIN_OPSET <= opset_version <= onnx.defs.onnx_opset_version():
        raise ValueError(f"onnx.export: opset_version must be between {_MIN_OPSET} and "
                         f"{onnx.defs.onnx_opset_version()}, got {opset_version}")
    inputs = list(args) if isinstance(args, (tuple, list)) else [args]
    inputs = [t if isinstance(t, Tensor) else Tensor(np.asarray(t)) for t in inputs]
    in_names = _names(input_names, len(inputs), "input")
    if dynamic_axes is None:
        dynamic_axes = {n: {0: "batch"} for n, t in zip(in_names, inputs) if t.ndim > 0}
    in_axes = [_axes_spec(dynamic_axes.get(n, {}), max(t.ndim, 1), n)
               for n, t in zip(in_names, inputs)]

    training = getattr(model, "training", None)
    if hasattr(model, "eval"):
        model.eval()
    try:
        records, out = _trace(model, tuple(inputs))
        if any(in_axes):
            inputs_b = [_longer(t, sorted(ax)) for t, ax in zip(inputs, in_axes)]
            records_b, out_b = _trace(model, tuple(inputs_b))
        else:                      # static shapes: the second trace would be the first
            records_b, out_b = records, out
    finally:
        if training and hasattr(model, "train"):
            model.train(training)
    outputs, outputs_b = _flatten(out), _flatten(out_b)
    if [r.op for r in records] != [r.op for r in records_b] or len(outputs) != len(outputs_b):
        raise UnsupportedOpError("onnx.export: the model runs different ops for a different "
                                 "size of a dynamic axis (data-dependent control flow); export "
                                 "with dynamic_axes={} for a fixed-shape graph")
    out_names = _names(output_names, len(outputs), "output")

    named: dict[int, str] = {}
    if hasattr(model, "named_parameters"):
        for name, p in model.named_parameters():
            named.setdefault(id(p), name)
            named.setdefault(id(p.data), name)
    if hasattr(model, "named_buffers"):
        for name, buf in model.named_buffers():
            if buf is not None:
                named.setdefault(id(buf), name)
                named.setdefault(id(buf.data), name)

    b = _Builder(helper, numpy_helper, opset_version)
    for n in in_names:
        b._used.add(n)
    graph = _Graph(b, records, records_b, inputs, in_names, named)

    # only the ops the outputs depend on, in the order they ran (a topological order)
    needed, stack = set(), [graph.source(t) for t in outputs]
    while stack:
        v = stack.pop()
        if v.kind != "node" or v.ref in needed:
            continue
        needed.add(v.ref)
        stack.extend(graph.source(a) for a in records[v.ref].args)
    for i in sorted(needed):
        node = Node(graph, i)
        sources = [graph.source(a) for a in node.record.args]
        if not any(graph.depends(v) for v in sources):
            if node.out_shape != node.out_shape_b:
                raise UnsupportedOpError(
                    f"onnx.export: {node.name} computes a value from arrays made outside the "
                    f"graph whose shape follows a dynamic axis ({node.out_shape} in one trace, "
                    f"{node.out_shape_b} in the other); make it from the input with tensor ops")
            graph.dynamic[i] = False     # constant folding: the traced value is the value
            hint = next((named[id(v.obj)] for v in sources if id(v.obj) in named), "folded")
            graph.names[i] = b.const(node.out, f"{hint}.{node.name}")
            continue
        convert = CONVERTERS.get(node.name)
        if convert is None:
            raise UnsupportedOpError(
                f"onnx.export: no ONNX translation for op {node.name} "
                f"({node.op.__module__}.{node.name}); supported: {', '.join(supported_ops())}")
        graph.dynamic[i] = True
        graph.names[i] = convert(node)

    out_axes_given = {n: _axes_spec(dynamic_axes[n], max(t.ndim, 1), n)
                      for n, t in zip(out_names, outputs) if n in dynamic_axes}
    symbols = sorted({s for ax in in_axes for s in ax.values()})
    g_inputs = [helper.make_tensor_value_info(
        n, helper.np_dtype_to_tensor_dtype(t.data.dtype),
        [ax.get(d, s) for d, s in enumerate(t.shape)]) for n, t, ax in zip(in_names, inputs,
                                                                            in_axes)]
    g_outputs = []
    for n, t, tb in zip(out_names, outputs, outputs_b):
        v = graph.source(t)
        if v.kind == "literal" or v.kind == "const":
            src = b.const(t.data, "constant_output")
        else:
            src = graph.name_of(v)
        b.nodes.append(helper.make_node("Identity", [src], [n], name=b.fresh(f"node.{n}")))
        given = out_axes_given.get(n, {})
        dims = []
        for d, (sa, sb) in enumerate(zip(t.shape, tb.shape)):
            if d in given:
                dims.append(given[d])
            elif sa != sb:
                dims.append(symbols[0] if len(symbols) == 1 else f"{n}_dim{d}")
            else:
                dims.append(sa)
        g_outputs.append(helper.make_tensor_value_info(
            n, helper.np_dtype_to_tensor_dtype(t.data.dtype), dims))

    onnx_graph = helper.make_graph(b.nodes, "retrograd", g_inputs, g_outputs, b.initializers)
    model_proto = helper.make_model(onnx_graph, producer_name="retrograd",
                                    opset_imports=[helper.make_opsetid("", opset_version)])
    # the oldest IR version that has the opset: runtimes a little older than onnx load the file
    model_proto.ir_version = helper.find_min_ir_version_for(list(model_proto.opset_import))
    if check:
        onnx.checker.check_model(model_proto)
    if path is not None:
        onnx.save(model_proto, os.fspath(path))
    return model_proto
