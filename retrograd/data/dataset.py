"""Datasets: indexable collections of samples (torch.utils.data's `Dataset` family).

A dataset needs `__getitem__(i)` returning one sample and `__len__()`. `TensorDataset` holds
same-length tensors and returns one row of each; `Subset` and `random_split` select rows of another
dataset without copying it.
"""
from __future__ import annotations

import math
import warnings
from bisect import bisect_right
from itertools import accumulate
from typing import Any, Sequence

import numpy as np

from ..creation import as_tensor
from ..random import Generator, rng
from ..tensor import Tensor, _wrap


class Dataset:
    """Base class for map-style datasets: define `__getitem__(index)` and `__len__()`.

    >>> class Squares(Dataset):
    ...     def __len__(self): return 10
    ...     def __getitem__(self, i): return float(i), float(i * i)
    >>> DataLoader(Squares(), batch_size=4)   # batches of (x, x**2)
    """

    def __getitem__(self, index) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __add__(self, other: "Dataset") -> "ConcatDataset":
        return ConcatDataset([self, other])


class TensorDataset(Dataset):
    """Rows of tensors that share their first dimension: sample i is `(t[i] for t in tensors)`.

    NumPy arrays are accepted and wrapped without copying. Samples are plain data (no autograd
    history), as training inputs should be.

    >>> ds = TensorDataset(rg.randn(100, 3), rg.randint(0, 2, (100,)))
    >>> x, y = ds[0]          # shapes (3,) and ()
    """

    def __init__(self, *tensors: Tensor | np.ndarray):
        if not tensors:
            raise ValueError("TensorDataset: needs at least one tensor")
        self.tensors = tuple(as_tensor(t) for t in tensors)
        for i, t in enumerate(self.tensors):
            if t.ndim == 0:
                raise ValueError(f"TensorDataset: tensor {i} is 0-d; every tensor needs a first "
                                 "(sample) dimension")
        sizes = [t.shape[0] for t in self.tensors]
        if len(set(sizes)) > 1:
            shapes = ", ".join(f"tensor {i}: {tuple(t.shape)}" for i, t in enumerate(self.tensors))
            raise ValueError(f"TensorDataset: all tensors must have the same size in the first "
                             f"dimension, got sizes {sizes} ({shapes})")

    def __getitem__(self, index) -> tuple[Tensor, ...]:
        return tuple(_wrap(t.data[index]) for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def __repr__(self) -> str:
        shapes = ", ".join(str(tuple(t.shape)) for t in self.tensors)
        return f"TensorDataset({shapes})"


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order (no copy of the data).

    >>> train = Subset(ds, range(80))
    >>> len(train)
    80
    """

    def __init__(self, dataset: Dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, index) -> Any:
        if isinstance(index, list):
            return self.dataset[[self.indices[i] for i in index]]
        return self.dataset[self.indices[index]]

    def __len__(self) -> int:
        return len(self.indices)


class ConcatDataset(Dataset):
    """Several datasets one after another; `ds_a + ds_b` builds one."""

    def __init__(self, datasets: Sequence[Dataset]):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: needs at least one dataset")
        self.cumulative_sizes = list(accumulate(len(d) for d in self.datasets))

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, index: int) -> Any:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"ConcatDataset: index {index} is out of range for length {n}")
        index %= n
        k = bisect_right(self.cumulative_sizes, index)
        start = self.cumulative_sizes[k - 1] if k else 0
        return self.datasets[k][index - start]


def random_split(dataset: Dataset, lengths: Sequence[int | float],
                 generator: Generator | None = None) -> list[Subset]:
    """Split `dataset` into non-overlapping random `Subset`s of the given lengths.

    `lengths` are sample counts summing to len(dataset), or fractions summing to 1 (counts are
    floored and the remainder handed out one by one from the first split, as PyTorch does).
    Draws from `generator`, or the library default.

    >>> train, val = random_split(ds, [0.8, 0.2], generator=rg.Generator(42))
    """
    n = len(dataset)
    lengths = list(lengths)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= n:
        for i, frac in enumerate(lengths):
            if not 0 <= frac <= 1:
                raise ValueError(f"random_split: fraction at index {i} is {frac}, not in [0, 1]")
        counts = [int(math.floor(n * frac)) for frac in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        for i, c in enumerate(counts):
            if c == 0:
                warnings.warn(f"random_split: split {i} has length 0", stacklevel=2)
        lengths = counts
    for i, c in enumerate(lengths):
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 0:
            raise ValueError(f"random_split: lengths must be non-negative integers or fractions "
                             f"summing to 1, got {lengths} (entry {i} is {c!r})")
    if sum(lengths) != n:
        raise ValueError(f"random_split: lengths {list(lengths)} sum to {sum(lengths)}, but the "
                         f"dataset has {n} samples")
    order = rng(generator).permutation(n).tolist()
    return [Subset(dataset, order[end - c:end]) for end, c in zip(accumulate(lengths), lengths)]
