"""Callbacks: code that `fit` runs at fixed points of training (Keras' design, PyTorch's objects).

Hooks, in the order `fit` calls them:

    on_train_begin(logs)
      on_epoch_begin(epoch, logs)
        on_batch_begin(batch)
          forward, loss, backward
          on_after_backward()          # gradients are ready, the step has not happened
          optimizer.step()
        on_batch_end(batch, logs)      # logs: {"loss": batch loss, "size": batch size}
      on_epoch_end(epoch, logs)        # logs: {"loss", metrics, "val_...", "lr"}
    on_train_end(logs)

`History` records an epoch's logs after every callback's on_epoch_end, so a value a callback adds
to `logs` is recorded too (callbacks run in the order given).

Each callback sees the run through `self.state` (a `TrainState`: model, optimizer, history, ...);
setting `self.state.stop_training = True` ends training after the current batch (the epoch is
then closed: validation and on_epoch_end run for the batches done). Epochs and batches are
counted from 0. Only the hooks a callback overrides are called, so an unused per-batch hook
costs nothing.
"""
from __future__ import annotations

import math
import os
import warnings
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from ..io import atomic_write_text, save
from ..nn.clip_grad import clip_grad_norm_, clip_grad_value_
from ..tensor import Tensor

if TYPE_CHECKING:
    from .loop import TrainState

HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_batch_begin",
         "on_batch_end", "on_after_backward")


class Callback:
    """Base class: override the hooks you need (see the module docstring).

    >>> class PrintLR(Callback):
    ...     def on_epoch_end(self, epoch, logs):
    ...         print(epoch, self.state.optimizer.param_groups[0]["lr"])
    """

    state: "TrainState"

    @property
    def model(self):
        return self.state.model

    def on_train_begin(self, logs: dict | None = None) -> None: ...
    def on_train_end(self, logs: dict | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict) -> None: ...
    def on_batch_begin(self, batch: int) -> None: ...
    def on_batch_end(self, batch: int, logs: dict) -> None: ...
    def on_after_backward(self) -> None: ...


def overrides(callback: Callback, hook: str) -> bool:
    """True when `callback` does something at `hook` (a method overriding the base, or a function
    set on the instance as LambdaCallback does)."""
    return hook in vars(callback) or getattr(type(callback), hook) is not getattr(Callback, hook)


