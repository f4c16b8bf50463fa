"""Memory stays flat over a long training run: each step's graph is freed by reference counting
as soon as backward is done (no reference cycles that only the garbage collector could break), and
nothing (optimizer state, hooks, caches) grows with the number of steps."""
from __future__ import annotations

import gc
import tracemalloc
import weakref

import numpy as np

import retrograd as rg
from retrograd import nn

STEPS, WARMUP = 5_000, 500


def test_memory_is_flat_over_5000_training_steps():
    rg.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 4))
    opt = rg.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    g = np.random.default_rng(0)
    x = rg.from_numpy(g.standard_normal((16, 16)).astype(np.float32))
    y = rg.from_numpy(g.integers(0, 4, 16))
    gc.collect()
    gc.disable()       # whatever is freed must be freed by reference counting alone
    tracemalloc.start()
    try:
        for step in range(1, STEPS + 1):
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            if step == WARMUP:
                early, _ = tracemalloc.get_traced_memory()
        late, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        gc.enable()
    # one step's graph is a few KB; growing by even 10 bytes a step would add 45 KB
    assert late - early < 16_384, f"grew by {late - early} bytes over {STEPS - WARMUP} steps"
    assert peak - early < 262_144
    assert float(loss.data) < 1.2    # it trained, so the loop did real work
    assert gc.collect() < 100        # no graphs of tensors left in cycles for the collector


def test_the_graph_is_freed_when_the_loss_goes_out_of_scope():
    model = nn.Linear(3, 1)
    loss = (model(rg.randn(4, 3)).sigmoid() ** 2).sum()
    node = weakref.ref(loss.grad_fn)
    loss.backward()
    assert node() is not None        # the loss still holds its graph node
    gc.disable()
    try:
        del loss
        assert node() is None, "the graph outlived its loss (a reference cycle?)"
    finally:
        gc.enable()
