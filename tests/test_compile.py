"""rg.compile: a recorded-and-replayed step must give the parameters eager steps give.

Replay calls the same op forward/backward functions on the same arrays in the same order as the
eager run, so the results are compared bit for bit, not within a tolerance."""
import warnings

import numpy as np
import pytest
from helpers import (
    assert_compiled_matches_eager,
    assert_same_state,
    pair_of_models,
    train_step,
)

import retrograd as rg
import retrograd.nn as nn
import retrograd.nn.functional as F
from retrograd import optim
from retrograd.compile import CompileError, CompileWarning
from retrograd.random import default_generator


def _classification_batches(shape, n_classes, count=3, seed=1):
    g = np.random.default_rng(seed)
    return [(rg.tensor(g.standard_normal(shape, dtype=np.float32)),
             rg.tensor(g.integers(0, n_classes, shape[0]))) for _ in range(count)]


def test_mlp_sgd_momentum_matches_eager():
    assert_compiled_matches_eager(lambda: nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 32), nn.Tanh(),
                                    nn.Linear(32, 5)),
              lambda p: optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
              lambda m, x, y: F.cross_entropy(m(x), y), _classification_batches((16, 20), 5))


def test_xor_mse_adam_matches_eager():
    x = rg.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = rg.tensor([[0.0], [1.0], [1.0], [0.0]])
    assert_compiled_matches_eager(lambda: nn.Sequential(nn.Linear(2, 4), nn.Sigmoid(), nn.Linear(4, 1), nn.Sigmoid()),
              lambda p: optim.Adam(p, lr=0.05),
              lambda m, x, y: 0.5 * ((y - m(x)) ** 2).sum(), [(x, y)])


def test_cnn_adam_matches_eager():
    assert_compiled_matches_eager(lambda: nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                    nn.Conv2d(4, 6, 3), nn.ReLU(), nn.Flatten(),
                                    nn.Linear(6 * 2 * 2, 3)),
              lambda p: optim.Adam(p, lr=1e-2),
              lambda m, x, y: F.cross_entropy(m(x), y), _classification_batches((8, 1, 8, 8), 3))


def test_relu_backward_in_place_only_on_unshared_gradients():
    """The replay lets ReLU's backward overwrite its incoming gradient when the recording showed
    nothing else holds it; a gradient that also flows elsewhere (here through `h + relu(h)`, whose
    Add sends one array to both) keeps the out-of-place rule. Both give eager's values."""
    from retrograd.compile.tape import _relu_backward_into

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(5, 6), nn.Linear(6, 3)

        def forward(self, x):
            h = self.a(x).relu()
            return self.b(h + h.relu())

    compiled = assert_compiled_matches_eager(Net, lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
                         lambda m, x, y: F.cross_entropy(m(x), y),
                         _classification_batches((8, 5), 3))
    (entry,) = [e for entries in compiled._cache.values() for e in entries]
    rules = {n: cell.cell_contents for n, cell in
             zip(entry.replay.__code__.co_freevars, entry.replay.__closure__) if n[0] == "B"}
    calls = [line.split("(")[0].split("= ")[1] for line in entry.source.splitlines()
             if "= B" in line]
    relu = [name for name in calls if rules[name] is _relu_backward_into
            or rules[name] is rg.ops.elementwise.ReLU.backward]
    assert [rules[n] is _relu_backward_into for n in relu] == [False, True]


def test_lstm_adamw_matches_eager():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.head = nn.LSTM(6, 8, batch_first=True), nn.Linear(8, 3)

        def forward(self, x):
            out, (h, _) = self.lstm(x)
            return self.head(h[0] + out.mean(dim=1))

    assert_compiled_matches_eager(Net, lambda p: optim.AdamW(p, lr=1e-2),
              lambda m, x, y: F.cross_entropy(m(x), y), _classification_batches((4, 7, 6), 3))


