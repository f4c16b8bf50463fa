"""Side-by-side benchmark: one training step of retrograd and of PyTorch eager, in one process.

Each workload is timed as forward + loss + backward + optimizer update, float32, after a warm-up,
as the median over many steps; both libraries are pinned to the same number of threads. Machines
here are shared and noisy, so the ratio (retrograd / PyTorch) is the number to read.

    python bench/run.py                  # all workloads, 2 threads
    python bench/run.py --only xor --threads 1
    python bench/run.py --markdown       # a table for docs/benchmarks.md
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def _pin_threads(n: int) -> None:
    # Must happen before NumPy / PyTorch load their thread pools.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


def median_ms(step, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    times.sort()
    return 1000 * times[len(times) // 2]


def interleaved(steps: dict, rounds: int, repeats: int, warmup: int) -> dict:
    """Alternate the libraries in rounds so a noisy neighbour hits both alike; median of round medians."""
    results = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            results[name].append(median_ms(step, repeats, warmup))
    return {name: sorted(v)[len(v) // 2] for name, v in results.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="workload names (default: all)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    _pin_threads(args.threads)

    import numpy as np
    import torch
    torch.set_num_threads(args.threads)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import workloads

    rows = []
    for name, make in workloads.WORKLOADS.items():
        if args.only and name not in args.only:
            continue
        ours, theirs, meta = make()
        repeats, warmup = meta.get("repeats", 200), meta.get("warmup", 20)
        t = interleaved({"retrograd": ours, "pytorch": theirs}, args.rounds, repeats, warmup)
        rows.append((name, meta["what"], t["retrograd"], t["pytorch"], t["retrograd"] / t["pytorch"],
                     meta.get("target")))

    try:
        from threadpoolctl import threadpool_info
        blas = ", ".join(sorted({f"{i['internal_api']} {i.get('architecture', '')}".strip()
                                 for i in threadpool_info() if i["user_api"] == "blas"}))
    except ImportError:
        blas = "unknown (pip install threadpoolctl to report it)"
    print(f"# threads={args.threads}  numpy {np.__version__}  torch {torch.__version__}  "
          f"BLAS: {blas}")
    if args.markdown:
        print("| workload | what | retrograd ms/step | PyTorch ms/step | ratio | target |")
        print("|---|---|---:|---:|---:|---:|")
        for name, what, ours, theirs, ratio, target in rows:
            print(f"| {name} | {what} | {ours:.3f} | {theirs:.3f} | {ratio:.2f} | "
                  f"{'<= ' + str(target) if target else ''} |")
    else:
        print(f"{'workload':<10} {'retrograd ms':>13} {'pytorch ms':>11} {'ratio':>7}  target")
        for name, what, ours, theirs, ratio, target in rows:
            print(f"{name:<10} {ours:13.3f} {theirs:11.3f} {ratio:7.2f}  "
                  f"{'<= ' + str(target) if target else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
