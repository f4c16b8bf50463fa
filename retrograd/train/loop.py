"""`fit`, `evaluate` and `predict`: the training loop everyone writes, written once.

One step of `fit` is exactly the loop of the PyTorch tutorials:

    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    (callbacks' on_after_backward: gradient clipping)
    optimizer.step()

around it only what is needed to report: the loss and metrics are accumulated from the batch
outputs with a few NumPy operations, the progress bar is redrawn at most every 0.1 s, and
callbacks are called only at the hooks they override.
"""
from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from .. import dtypes
from ..autograd import no_grad
from ..compile import compile as compile_step
from ..creation import as_tensor, from_numpy
from ..data import DataLoader, Dataset, TensorDataset
from ..distributed.launch import launched_world_size
from ..nn import Module
from ..random import manual_seed
from ..tensor import Tensor
from .callbacks import (HOOKS, Callback, GradientClipping, LRSchedulerCallback, overrides,
                        step_scheduler)
from .checkpoint import Checkpointer
from .history import History
from .metrics import Metric, MetricsSpec, get_metrics
from .progress import REFRESH_SECONDS, make_report

Data = Any  # DataLoader | Dataset | (X, y) | an iterable of (x, y) batches
EVAL_BATCH_SIZE = 256


@dataclass
class TrainState:
    """The run as callbacks see it (`callback.state`). Set `stop_training = True` to end training
    after the current batch (the epoch is closed and recorded as usual)."""

    model: Module
    loss_fn: Callable
    optimizer: Any
    scheduler: Any
    history: History
    epochs: int
    epoch: int = 0
    batch: int = 0
    stop_training: bool = False
    logs: dict = field(default_factory=dict)


class _CallbackList:
    """For each hook, the bound methods of the callbacks that override it."""

    def __init__(self, callbacks: Sequence[Callback], state: TrainState):
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"fit: callbacks must be Callback instances, got "
                                f"{type(cb).__name__}")
            cb.state = state
        for hook in HOOKS:
            setattr(self, hook, [getattr(cb, hook) for cb in callbacks if overrides(cb, hook)])


