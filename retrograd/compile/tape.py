"""The recorder behind `rg.compile`: one eager run of a step, written down as straight-line Python.

While a `Tape` is installed as `autograd._tape`, every `Function.apply` runs as usual and is also
written down as two lines of code over arrays:

    c3 = new(F3); c3.needs_input_grad = N3      # a fresh node, as apply would make
    v3 = F3_forward(c3, v1, p0)                 # the op's own forward, on arrays

The backward walk is done here (the same walk as `autograd.run_backward`) and written down as the
backward calls, broadcast reductions and gradient sums it makes, in the order it makes them; the
optimizer's `zero_grad`/`step` are written down as calls of those methods. Values are named by the
identity of their arrays: a step input is `a0`, an op's output `v<n>`, a parameter or buffer read
through its tensor (`T<n>.data`, so replacing or updating it in place is seen by later replays).
Anything else an op receives is a constant of the recording, checked on a second recording.

What cannot be written down is noted in `breaks` (the run itself stays eager and correct):
values read into Python (`.item()`, `bool(t)`, comparisons), random draws outside ops or from
NumPy's global generator, in-place writes to tensors, hooks, and a few more.
"""
from __future__ import annotations

import heapq
import itertools
import math
import sys
from contextlib import contextmanager
from typing import Any, Callable

import numpy as np

from .. import autograd
from ..autograd import Function, _conform
from ..ops.elementwise import ReLU
from .. import random as rng_states
from ..tensor import WRITE_CLOCK, Tensor, _wrap

# Tensor methods that hand values to Python: inside a compiled step their result would be frozen
# into the recording (an `if` on it taken the recorded way), so calling one makes the step
# uncapturable. Comparisons, tests and argmax are ops, recorded like the others.
_ESCAPES = ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__",
            "__array__")


def _deliver(leaf: Tensor, g: np.ndarray, copy: bool) -> None:
    """What the backward walk does with a leaf's gradient: set `.grad`, or add to it."""
    if leaf._hooks:                   # registered after the recording: run them as eager does
        g, replaced = autograd._call_hooks(leaf._hooks, g)
        copy = copy or replaced
    if leaf.grad is None:
        leaf.grad = _wrap(g.copy() if copy else g)
    else:
        leaf.grad.data = leaf.grad.data + g


def _relu_backward_into(ctx, grad: np.ndarray) -> np.ndarray:
    """ReLU.backward (`grad * (out > 0)`) written into `grad`: the same values, no new array."""
    (out,) = ctx.saved_tensors
    return np.multiply(grad, out > 0, out=grad)


# Backward rules that may overwrite their incoming gradient, used in a replay when the recording
# showed that nothing else holds that gradient (see `_exclusive`): the activation gradient of a
# CNN's first layer then needs one array of its size, not two.
_BACKWARD_INTO = {ReLU: _relu_backward_into}


def _exclusive(g: Any) -> bool:
    """Whether the walk's gradient `g` is held only by the walk's local: not by another pending
    gradient, a leaf, an op's saved values or a buffer pool, nor through a view of it."""
    return type(g) is np.ndarray and g.flags.owndata and g.flags.writeable \
        and sys.getrefcount(g) <= _ALONE


def _alone() -> int:
    """sys.getrefcount inside `_exclusive` of an array its caller holds in one local only."""
    g = np.empty(0)
    return _count(g)


def _count(g: Any) -> int:
    return sys.getrefcount(g)


_ALONE = _alone()


def _literal(value: Any) -> str | None:
    """Python source for a plain constant, or None when it must be passed as an object."""
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    if type(value) is float and math.isfinite(value):
        return repr(value)
    if isinstance(value, tuple) and all(isinstance(v, int) and not isinstance(v, bool)
                                        for v in value):
        return repr(value)
    return None