def test_transformer_matches_eager():
    vocab, seq = 11, 6

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab, 16)
            layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.1, batch_first=True,
                                               norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            self.head = nn.Linear(16, vocab)

        def forward(self, ids):
            mask = nn.Transformer.generate_square_subsequent_mask(seq)
            return self.head(self.encoder(self.embed(ids), mask=mask, is_causal=True))

    g = np.random.default_rng(0)
    batches = [(rg.tensor(t[:, :-1]), rg.tensor(t[:, 1:].reshape(-1)))
               for t in (g.integers(0, vocab, (3, seq + 1)) for _ in range(3))]
    assert_compiled_matches_eager(LM, lambda p: optim.Adam(p, lr=1e-2),
              lambda m, ids, y: F.cross_entropy(m(ids).reshape(-1, vocab), y), batches, steps=20)


def test_new_batch_size_records_again():
    make = lambda: nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))  # noqa: E731
    (m1, o1), (m2, o2) = pair_of_models(make, lambda p: optim.SGD(p, lr=0.1))
    loss_of = lambda m, x, y: F.cross_entropy(m(x), y)  # noqa: E731
    eager, compiled = train_step(m1, o1, loss_of), rg.compile(train_step(m2, o2, loss_of))
    big, small = _classification_batches((8, 3), 2, 1)[0], _classification_batches((5, 3), 2, 1)[0]
    for batch in [big] * 4 + [small] * 4 + [big] * 2:
        assert eager(*batch).item() == compiled(*batch).item()
    assert_same_state(m1, m2)
    assert compiled.recordings == 4 and len(compiled.sources) == 2


def test_item_inside_step_falls_back_with_one_warning():
    make = lambda: nn.Linear(3, 1)  # noqa: E731
    (m1, o1), (m2, o2) = pair_of_models(make, lambda p: optim.SGD(p, lr=0.1))
    x = rg.tensor(np.random.default_rng(0).standard_normal((4, 3), dtype=np.float32))

    def step(m, opt):
        opt.zero_grad()
        loss = (m(x) ** 2).mean()
        if loss.item() > 0.05:         # data-dependent control flow
            loss = loss * 2
        loss.backward()
        opt.step()
        return loss

    compiled = rg.compile(lambda: step(m2, o2))
    with pytest.warns(CompileWarning, match=r"Tensor.item\(\)") as record:
        for _ in range(30):
            step(m1, o1)
            compiled()
    assert len([w for w in record if w.category is CompileWarning]) == 1
    assert_same_state(m1, m2)               # eager fallback: still exactly right
    with pytest.raises(CompileError, match=r"Tensor.item\(\)"):
        rg.compile(lambda: step(m2, o2), fullgraph=True)()


def test_comparison_driven_branch_is_detected():
    w = rg.tensor([1.0, -2.0], requires_grad=True)

    def f(x):
        y = w * x
        return y.relu() if (y > 0).all() else y.abs()

    with pytest.raises(CompileError, match="__bool__"):     # the comparison itself replays
        rg.compile(f, fullgraph=True)(rg.tensor([1.0, 1.0]))


def test_values_computed_outside_ops_are_not_frozen():
    """A step that builds a tensor from `.data` is caught by the second recording."""
    lin = nn.Linear(2, 1)

    def f(x):
        centre = rg.tensor(x.data.mean())       # escapes the recording: a raw array computation
        return (lin(x) - centre).sum()

    g = np.random.default_rng(0)
    xs = [rg.tensor(g.standard_normal((3, 2), dtype=np.float32)) for _ in range(4)]
    compiled = rg.compile(f)
    with rg.no_grad():
        with pytest.warns(CompileWarning, match="changed between its first two calls"):
            results = [compiled(x).item() for x in xs]
        assert results == [f(x).item() for x in xs]


