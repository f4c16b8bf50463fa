"""rg.compile(step, backend="numba"): a recorded step fused into one Numba-compiled function.

The fused function computes the same formulas as eager, but with Numba's exp/tanh/sum, so its
results are compared within a tolerance (float32: rtol 1e-5, atol 1e-6; float64: rtol 1e-10), not
bit for bit. A step the backend cannot lower is replayed by the NumPy replay, which is bit-identical
to eager. Each distinct recording costs a Numba compilation of seconds: this module keeps them to
about ten.
"""
import warnings

import numpy as np
import pytest

pytest.importorskip("numba")

from helpers import assert_same_state, pair_of_models, train_step

import retrograd as rg
import retrograd.nn.functional as F
from retrograd import nn, optim
from retrograd.compile import CompileError, CompileWarning

RTOL, ATOL = 1e-5, 1e-6            # float32
RTOL64, ATOL64 = 1e-10, 1e-12      # float64
NUMPY_REPLAY = "backend='numba' replays it with NumPy"


@pytest.fixture(autouse=True, scope="module")
def numba_cache_dir(tmp_path_factory):
    """The fused functions' disk cache in a fresh directory, unless RETROGRAD_CACHE_DIR is set:
    every program is compiled here, and nothing is written to the user's cache."""
    import os
    if os.environ.get("RETROGRAD_CACHE_DIR"):
        yield os.environ["RETROGRAD_CACHE_DIR"]
        return
    with pytest.MonkeyPatch.context() as mp:
        path = str(tmp_path_factory.mktemp("retrograd_cache"))
        mp.setenv("RETROGRAD_CACHE_DIR", path)
        yield path


# -- helpers -----------------------------------------------------------------------------------------

def numba_compile(fn, **kwargs):
    return rg.compile(fn, backend="numba", **kwargs)


def assert_close_models(m1, m2, rtol=RTOL, atol=ATOL, grads=True):
    """Parameters (and their .grad) of the compiled model m2 close to the eager model m1's, with the
    same shapes and dtypes; a .grad that is None in one is None in the other."""
    named = list(m1.named_parameters())
    others = list(m2.parameters())
    assert len(named) == len(others)
    for (name, p), q in zip(named, others):
        assert q.data.dtype == p.data.dtype and q.shape == p.shape, name
        np.testing.assert_allclose(q.data, p.data, rtol=rtol, atol=atol, err_msg=name)
        if not grads:
            continue
        if p.grad is None:
            assert q.grad is None, f"{name}: eager has no .grad, compiled has one"
            continue
        assert q.grad is not None, f"{name}: compiled has no .grad"
        assert isinstance(q.grad, rg.Tensor)
        assert q.grad.data.dtype == p.grad.data.dtype and q.grad.shape == p.grad.shape, name
        np.testing.assert_allclose(q.grad.data, p.grad.data, rtol=rtol, atol=atol,
                                   err_msg=f"{name}.grad")


def assert_close_loss(compiled_loss, eager_loss, what, rtol=RTOL, atol=ATOL):
    assert isinstance(compiled_loss, rg.Tensor), what
    assert compiled_loss.dtype == eager_loss.dtype and compiled_loss.shape == eager_loss.shape, what
    np.testing.assert_allclose(compiled_loss.data, eager_loss.data, rtol=rtol, atol=atol,
                               err_msg=what)


def fallback_counter(compiled):
    """Wrap the NumPy replay each fused replay falls back to (when its assumptions fail at call
    time) so its calls are counted: returns a list whose length is the number of such calls."""
    calls = []
    entries = [e for entries in compiled._cache.values() for e in entries if e.replay is not None]
    assert entries, "nothing was compiled"
    for entry in entries:
        replay = entry.replay
        cells = dict(zip(replay.__code__.co_freevars, replay.__closure__ or ()))
        assert "fallback" in cells, "not a fused (numba) replay"
        original = cells["fallback"].cell_contents

        def counted(*args, _original=original):
            calls.append(1)
            return _original(*args)

        cells["fallback"].cell_contents = counted
    return calls


