"""Training checkpoints: everything `fit` needs to carry on as if it had never stopped.

A checkpoint is one safetensors file (`rg.save` of a nested dict, written atomically: a crash at
any instant leaves the previous checkpoint or the new one, never a broken file) holding

    model        the state dict, under PyTorch's key names ("model.fc1.weight", ...)
    optimizer    its state_dict (moment buffers as tensors, hyper-parameters as JSON)
    scheduler    its state_dict, when fit has one
    rng          the library generator and the DataLoader's own shuffling generator, if any
    epoch, step  epochs and batches completed; stopped: whether a callback ended the run
    history      the History so far, so the resumed run returns the whole run's curves
    callbacks    the state of callbacks that have state_dict() (EarlyStopping's patience count,
                 ModelCheckpoint's best value, CSVLogger's rows, ...)

A run resumed from the checkpoint of epoch k replays epochs k+1... with the same weights, moments,
learning rates, dropout masks and shuffling order, so it ends bit-identical to a run that was never
interrupted.

>>> fit(model, loss_fn, opt, data, epochs=20, scheduler=sched, checkpoint="run/ckpt.safetensors")
>>> # killed during epoch 13; in a new process, build model, opt and sched the same way, then
>>> fit(model, loss_fn, opt, data, epochs=20, scheduler=sched,
...     checkpoint="run/ckpt.safetensors", resume_from="run/ckpt.safetensors")  # epochs 13-19
"""
from __future__ import annotations

import os
from collections import Counter
from typing import Any, Iterable, Sequence

from ..io import library_version, load, save
from ..random import Generator, default_generator, get_rng_state, set_rng_state

FORMAT = "retrograd.training_checkpoint"
VERSION = 1


class Checkpointer:
    """Writes and restores the checkpoint of one `fit` run (see the module docstring)."""

    def __init__(self, path: str | os.PathLike | None, state: Any, loader: Iterable,
                 callbacks: Sequence[Any]):
        self.path = None if path is None else os.fspath(path)
        self.state, self.callbacks = state, list(callbacks)
        self.generators = loader_generators(loader)
        self.step = 0
        self._saved_callbacks: list = []

    # -- writing -----------------------------------------------------------------------------------
    def save(self, epoch: int) -> None:
        """Write the state at the end of `epoch` (0-based) to `self.path`, atomically."""
        s = self.state
        self.step += s.batch + 1
        history = s.history
        checkpoint = {
            "format": FORMAT, "version": VERSION, "retrograd_version": library_version(),
            "epoch": epoch + 1, "step": self.step, "stopped": bool(s.stop_training),
            "model": s.model.state_dict(),
            "optimizer": s.optimizer.state_dict(),
            "scheduler": None if s.scheduler is None else s.scheduler.state_dict(),
            "scheduler_type": None if s.scheduler is None else type(s.scheduler).__name__,
            "rng": {"default": get_rng_state(), "loader": [g.get_state() for g in self.generators]},
            "history": {"history": history.history, "epoch": history.epoch},
            "callbacks": [[type(cb).__name__, cb.state_dict()] for cb in self.callbacks
                          if callable(getattr(cb, "state_dict", None))],
        }
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        save(checkpoint, self.path)

    # -- reading -----------------------------------------------------------------------------------
    def resume(self, path: str | os.PathLike) -> int:
        """Restore model, optimizer, scheduler, generators and history from `path`; return the
        epoch to continue from (the run's `epochs` when the saved run had stopped early)."""
        path = os.fspath(path)
        ckpt = load(path)
        if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
            raise ValueError(f"resume_from={path}: not a training checkpoint written by "
                             "fit(checkpoint=...); for a weights-only file use "
                             "model.load_state_dict(rg.load(path))")
        if ckpt["version"] > VERSION:
            raise ValueError(f"resume_from={path}: checkpoint format {ckpt['version']} is newer "
                             f"than this retrograd ({library_version()}) understands")
        s = self.state
        _restoring(path, "model", lambda: s.model.load_state_dict(ckpt["model"]))
        _restoring(path, "optimizer", lambda: s.optimizer.load_state_dict(ckpt["optimizer"]))
        saved_type, have = ckpt["scheduler_type"], s.scheduler
        if (saved_type is None) != (have is None) or (
                have is not None and type(have).__name__ != saved_type):
            raise ValueError(f"resume_from={path}: the checkpoint was written with scheduler="
                             f"{saved_type}, this fit has scheduler="
                             f"{None if have is None else type(have).__name__}; pass the same "
                             "kind of scheduler as the interrupted run")
        if have is not None:
            _restoring(path, "scheduler", lambda: have.load_state_dict(ckpt["scheduler"]))
        set_rng_state(ckpt["rng"]["default"])
        saved_generators = ckpt["rng"]["loader"]
        if len(saved_generators) != len(self.generators):
            raise ValueError(f"resume_from={path}: the checkpoint holds {len(saved_generators)} "
                             f"DataLoader generator(s), this run's data has "
                             f"{len(self.generators)}; pass the data the same way as before")
        for g, g_state in zip(self.generators, saved_generators):
            g.set_state(g_state)
        s.history.history = {k: list(v) for k, v in ckpt["history"]["history"].items()}
        s.history.epoch = list(ckpt["history"]["epoch"])
        self.step = ckpt["step"]
        self._saved_callbacks = ckpt["callbacks"]
        s.stop_training = False
        return s.epochs if ckpt["stopped"] else ckpt["epoch"]

    def restore_callbacks(self) -> None:
        """Give each callback with load_state_dict the state of the same-typed callback, in order
        (after on_train_begin, which resets them)."""
        saved: dict[str, list] = {}
        for name, cb_state in self._saved_callbacks:
            saved.setdefault(name, []).append(cb_state)
        seen: Counter = Counter()
        for cb in self.callbacks:
            name = type(cb).__name__
            if callable(getattr(cb, "load_state_dict", None)) and seen[name] < len(
                    saved.get(name, ())):
                cb.load_state_dict(saved[name][seen[name]])
                seen[name] += 1


def _restoring(path: str, what: str, load_it) -> None:
    try:
        load_it()
    except (RuntimeError, ValueError, KeyError, TypeError) as err:
        raise type(err)(f"resume_from={path}: cannot restore the {what}: {err}") from err


def loader_generators(loader: Any) -> list[Generator]:
    """The generators of a DataLoader (its own, its sampler's) other than the library default,
    which is saved anyway; in a fixed order, each once."""
    found: list[Generator] = []
    for owner in (loader, getattr(loader, "sampler", None),
                  getattr(getattr(loader, "batch_sampler", None), "sampler", None)):
        g = getattr(owner, "generator", None)
        if isinstance(g, Generator) and g is not default_generator and all(
                g is not f for f in found):
            found.append(g)
    return found
