"""`rg.compile` against eager retrograd, PyTorch eager and torch.compile, on bench/workloads.py.

Each workload's training step (zero_grad, loss, backward, optimizer step) is timed four ways in
one process, interleaved in rounds (a noisy neighbour hits every variant alike); the report gives
the median over rounds of the per-round median ms/step, and the ratio compiled / PyTorch eager
as the median of per-round ratios. Peak memory of one step: tracemalloc's peak for ours (NumPy
reports its allocations to tracemalloc), and for PyTorch the peak of the CPU allocator's
profiler (`torch.profiler` with profile_memory: the running sum of its allocation and free
events, in time order) over one step, both after warm-up.

    python bench/compiled.py                          # xor, mlp, cnn, lstm, transformer; 1 thread
    python bench/compiled.py --only xor,mlp --threads 2 --no-torch-compile
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
import warnings


def _pin_threads(n: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


def median_ms(step, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    times.sort()
    return 1000 * times[len(times) // 2]


def peak_ours(step) -> float:
    """MB: peak of traced allocations during one step (after warm-up)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return (peak - base) / 2 ** 20


def peak_torch(step) -> float:
    """MB: the largest total of live CPU allocations over one step, from the profiler's events."""
    import torch
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                profile_memory=True) as prof:
        step()
    # the allocator's own "[memory]" events: +bytes at each allocation, -bytes at each free
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]")
    live = peak = 0
    for _, delta in events:
        live += delta
        peak = max(peak, live)
    return peak / 2 ** 20


def torch_compiled(theirs):
    """The same PyTorch step under torch.compile, or (None, reason)."""
    import torch
    try:
        step = torch.compile(theirs)
        step()
        step()
        return step, ""
    except Exception as e:   # noqa: BLE001 - report why, keep benchmarking the rest
        return None, f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"


def run(name: str, rounds: int, use_torch_compile: bool) -> dict:
    import retrograd as rg
    import workloads

    ours, theirs, meta = workloads.WORKLOADS[name]()
    steps = {"eager": ours, "compiled": rg.compile(ours), "torch": theirs}
    note = ""
    if use_torch_compile:
        compiled, note = torch_compiled(theirs)
        if compiled is not None:
            steps["torch.compile"] = compiled
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in steps.values():
            for _ in range(max(meta["warmup"], 3)):
                step()
    fallback = [str(w.message) for w in caught if "rg.compile" in str(w.message)]
    repeats = meta["repeats"]
    results = {k: [] for k in steps}
    names = list(steps)
    for r in range(rounds):
        for k in (names if r % 2 == 0 else names[::-1]):
            results[k].append(median_ms(steps[k], repeats))
    out = {k: sorted(v)[len(v) // 2] for k, v in results.items()}
    ratios = sorted(a / b for a, b in zip(results["compiled"], results["torch"]))
    out["ratio"] = ratios[len(ratios) // 2]
    out["mem_ours"] = peak_ours(steps["compiled"])
    out["mem_eager"] = peak_ours(steps["eager"])
    out["mem_torch"] = peak_torch(theirs)
    out.update(name=name, what=meta["what"], note=note, fallback="; ".join(fallback))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="xor,mlp,cnn,lstm,transformer")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-torch-compile", action="store_true")
    args = parser.parse_args(argv)
    _pin_threads(args.threads)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.only.split(","):
        r = run(name, args.rounds, not args.no_torch_compile)
        rows.append(r)
        tc = f"{r['torch.compile']:.3f}" if "torch.compile" in r else "n/a"
        print(f"{name}: eager {r['eager']:.3f}  compiled {r['compiled']:.3f}  torch "
              f"{r['torch']:.3f}  torch.compile {tc} ms/step; compiled/torch {r['ratio']:.2f}; "
              f"peak MB ours {r['mem_ours']:.2f} (eager {r['mem_eager']:.2f}) torch "
              f"{r['mem_torch']:.2f} {r['note']} {r['fallback']}", flush=True)
    print()
    print(f"threads={args.threads}, rounds={args.rounds}")
    print("| workload | eager ms | compiled ms | PyTorch ms | torch.compile ms "
          "| compiled / PyTorch | peak MB compiled / eager / PyTorch |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        tc = f"{r['torch.compile']:.3f}" if "torch.compile" in r else "n/a"
        print(f"| {r['name']} | {r['eager']:.3f} | {r['compiled']:.3f} | {r['torch']:.3f} | "
              f"{tc} | {r['ratio']:.2f} | {r['mem_ours']:.3f} / {r['mem_eager']:.3f} / "
              f"{r['mem_torch']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
