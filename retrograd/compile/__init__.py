"""`rg.compile`: record a training (or inference) step once, then replay it as plain array calls.

The first call for an input signature (shapes and dtypes of the tensor arguments, the values of the
others, grad mode, and the train/eval mode of every module the step calls) runs eagerly while a
`Tape` writes down what it does: each op's forward on arrays, each backward call and gradient sum
of the backward walk, and the optimizer's `zero_grad`/`step`. The second call records again and
checks that both recordings agree: the same ops in the same order, and the same constants (an
array an op received that the step did not compute through ops, e.g. from `.data`, would differ).
From the third call on, the recording is replayed: straight-line Python calling each op's own
forward and backward on arrays, no Tensors, no graph, no walk (`CompiledFunction.sources` shows it).

The contract is torch.compile's `fullgraph`: the step computes through library ops. Reading
values into Python (`.item()`, `bool(t)`, `float(t)`, `.numpy()`; comparisons themselves are ops
and replay), drawing random numbers other than through the library (dropout masks and
`rg.randn`-style draws are replayed: new per call, following `rg.manual_seed`), in-place writes
to tensors, and gradient hooks are detected while recording: the step then stays eager for that
signature, with one warning, or `fullgraph=True` raises `CompileError` at that point. Module
attributes, replaced layers and the step function's own plain globals are guarded: a change
records again.

>>> @rg.compile
... def step(x, y):
...     opt.zero_grad()
...     loss = F.cross_entropy(model(x), y)
...     loss.backward()
...     opt.step()
...     return loss
>>> for x, y in loader:
...     loss = step(x, y)
"""
from __future__ import annotations

import builtins
import functools
import warnings
from collections import OrderedDict
from typing import Any, Callable

import numpy as np

from .. import autograd
from ..tensor import Tensor
from .tape import Tape, recording

__all__ = ["compile", "CompiledFunction", "CompileError", "CompileWarning"]


class CompileError(RuntimeError):
    """A step that `rg.compile(fullgraph=True)` cannot record."""


class CompileWarning(UserWarning):
    """A compiled step falls back to eager execution (the message says why)."""


class _Entry:
    """One input signature: recorded once, verified by a second recording, then replayed."""

    __slots__ = ("_guards", "matches", "tape", "replay", "source", "eager")

    def __init__(self):
        self.guards = ()
        self.tape: Tape | None = None
        self.replay: Callable | None = None
        self.source = ""
        self.eager = False

    @property
    def guards(self) -> tuple:
        return self._guards

    @guards.setter
    def guards(self, guards: tuple) -> None:
        """Set the checks and `matches()`, which evaluates them all as one generated expression:
        it runs before every replay, and a call per check costs more than the XOR step's maths."""
        self._guards = guards
        self.matches = _guard_expression(guards)


