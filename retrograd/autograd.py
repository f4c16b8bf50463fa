"""Reverse-mode automatic differentiation: the graph node (`Function`), grad mode, and the backward walk.

The forward pass of every op is a `Function.apply` call. When grad mode is on and some input requires a
gradient, `apply` links the op into the graph: the op instance becomes the output's `grad_fn` and keeps
what its backward needs. `backward()` then walks the graph once, in reverse topological order, applying
the chain rule at each node: the gradient of the loss with respect to a node's output (its delta) comes
in, and the gradients with respect to its inputs go out.
"""
from __future__ import annotations

import functools
import heapq
import itertools
from typing import Any, Callable, Sequence

import numpy as np

from .tensor import WRITE_CLOCK, Tensor, _wrap

_grad_enabled = True

# Called as fn(ctx, args, kwargs, result) after every op's forward while non-empty: anomaly mode
# (retrograd.anomaly) and the ONNX exporter's trace. Empty otherwise, so it costs one check per op.
_apply_observers: list = []
_anomaly_mode = False      # set by anomaly.set_detect_anomaly; checks each gradient in backward
# The recorder of retrograd.compile while it records a step (None otherwise): apply, the backward
# walk and `array_function` helpers hand their work to it, which runs it eagerly and writes it down.
_tape = None

# Numbers graph nodes in the order they are made. A node's inputs always exist before it does, so a
# node is numbered after every node it depends on: the backward walk goes from high numbers to low.
_sequence = itertools.count()

_new = object.__new__
_NEEDS_ONE = (True,)
_NO_NEEDS = ((), (False,), (False, False))


def is_grad_enabled() -> bool:
    """True when operations are being recorded for backward."""
    return _grad_enabled


def set_grad_enabled(mode: bool) -> None:
    global _grad_enabled
    _grad_enabled = bool(mode)


class _GradMode:
    """Context manager and decorator that sets grad mode for a block, restoring it afterwards."""

    mode = True

    def __enter__(self) -> None:
        self._previous = _grad_enabled
        set_grad_enabled(self.mode)

    def __exit__(self, *exc: Any) -> None:
        set_grad_enabled(self._previous)

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradMode):
    """Disable graph recording, e.g. for evaluation or parameter updates.

    >>> with rg.no_grad():
    ...     y = model(x)          # y.requires_grad is False
    """

    mode = False


class enable_grad(_GradMode):
    """Re-enable graph recording inside a `no_grad` block."""

    mode = True


class RemovableHandle:
    """Returned by `register_hook`; `handle.remove()` takes the hook off again."""

    __slots__ = ("_hooks", "_hook")

    def __init__(self, hooks: list, hook: Callable):
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


