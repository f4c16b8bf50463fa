"""Recurrent layers (RNN, LSTM, GRU and their cells) against PyTorch.

Each configuration builds the torch layer, loads its state dict into ours, and compares outputs,
final states, the input gradient, the initial-state gradients and every parameter gradient, over a
grid: mode x (layers, directions, batch_first, bias, dropout in eval mode) x (given or default
initial state) x (batched or unbatched input). Then: dropout between layers in training, float64
gradcheck of every cell and of 2-layer bidirectional nets, a 1,000-step sequence, truncated BPTT
(and the error when the carried state is not detached), initialisation, input validation, and one
"it learns" run per family.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import retrograd as rg
from retrograd.nn import functional as F
from retrograd.nn import recurrent
from retrograd.optim import Adam
from helpers import assert_close

T, B, I, H = 5, 3, 4, 6        # sequence length, batch, input size, hidden size


@pytest.fixture(autouse=True)
def _torch_single_threaded():
    """torch's OpenMP threads spin while NumPy's BLAS threads work and the other way round: on a
    small machine, alternating the two libraries on tiny tensors is far faster with one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


RG = {"RNN": recurrent.RNN, "LSTM": recurrent.LSTM, "GRU": recurrent.GRU,
      "RNNCell": recurrent.RNNCell, "LSTMCell": recurrent.LSTMCell, "GRUCell": recurrent.GRUCell}


def pair(name: str, *args, seed: int = 0, **kwargs):
    """(torch layer, retrograd layer) with the same weights: torch's init, via its state dict."""
    torch.manual_seed(seed)
    t = getattr(torch.nn, name)(*args, **kwargs)
    r = RG[name](*args, **kwargs)
    assert r.load_state_dict({k: v.numpy() for k, v in t.state_dict().items()}) == ([], [])
    assert [n for n, _ in r.named_parameters()] == [n for n, _ in t.named_parameters()]
    return t, r


def flatten(out) -> list:
    """(output, h_n) or (output, (h_n, c_n)) or (h, c) or h -> a flat list of tensors."""
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in flatten(o)]
    return [out]


def leaves(arrays, lib):
    """The same arrays as float32 leaves requiring grad, in torch or retrograd (None stays None)."""
    def leaf(a):
        return torch.tensor(a, requires_grad=True) if lib is torch else rg.tensor(a,
                                                                                 requires_grad=True)
    return [None if a is None else leaf(a.astype(np.float32)) for a in arrays]


def state_arg(states, lstm):
    """The initial state argument as the layer takes it: None, h0, or (h0, c0)."""
    if states[0] is None:
        return None
    return (states[0], states[1]) if lstm else states[0]


def compare(t, r, x: np.ndarray, states: list, what: str, seed: int = 1) -> None:
    """Forward both layers from the same input and initial states, backward a random projection of
    every output, and compare every output and every gradient."""
    lstm = "LSTM" in type(r).__name__
    tx, rx = leaves([x], torch)[0], leaves([x], rg)[0]
    ts, rs = leaves(states, torch), leaves(states, rg)
    tout = flatten(t(tx, state_arg(ts, lstm)))
    rout = flatten(r(rx, state_arg(rs, lstm)))
    assert len(rout) == len(tout)
    rng = np.random.default_rng(seed)
    grads = [rng.standard_normal(o.shape).astype(np.float32) for o in tout]
    for i, (a, b) in enumerate(zip(rout, tout)):
        assert a.dtype == np.float32
        assert_close(a.data, b.detach().numpy(), f"{what}: output {i}")
    torch.autograd.backward(tout, [torch.tensor(g) for g in grads])
    rg.autograd.run_backward(rout, grads, retain_graph=False)
    assert_close(rx.grad.data, tx.grad.numpy(), f"{what}: input gradient")
    for i, (a, b) in enumerate(zip(rs, ts)):
        if a is not None:
            assert_close(a.grad.data, b.grad.numpy(), f"{what}: initial state {i} gradient")
    ours = dict(r.named_parameters())
    for name, p in t.named_parameters():
        assert_close(ours[name].grad.data, p.grad.numpy(), f"{what}: gradient of {name}")


# -- the grid -------------------------------------------------------------------------------------