def side_by_side(eager, compiled, batches, steps):
    """`steps` calls of both steps on the batches in turn, their losses compared. Returns eager's
    losses and the count of NumPy-replay calls from the first replay (the third call) on."""
    losses, fallbacks = [], None
    for i in range(steps):
        batch = batches[i % len(batches)]
        l1, l2 = eager(*batch), compiled(*batch)
        assert_close_loss(l2, l1, f"step {i}")
        losses.append(l1.item())
        if i == 2:
            fallbacks = fallback_counter(compiled)
    return losses, fallbacks


def batches_of(shapes, count, dtype=np.float32, seed=0):
    g = np.random.default_rng(seed)
    return [tuple(rg.tensor(g.standard_normal(s).astype(dtype)) for s in shapes)
            for _ in range(count)]


# -- 1. XOR ------------------------------------------------------------------------------------------

XOR_X = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
XOR_Y = [[0.0], [1.0], [1.0], [0.0]]


def xor_net():
    return nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Linear(2, 1), nn.Sigmoid())


def xor_loss(m, x, y):
    return 0.5 * ((y - m(x)) ** 2).sum()


def test_xor_sgd_matches_eager():
    x, y = rg.tensor(XOR_X), rg.tensor(XOR_Y)
    (m1, o1), (m2, o2) = pair_of_models(xor_net, lambda p: optim.SGD(p, lr=0.5))
    eager = train_step(m1, o1, xor_loss)
    compiled = numba_compile(train_step(m2, o2, xor_loss))
    first = None
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)      # lowered: no NumPy replay
        for i in range(50):
            l1, l2 = eager(x, y), compiled(x, y)
            assert_close_loss(l2, l1, f"step {i}")
            if i == 2:
                fallbacks = fallback_counter(compiled)
                first = l1.item()
    assert l1.item() < first                     # it trains: the loss went down
    assert_close_models(m1, m2)                  # parameters and the last step's gradients
    assert compiled.recordings == 2              # calls 3-50 were fused replays...
    assert fallbacks == []                       # ... none of them the NumPy replay
    assert len(compiled.sources) == 1 and "def fused(" in compiled.sources[0]
    assert o2._step_count == o1._step_count == 50


# -- 2. the other ops, SGD's options, parameter groups, float64 ---------------------------------------

class Net(nn.Module):
    """Linear, ReLU, Tanh, a 2-D matmul and bias adds broadcast from (n,) and (1, n)."""

    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(6, 8)
        self.w2 = nn.Parameter(rg.randn(8, 5) * 0.3)
        self.b2 = nn.Parameter(rg.randn(5) * 0.1)
        self.b3 = nn.Parameter(rg.randn(1, 5) * 0.1)

    def forward(self, x):
        return self.l1(x).relu().tanh() @ self.w2 + self.b2 + self.b3


def net_loss(m, x, y):
    """MSE (mean and sum) plus terms with Exp, Log, Sigmoid, Pow 0.5 and 3, Mean(dim, keepdim),
    Sum(dim), Div, Neg, Sub and Mul by numbers."""
    z = m(x)
    softplus = (z.exp() + 1).log()               # Log1p has no lowering: log(1 + e^z)
    loss = F.mse_loss(z, y) + 0.1 * F.mse_loss(z.sigmoid(), y.sigmoid(), reduction="sum")
    loss = loss + (softplus ** 0.5).mean(dim=1, keepdim=True).sum() / x.shape[0]
    return loss - 0.01 * (-(z ** 3)).sum(dim=0).mean()


def two_groups(m):
    """Two groups with different lrs and different SGD options: heavy ball with dampening and
    weight decay in one, Nesterov in the other."""
    return optim.SGD([{"params": m.l1.parameters(), "momentum": 0.9, "dampening": 0.1,
                       "weight_decay": 1e-3},
                      {"params": [m.w2, m.b2, m.b3], "lr": 0.02, "momentum": 0.9,
                       "nesterov": True, "maximize": False}], lr=0.05)


