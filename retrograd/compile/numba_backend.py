"""`rg.compile(step, backend="numba")`: a recorded step fused into one machine-code function.

The NumPy replay (tape.py) still calls one array function per op, and on small tensors that call
costs more than its arithmetic: XOR's step makes ~40 of them. Here the same recording, forward,
backward and the optimizer's update, is written as one Python function over arrays (each op from
its lowering in lowerings.py) and compiled by Numba, which fuses it into loops and calls BLAS for
the products. A thin wrapper reads the parameters and hyper-parameters, calls it, and then does
in Python what the step did to Python objects: the new `.grad` tensors, the optimizer's step count,
the version counters of the updated parameters, a trailing `scheduler.step()`.

What it lowers: the ops in lowerings.py, `zero_grad()` (to None), the steps of SGD, Adam and
AdamW (every option; kernels.py), helpers such as dropout masks and `rg.randn` that take nothing
the step computed (run by the wrapper, in the recorded order), a trailing scheduler step, and a
step that returns tensors it computed. Anything else (another op or optimizer, gradient clipping,
gradients accumulated over calls) raises `Unlowerable` at recording, and the step is replayed with
NumPy, with one warning. A replay whose assumptions no longer hold (an option of the optimizer
switched on, its state cleared, its groups changed, a hook added) runs the NumPy replay for that
call.

Numba compiles when the recording is lowered: several seconds, once per input signature. The
fused function is written to a file in RETROGRAD_CACHE_DIR (default ~/.cache/retrograd), named by
the hash of its source and of kernels.py, and compiled with Numba's cache on: a later process that
records the same step loads the machine code instead (a fraction of a second). Deleting the
folder clears the cache.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import os
import sys
from typing import Any, Callable

import numpy as np

from ..io.atomic import atomic_write_text
from ..tensor import Tensor, _wrap
from .lowerings import LOWERINGS, Arg, Op, Unlowerable
from .tape import Tape, output_source


def available() -> bool:
    try:
        import numba  # noqa: F401 - only whether it imports
    except ImportError:
        return False
    return True


def lower(tape: Tape, fallback: Callable, example: list) -> tuple[Callable, str]:
    """The replay function for `tape` fused by Numba, and its source; `fallback` (the NumPy
    replay) runs any call whose assumptions fail. `example`: the recording's input arrays, to
    compile for. Raises Unlowerable."""
    program = _Program(tape)
    program.walk()
    _one_blas_thread_for_numba()
    return program.build(fallback, example)


@functools.lru_cache(maxsize=1)
def _one_blas_thread_for_numba() -> None:
    """Numba's products call SciPy's BLAS, which pip's wheels bundle apart from NumPy's: two
    OpenBLAS thread pools on the same cores, each spinning while the other works (the digits
    MLP's fused step: 1.07-1.13 ms with both at 2 threads, 0.64 ms with SciPy's at 1). The backend
    is for small models, whose products gain little from threads: SciPy's own BLAS, where it is
    one of its own, gets one thread. A BLAS NumPy shares (conda's) is left alone."""
    import scipy
    import scipy.linalg.cython_blas  # loads SciPy's BLAS
    from threadpoolctl import ThreadpoolController
    home = os.path.dirname(os.path.dirname(os.path.abspath(scipy.__file__)))
    own = [os.path.join(home, "scipy") + os.sep, os.path.join(home, "scipy.libs") + os.sep]
    controller = ThreadpoolController()
    for pool in controller.lib_controllers:
        if pool.user_api == "blas" and any(pool.filepath.startswith(d) for d in own):
            pool.set_num_threads(1)


def _cache_dir() -> str | None:
    root = os.environ.get("RETROGRAD_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "retrograd")
    path = os.path.join(root, "numba")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return None
    return path if os.access(path, os.W_OK) else None


def _jit(source: str) -> Callable:
    """`fused` of `source` compiled by Numba, from its disk cache where one is writable. NumPy's
    error model: a division by zero gives inf or nan as in eager, and loops with divisions
    vectorise (Python's model checks each divisor: Adam's update ran 4x slower)."""
    import numba

    from . import kernels
    directory = _cache_dir()
    if directory is None:
        namespace: dict = {"np": np, "kernels": kernels}
        exec(compile(source, "<rg.compile numba>", "exec"), namespace)   # noqa: S102
        return numba.njit(error_model="numpy")(namespace["fused"])
    # Numba's cache is keyed by this file alone, not by the kernels it calls: their source goes
    # into the name, so a changed kernel makes a new file rather than reusing old machine code
    text = "import numpy as np\n\nfrom retrograd.compile import kernels\n\n\n" + source
    name = "rg_fused_" + hashlib.sha256((text + _kernels_source()).encode()).hexdigest()[:24]
    path = os.path.join(directory, name + ".py")
    if not os.path.exists(path):
        atomic_write_text(path, text)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module          # where Numba's cache looks the function's module up
    spec.loader.exec_module(module)
    return numba.njit(cache=True, error_model="numpy")(module.fused)


@functools.lru_cache(maxsize=1)
def _kernels_source() -> str:
    with open(os.path.join(os.path.dirname(__file__), "kernels.py"), encoding="utf-8") as f:
        return f.read()


def _sgd_structure(group: dict) -> tuple:
    """What SGD's lowered update assumes of a group's options (their values are arguments)."""
    return (group["momentum"] != 0, group["dampening"] == 0, group["weight_decay"] != 0,
            bool(group["nesterov"]), bool(group["maximize"]))


def _adam_structure(group: dict) -> tuple:
    return (group["weight_decay"] != 0, bool(group["decoupled_weight_decay"]),
            bool(group["amsgrad"]), bool(group["maximize"]))


class _Program:
    def __init__(self, tape: Tape):
        self.tape = tape
        self.body: list[str] = []            # the Numba function's lines
        self.params: list[str] = []          # its parameters, in order
        self.feeds: list[str] = []           # the wrapper's source for each of them
        self.values: dict[str, Arg] = {}
        self.ops: dict[str, Op] = {}         # ctx name -> the op it recorded
        self.names: dict[int, str] = {}      # id(object) -> its name in the wrapper
        self.objects: dict[str, Any] = {}
        # keyed by id(tensor) (a tensor's == is elementwise)
        self.reads: dict[int, str] = {}      # the local each tensor's .data was read into
        self.zeroed: dict[int, Tensor] = {}  # grads set to None by zero_grad
        self.delivered: dict[int, tuple[Tensor, str]] = {}   # leaf: (leaf, its gradient)
        self.updated: list[Tensor] = []
        self.steps: list[Any] = []           # optimizers stepped
        self.counts: list[str] = []          # per-parameter step counts to store (Adam's)
        self.checks: list[str] = []          # conditions for the fused call, else the fallback
        self.fetches: list[str] = []         # wrapper lines before the checks of fetched state
        self.after: list[str] = []           # trailing Python effects (a scheduler's step)
        self.draws: list[str] = []           # helpers run before the fused call (dropout masks)
        self.stand_ins: list[str] = []

    # -- names ---------------------------------------------------------------------------------
    def _object(self, obj: Any, prefix: str) -> str:
        name = self.names.get(id(obj))
        if name is None:
            name = self.names[id(obj)] = f"{prefix}{len(self.names)}"
            self.objects[name] = obj
        return name

    def _param(self, name: str, feed: str) -> None:
        self.params.append(name)
        self.feeds.append(feed)

    def _local(self, name: str) -> Arg:
        shape, dtype = self.tape.meta[name]
        if shape == () and name in self.tape.inputs:
            raise Unlowerable("a 0-d array argument")
        arg = self.values[name] = Arg(name, shape, dtype)
        return arg

    def _arg(self, expr: str) -> Arg:
        """An op's argument from its expression in the recording."""
        if expr in self.values:
            return self.values[expr]
        obj = self.tape.objects.get(expr)
        if obj is None:
            try:
                return Arg(expr, value=ast.literal_eval(expr))
            except ValueError:
                raise Unlowerable(f"an argument {expr!r} the recording holds as code") from None
        if not isinstance(obj, np.ndarray) or obj.dtype.kind not in "fiub":
            raise Unlowerable(f"an op given a {type(obj).__name__} constant")
        name = self._object(obj, "K")
        # a 0-d constant (the gradient 1 that backward starts from) as a scalar of its dtype
        self._param(name, f"{name}[()]" if obj.ndim == 0 else name)
        arg = self.values[expr] = Arg(name, obj.shape, obj.dtype)
        return arg

    # -- the walk ------------------------------------------------------------------------------
    def walk(self) -> None:
        for name in self.tape.inputs:
            # C-contiguous, as the function was compiled for (a strided input is copied)
            self._param(name, f"np.ascontiguousarray({name})")
            self._local(name)
        for event in self.tape.events:
            if self.after and event[0] != "effect":
                raise Unlowerable("array work after a scheduler's step")
            getattr(self, "_" + event[0])(*event[1:])

    def _read(self, local: str, tensor: Tensor) -> None:
        if tensor.data.ndim == 0:
            raise Unlowerable("a 0-d parameter")
        self._param(local, f"{self._object(tensor, 'T')}.data")
        self._local(local)
        self.reads[id(tensor)] = local

    def _op(self, cls: type, ctx: str, out: str, args: list, keywords: list, attrs: dict) -> None:
        lowering = LOWERINGS.get(cls)
        if lowering is None:
            raise Unlowerable(f"no lowering of {cls.__name__}")
        if any(item.startswith("**") for item in keywords):
            raise Unlowerable(f"{cls.__name__} given a tensor as a keyword argument")
        named = dict(item.split("=", 1) for item in keywords)
        unknown = sorted(named.keys() - set(lowering.keywords))
        if unknown:
            raise Unlowerable(f"{cls.__name__} with the keyword argument {unknown[0]}")
        shape, dtype = self.tape.meta[out]
        op = Op(cls, out, shape, dtype, [self._arg(a) for a in args], attrs, named)
        self.body += lowering.forward(op)
        self.ops[ctx] = op
        self._local(out)

    def _backward(self, cls: type, ctx: str, g: str, received: list) -> None:
        op = self.ops[ctx]
        lowering = LOWERINGS[cls]
        if lowering.backward is None:
            raise Unlowerable(f"no lowering of {cls.__name__}'s backward")
        self.body += lowering.backward(op, str(self._arg(g)), dict(received))
        for _, local in received:
            self._local(local)

    def _conform(self, local: str, before: tuple, shape: tuple, dtype: np.dtype) -> None:
        expr = local
        lead = len(before) - len(shape)
        for _ in range(lead):
            expr = f"{expr}.sum(axis=0)" if len(before) > 1 else f"{expr}.sum()"
            before = before[1:]
        axes = [i for i, (b, s) in enumerate(zip(before, shape)) if s == 1 and b != 1]
        if axes:
            if len(axes) == len(shape):
                expr = f"np.full({shape}, {expr}.sum())"
            else:
                for axis in reversed(axes):
                    expr = f"{expr}.sum(axis={axis})"
                expr = f"{expr}.reshape({shape})"
        cast = f"np.{np.dtype(dtype).name}"
        expr = f"{cast}({expr})" if shape == () else f"{expr}.astype({cast})"
        self.body.append(f"{local} = {expr}")

    def _add(self, local: str, a: str, b: str) -> None:
        self.body.append(f"{local} = {a} + {b}")
        self._local(local)

    def _deliver(self, leaf: Tensor, expr: str, copy: bool) -> None:
        if id(leaf) not in self.zeroed:
            raise Unlowerable("a gradient added to a .grad from before the step (no zero_grad)")
        self.delivered[id(leaf)] = (leaf, f"{expr}.copy()" if copy else expr)

    def _call(self, fn: Callable, local: str | None, exprs: list) -> None:
        from ..ops.loss import _ClassIndices
        if fn is _ClassIndices and local is not None and len(exprs) == 5 and exprs[3] == "None" \
                and not any("=" in e for e in exprs):
            # cross_entropy's checked targets: the lowering takes the target array itself
            targets = self._arg(exprs[2])
            if targets.is_array and targets.dtype.kind in "iu" and len(targets.shape) == 1:
                self.values[local] = Arg(targets.expr, targets.shape, targets.dtype,
                                         ("class targets", ast.literal_eval(exprs[4])))
                return
        # A helper given nothing the step computed (a dropout mask, rg.randn(shape)) runs in the
        # wrapper before the fused call, in the recorded order (the same draws as eager), and
        # its array is an argument.
        what = getattr(fn, "__name__", "a helper")
        if local is None or self.tape.meta.get(local, ((),))[0] == ():
            raise Unlowerable(f"{what} (a helper that returns no array)")
        code = []
        for expr in exprs:
            key, _, value = expr.rpartition("=") if "=" in expr and expr.split("=", 1)[0] \
                .isidentifier() else ("", "", expr)
            if value in self.values and value not in self.tape.inputs:
                raise Unlowerable(f"{what} given an array the step computed")
            if value in self.tape.objects:
                value = self._object(self.tape.objects[value], "O")
            elif value not in self.tape.inputs:
                try:
                    ast.literal_eval(value)
                except ValueError:
                    raise Unlowerable(f"{what} given {value!r}") from None
            code.append(f"{key}={value}" if key else value)
        self.draws.append(f"{local} = {self._object(fn, 'F')}({', '.join(code)})")
        self._param(local, local)
        arg = self._local(local)
        # to compile for, without drawing: an array of the same type
        self.stand_ins.append(f"{local} = np.empty({arg.shape}, np.{arg.dtype.name})")

    def _effect(self, method: Callable, args: tuple, kwargs: dict) -> None:
        from ..nn.module import Module
        from ..optim.adam import Adam, AdamW
        from ..optim.lr_scheduler import LRScheduler
        from ..optim.optimizer import Optimizer
        from ..optim.sgd import SGD
        owner, name = getattr(method, "__self__", None), getattr(method, "__name__", "")
        if isinstance(owner, LRScheduler) and not args and not kwargs:
            self.after.append(f"{self._object(method, 'M')}()")
            return
        if self.after:
            raise Unlowerable("a scheduler's step before the optimizer's")
        if name == "zero_grad" and isinstance(owner, (Optimizer, Module)):
            if (list(args) + list(kwargs.values())) not in ([], [True]) or self.delivered:
                raise Unlowerable("zero_grad(set_to_none=False), or after backward")
            params = owner.parameters() if isinstance(owner, Module) else \
                [p for group in owner.param_groups for p in group["params"]]
            self.zeroed.update((id(p), p) for p in params)
            return
        if name == "step" and type(owner) is SGD and not args and not kwargs:
            self._step(owner, _sgd_structure, self._sgd)
            return
        if name == "step" and type(owner) in (Adam, AdamW) and not args and not kwargs:
            self._step(owner, _adam_structure, self._adam)
            return
        raise Unlowerable(f"{type(owner).__name__}.{name}()")

    def _step(self, opt: Any, structure_of: Callable, update: Callable) -> None:
        """An optimizer's step: per group, a check that its options keep the recorded structure,
        then `update` per parameter with a gradient."""
        o = self._object(opt, "O")
        self.steps.append(o)
        # the groups and their parameters as recorded (add_param_group would go unseen)
        self.checks.append(f"len({o}.param_groups) == {len(opt.param_groups)}")
        for gi, group in enumerate(opt.param_groups):
            g_name = f"{o}.param_groups[{gi}]"
            structure = structure_of(group)
            self.checks += [f"len({g_name}['params']) == {len(group['params'])}",
                            f"{structure_of.__name__}({g_name}) == {structure!r}"]
            for pi, p in enumerate(group["params"]):
                t = self._object(p, "T")
                self.checks.append(f"{g_name}['params'][{pi}] is {t}")
                if id(p) not in self.delivered:
                    if p.grad is not None:
                        raise Unlowerable("an optimizer step on a gradient from outside the step")
                    if id(p) not in self.zeroed:
                        self.checks.append(f"{t}.grad is None")
                    continue
                dtype = np.dtype(p.dtype).name
                scalar = functools.partial(self._hyper, f"{o}_{gi}_{dtype}_", dtype)
                update(o, t, self.reads[id(p)], g_name, structure, scalar,
                       self.delivered[id(p)][1])
                self.updated.append(p)

    def _hyper(self, prefix: str, dtype: str, key: str, feed: str) -> str:
        """A hyper-parameter of a group (`feed`, Python source), cast to a parameter dtype as NumPy
        casts a Python float operand: an argument of the fused function, fed once per group and
        dtype."""
        if prefix + key not in self.params:
            self._param(prefix + key, f"np.{dtype}({feed})")
        return prefix + key

    def _sgd(self, o: str, t: str, x: str, group: str, structure: tuple, scalar: Callable,
             grad: str) -> None:
        """SGD's update of one parameter (kernels.sgd_update)."""
        momentum, undamped, decay, nesterov, maximize = structure
        b = x                                   # stands in for a buffer not used
        if momentum:
            b = f"{x}_b"
            self.fetches.append(f"{b} = {o}.state.get({t}, EMPTY).get('momentum_buffer')")
            self.checks.append(f"{b} is not None")
            self._param(b, b)
        zero = "np.float32(0)"
        self.body.append(
            f"kernels.sgd_update({x}, {grad}, {b}, {scalar('lr', group + '[' + repr('lr') + ']')}, "
            + (f"{scalar('m', group + '[' + repr('momentum') + ']')}, " if momentum else f"{zero}, ")
            + (f"{scalar('d', '1 - ' + group + '[' + repr('dampening') + ']')}, "
               if momentum and not undamped else f"{zero}, ")
            + (f"{scalar('wd', group + '[' + repr('weight_decay') + ']')}, " if decay
               else f"{zero}, ")
            + f"{momentum}, {undamped}, {decay}, {nesterov}, {maximize})")

    def _adam(self, o: str, t: str, x: str, group: str, structure: tuple, scalar: Callable,
              grad: str) -> None:
        """Adam's (AdamW's) update of one parameter (kernels.adam_update). The step count is per
        parameter: its bias corrections are computed in the wrapper, in Python floats, as
        optim/adam.py computes them."""
        decay, decoupled, amsgrad, maximize = structure
        s, m, v, v_max, step = (f"{x}_{k}" for k in ("s", "m", "v", "vmax", "t"))
        lr, beta1, beta2 = group + "['lr']", group + "['betas'][0]", group + "['betas'][1]"
        decay_rate = group + "['weight_decay']"
        self.fetches += [f"{s} = {o}.state.get({t}, EMPTY)",
                         f"{m}, {v} = {s}.get('exp_avg'), {s}.get('exp_avg_sq')",
                         f"{v_max} = {s}.get('max_exp_avg_sq', {v})",
                         f"{step} = {s}.get('step', 0) + 1",
                         f"{x}_root = (1 - {beta2} ** {step}) ** 0.5"]
        self.checks += [f"{m} is not None", f"{v} is not None", f"{v_max} is not None"]
        for name in (m, v, v_max):
            self._param(name, name)
        dtype = np.dtype(self.tape.meta[x][1]).name
        self._param(f"{x}_eps", f"np.{dtype}({group}['eps'] * {x}_root)")
        self._param(f"{x}_alpha", f"np.{dtype}({lr} * {x}_root / (1 - {beta1} ** {step}))")
        self.counts.append(f"{s}['step'] = {step}")
        zero = "np.float32(0)"
        factor = scalar("dec", f"1 - {lr} * {decay_rate}") if decay and decoupled else zero
        rate = scalar("wd", decay_rate) if decay and not decoupled else zero
        self.body.append(
            f"kernels.adam_update({x}, {grad}, {m}, {v}, {v_max}, "
            f"{scalar('omb1', f'1 - {beta1}')}, {scalar('b2', beta2)}, "
            f"{scalar('omb2', f'1 - {beta2}')}, {x}_eps, {x}_alpha, {factor}, {rate}, "
            f"{decay}, {decoupled}, {amsgrad}, {maximize})")

    # -- the result ------------------------------------------------------------------------------
    def _outputs(self, spec: Any, returned: list) -> str:
        """Wrapper source rebuilding the step's result from the fused function's outputs; the
        names of the values it returns are appended to `returned`."""
        def tensor(leaf: tuple) -> str:
            arg = self.values.get(leaf[1])
            if arg is None:
                raise Unlowerable("the step returns an array it did not compute")
            returned.append(leaf[1])
            r = f"r[{len(returned) - 1}]"
            return f"wrap(np.array({r}, np.{arg.dtype.name}))" if arg.shape == () else f"wrap({r})"

        def const(value: Any) -> str:
            if value is not None and not isinstance(value, (bool, int, float, str)):
                raise Unlowerable("the step returns an object it did not compute")
            return repr(value)

        return output_source(spec, tensor, const, lambda cls: self._object(cls, "Y"))

    def build(self, fallback: Callable, example: list) -> tuple[Callable, str]:
        import numba

        returned: list[str] = []
        result = self._outputs(self.tape.output, returned)
        leaves = [leaf for leaf, _ in self.delivered.values()]
        grads = [grad for _, grad in self.delivered.values()]
        fused_source = (f"def fused({', '.join(self.params)}):\n"
                        + "".join(f"    {line}\n" for line in self.body)
                        + f"    return ({''.join(e + ', ' for e in returned + grads)})\n")
        fused = _jit(fused_source)

        n_out = len(returned)
        inputs = ", ".join(self.tape.inputs)
        effects = [f"{self._object(p, 'T')}.grad = None" for i, p in self.zeroed.items()
                   if i not in self.delivered]
        effects += [f"{self._object(p, 'T')}.grad = wrap(r[{n_out + i}])"
                    for i, p in enumerate(leaves)]
        effects += [f"{self._object(p, 'T')}._mark_modified()" for p in self.updated]
        effects += [f"{o}._step_count += 1" for o in self.steps] + self.counts
        effects += self.after
        self.checks += [f"not {self._object(p, 'T')}._hooks" for p in leaves]

        def prologue(fallback_call: str, draws: list) -> str:
            lines = self.fetches + [f"if failed or not ({' and '.join(self.checks) or 'True'}):",
                                    f"    return {fallback_call}"] \
                + draws + [f"args = ({''.join(f + ', ' for f in self.feeds)})"]
            return "".join(f"        {line}\n" for line in lines)

        # replay: the fused call between reading its arguments and the effects on Python
        # objects; arguments: the first part alone, to compile for (it changes nothing)
        arguments = (f"    def arguments({inputs}):\n" + prologue("None", self.stand_ins)
                     + "        return args\n")
        replay = (f"    def replay({inputs}):\n" + prologue(f"fallback({inputs})", self.draws)
                  + "        try:\n"
                  + "            r = fused(*args)\n"
                  + "        except NumbaError:     # arrays of another layout: not compiled for\n"
                  + "            failed.append(True)    # (and Numba would try again every call)\n"
                  + f"            return fallback({inputs})\n"
                  + "".join(f"        {line}\n" for line in effects)
                  + f"        return {result}\n")
        names = sorted(self.objects)
        helpers = {"fused": fused, "fallback": fallback, "wrap": _wrap, "EMPTY": {}, "np": np,
                   "NumbaError": numba.core.errors.NumbaError, "failed": [],
                   "_sgd_structure": _sgd_structure, "_adam_structure": _adam_structure}
        source = (f"def make({', '.join(names + list(helpers))}):\n"
                  + arguments + replay + "    return replay, arguments\n")
        namespace = {}
        exec(compile(source, "<rg.compile numba wrapper>", "exec"), namespace)   # noqa: S102
        replay_fn, arguments_fn = namespace["make"](**self.objects, **helpers)
        args = arguments_fn(*example)
        if args is None:
            raise Unlowerable("the optimizer's state is not as recorded")
        try:
            fused.compile(tuple(numba.typeof(a) for a in args))
        except Exception as e:  # noqa: BLE001 - Numba's typing errors come in many classes
            raise Unlowerable(f"Numba could not compile it ({type(e).__name__}: "
                              f"{str(e).strip().splitlines()[0][:200]})") from None
        return replay_fn, fused_source + "\n" + source