MODES = [("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("LSTM", {}), ("GRU", {})]
CONFIGS = {
    "one_layer": {},
    "two_layers": {"num_layers": 2},
    "bidirectional": {"bidirectional": True},
    "two_layers_bidirectional": {"num_layers": 2, "bidirectional": True},
    "batch_first": {"batch_first": True, "num_layers": 2},
    "no_bias": {"bias": False, "num_layers": 2, "bidirectional": True},
    "dropout_eval": {"num_layers": 2, "dropout": 0.5},     # eval mode: no dropout, as torch
}


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("given_state", [False, True], ids=["default_state", "given_state"])
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("mode", MODES, ids=["rnn_tanh", "rnn_relu", "lstm", "gru"])
def test_layer_matches_torch(mode, config, given_state, batched):
    name, extra = mode
    kwargs = {**extra, **CONFIGS[config]}
    t, r = pair(name, I, H, **kwargs)
    t.eval()
    r.eval()
    rng = np.random.default_rng(0)
    layers = kwargs.get("num_layers", 1) * (2 if kwargs.get("bidirectional") else 1)
    if batched:
        x = rng.standard_normal((B, T, I) if kwargs.get("batch_first") else (T, B, I))
        state_shape = (layers, B, H)
    else:
        x = rng.standard_normal((T, I))
        state_shape = (layers, H)
    n_states = 2 if name == "LSTM" else 1
    states = [rng.standard_normal(state_shape) if given_state else None for _ in range(n_states)]
    compare(t, r, x, states, f"{name} {config}")


CELLS = [("RNNCell", {}), ("RNNCell", {"nonlinearity": "relu"}), ("LSTMCell", {}),
         ("GRUCell", {}), ("LSTMCell", {"bias": False}), ("GRUCell", {"bias": False})]


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("given_state", [False, True], ids=["default_state", "given_state"])
@pytest.mark.parametrize("cell", CELLS, ids=["rnn_tanh", "rnn_relu", "lstm", "gru",
                                             "lstm_no_bias", "gru_no_bias"])
def test_cell_matches_torch(cell, given_state, batched):
    name, kwargs = cell
    t, r = pair(name, I, H, **kwargs)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, I) if batched else (I,))
    n_states = 2 if name == "LSTMCell" else 1
    shape = (B, H) if batched else (H,)
    states = [rng.standard_normal(shape) if given_state else None for _ in range(n_states)]
    compare(t, r, x, states, name)