def test_mlp_ops_sgd_options_and_groups_match_eager():
    (m1, _), (m2, _) = pair_of_models(Net, lambda p: None)
    o1, o2 = two_groups(m1), two_groups(m2)
    eager = train_step(m1, o1, net_loss)
    compiled = numba_compile(train_step(m2, o2, net_loss))
    batches = batches_of([(7, 6), (7, 5)], 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        losses, fallbacks = side_by_side(eager, compiled, batches, 32)
    assert losses[-1] < losses[2]
    assert_close_models(m1, m2)
    for p, q in zip(m1.parameters(), m2.parameters()):       # the momentum buffers too
        np.testing.assert_allclose(o2.state[q]["momentum_buffer"], o1.state[p]["momentum_buffer"],
                                   rtol=RTOL, atol=ATOL)
    assert [g["lr"] for g in o2.param_groups] == [0.05, 0.02]
    assert compiled.recordings == 2 and fallbacks == []
    assert "def fused(" in compiled.sources[0]

    # the momentum buffers cleared: that call runs the NumPy replay (which makes them anew), the
    # next ones are fused again
    o1.state.clear()
    o2.state.clear()
    for i in range(4):
        l1, l2 = eager(*batches[i % 3]), compiled(*batches[i % 3])
        assert_close_loss(l2, l1, f"after clearing the state, step {i}")
    assert len(fallbacks) == 1
    assert_close_models(m1, m2)
    assert compiled.recordings == 2


def test_float64_maximize_matches_eager_tightly():
    """A float64 model agrees with eager to ~1e-12; maximize=True of the negated loss."""
    def make_opt(p):
        return optim.SGD(p, lr=0.05, momentum=0.5, weight_decay=1e-2, maximize=True)

    def negated(m, x, y):
        return -net_loss(m, x, y)

    (m1, o1), (m2, o2) = pair_of_models(lambda: Net().double(), make_opt)
    eager = train_step(m1, o1, negated)
    compiled = numba_compile(train_step(m2, o2, negated))
    batches = batches_of([(7, 6), (7, 5)], 3, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        for i in range(32):
            l1, l2 = eager(*batches[i % 3]), compiled(*batches[i % 3])
            assert l2.dtype == rg.float64
            assert_close_loss(l2, l1, f"step {i}", rtol=RTOL64, atol=ATOL64)
            if i == 2:
                first, fallbacks = l1.item(), fallback_counter(compiled)
    assert l1.item() > first                     # maximising minus the loss: it went up
    assert all(p.dtype == rg.float64 for p in m2.parameters())
    assert_close_models(m1, m2, rtol=RTOL64, atol=ATOL64)
    assert compiled.recordings == 2 and fallbacks == []


# -- 3. a new input signature --------------------------------------------------------------------

def test_new_batch_size_records_and_compiles_again():
    """XOR's step on its 4 rows and on batches of 6: a recording (and a fused program) each."""
    (m1, o1), (m2, o2) = pair_of_models(xor_net, lambda p: optim.SGD(p, lr=0.5))
    eager, compiled = train_step(m1, o1, xor_loss), numba_compile(train_step(m2, o2, xor_loss))
    four, (six,) = (rg.tensor(XOR_X), rg.tensor(XOR_Y)), batches_of([(6, 2), (6, 1)], 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        for i, batch in enumerate([four] * 4 + [six] * 4 + [four] * 2 + [six] * 2):
            assert_close_loss(compiled(*batch), eager(*batch), f"call {i}")
    assert compiled.recordings == 4               # two per batch size, the rest replayed
    assert len(compiled.sources) == 2 and all("def fused(" in s for s in compiled.sources)
    assert_close_models(m1, m2)
    assert o2._step_count == o1._step_count == 12


def small_net():
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2))


def small_loss(m, x, y):
    return F.mse_loss(m(x), y)


# -- 4. dropout; steps the backend does not lower --------------------------------------------------

def test_dropout_masks_are_drawn_per_call_as_eager_draws_them():
    """Dropout is lowered: its mask is drawn by the wrapper before the fused call, from the
    library's generator, so the same seed gives eager's mask and each call a new one."""
    def make():
        return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 1))

    (m1, o1), (m2, o2) = pair_of_models(make, lambda p: optim.SGD(p, lr=0.05))
    eager, compiled = train_step(m1, o1, small_loss), numba_compile(train_step(m2, o2, small_loss))
    x, y = batches_of([(6, 4), (6, 1)], 1)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        for i in range(12):
            rg.manual_seed(100 + i)
            l1 = eager(x, y)
            rg.manual_seed(100 + i)
            l2 = compiled(x, y)
            assert_close_loss(l2, l1, f"step {i}")
            if i == 2:
                fallbacks = fallback_counter(compiled)
        assert_close_models(m1, m2)
        o2.param_groups[0]["lr"] = 0.0        # the weights frozen: only the masks change
        rg.manual_seed(7)
        losses = [compiled(x, y).item() for _ in range(4)]
        rg.manual_seed(7)
        again = [compiled(x, y).item() for _ in range(4)]
    assert len(set(losses)) == 4              # a new mask per call...
    assert again == losses                    # ... following the seed
    assert compiled.recordings == 2 and fallbacks == []
    assert "def fused(" in compiled.sources[0]