def fit(model: Module, loss_fn: Callable, optimizer: Any, train_data: Data, epochs: int = 1,
        val_data: Data | None = None, metrics: MetricsSpec | None = ("accuracy",),
        scheduler: Any = None, callbacks: Iterable[Callback] | Callback = (),
        progress: bool = True, batch_size: int = 32, shuffle: bool = True,
        seed: int | None = None, checkpoint: Any = None, resume_from: Any = None,
        compile: bool | str = False) -> History:  # noqa: A002 - as torch.compile
    """Train `model` for `epochs` passes over `train_data`; return the per-epoch `History`.

    `train_data` and `val_data` are a DataLoader (used as is), a Dataset, or a tuple `(X, y)` of
    arrays or tensors (training data batched by `batch_size` and shuffled if `shuffle`,
    validation data in batches of max(batch_size, 256); NumPy float arrays are cast to the
    default float dtype, float32, as a model expects), or a list of (x, y) batches. After each
    epoch the model is evaluated on `val_data` in eval mode without gradients; History gets
    "loss", the `metrics` (see `retrograd.train.metrics`; use `metrics=()` for regression) and
    "val_" versions of each. `scheduler` is stepped once per epoch (`ReduceLROnPlateau` with
    val_loss, or loss without validation) unless an `LRSchedulerCallback` manages it; with any
    scheduler, "lr" (the first parameter group's, at the end of the epoch) is logged too.
    `seed` calls `rg.manual_seed(seed)` first, so the shuffling and dropout are reproducible:
    the same seed and initial weights give bit-identical results.

    `checkpoint=path` writes a full training checkpoint (model, optimizer, scheduler, random
    generators, epoch, history, callbacks' state; see `retrograd.train.checkpoint`) atomically at
    the end of every epoch. `resume_from=path` restores one into the freshly built model,
    optimizer and scheduler and continues with the next epoch up to `epochs` (counted from the
    start of the run, like Keras' `epochs` with `initial_epoch`); the returned History covers the
    whole run, and the final weights are bit-identical to an uninterrupted run's. Pass both (the
    same path) to keep checkpointing a resumed run.

    Started by `mpiexec -n N` (or mpirun), `fit` trains data-parallel with no change to the call:
    each rank trains on its shard of `train_data`, gradients and the epoch's metrics are averaged
    over ranks, and only rank 0 shows progress and writes checkpoints (`retrograd.distributed`).

    `progress=True` shows a tqdm bar per epoch on a terminal, and prints one line per epoch when
    the output is not a terminal (a log file, CI) or tqdm is not installed; `progress=False`
    prints nothing. On return the model is back in the train/eval mode it was in.

    `compile=True` runs the training step through `rg.compile`: the same results, bit for bit,
    with less Python per step (`GradientClipping` runs inside the compiled step; any other
    `on_after_backward` callback keeps training eager). `compile="numba"` uses its Numba backend
    (small models: a fused step, equal to eager's within float rounding, after seconds of
    compiling).

    >>> model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    >>> opt = rg.optim.Adam(model.parameters(), lr=1e-3)
    >>> history = fit(model, nn.CrossEntropyLoss(), opt, train_set, epochs=10, val_data=test_set,
    ...               callbacks=[EarlyStopping(patience=3)])
    >>> history["val_accuracy"][-1]
    """
    if not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"fit: epochs must be a non-negative integer, got {epochs!r}")
    if compile not in (False, True, "numpy", "numba"):
        raise ValueError(f"fit: compile must be True, False, 'numpy' or 'numba', got {compile!r}")
    if seed is not None:
        manual_seed(seed)
    train_loader = as_loader(train_data, batch_size, shuffle, "train_data")
    val_loader = (None if val_data is None
                  else as_loader(val_data, max(batch_size, EVAL_BATCH_SIZE), False, "val_data"))
    metric_list = get_metrics(metrics, loss_fn)
    callbacks = [callbacks] if isinstance(callbacks, Callback) else list(callbacks)
    dp = None
    if launched_world_size() > 1:  # started by mpiexec/mpirun: data-parallel, distributed/fit.py
        from ..distributed.fit import DataParallelFit
        dp = DataParallelFit(model, train_loader, callbacks, seed)
        train_loader, callbacks, progress = dp.loader, dp.callbacks, progress and dp.is_main
    history = History()
    history.params = {"epochs": epochs, "steps": _length(train_loader)}
    state = TrainState(model, loss_fn, optimizer, scheduler, history, epochs)
    hooks = _CallbackList(callbacks, state)
    saver = (Checkpointer(checkpoint, state, train_loader, callbacks)
             if checkpoint is not None or resume_from is not None else None)
    start = 0 if resume_from is None else saver.resume(resume_from)
    managed = [cb.scheduler for cb in callbacks if isinstance(cb, LRSchedulerCallback)]
    epoch_scheduler = None if any(s is scheduler for s in managed) else scheduler
    log_lr = scheduler is not None or bool(managed)
    report = make_report(progress, epochs)
    logs: dict[str, float] = {}

    backend = "numpy" if compile is True else compile
    step = _compiled_step(model, loss_fn, optimizer, hooks, backend) if compile else None
    with _restore_modes(model):
        for hook in hooks.on_train_begin:
            hook(logs)
        if resume_from is not None:
            saver.restore_callbacks()  # after on_train_begin, which resets them
        try:
            for epoch in range(start, epochs):
                state.epoch = epoch
                for hook in hooks.on_epoch_begin:
                    hook(epoch, {})
                logs = _train_epoch(state, train_loader, metric_list, hooks, report, step)
                if dp is not None:  # rank 0's buffers everywhere, logs averaged over ranks
                    logs = dp.sync(logs)
                if val_loader is not None:
                    logs.update(_evaluate(model, val_loader, loss_fn, metric_list, "val_"))
                if log_lr:
                    # before the epoch-level step: the lr this epoch ended with
                    logs["lr"] = float(optimizer.param_groups[0]["lr"])
                if epoch_scheduler is not None:
                    step_scheduler(epoch_scheduler, logs)
                state.logs = logs
                for hook in hooks.on_epoch_end:
                    hook(epoch, logs)
                # after the callbacks, as Keras' History: a value a callback adds is recorded
                history.append(epoch, logs)
                if report is not None:
                    report.epoch_end(epoch, logs)
                if checkpoint is not None and (dp is None or dp.is_main):
                    saver.save(epoch)
                if state.stop_training:
                    break
        finally:
            if report is not None:
                report.close()
        for hook in hooks.on_train_end:
            hook(logs)
    return history