class Function:
    """Base class of every differentiable op, built-in or user-defined.

    Subclass it with two static methods working on NumPy arrays, and call it through `apply`:

    >>> class Cube(rg.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x ** 3
    ...     @staticmethod
    ...     def backward(ctx, grad):
    ...         (x,) = ctx.saved_tensors
    ...         return grad * 3 * x ** 2
    >>> y = Cube.apply(rg.tensor([2.0], requires_grad=True))

    `forward(ctx, *inputs, **options)` receives the arrays of tensor inputs (other arguments as they are)
    and returns one array. `backward(ctx, grad)` receives dL/d(output) and returns one gradient per
    positional input (a tuple if more than one), None where there is none. Gradients may keep the
    broadcast shape of the output: the engine sums them back to each input's shape. `ctx.needs_input_grad`
    tells which inputs want a gradient, so forward can save only what backward will use.

    The instance is the graph node: `tensor.grad_fn`, with `next_functions` pointing at the nodes (or leaf
    tensors) that produced its inputs.
    """

    # The engine's fields of a recorded node live in slots, apart from the __dict__ where the op
    # keeps what it saved for backward: freeing a node after backward is one __dict__.clear().
    __slots__ = ("__dict__", "__weakref__", "next_functions", "_seq", "_shape", "_dtype")

    # Set on ops whose output is a NumPy view of their first input, so in-place writes see each other.
    returns_view = False

    def save_for_backward(self, *arrays: Any) -> None:
        self.saved_tensors = arrays

    @staticmethod
    def forward(ctx: "Function", *args: Any, **kwargs: Any) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: "Function", grad: np.ndarray) -> Any:
        raise NotImplementedError

    # Per-node defaults, read through the class until a node sets its own (saves work per op).
    saved_tensors: tuple = ()
    _hooks = None
    _retain = None
    _clock = None          # WRITE_CLOCK when made, for nodes that saved tensors

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Tensor:
        if _tape is not None:
            return _tape.apply(cls, args, kwargs)
        ctx = _new(cls)
        # The inputs' arrays, and the graph links when recording (nexts is None otherwise). One
        # and two inputs, most ops, are unrolled: this runs once per op, and on small tensors its
        # overhead is most of an op's cost. NumPy scalars become Python scalars: they take the
        # tensor's dtype, never upcast it.
        n = len(args)
        if n == 1 and isinstance(args[0], Tensor):
            a = args[0]
            x = a.data
            if a.requires_grad and _grad_enabled:
                ctx.needs_input_grad = _NEEDS_ONE
                nexts = (a.grad_fn or a,)
            else:
                ctx.needs_input_grad = _NO_NEEDS[1]
                nexts = None
            out = cls.forward(ctx, x, **kwargs) if kwargs else cls.forward(ctx, x)
        elif n == 2:
            a, b = args
            ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
            if ta:
                x, ra = a.data, a.requires_grad
            else:
                x, ra = (a.item() if isinstance(a, np.generic) else a), False
            if tb:
                y, rb = b.data, b.requires_grad
            else:
                y, rb = (b.item() if isinstance(b, np.generic) else b), False
            if (ra or rb) and _grad_enabled:
                ctx.needs_input_grad = (ra, rb)
                nexts = ((a.grad_fn or a) if ra else None, (b.grad_fn or b) if rb else None)
            else:
                ctx.needs_input_grad = _NO_NEEDS[2]
                nexts = None
            out = cls.forward(ctx, x, y, **kwargs) if kwargs else cls.forward(ctx, x, y)
        else:
            arrays, needs, links = [], [], []
            record = False
            for a in args:
                if isinstance(a, Tensor):
                    arrays.append(a.data)
                    if a.requires_grad:
                        record = True
                        needs.append(True)
                        links.append(a.grad_fn or a)
                        continue
                else:
                    arrays.append(a.item() if isinstance(a, np.generic) else a)
                needs.append(False)
                links.append(None)
            if record and _grad_enabled:
                ctx.needs_input_grad, nexts = tuple(needs), tuple(links)
            else:
                ctx.needs_input_grad, nexts = (False,) * n, None
            out = cls.forward(ctx, *arrays, **kwargs)
        if type(out) is not np.ndarray:
            out = np.asarray(out)
        result = _new(Tensor)
        result.data = out
        result.grad = result._hooks = None
        if cls.returns_view:
            result._version, result._base = args[0]._version_cell(), args[0]
        else:
            result._version = result._base = None
        dtype = out.dtype
        if nexts is not None and dtype.kind == "f":  # integer/bool results carry no grad
            result.requires_grad = True
            result.grad_fn = ctx
            ctx.next_functions = nexts
            ctx._seq = next(_sequence)
            ctx._shape = out.shape
            ctx._dtype = dtype
            saved = ctx.saved_tensors
            if saved:
                ctx._clock = WRITE_CLOCK[0]
                if n > 2:
                    ctx._saved_cells = _saved_cells(saved, args, result)
                else:   # _saved_cells, unrolled for the inputs at hand
                    cells = []
                    for s in saved:
                        if s is out:
                            cells.append((result._version_cell(), "output"))
                        elif s is x and (n == 1 or ta):
                            cells.append((a._version or a._version_cell(), "input"))
                        elif n == 2 and s is y and tb:
                            cells.append((b._version or b._version_cell(), "input"))
                    ctx._saved_cells = cells
        else:
            result.requires_grad = False
            result.grad_fn = None
        if _apply_observers:
            for observe in _apply_observers:
                observe(ctx, args, kwargs, result)
        return result

    # -- introspection (used by graph printers and by users learning how backprop works) --
    def name(self) -> str:
        return type(self).__name__ + "Backward"

    def __repr__(self) -> str:
        return f"<{self.name()}>"

    def register_hook(self, hook: Callable) -> RemovableHandle:
        """Hook on the gradient flowing into this node's output (what `Tensor.register_hook` uses)."""
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(hook)
        return RemovableHandle(self._hooks, hook)