def conv_net():
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(8, 1))


def mlp():
    return nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1))


UNLOWERED = {   # a model or an optimizer with no lowering, and the reason the warning gives
    "conv2d": (conv_net, lambda p: optim.SGD(p, lr=0.05, momentum=0.9), [(3, 1, 4, 4), (3, 1)],
               "no lowering of Conv"),
    "rmsprop": (mlp, lambda p: optim.RMSprop(p, lr=0.01), [(6, 4), (6, 1)], "RMSprop.step()"),
}


@pytest.mark.parametrize("name", list(UNLOWERED))
def test_unlowered_step_warns_and_replays_with_numpy_exactly(name):
    make, make_opt, shapes, reason = UNLOWERED[name]
    (m1, o1), (m2, o2) = pair_of_models(make, make_opt)
    eager, compiled = train_step(m1, o1, small_loss), numba_compile(train_step(m2, o2, small_loss))
    batches = batches_of(shapes, 2)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for i in range(8):
            l1, l2 = eager(*batches[i % 2]), compiled(*batches[i % 2])
            assert l1.item() == l2.item(), i          # the NumPy replay: bit for bit
    (warning,) = [w for w in record if w.category is CompileWarning]     # one warning only
    assert NUMPY_REPLAY in str(warning.message) and reason in str(warning.message)
    assert_same_state(m1, m2)
    assert compiled.recordings == 2                    # replayed (with NumPy), not eager
    assert len(compiled.sources) == 1 and "def fused(" not in compiled.sources[0]

    strict = numba_compile(train_step(m2, o2, small_loss), fullgraph=True)
    strict(*batches[0])                                 # the first recording
    with pytest.raises(CompileError, match="backend='numba', fullgraph=True"):
        strict(*batches[0])                             # lowered after the second


# -- 5. call-time changes: optimizer options, hooks, learning rates -------------------------------

def test_optimizer_changes_hooks_and_lr_between_calls_are_followed():
    (m1, o1), (m2, o2) = pair_of_models(small_net, lambda p: optim.SGD(p, lr=0.1))
    eager, compiled = train_step(m1, o1, small_loss), numba_compile(train_step(m2, o2, small_loss))
    batches = batches_of([(5, 4), (5, 2)], 3)

    def run(steps, what):
        for i in range(steps):
            l1, l2 = eager(*batches[i % 3]), compiled(*batches[i % 3])
            assert_close_loss(l2, l1, f"{what}, step {i}")
        assert_close_models(m1, m2)

    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        run(3, "recorded")
        fallbacks = fallback_counter(compiled)
        run(4, "fused")
        assert fallbacks == []

        for lr in (0.05, 0.2):                    # a new lr set from outside: a value, not a change
            for o in (o1, o2):                    # of structure; the fused update reads it
                o.param_groups[0]["lr"] = lr
            run(3, f"lr {lr}")
        assert fallbacks == []

        for o in (o1, o2):                        # momentum switched on: the NumPy replay
            o.param_groups[0]["momentum"] = 0.9
        run(5, "momentum 0.9")
        assert len(fallbacks) == 5
        for o in (o1, o2):                        # ... and nesterov on top of it
            o.param_groups[0]["nesterov"] = True
        run(3, "nesterov")
        assert len(fallbacks) == 8
        for p, q in zip(m1.parameters(), m2.parameters()):
            np.testing.assert_allclose(o2.state[q]["momentum_buffer"],
                                       o1.state[p]["momentum_buffer"], rtol=RTOL, atol=ATOL)

        for o in (o1, o2):                        # back as recorded: fused again
            o.param_groups[0].update(momentum=0.0, nesterov=False)
        run(3, "momentum 0 again")
        assert len(fallbacks) == 8

        handles = [m[2].weight.register_hook(lambda g: g * 0.5) for m in (m1, m2)]
        run(3, "a hook on a parameter")           # the NumPy replay runs the hook, as eager does
        assert len(fallbacks) == 11
        for h in handles:
            h.remove()
        run(2, "hook removed")
        assert len(fallbacks) == 11
    assert compiled.recordings == 2


