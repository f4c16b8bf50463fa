"""Data-parallel training over MPI: N processes, one model replica each, gradients averaged.

>>> import retrograd as rg
>>> from retrograd.distributed import DistributedDataParallel, DistributedSampler
>>> rank, world = rg.distributed.init()
>>> model = DistributedDataParallel(build_model())          # rank 0's weights everywhere
>>> loader = DataLoader(train_set, batch_size=64, sampler=DistributedSampler(train_set))

Launch with `mpiexec -n 4 python -m mpi4py train.py` (`-m mpi4py`: an exception on one rank
aborts them all). `fit` and `retrograd train` need none of this: started by mpiexec, they shard
the data, average gradients and metrics, and only rank 0 prints and writes files.

mpi4py is imported only by `init()` (lazily): importing this package costs nothing.
"""
from .comm import (all_reduce, average_metrics, barrier, broadcast_object, broadcast_parameters,
                   get_rank, get_world_size, init, is_initialized, is_main_process)
from .ddp import DistributedDataParallel, all_reduce_gradients
from .launch import is_launched, launched_rank, launched_world_size
from .sampler import DistributedSampler

__all__ = [
    "init", "is_initialized", "get_rank", "get_world_size", "is_main_process", "barrier",
    "all_reduce", "broadcast_object", "broadcast_parameters", "average_metrics",
    "DistributedDataParallel", "all_reduce_gradients", "DistributedSampler", "is_launched",
    "launched_rank", "launched_world_size",
]
