"""Data-parallel scaling on this machine, allreduce bandwidth, and a ring-allreduce estimate for
clusters of 8 and 64 machines.

    python bench/distributed.py            # 4-6 min; prints the Markdown of docs/distributed.md
    python bench/distributed.py --quick         # fewer repeats

The driver starts `mpiexec -n P python -m mpi4py bench/distributed.py --worker ...` for P = 1, 2,
4 (4 is oversubscribed on a 2-core machine) and gathers each worker's JSON from stdout. Each rank
uses one BLAS thread. Per-step times are medians: the machine is shared and noisy.

Workloads: the MLP benchmark step (784-512-512-10 ReLU, batch 128 per rank, cross-entropy, SGD
momentum 0.9), and, for the estimate only, the Transformer benchmark model (token + position
embeddings, 2 pre-LN encoder layers d_model 128, 4 heads, FFN 512, final LayerNorm, head to a
vocabulary of 1000; sequences of 64, batch 16; AdamW), measured in one process.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# cluster networks for the estimate: (name, bandwidth in bytes/s achievable by MPI, latency alpha)
NETWORKS = [("10 GbE (TCP)", 1.1e9, 30e-6), ("25 GbE (TCP)", 2.8e9, 20e-6),
            ("100 Gb InfiniBand", 11e9, 2e-6)]


def median_ms(xs):
    return float(np.median(xs) * 1e3)


# -- workers (run under mpiexec) -------------------------------------------------------------------

def mlp_worker(mode: str, steps: int, warmup: int, bucket_mb: float) -> dict:
    import retrograd as rg
    from retrograd import nn
    from retrograd.distributed import DistributedDataParallel, all_reduce_gradients, init
    from retrograd.distributed.comm import comm
    rank, world = init()
    rg.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                          nn.Linear(512, 10))
    net = model
    if mode.startswith("ddp"):
        net = DistributedDataParallel(model, bucket_cap_mb=bucket_mb, overlap=mode == "ddp-overlap")
    opt = rg.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    g = np.random.default_rng(rank)
    x = rg.tensor(g.standard_normal((128, 784), dtype=np.float32))
    y = rg.tensor(g.integers(0, 10, 128))
    loss_fn = nn.CrossEntropyLoss()
    c = comm()
    compute, reduce, update, total = [], [], [], []
    for i in range(warmup + steps):
        c.Barrier()              # every step starts together: the times are per step, not skew
        t0 = time.perf_counter()
        opt.zero_grad()
        loss_fn(net(x), y).backward()       # with DDP the all-reduce runs inside backward
        t1 = time.perf_counter()
        if mode == "explicit":
            all_reduce_gradients(model, bucket_mb)
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if i >= warmup:
            compute.append(t1 - t0)
            reduce.append(t2 - t1)
            update.append(t3 - t2)
            total.append(t3 - t0)
    result = {"compute_ms": median_ms(compute), "allreduce_ms": median_ms(reduce),
              "step_ms": median_ms(update), "total_ms": median_ms(total)}
    everyone = c.gather(result, root=0)
    if rank == 0:
        # A step is as slow as its slowest rank. The all-reduce is timed on the rank that
        # arrived last (it waits for no one): the transfer alone; the other ranks' extra time
        # in it is waiting for the slowest rank (skew), which the noisy machine inflates.
        out = {k: max(r[k] for r in everyone) for k in result}
        out["allreduce_ms"] = min(r["allreduce_ms"] for r in everyone)
        return out | {"world": world, "mode": mode}
    return {}


def overlap_ab_worker(steps: int, warmup: int, bucket_mb: float) -> dict:
    """Blocking and overlapped DDP on two copies of the MLP, alternating step by step, so the
    machine's drifting load hits both alike; returns the median step of each."""
    import retrograd as rg
    from retrograd import nn
    from retrograd.distributed import DistributedDataParallel, init
    from retrograd.distributed.comm import comm
    rank, world = init()
    nets, opts = [], []
    for overlap in (False, True):
        rg.manual_seed(0)
        m = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                          nn.Linear(512, 10))
        nets.append(DistributedDataParallel(m, bucket_cap_mb=bucket_mb, overlap=overlap))
        opts.append(rg.optim.SGD(m.parameters(), lr=0.01, momentum=0.9))
    g = np.random.default_rng(rank)
    x = rg.tensor(g.standard_normal((128, 784), dtype=np.float32))
    y = rg.tensor(g.integers(0, 10, 128))
    loss_fn = nn.CrossEntropyLoss()
    c = comm()
    times: list[list[float]] = [[], []]
    for i in range(warmup + steps):
        for k in (0, 1) if i % 2 else (1, 0):
            c.Barrier()
            t0 = time.perf_counter()
            opts[k].zero_grad()
            loss_fn(nets[k](x), y).backward()
            opts[k].step()
            if i >= warmup:
                times[k].append(time.perf_counter() - t0)
    slowest = [np.max(c.allgather(np.array(t)), axis=0) for t in times]  # per step, over ranks
    if rank == 0:
        return {"world": world, "buckets": len(nets[0].bucket_sizes),
                "blocking_ms": median_ms(slowest[0]), "overlap_ms": median_ms(slowest[1]),
                "paired_diff_ms": median_ms(slowest[1] - slowest[0])}
    return {}


