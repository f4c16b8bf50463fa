"""What `fit` does differently when started by mpiexec/mpirun (see `retrograd.train.fit`).

- every rank starts from rank 0's weights (broadcast when training begins);
- the training DataLoader is re-made around a `DistributedSampler`, so each rank trains on its
  own shard with its own `batch_size` (the global batch is world_size x batch_size), reshuffled
  each epoch with a seed all ranks share;
- after each backward the gradients are averaged over ranks (one all-reduce per bucket);
- after each training epoch, rank 0's buffers (BatchNorm's running statistics) are broadcast,
  and the epoch's training loss and metrics are averaged over ranks before anything reads them
  (schedulers, callbacks, History), so every rank takes the same decisions; validation runs on
  the whole validation set on every rank (identical results, no communication);
- only rank 0 shows progress and runs the callbacks that write files (ModelCheckpoint,
  CSVLogger).
"""
from __future__ import annotations

import warnings
from typing import Any

from ..data import DataLoader
from ..data.samplers import RandomSampler, SequentialSampler
from ..nn import Module
from ..random import rng
from ..train.callbacks import Callback, CSVLogger, ModelCheckpoint
from .comm import average_metrics, broadcast_object, broadcast_parameters, init
from .ddp import DistributedDataParallel, all_reduce_gradients
from .sampler import DistributedSampler

WRITERS = (ModelCheckpoint, CSVLogger)


class _DataParallel(Callback):
    def __init__(self, model: Module, sampler: DistributedSampler | None):
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.sampler = sampler
        # a DistributedDataParallel model averages its gradients itself, inside backward
        self.reduce = not (isinstance(model, DistributedDataParallel) and model.world_size > 1)

    def on_train_begin(self, logs: dict | None = None) -> None:
        broadcast_parameters(self.model)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)

    def on_after_backward(self) -> None:
        if self.reduce:
            all_reduce_gradients(self.params)


class DataParallelFit:
    """The pieces `fit` swaps in: `loader`, `callbacks` (ours first), `is_main`, `average`."""

    def __init__(self, model: Module, loader: Any, callbacks: list, seed: int | None):
        rank, world = init()
        self.rank, self.world_size, self.is_main = rank, world, rank == 0
        self.buffers = [b for b in model.buffers() if b is not None]
        # the same draw on every rank keeps the default generators in step; rank 0's value wins
        drawn = int(rng(None).integers(0, 2 ** 31 - 1))
        shuffle_seed = broadcast_object(drawn if seed is None else seed)
        self.loader, sampler = shard(loader, rank, world, shuffle_seed)
        if not self.is_main:
            callbacks = [cb for cb in callbacks if not isinstance(cb, WRITERS)]
        self.callbacks = [_DataParallel(model, sampler), *callbacks]

    def sync(self, logs: dict) -> dict:
        """After a training epoch: rank 0's buffers (BatchNorm's running statistics, which each
        rank updated from its own batches) everywhere, so that validation agrees; returns the
        epoch's logs averaged over ranks (the shards have equal length)."""
        if self.buffers:
            broadcast_parameters(self.buffers)
        return average_metrics(logs)


def shard(loader: Any, rank: int, world: int, seed: int) -> tuple[Any, Any]:
    """`loader` re-made to visit only this rank's shard, and its sampler (None if left as is)."""
    if not isinstance(loader, DataLoader):
        return loader, None   # a list of batches: each rank trains on the batches it is given
    if isinstance(loader.sampler, DistributedSampler):
        return loader, loader.sampler   # sharded already: fit only calls set_epoch
    if not loader._auto_batch or type(loader.sampler) not in (RandomSampler, SequentialSampler):
        warnings.warn("fit under MPI: the training DataLoader has a custom sampler, so it is not "
                      "sharded and every rank sees all of it; pass a DataLoader with a "
                      "retrograd.distributed.DistributedSampler to shard it yourself",
                      stacklevel=3)
        return loader, None
    sampler = DistributedSampler(loader.dataset, num_replicas=world, rank=rank,
                                 shuffle=type(loader.sampler) is RandomSampler, seed=seed)
    sharded = DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler,
                         drop_last=loader.drop_last, collate_fn=loader.collate_fn)
    return sharded, sampler
