"""`History`: what `fit` returns, one value per epoch for the loss and each metric (Keras names)."""
from __future__ import annotations

import io
import math
from typing import Iterator, Mapping

from ..io import atomic_write_bytes

_PLOT_HINT = 'pip install "retrograd[plot]"'


class History:
    """Per-epoch logs of a training run.

    `history` maps each name to a list with one value per epoch: "loss", the metrics
    ("accuracy", ...), their validation counterparts ("val_loss", "val_accuracy", ...) and "lr"
    when a scheduler ran. `epoch` lists the epoch indices (0-based, as in Keras).

    >>> history = fit(model, loss_fn, opt, train, epochs=5, val_data=val)
    >>> history["val_accuracy"][-1]
    0.962
    >>> history.plot("curves.png")
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.params: dict = {}

    def append(self, epoch: int, logs: Mapping[str, float]) -> None:
        """Record one epoch's logs (a key first seen now is padded with NaN for earlier epochs)."""
        for key in logs:
            if key not in self.history:
                self.history[key] = [math.nan] * len(self.epoch)
        self.epoch.append(epoch)
        for key, values in self.history.items():
            values.append(float(logs.get(key, math.nan)))

    def __getitem__(self, key: str) -> list[float]:
        try:
            return self.history[key]
        except KeyError:
            raise KeyError(f"History has no {key!r}; it has {', '.join(self.history) or 'nothing'}"
                           ) from None

    def __contains__(self, key: object) -> bool:
        return key in self.history

    def __iter__(self) -> Iterator[str]:
        return iter(self.history)

    def __len__(self) -> int:
        return len(self.epoch)

    def keys(self):
        return self.history.keys()

    def last(self) -> dict[str, float]:
        """The final epoch's logs."""
        return {k: v[-1] for k, v in self.history.items() if v}

    def __repr__(self) -> str:
        last = ", ".join(f"{k}={v:.4g}" for k, v in self.last().items())
        return f"History(epochs={len(self.epoch)}{', ' if last else ''}{last})"

    def plot(self, path: str, keys: list[str] | None = None) -> None:
        """Draw the curves into a PNG at `path` (written atomically): one panel per quantity,
        training and validation together; the learning rate on a log scale.

        `keys` picks the quantities (default: all, e.g. ["loss", "accuracy", "lr"]). Needs
        matplotlib, an optional extra: `pip install "retrograd[plot]"`.

        >>> history.plot("runs/curves.png", keys=["loss"])
        """
        try:
            from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend
            from matplotlib.ticker import MaxNLocator
        except ImportError as err:
            raise ImportError(f"History.plot needs matplotlib, which is not installed: "
                              f"{_PLOT_HINT}") from err
        names = keys if keys is not None else [k for k in self.history
                                               if not k.startswith("val_")]
        for name in names:
            if name not in self.history and "val_" + name not in self.history:
                raise KeyError(f"History.plot: nothing recorded for {name!r}; recorded: "
                               f"{', '.join(self.history) or 'nothing'}")
        if not names:
            raise ValueError("History.plot: the history is empty; train for an epoch first")
        cols = min(len(names), 3)
        rows = math.ceil(len(names) / cols)
        fig = Figure(figsize=(4.5 * cols, 3.4 * rows), layout="constrained")
        x = [e + 1 for e in self.epoch]
        for i, name in enumerate(names):
            ax = fig.add_subplot(rows, cols, i + 1)
            for key, label in ((name, "train"), ("val_" + name, "validation")):
                if key in self.history:
                    ax.plot(x, self.history[key], marker="o" if len(x) < 30 else None,
                            markersize=3, label=label)
            if name == "lr":
                ax.set_yscale("log")
                label = "learning rate"
            else:
                ax.legend()
                label = name
            ax.set_title(label)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(True, alpha=0.3)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        atomic_write_bytes(path, buffer.getvalue())
