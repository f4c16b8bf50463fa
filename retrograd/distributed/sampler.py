"""DistributedSampler: each rank visits its own shard of the dataset (torch's semantics).

Every rank draws the same permutation (seeded by `seed + epoch`, so call `set_epoch(epoch)`
before each epoch to reshuffle), pads it by repeating its head until its length divides by the
number of replicas (or, with `drop_last`, trims the tail), and keeps every `num_replicas`-th index
starting at its `rank`. The shards are disjoint apart from the padding, cover the dataset, and
have equal length, so every rank runs the same number of steps.
"""
from __future__ import annotations

import math
from typing import Iterator, Sized

import numpy as np

from ..data.samplers import Sampler
from .comm import get_rank, get_world_size


class DistributedSampler(Sampler):
    """Indices of this rank's shard of `dataset`, for a `DataLoader(sampler=...)`.

    `num_replicas` and `rank` default to the MPI world's (see `retrograd.distributed.init`).

    >>> sampler = DistributedSampler(train_set, shuffle=True, seed=0)
    >>> loader = DataLoader(train_set, batch_size=32, sampler=sampler)
    >>> for epoch in range(epochs):
    ...     sampler.set_epoch(epoch)        # a new shuffle each epoch, the same on every rank
    ...     for x, y in loader: ...
    """

    def __init__(self, dataset: Sized, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        num_replicas = get_world_size() if num_replicas is None else num_replicas
        rank = get_rank() if rank is None else rank
        if isinstance(num_replicas, bool) or not isinstance(num_replicas, (int, np.integer)) \
                or num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be a positive integer, got "
                             f"{num_replicas!r}")
        if not isinstance(rank, (int, np.integer)) or not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: invalid rank {rank!r}, rank should be in the "
                             f"interval [0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0
        n = len(dataset)
        if self.drop_last and n % self.num_replicas:
            self.num_samples = math.ceil((n - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Use the shuffle of `epoch`: all ranks must pass the same value."""
        self.epoch = int(epoch)

    def _order(self) -> np.ndarray:
        n = len(self.dataset)
        if self.shuffle:
            indices = np.random.default_rng(self.seed + self.epoch).permutation(n)
        else:
            indices = np.arange(n)
        if self.drop_last:
            indices = indices[:self.total_size]
        elif self.total_size > n:  # pad with the first indices, repeated as often as needed
            indices = np.resize(indices, self.total_size)
        return indices[self.rank:self.total_size:self.num_replicas].astype(np.int64, copy=False)

    def __iter__(self) -> Iterator[int]:
        return iter(self._order().tolist())

    def __len__(self) -> int:
        return self.num_samples
