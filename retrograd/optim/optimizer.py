"""`Optimizer`: parameter groups, per-parameter state, zero_grad, and torch-compatible state dicts.

Each algorithm subclasses it and implements `_step_group(group)`: one update of the parameters of
one group, on NumPy arrays in place. The base class does the rest: the closure, skipping parameters
without a gradient, bumping version counters, hyper-parameter checks, and (de)serialisation.
"""
from __future__ import annotations

from collections import defaultdict
from copy import deepcopy
from itertools import chain
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from ..autograd import enable_grad
from ..tensor import Tensor


class _RequiredParameter:
    """Default of an option that every parameter group must set (e.g. a custom optimizer's lr)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()

ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]]


class Optimizer:
    """Base class of the optimizers: holds `param_groups` and the per-parameter `state`.

    `params` is an iterable of tensors, or of dicts (parameter groups) each with a `"params"` entry
    and its own options; options a group leaves out come from `defaults`.

    >>> opt = rg.optim.SGD([{"params": model.body.parameters()},
    ...                     {"params": model.head.parameters(), "lr": 1e-3}], lr=1e-2, momentum=0.9)
    >>> opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()
    """

    def __init__(self, params: ParamsT, defaults: dict[str, Any]):
        self.defaults = defaults
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        self._step_count = 0
        if isinstance(params, Tensor):
            raise TypeError(f"{self._name}: params should be an iterable of tensors or of dicts, "
                            "got a single tensor; pass [tensor]")
        groups = list(params)
        if not groups:
            raise ValueError(f"{self._name}: got an empty parameter list (a model without "
                             "parameters, or a parameters() generator already used up?)")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    @property
    def _name(self) -> str:
        return type(self).__name__

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own options (e.g. layers unfrozen for fine-tuning)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"{self._name}: a parameter group must be a dict, "
                            f"got {type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(f"{self._name}: parameters must come in an ordered collection (a set's "
                            "order changes between runs, which breaks state_dict); use a list")
        elif params is None:
            raise ValueError(f"{self._name}: a parameter group needs a 'params' entry")
        group["params"] = params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{self._name} can only optimize Tensors, "
                                f"but one of the params is a {type(p).__name__}")
            if p.grad_fn is not None:
                raise ValueError(f"{self._name}: can't optimize a non-leaf tensor (the result of "
                                 f"{p.grad_fn.name()}); optimize the leaves it was computed from")
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"{self._name}: parameter group didn't specify a value of "
                                 f"required option {name!r}")
            group.setdefault(name, default)
        seen = set()
        for g in self.param_groups:
            seen.update(map(id, g["params"]))
        for p in params:
            if id(p) in seen:
                raise ValueError(f"{self._name}: a parameter of shape {tuple(p.shape)} appears "
                                 "twice (in two parameter groups, or twice in one); each "
                                 "parameter must belong to exactly one group")
            seen.add(id(p))
        self._check_options(group)
        self.param_groups.append(group)

    def _check_options(self, group: dict[str, Any]) -> None:
        """Raise ValueError for out-of-range options; subclasses list what they check."""

    def _require_nonnegative(self, group: dict[str, Any], *names: str) -> None:
        for name in names:
            value = group[name]
            if not value >= 0.0:  # written so that NaN fails too
                raise ValueError(f"{self._name}: invalid {name}={value!r} (must be >= 0)")

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients: drop them (the default), or fill them with zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    if set_to_none:
                        p.grad = None
                    else:
                        p.grad.data.fill(0)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient. `closure`, if given, re-evaluates the model
        and returns the loss (grad mode on); the loss is returned."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        self._step_count += 1
        for group in self.param_groups:
            self._step_group(group)
        return loss

    def _step_group(self, group: dict[str, Any]) -> None:
        raise NotImplementedError(f"{self._name} must implement _step_group(group) or step()")

    def _grads(self, group: dict[str, Any]) -> Iterator[tuple[np.ndarray, np.ndarray, dict]]:
        """(parameter array, gradient array, state dict) of each parameter in `group` with a grad.

        The caller updates the parameter array in place, so its version is bumped here: a graph that
        saved the old values then refuses to backward instead of returning a wrong gradient.
        """
        state = self.state
        for p in group["params"]:
            if p.grad is not None:
                p._mark_modified()
                x = p.data
                if x.ndim:
                    yield x, p.grad.data, state[p]
                else:
                    # NumPy's arithmetic on 0-d arrays returns scalars, which in-place updates
                    # can't reach: a 0-d parameter and its state are updated as 1-element views.
                    yield x.reshape(1), p.grad.data.reshape(1), _OneElement(state[p])

    # -- serialisation, in torch's layout ----------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """A snapshot of the optimizer: `{"state": {index: {...}}, "param_groups": [...]}`.

        Parameters are replaced by their position across all groups (0, 1, ...), as in torch, so the
        dict can be loaded into a fresh optimizer over the same model. Arrays are copies.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: deepcopy(v) for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {(index[id(p)] if isinstance(p, Tensor) else p):
                 {k: v.copy() if isinstance(v, np.ndarray) else deepcopy(v) for k, v in s.items()}
                 for p, s in self.state.items() if s}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a `state_dict()`: ours, or torch's (tensors become arrays of the param's dtype).

        The parameter groups must have the same sizes; their options are replaced by the saved ones.
        """
        groups, saved = self.param_groups, state_dict["param_groups"]
        if len(groups) != len(saved):
            raise ValueError(f"{self._name}.load_state_dict: the state dict has {len(saved)} "
                             f"parameter groups, this optimizer has {len(groups)}")
        for i, (group, saved_group) in enumerate(zip(groups, saved)):
            if len(group["params"]) != len(saved_group["params"]):
                raise ValueError(f"{self._name}.load_state_dict: parameter group {i} has "
                                 f"{len(saved_group['params'])} parameters in the state dict but "
                                 f"{len(group['params'])} in this optimizer")
        params = dict(zip(chain.from_iterable(g["params"] for g in saved),
                          chain.from_iterable(g["params"] for g in groups)))
        state: defaultdict[Any, dict[str, Any]] = defaultdict(dict)
        for key, values in state_dict["state"].items():
            if key in params:
                p = params[key]
                state[p] = {k: _load_value(k, v, p) for k, v in values.items()}
            else:
                state[key] = deepcopy(values)
        self.state = state
        self.param_groups = [
            {**{k: deepcopy(v) for k, v in saved_group.items() if k != "params"},
             "params": group["params"]}
            for group, saved_group in zip(groups, saved)]

    def __repr__(self) -> str:
        lines = [f"{self._name} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {group[k]}" for k in sorted(group) if k != "params"]
        return "\n".join(lines) + "\n)"


class _OneElement:
    """A 0-d parameter's state, its arrays seen as 1-element views (see `_grads`); what is stored
    stays 0-d, as torch keeps it."""

    __slots__ = ("state",)

    def __init__(self, state: dict[str, Any]):
        self.state = state

    def __bool__(self) -> bool:
        return bool(self.state)

    def __getitem__(self, key: str) -> Any:
        return _as_one(self.state[key])

    def get(self, key: str, default: Any = None) -> Any:
        return _as_one(self.state.get(key, default))

    def __setitem__(self, key: str, value: Any) -> None:
        if isinstance(value, np.ndarray) and value.shape == (1,):
            value = value.reshape(())
        self.state[key] = value

    def update(self, **values: Any) -> None:
        for key, value in values.items():
            self[key] = value


def _as_one(value: Any) -> Any:
    return value.reshape(1) if isinstance(value, np.ndarray) and value.ndim == 0 else value


def _load_value(key: str, value: Any, param: Tensor) -> Any:
    """A state entry as this library keeps it: floating arrays in the parameter's dtype, the step
    count as a Python number (torch keeps it in a 0-d float tensor)."""
    if isinstance(value, (np.ndarray, Tensor)) or hasattr(value, "__array__"):
        array = np.asarray(value.data if isinstance(value, Tensor) else value).copy()
        if key == "step":
            step = array.item()
            return int(step) if float(step).is_integer() else step
        if array.dtype.kind == "f":
            array = array.astype(param.data.dtype, copy=False)
        return array
    return deepcopy(value)
