"""Rank 1 raises while rank 0 waits in a collective: the job must stop, not hang."""
import numpy as np

from retrograd.distributed import all_reduce, init

rank, world = init()
if rank == 1:
    raise ValueError("rank 1 failed on purpose")
all_reduce(np.ones(4, np.float32))     # rank 0 would wait here forever without the abort
print("unreachable", flush=True)
