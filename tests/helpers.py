"""Shared pieces of the op tests: a table row (`Case`), input domains, comparison with PyTorch."""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pytest

# -- input domains: each draws a float64 array of a given shape from a NumPy generator -------------


def real(rng, shape):
    return rng.standard_normal(shape)


def positive(rng, shape):
    return rng.uniform(0.5, 2.0, shape)


def uniform(lo, hi):
    return lambda rng, shape: rng.uniform(lo, hi, shape)


def scaled(k):
    return lambda rng, shape: k * rng.standard_normal(shape)


def away_from(*kinks, gap=0.1):
    """Normal draws kept at least `gap` from every kink (where the derivative jumps)."""
    def draw(rng, shape):
        x = rng.standard_normal(shape)
        for k in kinks:
            near = np.abs(x - k) < gap
            x = np.where(near, k + np.where(x >= k, gap, -gap) + (x - k), x)
        return x
    return draw


def distinct(rng, shape):
    """Values at least 0.2 apart in random order: no ties for max/min, even in float32."""
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n / 2) * 0.25 + rng.uniform(0, 0.05, n)).reshape(shape)


def integers(lo, hi):
    """Small whole numbers as floats: ties on purpose, for comparisons."""
    return lambda rng, shape: rng.integers(lo, hi, shape).astype(np.float64)


# -- the table entry -------------------------------------------------------------------------------

@dataclass
class Case:
    """One row of the op table.

    `fn` takes retrograd tensors; `torch_fn` the same op on torch tensors (defaults to `fn` when the
    method names agree). `inputs` has one entry per tensor input: a shape drawn from `domain` (one
    domain for all inputs, or a tuple with one per input), or an explicit array. `gradcheck=False`
    for outputs with no gradient (comparisons, argmax) and for inputs placed on a kink or tie on
    purpose, where finite differences mean nothing and only PyTorch's convention is checked.
    """

    name: str
    fn: Callable
    inputs: tuple
    torch_fn: Callable | None = None
    domain: Any = real
    gradcheck: bool = True

    def arrays(self) -> list[np.ndarray]:
        """The inputs in float64, the same on every run (seeded by the case's name)."""
        rng = np.random.default_rng(zlib.crc32(self.name.encode()))
        domains = self.domain
        if not isinstance(domains, tuple):
            domains = (domains,) * len(self.inputs)
        return [np.array(spec, dtype=np.float64) if isinstance(spec, np.ndarray)
                else draw(rng, spec) for spec, draw in zip(self.inputs, domains)]


def case(name, fn, *inputs, torch_fn=None, domain=real, gradcheck=True, xfail=None):
    """A table row; `xfail` gives the reason for a known difference (strict: fixing it fails)."""
    marks = pytest.mark.xfail(reason=xfail, strict=True) if xfail else ()
    return pytest.param(Case(name, fn, inputs, torch_fn, domain, gradcheck), id=name, marks=marks)


# -- comparing with PyTorch ------------------------------------------------------------------------

def as_list(out) -> list:
    """A single output or a tuple of outputs (max with dim, split) as a list."""
    return list(out) if isinstance(out, (tuple, list)) else [out]


def torch_dtype_name(t) -> str:
    return str(t.dtype).removeprefix("torch.")


def assert_close(actual: np.ndarray, expected: np.ndarray, what: str,
                 rtol: float = 1e-5, atol: float = 1e-4) -> None:
    """float32 agreement: rtol per element, atol relative to the magnitude of the reference."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if expected.dtype.kind != "f":
        np.testing.assert_array_equal(actual, expected, err_msg=what)
        return
    finite = np.abs(expected[np.isfinite(expected)])
    scale = max(1.0, float(finite.max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale, equal_nan=False,
                               err_msg=what)


# -- crashes injected into an atomic write ---------------------------------------------------------

ATOMIC_WRITE_STAGES = ("mkstemp", "write", "fsync", "chmod", "replace", "fsync_dir")


def op_table_tests(cases: list, gradcheck_only: list = ()) -> tuple:
    """The tests of an op table, for a test module to bind at top level:

        test_names, test_gradcheck_float64, test_matches_torch = op_table_tests(CASES)

    `gradcheck_only` rows are checked by finite differences alone (where PyTorch itself cannot
    compute the gradient to compare with)."""
    checked = [c for c in [*cases, *gradcheck_only] if c.values[0].gradcheck]

    def test_case_names_are_unique():
        names = [c.id for c in [*cases, *gradcheck_only]]
        assert len(names) == len(set(names))

    @pytest.mark.parametrize("c", checked)
    def test_gradcheck_float64(c):
        check_gradcheck(c)

    @pytest.mark.parametrize("c", cases)
    def test_matches_torch(c):
        check_matches_torch(c)

    return test_case_names_are_unique, test_gradcheck_float64, test_matches_torch

def check_gradcheck(c: Case) -> None:
    """A table row's op against float64 finite differences (`rg.gradcheck`)."""
    import retrograd as rg
    inputs = [rg.tensor(a, dtype=rg.float64, requires_grad=True) for a in c.arrays()]
    assert rg.gradcheck(c.fn, inputs)