def test_scheduler_step_inside_the_step_is_followed():
    (m1, o1), (m2, o2) = pair_of_models(small_net, lambda p: optim.SGD(p, lr=0.2, momentum=0.5))
    s1, s2 = (optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5) for o in (o1, o2))

    def step_of(m, o, s):
        def step(x, y):
            o.zero_grad()
            loss = small_loss(m, x, y)
            loss.backward()
            o.step()
            s.step()
            return loss
        return step

    eager, compiled = step_of(m1, o1, s1), numba_compile(step_of(m2, o2, s2))
    batches = batches_of([(5, 4), (5, 2)], 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        for i in range(14):
            l1, l2 = eager(*batches[i % 3]), compiled(*batches[i % 3])
            assert_close_loss(l2, l1, f"step {i}")
            assert o2.param_groups[0]["lr"] == o1.param_groups[0]["lr"], i
            if i == 2:
                fallbacks = fallback_counter(compiled)
    assert o2.param_groups[0]["lr"] == 0.2 * 0.5 ** 4              # 14 steps: 4 decays
    assert s2.last_epoch == s1.last_epoch == 14
    assert o2._step_count == o1._step_count == 14
    assert_close_models(m1, m2)
    assert compiled.recordings == 2 and fallbacks == []
    assert "def fused(" in compiled.sources[0]


# -- 6. parameters without a gradient -----------------------------------------------------------------

class WithUnused(nn.Module):
    def __init__(self):
        super().__init__()
        self.used, self.unused = small_net(), nn.Linear(4, 2)

    def forward(self, x):
        return self.used(x)


def test_zero_grad_of_a_parameter_without_gradient_leaves_none():
    (m1, o1), (m2, o2) = pair_of_models(WithUnused, lambda p: optim.SGD(p, lr=0.1, momentum=0.5))
    eager, compiled = train_step(m1, o1, small_loss), numba_compile(train_step(m2, o2, small_loss))
    batches = batches_of([(5, 4), (5, 2)], 3)
    unused_before = [p.data.copy() for p in m2.unused.parameters()]
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        for i in range(10):
            if i >= 3:    # a stale gradient set from outside: the step's zero_grad clears it
                for m in (m1, m2):
                    m.unused.weight.grad = rg.ones(2, 4)
            l1, l2 = eager(*batches[i % 3]), compiled(*batches[i % 3])
            assert_close_loss(l2, l1, f"step {i}")
            if i == 2:
                fallbacks = fallback_counter(compiled)
            assert m2.unused.weight.grad is None and m2.unused.bias.grad is None, i
            assert m2.used[0].weight.grad is not None, i
    assert m1.unused.weight.grad is None and m1.unused.bias.grad is None
    for before, p in zip(unused_before, m2.unused.parameters()):
        assert np.array_equal(p.data, before)       # never updated
    assert_close_models(m1, m2)
    assert compiled.recordings == 2 and fallbacks == []


def step_zeroing(zeroed, m, o):
    """A training step whose zero_grad is the module `zeroed(m)`'s, not the optimizer's."""
    def step(x, y):
        zeroed(m).zero_grad()
        loss = small_loss(m, x, y)
        loss.backward()
        o.step()
        return loss
    return step


def test_parameter_outside_zero_grad_with_a_gradient_from_outside_uses_the_numpy_replay():
    """zero_grad of the used layer only: the unused layer's .grad must stay None for the fused
    update (which skips it); one set from outside is then used by eager's SGD, and by the NumPy
    replay the call falls back to."""
    (m1, o1), (m2, o2) = pair_of_models(WithUnused, lambda p: optim.SGD(p, lr=0.1))
    eager = step_zeroing(lambda m: m.used, m1, o1)
    compiled = numba_compile(step_zeroing(lambda m: m.used, m2, o2))
    batches = batches_of([(5, 4), (5, 2)], 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        _, fallbacks = side_by_side(eager, compiled, batches, 6)
        assert fallbacks == [] and m2.unused.weight.grad is None
        before = m2.unused.weight.data.copy()
        for m in (m1, m2):
            m.unused.weight.grad = rg.ones(2, 4)
        l1, l2 = eager(*batches[0]), compiled(*batches[0])
        assert_close_loss(l2, l1, "with a gradient from outside")
        assert len(fallbacks) == 1
    np.testing.assert_allclose(m2.unused.weight.data, before - np.float32(0.1), rtol=RTOL,
                               atol=ATOL)         # updated with the outside gradient, as eager
    assert_close_models(m1, m2)
    assert compiled.recordings == 2


@pytest.mark.parametrize("change", ["add_param_group", "remove_param_group", "replace_param"])
def test_parameter_groups_changed_after_compiling_are_followed(change):
    """Fine-tuning: the first layer gets gradients (model.zero_grad() covers it) but only the head
    is optimised; then the first layer's parameters are added as a new group, or the head's group
    is removed, or the head's weight in it replaced by the first layer's. Eager and the NumPy replay
    follow the change (opt.step() reads the groups); the fused update, built for the groups as
    recorded, must give way to the NumPy replay."""
    (m1, _), (m2, _) = pair_of_models(small_net, lambda p: None)
    o1, o2 = optim.SGD(m1[2].parameters(), lr=0.1), optim.SGD(m2[2].parameters(), lr=0.1)
    eager = step_zeroing(lambda m: m, m1, o1)
    compiled = numba_compile(step_zeroing(lambda m: m, m2, o2))
    batches = batches_of([(5, 4), (5, 2)], 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        for i in range(4):
            assert_close_loss(compiled(*batches[i % 3]), eager(*batches[i % 3]), f"step {i}")
        assert "def fused(" in compiled.sources[0]
        fallbacks = fallback_counter(compiled)
        first_layer = m2[0].weight.data.copy()
        for m, o in ((m1, o1), (m2, o2)):
            if change == "add_param_group":
                o.add_param_group({"params": list(m[0].parameters())})
            elif change == "remove_param_group":
                del o.param_groups[0]
            else:
                o.param_groups[0]["params"][0] = m[0].weight
        for i in range(3):
            assert_close_loss(compiled(*batches[i % 3]), eager(*batches[i % 3]), f"after, {i}")
    assert len(fallbacks) == 3
    assert_close_models(m1, m2)
    trained = not np.allclose(m2[0].weight.data, first_layer)
    assert trained == (change != "remove_param_group")


# -- 7, 8. the backend argument; inference --------------------------------------------------------

def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="bogus"):
        rg.compile(lambda x: x, backend="bogus")
    with pytest.raises(ValueError, match="backend"):
        rg.compile(backend="bogus")


def test_inference_under_no_grad_matches_eager():
    rg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    forward = numba_compile(lambda x: model(x))
    xs = [x for (x,) in batches_of([(6, 4)], 5)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        with rg.no_grad():
            for i, x in enumerate(xs * 2):
                out, expected = forward(x), model(x)
                assert isinstance(out, rg.Tensor) and not out.requires_grad, i
                assert out.dtype == expected.dtype and out.shape == (6, 3), i
                np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=RTOL, atol=ATOL,
                                           err_msg=f"call {i}")
    assert forward.recordings == 2
    assert len(forward.sources) == 1 and "def fused(" in forward.sources[0]
    with rg.no_grad():            # replays read the parameters as they are now
        model[0].weight.data[...] *= 2
        np.testing.assert_allclose(forward(xs[0]).numpy(), model(xs[0]).numpy(), rtol=RTOL,
                                   atol=ATOL)


# -- 9. Adam, AdamW and cross-entropy ----------------------------------------------------------------

def classifier():
    return nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 5))