def test_library_random_draws_are_replayed_and_others_fall_back():
    """rg.randn and friends draw anew at each replay, the same numbers eager draws under the same
    seed (a VAE's noise); draws around the library functions are caught."""
    lin = nn.Linear(2, 2)
    g = rg.Generator().manual_seed(3)

    def step(x):
        noise = rg.randn(2) + rg.rand(2, generator=g) + rg.randn_like(x)[0]
        index = rg.randint(0, 2, (2,)) + rg.randperm(2)
        loss = (lin(x) * noise).sum() + index.float().sum()
        loss.backward()
        return loss

    compiled = rg.compile(step)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        for i in range(5):
            g.manual_seed(10 + i)            # a new NumPy generator under the same Generator
            rg.manual_seed(i)
            eager = step(rg.ones(1, 2)).item()
            g.manual_seed(10 + i)
            rg.manual_seed(i)
            assert compiled(rg.ones(1, 2)).item() == eager, i
    assert compiled.recordings == 2
    draws = {compiled(rg.ones(1, 2)).item() for _ in range(3)}
    assert len(draws) == 3

    for source in (default_generator, g):      # around the functions: caught, for any Generator
        compiled = rg.compile(lambda x, s=source: (lin(x) + rg.tensor(s.rng.random(2))).sum())
        with pytest.warns(CompileWarning, match="drawn around the library's functions"):
            a, b, c = (compiled(rg.ones(1, 2)).item() for _ in range(3))
        assert len({a, b, c}) == 3
    compiled = rg.compile(lambda x: (lin(x) * float(np.random.rand())).sum())
    with pytest.warns(CompileWarning, match="NumPy's global generator"):
        compiled(rg.ones(1, 2))


def test_index_tensors_are_inputs_of_the_replay():
    """A DQN's Q(s, a): the actions index the outputs; each call's actions must be used."""
    make = lambda: nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))  # noqa: E731

    def loss_of(m, s, a, target):
        return F.mse_loss(m(s)[rg.arange(s.shape[0]), a], target)

    g = np.random.default_rng(0)
    batches = [(rg.tensor(g.standard_normal((8, 4), dtype=np.float32)),
                rg.tensor(g.integers(0, 3, 8)), rg.tensor(g.standard_normal(8, dtype=np.float32)))
               for _ in range(3)]
    assert_compiled_matches_eager(make, lambda p: optim.Adam(p, lr=1e-2), loss_of, batches, steps=12)


def test_max_and_argmax_indices_are_found_again_at_each_replay():
    """A DQN target takes max(1).values of the next states' Q-values, double DQN indexes with
    argmax(1): the maxima must be each call's, not the recorded call's."""
    @rg.compile
    def targets(q_next, q_online):
        with rg.no_grad():
            best = q_online.argmax(1)
            return q_next.max(1).values, q_next[rg.arange(q_next.shape[0]), best], q_next.min(0)

    g = np.random.default_rng(0)
    first = rg.tensor(g.standard_normal((5, 3), dtype=np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        for i in range(6):
            q_next = first if i < 3 else rg.tensor(g.standard_normal((5, 3), dtype=np.float32))
            q_online = rg.tensor(g.standard_normal((5, 3), dtype=np.float32))
            top, chosen, low = targets(q_next, q_online)
            assert np.array_equal(top.numpy(), q_next.numpy().max(1))
            assert np.array_equal(chosen.numpy(), q_next.numpy()[np.arange(5),
                                                                 q_online.numpy().argmax(1)])
            assert type(low).__name__ == "MaxMin"
            assert np.array_equal(low.indices.numpy(), q_next.numpy().argmin(0))
    assert targets.recordings == 2


def test_comparisons_and_masks_inside_the_step_are_replayed():
    """Accuracy counted in the step, a mask from a comparison (a margin loss on the wrong
    predictions only): comparisons are ops, so each call's values decide."""
    make = lambda: nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))  # noqa: E731

    def step_of(model, opt):
        def step(x, y):
            opt.zero_grad()
            logits = model(x)
            wrong = (logits.argmax(1) != y).float()
            loss = F.cross_entropy(logits, y) + (wrong * logits.logsumexp(1)).mean() * 0.1
            loss.backward()
            opt.step()
            with rg.no_grad():
                correct = (logits.argmax(1) == y).float().sum()
                positive = rg.where(logits > 0, logits, rg.zeros(1)).sum()
            return loss, correct, positive
        return step

    (m1, o1), (m2, o2) = pair_of_models(make, lambda p: optim.SGD(p, lr=0.1))
    eager, compiled = step_of(m1, o1), rg.compile(step_of(m2, o2))
    batches = _classification_batches((10, 6), 3, count=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        for i in range(12):
            out1, out2 = eager(*batches[i % 4]), compiled(*batches[i % 4])
            assert [t.item() for t in out1] == [t.item() for t in out2], i
    assert_same_state(m1, m2)
    assert compiled.recordings == 2


def test_dropout_random_per_call_and_reproducible_under_seed():
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 1))
    x = rg.ones(4, 8)
    compiled = rg.compile(lambda x: model(x))
    with rg.no_grad():
        rg.manual_seed(3)
        eager_outs = [model(x).numpy().copy() for _ in range(6)]
        rg.manual_seed(3)
        outs = [compiled(x).numpy().copy() for _ in range(6)]
        assert compiled.recordings == 2          # calls 3-6 are replays
        for a, b in zip(outs, eager_outs):
            assert np.array_equal(a, b)          # the same draws, in the same order, as eager
        assert not np.array_equal(outs[4], outs[5])   # a new mask per replayed call
        model.eval()                             # eval mode: a new signature, no dropout
        e1, e2, e3 = (compiled(x).numpy().copy() for _ in range(3))
        assert compiled.recordings == 4
        assert np.array_equal(e1, e3) and np.array_equal(e3, model(x).numpy())