def allreduce_worker(repeats: int) -> dict:
    from retrograd.distributed import init
    from retrograd.distributed.comm import comm, mpi
    rank, world = init()
    c, MPI = comm(), mpi()
    out = []
    for size in [2, 256, 4096, 65536, 262144, 670_000, 1_048_576, 4_194_304]:   # float32 count
        buf = np.ones(size, np.float32)
        times = []
        for i in range(repeats + 3):
            c.Barrier()
            t0 = time.perf_counter()
            c.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            t = time.perf_counter() - t0
            if i >= 3:
                times.append(t)
        t = max(c.allgather(float(np.median(times))))
        nbytes = size * 4
        out.append({"bytes": nbytes, "us": t * 1e6, "algbw_GBs": nbytes / t / 1e9,
                    "busbw_GBs": 2 * (world - 1) / world * nbytes / t / 1e9})
    return {"world": world, "allreduce": out} if rank == 0 else {}


def transformer_single(steps: int, warmup: int) -> dict:
    import retrograd as rg
    from retrograd import nn
    from retrograd.nn import functional as F
    rg.set_num_threads(1)       # as the MPI workers: one BLAS thread
    vocab, seq, batch, d = 1000, 64, 16, 128

    class LanguageModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.tokens = nn.Embedding(vocab, d)
            self.positions = nn.Embedding(seq, d)
            layer = nn.TransformerEncoderLayer(d, 4, 512, dropout=0.0, batch_first=True,
                                               norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(d),
                                                 enable_nested_tensor=False)
            self.head = nn.Linear(d, vocab)

        def forward(self, ids, positions, mask):
            x = self.tokens(ids) + self.positions(positions)
            return self.head(self.encoder(x, mask=mask, is_causal=True))

    rg.manual_seed(0)
    m = LanguageModel()
    opt = rg.optim.AdamW(m.parameters(), lr=1e-3)
    g = np.random.default_rng(0)
    tokens = g.integers(0, vocab, (batch, seq + 1))
    ids, pos, tgt = rg.tensor(tokens[:, :-1]), rg.tensor(np.arange(seq)), \
        rg.tensor(tokens[:, 1:].reshape(-1))
    mask = nn.Transformer.generate_square_subsequent_mask(seq)
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad()
        F.cross_entropy(m(ids, pos, mask).reshape(-1, vocab), tgt).backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    params = sum(p.numel() for p in m.parameters())
    return {"params": int(params), "step_ms": median_ms(times)}


# -- driver ----------------------------------------------------------------------------------------

def launch(n: int, *args: str) -> dict:
    mpiexec = Path(sys.executable).parent / "mpiexec"
    mpiexec = str(mpiexec) if mpiexec.exists() else shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit("no mpiexec: pip install 'retrograd[distributed]'")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [mpiexec, "-n", str(n), sys.executable, "-m", "mpi4py", __file__, "--worker", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True, timeout=900)
    return json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])


def ring_seconds(p: int, nbytes: float, bandwidth: float, alpha: float) -> float:
    """Ring all-reduce: reduce-scatter + all-gather, 2(p-1) steps of N/p bytes each."""
    return 2 * (p - 1) / p * nbytes / bandwidth + 2 * (p - 1) * alpha


def fit_latency_bandwidth(rows: list) -> tuple[float, float]:
    """alpha: the smallest message's time; bandwidth: the best bus bandwidth of messages of
    256 KB and more (the machine's when the other tenants leave it alone)."""
    return rows[0]["us"] * 1e-6, max(r["busbw_GBs"] for r in rows if r["bytes"] >= 2 ** 18) * 1e9