def array_function(fn: Callable) -> Callable:
    """Mark a helper that computes an array outside any op, e.g. a dropout mask drawn from the
    library's generator: a compiled step replays the call instead of freezing its result."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if _tape is None:
            return fn(*args, **kwargs)
        return _tape.call(fn, args, kwargs)
    return wrapper


def _saved_cells(saved: tuple, args: tuple, result: Tensor) -> list:
    """Version cells of the tensors whose arrays the op saved, to catch in-place writes later."""
    cells = []
    out = result.data
    for s in saved:
        if s is out:
            cells.append((result._version_cell(), "output"))
        elif isinstance(s, np.ndarray):          # not None or a number: an array to watch
            for a in args:
                if isinstance(a, Tensor) and a.data is s:
                    # `a._version or`: an input usually has its cell already; skip the method call
                    cells.append((a._version or a._version_cell(), "input"))
                    break
    return cells


# ---------------------------------------------------------------------------------------------------
# The backward walk
# ---------------------------------------------------------------------------------------------------

def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum a gradient over the axes along which its input was broadcast (adjoint of broadcasting)."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(i + extra for i, n in enumerate(shape)
                                       if n == 1 and grad.shape[i + extra] != 1)
    grad = grad.sum(axis=axes, keepdims=True) if axes else grad
    return grad.reshape(shape)


def _conform(grad: np.ndarray, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """A gradient in the shape and dtype of the value it is the gradient of."""
    if grad.shape != shape:
        grad = unbroadcast(grad, shape)
    if grad.dtype != dtype:
        grad = grad.astype(dtype)
    return grad


def _as_array(g: Any) -> np.ndarray:
    return g.data if isinstance(g, Tensor) else np.asarray(g)


def _call_hooks(hooks: list, grad: np.ndarray) -> tuple[np.ndarray, bool]:
    """Run gradient hooks in order; each may return a replacement. Returns (grad, replaced)."""
    replaced = False
    for hook in list(hooks):
        out = hook(Tensor(grad))
        if out is not None:
            grad, replaced = _as_array(out), True
    return grad, replaced


def _check_versions(node: Function) -> None:
    for cell, role in node._saved_cells:
        if cell[0] > node._clock:
            raise RuntimeError(
                f"{node.name()}: one of the tensors needed for gradient computation (its {role}) "
                "was modified by an in-place operation after it was saved. Use the out-of-place "
                "form (a = a + b) for tensors the graph still needs, and don't step the optimizer "
                "between a forward pass and its backward.")


def run_backward(roots: Sequence[Tensor], root_grads: Sequence[np.ndarray], retain_graph: bool,
                 capture: dict | None = None) -> None:
    """Propagate `root_grads` from `roots` back through the graph.

    Without `capture`, gradients reaching leaves are added to their `.grad`. With `capture` (a dict whose
    keys are leaf tensors or nodes), gradients are stored there instead and no `.grad` is touched: this
    is `rg.grad`.
    """
    if _tape is not None:
        return _tape.backward(roots, root_grads, retain_graph, capture)
    grads: dict = {}        # node -> dL/d(node output), summed over its consumers
    leaf_grads: dict = {}   # leaf tensor -> [gradient, owned]
    # Nodes that have received some gradient, latest-made first. Every consumer of a node was made
    # after it, so when a node comes off this queue its gradient is complete (PyTorch orders its
    # walk by the same sequence numbers). One pass, no separate topological sort.
    pending: list = []      # heap of (-node._seq, node)
    for root, g in zip(roots, root_grads):
        if root.grad_fn is None:
            _deliver_leaf(leaf_grads, root, g, owned=False)
        else:
            _send(grads, pending, root.grad_fn, g)

    # The loop below runs once per node: helpers are inlined and globals read into locals.
    push, pop, ndarray = heapq.heappush, heapq.heappop, np.ndarray
    clock = WRITE_CLOCK[0]
    while pending:
        node = pop(pending)[1]
        g = grads.pop(node)
        if node._hooks or node._retain is not None or capture is not None:
            g = _observe_node(node, g, capture)
        nexts = node.next_functions
        if nexts is None:
            raise RuntimeError(
                f"{node.name()}: trying to backward through the graph a second time, but its saved "
                "values were freed by the first backward. Pass retain_graph=True to the first "
                "backward(), or detach() the state carried between steps (e.g. an RNN's hidden state "
                "between chunks).")
        made = node._clock
        if made is not None and made != clock:
            _check_versions(node)
        in_grads = node.backward(node, g)
        if type(in_grads) is not tuple:
            in_grads = (in_grads,)
        if _anomaly_mode:
            anomaly.check_backward(node, g, in_grads)
        if len(in_grads) != len(nexts):
            raise RuntimeError(f"{node.name()}: backward returned {len(in_grads)} gradients for "
                               f"{len(nexts)} inputs")
        for parent, pg in zip(nexts, in_grads):
            if parent is None or pg is None:
                continue
            if type(pg) is not ndarray:
                pg = _as_array(pg)
            if isinstance(parent, Function):
                if pg.shape != parent._shape or pg.dtype is not parent._dtype:
                    pg = _conform(pg, parent._shape, parent._dtype)
                if parent in grads:
                    grads[parent] = grads[parent] + pg
                else:
                    grads[parent] = pg
                    push(pending, (-parent._seq, parent))
            else:                                   # a leaf tensor
                data = parent.data
                if pg.shape != data.shape or pg.dtype is not data.dtype:
                    pg = _conform(pg, data.shape, data.dtype)
                entry = leaf_grads.get(parent)
                if entry is None:
                    # The incoming gradient passed through, or a view, may be shared with other
                    # gradients; a leaf's .grad must own its memory (checked again at delivery).
                    leaf_grads[parent] = [pg, pg is not g and pg.base is None]
                else:
                    entry[0] = entry[0] + pg
                    entry[1] = True
        if not retain_graph:
            # Free everything the op kept for backward (saved arrays, options), and mark the node
            # freed: a later walk reaching it reports the error.
            node.__dict__.clear()
            node.next_functions = None

    delivered: set[int] = set()
    for leaf, (g, owned) in leaf_grads.items():
        if leaf._hooks:
            g, replaced = _call_hooks(leaf._hooks, g)
            owned = owned and not replaced
        if capture is not None:
            if leaf in capture:
                capture[leaf] = g
        elif leaf.grad is None:
            if not owned or id(g) in delivered:   # e.g. a custom op returning one array twice
                g = g.copy()
            delivered.add(id(g))
            grad = _new(Tensor)     # _wrap(g), inlined
            grad.data, grad.grad, grad.requires_grad, grad.grad_fn = g, None, False, None
            grad._version = grad._hooks = grad._base = None
            leaf.grad = grad
        else:
            # Replace rather than add in place: the old array may be referenced elsewhere.
            leaf.grad.data = leaf.grad.data + g


def _observe_node(node: Function, g: np.ndarray, capture: dict | None) -> np.ndarray:
    """A node's gradient through its hooks, into a retained .grad and into `capture`."""
    if node._hooks:
        g, _ = _call_hooks(node._hooks, g)
    if node._retain is not None:
        _retain(node, g)
    if capture is not None and node in capture:
        capture[node] = g
    return g


