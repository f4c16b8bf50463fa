"""The bench/workloads.py training steps written in JAX, for the JAX-jit column of compiled.py.

Each builder takes the PyTorch model a workload built (its initial weights are copied), makes the
same data from the same seeded generator calls as workloads.py, and returns a zero-argument step:
one jitted training step (forward, `jax.value_and_grad`, optimizer update) that blocks until done
and returns the loss. Parameters and optimizer state live in the step's closure and are donated
to the jitted function, so each call advances training by one step like the in-place steps do.
The optimizers are written out here to follow torch's update formulas (and defaults) exactly.

    python bench/jax_steps.py --check                 # losses and weights vs the PyTorch steps
    python bench/jax_steps.py --check lstm,transformer
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import torch

Params = dict[str, jax.Array]
Step = Callable[[], jax.Array]
Optimizer = tuple[Callable, Callable]       # init(params), update(params, grads, state)


def pin_threads(n: int) -> None:
    """Keep JAX's CPU work on n cores, as torch.set_num_threads(n) does for PyTorch. In recent XLA,
    XLA_FLAGS' --xla_cpu_multi_thread_eigen=false is not enough: the CPU client's thread pools,
    sized from the affinity mask, still run independent ops side by side. So start the client
    under an n-CPU mask: that sizes its pools and keeps the threads it starts (and theirs) on
    those CPUs; the calling thread then gets all its CPUs back."""
    if not hasattr(os, "sched_setaffinity"):      # not Linux: XLA's defaults
        return
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, sorted(cpus)[:n])
    try:
        jax.devices()
    finally:
        os.sched_setaffinity(0, cpus)


# ---- optimizers: (init, update) pairs following torch.optim's single-tensor code paths

def sgd(lr: float, momentum: float = 0.0) -> Optimizer:
    """torch.optim.SGD; a zero momentum buffer gives torch's first step (buffer = gradient)."""
    def init(params):
        return jax.tree.map(jnp.zeros_like, params) if momentum else {}

    def update(params, grads, state):
        if momentum:
            state = jax.tree.map(lambda b, g: momentum * b + g, state, grads)
            grads = state
        return jax.tree.map(lambda p, g: p - lr * g, params, grads), state

    return init, update


def adam(lr: float, betas=(0.9, 0.999), eps: float = 1e-8,
         decoupled_weight_decay: float = 0.0) -> Optimizer:
    """torch.optim.Adam, or torch.optim.AdamW with a decoupled_weight_decay."""
    b1, b2 = betas

    def init(params):
        return {"t": jnp.zeros((), jnp.int32), "m": jax.tree.map(jnp.zeros_like, params),
                "v": jax.tree.map(jnp.zeros_like, params)}

    def update(params, grads, state):
        t = state["t"] + 1
        m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state["m"], grads)
        v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, state["v"], grads)
        tf = t.astype(jnp.float32)
        step_size, bc2_sqrt = lr / (1 - b1 ** tf), jnp.sqrt(1 - b2 ** tf)

        def new(p, m, v):
            if decoupled_weight_decay:
                p = p * (1 - lr * decoupled_weight_decay)
            return p - step_size * m / (jnp.sqrt(v) / bc2_sqrt + eps)

        return jax.tree.map(new, params, m, v), {"t": t, "m": m, "v": v}

    return init, update


def adamw(lr: float, weight_decay: float = 0.01) -> Optimizer:
    return adam(lr, decoupled_weight_decay=weight_decay)


# ---- layers (torch's layouts: Linear weight (out, in), NCHW / OIHW, LSTM gates i, f, g, o)

def _linear(x, p: Params, name: str):
    return x @ p[f"{name}.weight"].T + p[f"{name}.bias"]


def _cross_entropy(logits, y):
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(logp, y[:, None], axis=1).mean()