@pytest.mark.parametrize("name", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cell_unrolled_by_hand_matches_torch(name):
    """Backpropagation through time through a Python loop of cells: gradients sum over steps."""
    t, r = pair(name, I, H)
    x = np.random.default_rng(0).standard_normal((T, B, I)).astype(np.float32)
    tx, rx = torch.tensor(x, requires_grad=True), rg.tensor(x, requires_grad=True)
    losses = []
    for lib, cell, xs in ((torch, t, tx), (rg, r, rx)):
        state, total = None, 0
        for step in range(T):
            state = cell(xs[step], state)
            h = state[0] if name == "LSTMCell" else state
            total = total + (h * h).sum()
        total.backward()
        losses.append(float(total.detach() if lib is torch else total.data))
    assert math.isclose(losses[0], losses[1], rel_tol=1e-5)
    assert_close(rx.grad.data, tx.grad.numpy(), "input gradient")
    for (n, p), q in zip(t.named_parameters(), r.parameters()):
        assert_close(q.grad.data, p.grad.numpy(), f"gradient of {n}")


# -- dropout between layers -----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["LSTM", "GRU", "RNN"])
def test_dropout_between_layers_in_training(name):
    """Training mode drops the outputs of every layer but the last, with the library's generator:
    the same masks, applied between torch's layers run one at a time, give the same values and
    gradients."""
    p, layers = 0.4, 3
    t, r = pair(name, I, H, num_layers=layers, dropout=p, bidirectional=True)
    x = np.random.default_rng(0).standard_normal((T, B, I)).astype(np.float32)
    rg.manual_seed(7)
    masks = [F.dropout(rg.ones(T, B, 2 * H), p, True).data for _ in range(layers - 1)]
    for m in masks:                   # inverted dropout: zeros, and survivors scaled by 1/(1-p)
        assert set(np.unique(m)) == {0.0, np.float32(1 / (1 - p))}
        assert 0.2 < (m == 0).mean() < 0.6
    rg.manual_seed(7)
    rx = rg.tensor(x, requires_grad=True)
    out, h_n = flatten(r(rx))[:2]

    # torch reference: one single-layer bidirectional torch module per layer, our masks between
    pieces = []
    for k in range(layers):
        piece = getattr(torch.nn, name)(I if k == 0 else 2 * H, H, bidirectional=True)
        piece.load_state_dict({n.replace(f"_l{k}", "_l0"): v for n, v in t.state_dict().items()
                               if f"_l{k}" in n})
        pieces.append(piece)
    tx = torch.tensor(x, requires_grad=True)
    y, finals = tx, []
    for k, piece in enumerate(pieces):
        y, state = piece(y)
        finals.append(state[0] if name == "LSTM" else state)
        if k < layers - 1:
            y = y * torch.tensor(masks[k])
    assert_close(out.data, y.detach().numpy(), "output")
    assert_close(h_n.data, torch.cat(finals).detach().numpy(), "h_n")
    (out * out).sum().backward()
    (y * y).sum().backward()
    assert_close(rx.grad.data, tx.grad.numpy(), "input gradient")
    ours = dict(r.named_parameters())
    for k, piece in enumerate(pieces):
        for n, q in piece.named_parameters():
            key = n.replace("_l0", f"_l{k}")
            assert_close(ours[key].grad.data, q.grad.numpy(), f"gradient of {key}")


def test_dropout_is_off_in_eval_and_for_one_layer_warns():
    lstm = recurrent.LSTM(I, H, num_layers=2, dropout=0.9).eval()
    x = rg.randn(T, B, I)
    np.testing.assert_array_equal(lstm(x)[0].data, lstm(x)[0].data)
    lstm.train()
    assert not np.array_equal(lstm(x)[0].data, lstm(x)[0].data)
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        recurrent.GRU(I, H, dropout=0.5)


# -- gradcheck in float64 -------------------------------------------------------------------------

@pytest.mark.parametrize("cell", CELLS[:4], ids=["rnn_tanh", "rnn_relu", "lstm", "gru"])
def test_cell_gradcheck(cell):
    name, kwargs = cell
    rg.manual_seed(0)
    r = RG[name](3, 2, **kwargs).double()
    rng = np.random.default_rng(0)
    x = rg.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    states = [rg.tensor(rng.standard_normal((2, 2)), requires_grad=True)
              for _ in range(2 if name == "LSTMCell" else 1)]
    params = list(r.parameters())

    def fn(x, *rest):
        s = rest[:len(states)]
        return r(x, tuple(s) if name == "LSTMCell" else s[0])
    assert rg.gradcheck(fn, (x, *states, *params))


@pytest.mark.parametrize("mode", MODES, ids=["rnn_tanh", "rnn_relu", "lstm", "gru"])
def test_two_layer_bidirectional_gradcheck(mode):
    name, extra = mode
    rg.manual_seed(0)
    r = RG[name](3, 2, num_layers=2, bidirectional=True, batch_first=True, **extra).double()
    rng = np.random.default_rng(1)
    x = rg.tensor(rng.standard_normal((2, 3, 3)), requires_grad=True)
    states = [rg.tensor(rng.standard_normal((4, 2, 2)), requires_grad=True)
              for _ in range(2 if name == "LSTM" else 1)]

    def fn(x, *rest):
        s = rest[:len(states)]
        return flatten(r(x, tuple(s) if name == "LSTM" else s[0]))
    assert rg.gradcheck(fn, (x, *states, *r.parameters()))


# -- long sequences and truncated BPTT ------------------------------------------------------------

def graph_size(t: rg.Tensor) -> int:
    seen, stack = set(), [t.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen or not isinstance(node, rg.Function):
            continue
        seen.add(node)
        stack.extend(node.next_functions)
    return len(seen)


@pytest.mark.parametrize("name", ["LSTM", "GRU"])
def test_thousand_steps_match_torch_with_a_graph_independent_of_length(name):
    t, r = pair(name, 3, 8, batch_first=True)
    x = np.random.default_rng(0).standard_normal((2, 1000, 3)).astype(np.float32)
    tx, rx = torch.tensor(x, requires_grad=True), rg.tensor(x, requires_grad=True)
    tout, rout = t(tx)[0], r(rx)[0]
    loss = (rout[:, -1] ** 2).sum() + rout.mean()
    short = r(rg.tensor(x[:, :10], requires_grad=True))[0]
    assert graph_size(loss) == graph_size((short[:, -1] ** 2).sum() + short.mean())
    loss.backward()
    ((tout[:, -1] ** 2).sum() + tout.mean()).backward()
    assert_close(rout.data, tout.detach().numpy(), "output")
    assert_close(rx.grad.data, tx.grad.numpy(), "input gradient")
    for n, p in t.named_parameters():
        assert_close(dict(r.named_parameters())[n].grad.data, p.grad.numpy(), f"gradient of {n}")


@pytest.mark.parametrize("blocked", [False, True], ids=["whole_gemm", "row_blocks"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_step_gemm_in_row_blocks_matches_torch(monkeypatch, blocked, bidirectional):
    """At a size where each step's GEMM can run as row blocks (OpenBLAS's small-matrix kernels),
    both ways give torch's values, whichever one this machine's BLAS would pick."""
    from retrograd.ops import recurrent as ops
    monkeypatch.setattr(ops, "_blas_multiplies_small_directly", lambda: blocked)
    assert (len(ops._gemm_blocks(4 * 64, 64 + 16 + 1, 64, np.float32)) > 1) == blocked
    t, r = pair("LSTM", 16, 64, bidirectional=bidirectional)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 64, 16)).astype(np.float32)
    states = [rng.standard_normal((2 if bidirectional else 1, 64, 64)) for _ in range(2)]
    compare(t, r, x, states, f"LSTM(16, 64), batch 64, {'blocked' if blocked else 'whole'}")


def test_truncated_bptt_detaching_the_carried_state_matches_torch():
    t, r = pair("LSTM", 3, 5, batch_first=True)
    x = np.random.default_rng(0).standard_normal((2, 12, 3)).astype(np.float32)
    finals = []
    for lib, model in ((torch, t), (rg, r)):
        state = None
        for start in range(0, 12, 4):
            out, state = model(lib.tensor(x[:, start:start + 4]), state)
            (out * out).mean().backward()          # gradients accumulate over chunks
            state = tuple(s.detach() for s in state)
        finals.append(state)
    for a, b in zip(finals[1], finals[0]):
        assert_close(a.data, b.numpy(), "carried state")
    for n, p in t.named_parameters():
        assert_close(dict(r.named_parameters())[n].grad.data, p.grad.numpy(), f"gradient of {n}")


@pytest.mark.parametrize("name", ["LSTM", "GRU"])
def test_truncated_bptt_without_detach_says_what_to_do(name):
    model = RG[name](3, 5)
    x = rg.randn(4, 2, 3)
    out, state = model(x)
    out.sum().backward()
    out, state = model(x, state)                  # the classic mistake: state still attached
    with pytest.raises(RuntimeError, match=r"graph a second time(?s:.*)detach"):
        out.sum().backward()


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_recycled_work_arrays_never_leak_into_results(name):
    """The ops reuse their work arrays between calls: results handed out must stay as they were,
    and a graph kept with retain_graph must still hold its own saved values."""
    model = RG[name](3, 5, num_layers=2, bidirectional=True)
    x = rg.randn(6, 2, 3, requires_grad=True)
    out, _ = model(x)
    kept = out.data.copy()
    (out * out).sum().backward(retain_graph=True)
    first = [p.grad.data.copy() for p in model.parameters()] + [x.grad.data.copy()]
    for _ in range(2):                     # other calls of the same shapes, in between
        other, _ = model(rg.randn(6, 2, 3, requires_grad=True))
        other.sum().backward()
    np.testing.assert_array_equal(out.data, kept)
    model.zero_grad()
    x.grad = None
    (out * out).sum().backward()           # the retained graph, a second time: the same grads
    second = [p.grad.data for p in model.parameters()] + [x.grad.data]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


# -- parameters, init, repr ----------------------------------------------------------------------

def test_parameter_names_shapes_and_init_match_torch():
    t = torch.nn.LSTM(4, 32, num_layers=2, bidirectional=True)
    r = recurrent.LSTM(4, 32, num_layers=2, bidirectional=True)
    assert {k: tuple(v.shape) for k, v in r.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in t.state_dict().items()}
    assert list(r.state_dict())[:5] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0",
                                        "bias_hh_l0", "weight_ih_l0_reverse"]
    bound = 1 / math.sqrt(32)
    for name, p in r.named_parameters():
        assert p.dtype == np.float32
        assert np.abs(p.data).max() <= bound, name
        assert np.abs(p.data).max() > 0.9 * bound, name     # uniform over the whole range
    assert [len(w) for w in r.all_weights] == [4, 4, 4, 4]
    assert [n for n, _ in recurrent.GRU(4, 6, bias=False).named_parameters()] == \
        ["weight_ih_l0", "weight_hh_l0"]
    cell = recurrent.GRUCell(4, 6, bias=False)
    assert [n for n, _ in cell.named_parameters()] == ["weight_ih", "weight_hh"]
    assert cell.bias_ih is None


@pytest.mark.parametrize("name, args, kwargs", [
    ("LSTM", (4, 6), {}),
    ("GRU", (4, 6), {"num_layers": 2, "bias": False, "batch_first": True, "dropout": 0.5,
                     "bidirectional": True}),
    ("RNN", (4, 6), {"nonlinearity": "relu"}),
    ("RNNCell", (4, 6), {"nonlinearity": "relu"}),
    ("LSTMCell", (4, 6), {"bias": False}),
])
def test_repr_matches_torch(name, args, kwargs):
    assert repr(RG[name](*args, **kwargs)) == repr(getattr(torch.nn, name)(*args, **kwargs))


def test_float64_model():
    t, r = pair("GRU", I, H, num_layers=2)
    t.double()
    r.double()
    x = np.random.default_rng(0).standard_normal((T, B, I))
    out = r(rg.tensor(x))[0]
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.data, t(torch.tensor(x))[0].detach().numpy(), atol=1e-12)