def _send(grads: dict, pending: list, node: Function, g: np.ndarray) -> None:
    """Add g to the gradient of node's output; queue the node when it receives its first."""
    if node in grads:
        grads[node] = grads[node] + g
    else:
        grads[node] = g
        heapq.heappush(pending, (-node._seq, node))


def _retain(node: Function, g: np.ndarray) -> None:
    t = node._retain()
    if t is not None:  # accumulates across backward calls, as a leaf's .grad does
        t.grad = _wrap(g.copy()) if t.grad is None else _wrap(t.grad.data + g)


def _deliver_leaf(leaf_grads: dict, leaf: Tensor, g: np.ndarray, owned: bool) -> None:
    entry = leaf_grads.get(leaf)
    if entry is None:
        leaf_grads[leaf] = [g, owned]
    else:
        entry[0] = entry[0] + g
        entry[1] = True


def _root_gradient(t: Tensor, gradient: Any, op: str) -> np.ndarray:
    if gradient is None:
        if t.data.size != 1:
            raise RuntimeError(
                f"{op}: the output has shape {tuple(t.shape)}, so the gradient is not implied: pass "
                f"gradient= (an array of shape {tuple(t.shape)}, usually ones), or reduce the output "
                "to a scalar first (e.g. .sum() or .mean()).")
        g = np.array(1, dtype=t.data.dtype)
        return g.reshape(t.data.shape) if t.data.ndim else g
    g = _as_array(gradient)
    if g.shape != t.data.shape:
        raise RuntimeError(f"{op}: gradient has shape {g.shape} but the output has shape "
                           f"{t.data.shape}")
    return g.astype(t.data.dtype, copy=False)


