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


def table(rows: list) -> str:
    lines = ["| workload | eager ms | compiled ms | PyTorch ms | torch.compile ms "
             "| eager / PyTorch | compiled / PyTorch | peak MB compiled / eager / PyTorch |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        tc = f"{r['torch.compile']:.3f}" if "torch.compile" in r else "n/a"
        lines.append(f"| {r['name']} | {r['eager']:.3f} | {r['compiled']:.3f} | {r['torch']:.3f} | "
                     f"{tc} | {r['eager'] / r['torch']:.2f} | {r['ratio']:.2f} | "
                     f"{r['mem_ours']:.3f} / {r['mem_eager']:.3f} / {r['mem_torch']:.3f} |")
    return "\n".join(lines) + "\n"


def plot(rows: list, path: str, title: str) -> None:
    """Per workload, eager and compiled time as a ratio of PyTorch eager's; 1.0 dashed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.arange(len(rows))
    eager = [r["eager"] / r["torch"] for r in rows]
    compiled = [r["ratio"] for r in rows]
    fig, ax = plt.subplots(figsize=(1.3 * len(rows) + 2.5, 4.5))
    b1 = ax.bar(x - 0.2, eager, 0.4, label="eager", color="tab:blue")
    b2 = ax.bar(x + 0.2, compiled, 0.4, label="rg.compile", color="tab:orange")
    for bars in (b1, b2):
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in bars.datavalues], padding=2, fontsize=8)
    ax.axhline(1.0, color="grey", ls="--", lw=1)
    ax.set_xticks(x, [r["name"] for r in rows])
    ax.set_ylabel("retrograd / PyTorch eager time per step")
    ax.set_title(title, fontsize=9)
    ax.set_ylim(0, max(eager + compiled) * 1.25)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="xor,mlp,cnn,lstm,transformer")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-torch-compile", action="store_true")
    parser.add_argument("--markdown", metavar="PATH", help="also write the table here")
    parser.add_argument("--plot", metavar="PNG", help="bar chart of eager and compiled ratios")
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
    text = table(rows)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    if args.plot:
        plot(rows, args.plot, f"vs PyTorch eager, {args.threads} thread(s), {args.rounds} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