def test_learning_rate_changes_between_steps_are_seen():
    (m1, o1), (m2, o2) = pair_of_models(lambda: nn.Linear(3, 2), lambda p: optim.SGD(p, lr=0.1))
    s1, s2 = (optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5) for o in (o1, o2))
    loss_of = lambda m, x, y: F.cross_entropy(m(x), y)  # noqa: E731
    eager, compiled = train_step(m1, o1, loss_of), rg.compile(train_step(m2, o2, loss_of))
    batch = _classification_batches((4, 3), 2, 1)[0]
    for _ in range(10):
        eager(*batch), compiled(*batch)
        s1.step(), s2.step()
    assert_same_state(m1, m2)


@pytest.mark.parametrize("clipping", [False, True])
def test_fit_compile_matches_eager(clipping):
    g = np.random.default_rng(0)
    x = g.standard_normal((70, 5)).astype(np.float32)
    y = (x.sum(1) > 0).astype(np.int64)
    histories, models, norms = [], [], []
    for compile_step in (False, True):
        rg.manual_seed(0)
        m = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 2))
        clip = rg.train.GradientClipping(max_norm=0.3, clip_value=0.2)
        with warnings.catch_warnings():
            warnings.simplefilter("error")     # neither a CompileWarning nor "training eagerly"
            h = rg.train.fit(m, nn.CrossEntropyLoss(), optim.Adam(m.parameters(), lr=1e-2), (x, y),
                             epochs=3, batch_size=16, val_data=(x, y), progress=False,
                             seed=1, compile=compile_step, callbacks=[clip] if clipping else [])
        histories.append(h.history if hasattr(h, "history") else h)
        models.append(m)
        norms.append(clip.last_norm)
    assert_same_state(*models)
    assert histories[0]["loss"] == histories[1]["loss"]
    assert norms[0] == norms[1] and (norms[0] is not None) == clipping


def test_fit_compile_with_another_after_backward_callback_trains_eagerly():
    m = nn.Linear(3, 2)
    seen = []
    grab = rg.train.LambdaCallback(on_after_backward=lambda: seen.append(m.weight.grad.numpy()))
    x, y = np.ones((8, 3), np.float32), np.zeros(8, np.int64)
    with pytest.warns(UserWarning, match="training eagerly"):
        rg.train.fit(m, nn.CrossEntropyLoss(), optim.SGD(m.parameters(), lr=0.1), (x, y),
                     batch_size=4, progress=False, callbacks=[grab], compile=True)
    assert len(seen) == 2