def backward(tensor: Tensor, gradient: Any = None, retain_graph: bool = False,
             create_graph: bool = False) -> None:
    """Compute d(tensor)/d(leaf) for every leaf that requires grad and add it to `leaf.grad`."""
    if create_graph:
        raise NotImplementedError("backward(create_graph=True): higher-order gradients are not "
                                  "implemented yet")
    if not tensor.requires_grad:
        raise RuntimeError("backward(): this tensor does not require grad and has no grad_fn; "
                           "make sure some input has requires_grad=True and that the forward pass "
                           "ran outside rg.no_grad()")
    run_backward([tensor], [_root_gradient(tensor, gradient, "backward()")], retain_graph)


def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
         grad_outputs: Any = None, retain_graph: bool = False, allow_unused: bool = False,
         create_graph: bool = False) -> tuple[Tensor | None, ...]:
    """Gradients of `outputs` with respect to `inputs`, returned as a tuple; no `.grad` is changed.

    >>> x = rg.tensor([1.0, 2.0], requires_grad=True)
    >>> (dx,) = rg.grad((x ** 2).sum(), x)      # dx == [2., 4.]
    """
    if create_graph:
        raise NotImplementedError("grad(create_graph=True): higher-order gradients are not "
                                  "implemented yet")
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs] * len(outputs) if grad_outputs is None else [grad_outputs]
    roots, root_grads = [], []
    for out, g in zip(outputs, grad_outputs):
        if not out.requires_grad:
            raise RuntimeError("grad(): an output does not require grad and has no grad_fn")
        roots.append(out)
        root_grads.append(_root_gradient(out, g, "grad()"))
    capture: dict[Any, Any] = {}
    keys = []
    for x in inputs:
        if not x.requires_grad:
            raise RuntimeError("grad(): an input does not require grad")
        key = x.grad_fn if x.grad_fn is not None else x
        capture[key] = None
        keys.append(key)
    run_backward(roots, root_grads, retain_graph, capture)
    result = []
    for x, key in zip(inputs, keys):
        g = capture[key]
        if g is None and not allow_unused:
            raise RuntimeError("grad(): one of the inputs was not used to compute the outputs; "
                               "pass allow_unused=True to get None for it")
        result.append(None if g is None else Tensor(np.array(g, copy=True)))
    return tuple(result)


from . import anomaly  # noqa: E402 - after Function: anomaly imports this module
from .anomaly import detect_anomaly, is_anomaly_enabled, set_detect_anomaly  # noqa: E402,F401