def class_batches(count, n=10, seed=3, ignore=False):
    g = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        y = g.integers(0, 5, n)
        if ignore:
            y[g.random(n) < 0.3] = -100          # cross_entropy's default ignore_index
        out.append((rg.tensor(g.standard_normal((n, 6)).astype(np.float32)), rg.tensor(y)))
    return out


@pytest.mark.parametrize("make_opt, reduction, ignore", [
    (lambda p: optim.Adam(p, lr=0.01, weight_decay=1e-3, amsgrad=True), "mean", False),
    (lambda p: optim.AdamW(p, lr=0.01, maximize=False), "sum", True),
], ids=["adam-amsgrad-mean", "adamw-sum-ignore_index"])
def test_adam_and_cross_entropy_match_eager(make_opt, reduction, ignore):
    def loss_of(m, x, y):
        return F.cross_entropy(m(x), y, reduction=reduction)

    (m1, o1), (m2, o2) = pair_of_models(classifier, make_opt)
    eager, compiled = train_step(m1, o1, loss_of), numba_compile(train_step(m2, o2, loss_of))
    batches = class_batches(4, ignore=ignore)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        for i in range(30):
            x, y = batches[i % len(batches)]
            assert_close_loss(compiled(x, y), eager(x, y), f"step {i}")
    assert "kernels.cross_entropy_forward" in compiled.sources[0]
    assert "kernels.adam_update" in compiled.sources[0]
    assert_close_models(m1, m2)
    for p, q in zip(m1.parameters(), m2.parameters()):     # the optimizer states agree too
        s1, s2 = o1.state[p], o2.state[q]
        assert s1["step"] == s2["step"] == 30
        for key in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_allclose(s2[key], s1[key], rtol=RTOL, atol=ATOL, err_msg=key)