@pytest.mark.parametrize("clip", ["norm", "value", "norm_then_value"])
def test_gradient_clipping_is_replayed_with_each_steps_gradients(clip):
    """Whether clipping changes the gradients depends on their values: the replay must decide
    again each call. Targets far off the model's outputs on some calls (clipping acts) and close
    on others (it does not), starting with a recording where it does not."""
    (m1, o1), (m2, o2) = pair_of_models(lambda: nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)),
                               lambda p: optim.SGD(p, lr=0.1))

    def make(m, o):
        def step(x, y):
            o.zero_grad()
            loss = F.mse_loss(m(x), y)
            loss.backward()
            norm = None
            if clip in ("norm", "norm_then_value"):
                norm = nn.utils.clip_grad_norm_(m.parameters(), max_norm=0.5)
            if clip in ("value", "norm_then_value"):
                nn.utils.clip_grad_value_(m.parameters(), clip_value=0.05)
            o.step()
            return loss, norm
        return step

    eager, compiled = make(m1, o1), rg.compile(make(m2, o2))
    x = rg.tensor(np.random.default_rng(0).standard_normal((6, 4), dtype=np.float32))
    with rg.no_grad():
        close = m1(x).numpy()
    clipped = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        for i in range(12):
            y = rg.tensor(close + (0.001 if i < 3 or i % 3 == 0 else 10.0))
            (l1, n1), (l2, n2) = eager(x, y), compiled(x, y)
            assert l1.item() == l2.item(), i
            if n1 is not None:
                assert n1.item() == n2.item(), i
                clipped += n1.item() > 0.5
    assert compiled.recordings == 2
    assert_same_state(m1, m2)
    if clip != "value":
        assert 0 < clipped < 9        # both kinds of call were replayed


def test_gradient_norm_from_grad_tensors_is_not_frozen():
    """get_total_norm of the .grad tensors (made anew each step) then clip_grads_with_norm_: not
    replayable by reference, so the step must run eagerly with a warning, not reuse a norm."""
    (m, o), _ = pair_of_models(lambda: nn.Linear(3, 1), lambda p: optim.SGD(p, lr=0.1))

    @rg.compile
    def step(x, y):
        o.zero_grad()
        F.mse_loss(m(x), y).backward()
        total = nn.utils.get_total_norm([p.grad for p in m.parameters()])
        nn.utils.clip_grads_with_norm_(m.parameters(), 1.0, total)
        o.step()

    x, y = rg.ones(4, 3), rg.zeros(4, 1)
    with pytest.warns(CompileWarning, match="running eagerly"):
        for _ in range(4):
            step(x, y)


def test_batchnorm_running_statistics_are_replayed():
    make = lambda: nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(),  # noqa: E731
                                 nn.Flatten(), nn.Linear(12, 2))
    (m1, o1), (m2, o2) = pair_of_models(make, lambda p: optim.SGD(p, lr=0.1, momentum=0.9))
    loss_of = lambda m, x, y: F.cross_entropy(m(x), y)  # noqa: E731
    batches = _classification_batches((5, 2, 4, 4), 2)
    eager, compiled = train_step(m1, o1, loss_of), rg.compile(train_step(m2, o2, loss_of))
    evaluate = rg.compile(lambda x: m2(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        for i in range(12):
            eager(*batches[i % 3]), compiled(*batches[i % 3])
            m1.eval(), m2.eval()
            with rg.no_grad():     # eval replays must read the running statistics as they move
                assert np.array_equal(m1(batches[0][0]).numpy(), evaluate(batches[0][0]).numpy())
            m1.train(), m2.train()
    assert_same_state(m1, m2)           # running_mean, running_var, num_batches_tracked included
    assert int(m2[1].num_batches_tracked) == 12

    m2[1].momentum = None          # cumulative average: a Python number from a tensor
    compiled = rg.compile(train_step(m2, o2, loss_of))
    with pytest.warns(CompileWarning, match="_cumulative_momentum"):
        compiled(*batches[0])


def test_freezing_a_layer_or_adding_a_hook_records_again():
    make = lambda: nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))  # noqa: E731
    (m1, o1), (m2, o2) = pair_of_models(make, lambda p: optim.SGD(p, lr=0.1, momentum=0.5))
    loss_of = lambda m, x, y: F.cross_entropy(m(x), y)  # noqa: E731
    eager, compiled = train_step(m1, o1, loss_of), rg.compile(train_step(m2, o2, loss_of))
    batch = _classification_batches((6, 3), 2, 1)[0]
    for i in range(12):
        if i == 4:                       # freeze the first layer
            for m in (m1, m2):
                m[0].requires_grad_(False)
        if i == 8:                       # a forward hook that changes the output
            for m in (m1, m2):
                m[2].register_forward_hook(lambda mod, inputs, out: out * 2.0)
        assert eager(*batch).item() == compiled(*batch).item()
    assert_same_state(m1, m2)
    assert compiled.recordings == 6