def _conv2d(x, p: Params, name: str):
    out = jax.lax.conv_general_dilated(x, p[f"{name}.weight"], (1, 1), "VALID",
                                       dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return out + p[f"{name}.bias"][None, :, None, None]


def _max_pool2(x):
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")


def _lstm_last_h(x, p: Params, name: str):
    """h after the last step of a one-layer torch.nn.LSTM from zero state; x is (seq, batch, in)."""
    w_hh, hidden = p[f"{name}.weight_hh_l0"], p[f"{name}.weight_hh_l0"].shape[1]
    # the input projection of every step at once; only the recurrent half is sequential
    xw = x @ p[f"{name}.weight_ih_l0"].T + p[f"{name}.bias_ih_l0"] + p[f"{name}.bias_hh_l0"]

    def cell(carry, xw_t):
        h, c = carry
        i, f, g, o = jnp.split(xw_t + h @ w_hh.T, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), None

    zeros = jnp.zeros((x.shape[1], hidden), x.dtype)
    (h, _), _ = jax.lax.scan(cell, (zeros, zeros), xw)
    return h


def _layer_norm(x, p: Params, name: str, eps: float = 1e-5):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / jnp.sqrt(var + eps) * p[f"{name}.weight"] + p[f"{name}.bias"]


def _causal_self_attention(x, p: Params, name: str, heads: int):
    """torch.nn.MultiheadAttention (packed in_proj, batch_first) with a causal mask."""
    b, s, d = x.shape
    qkv = x @ p[f"{name}.in_proj_weight"].T + p[f"{name}.in_proj_bias"]
    q, k, v = (t.reshape(b, s, heads, d // heads).transpose(0, 2, 1, 3)
               for t in jnp.split(qkv, 3, axis=-1))
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d // heads)
    scores = jnp.where(jnp.tril(jnp.ones((s, s), bool)), scores, -jnp.inf)
    out = (jax.nn.softmax(scores, axis=-1) @ v).transpose(0, 2, 1, 3).reshape(b, s, d)
    return _linear(out, p, f"{name}.out_proj")


def _pre_ln_encoder_layer(x, p: Params, name: str, heads: int):
    """torch.nn.TransformerEncoderLayer(norm_first=True, activation relu, dropout 0.0)."""
    x = x + _causal_self_attention(_layer_norm(x, p, f"{name}.norm1"), p, f"{name}.self_attn",
                                   heads)
    ff = _linear(jax.nn.relu(_linear(_layer_norm(x, p, f"{name}.norm2"), p, f"{name}.linear1")),
                 p, f"{name}.linear2")
    return x + ff


# ---- the jitted step

def _weights(model: torch.nn.Module) -> Params:
    return {k: jnp.array(v.detach().numpy(), jnp.float32) for k, v in model.state_dict().items()}


def _jit_step(loss_fn, optimizer: Optimizer, params: Params, *data) -> Step:
    """A step that runs loss_fn's gradient and the optimizer under one jit, updating the
    parameters and optimizer state held here (donated, so XLA may update them in place)."""
    init, update = optimizer

    def train_step(params, state, *data):
        loss, grads = jax.value_and_grad(loss_fn)(params, *data)
        params, state = update(params, grads, state)
        return params, state, loss

    jitted = jax.jit(train_step, donate_argnums=(0, 1))
    state = init(params)
    data = tuple(jnp.asarray(d) for d in data)

    def step() -> jax.Array:
        nonlocal params, state
        params, state, loss = jax.block_until_ready(jitted(params, state, *data))
        return loss

    step.params = lambda: params      # for check()
    return step


# ---- the workloads: data from the same generator calls as workloads.py, weights from `model`

def xor(model: torch.nn.Module) -> Step:
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)

    def loss_fn(p, x, y):
        a = jax.nn.sigmoid(_linear(jax.nn.sigmoid(_linear(x, p, "0")), p, "2"))
        return 0.5 * ((y - a) ** 2).sum()

    return _jit_step(loss_fn, sgd(0.5), _weights(model), x, y)


def mlp(model: torch.nn.Module) -> Step:
    g = np.random.default_rng(0)
    x = g.standard_normal((128, 784), dtype=np.float32)
    y = g.integers(0, 10, 128).astype(np.int32)

    def loss_fn(p, x, y):
        h = jax.nn.relu(_linear(jax.nn.relu(_linear(x, p, "0")), p, "2"))
        return _cross_entropy(_linear(h, p, "4"), y)

    return _jit_step(loss_fn, sgd(0.01, momentum=0.9), _weights(model), x, y)


def cnn(model: torch.nn.Module) -> Step:
    g = np.random.default_rng(0)
    x = g.standard_normal((64, 1, 28, 28), dtype=np.float32)
    y = g.integers(0, 10, 64).astype(np.int32)

    def loss_fn(p, x, y):
        h = _max_pool2(jax.nn.relu(_conv2d(x, p, "0")))
        h = _max_pool2(jax.nn.relu(_conv2d(h, p, "3")))
        h = jax.nn.relu(_linear(h.reshape(h.shape[0], -1), p, "7"))
        return _cross_entropy(_linear(h, p, "9"), y)

    return _jit_step(loss_fn, adam(1e-3), _weights(model), x, y)


def lstm(model: torch.nn.Module) -> Step:
    g = np.random.default_rng(0)
    x = g.standard_normal((32, 32, 64), dtype=np.float32)      # (seq, batch, input)
    y = g.integers(0, 10, 32).astype(np.int32)

    def loss_fn(p, x, y):
        return _cross_entropy(_linear(_lstm_last_h(x, p, "lstm"), p, "head"), y)

    return _jit_step(loss_fn, adam(1e-3), _weights(model), x, y)


def transformer(model: torch.nn.Module) -> Step:
    vocab, seq, batch, heads, layers = 1000, 64, 16, 4, 2
    g = np.random.default_rng(0)
    tokens = g.integers(0, vocab, (batch, seq + 1)).astype(np.int32)
    ids, targets = tokens[:, :-1], tokens[:, 1:].reshape(-1)

    def loss_fn(p, ids, targets):
        x = p["tokens.weight"][ids] + p["positions.weight"][jnp.arange(seq)]
        for i in range(layers):
            x = _pre_ln_encoder_layer(x, p, f"encoder.layers.{i}", heads)
        logits = _linear(_layer_norm(x, p, "encoder.norm"), p, "head")
        return _cross_entropy(logits.reshape(-1, vocab), targets)

    # dropout is 0.0 in the workload, so the step needs no random key
    return _jit_step(loss_fn, adamw(1e-3), _weights(model), ids, targets)


STEPS = {"xor": xor, "mlp": mlp, "cnn": cnn, "lstm": lstm, "transformer": transformer}


def build(name: str, meta: dict) -> Step | None:
    """The JAX step for workload `name` from its meta["models"], or None if there is none; call
    before the PyTorch step runs, so the copied weights are the initial ones."""
    if name not in STEPS or "models" not in meta:
        return None
    return STEPS[name](meta["models"][1])


# ---- the check against PyTorch

@contextlib.contextmanager
def _torch_losses(out: list):
    """Record the value of every torch loss that is backpropagated: the workload's own step, on
    its own data, is the reference (so a data or loss mismatch here shows)."""
    backward = torch.Tensor.backward

    def recording(self, *args, **kwargs):
        out.append(self.item())
        return backward(self, *args, **kwargs)

    torch.Tensor.backward = recording
    try:
        yield
    finally:
        torch.Tensor.backward = backward


def _update_error(step: Step, model: torch.nn.Module, initial: Params) -> float:
    """|JAX weights - PyTorch weights| / |PyTorch weights - initial weights| over all parameters:
    the part of the training updates the two disagree on (losses alone barely show, e.g., a
    missing weight decay)."""
    ours = step.params()
    theirs = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    diff = sum(float(np.sum((np.asarray(ours[k]) - theirs[k]) ** 2)) for k in theirs)
    moved = sum(float(np.sum((theirs[k] - np.asarray(initial[k])) ** 2)) for k in theirs)
    return (diff / moved) ** 0.5


def check(name: str, steps: int = 3, rtol: float = 1e-4) -> bool:
    """Run `steps` training steps of the JAX and the PyTorch version from the same weights and
    print both losses per step. The step-0 losses must agree within rtol; later steps (after
    updates, so float differences compound) within 10 * rtol, and so must the weights' updates."""
    import workloads

    _, theirs, meta = workloads.WORKLOADS[name]()
    step = build(name, meta)
    initial = _weights(meta["models"][1])
    jax_losses = [float(step()) for _ in range(steps)]
    torch_losses: list = []
    with _torch_losses(torch_losses):
        for _ in range(steps):
            theirs()
    ok = True
    for i, (a, b) in enumerate(zip(jax_losses, torch_losses)):
        rel = abs(a - b) / abs(b)
        good = rel <= (rtol if i == 0 else 10 * rtol)
        ok &= good
        print(f"{name} step {i}: JAX {a:.7f}  PyTorch {b:.7f}  rel diff {rel:.1e}"
              f"{'' if good else '  MISMATCH'}")
    err = _update_error(step, meta["models"][1], initial)
    print(f"{name} weights after {steps} steps: |JAX - PyTorch| / |PyTorch update| {err:.1e}"
          f"{'' if err <= 10 * rtol else '  MISMATCH'}")
    return ok and err <= 10 * rtol


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", nargs="?", const=",".join(STEPS), metavar="NAMES",
                        help="compare step losses with PyTorch (default: all workloads)")
    args = parser.parse_args(argv)
    if not args.check:
        parser.print_help()
        return 0
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    results = [check(name) for name in args.check.split(",")]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
