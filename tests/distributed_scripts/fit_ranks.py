"""`fit` unchanged: under mpiexec it runs data-parallel; alone it is the reference.

    mpiexec -n 2 python -m mpi4py tests/distributed_scripts/fit_ranks.py OUT BATCH
    python tests/distributed_scripts/fit_ranks.py OUT BATCH        (single process)
Writes OUT/rank{r}.npz with the final parameters and the History.
"""
import sys
from pathlib import Path

import numpy as np

import retrograd as rg
from retrograd import nn
from retrograd.data import DataLoader, TensorDataset
from retrograd.distributed import launched_rank
from retrograd.train import CSVLogger, fit

out, batch = Path(sys.argv[1]), int(sys.argv[2])
rank = launched_rank()
g = np.random.default_rng(0)
x = g.standard_normal((96, 10)).astype(np.float32)
y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
data = TensorDataset(rg.tensor(x), rg.tensor(y))
rg.manual_seed(7 + rank)               # fit must start every rank from rank 0's weights
model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2))
if rank == 0:
    rg.manual_seed(7)
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2))
opt = rg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
history = fit(model, nn.CrossEntropyLoss(), opt, DataLoader(data, batch_size=batch),
              epochs=3, val_data=(x, y), scheduler=rg.optim.lr_scheduler.ReduceLROnPlateau(opt),
              callbacks=[CSVLogger(out / "log.csv", append=True)], progress=True)
np.savez(out / f"rank{rank}.npz", params=np.concatenate([p.data.ravel()
                                                          for p in model.parameters()]),
         loss=np.array(history["loss"]), val_loss=np.array(history["val_loss"]))