def _train_epoch(state: TrainState, loader: Iterable, metrics: list[Metric],
                 hooks: _CallbackList, report, step: Callable | None = None) -> dict[str, float]:
    model, loss_fn, optimizer = state.model, state.loss_fn, state.optimizer
    model.train()
    bar = None
    if report is not None:
        report.epoch_begin(state.epoch, _length(loader))
        bar = report.bar
    batch_begin, after_backward = hooks.on_batch_begin, hooks.on_after_backward
    batch_end = hooks.on_batch_end
    sums, counts = [0.0] * len(metrics), [0] * len(metrics)
    total, seen = 0.0, 0
    next_show = 0.0
    for i, batch in enumerate(loader):
        x, y = _unpack(batch)
        state.batch = i
        for hook in batch_begin:
            hook(i)
        if step is not None:
            out, loss = step(x, y)
        else:
            optimizer.zero_grad(set_to_none=True)
            out = model(x)
            loss = loss_fn(out, y)
            loss.backward()
            for hook in after_backward:
                hook()
            optimizer.step()

        n = y.data.shape[0] if y.data.ndim else 1
        value = float(loss.data)
        total += value * n
        seen += n
        for j, metric in enumerate(metrics):
            s, c = metric.batch(out, y)
            sums[j] += s
            counts[j] += c
        if batch_end:
            batch_logs = {"loss": value, "size": n}
            for hook in batch_end:
                hook(i, batch_logs)
        if bar is not None:
            bar.update(1)
            now = time.perf_counter()
            if now >= next_show:
                next_show = now + REFRESH_SECONDS
                report.show(_logs(total, seen, metrics, sums, counts, ""))
        if state.stop_training:  # a callback may stop mid-epoch, too
            break
    if seen == 0:
        raise ValueError("fit: train_data yielded no batches")
    return _logs(total, seen, metrics, sums, counts, "")


def _compiled_step(model: Module, loss_fn: Callable, optimizer: Any, hooks: _CallbackList,
                   backend: str) -> Callable | None:
    """One training step under `rg.compile`, or None when callbacks must run inside it.

    Of the callbacks that run between backward and the optimizer step, gradient clipping is
    run inside the compiled step (it reads no value into Python); any other one makes the
    training eager."""
    clippers = [getattr(hook, "__self__", None) for hook in hooks.on_after_backward]
    if not all(isinstance(c, GradientClipping) for c in clippers):
        warnings.warn("fit(compile=True): on_after_backward callbacks other than "
                      "GradientClipping run between backward and the optimizer step, which a "
                      "compiled step cannot replay; training eagerly", stacklevel=3)
        return None

    def train_step(x, y):
        optimizer.zero_grad(set_to_none=True)
        out = model(x)
        loss = loss_fn(out, y)
        loss.backward()
        norms = tuple(c.clip() for c in clippers)
        optimizer.step()
        return out, loss, norms

    compiled = compile_step(train_step, backend=backend)

    def step(x, y):
        out, loss, norms = compiled(x, y)
        for c, norm in zip(clippers, norms):
            if norm is not None:          # read outside the compiled step, as eager sets it
                c.last_norm = float(norm)
        return out, loss

    return step


def _evaluate(model: Module, loader: Iterable, loss_fn: Callable | None, metrics: list[Metric],
              prefix: str = "") -> dict[str, float]:
    sums, counts = [0.0] * len(metrics), [0] * len(metrics)
    total, seen = 0.0, 0
    with _restore_modes(model), no_grad():
        model.eval()
        for batch in loader:
            x, y = _unpack(batch)
            out = model(x)
            n = y.data.shape[0] if y.data.ndim else 1
            if loss_fn is not None:
                total += float(loss_fn(out, y).data) * n
            seen += n
            for j, metric in enumerate(metrics):
                s, c = metric.batch(out, y)
                sums[j] += s
                counts[j] += c
    if seen == 0:
        raise ValueError("evaluate: the data yielded no batches")
    return _logs(total if loss_fn is not None else None, seen, metrics, sums, counts, prefix)


def _logs(total: float | None, seen: int, metrics: list[Metric], sums: list[float],
          counts: list[int], prefix: str) -> dict[str, float]:
    logs = {} if total is None else {prefix + "loss": total / seen}
    for metric, s, c in zip(metrics, sums, counts):
        logs[prefix + metric.name] = s / c if c else float("nan")
    return logs


