"""Samplers: the order in which a DataLoader visits a dataset's indices (torch.utils.data's names).

A sampler yields dataset indices; `BatchSampler` groups them into lists. The built-in samplers
also have `_order()`, the whole epoch's order as one int64 array, which the DataLoader slices into
batches without a Python loop over indices.
"""
from __future__ import annotations

from typing import Iterator, Sequence, Sized

import numpy as np

from ..random import Generator, rng


class Sampler:
    """Base class: subclasses define `__iter__` (indices) and usually `__len__`."""

    def __iter__(self) -> Iterator:
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1, every epoch."""

    def __init__(self, data_source: Sized):
        self.data_source = data_source

    def _order(self) -> np.ndarray:
        return np.arange(len(self.data_source), dtype=np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """A fresh random order each time it is iterated (each epoch).

    Draws from `generator`, or from the library default, so `rg.manual_seed(s)` fixes every epoch's
    order. With `replacement=True`, draws `num_samples` indices independently.

    >>> sampler = RandomSampler(range(5), generator=rg.Generator(0))
    >>> list(sampler)   # a permutation of 0..4; the next pass gives another
    """

    def __init__(self, data_source: Sized, replacement: bool = False,
                 num_samples: int | None = None, generator: Generator | None = None):
        self.data_source = data_source
        self.replacement = bool(replacement)
        self._num_samples = num_samples
        self.generator = generator
        n = self.num_samples
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
            raise ValueError(f"RandomSampler: num_samples must be a positive integer, got {n!r}")

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def _order(self) -> np.ndarray:
        n, g = len(self.data_source), rng(self.generator)
        if self.replacement:
            return g.integers(0, n, size=self.num_samples, dtype=np.int64)
        # like torch: num_samples > n repeats whole permutations, then a partial one
        full, rest = divmod(self.num_samples, n)
        parts = [g.permutation(n) for _ in range(full)] + [g.permutation(n)[:rest]]
        return np.concatenate(parts).astype(np.int64, copy=False)

    def __iter__(self) -> Iterator[int]:
        return iter(self._order().tolist())

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices, in a fresh random order each epoch."""

    def __init__(self, indices: Sequence[int], generator: Generator | None = None):
        self.indices = np.asarray(indices, dtype=np.int64)
        self.generator = generator

    def _order(self) -> np.ndarray:
        return self.indices[rng(self.generator).permutation(len(self.indices))]

    def __iter__(self) -> Iterator[int]:
        return iter(self._order().tolist())

    def __len__(self) -> int:
        return len(self.indices)


class BatchSampler(Sampler):
    """Groups a sampler's indices into lists of `batch_size` (the last shorter unless drop_last).

    >>> list(BatchSampler(SequentialSampler(range(5)), batch_size=2, drop_last=False))
    [[0, 1], [2, 3], [4]]
    """

    def __init__(self, sampler: Sampler | Sequence[int], batch_size: int, drop_last: bool):
        self.sampler = sampler
        self.batch_size = check_batch_size(batch_size, "BatchSampler")
        self.drop_last = bool(drop_last)

    def __iter__(self) -> Iterator[list]:
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


def check_batch_size(batch_size, who: str) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size <= 0:
        raise ValueError(f"{who}: batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)
