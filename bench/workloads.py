"""The benchmarked training steps, each built twice from the same initial weights and data:
once with retrograd, once with PyTorch. A workload returns (our_step, torch_step, meta); meta
holds "what" (a description), "repeats" and "warmup" (steps per timing round and before the
first), "target" (the ratio to stay under) and "models" (ours, PyTorch's: for `run.py --check`; not
for digits_fit, whose two loaders shuffle differently)."""
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
                          "target": 0.5, "models": (m, tm)}


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
                          "repeats": 30, "warmup": 5, "target": 1.2,
                          "models": (m, tm)}


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


def _step_pair(m, opt, loss_of, tm, t_opt, t_loss_of):
    """The two training steps: zero_grad, loss, backward, update."""
    def ours():
        opt.zero_grad()
        loss = loss_of(m)
        loss.backward()
        opt.step()

    def theirs():
        t_opt.zero_grad()
        loss = t_loss_of(tm)
        loss.backward()
        t_opt.step()

    return ours, theirs


def cnn():
    """LeNet-style CNN on a batch of 64 MNIST-sized images: Conv(1,32,3)-ReLU-MaxPool2-
    Conv(32,64,3)-ReLU-MaxPool2-Linear(1600,128)-ReLU-Linear(128,10), cross-entropy, Adam."""
    g = np.random.default_rng(0)
    x = g.standard_normal((64, 1, 28, 28), dtype=np.float32)
    y = g.integers(0, 10, 64)

    def net(lib):
        return lib.Sequential(lib.Conv2d(1, 32, 3), lib.ReLU(), lib.MaxPool2d(2),
                              lib.Conv2d(32, 64, 3), lib.ReLU(), lib.MaxPool2d(2), lib.Flatten(),
                              lib.Linear(1600, 128), lib.ReLU(), lib.Linear(128, 10))

    tm, m = net(torch.nn), net(nn)
    _copy_weights(m, tm)
    tx, ty, rx, ry = torch.from_numpy(x), torch.from_numpy(y), rg.tensor(x), rg.tensor(y)
    ours, theirs = _step_pair(
        m, optim.Adam(m.parameters(), lr=1e-3), lambda m: F.cross_entropy(m(rx), ry),
        tm, torch.optim.Adam(tm.parameters(), lr=1e-3),
        lambda tm: torch.nn.functional.cross_entropy(tm(tx), ty))
    return ours, theirs, {"what": "Conv(1,32,3)-ReLU-MaxPool2-Conv(32,64,3)-ReLU-MaxPool2-"
                                  "Linear(1600,128)-ReLU-Linear(128,10), batch 64 of 1x28x28, "
                                  "CE, Adam",
                          "repeats": 10, "warmup": 3, "target": 1.5,
                          "models": (m, tm)}


WORKLOADS["cnn"] = cnn


def lstm():
    """One-layer LSTM over a sequence of 32 steps, batch 32, input 64, hidden 128; Linear(128, 10)
    on the last hidden state, cross-entropy, Adam."""
    g = np.random.default_rng(0)
    x = g.standard_normal((32, 32, 64), dtype=np.float32)      # (seq, batch, input)
    y = g.integers(0, 10, 32)

    t_lstm, t_head = torch.nn.LSTM(64, 128), torch.nn.Linear(128, 10)
    tm = torch.nn.ModuleDict({"lstm": t_lstm, "head": t_head})
    m = nn.ModuleDict({"lstm": nn.LSTM(64, 128), "head": nn.Linear(128, 10)})
    _copy_weights(m, tm)
    tx, ty, rx, ry = torch.from_numpy(x), torch.from_numpy(y), rg.tensor(x), rg.tensor(y)

    def loss_of(m):
        _, (h, _) = m["lstm"](rx)
        return F.cross_entropy(m["head"](h[0]), ry)

    def t_loss_of(tm):
        _, (h, _) = tm["lstm"](tx)
        return torch.nn.functional.cross_entropy(tm["head"](h[0]), ty)

    ours, theirs = _step_pair(m, optim.Adam(m.parameters(), lr=1e-3), loss_of,
                              tm, torch.optim.Adam(tm.parameters(), lr=1e-3), t_loss_of)
    return ours, theirs, {"what": "LSTM(64, 128), seq 32, batch 32, Linear(128, 10) on the last h, "
                                  "CE, Adam",
                          "repeats": 20, "warmup": 3, "target": 1.5,
                          "models": (m, tm)}


WORKLOADS["lstm"] = lstm


def _language_model(lib, base, vocab, d_model, heads, ffn, layers, seq):
    """Token + learned position embeddings, a pre-LN causal Transformer encoder, final LayerNorm,
    a linear head to the vocabulary; `lib` is torch.nn or retrograd.nn."""

    class LanguageModel(base):
        def __init__(self):
            super().__init__()
            self.tokens = lib.Embedding(vocab, d_model)
            self.positions = lib.Embedding(seq, d_model)
            layer = lib.TransformerEncoderLayer(d_model, heads, ffn, dropout=0.0,
                                                batch_first=True, norm_first=True)
            self.encoder = lib.TransformerEncoder(layer, layers, norm=lib.LayerNorm(d_model),
                                                  enable_nested_tensor=False)
            self.head = lib.Linear(d_model, vocab)

        def forward(self, ids, positions, mask):
            x = self.tokens(ids) + self.positions(positions)
            return self.head(self.encoder(x, mask=mask, is_causal=True))

    return LanguageModel()


def transformer():
    """Causal language model: vocabulary 1000, 2 pre-LN encoder layers (d_model 128, 4 heads,
    FFN 512), sequences of 64, batch 16; next-token cross-entropy, AdamW."""
    vocab, seq, batch = 1000, 64, 16
    g = np.random.default_rng(0)
    tokens = g.integers(0, vocab, (batch, seq + 1))
    ids, targets = tokens[:, :-1], tokens[:, 1:].reshape(-1)
    positions = np.arange(seq)

    tm = _language_model(torch.nn, torch.nn.Module, vocab, 128, 4, 512, 2, seq)
    m = _language_model(nn, nn.Module, vocab, 128, 4, 512, 2, seq)
    _copy_weights(m, tm)
    t_mask = torch.nn.Transformer.generate_square_subsequent_mask(seq)
    mask = nn.Transformer.generate_square_subsequent_mask(seq)
    t_args = [torch.from_numpy(a) for a in (ids, positions, targets)]
    r_args = [rg.tensor(a) for a in (ids, positions, targets)]

    def loss_of(m):
        return F.cross_entropy(m(r_args[0], r_args[1], mask).reshape(-1, vocab), r_args[2])

    def t_loss_of(tm):
        logits = tm(t_args[0], t_args[1], t_mask).reshape(-1, vocab)
        return torch.nn.functional.cross_entropy(logits, t_args[2])

    ours, theirs = _step_pair(m, optim.AdamW(m.parameters(), lr=1e-3), loss_of,
                              tm, torch.optim.AdamW(tm.parameters(), lr=1e-3), t_loss_of)
    return ours, theirs, {"what": "causal LM: Embedding(1000, 128) + learned positions, 2 pre-LN "
                                  "encoder layers (d_model 128, 4 heads, FFN 512), LayerNorm, "
                                  "Linear(128, 1000); seq 64, batch 16; AdamW",
                          "repeats": 10, "warmup": 3, "target": 1.5, "models": (m, tm)}


WORKLOADS["transformer"] = transformer