def check_matches_torch(c: Case) -> None:
    """A table row's outputs (values, dtypes, graph membership) and input gradients against
    PyTorch's, in float32, for the same inputs and a random output gradient."""
    import torch

    import retrograd as rg
    arrays = [a.astype(np.float32) for a in c.arrays()]
    xs = [rg.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    outs, touts = as_list(c.fn(*xs)), as_list((c.torch_fn or c.fn)(*ts))

    assert len(outs) == len(touts)
    for i, (o, t) in enumerate(zip(outs, touts)):
        assert isinstance(o, rg.Tensor), f"output {i} is a {type(o).__name__}"
        assert rg.dtypes.name(o.dtype) == torch_dtype_name(t), f"output {i} dtype"
        assert_close(o.data, t.detach().numpy(), f"output {i}")
        # float results join the graph; bool and integer ones (comparisons, indices) never do
        assert o.requires_grad == t.requires_grad, f"output {i} requires_grad"
        assert (o.grad_fn is None) == (t.grad_fn is None), f"output {i} grad_fn"

    pairs = [(o, t) for o, t in zip(outs, touts) if t.requires_grad]
    if not pairs:
        return
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(o.shape).astype(np.float32) for o, _ in pairs]
    if len(pairs) == 1:
        pairs[0][0].backward(grads[0])
        pairs[0][1].backward(torch.from_numpy(grads[0]))
    else:   # several outputs (split, chunk): backpropagate sum_i <g_i, out_i>
        sum((o * g).sum() for (o, _), g in zip(pairs, grads)).backward()
        torch.autograd.backward([t for _, t in pairs], [torch.from_numpy(g) for g in grads])
    for i, (x, t) in enumerate(zip(xs, ts)):
        if t.grad is None:
            assert x.grad is None, f"input {i} got a gradient; PyTorch gives none"
            continue
        assert x.grad is not None, f"input {i} got no gradient"
        assert x.grad.shape == x.shape and x.grad.dtype == x.dtype, f"input {i} gradient"
        assert_close(x.grad.data, t.grad.numpy(), f"gradient of input {i}")


def crash_atomic_write_at(monkeypatch, stage: str) -> None:
    """Make the next atomic write fail at `stage` with OSError("simulated crash at <stage>"); at
    "write" part of the bytes reach the temporary file first, as when a disk fills up."""
    import os
    import sys

    def crash(*args, **kwargs):
        raise OSError(f"simulated crash at {stage}")

    atomic = sys.modules["retrograd.io.atomic"]
    if stage == "mkstemp":
        monkeypatch.setattr(atomic.tempfile, "mkstemp", crash)
    elif stage == "write":
        real_fdopen = os.fdopen

        class PartialFile:
            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            def write(self, data):
                self.f.write(data[:len(data) // 3])
                crash()

        monkeypatch.setattr(os, "fdopen", lambda *a, **k: PartialFile(real_fdopen(*a, **k)))
    elif stage == "fsync_dir":
        monkeypatch.setattr(atomic, "_fsync_directory", crash)
    else:
        monkeypatch.setattr(os, stage, crash)


# -- compiled steps --------------------------------------------------------------------------------

def pair_of_models(make_model, make_opt, seed=0):
    """Two identical (model, optimizer) pairs."""
    import retrograd as rg
    out = []
    for _ in range(2):
        rg.manual_seed(seed)
        m = make_model()
        out.append((m, make_opt(m.parameters())))
    return out


def train_step(model, opt, loss_of):
    def step(*batch):
        opt.zero_grad()
        loss = loss_of(model, *batch)
        loss.backward()
        opt.step()
        return loss
    return step


def assert_same_state(m1, m2):
    for (name, p), q in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert np.array_equal(np.asarray(p), np.asarray(q)), name


def assert_compiled_matches_eager(make_model, make_opt, loss_of, batches, steps=50):
    """Eager and rg.compile'd training from the same weights give the same losses and parameters,
    bit for bit, with no fallback to eager; dropout draws the same masks for both (each step is
    run under the same seed). Batches are used in turn; the compiled step is returned."""
    import warnings

    import retrograd as rg
    from retrograd.compile import CompileWarning
    (m1, o1), (m2, o2) = pair_of_models(make_model, make_opt)
    eager = train_step(m1, o1, loss_of)
    compiled = rg.compile(train_step(m2, o2, loss_of))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)     # no fallback allowed here
        for i in range(steps):
            batch = batches[i % len(batches)]
            rg.manual_seed(100 + i)
            l1 = eager(*batch)
            rg.manual_seed(100 + i)
            l2 = compiled(*batch)
            assert l1.item() == l2.item(), i
    assert_same_state(m1, m2)
    assert compiled.recordings == 2 and len(compiled.sources) == 1   # the rest were replays
    return compiled
