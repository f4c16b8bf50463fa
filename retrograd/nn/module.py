"""`Module`: the base of every layer and model, with PyTorch's registration and state-dict semantics."""
from __future__ import annotations

from collections import OrderedDict, namedtuple
from typing import Any, Callable, Iterator

import numpy as np

from .. import dtypes
from ..autograd import RemovableHandle, no_grad
from ..tensor import Tensor
from .parameter import Parameter

class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What `load_state_dict` returns: the keys the model has that the state dict lacks, and the
    keys the state dict has that the model lacks (PyTorch's `_IncompatibleKeys`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()


IncompatibleKeys = _IncompatibleKeys


class Module:
    """Base class for layers and models.

    Assigning a `Parameter`, a `Module` or (through `register_buffer`) a buffer to an attribute registers
    it, so `parameters()`, `state_dict()` and `train()/eval()` find it. Keys are dotted attribute paths,
    identical to PyTorch's for the same architecture (`fc1.weight`, `0.bias`, `bn.running_mean`).

    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc1 = nn.Linear(2, 2)
    ...         self.fc2 = nn.Linear(2, 1)
    ...     def forward(self, x):
    ...         return self.fc2(self.fc1(x).sigmoid()).sigmoid()
    """

    training: bool

    def __init__(self) -> None:
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = OrderedDict()
        d["_buffers"] = OrderedDict()
        d["_non_persistent"] = set()
        d["_modules"] = OrderedDict()
        d["_forward_hooks"] = []
        d["_forward_pre_hooks"] = []

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._forward_pre_hooks or self._forward_hooks:
            return self._call_with_hooks(args, kwargs)
        return self.forward(*args, **kwargs)

    def _call_with_hooks(self, args: tuple, kwargs: dict) -> Any:
        for hook in list(self._forward_pre_hooks):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks):
            result = hook(self, args, out)
            if result is not None:
                out = result
        return out

    def register_forward_hook(self, hook: Callable) -> RemovableHandle:
        """`hook(module, inputs, output)` runs after forward; a returned value replaces the output."""
        self._forward_hooks.append(hook)
        return RemovableHandle(self._forward_hooks, hook)

    def register_forward_pre_hook(self, hook: Callable) -> RemovableHandle:
        """`hook(module, inputs)` runs before forward; a returned value replaces the inputs."""
        self._forward_pre_hooks.append(hook)
        return RemovableHandle(self._forward_pre_hooks, hook)

    # -- registration -----------------------------------------------------------------------------
    # Registered objects live both in their ordered registry and in __dict__, so that reading
    # `self.weight` is a plain attribute lookup on the hot path.
    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if "_parameters" not in d:
            if isinstance(value, (Parameter, Module)):
                raise AttributeError(f"cannot assign {name!r} before Module.__init__() is called")
            object.__setattr__(self, name, value)
            return
        if isinstance(value, Parameter):
            self._forget(name, keep="_parameters")
            d["_parameters"][name] = value
        elif isinstance(value, Module):
            self._forget(name, keep="_modules")
            d["_modules"][name] = value
        elif name in d["_parameters"]:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as parameter {name!r} "
                                "(nn.Parameter or None expected)")
            d["_parameters"][name] = None
        elif name in d["_modules"]:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as child module {name!r} "
                                "(nn.Module or None expected)")
            d["_modules"][name] = None
        elif name in d["_buffers"]:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer {name!r} "
                                "(Tensor or None expected)")
            d["_buffers"][name] = value
        else:   # a plain attribute: the normal route, so a subclass's property setters run
            object.__setattr__(self, name, value)
            return
        d[name] = value

    def __delattr__(self, name: str) -> None:
        self._forget(name)
        super().__delattr__(name)

    def _forget(self, name: str, keep: str | None = None) -> None:
        """Drop `name` from every registry but `keep`, where rebinding it keeps its place (so
        `m.weight = other` leaves the state_dict order as it was, as in PyTorch)."""
        d = self.__dict__
        for registry in ("_parameters", "_modules", "_buffers"):
            if registry != keep:
                d[registry].pop(name, None)
        d["_non_persistent"].discard(name)

    def _check_name(self, name: Any, kind: str, registry: str) -> None:
        """PyTorch's rules: a string without dots that doesn't shadow a method or other attribute
        (a ModuleDict key "train" would otherwise hide `Module.train`)."""
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
        if name == "" or "." in name:
            raise KeyError(f"{kind} name can't be empty or contain \".\", got {name!r}")
        if hasattr(self, name) and name not in self.__dict__[registry]:
            raise KeyError(f"attribute {name!r} already exists on {type(self).__name__}")

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None, "
                            f"got {type(param).__name__}")
        self._check_name(name, "parameter", "_parameters")
        self._forget(name, keep="_parameters")
        self._parameters[name] = param
        self.__dict__[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """A tensor that is state but not trained (e.g. BatchNorm's running mean); saved in
        `state_dict` unless persistent=False."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: {name!r} must be a Tensor or None, "
                            f"got {type(tensor).__name__}")
        self._check_name(name, "buffer", "_buffers")
        self._forget(name, keep="_buffers")
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent.add(name)
        self.__dict__[name] = tensor

    def add_module(self, name: str, module: "Module | None") -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module, got {type(module).__name__}")
        self._check_name(name, "module", "_modules")
        self._forget(name, keep="_modules")
        self._modules[name] = module
        self.__dict__[name] = module

    register_module = add_module

    def get_submodule(self, target: str) -> "Module":
        module = self
        for part in target.split(".") if target else []:
            if part not in module._modules:
                raise AttributeError(f"{type(module).__name__} has no submodule {part!r}")
            module = module._modules[part]
        return module

    # -- traversal ----------------------------------------------------------------------------------
    def named_modules(self, memo: set | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, "Module"]]:
        stack = [(prefix, self)]
        memo = set() if memo is None else memo
        while stack:
            name, module = stack.pop()
            if remove_duplicate:
                if id(module) in memo:
                    continue
                memo.add(id(module))
            yield name, module
            children = [(f"{name}.{k}" if name else k, m) for k, m in module._modules.items()
                        if m is not None]
            stack.extend(reversed(children))

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, registry: str, prefix: str, recurse: bool,
                       remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        modules = (self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse
                   else [(prefix, self)])
        seen: set[int] = set()
        for module_prefix, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield (f"{module_prefix}.{name}" if module_prefix else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn: Callable[["Module"], None]) -> "Module":
        """Call fn on every submodule (children first) and on self, e.g. for custom init."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # -- modes and gradients ------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Training mode: Dropout drops, BatchNorm uses batch statistics."""
        for m in self.modules():
            m.__dict__["training"] = bool(mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.data = np.zeros_like(p.grad.data)

    def to(self, dtype: Any) -> "Module":
        """Cast floating parameters and buffers to `dtype` (in place; parameters keep their identity)."""
        dtype = dtypes.resolve(dtype)
        for t in list(self.parameters()) + list(self.buffers()):
            if t.data.dtype.kind == "f":
                t.data = t.data.astype(dtype)
                if t.grad is not None:
                    t.grad.data = t.grad.data.astype(dtype)
        return self

    def float(self) -> "Module":
        return self.to(np.float32)

    def double(self) -> "Module":
        return self.to(np.float64)

    # -- state dict ---------------------------------------------------------------------------------
    def state_dict(self, destination: dict | None = None, prefix: str = "",
                   keep_vars: bool = False) -> "OrderedDict[str, Tensor]":
        """Every parameter and persistent buffer by dotted name, in registration order.

        Values are tensors sharing memory with the model (detached unless keep_vars). A module
        reachable by two paths is saved under both, as PyTorch does.
        """
        out = OrderedDict() if destination is None else destination
        for module_prefix, module in self.named_modules(prefix=prefix.rstrip("."),
                                                        remove_duplicate=False):
            dot = f"{module_prefix}." if module_prefix else ""
            for name, p in module._parameters.items():
                if p is not None:
                    out[dot + name] = p if keep_vars else p.detach()
            for name, b in module._buffers.items():
                if b is not None and name not in module._non_persistent:
                    out[dot + name] = b if keep_vars else b.detach()
        return out

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> IncompatibleKeys:
        """Copy tensors (or NumPy arrays, or anything array-like such as torch tensors) into this
        model's parameters and buffers, by key; floating values are cast to the model's dtype.

        With strict=True a missing or unexpected key is an error listing each key with its shape;
        with strict=False they are returned as `IncompatibleKeys(missing_keys, unexpected_keys)`.
        A shape mismatch, or a value of the wrong kind (complex or bool for a float parameter), is
        always an error naming the key and both shapes or dtypes, and the file for a state dict
        from `rg.load`. On any error the model is left untouched.

        >>> model.load_state_dict(rg.load("model.safetensors"))
        <All keys matched successfully>
        """
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(f"load_state_dict: expected a dict of tensors, got "
                            f"{type(state_dict).__name__}" + (
                                "; read the file first: model.load_state_dict(rg.load(path))"
                                if isinstance(state_dict, str) else ""))
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors = []
        if strict and (missing or unexpected):
            if missing:
                errors.append("missing keys: " + ", ".join(
                    f"{k} {tuple(own[k].data.shape)}" for k in missing))
            if unexpected:
                errors.append("unexpected keys: " + ", ".join(
                    f"{k} {tuple(np.shape(_array_of(state_dict[k])))}" for k in unexpected))
            hint = _prefix_hint(missing, unexpected)
            if hint:
                errors.append(hint)
        arrays = {}
        for key, target in own.items():
            if key not in state_dict:
                continue
            array = _array_of(state_dict[key])
            have, want = array.dtype, target.data.dtype
            if array.shape != target.data.shape:
                errors.append(f"size mismatch for {key}: copying a tensor of shape {array.shape}, "
                              f"the parameter in this model has shape {target.data.shape}")
            elif (have.kind not in "biufc" or (have.kind == "c" and want.kind != "c")
                  or (have.kind == "b" and want.kind == "f")):
                errors.append(f"dtype mismatch for {key}: copying a tensor of dtype {have} into "
                              f"the parameter of dtype {want} in this model")
            else:
                arrays[key] = array
        if errors:
            source = getattr(state_dict, "filename", None)
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}"
                               + (f" from {source}" if source else "") + ":\n  "
                               + "\n  ".join(errors))
        # Only after every check passed: a failed load leaves the model untouched.
        with no_grad():
            for key, array in arrays.items():
                target = own[key]
                target.data[...] = array.astype(target.data.dtype, copy=False)
                target._mark_modified()    # as torch: a graph that saved the old values refuses
        return IncompatibleKeys(missing, unexpected)

    # -- representation -----------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        # PyTorch's layout: a one-line extra_repr stays inline, anything else goes one item a line
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): " + repr(module).replace("\n", "\n  ")
                       for name, module in self._modules.items()]
        if len(extra_lines) == 1 and not child_lines:
            return f"{type(self).__name__}({extra})"
        if not extra_lines and not child_lines:
            return f"{type(self).__name__}()"
        return f"{type(self).__name__}(\n  " + "\n  ".join(extra_lines + child_lines) + "\n)"

    def __dir__(self):
        return sorted(set(super().__dir__()))

    def __getstate__(self):
        return self.__dict__

    def __setstate__(self, state):
        self.__dict__.update(state)


def _array_of(value: Any) -> np.ndarray:
    return value.data if isinstance(value, Tensor) else np.asarray(value)


def _prefix_hint(missing: list[str], unexpected: list[str]) -> str:
    """When every key is off by the same leading path (a checkpoint's "model.", DataParallel's
    "module."), say so and how to fix it."""
    for extra, short, side in ((unexpected, missing, "the state dict's"),
                               (missing, unexpected, "this model's")):
        prefixes = {e[:len(e) - len(s)] for e in extra for s in short if e.endswith("." + s)}
        if len(prefixes) == 1 and short:
            (p,) = prefixes
            if all(p + s in extra for s in short):
                return (f"(hint: {side} keys carry an extra prefix {p!r}; strip it, e.g. "
                        f"{{k.removeprefix({p!r}): v for k, v in state.items()}}, or load into "
                        "the submodule it belongs to)")
    return ""
