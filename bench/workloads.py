"""The benchmarked training steps, each built twice from the same initial weights and data:
once with retrograd, once with PyTorch. A workload returns (our_step, torch_step, meta)."""
from __future__ import annotations

import numpy as np
import torch

import retrograd as rg
import retrograd.nn as nn
import retrograd.nn.functional as F
from retrograd import optim


def _copy_weights(ours: nn.Module, theirs: torch.nn.Module) -> None:
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def xor():
    """The textbook 2-2-1 sigmoid network on the four XOR points, E = 1/2 sum (y - a)^2, plain SGD."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)

    tm = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Sigmoid(), torch.nn.Linear(2, 1),
                             torch.nn.Sigmoid())
    t_opt = torch.optim.SGD(tm.parameters(), lr=0.5)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    m = nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Linear(2, 1), nn.Sigmoid())
    _copy_weights(m, tm)
    opt = optim.SGD(m.parameters(), lr=0.5)
    rx, ry = rg.tensor(x), rg.tensor(y)

    def ours():
        opt.zero_grad()
        loss = 0.5 * ((ry - m(rx)) ** 2).sum()
        loss.backward()
        opt.step()

    def theirs():
        t_opt.zero_grad()
        loss = 0.5 * ((ty - tm(tx)) ** 2).sum()
        loss.backward()
        t_opt.step()

    return ours, theirs, {"what": "2-2-1 sigmoid, 4 points, SGD", "repeats": 2000, "warmup": 200,
                          "target": 0.5}


def mlp():
    """784-512-512-10 ReLU MLP, batch 128, softmax cross-entropy, SGD with momentum 0.9."""
    g = np.random.default_rng(0)
    x = g.standard_normal((128, 784), dtype=np.float32)
    y = g.integers(0, 10, 128)

    tm = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512),
                             torch.nn.ReLU(), torch.nn.Linear(512, 10))
    t_opt = torch.optim.SGD(tm.parameters(), lr=0.01, momentum=0.9)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    m = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                      nn.Linear(512, 10))
    _copy_weights(m, tm)
    opt = optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    rx, ry = rg.tensor(x), rg.tensor(y)

    def ours():
        opt.zero_grad()
        loss = F.cross_entropy(m(rx), ry)
        loss.backward()
        opt.step()

    def theirs():
        t_opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(tm(tx), ty)
        loss.backward()
        t_opt.step()

    return ours, theirs, {"what": "784-512-512-10 ReLU, batch 128, CE, SGD momentum",
                          "repeats": 30, "warmup": 5, "target": 1.2}


WORKLOADS = {"xor": xor, "mlp": mlp}


def digits_fit():
    """One epoch of `fit` on the bundled digits (64-256-256-10 ReLU MLP, batch 32, Adam, CE,
    accuracy, plus a validation pass) against a hand-written PyTorch loop doing the same work."""
    from retrograd.data import DataLoader, datasets
    from retrograd.train import fit

    train, test = datasets.digits(split="both", seed=0)
    xtr, ytr = (t.data for t in train.tensors)
    xte, yte = (t.data for t in test.tensors)

    def torch_mlp():
        return torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(),
                                   torch.nn.Linear(256, 256), torch.nn.ReLU(),
                                   torch.nn.Linear(256, 10))

    tm = torch_mlp()
    t_opt = torch.optim.Adam(tm.parameters(), lr=1e-3)
    t_train = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(xtr), torch.from_numpy(ytr)),
        batch_size=32, shuffle=True)
    t_test = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(xte), torch.from_numpy(yte)),
        batch_size=256)

    m = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                      nn.Linear(256, 10))
    _copy_weights(m, tm)
    opt = optim.Adam(m.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    r_train = DataLoader(train, batch_size=32, shuffle=True)
    r_test = DataLoader(test, batch_size=256)

    def ours():
        fit(m, loss_fn, opt, r_train, epochs=1, val_data=r_test, progress=False)

    def theirs():
        tm.train()
        total = correct = 0
        loss_sum = 0.0
        for xb, yb in t_train:
            t_opt.zero_grad()
            out = tm(xb)
            loss = torch.nn.functional.cross_entropy(out, yb)
            loss.backward()
            t_opt.step()
            loss_sum += loss.item() * len(yb)
            correct += (out.argmax(1) == yb).sum().item()
            total += len(yb)
        tm.eval()
        with torch.no_grad():
            v_correct = v_total = 0
            v_loss = 0.0
            for xb, yb in t_test:
                out = tm(xb)
                v_loss += torch.nn.functional.cross_entropy(out, yb, reduction="sum").item()
                v_correct += (out.argmax(1) == yb).sum().item()
                v_total += len(yb)
        return loss_sum / total, correct / total, v_loss / v_total, v_correct / v_total

    return ours, theirs, {"what": "one epoch of fit() on digits vs a PyTorch loop (ms/epoch)",
                          "repeats": 5, "warmup": 1, "target": 1.2}


WORKLOADS["digits_fit"] = digits_fit