def _resolve_mode(mode: str, monitor: str, who: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    name = monitor.lower()
    return "max" if any(k in name for k in ("acc", "auc", "f1", "precision", "recall")) else "min"


class _Monitor:
    """The best value of a monitored quantity so far, and whether a new one beats it."""

    def __init__(self, monitor: str, mode: str, min_delta: float, who: str):
        self.monitor, self.who = monitor, who
        self.mode = _resolve_mode(mode, monitor, who)
        self.min_delta = abs(float(min_delta))
        self.reset()

    def reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self._warned = False

    def value(self, logs: Mapping[str, float]) -> float | None:
        value = logs.get(self.monitor)
        if value is None:
            if not self._warned:
                self._warned = True
                hint = (" (pass val_data= to fit, or monitor the training loss with "
                        "monitor='loss')" if self.monitor.startswith("val_") else "")
                warnings.warn(f"{self.who}: {self.monitor!r} is not in the logs, which have "
                              f"{', '.join(logs) or 'nothing'}; it does nothing{hint}",
                              RuntimeWarning, stacklevel=4)
            return None
        return float(value)

    def improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


def _copy_state(model) -> dict[str, np.ndarray]:
    return {k: v.data.copy() for k, v in model.state_dict().items()}


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved for more than `patience` epochs, and (with
    `restore_best`) put the weights of the best epoch back into the model at the end.

    An epoch improves when it beats the best value so far by more than `min_delta`. `patience`
    is how many epochs without improvement are tolerated: training stops at the (patience + 1)-th
    in a row (as ReduceLROnPlateau counts). `mode` is "min", "max", or "auto" (max for accuracy-
    like names, min otherwise). The best weights are copies of `model.state_dict()` (buffers
    included) and are restored at the end of training whether it stopped early or not.
    After the run, `stopped_epoch` is the epoch it stopped at (None if it did not) and
    `best_epoch`/`best` tell which epoch won.

    >>> fit(model, loss_fn, opt, train, epochs=100, val_data=val,
    ...     callbacks=[EarlyStopping(monitor="val_loss", patience=5)])
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0,
                 mode: str = "auto", restore_best: bool = True):
        if patience < 0:
            raise ValueError(f"EarlyStopping: patience must be >= 0, got {patience}")
        self._monitor = _Monitor(monitor, mode, min_delta, "EarlyStopping")
        self.monitor, self.mode = monitor, self._monitor.mode
        self.patience = patience
        self.restore_best = restore_best
        self.on_train_begin()

    @property
    def best(self) -> float:
        return self._monitor.best

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._monitor.reset()
        self.wait = 0
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None
        self.best_weights: dict[str, np.ndarray] | None = None

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        value = self._monitor.value(logs)
        if value is None:
            return
        if self._monitor.improved(value):
            self._monitor.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_weights = _copy_state(self.model)
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.state.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.restore_best and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs (`fit(checkpoint=...)` saves it): the count and the best."""
        return {"best": self._monitor.best, "wait": self.wait, "best_epoch": self.best_epoch,
                "stopped_epoch": self.stopped_epoch, "best_weights": self.best_weights}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._monitor.best, self.wait = state["best"], state["wait"]
        self.best_epoch, self.stopped_epoch = state["best_epoch"], state["stopped_epoch"]
        weights = state["best_weights"]
        self.best_weights = None if weights is None else {
            k: np.array(getattr(v, "data", v)) for k, v in weights.items()}


class ModelCheckpoint(Callback):
    """Save the model's weights (`retrograd.io.save`, safetensors, atomic) after each epoch:
    only when `monitor` improves (`save_best_only=True`), or every epoch (then the file holds
    the last epoch's weights).

    `path` may hold `str.format` fields filled from the epoch (counted from 1) and the logs,
    e.g. "ckpt/epoch{epoch:03d}-{val_loss:.3f}.safetensors"; missing directories are created.
    The header's metadata records the epoch and the logs. `best` is the best value so far,
    `last_path` the file last written. These files hold weights only, for inference or
    fine-tuning; to continue an interrupted run use `fit(checkpoint=..., resume_from=...)`,
    which also saves the optimizer, scheduler and random state.

    >>> ckpt = ModelCheckpoint("runs/best.safetensors", monitor="val_accuracy")
    >>> fit(model, loss_fn, opt, train, epochs=20, val_data=val, callbacks=[ckpt])
    >>> model.load_state_dict(rg.io.load("runs/best.safetensors"))
    """

    def __init__(self, path: str | os.PathLike, monitor: str = "val_loss",
                 save_best_only: bool = True, mode: str = "auto"):
        self.path = os.fspath(path)
        self._monitor = _Monitor(monitor, mode, 0.0, "ModelCheckpoint")
        self.monitor, self.mode = monitor, self._monitor.mode
        self.save_best_only = save_best_only
        self.last_path: str | None = None

    @property
    def best(self) -> float:
        return self._monitor.best

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._monitor.reset()
        self.last_path = None

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.save_best_only:
            value = self._monitor.value(logs)
            if value is None or not self._monitor.improved(value):
                return
            self._monitor.best = value
        path = self.path.format(epoch=epoch + 1, **logs)
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        save(self.model.state_dict(), path, metadata={"epoch": epoch + 1, **logs})
        self.last_path = path

    def state_dict(self) -> dict[str, Any]:
        return {"best": self._monitor.best, "last_path": self.last_path}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._monitor.best, self.last_path = state["best"], state["last_path"]


class LRSchedulerCallback(Callback):
    """Step a learning-rate scheduler every batch (`per="batch"`, for warm-up or OneCycleLR) or
    every epoch (`per="epoch"`). `ReduceLROnPlateau` is stepped per epoch with `logs[monitor]`
    (the training loss when there is no validation).

    `fit` leaves a scheduler handed to this callback alone, so it is never stepped twice.

    >>> sched = OneCycleLR(opt, max_lr=0.1, total_steps=epochs * len(loader))
    >>> fit(model, loss_fn, opt, loader, epochs=epochs,
    ...     callbacks=[LRSchedulerCallback(sched, per="batch")])
    """

    def __init__(self, scheduler: Any, per: str = "epoch", monitor: str = "val_loss"):
        if per not in ("batch", "epoch"):
            raise ValueError(f"LRSchedulerCallback: per must be 'batch' or 'epoch', got {per!r}")
        self.plateau = _is_plateau(scheduler)
        if self.plateau and per == "batch":
            raise ValueError("LRSchedulerCallback: ReduceLROnPlateau steps on an epoch's metric; "
                             "use per='epoch'")
        self.scheduler, self.per, self.monitor = scheduler, per, monitor
        if per == "batch":
            self.on_batch_end = self._step_batch  # only a per-batch scheduler pays per batch

    def _step_batch(self, batch: int, logs: dict) -> None:
        self.scheduler.step()

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.per == "epoch":
            step_scheduler(self.scheduler, logs, self.monitor)

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.scheduler.load_state_dict(state)


def _is_plateau(scheduler: Any) -> bool:
    return any(c.__name__ == "ReduceLROnPlateau" for c in type(scheduler).__mro__)


def step_scheduler(scheduler: Any, logs: Mapping[str, float], monitor: str = "val_loss") -> None:
    """One epoch-level step; ReduceLROnPlateau gets `logs[monitor]`, else the training loss."""
    if _is_plateau(scheduler):
        scheduler.step(logs[monitor] if monitor in logs else logs["loss"])
    else:
        scheduler.step()


class CSVLogger(Callback):
    """Write the epoch logs to a CSV file, one row per epoch, the columns "epoch" and then the
    log names in order of appearance (loss, metrics, val_..., lr).

    After every epoch the whole file is rewritten atomically, so it is always complete: a crash
    or a reader mid-run never sees half a row. `append=True` keeps the rows already in the file
    (for a resumed run).

    >>> fit(model, loss_fn, opt, train, epochs=10, callbacks=[CSVLogger("runs/log.csv")])
    """

    def __init__(self, path: str | os.PathLike, separator: str = ",", append: bool = False):
        self.path = os.fspath(path)
        self.separator = separator
        self.append = append
        self.columns: list[str] = []
        self.rows: list[dict[str, Any]] = []

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.columns, self.rows = ["epoch"], []
        if self.append and os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as f:
                lines = f.read().splitlines()
            if lines:
                self.columns = lines[0].split(self.separator)
                self.rows = [dict(zip(self.columns, line.split(self.separator)))
                             for line in lines[1:] if line]

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        for key in logs:
            if key not in self.columns:
                self.columns.append(key)
        self.rows.append({"epoch": epoch, **logs})
        lines = [self.separator.join(self.columns)]
        for row in self.rows:
            lines.append(self.separator.join(_cell(row.get(c, "")) for c in self.columns))
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        atomic_write_text(self.path, "\n".join(lines) + "\n")

    def state_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": self.rows}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.columns, self.rows = list(state["columns"]), [dict(r) for r in state["rows"]]


def _cell(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


class GradientClipping(Callback):
    """Clip the gradients after backward and before the optimizer step: rescale them to a total
    norm of at most `max_norm` (`clip_grad_norm_`), and/or clamp each element into
    [-clip_value, clip_value] (`clip_grad_value_`; applied first when both are given).
    `last_norm` holds the total norm before clipping of the last batch.

    >>> fit(model, loss_fn, opt, train, callbacks=[GradientClipping(max_norm=1.0)])
    """

    def __init__(self, max_norm: float | None = None, clip_value: float | None = None,
                 norm_type: float = 2.0):
        if max_norm is None and clip_value is None:
            raise ValueError("GradientClipping: give max_norm, clip_value, or both")
        self.max_norm, self.clip_value, self.norm_type = max_norm, clip_value, norm_type
        self.last_norm: float | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._params = [p for p in self.model.parameters() if p.requires_grad]

    def on_after_backward(self) -> None:
        norm = self.clip()
        if norm is not None:
            self.last_norm = float(norm)

    def clip(self) -> Tensor | None:
        """Clip the gradients; the total norm before clipping (a 0-d Tensor) if max_norm is set.
        Reads no value into Python, so a compiled training step can run it (fit(compile=True))."""
        if self.clip_value is not None:
            clip_grad_value_(self._params, self.clip_value)
        if self.max_norm is not None:
            return clip_grad_norm_(self._params, self.max_norm, self.norm_type)
        return None


class LambdaCallback(Callback):
    """A callback from plain functions, one per hook, with the hooks' signatures.

    >>> log = LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch, logs["loss"]))
    """

    def __init__(self, on_train_begin: Callable | None = None,
                 on_train_end: Callable | None = None, on_epoch_begin: Callable | None = None,
                 on_epoch_end: Callable | None = None, on_batch_begin: Callable | None = None,
                 on_batch_end: Callable | None = None, on_after_backward: Callable | None = None):
        given = dict(on_train_begin=on_train_begin, on_train_end=on_train_end,
                     on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                     on_batch_begin=on_batch_begin, on_batch_end=on_batch_end,
                     on_after_backward=on_after_backward)
        for hook, fn in given.items():
            if fn is not None:
                setattr(self, hook, fn)  # instance attributes: only these hooks get called
