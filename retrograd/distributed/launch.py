"""Was this process started by an MPI launcher? Answered from environment variables only.

`fit` asks this on every call, so it must cost nothing: no mpi4py import, no MPI initialisation.
Each launcher exports the rank and the job size to the processes it starts: MPICH's and Intel
MPI's hydra set PMI_RANK/PMI_SIZE, Open MPI sets OMPI_COMM_WORLD_RANK/OMPI_COMM_WORLD_SIZE,
MVAPICH sets MV2_COMM_WORLD_RANK/MV2_COMM_WORLD_SIZE, and PMIx-based launchers PMIX_RANK.
"""
from __future__ import annotations

import os

_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")
_RANK_VARS = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK")


def _first_int(names: tuple[str, ...], default: int) -> int:
    for name in names:
        value = os.environ.get(name)
        if value is not None:
            try:
                return int(value)
            except ValueError:
                continue
    return default


def launched_world_size() -> int:
    """The number of processes the MPI launcher started (1 when not launched by one)."""
    return max(1, _first_int(_SIZE_VARS, 1))


def launched_rank() -> int:
    """This process's rank as the MPI launcher tells it (0 when not launched by one)."""
    return _first_int(_RANK_VARS, 0)


def is_launched() -> bool:
    """True under `mpiexec -n N` / `mpirun -n N` with N > 1."""
    return launched_world_size() > 1
