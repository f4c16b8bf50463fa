"""float32 GEMM throughput of NumPy's BLAS against PyTorch's, on the workloads' own shapes.

Most of the MLP, LSTM and Transformer steps is matrix products, which retrograd hands to NumPy
(OpenBLAS in PyPI's wheels) and PyTorch to its bundled MKL or oneDNN. This prints GFLOP/s of both
for each shape, one thread, interleaved in rounds, and which BLAS and CPU target each side runs, so
that a step ratio can be split into "the BLAS" and "the rest".

    python bench/gemm.py                 # the shapes below
    python bench/gemm.py --rounds 9
"""
from __future__ import annotations

import argparse
import os
import sys
from functools import partial

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

# (workload, what, M, K, N): C (M x N) = A (M x K) @ B (K x N)
SHAPES = [
    ("mlp", "forward 784 -> 512", 128, 784, 512),
    ("mlp", "forward 512 -> 512", 128, 512, 512),
    ("mlp", "dW of 784 -> 512", 784, 128, 512),
    ("lstm", "step forward [W_hh|W_ih|b] z", 512, 193, 32),
    ("lstm", "step backward W_hh^T d", 128, 512, 32),
    ("lstm", "dW over the sequence", 512, 1024, 193),
    ("transformer", "QKV projection", 1024, 128, 384),
    ("transformer", "FFN up", 1024, 128, 512),
    ("transformer", "logits 128 -> 1000", 1024, 128, 1000),
    ("transformer", "dW of the logits", 1000, 1024, 128),
]


def _blas_names() -> tuple[str, str]:
    import numpy as np
    import torch
    ours = "NumPy BLAS"
    try:
        from threadpoolctl import threadpool_info
        for lib in threadpool_info():
            if lib.get("user_api") == "blas" and "numpy" in lib.get("filepath", ""):
                ours = f"NumPy {np.__version__}: {lib['internal_api']} {lib.get('version')} " \
                       f"({lib.get('architecture')} kernels)"
    except ImportError:
        pass
    config = torch.__config__.show()
    theirs = f"torch {torch.__version__}: " + ("MKL" if "Math Kernel Library" in config else "BLAS") \
        + f", CPU capability {torch.backends.cpu.get_cpu_capability()}"
    return ours, theirs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from compiled import median_ms
    torch.set_num_threads(1)
    ours_name, theirs_name = _blas_names()
    print(f"ours: {ours_name}\ntheirs: {theirs_name}\n")
    print("| workload | product | M x K x N | NumPy GFLOP/s | PyTorch GFLOP/s | NumPy / PyTorch time |")
    print("|---|---|---|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for workload, what, m, k, n in SHAPES:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        out = np.empty((m, n), np.float32)
        ta, tb, tout = torch.from_numpy(a), torch.from_numpy(b), torch.empty(m, n)
        ours, theirs = [], []
        pair = [(ours, partial(np.matmul, a, b, out=out)),
                (theirs, partial(torch.mm, ta, tb, out=tout))]
        for r in range(args.rounds):
            for times, fn in (pair if r % 2 == 0 else pair[::-1]):
                fn()
                times.append(1000 * median_ms(fn, args.repeats))
        us, them = sorted(ours)[len(ours) // 2], sorted(theirs)[len(theirs) // 2]
        flops = 2 * m * k * n
        print(f"| {workload} | {what} | {m} x {k} x {n} | {flops / us / 1e3:.0f} | "
              f"{flops / them / 1e3:.0f} | {us / them:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
