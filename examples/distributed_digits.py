"""Data-parallel training over MPI: every process trains a replica of the digits MLP on its own
shard of the data, and the gradients are averaged after each backward.

Run:  mpiexec -n 2 python -m mpi4py examples/distributed_digits.py

(`pip install 'retrograd[distributed]'` brings mpi4py and MPICH, whose mpiexec lands beside
python. `-m mpi4py` makes an exception on any rank abort the whole job instead of leaving the
others waiting. `python examples/distributed_digits.py` alone is a world of one.)

This is the loop `fit` runs for you when started by mpiexec, written out: `init` starts MPI,
`DistributedDataParallel` broadcasts rank 0's weights and averages the gradients,
`DistributedSampler` gives each rank its own shard, reshuffled each epoch. The global batch is
world_size x batch_size; only rank 0 prints.
"""
import sys

import numpy as np

import retrograd as rg
from retrograd import nn, optim
from retrograd.data import DataLoader, datasets
from retrograd.distributed import (DistributedDataParallel, DistributedSampler, average_metrics,
                                   init)
from retrograd.train import evaluate


def main(epochs=10, hidden=128, lr=1e-3, batch_size=32, seed=0):
    rank, world = init()
    rg.manual_seed(seed + rank)        # dropout etc. may differ per rank; the weights won't
    train_set, test_set = datasets.digits(split="both", seed=seed)   # the same split everywhere

    model = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                          nn.Linear(hidden, 10))
    model = DistributedDataParallel(model)                     # rank 0's weights on every rank
    optimizer = optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    sampler = DistributedSampler(train_set, shuffle=True, seed=seed)   # this rank's shard
    loader = DataLoader(train_set, batch_size=batch_size, sampler=sampler)
    if rank == 0:
        print(f"{world} process(es), {len(loader)} steps per epoch each, global batch "
              f"{world * batch_size}")

    for epoch in range(epochs):
        sampler.set_epoch(epoch)                               # a new shuffle, the same on all
        total, seen = 0.0, 0
        for x, y in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()                                    # .grad: the mean over ranks
            optimizer.step()
            total, seen = total + float(loss) * len(y), seen + len(y)
        logs = average_metrics({"loss": total / seen})         # the same on every rank
        if rank == 0:
            print(f"epoch {epoch + 1:2d}  train loss {logs['loss']:.4f}")

    result = evaluate(model.module, test_set, loss_fn=loss_fn)  # same weights: same result
    params = np.concatenate([p.data.ravel() for p in model.parameters()])
    if rank == 0:
        print(f"test accuracy {result['accuracy']:.4f}  (weights checksum {params.sum():.6f})")
    return result


if __name__ == "__main__":
    main(epochs=int(sys.argv[1]) if len(sys.argv) > 1 else 10)
