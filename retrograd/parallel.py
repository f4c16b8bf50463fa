"""Thread control for the BLAS library under NumPy (PyTorch's `set_num_threads` / `get_num_threads`).

Matrix products run in the BLAS thread pool. On small matrices, or on a machine shared with other
busy processes, fewer threads are often faster: idle BLAS threads spin while waiting for work.
"""
from __future__ import annotations

from threadpoolctl import ThreadpoolController

_controller: ThreadpoolController | None = None


def _blas() -> ThreadpoolController:
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller


def get_num_threads() -> int:
    """Threads the BLAS library under NumPy uses for matrix products."""
    pools = [p for p in _blas().info() if p["user_api"] == "blas"]
    return max((p["num_threads"] for p in pools), default=1)


def set_num_threads(n: int) -> None:
    """Use `n` threads for matrix products (like torch.set_num_threads).

    >>> rg.set_num_threads(1)     # small models, or a busy machine
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: expected a positive integer, got {n!r}")
    _blas().limit(limits=n, user_api="blas")