class _Global:
    """The state function of a global variable the step function reads."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, namespace: dict) -> Any:
        return namespace.get(self.name, _Global)      # the class itself: "not defined"


def _cell_value(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:          # an empty cell: a variable not yet assigned
        return _Global


def _free_values(fn: Callable) -> tuple:
    """Guards on the plain values (numbers, strings, tuples of them) the step function reads from
    its globals and closure: a `beta` annealed between calls is a constant of the recording."""
    from .tape import _plain
    code = getattr(fn, "__code__", None)
    if code is None:
        return ()
    guards = []
    namespace = fn.__globals__
    for name in code.co_names:
        if name in namespace and _plain(namespace[name]):
            guards.append((namespace, _Global(name), namespace[name]))
    for cell in fn.__closure__ or ():
        value = _cell_value(cell)
        if _plain(value):
            guards.append((cell, _cell_value, value))
    return tuple(guards)


def _describe(state_of: Callable) -> str:
    if isinstance(state_of, _Global):
        return f"the global {state_of.name}"
    return "a variable it closes over"


def _guard_expression(guards: tuple) -> Callable[[], bool]:
    """A function returning whether every (object, state function, recorded state) still holds."""
    from .tape import _module_state, _requires_grad
    names: dict[str, Any] = {}
    terms = []
    for i, (obj, state_of, state) in enumerate(guards):
        names[f"o{i}"], names[f"s{i}"], names[f"f{i}"] = obj, state, state_of
        if isinstance(state_of, _Global):
            terms.append(f"o{i}[{state_of.name!r}] == s{i}")
            continue
        if state_of is _cell_value:
            terms.append(f"o{i}.cell_contents == s{i}")
            continue
        if state_of is _module_state and state[1] == 0:     # the common case, spelled out
            terms.append(f"o{i}.training == s{i}[0] and not o{i}._forward_pre_hooks "
                         f"and not o{i}._forward_hooks")
            for j, (attribute, value) in enumerate(state[2]):
                names[f"a{i}_{j}"] = value
                terms.append(f"o{i}.{attribute} == a{i}_{j}")
            for j, (registry, name, _) in enumerate(state[3]):
                names[f"h{i}_{j}"] = getattr(obj, registry)[name]   # held: its id stays unique
                terms.append(f"o{i}.{registry}[{name!r}] is h{i}_{j}")
        elif state_of is _requires_grad:
            terms.append(f"o{i}.requires_grad == s{i}")
        else:
            terms.append(f"f{i}(o{i}) == s{i}")
    source = f"def matches():\n    return {' and '.join(terms) or 'True'}\n"
    exec(builtins.compile(source, "<rg.compile guards>", "exec"), names)   # not rg.compile
    return names["matches"]


class CompiledFunction:
    """A step function with a cache of recordings; call it as the function itself."""

    def __init__(self, fn: Callable, fullgraph: bool = False, cache_size: int = 8,
                 backend: str = "numpy"):
        functools.update_wrapper(self, fn)
        self.fn, self.fullgraph, self.cache_size = fn, fullgraph, cache_size
        self.backend = backend
        self._cache: OrderedDict[tuple, list[_Entry]] = OrderedDict()
        self._warned: set[str] = set()
        self.recordings = 0        # how many eager recording runs happened (for tests and tuning)
        self._dropped_unused = 0   # signatures evicted before they were ever replayed

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        """As a method decorator: the instance becomes the first (keyed) argument."""
        return self if obj is None else functools.partial(self, obj)

    @property
    def sources(self) -> list[str]:
        """The generated replay code of each compiled signature."""
        return [e.source for entries in self._cache.values() for e in entries if e.source]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if autograd._tape is not None or _observed():
            # inside another compiled step (part of its recording), or under anomaly detection or
            # an exporter's trace, which watch every op: eager, as they expect
            return self.fn(*args, **kwargs)
        key, arrays = [autograd._grad_enabled], []
        for a in args:
            if isinstance(a, Tensor):
                a = a.data
            if isinstance(a, np.ndarray):
                arrays.append(a)
                key.append((a.shape, a.dtype))
            else:
                key.append(a)
        if kwargs:
            key.append(tuple(sorted(kwargs.items())))
        try:
            key = tuple(key)
            entries = self._cache.get(key)
        except TypeError:           # an unhashable argument: nothing to key a recording on
            self._warn("an argument is neither a tensor nor hashable")
            return self.fn(*args, **kwargs)
        entry = None
        if entries is not None:
            for e in entries:
                if _holds(e):
                    entry = e
                    break
            if entry is not None and entry.replay is not None:
                return entry.replay(*arrays)
            if entry is None and len(entries) >= self.cache_size:
                # a guarded state keeps changing (e.g. an attribute set every step): as torch's
                # recompile limit, stop recording for this signature's new states
                self._warn(f"recorded {len(entries)} states of one input signature ("
                           f"{_what_changed(entries[-1])} changed); new states run eagerly: pass "
                           "a value that changes per call as an argument")
                return self.fn(*args, **kwargs)
        if entry is None:
            if entries is None and self._dropped_unused >= self.cache_size:
                # signatures keep coming and going unreplayed: recording each costs more than
                # running it, so new ones run eagerly (torch's recompile limit does the same)
                self._warn(f"{self._dropped_unused} input signatures were recorded and dropped "
                           "before any replay (an argument that changes every call, such as a "
                           "Python number, keys a new recording); new signatures run eagerly: "
                           "pass such a value as a tensor, which the replay takes as an input")
                return self.fn(*args, **kwargs)
            entry = _Entry()
            self._cache.setdefault(key, []).append(entry)
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                _, dropped = self._cache.popitem(last=False)
                self._dropped_unused += not any(e.replay for e in dropped)
        if entry.eager:
            return self.fn(*args, **kwargs)
        return self._record(entry, args, kwargs, arrays)

    def _record(self, entry: _Entry, args: tuple, kwargs: dict, arrays: list) -> Any:
        tape = Tape(len(arrays))
        tape.strict = self.fullgraph
        for i, a in enumerate(arrays):
            tape.bind_input(i, a)
        if len({id(a) for a in arrays}) != len(arrays):
            tape.fail("the same array is passed as two arguments")
        self.recordings += 1
        free = _free_values(self.fn)
        with recording(tape):
            out = self.fn(*args, **kwargs)
            tape.set_output(out)
            for namespace, state_of, value in free:
                if state_of(namespace) != value:
                    tape.fail(f"the step assigns {_describe(state_of)}; the replay "
                              "would not (keep such state outside the compiled function)")
        tape.release()
        if tape.breaks:
            entry.eager = True
            self._warn("; ".join(tape.breaks), depth=1)
            return out
        if entry.tape is None:                 # first recording: keep it to check the second
            entry.tape = tape
            entry.guards = tape.guards() + free
            return out
        difference = entry.tape.difference(tape)
        entry.tape = None
        if difference:
            entry.eager = True
            if self.fullgraph:
                raise CompileError(f"rg.compile(fullgraph=True): {difference}")
            self._warn(difference, depth=1)
            return out
        entry.replay, entry.source = tape.program()
        if self.backend == "numba":
            from .numba_backend import Unlowerable, lower
            try:
                entry.replay, entry.source = lower(tape, entry.replay, arrays)
            except Unlowerable as e:
                if self.fullgraph:
                    raise CompileError(f"rg.compile(backend='numba', fullgraph=True): {e}") \
                        from None
                self._warn(str(e), "backend='numba' replays it with NumPy", depth=1)
        return out

    def _warn(self, reason: str, what: str = "running eagerly", depth: int = 0) -> None:
        """Warn once per reason, at the user's call of the step (`depth`: how many of our frames
        lie between `__call__` and here)."""
        if reason not in self._warned:
            self._warned.add(reason)
            warnings.warn(f"rg.compile({getattr(self.fn, '__name__', 'step')}): {what}: "
                          f"{reason}", CompileWarning, stacklevel=3 + depth)


def _holds(entry: _Entry) -> bool:
    try:
        return entry.matches()
    except (AttributeError, LookupError, ValueError):   # what a guard reads was deleted since
        return False


def _what_changed(entry: _Entry) -> str:
    """The first guard of `entry` that no longer holds, in words."""
    from .tape import _module_state
    for obj, state_of, state in entry.guards:
        now = state_of(obj)
        if now == state:
            continue
        if isinstance(state_of, _Global) or state_of is _cell_value:
            return _describe(state_of)
        if state_of is _module_state:
            was = dict(state[2])
            for name, value in now[2]:
                if name in was and was[name] != value:
                    return f"{type(obj).__name__}.{name}"
            if now[3] != state[3]:
                return f"{type(obj).__name__}'s parameters, buffers or submodules"
            return f"{type(obj).__name__}'s mode, hooks or attributes"
        return f"requires_grad of a tensor of shape {tuple(obj.shape)}"
    return "a guarded state"


def _observed() -> bool:
    return bool(getattr(autograd, "_apply_observers", None)) or \
        bool(getattr(autograd, "_anomaly_mode", False))


def compile(fn: Callable | None = None, *, fullgraph: bool = False,   # noqa: A001 - as torch's
            cache_size: int = 8, backend: str = "numpy") -> Any:
    """Compile a step function (usable as `@rg.compile` or `@rg.compile(fullgraph=True)`).

    `fullgraph=True` raises `CompileError` where the step cannot be recorded instead of running
    it eagerly with a `CompileWarning`. At most `cache_size` input signatures are kept (least
    recently used dropped). `backend="numba"` fuses each recording into one function compiled by
    Numba (`pip install retrograd[numba]`): for small networks, whose steps are mostly per-call
    overhead; it costs seconds of compilation per signature, and a step with ops it does not
    cover is replayed with NumPy (compile/numba_backend.py).

    >>> step = rg.compile(lambda x, y: train_step(model, opt, x, y))
    >>> xor_step = rg.compile(xor_step, backend="numba")
    """
    if backend not in ("numpy", "numba"):
        raise ValueError(f"rg.compile: backend must be 'numpy' or 'numba', got {backend!r}")
    if backend == "numba":
        from .numba_backend import available
        if not available():
            raise ImportError("rg.compile(backend='numba') needs Numba: "
                              "pip install 'retrograd[numba]'")
    if fn is None:
        return functools.partial(compile, fullgraph=fullgraph, cache_size=cache_size,
                                 backend=backend)
    return CompiledFunction(fn, fullgraph=fullgraph, cache_size=cache_size, backend=backend)