def evaluate(model: Module, data: Data, loss_fn: Callable | None = None,
             metrics: MetricsSpec | None = ("accuracy",),
             batch_size: int = EVAL_BATCH_SIZE) -> dict[str, float]:
    """The mean loss (if `loss_fn` is given) and metrics of `model` over `data`, computed in eval
    mode without gradients; the model's train/eval mode is restored afterwards.

    `data` is anything `fit` accepts (a DataLoader, a Dataset, or `(X, y)`).

    >>> evaluate(model, test_set, loss_fn=nn.CrossEntropyLoss())
    {'loss': 0.0921, 'accuracy': 0.9721}
    """
    loader = as_loader(data, batch_size, False, "data")
    return _evaluate(model, loader, loss_fn, get_metrics(metrics, loss_fn))


def predict(model: Module, data: Any, batch_size: int = EVAL_BATCH_SIZE) -> Tensor:
    """The model's outputs for every input of `data`, concatenated along dim 0, computed in eval
    mode without gradients (the train/eval mode is restored afterwards).

    `data` is an input Tensor/array (split into batches of `batch_size`), or a DataLoader,
    Dataset or `(X, y)` tuple, whose batches' first element is the input.

    >>> probabilities = predict(model, x_test).softmax(dim=1)      # (N, 10)
    """
    if isinstance(data, (Tensor, np.ndarray, list)):
        inputs = _as_batch_tensor(data).data
        batches: Iterable = (from_numpy(inputs[i:i + batch_size])
                             for i in range(0, len(inputs), batch_size))
    else:
        batches = (b[0] if isinstance(b, (list, tuple)) else b
                   for b in as_loader(data, batch_size, False, "data"))
    outputs = []
    with _restore_modes(model), no_grad():
        model.eval()
        for x in batches:
            out = model(x if isinstance(x, Tensor) else as_tensor(x))
            if not isinstance(out, Tensor):
                raise TypeError(f"predict: the model returned {type(out).__name__}; predict "
                                "concatenates single Tensor outputs")
            outputs.append(out.data)
    if not outputs:
        raise ValueError("predict: the data yielded no batches")
    return from_numpy(np.concatenate(outputs) if len(outputs) > 1 else outputs[0])


# -- data ------------------------------------------------------------------------------------------

def as_loader(data: Data, batch_size: int, shuffle: bool, what: str) -> Iterable:
    """Batches from what `fit`/`evaluate` accept: a DataLoader or other re-iterable of (x, y)
    batches as is; a Dataset or an (X, y) tuple wrapped in a DataLoader."""
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, tuple):
        if len(data) != 2:
            raise ValueError(f"{what}: a tuple must be (inputs, targets), got {len(data)} items")
        dataset: Any = TensorDataset(*(_as_batch_tensor(a) for a in data))
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle)
    if isinstance(data, (Tensor, np.ndarray)):
        raise TypeError(f"{what}: got a single {type(data).__name__}; pass (inputs, targets), a "
                        "Dataset or a DataLoader")
    if isinstance(data, Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")
                                     and not isinstance(data, (list, str, dict))):
        return DataLoader(data, batch_size=batch_size, shuffle=shuffle)
    if hasattr(data, "__iter__"):
        if iter(data) is data:
            raise TypeError(f"{what}: got a one-shot iterator ({type(data).__name__}), which "
                            "would be empty after the first epoch; pass a DataLoader, a Dataset, "
                            "(inputs, targets) or a list of batches")
        return data
    raise TypeError(f"{what}: expected a DataLoader, a Dataset or (inputs, targets), got "
                    f"{type(data).__name__}")


def _as_batch_tensor(a: Any) -> Tensor:
    if isinstance(a, Tensor):
        return a
    a = np.asarray(a)
    if a.dtype.kind == "f" and a.dtype != dtypes.get_default_dtype():
        a = a.astype(dtypes.get_default_dtype())  # NumPy's float64 default, as Keras does
    return from_numpy(a)


def _unpack(batch: Any) -> tuple[Tensor, Tensor]:
    if type(batch) not in (list, tuple) or len(batch) != 2:
        raise TypeError(f"fit: each batch must be (inputs, targets), got "
                        f"{type(batch).__name__}" + (f" of length {len(batch)}"
                                                     if isinstance(batch, (list, tuple)) else ""))
    x, y = batch
    if type(x) is not Tensor:
        x = as_tensor(x)
    if type(y) is not Tensor:
        y = as_tensor(y)
    return x, y


def _length(loader: Iterable) -> int | None:
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError:
        return None


@contextmanager
def _restore_modes(model: Module) -> Iterator[None]:
    """Put every submodule back in its own train/eval mode (a frozen BatchNorm stays frozen)."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield
    finally:
        for m, mode in modes:
            m.__dict__["training"] = mode
