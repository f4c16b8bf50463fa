"""Side-by-side benchmark: one training step of retrograd and of PyTorch eager, in one process.

Each workload is timed as forward + loss + backward + optimizer update, float32, after a warm-up,
as the median over many steps; both libraries are pinned to the same number of threads. Machines
here are shared and noisy, so the ratio (retrograd / PyTorch) is the number to read. The ratio of
CPU time (user + system, every thread of the process) is printed too: with one thread it is the
work each library does, whatever share of a busy machine the process got; with more it also
counts the time idle BLAS/OpenMP threads spend spinning.

    python bench/run.py                                  # all workloads, 2 threads
    python bench/run.py --only cnn,lstm --threads 1
    python bench/run.py --threads 1,2                    # each workload at 1, then 2 threads
    python bench/run.py --markdown docs/benchmarks-table.md --plot docs/benchmarks.png
    python bench/run.py --check                          # both sides train alike?
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time


def _pin_threads(n: int) -> None:
    # Must happen before NumPy / PyTorch load their thread pools.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


def _median(values: list) -> float:
    return sorted(values)[len(values) // 2]


def median_ms(step, repeats: int, warmup: int) -> tuple:
    """Median wall-clock and CPU (process: user + system, all threads) milliseconds per step."""
    for _ in range(warmup):
        step()
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return 1000 * _median(wall), 1000 * _median(cpu)


def interleaved(steps: dict, rounds: int, repeats: int, warmup: int) -> dict:
    """Alternate the libraries in rounds so a noisy neighbour hits both alike. Per round, the
    median step time of each, wall clock and CPU; returns the medians over rounds of each
    library's times, and of the per-round ratios (first library / second): the ratio of two
    times taken seconds apart is less noisy than either."""
    names = list(steps)
    results = {name: [] for name in names}
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]     # neither always runs first
        for name in order:
            results[name].append(median_ms(steps[name], repeats, warmup if r == 0 else 1))
    ours, theirs = results[names[0]], results[names[1]]
    out = {name: _median([w for w, _ in v]) for name, v in results.items()}
    out.update({name + " cpu": _median([c for _, c in v]) for name, v in results.items()})
    out["ratio"] = _median([a[0] / b[0] for a, b in zip(ours, theirs)])
    out["cpu ratio"] = _median([a[1] / b[1] for a, b in zip(ours, theirs)])
    return out


def machine(threads: int) -> str:
    """One line naming what the numbers were measured on."""
    import numpy as np
    import torch
    try:
        from threadpoolctl import threadpool_info
        blas = ", ".join(sorted({f"{i['internal_api']} {i.get('version', '')} "
                                 f"{i.get('architecture', '')}".strip()
                                 for i in threadpool_info() if i["user_api"] == "blas"}))
    except ImportError:
        blas = "unknown (pip install threadpoolctl to report it)"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores, threads={threads}; Python {platform.python_version()}"
            f", NumPy {np.__version__} ({blas}), torch {torch.__version__}")


def markdown(rows: list, header: str) -> str:
    lines = [header, "",
             "| workload | what | threads | retrograd ms/step | PyTorch ms/step | ratio | target "
             "| | CPU ms retrograd | CPU ms PyTorch | CPU ratio |",
             "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        target = f"<= {r['target']}" if r["target"] else ""
        lines.append(f"| {r['name']} | {r['what']} | {r['threads']} | {r['ours']:.3f} | "
                     f"{r['theirs']:.3f} | **{r['ratio']:.2f}** | {target} | {_verdict(r)} | "
                     f"{r['ours_cpu']:.3f} | {r['theirs_cpu']:.3f} | {r['cpu_ratio']:.2f} |")
    return "\n".join(lines) + "\n"


def _verdict(row: dict) -> str:
    if not row["target"]:
        return ""
    return "pass" if row["ratio"] <= row["target"] else "MISS"


def plot(rows: list, path: str, title: str) -> None:
    """Bar chart of the ratio per workload, its target as a tick, 1.0 (parity) as a line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    several = len({r["threads"] for r in rows}) > 1
    names = [r["name"] + (f"\n{r['threads']} thr" if several else "") for r in rows]
    ratios = [r["ratio"] for r in rows]
    colours = ["tab:green" if _verdict(r) != "MISS" else "tab:red" for r in rows]
    fig, ax = plt.subplots(figsize=(0.9 * len(rows) + 2.5, 4.5))
    bars = ax.bar(names, ratios, color=colours)
    for i, r in enumerate(rows):
        if r["target"]:
            ax.plot([i - 0.4, i + 0.4], [r["target"]] * 2, color="black", lw=2)
    ax.bar_label(bars, labels=[f"{x:.2f}" for x in ratios], padding=2)
    ax.axhline(1.0, color="grey", ls="--", lw=1)
    ax.set_ylabel("retrograd / PyTorch time per step")
    ax.set_title(title, fontsize=9)
    ax.set_ylim(0, max(ratios + [r["target"] or 0 for r in rows]) * 1.2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def check(make, steps: int = 3) -> float:
    """Largest parameter difference between the two models after `steps` training steps of each
    (NaN when the workload does not expose its models)."""
    import numpy as np
    import torch
    torch.manual_seed(0)               # the initial weights, which both models share
    ours, theirs, meta = make()
    if "models" not in meta:
        return float("nan")
    for _ in range(steps):
        ours()
        theirs()
    m, tm = meta["models"]
    mine = m.state_dict()
    return max(float(np.abs(np.asarray(getattr(mine[k], "data", mine[k])) - v.detach().numpy())
                     .max()) for k, v in tm.state_dict().items())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="2",
                        help="threads for both libraries (BLAS and OpenMP pools); a comma "
                             "separated list runs every workload at each count")
    parser.add_argument("--only", nargs="*",
                        help="workload names, comma or space separated (default: all)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternations of the two libraries per workload")
    parser.add_argument("--markdown", metavar="PATH", nargs="?", const="-",
                        help="write a Markdown table to PATH ('-' or no PATH: print it)")
    parser.add_argument("--plot", metavar="PNG", help="save a bar chart of the ratios")
    parser.add_argument("--check", action="store_true",
                        help="only check that both libraries train alike: the largest parameter "
                             "difference after 3 steps")
    args = parser.parse_args(argv)
    try:
        counts = [int(n) for n in str(args.threads).split(",") if n]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        parser.error(f"--threads takes positive ints, comma separated, got {args.threads!r}")
    _pin_threads(max(counts))      # pools are sized at load; smaller counts are set per run

    import torch
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import workloads

    import retrograd as rg

    wanted = [n for item in args.only or [] for n in item.split(",") if n]
    unknown = set(wanted) - set(workloads.WORKLOADS)
    if unknown:
        parser.error(f"unknown workload(s) {sorted(unknown)}; choose from "
                     f"{list(workloads.WORKLOADS)}")
    threads = ",".join(map(str, counts))
    if args.check:
        worst = 0.0
        for name, make in workloads.WORKLOADS.items():
            if not wanted or name in wanted:
                diff = check(make)
                print(f"{name:<12} max |parameter difference| after 3 steps: {diff:.2e}")
                worst = max(worst, diff) if diff == diff else worst
        return 0 if worst < 1e-3 else 1
    info = machine(threads)
    print(f"# {info}")
    print(f"{'workload':<12} {'threads':>7} {'retrograd ms':>13} {'pytorch ms':>11} {'ratio':>7}"
          f"  {'target':<7} {'':4}  {'cpu ratio':>9}")
    rows = []
    for name, make in workloads.WORKLOADS.items():
        if wanted and name not in wanted:
            continue
        for n in counts:
            torch.set_num_threads(n)
            rg.set_num_threads(n)
            ours, theirs, meta = make()
            repeats, warmup = meta.get("repeats", 200), meta.get("warmup", 20)
            t = interleaved({"retrograd": ours, "pytorch": theirs}, args.rounds, repeats, warmup)
            row = dict(name=name, threads=n, what=meta["what"], ours=t["retrograd"],
                       theirs=t["pytorch"], ratio=t["ratio"], target=meta.get("target"),
                       ours_cpu=t["retrograd cpu"], theirs_cpu=t["pytorch cpu"],
                       cpu_ratio=t["cpu ratio"])
            rows.append(row)
            target = f"<= {row['target']}" if row["target"] else ""
            print(f"{name:<12} {n:7d} {row['ours']:13.3f} {row['theirs']:11.3f} "
                  f"{row['ratio']:7.2f}  {target:<7} {_verdict(row):4}  {row['cpu_ratio']:9.2f}",
                  flush=True)

    if args.markdown:
        table = markdown(rows, f"Measured on: {info}. "
                               f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.")
        if args.markdown == "-":
            print(table)
        else:
            with open(args.markdown, "w") as f:
                f.write(table)
    if args.plot:
        plot(rows, args.plot, f"retrograd / PyTorch per training step, threads={threads} "
                              "(lower is better; black: target)")
    return 0 if all(_verdict(r) != "MISS" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