def driver(quick: bool) -> None:
    steps, warmup = (20, 5) if quick else (60, 10)
    repeats = 20 if quick else 50
    mlp_params = 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"# retrograd data-parallel benchmark ({when}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f})\n")

    runs = [launch(1, "mlp", "local", str(steps), str(warmup), "25")]
    for p in (2, 4):
        for mode, mb in (("explicit", 25), ("ddp", 25), ("ddp", 0.5), ("ddp-overlap", 0.5)):
            runs.append(launch(p, "mlp", mode, str(steps), str(warmup), str(mb)) | {"mb": mb})
    base = runs[0]["total_ms"]
    print("## MLP step, batch 128 per rank (median ms; the slowest rank)\n")
    print("| ranks | mode | bucket MB | forward+backward | allreduce | optimizer | step | "
          "samples/s | efficiency |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        p = r["world"]
        rate = p * 128 / r["total_ms"] * 1e3
        eff = base / r["total_ms"]
        print(f"| {p} | {r['mode']} | {r.get('mb', '')} | {r['compute_ms']:.2f} | "
              f"{r['allreduce_ms']:.2f} | "
              f"{r['step_ms']:.2f} | {r['total_ms']:.2f} | {rate:,.0f} | {eff:.0%} |")
    print("\n(allreduce: as timed by the rank that arrived last, i.e. the transfer without "
          "waiting for a slower rank; step - forward+backward - allreduce - optimizer is that "
          "waiting. ddp modes: the all-reduce runs inside backward and is counted in "
          "forward+backward.)\n")

    print("## Does overlapping the all-reduce with backward pay? (blocking and overlapped DDP, "
          "alternating steps)\n")
    print("| ranks | buckets | blocking ms | overlap ms | median paired difference ms |")
    print("|---|---|---|---|---|")
    ab = []
    for p in (2, 4):
        for mb in (25, 0.5):     # 25 MB: one bucket, nothing to overlap (the control)
            r = launch(p, "overlap", str(steps), str(warmup), str(mb))
            ab.append(r)
            print(f"| {p} | {r['buckets']} | {r['blocking_ms']:.2f} | {r['overlap_ms']:.2f} | "
                  f"{r['paired_diff_ms']:+.2f} |")
    print()

    bw = {p: launch(p, "allreduce", str(repeats)) for p in (2, 4)}
    print("## MPI_Allreduce (float32 sum, in place; median over repeats, slowest rank)\n")
    print("| bytes | 2 ranks µs | 2 ranks bus GB/s | 4 ranks µs | 4 ranks bus GB/s |")
    print("|---|---|---|---|---|")
    for a, b in zip(bw[2]["allreduce"], bw[4]["allreduce"]):
        print(f"| {a['bytes']:,} | {a['us']:.1f} | {a['busbw_GBs']:.2f} | {b['us']:.1f} | "
              f"{b['busbw_GBs']:.2f} |")
    alpha, bandwidth = fit_latency_bandwidth(bw[2]["allreduce"])
    print(f"\nMeasured here (2 ranks, shared memory): alpha = {alpha * 1e6:.1f} µs, "
          f"bus bandwidth = {bandwidth / 1e9:.2f} GB/s\n")

    tf = transformer_single(5 if quick else 15, 2)
    models = [("MLP", mlp_params, runs[0]["total_ms"] / 1e3),
              ("Transformer", tf["params"], tf["step_ms"] / 1e3)]
    print("## Ring all-reduce estimate: T = 2(p-1)/p N/B + 2(p-1) alpha\n")
    print(f"Compute per step: measured single-process steps here (1 BLAS thread): MLP "
          f"{models[0][2] * 1e3:.1f} ms ({mlp_params:,} parameters), Transformer "
          f"{models[1][2] * 1e3:.1f} ms ({tf['params']:,} parameters).\n")
    print("| model | network | B GB/s | alpha µs | p | allreduce ms | efficiency, no overlap | "
          "overlapped with backward |")
    print("|---|---|---|---|---|---|---|---|")
    nets = [("this machine's shared memory", bandwidth, alpha)] + NETWORKS
    for name, n, tc in models:
        for net, b, a in nets:
            for p in (8, 64):
                tcomm = ring_seconds(p, 4 * n, b, a)
                # overlap can hide the all-reduce behind backward only (~2/3 of a step)
                hidden = tc / 3 + max(2 * tc / 3, tcomm)
                print(f"| {name} | {net} | {b / 1e9:.1f} | {a * 1e6:.0f} | {p} | "
                      f"{tcomm * 1e3:.2f} | {tc / (tc + tcomm):.0%} | {tc / hidden:.0%} |")
    print(json.dumps({"runs": runs, "overlap": ab, "allreduce": bw, "transformer": tf}),
          file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", nargs="+")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.worker:
        kind, *rest = args.worker
        if kind == "mlp":
            mode, steps, warmup, mb = rest
            result = mlp_worker(mode, int(steps), int(warmup), float(mb))
        elif kind == "overlap":
            steps, warmup, mb = rest
            result = overlap_ab_worker(int(steps), int(warmup), float(mb))
        else:
            result = allreduce_worker(int(rest[0]))
        if result:
            print(json.dumps(result), flush=True)
        return
    driver(args.quick)


if __name__ == "__main__":
    main()