# -- input validation -----------------------------------------------------------------------------

@pytest.mark.parametrize("call, texts", [
    (lambda: recurrent.LSTM(4, 6)(rg.randn(5, 3, 7)), ["LSTM(4, 6)", "input_size", "4", "7"]),
    (lambda: recurrent.GRU(4, 6)(rg.randn(5, 3, 4, 1)), ["GRU(4, 6)", "3-D", "(5, 3, 4, 1)"]),
    (lambda: recurrent.GRU(4, 6, num_layers=2)(rg.randn(5, 3, 4), rg.randn(1, 3, 6)),
     ["GRU(4, 6, num_layers=2)", "h0", "(2, 3, 6)", "(1, 3, 6)"]),
    (lambda: recurrent.RNN(4, 6, batch_first=True)(rg.randn(3, 5, 4), rg.randn(1, 5, 6)),
     ["RNN(4, 6, batch_first=True)", "h0", "(1, 3, 6)", "(1, 5, 6)"]),
    (lambda: recurrent.RNN(4, 6)(rg.randn(5, 4), rg.randn(1, 1, 6)),
     ["h0", "(1, 6)", "unbatched", "(1, 1, 6)"]),
    (lambda: recurrent.LSTM(4, 6)(rg.randn(5, 3, 4), rg.randn(1, 3, 6)), ["tuple (h0, c0)"]),
    (lambda: recurrent.LSTM(4, 6)(rg.randn(5, 3, 4), (rg.randn(1, 3, 6), rg.randn(1, 2, 6))),
     ["c0", "(1, 3, 6)", "(1, 2, 6)"]),
    (lambda: recurrent.LSTM(4, 6)(rg.randn(0, 3, 4)), ["empty"]),
    (lambda: recurrent.LSTMCell(4, 6)(rg.randn(3, 5)), ["LSTMCell(4, 6)", "(batch, 4)", "(3, 5)"]),
    (lambda: recurrent.GRUCell(4, 6)(rg.randn(3, 4), rg.randn(2, 6)),
     ["GRUCell(4, 6)", "hx", "(3, 6)", "(2, 6)"]),
    (lambda: recurrent.LSTMCell(4, 6)(rg.randn(4), (rg.randn(1, 6), rg.randn(1, 6))),
     ["(6,)", "(1, 6)"]),
])
def test_errors_name_the_layer_and_shapes(call, texts):
    with pytest.raises(ValueError) as err:
        call()
    for text in texts:
        assert text in str(err.value), f"{text!r} not in {str(err.value)!r}"


