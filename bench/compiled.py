"""`rg.compile` vs eager retrograd, PyTorch eager, torch.compile and JAX-jit on bench/workloads.py.

Each workload's training step (zero_grad, loss, backward, optimizer step) is timed four ways in
one process, five where JAX is installed (the same step written in JAX under one jax.jit, from
bench/jax_steps.py; "n/a" without it) and six where Numba is (`rg.compile(backend="numba")`, for
the workloads whose every op it lowers; "n/a" for the others), interleaved in rounds (a noisy
neighbour hits every variant alike); the report gives the median over rounds of the per-round
median ms/step, and the ratios to PyTorch eager as medians of per-round ratios.
Peak memory of one step: tracemalloc's peak for ours (NumPy reports its allocations to
tracemalloc), and for PyTorch the peak of the CPU allocator's profiler (`torch.profiler` with
profile_memory: the running sum of its allocation and free events, in time order) over one step,
both after warm-up; none for JAX. JAX's CPU thread pool is --threads wide, like the others.

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
    if n == 1:     # read when jax is imported; jax_steps.pin_threads does the rest
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + " --xla_cpu_multi_thread_eigen=false").strip()


def _jax_steps(threads: int):
    """bench/jax_steps.py with XLA's CPU pool pinned to `threads`, or None without jax."""
    try:
        import jax_steps
    except ImportError:
        return None
    jax_steps.pin_threads(threads)
    return jax_steps


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


def _median_ratio(results: dict, key: str) -> float:
    ratios = sorted(a / b for a, b in zip(results[key], results["torch"]))
    return ratios[len(ratios) // 2]


def run(name: str, rounds: int, use_torch_compile: bool, jax_steps=None) -> dict:
    import workloads

    import retrograd as rg

    ours, theirs, meta = workloads.WORKLOADS[name]()
    steps = {"eager": ours, "compiled": rg.compile(ours), "torch": theirs}
    if _has_numba():
        steps["numba"] = rg.compile(ours, backend="numba")
    # before torch.compile's trial steps, so JAX starts from the workload's initial weights
    jax_step = jax_steps.build(name, meta) if jax_steps else None
    if jax_step is not None:
        steps["JAX-jit"] = jax_step
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
    if any("backend='numba'" in m for m in fallback):
        del steps["numba"]            # replayed with NumPy: the "compiled" column again
    repeats = meta["repeats"]
    results = {k: [] for k in steps}
    names = list(steps)
    for r in range(rounds):
        for k in (names if r % 2 == 0 else names[::-1]):
            results[k].append(median_ms(steps[k], repeats))
    out = {k: sorted(v)[len(v) // 2] for k, v in results.items()}
    out["ratio"] = _median_ratio(results, "compiled")
    for variant in ("JAX-jit", "numba"):
        if variant in out:
            out[f"{variant}_ratio"] = _median_ratio(results, variant)
    out["mem_ours"] = peak_ours(steps["compiled"])
    out["mem_eager"] = peak_ours(steps["eager"])
    out["mem_torch"] = peak_torch(theirs)
    out.update(name=name, what=meta["what"], note=note, fallback="; ".join(fallback))
    return out


def _has_numba() -> bool:
    from retrograd.compile.numba_backend import available
    return available()


def _ms(row: dict, variant: str) -> str:
    return f"{row[variant]:.3f}" if variant in row else "n/a"


def _ratio(row: dict, variant: str) -> str:
    key = f"{variant}_ratio"
    return f"{row[key]:.2f}" if key in row else "n/a"


def table(rows: list) -> str:
    lines = [("| workload | eager ms | compiled ms | compiled (numba) ms | PyTorch ms "
              "| torch.compile ms | JAX-jit ms | eager / PyTorch | compiled / PyTorch "
              "| numba / PyTorch | JAX-jit / PyTorch | peak MB compiled / eager / PyTorch |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['eager']:.3f} | {r['compiled']:.3f} | "
                     f"{_ms(r, 'numba')} | {r['torch']:.3f} | "
                     f"{_ms(r, 'torch.compile')} | {_ms(r, 'JAX-jit')} | "
                     f"{r['eager'] / r['torch']:.2f} | {r['ratio']:.2f} | "
                     f"{_ratio(r, 'numba')} | {_ratio(r, 'JAX-jit')} | "
                     f"{r['mem_ours']:.3f} / {r['mem_eager']:.3f} / {r['mem_torch']:.3f} |")
    return "\n".join(lines) + "\n"


def plot(rows: list, path: str, title: str) -> None:
    """Per workload, eager, compiled and (where measured) JAX-jit time as a ratio of PyTorch
    eager's; 1.0 dashed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.arange(len(rows))
    series = [("rg eager", [r["eager"] / r["torch"] for r in rows], "tab:blue"),
              ("rg.compile", [r["ratio"] for r in rows], "tab:orange")]
    for label, variant, color in (("rg.compile numba", "numba", "tab:red"),
                                  ("JAX-jit", "JAX-jit", "tab:green")):
        if any(f"{variant}_ratio" in r for r in rows):
            series.append((label, [r.get(f"{variant}_ratio", np.nan) for r in rows], color))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(0.65 * len(series) * len(rows) + 2.5, 4.5))
    for i, (label, values, color) in enumerate(series):
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=label,
                      color=color)
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in bars.datavalues], padding=2, fontsize=8)
    ax.axhline(1.0, color="grey", ls="--", lw=1)
    ax.set_xticks(x, [r["name"] for r in rows])
    ax.set_ylabel("time per step / PyTorch eager's")
    ax.set_title(title, fontsize=9)
    ax.set_ylim(0, np.nanmax([v for _, values, _ in series for v in values]) * 1.25)
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
    jax_steps = _jax_steps(args.threads)
    rows = []
    for name in args.only.split(","):
        r = run(name, args.rounds, not args.no_torch_compile, jax_steps)
        rows.append(r)
        print(f"{name}: eager {r['eager']:.3f}  compiled {r['compiled']:.3f}  numba "
              f"{_ms(r, 'numba')}  torch "
              f"{r['torch']:.3f}  torch.compile {_ms(r, 'torch.compile')}  JAX-jit "
              f"{_ms(r, 'JAX-jit')} ms/step; compiled/torch {r['ratio']:.2f}; "
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