def test_module_attributes_read_as_constants_are_guarded():
    """A plain attribute a module's forward reads (a temperature, Dropout's p) is a constant of
    the recording: changing it records again, and a value changed every call stops recording
    (one warning) rather than filling memory."""
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.temperature = nn.Linear(3, 2), 1.0

        def forward(self, x):
            return self.lin(x) / self.temperature

    m = Scaled()

    @rg.compile(cache_size=4)
    def infer(x):
        with rg.no_grad():
            return m(x)

    x = rg.ones(2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        for temperature in (1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 1.0):
            m.temperature = temperature
            assert np.array_equal(infer(x).numpy(), m(x).detach().numpy()), temperature
    assert infer.recordings == 4            # two per state, then replays, back to the first
    with pytest.warns(CompileWarning, match=r"Scaled\.temperature changed"):
        for temperature in np.linspace(3.0, 4.0, 6):
            m.temperature = float(temperature)
            assert np.array_equal(infer(x).numpy(), m(x).detach().numpy()), temperature
    del m.temperature           # a guard's attribute gone: no match, and eager's own error
    with pytest.warns(CompileWarning), pytest.raises(AttributeError, match="temperature"):
        infer(x)


def test_replacing_a_layer_or_a_parameter_records_again():
    """Fine-tuning: a new head, or a parameter rebound to another tensor, after compiling. The
    replay must use the new objects, not the recorded ones."""
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))

    @rg.compile
    def infer(x):
        with rg.no_grad():
            return model(x)

    x = rg.ones(2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        for change in (None, "head", "parameter"):
            if change == "head":
                model[2] = nn.Linear(4, 2)
            elif change == "parameter":
                model[0].weight = nn.Parameter(rg.randn(4, 3))
            for _ in range(3):
                assert np.array_equal(infer(x).numpy(), model(x).detach().numpy()), change
    assert infer.recordings == 6


KL_WEIGHT = 0.0     # a global the step below reads, annealed between calls


def test_plain_globals_and_closure_values_the_step_reads_are_guarded():
    """KL annealing with a global weight, a scale from an enclosing scope: each is a constant of
    the recording, so a change records again instead of replaying the old value."""
    global KL_WEIGHT
    lin = nn.Linear(3, 2)
    scale = 1.0

    @rg.compile
    def loss(x):
        with rg.no_grad():
            out = lin(x)
            return (out * scale).sum() + KL_WEIGHT * (out ** 2).sum()

    x = rg.ones(2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        for KL_WEIGHT, scale in [(0.0, 1.0)] * 3 + [(0.5, 1.0)] * 3 + [(0.5, 3.0)] * 3:
            out = lin(x).detach()
            assert loss(x).item() == ((out * scale).sum() + KL_WEIGHT * (out ** 2).sum()).item()
    assert loss.recordings == 6
    KL_WEIGHT = 0.0


STEPS_TAKEN = 0


def test_a_step_that_assigns_a_global_runs_eagerly():
    lin = nn.Linear(3, 2)

    @rg.compile
    def step(x):
        global STEPS_TAKEN
        STEPS_TAKEN += 1
        with rg.no_grad():
            return lin(x).sum()

    with pytest.warns(CompileWarning, match="assigns the global STEPS_TAKEN"):
        for _ in range(4):
            step(rg.ones(1, 3))
    assert STEPS_TAKEN == 4


def test_a_number_argument_that_changes_every_call_stops_recording_with_a_warning():
    """A Python number keys the recording: changed every call, no recording is ever replayed.
    After cache_size such signatures, new ones run eagerly with one warning; passed as a 0-d
    tensor instead, the number is an input of one replayed recording."""
    lin = nn.Linear(3, 2)

    def scaled(x, beta):
        with rg.no_grad():
            return lin(x).sum() * beta

    x = rg.ones(2, 3)
    by_number = rg.compile(scaled, cache_size=3)
    with pytest.warns(CompileWarning, match="recorded and dropped before any replay"):
        for i in range(10):
            assert by_number(x, 0.1 * i).item() == scaled(x, 0.1 * i).item()
    assert by_number.recordings <= 7        # not one per call
    by_tensor = rg.compile(scaled)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        for i in range(10):
            beta = rg.tensor(0.1 * i)
            assert by_tensor(x, beta).item() == scaled(x, beta).item()
    assert by_tensor.recordings == 2


def test_inference_step_compiles_under_no_grad_only():
    model = nn.Sequential(nn.Linear(4, 3), nn.GELU(), nn.LayerNorm(3))
    x = rg.tensor(np.random.default_rng(0).standard_normal((2, 4), dtype=np.float32))
    forward = rg.compile(lambda x: model(x))
    with rg.no_grad():
        outs = [forward(x).numpy().copy() for _ in range(4)]
    assert forward.recordings == 2
    assert all(np.array_equal(o, model(x).detach().numpy()) for o in outs)
    with pytest.warns(CompileWarning, match="graph is still alive"):
        y = forward(x)                   # grad mode: the caller may backward through it
    y.sum().backward()                   # ... and can: it ran eagerly
    assert model[0].weight.grad is not None


def test_custom_function_and_method_decorator():
    class Cube(rg.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * 3 * x ** 2

    class Trainer:
        def __init__(self):
            self.w = rg.tensor([0.5, -1.0, 2.0], requires_grad=True)
            self.opt = optim.SGD([self.w], lr=0.01)

        @rg.compile
        def step(self, x):
            self.opt.zero_grad()
            loss = Cube.apply(self.w * x).sum()
            loss.backward()
            self.opt.step()
            return loss

    t, x = Trainer(), rg.tensor([1.0, 2.0, 0.5])
    w, (dw,) = rg.tensor([0.5, -1.0, 2.0], requires_grad=True), (None,)
    for _ in range(5):
        loss = t.step(x)
        expected = Cube.apply(w * x).sum()
        (dw,) = rg.grad(expected, w)
        with rg.no_grad():
            w -= 0.01 * dw
        assert loss.item() == expected.item()
    assert np.array_equal(t.w.data, w.data) and Trainer.step.recordings == 2


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_anomaly_mode_runs_the_step_eagerly():
    w = rg.tensor([1.0, 2.0], requires_grad=True)

    @rg.compile
    def step(x):
        w.grad = None
        loss = (w * x).log().sum()
        loss.backward()
        return loss

    for _ in range(3):
        step(rg.tensor([1.0, 1.0]))
    with rg.autograd.detect_anomaly():          # a replay would skip its per-op checks
        with pytest.raises(RuntimeError):
            step(rg.tensor([-1.0, 1.0]))        # log of a negative number: NaN, caught


def test_compile_warnings_point_at_the_callers_line():
    x = rg.tensor(np.ones((2, 2), np.float32), requires_grad=True)

    def step(t):
        return t * 2 if t.sum().item() > 0 else t      # .item(): cannot be recorded

    compiled = rg.compile(step)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled(x)
    (w,) = [w for w in caught if issubclass(w.category, CompileWarning)]
    assert w.filename == __file__
