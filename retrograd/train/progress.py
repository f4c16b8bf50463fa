"""How `fit` reports progress: a tqdm bar per epoch on a terminal, one summary line per epoch
otherwise (output redirected to a file or a CI log, or tqdm not installed), nothing when asked."""
from __future__ import annotations

import sys
import time
from typing import Mapping

REFRESH_SECONDS = 0.1  # the bar's live loss/metrics are recomputed at most this often
# a short fixed-width bar, leaving the line's room to the loss and metrics
BAR_FORMAT = "{desc} {percentage:3.0f}%|{bar:16}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"
COUNT_FORMAT = "{desc} {n_fmt} batches [{elapsed}{postfix}]"  # a loader of unknown length


def format_logs(logs: Mapping[str, float]) -> str:
    return " - ".join(f"{k}: {v:.4g}" if k == "lr" else f"{k}: {v:.4f}" for k, v in logs.items())


def format_postfix(logs: Mapping[str, float]) -> str:
    """Compact, for the bar's postfix: `loss=0.2130 acc=0.9375 val_loss=0.2600 val_acc=0.9300`."""
    return " ".join(f"{k.replace('accuracy', 'acc')}={v:.4g}" if k == "lr"
                    else f"{k.replace('accuracy', 'acc')}={v:.4f}" for k, v in logs.items())


class LineReport:
    """One line per epoch: `Epoch 3/10 - 0.4s - loss: 0.2130 - accuracy: 0.9375 - val_loss: ...`."""

    bar = None

    def __init__(self, epochs: int):
        self.epochs = epochs

    def epoch_begin(self, epoch: int, steps: int | None) -> None:
        self.start = time.perf_counter()

    def epoch_end(self, epoch: int, logs: Mapping[str, float]) -> None:
        seconds = time.perf_counter() - self.start
        print(f"Epoch {epoch + 1}/{self.epochs} - {seconds:.2f}s - {format_logs(logs)}",
              flush=True)

    def close(self) -> None:
        pass


class BarReport(LineReport):
    """A tqdm bar per epoch whose postfix shows the running loss and metrics."""

    def __init__(self, epochs: int, tqdm):
        super().__init__(epochs)
        self.tqdm = tqdm
        self.bar = None

    def epoch_begin(self, epoch: int, steps: int | None) -> None:
        self.bar = self.tqdm(total=steps, desc=f"Epoch {epoch + 1}/{self.epochs}", unit="batch",
                             file=sys.stdout, leave=True, dynamic_ncols=True,
                             bar_format=BAR_FORMAT if steps else COUNT_FORMAT)

    def show(self, logs: Mapping[str, float]) -> None:
        self.bar.set_postfix_str(format_postfix(logs), refresh=False)

    def epoch_end(self, epoch: int, logs: Mapping[str, float]) -> None:
        self.bar.set_postfix_str(format_postfix(logs), refresh=False)
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def make_report(progress: bool, epochs: int) -> LineReport | None:
    """The reporter for `fit(progress=...)`: None (silent), a bar, or lines."""
    if not progress:
        return None
    isatty = getattr(sys.stdout, "isatty", None)
    if isatty is not None and isatty():
        try:
            from tqdm import tqdm
        except ImportError:  # an optional extra: pip install "retrograd[progress]"
            return LineReport(epochs)
        return BarReport(epochs, tqdm)
    return LineReport(epochs)