def test_dtype_mismatch_is_a_type_error_as_in_the_other_layers():
    with pytest.raises(TypeError, match=r"LSTM\(4, 6\): input dtype float64 .* float32"):
        recurrent.LSTM(4, 6)(rg.randn(5, 3, 4, dtype=rg.float64))


def test_constructor_errors():
    with pytest.raises(ValueError, match="hidden_size must be greater than zero"):
        recurrent.LSTM(4, 0)
    with pytest.raises(ValueError, match="dropout"):
        recurrent.GRU(4, 6, dropout=1.5)
    with pytest.raises(ValueError, match="nonlinearity"):
        recurrent.RNN(4, 6, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="num_layers"):
        recurrent.RNN(4, 6, num_layers=0)


# -- it learns ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_it_learns_to_remember_the_first_step(name):
    """Classify a sequence by the sign of its first element, seen 8 steps before the answer."""
    rg.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 8, 2)).astype(np.float32)
    y = (x[:, 0, 0] > 0).astype(np.int64)
    model = RG[name](2, 16, batch_first=True)
    head = rg.nn.Linear(16, 2)
    opt = Adam(list(model.parameters()) + list(head.parameters()), lr=0.02)
    for _ in range(150):
        out, state = model(rg.tensor(x))
        loss = F.cross_entropy(head(out[:, -1]), rg.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    accuracy = (head(model(rg.tensor(x))[0][:, -1]).data.argmax(1) == y).mean()
    assert accuracy > 0.95, (name, accuracy, float(loss))