class Tape:
    """Records one run of a step; `program()` turns the record into a replay function."""

    def __init__(self, n_inputs: int):
        self.lines: list[tuple[str, tuple, tuple]] = []   # (code, names defined, names used)
        self.objects: dict[str, Any] = {}                 # name -> object the code refers to
        self._object_names: dict[int, str] = {}
        self.names: dict[int, tuple[str, str]] = {}       # id(array) -> (expression, local)
        self._alive: list = []        # everything named stays alive: ids stay unique
        self._read: set[int] = set()  # ids of arrays read through a tensor (`T<n>.data`)
        self.nodes: dict[int, str] = {}                   # id(graph node) -> its ctx local
        self.inputs = [f"a{i}" for i in range(n_inputs)]
        # The same record as events, for a backend that lowers the step (numba_backend.py):
        # ("read", local, tensor), ("op", class, ctx, out, arg exprs, keyword exprs, attributes),
        # ("backward", class, ctx, grad expr, [(input index, local)]), ("conform", local, shape
        # before, shape, dtype), ("add", local, a, b), ("deliver", leaf, expr, copy),
        # ("effect", method, args, kwargs), ("call", fn, local or None, arg exprs); and the shape
        # and dtype of each local array.
        self.events: list[tuple] = []
        self.meta: dict[str, tuple] = {}
        self.breaks: list[str] = []
        self.modules: dict = {}       # module -> _module_state, for the replay guard
        self.output: Any = None
        self._count = itertools.count()
        self._clock = WRITE_CLOCK[0]
        self._rng_state = None
        self.strict = False

    # -- naming ------------------------------------------------------------------------------------
    def _new(self, prefix: str) -> str:
        return f"{prefix}{next(self._count)}"

    def _object(self, obj: Any, prefix: str = "O") -> str:
        name = self._object_names.get(id(obj))
        if name is None:
            name = self._object_names[id(obj)] = self._new(prefix)
            self.objects[name] = obj
            self._alive.append(obj)
        return name

    def bind_input(self, i: int, array: np.ndarray) -> None:
        self._name_array(array, f"a{i}", f"a{i}")

    def _name_array(self, array: np.ndarray, expr: str, local: str) -> str:
        self.names[id(array)] = (expr, local)
        if expr == local and isinstance(array, np.ndarray):
            self.meta[local] = (array.shape, array.dtype)
        self._alive.append(array)
        return expr

    def _emit(self, code: str, defs: tuple = (), uses: tuple = ()) -> None:
        self.lines.append((code, defs, uses))

    def _array(self, array: np.ndarray, owner: Tensor | None = None) -> tuple[str, tuple]:
        """Expression for an array, and the locals it uses."""
        known = self.names.get(id(array))
        if known is not None:
            return known[0], (known[1],)
        if owner is not None:
            # A tensor the step did not compute (a parameter, a buffer, a tensor made inside the
            # step): read through the tensor at replay, once, where the recording first used it.
            local = self._new("v")
            self._emit(f"{local} = {self._object(owner, 'T')}.data", (local,))
            self.events.append(("read", local, owner))
            self._read.add(id(array))
            self._name_array(array, local, local)
            return local, (local,)
        return self._object(array, "K"), ()        # a raw array: a constant of the recording

    def _value(self, value: Any) -> tuple[str, tuple]:
        if isinstance(value, Tensor):
            return self._array(value.data, value)
        if isinstance(value, np.ndarray):
            return self._array(value)
        known = self.names.get(id(value))
        if known is not None:          # an object an `array_function` returned
            return known[0], (known[1],)
        if isinstance(value, np.generic):
            value = value.item()
        literal = _literal(value)
        if literal is not None:
            return literal, ()
        self._check_constant(value)
        return self._object(value), ()

    def _keywords(self, kwargs: dict, exprs: list, uses: list) -> None:
        """Keyword arguments one by one: an array the step computed (e.g. an attention dropout
        mask) is passed by its local, anything else as a constant."""
        for key, value in kwargs.items():
            if isinstance(value, Tensor) or not key.isidentifier():
                # forward receives a tensor keyword as the tensor itself, as in eager apply
                self._check_constant(value)
                exprs.append(f"**{{{key!r}: {self._object(value)}}}")
                continue
            e, u = self._value(value)
            exprs.append(f"{key}={e}")
            uses += u

    def _check_constant(self, value: Any, depth: int = 0) -> None:
        """A container frozen into the recording must not hold values the step computes."""
        if isinstance(value, Tensor):
            value = value.data
        if isinstance(value, np.ndarray):
            if id(value) in self.names and id(value) not in self._read:
                self.fail("an op received an array computed in the step inside a container or "
                          "keyword argument; the replay would pass the recorded one")
        elif isinstance(value, (tuple, list, dict)) and depth < 3:
            for v in (value.values() if isinstance(value, dict) else value):
                self._check_constant(v, depth + 1)

    # -- guards --------------------------------------------------------------------------------
    def fail(self, reason: str) -> None:
        if self.strict:
            from . import CompileError
            raise CompileError(f"rg.compile(fullgraph=True): {reason}")
        if reason not in self.breaks:
            self.breaks.append(reason)

    def _check_outside(self) -> None:
        """Nothing may have written in place or drawn random numbers since the last event."""
        if WRITE_CLOCK[0] != self._clock:
            self.fail("a tensor was modified in place inside the step (outside an optimizer "
                      "step); the replay would not repeat the write")
            self._clock = WRITE_CLOCK[0]
        state = rng_states.states()
        if self._rng_state is not None and state != self._rng_state:
            self.fail("random numbers were drawn around the library's functions (from a "
                      "Generator's .rng, or a Generator made inside the step); the replay would "
                      "reuse the recorded values: draw with rg.rand/rg.randn(..., generator=g)")
        self._rng_state = state

    def _after_event(self) -> None:
        self._clock = WRITE_CLOCK[0]
        self._rng_state = rng_states.states()

    @contextmanager
    def paused(self):
        autograd._tape = None
        try:
            yield
        finally:
            autograd._tape = self

    def _run(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Any:
        """fn(*args, **kwargs) as one event: checked for writes and draws since the last event,
        run with the tape paused (its inner ops are not recorded), then the new last event."""
        self._check_outside()
        with self.paused():
            result = fn(*args, **kwargs)
        self._after_event()
        return result

    # -- events ----------------------------------------------------------------------------------
    def apply(self, cls: type, args: tuple, kwargs: dict) -> Tensor:
        """Function.apply, recorded."""
        forward, returned = cls.forward, []

        def probe(ctx, *arrays, **options):   # to see whether forward returns an ndarray
            out = forward(ctx, *arrays, **options)
            returned.append((type(out) is np.ndarray, ctx))
            return out

        own = cls.__dict__.get("forward")
        cls.forward = staticmethod(probe)
        try:
            result = self._run(cls.apply, *args, **kwargs)
        finally:
            if own is None:
                del cls.forward
            else:
                cls.forward = own
        record = autograd._grad_enabled and any(isinstance(a, Tensor) and a.requires_grad
                                                for a in args)
        needs = tuple(record and isinstance(a, Tensor) and a.requires_grad for a in args)
        exprs, uses = [], []
        for a in args:
            e, u = self._value(a)
            exprs.append(e)
            uses += u
        self._keywords(kwargs, exprs, uses)
        ctx = self._new("c")
        out = self._new("v")
        self._emit(f"{ctx} = new({self._object(cls, 'C')}); "
                   f"{ctx}.needs_input_grad = {needs!r}", (ctx,))
        call = f"{self._object(forward, 'F')}({', '.join([ctx] + exprs)})"
        if not returned[0][0]:
            call = f"asarray({call})"
        self._emit(f"{out} = {call}", (out,), (ctx, *uses))
        self._name_array(result.data, out, out)
        node = result.grad_fn
        self.events.append(("op", cls, ctx, out, exprs[:len(args)], exprs[len(args):],
                            _attributes(returned[0][1])))
        if node is not None:
            self.nodes[id(node)] = ctx
            self._alive.append(node)
            # arrays the op keeps on its node (BatchNorm's batch statistics) are reachable too
            for key, value in node.__dict__.items():
                if isinstance(value, np.ndarray) and id(value) not in self.names:
                    self._name_array(value, f"{ctx}.{key}", ctx)
        return result

    def call(self, fn: Callable, args: tuple, kwargs: dict) -> Any:
        """A helper marked `autograd.array_function` (e.g. a dropout mask): replayed, not frozen."""
        out = self._run(fn, *args, **kwargs)
        if isinstance(out, (bool, int, float, str, np.generic)):
            self.fail(f"{fn.__name__} returned a Python value ({type(out).__name__}); "
                      "the replay could not tell it apart from a constant")
            return out
        exprs, uses = [], []
        for a in args:
            if isinstance(a, Tensor):     # passed as the tensor itself: it must outlive the step
                if id(a.data) in self.names and id(a.data) not in self._read:
                    self.fail(f"{fn.__name__} was given a tensor computed inside the step")
                exprs.append(self._object(a, "T"))
                continue
            e, u = self._value(a)
            exprs.append(e)
            uses += u
        self._keywords(kwargs, exprs, uses)
        code = f"{self._object(fn, 'F')}({', '.join(exprs)})"
        if out is None:                   # a state update
            self.events.append(("call", fn, None, exprs))
            self._emit(code, (), tuple(uses))
            return out
        local = self._new("v")
        self.events.append(("call", fn, local, exprs))
        self._emit(f"{local} = {code}", (local,), tuple(uses))
        self._name_array(out, local, local)
        return out

    def effect(self, method: Callable, args: tuple, kwargs: dict) -> Any:
        """A state change outside ops (an optimizer step, zero_grad): replayed as the same call."""
        result = self._run(method, *args, **kwargs)
        exprs = [self._value(a)[0] for a in args]
        exprs += [f"{k}={self._value(v)[0]}" for k, v in kwargs.items()]
        self._emit(f"{self._object(method, 'M')}({', '.join(exprs)})")
        self.events.append(("effect", method, args, kwargs))
        return result

    def escape(self, what: str) -> None:
        self.fail(f"{what} reads tensor values into Python inside the step (data-dependent "
                  "control flow cannot be replayed); move it out of the compiled function")

    # -- the backward walk, recorded -------------------------------------------------------------
    def backward(self, roots, root_grads, retain_graph: bool, capture) -> None:
        """autograd.run_backward, writing down each array operation it performs."""
        self._check_outside()
        if capture is not None:
            self.fail("rg.grad() inside the step")
            with self.paused():
                return autograd.run_backward(roots, root_grads, retain_graph, capture)
        grads: dict = {}          # node -> (gradient, expression)
        leaf_grads: dict = {}     # leaf -> [gradient, expression, owned]
        pending: list = []
        for root, g in zip(roots, root_grads):
            expr = self._value(g)[0]
            if root.grad_fn is None:
                self._to_leaf(leaf_grads, root, g, expr, False)
            else:
                self._send(grads, pending, root.grad_fn, g, expr)
        clock = WRITE_CLOCK[0]
        while pending:
            node = heapq.heappop(pending)[1]
            g, g_expr = grads.pop(node)
            if node._hooks or node._retain is not None:
                self.fail("a gradient hook or retain_grad() on a tensor inside the step")
            ctx = self.nodes.get(id(node))
            if ctx is None:
                self.fail("backward() through a graph built outside the compiled step")
                ctx = self._object(node, "N")
            nexts = node.next_functions
            if nexts is None:
                raise RuntimeError(
                    f"{node.name()}: trying to backward through the graph a second time, but its "
                    "saved values were freed by the first backward. Pass retain_graph=True to the "
                    "first backward(), or detach() the state carried between steps.")
            if node._clock is not None and node._clock != clock:
                autograd._check_versions(node)
            backward = type(node).backward
            if type(node) in _BACKWARD_INTO and _exclusive(g):
                backward = _BACKWARD_INTO[type(node)]
            in_grads = node.backward(node, g)
            out = self._new("v")
            self._emit(f"{out} = {self._object(backward, 'B')}({ctx}, {g_expr})",
                       (out,), (ctx, g_expr))
            received: list = []
            self.events.append(("backward", type(node), ctx, g_expr, received))
            single = type(in_grads) is not tuple
            if single:
                in_grads = (in_grads,)
            if len(in_grads) != len(nexts):
                raise RuntimeError(f"{node.name()}: backward returned {len(in_grads)} gradients "
                                   f"for {len(nexts)} inputs")
            for i, (parent, pg) in enumerate(zip(nexts, in_grads)):
                if parent is None or pg is None:
                    continue
                local = out if single else self._new("v")
                if not single:
                    self._emit(f"{local} = {out}[{i}]", (local,), (out,))
                received.append((i, local))
                if type(pg) is not np.ndarray:
                    pg = autograd._as_array(pg)
                    self._emit(f"{local} = as_array({local})", (local,), (local,))
                if isinstance(parent, Function):
                    shape, dtype = parent._shape, parent._dtype
                else:
                    shape, dtype = parent.data.shape, parent.data.dtype
                if pg.shape != shape or pg.dtype is not dtype:
                    self.events.append(("conform", local, pg.shape, shape, dtype))
                    pg = _conform(pg, shape, dtype)
                    self._emit(f"{local} = conform({local}, {shape!r}, {self._object(dtype)})",
                               (local,), (local,))
                self.meta[local] = (pg.shape, pg.dtype)
                if isinstance(parent, Function):
                    self._send(grads, pending, parent, pg, local)
                else:
                    self._to_leaf(leaf_grads, parent, pg, local, pg is not g and pg.base is None)
            in_grads = pg = None        # the walk's own references: `_exclusive` counts the rest
            if not retain_graph:
                node.__dict__.clear()
                node.next_functions = None
        delivered: set[int] = set()
        for leaf, (g, expr, owned) in leaf_grads.items():
            if leaf._hooks:
                self.fail("a gradient hook on a leaf tensor")
            copy = not owned or id(g) in delivered
            with self.paused():
                _deliver(leaf, g, copy)
            delivered.add(id(leaf.grad.data))
            self._emit(f"deliver({self._object(leaf, 'T')}, {expr}, {copy})", (), (expr,))
            self.events.append(("deliver", leaf, expr, copy))
        self._after_event()

    def _send(self, grads: dict, pending: list, node: Function, g, expr: str) -> None:
        if node in grads:
            old, old_expr = grads[node]
            local = self._new("v")
            self._emit(f"{local} = {old_expr} + {expr}", (local,), (old_expr, expr))
            self.events.append(("add", local, old_expr, expr))
            grads[node] = (old + g, local)
            self.meta[local] = (grads[node][0].shape, grads[node][0].dtype)
        else:
            grads[node] = (g, expr)
            heapq.heappush(pending, (-node._seq, node))

    def _to_leaf(self, leaf_grads: dict, leaf: Tensor, g, expr: str, owned: bool) -> None:
        entry = leaf_grads.get(leaf)
        if entry is None:
            leaf_grads[leaf] = [g, expr, owned]
        else:
            local = self._new("v")
            self._emit(f"{local} = {entry[1]} + {expr}", (local,), (entry[1], expr))
            self.events.append(("add", local, entry[1], expr))
            entry[0], entry[1], entry[2] = entry[0] + g, local, True
            self.meta[local] = (entry[0].shape, entry[0].dtype)

    # -- after the run ----------------------------------------------------------------------------
    def guards(self) -> tuple:
        """(object, state function, recorded state) that must still hold for a replay: modules'
        train/eval mode and hooks, and whether each tensor the step reads requires grad."""
        checks = [(m, _module_state, state) for m, state in self.modules.items()]
        checks += [(t, _requires_grad, t.requires_grad) for name, t in self.objects.items()
                   if name.startswith("T")]
        return tuple(checks)

    def release(self) -> None:
        """Drop what was only needed while recording (it keeps the run's activations alive)."""
        self._alive.clear()
        self.names.clear()
        self.nodes.clear()
        self._object_names.clear()

    def difference(self, other: "Tape") -> str:
        """Why two recordings of one signature differ ("" if they agree)."""
        if [line[0] for line in self.lines] != [line[0] for line in other.lines]:
            return ("the step ran different operations on its second call than on its first "
                    "(data-dependent control flow?)")
        if self.objects.keys() != other.objects.keys() or self.output != other.output:
            return "the step's structure changed between its first two calls"
        for name, obj in self.objects.items():
            if not _same(obj, other.objects[name]):
                return (f"a value the step did not compute through ops ({type(obj).__name__} "
                        f"{name}) changed between its first two calls: it would be frozen in "
                        "the replay (computed from .data, or state changed outside ops?)")
        if list(self.modules.items()) != list(other.modules.items()):
            return "the step called different modules on its second call"
        return ""

    # -- the result --------------------------------------------------------------------------------
    def set_output(self, value: Any) -> None:
        self.output = self._output_spec(value)

    def _output_spec(self, value: Any) -> Any:
        if isinstance(value, Tensor):
            node = value.grad_fn
            if node is not None and node.next_functions is not None:
                self.fail("the step returns a tensor whose graph is still alive (backward "
                          "outside the step?); a replay returns tensors without a graph: call "
                          "backward inside the step, or run it under rg.no_grad()")
            known = self.names.get(id(value.data))
            if known is None:
                self.fail("the step returns a tensor it did not compute")
                return ("const", value)
            return ("tensor", known[0], known[1])
        if isinstance(value, tuple) and hasattr(type(value), "_fields"):   # e.g. max's (values,
            return ("namedtuple", [self._output_spec(v) for v in value], type(value))  # indices)
        if isinstance(value, (tuple, list)):
            return (type(value).__name__, [self._output_spec(v) for v in value])
        if isinstance(value, dict):
            return ("dict", {k: self._output_spec(v) for k, v in value.items()})
        if value is None or isinstance(value, (bool, int, float, str)):
            return ("const", value)
        self.fail(f"the step returns a {type(value).__name__}")
        return ("const", value)

    def program(self) -> tuple[Callable, str]:
        """The replay function (inputs: the step's arrays, in order) and its source."""
        result = self._output_source(self.output)
        uses_at_end = set(self._output_locals(self.output))
        local = {n for _, defs, _ in self.lines for n in defs}
        last: dict[str, int] = {}
        for i, (_, defs, uses) in enumerate(self.lines):
            for name in defs + uses:
                last[name] = i
        body = []
        for i, (code, defs, uses) in enumerate(self.lines):
            body.append(code)
            dead = sorted({n for n in defs + uses if last.get(n) == i and n in local
                           and n not in uses_at_end})
            if dead:   # free each value after its last use, as the eager walk frees the graph
                body.append("del " + ", ".join(dead))
        body.append(f"return {result}")
        names = sorted(self.objects)
        helpers = {"new": object.__new__, "asarray": np.asarray, "as_array": autograd._as_array,
                   "conform": _conform, "deliver": _deliver, "wrap": _wrap}
        params = ", ".join(names + sorted(helpers))
        source = (f"def make({params}):\n"
                  f"    def replay({', '.join(self.inputs)}):\n"
                  + "".join(f"        {line}\n" for line in body)
                  + "    return replay\n")
        namespace: dict = {}
        exec(compile(source, "<rg.compile>", "exec"), namespace)   # noqa: S102 - our own code
        values = {**self.objects, **helpers}
        return namespace["make"](**values), source

    def _output_source(self, spec: Any) -> str:
        return output_source(
            spec, lambda tensor: f"wrap({tensor[1]})",
            lambda value: self._object(value) if _literal(value) is None else _literal(value),
            lambda cls: self._object(cls, "Y"))

    def _output_locals(self, spec: Any) -> list[str]:
        kind = spec[0]
        if kind == "tensor":
            return [spec[2]]
        if kind == "const":
            return []
        values = spec[1].values() if kind == "dict" else spec[1]
        return [n for v in values for n in self._output_locals(v)]


def output_source(spec: Any, tensor: Callable[[tuple], str], const: Callable[[Any], str],
                  named: Callable[[type], str]) -> str:
    """Source rebuilding a step's result from its spec (`Tape._output_spec`): containers as they
    were, a tensor by `tensor(its spec)`, a constant by `const(value)`, a namedtuple class by
    `named(cls)`. The NumPy replay and the Numba wrapper differ only in those three."""
    kind = spec[0]
    if kind == "tensor":
        return tensor(spec)
    if kind == "const":
        return const(spec[1])
    if kind == "dict":
        return "{" + ", ".join(f"{k!r}: {output_source(v, tensor, const, named)}"
                               for k, v in spec[1].items()) + "}"
    items = [output_source(v, tensor, const, named) for v in spec[1]]
    if kind == "namedtuple":
        return f"{named(spec[2])}({', '.join(items)})"
    if kind == "tuple":
        return "(" + "".join(item + ", " for item in items) + ")"
    return "[" + ", ".join(items) + "]"


def _same(a: Any, b: Any) -> bool:
    """Equal as constants of a recording: the same object, or equal values."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, Tensor):
        a, b = a.data, b.data
    if isinstance(a, np.ndarray):
        return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    try:
        return bool(a == b)
    except Exception:   # noqa: BLE001 - an object without a usable ==: not the same constant
        return False


@contextmanager
def recording(tape: Tape):
    """Install `tape` for the duration of one eager run of the step."""
    from ..nn.module import Module
    from ..optim.lr_scheduler import LRScheduler
    from ..optim.optimizer import Optimizer

    patched: list[tuple[type, str, Any]] = []

    def patch(cls: type, name: str, wrapper: Callable) -> None:
        patched.append((cls, name, cls.__dict__[name]))
        setattr(cls, name, wrapper)

    for name in _ESCAPES:
        if name in Tensor.__dict__:
            patch(Tensor, name, _escaping(tape, Tensor.__dict__[name], name))
    original_call = Module.__call__

    def module_call(self, *args, **kwargs):
        tape.modules.setdefault(self, _module_state(self))
        return original_call(self, *args, **kwargs)

    patch(Module, "__call__", module_call)
    for cls in _with_own(Optimizer, ("step", "zero_grad")) + _with_own(Module, ("zero_grad",)) \
            + _with_own(LRScheduler, ("step",)):
        for name in ("step", "zero_grad"):
            if name in cls.__dict__:
                patch(cls, name, _as_effect(tape, cls.__dict__[name]))
    global_state = np.random.get_state()[1].copy()
    previous = autograd._tape
    autograd._tape = tape
    tape._after_event()
    try:
        yield tape
        tape._check_outside()
        if not np.array_equal(np.random.get_state()[1], global_state):
            tape.fail("random numbers were drawn from NumPy's global generator (np.random.*); "
                      "draw through the library's generator (rg.manual_seed governs it)")
    finally:
        autograd._tape = previous
        for cls, name, original in reversed(patched):
            setattr(cls, name, original)


def _attributes(ctx: Function) -> dict:
    """The plain values an op's forward kept on its node (a reduction's dim, a loss's reduction):
    what a lowering needs to know of how forward ran."""
    return {k: v for k, v in ctx.__dict__.items() if _plain(v)}


def _requires_grad(t: Tensor) -> bool:
    return t.requires_grad


def _module_state(module) -> tuple:
    """What a replay assumes of a module: its train/eval mode, how many forward hooks it has, its
    plain attributes (numbers, strings, tuples of them: a Dropout's p, a temperature the forward
    divides by), which the recording froze in as constants, and which parameters, buffers and
    submodules it holds (by id: a replaced layer or parameter must not be replayed as the old one)."""
    plain = tuple((name, value) for name, value in vars(module).items()
                  if name[0] != "_" and name != "training" and name.isidentifier()
                  and _plain(value))
    held = tuple((registry, name, id(value)) for registry in _REGISTRIES
                 for name, value in getattr(module, registry).items())
    return (module.training, len(module._forward_pre_hooks) + len(module._forward_hooks), plain,
            held)


_REGISTRIES = ("_parameters", "_buffers", "_modules")


def _plain(value: Any) -> bool:
    if type(value) in (bool, int, float, str, type(None)):
        return True
    return type(value) is tuple and all(type(v) in (bool, int, float, str, type(None))
                                        for v in value)


def _with_own(base: type, names: tuple) -> list[type]:
    """`base` and its subclasses that define one of `names` themselves."""
    found, todo = [], [base]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if any(n in cls.__dict__ for n in names) and cls not in found:
            found.append(cls)
    return found


def _escaping(tape: Tape, method: Callable, name: str) -> Callable:
    def wrapper(self, *args, **kwargs):
        if autograd._tape is tape:
            tape.escape(f"Tensor.{name}()")
        return method(self, *args, **kwargs)
    return wrapper


def _as_effect(tape: Tape, method: Callable) -> Callable:
    def wrapper(self, *args, **kwargs):
        if autograd._tape is not tape:     # nested inside another effect: part of that call
            return method(self, *args, **kwargs)
        if any(callable(a) for a in (*args, *kwargs.values())):
            tape.fail(f"{type(self).__name__}.{method.__name__} with a closure")
            with tape.paused():
                return method(self, *args, **kwargs)
        return tape.effect(method.__get__(self), args, kwargs)
    return wrapper
