"""Keep freed memory for the next training step instead of handing it back to the OS (glibc).

A training step allocates and frees the same large temporaries every time: activations, im2col
columns, attention scores, gradients, 0.1-10 MB each. By default glibc serves every array over
its mmap threshold (128 KB, raised dynamically up to the largest array freed) with fresh pages, and
returns the freed top of its heap to the OS; so each step touches new memory and pays a page fault
per 4 KB page on first write. Measured on bench/workloads.py (one thread): 3,800 page faults and
14 ms of system time per CNN step, against ~19 ms of compute; 6,500 faults and 14 ms per
Transformer step. With the thresholds below those steps fault ~0 times and run 30-45% faster.

The cost: up to `trim_threshold` bytes of freed memory stay with the process, and arrays under
`mmap_threshold` come from the heap. Applied once when retrograd is imported, on Linux with glibc,
unless RETROGRAD_MALLOC_TUNING=0 or the user set glibc's own MALLOC_*_ variables.
"""
from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3      # glibc's mallopt parameter numbers
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
                  "GLIBC_TUNABLES")


def keep_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Serve arrays below `mmap_threshold` bytes from the heap and keep up to `trim_threshold` bytes
    of freed heap for reuse. Returns whether glibc accepted the settings.

    >>> rg.allocator.keep_freed_memory(trim_threshold=1 << 30)    # a model with bigger steps
    True
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version         # glibc only: other libcs have no such thresholds
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)
                and mallopt(_M_TRIM_THRESHOLD, trim_threshold))


def tune_on_import() -> bool:
    """keep_freed_memory(), unless RETROGRAD_MALLOC_TUNING=0 or the user has tuned glibc."""
    if os.environ.get("RETROGRAD_MALLOC_TUNING", "1") == "0":
        return False
    if any(name in os.environ for name in _USER_SETTINGS):
        return False
    return keep_freed_memory()
