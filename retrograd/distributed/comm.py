"""The MPI world: `init`, ranks, and the few collectives data-parallel training needs.

mpi4py is imported here, lazily, by `init()` and nothing else: `import retrograd` (and even
`import retrograd.distributed`) never loads MPI. A job of one process needs no launcher at all:
`init()` then gives rank 0 of a world of size 1 and every collective is a no-op.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Mapping

import numpy as np

from .launch import launched_rank, launched_world_size

INSTALL = "pip install 'retrograd[distributed]'   (that is: pip install mpi4py mpich)"

_comm: Any = None          # mpi4py.MPI.Comm once init() has run
_MPI: Any = None           # the mpi4py.MPI module


def init(abort_on_error: bool = True) -> tuple[int, int]:
    """Start MPI (once) and return `(rank, world_size)`.

    Launch the job with `mpiexec -n 4 python -m mpi4py train.py`; a plain `python train.py` is a
    world of one. With `abort_on_error` (the default, when the world has more than one process)
    an uncaught exception on any rank prints its traceback and aborts the whole job instead of
    leaving the other ranks waiting forever in a collective.

    >>> rank, world = rg.distributed.init()
    >>> print(f"I am {rank} of {world}")
    """
    global _comm, _MPI
    if _comm is None:
        try:
            from mpi4py import MPI
        except ImportError as e:  # no mpi4py, or mpi4py without a loadable MPI library
            raise ImportError(
                f"retrograd.distributed needs mpi4py and an MPI library ({e}). Install them with: "
                f"{INSTALL}; then launch with: mpiexec -n 2 python -m mpi4py your_script.py"
            ) from e
        except RuntimeError as e:  # mpi4py found no MPI runtime to load
            raise ImportError(f"retrograd.distributed: mpi4py could not load an MPI runtime "
                              f"({e}). Install one with: {INSTALL}") from e
        _MPI, _comm = MPI, MPI.COMM_WORLD
        if abort_on_error and _comm.Get_size() > 1:
            _install_abort_hook()
    return _comm.Get_rank(), _comm.Get_size()


def _install_abort_hook() -> None:
    """An uncaught exception on one rank aborts every rank (what `python -m mpi4py` does too)."""
    previous = sys.excepthook

    def hook(kind, value, traceback):
        previous(kind, value, traceback)
        sys.stderr.flush()
        # the launcher stops forwarding output the moment it sees the abort: give it time to pass
        # the traceback on first, or the user sees a job that died without saying why
        time.sleep(0.5)
        _comm.Abort(1)

    sys.excepthook = hook


def is_initialized() -> bool:
    return _comm is not None


def comm() -> Any:
    """The mpi4py communicator (COMM_WORLD), initialising MPI if needed."""
    init()
    return _comm


def mpi() -> Any:
    """The mpi4py.MPI module, initialising MPI if needed."""
    init()
    return _MPI


def get_rank() -> int:
    """This process's rank: from MPI once initialised, else from the launcher's environment."""
    return _comm.Get_rank() if _comm is not None else launched_rank()


def get_world_size() -> int:
    """The number of processes: from MPI once initialised, else from the launcher's environment."""
    return _comm.Get_size() if _comm is not None else launched_world_size()


def is_main_process() -> bool:
    """True on rank 0, the one that prints and writes files."""
    return get_rank() == 0


def barrier() -> None:
    if get_world_size() > 1:
        comm().Barrier()


def all_reduce(array: np.ndarray, average: bool = False) -> np.ndarray:
    """Sum (or average) a contiguous NumPy array over all ranks, in place; returns it."""
    if get_world_size() > 1:
        if not array.flags.c_contiguous:
            raise ValueError("all_reduce: the array must be C-contiguous (it is reduced in place)")
        comm().Allreduce(_MPI.IN_PLACE, array, op=_MPI.SUM)
        if average:
            array *= array.dtype.type(1 / get_world_size())
    return array


def broadcast_object(obj: Any, root: int = 0) -> Any:
    """Rank `root`'s `obj` (any picklable value) on every rank."""
    return comm().bcast(obj, root=root) if get_world_size() > 1 else obj


def broadcast_parameters(params: Any, root: int = 0) -> None:
    """Overwrite, in place, every rank's parameters (and a Module's buffers) with rank `root`'s,
    so that all ranks start identical. `params` is a Module, or an iterable of Tensors.

    Arrays of one dtype travel together in one flat buffer: one `Bcast` per dtype.

    >>> model = build_model()                 # initialised differently on each rank
    >>> rg.distributed.broadcast_parameters(model)
    """
    if get_world_size() <= 1:
        return
    if hasattr(params, "parameters"):
        tensors = list(params.parameters()) + [b for b in params.buffers() if b is not None]
    else:
        tensors = list(params)
    by_dtype: dict = {}
    for t in tensors:
        by_dtype.setdefault(t.data.dtype, []).append(t)
    c = comm()
    for dtype, group in by_dtype.items():  # same insertion order on every rank: same model
        flat = np.concatenate([t.data.ravel() for t in group]) if c.Get_rank() == root \
            else np.empty(sum(t.data.size for t in group), dtype)
        c.Bcast(flat, root=root)
        offset = 0
        for t in group:
            n = t.data.size
            t.data[...] = flat[offset:offset + n].reshape(t.data.shape)
            offset += n


def average_metrics(logs: Mapping[str, float]) -> dict[str, float]:
    """The mean of each value over ranks (every rank must pass the same keys); rank order kept.

    >>> average_metrics({"loss": 0.3, "accuracy": 0.9})   # on each rank -> the same dict
    """
    logs = dict(logs)
    if get_world_size() <= 1 or not logs:
        return logs
    keys = sorted(logs)
    values = np.array([float(logs[k]) for k in keys], dtype=np.float64)
    all_reduce(values, average=True)
    return {k: float(values[keys.index(k)]) for k in logs}