def test_cross_entropy_target_out_of_range_raises_before_any_update():
    def loss_of(m, x, y):
        return F.cross_entropy(m(x), y)

    _, (m2, o2) = pair_of_models(classifier, lambda p: optim.SGD(p, lr=0.1))
    compiled = numba_compile(train_step(m2, o2, loss_of))
    (x, y), = class_batches(1)
    for _ in range(3):
        compiled(x, y)
    before = [p.data.copy() for p in m2.parameters()]
    with pytest.raises(IndexError, match="cross_entropy"):
        compiled(x, rg.tensor(np.full(10, 7)))
    for p, old in zip(m2.parameters(), before):
        assert np.array_equal(p.data, old)


# -- 10. fit(compile="numba") ------------------------------------------------------------------------

def test_fit_with_the_numba_backend_trains_as_eager():
    from retrograd.data import TensorDataset
    from retrograd.train import fit

    g = np.random.default_rng(0)
    x = g.standard_normal((40, 6)).astype(np.float32)
    y = g.integers(0, 5, 40)
    data = TensorDataset(rg.tensor(x), rg.tensor(y))
    histories = []
    for compile_ in (False, "numba"):
        rg.manual_seed(0)
        model = classifier()
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        with warnings.catch_warnings():
            warnings.simplefilter("error", CompileWarning)
            histories.append(fit(model, nn.CrossEntropyLoss(), opt, data, epochs=4, batch_size=10,
                                 shuffle=False, progress=False, compile=compile_))
    np.testing.assert_allclose(histories[1]["loss"], histories[0]["loss"], rtol=RTOL, atol=ATOL)
    with pytest.raises(ValueError, match="compile"):
        fit(classifier(), nn.CrossEntropyLoss(), optim.SGD(classifier().parameters(), lr=0.1),
            data, epochs=1, progress=False, compile="bogus")


def test_cli_compile_option_takes_numba_or_nothing():
    from retrograd.cli import build_parser

    parse = build_parser().parse_args
    assert parse(["train"]).compile is False
    assert parse(["train", "--compile"]).compile is True
    assert parse(["train", "--compile", "numba"]).compile == "numba"
    with pytest.raises(SystemExit):
        parse(["train", "--compile", "jax"])
