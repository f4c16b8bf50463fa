"""K steps of DistributedDataParallel on a small MLP; rank 0 checks that every rank ends with
the same parameters, equal to one process training on the concatenated batches.

    mpiexec -n 2 python -m mpi4py tests/distributed_scripts/ddp_steps.py [blocking|overlap]
"""
import sys

import numpy as np

import retrograd as rg
from retrograd import nn
from retrograd.distributed import DistributedDataParallel, init
from retrograd.distributed.comm import comm

STEPS, BATCH, FEATURES, CLASSES = 5, 8, 12, 5


def build(seed):
    rg.manual_seed(seed)
    return nn.Sequential(nn.Linear(FEATURES, 32), nn.Tanh(), nn.Linear(32, 32), nn.ReLU(),
                         nn.LayerNorm(32), nn.Linear(32, CLASSES))


def batches(world):
    g = np.random.default_rng(0)
    for _ in range(STEPS):
        x = g.standard_normal((world * BATCH, FEATURES)).astype(np.float32)
        y = g.integers(0, CLASSES, world * BATCH)
        yield x, y


def train(model, world, rank, ddp=None):
    net = ddp or model
    opt = rg.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    lo, hi = (rank * BATCH, (rank + 1) * BATCH) if ddp is not None else (0, world * BATCH)
    for step, (x, y) in enumerate(batches(world)):
        x, y = rg.tensor(x[lo:hi]), rg.tensor(y[lo:hi])
        opt.zero_grad()
        if step % 2 and ddp is not None:   # gradient accumulation over two half batches
            with ddp.no_sync():
                nn.functional.cross_entropy(net(x[:BATCH // 2]), y[:BATCH // 2]).backward()
            nn.functional.cross_entropy(net(x[BATCH // 2:]), y[BATCH // 2:]).backward()
        else:
            # the reference: the sum of two half-batch means is twice the whole batch's mean
            scale = 2.0 if step % 2 else 1.0
            (nn.functional.cross_entropy(net(x), y) * scale).backward()
        opt.step()
    return np.concatenate([p.data.ravel() for p in model.parameters()])


def main(mode):
    rank, world = init()
    model = build(seed=100 + rank)      # different on each rank: DDP must broadcast rank 0's
    ddp = DistributedDataParallel(model, bucket_cap_mb=0.004, overlap=mode == "overlap")
    assert len(ddp.bucket_sizes) >= 3, ddp.bucket_sizes
    mine = train(model, world, rank, ddp)
    everyone = comm().gather(mine, root=0)
    if rank == 0:
        for r, theirs in enumerate(everyone):
            assert np.array_equal(theirs, mine), f"rank {r} differs from rank 0"
        reference = train(build(seed=100), world, 0)
        np.testing.assert_allclose(mine, reference, rtol=1e-4, atol=1e-5)
        print(f"OK {mode} world={world} buckets={len(ddp.bucket_sizes)} "
              f"max_abs_diff={np.abs(mine - reference).max():.2e}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "blocking")
