"""Ordering, scans and triangles (retrograd/ops/order.py): sort, argsort, topk, flip, roll, cumsum,
cumprod, tril, triu. The op table is checked by finite differences and against PyTorch; then
dtypes, errors, and a compiled training step against eager steps."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from helpers import assert_compiled_matches_eager, case, distinct, op_table_tests

import retrograd as rg
from retrograd import nn, optim
from retrograd.compile import CompileWarning

TIES = np.array([[1.0, 3.0, 3.0, -1.0], [2.0, 2.0, -1.0, 2.0]])
# zeros at the start, in the middle, twice in a row and at the end of a line, for cumprod
ZEROS = np.array([[0.5, 0.0, 2.0, 1.5, -0.8],
                  [0.0, 0.0, 3.0, -1.0, 1.1],
                  [1.2, -0.7, 0.9, 1.3, 0.0]])
ZEROS_3D = np.array([[[1.5, 0.0, 2.0], [0.0, -1.2, 0.8]],
                     [[0.7, 1.1, -0.9], [2.0, 0.0, 0.0]]])

CASES = [
    # -- sort / argsort / topk: distinct values, so indices can be compared with PyTorch's
    case("sort", lambda x: x.sort(), (3, 5), domain=distinct),
    case("sort_dim0_descending", lambda x: rg.sort(x, dim=0, descending=True), (4, 3),
         domain=distinct, torch_fn=lambda x: torch.sort(x, dim=0, descending=True)),
    case("sort_negative_dim_3d", lambda x: x.sort(dim=-2), (2, 4, 3), domain=distinct),
    case("sort_descending_3d", lambda x: x.sort(1, True), (2, 3, 4), domain=distinct),
    case("sort_stable", lambda x: rg.sort(x, stable=True), (3, 4), domain=distinct,
         torch_fn=lambda x: torch.sort(x, stable=True)),
    case("sort_1d", lambda x: x.sort(descending=True), (6,), domain=distinct),
    case("sort_0d", lambda x: x.sort(), ()),
    case("sort_values_only", lambda x: x.sort(dim=0).values * 2.0, (3, 4), domain=distinct),
    # ties: with stable=True the order of ties is defined, ours and PyTorch's are the same
    case("sort_ties_stable", lambda x: x.sort(stable=True), TIES, gradcheck=False),
    case("sort_ties_stable_descending", lambda x: x.sort(descending=True, stable=True), TIES,
         gradcheck=False),
    case("argsort", lambda x: x.argsort(), (3, 5), domain=distinct, gradcheck=False),
    case("argsort_dim0_descending", lambda x: rg.argsort(x, dim=0, descending=True), (4, 3),
         domain=distinct, gradcheck=False,
         torch_fn=lambda x: torch.argsort(x, dim=0, descending=True)),
    case("argsort_ties_stable", lambda x: x.argsort(dim=1, descending=True, stable=True), TIES,
         gradcheck=False),
    case("topk", lambda x: x.topk(2), (3, 5), domain=distinct),
    case("topk_smallest_dim0", lambda x: rg.topk(x, 3, dim=0, largest=False), (4, 3),
         domain=distinct, torch_fn=lambda x: torch.topk(x, 3, dim=0, largest=False)),
    case("topk_negative_dim_3d", lambda x: x.topk(1, dim=-2), (2, 4, 3), domain=distinct),
    case("topk_all", lambda x: x.topk(5, largest=False), (2, 5), domain=distinct),
    case("topk_k0", lambda x: x.topk(0), (2, 5), domain=distinct, gradcheck=False),
    # sorted=False leaves the order open: compare the values after sorting them
    case("topk_unsorted", lambda x: x.topk(3, sorted=False).values.sort().values, (3, 6),
         domain=distinct),
    case("topk_0d", lambda x: x.topk(1), ()),

    # -- flip / roll -------------------------------------------------------------------------------
    case("flip_both", lambda x: rg.flip(x, (0, 1)), (3, 4),
         torch_fn=lambda x: torch.flip(x, (0, 1))),
    case("flip_last_method", lambda x: x.flip(-1), (3, 4)),
    case("flip_two_of_three", lambda x: x.flip(0, 2), (2, 3, 4)),
    case("flip_dims_keyword", lambda x: x.flip(dims=[-1, -3]), (2, 3, 4)),
    case("flip_0d", lambda x: x.flip(0), ()),
    case("roll_flat", lambda x: rg.roll(x, 5), (3, 4), torch_fn=lambda x: torch.roll(x, 5)),
    case("roll_flat_3d_negative", lambda x: x.roll(-7), (2, 3, 4)),
    case("roll_two_dims", lambda x: rg.roll(x, (1, -2), (0, 1)), (3, 4),
         torch_fn=lambda x: torch.roll(x, (1, -2), (0, 1))),
    case("roll_negative_dim", lambda x: x.roll(2, -1), (2, 3, 4)),
    case("roll_same_dim_twice", lambda x: x.roll((2, 1), (1, 1)), (2, 4)),
    case("roll_larger_than_dim", lambda x: x.roll(7, 0), (3, 2)),
    case("roll_0d", lambda x: x.roll(3), ()),

    # -- cumsum / cumprod --------------------------------------------------------------------------
    case("cumsum_dim0", lambda x: x.cumsum(0), (3, 4)),
    case("cumsum_dim1", lambda x: rg.cumsum(x, 1), (3, 4), torch_fn=lambda x: torch.cumsum(x, 1)),
    case("cumsum_3d_each_dim", lambda x: (x.cumsum(0), x.cumsum(1), x.cumsum(-1)), (2, 3, 4)),
    case("cumsum_0d", lambda x: x.cumsum(0), ()),
    case("cumprod_dim0", lambda x: x.cumprod(0), (3, 4)),
    case("cumprod_dim1", lambda x: rg.cumprod(x, 1), (3, 4),
         torch_fn=lambda x: torch.cumprod(x, 1)),
    case("cumprod_zeros_dim1", lambda x: x.cumprod(1), ZEROS),
    case("cumprod_zeros_dim0", lambda x: x.cumprod(0), ZEROS),
    case("cumprod_zeros_negative_dim", lambda x: x.cumprod(-1), ZEROS),
    case("cumprod_zeros_3d_each_dim", lambda x: (x.cumprod(0), x.cumprod(1), x.cumprod(2)),
         ZEROS_3D),
    case("cumprod_all_zero", lambda x: x.cumprod(0), np.zeros((3, 2))),
    case("cumprod_0d", lambda x: x.cumprod(0), ()),

    # -- tril / triu -------------------------------------------------------------------------------
    case("tril", lambda x: x.tril(), (4, 4)),
    case("tril_positive", lambda x: rg.tril(x, 1), (3, 5), torch_fn=lambda x: torch.tril(x, 1)),
    case("tril_negative", lambda x: x.tril(-1), (5, 3)),
    case("triu", lambda x: rg.triu(x), (4, 4), torch_fn=lambda x: torch.triu(x)),
    case("triu_positive", lambda x: x.triu(2), (3, 5)),
    case("triu_negative", lambda x: x.triu(diagonal=-2), (5, 3)),
    case("tril_batched", lambda x: x.tril(-1), (2, 3, 4)),
    case("triu_batched", lambda x: x.triu(1), (2, 4, 3)),
    case("triu_beyond", lambda x: x.triu(9), (3, 4)),
    case("tril_4d", lambda x: x.tril(1), (2, 2, 3, 3)),
]


test_case_names_are_unique, test_gradcheck_float64, test_matches_torch = op_table_tests(CASES)


# -- results, dtypes -------------------------------------------------------------------------------

def test_sort_and_topk_return_values_and_indices():
    x = rg.tensor([[3.0, 1.0, 2.0], [0.5, 5.0, 4.0]], requires_grad=True)
    s = x.sort(dim=1)
    values, indices = s
    assert s.values is values and s.indices is indices
    np.testing.assert_array_equal(indices.data, [[1, 2, 0], [0, 2, 1]])
    assert indices.dtype == np.int64 and not indices.requires_grad and indices.grad_fn is None
    t = rg.topk(x, 1, dim=1)
    np.testing.assert_array_equal(t.values.data, [[3.0], [5.0]])
    np.testing.assert_array_equal(t.indices.data, [[0], [1]])
    t.values.sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def test_sort_nan_is_largest_like_torch():
    a = np.array([[1.0, np.nan, 0.0, -2.0]], dtype=np.float32)
    for descending in (False, True):
        ours, theirs = rg.sort(rg.tensor(a), descending=descending), torch.sort(
            torch.tensor(a), descending=descending)
        np.testing.assert_array_equal(ours.values.data, theirs.values.numpy())
        np.testing.assert_array_equal(ours.indices.data, theirs.indices.numpy())
    top = rg.topk(rg.tensor(a), 2)
    np.testing.assert_array_equal(top.indices.data, torch.topk(torch.tensor(a), 2).indices.numpy())


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.bool_])
def test_scans_and_sort_of_integers_match_torch_dtypes(dtype):
    a = np.array([[3, 0, 2], [1, 1, 0]]).astype(dtype)
    x, t = rg.tensor(a), torch.from_numpy(a)
    for ours, theirs in [(x.cumsum(1), t.cumsum(1)), (x.cumprod(0), t.cumprod(0)),
                         (x.sort(dim=1, stable=True).values, t.sort(dim=1, stable=True).values),
                         (x.sort(dim=1, stable=True).indices, t.sort(dim=1, stable=True).indices),
                         (x.flip(0), t.flip(0)), (x.roll(1), t.roll(1)), (x.tril(), t.tril())]:
        assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch.")
        np.testing.assert_array_equal(ours.data, theirs.numpy())


def test_float32_stays_float32_in_gradients():
    x = rg.tensor(ZEROS.astype(np.float32), requires_grad=True)
    out = x.cumprod(1).sum() + x.cumsum(0).sum() + x.sort().values.sum() + x.triu().sum() \
        + x.flip(1).roll(1).sum() + x.topk(2).values.sum()
    assert out.dtype == np.float32
    out.backward()
    assert x.grad.dtype == np.float32


def test_flip_returns_a_copy():
    x = rg.tensor([1.0, 2.0, 3.0])
    y = x.flip(0)
    x.data[0] = 10.0
    np.testing.assert_array_equal(y.data, [3.0, 2.0, 1.0])


# -- errors ----------------------------------------------------------------------------------------

def test_errors_name_the_op_and_the_problem():
    x = rg.randn(3, 4)
    with pytest.raises(RuntimeError, match=r"topk: selected index k=5 out of range.*\(3, 4\)"):
        x.topk(5)
    with pytest.raises(RuntimeError, match=r"topk: selected index k=-1 out of range"):
        rg.topk(x, -1)
    with pytest.raises(RuntimeError, match=r"topk: selected index k=4 out of range.*dimension 0"):
        x.topk(4, dim=0)
    with pytest.raises(IndexError, match=r"sort: dimension 2 is out of range .* 2 dimensions"):
        x.sort(dim=2)
    with pytest.raises(IndexError, match=r"argsort: dimension -3 is out of range"):
        rg.argsort(x, dim=-3)
    with pytest.raises(IndexError, match=r"topk: dimension 5 is out of range"):
        x.topk(1, dim=5)
    with pytest.raises(RuntimeError, match=r"flip: dims \(0, -2\) name a dimension more than once"):
        rg.flip(x, (0, -2))
    with pytest.raises(IndexError, match=r"flip: dimension 3 is out of range"):
        x.flip(3)
    with pytest.raises(RuntimeError, match=r"roll: shifts \(1, 2\) and dims \(0,\) must have"):
        x.roll((1, 2), 0)
    with pytest.raises(RuntimeError, match=r"roll: without dims, shifts must be one number"):
        x.roll((1, 2))
    with pytest.raises(IndexError, match=r"roll: dimension 2 is out of range"):
        x.roll(1, 2)
    with pytest.raises(IndexError, match=r"roll: dims 0 given for a 0-d tensor"):
        rg.tensor(1.0).roll(1, 0)
    with pytest.raises(IndexError, match=r"cumsum: dimension 2 is out of range"):
        x.cumsum(2)
    with pytest.raises(IndexError, match=r"cumprod: dimension -3 is out of range"):
        rg.cumprod(x, -3)
    with pytest.raises(RuntimeError, match=r"tril: input tensor must have at least 2 dim.*\(4,\)"):
        rg.tril(rg.ones(4))
    with pytest.raises(RuntimeError, match=r"triu: input tensor must have at least 2 dim.*\(\)"):
        rg.tensor(1.0).triu()


# -- a compiled training step ----------------------------------------------------------------------

def _loss(model, x):
    h = model(x)                                               # (8, 6)
    top = h.topk(3, dim=1).values.cumsum(dim=1)                # indices change with the data
    ranked = h.sort(dim=0, descending=True).values[:2]
    tri = h.flip(0).roll(1, 0)[:6].tril(-1)
    return (top ** 2).mean() + ranked.mean() + (tri * tri).sum() * 0.1 \
        + h.tanh().cumprod(dim=1).mean()


def test_compiled_step_matches_eager_bit_for_bit():
    steps, rng = 10, np.random.default_rng(3)
    batches = [(rg.tensor(rng.standard_normal((8, 5), dtype=np.float32)),) for _ in range(steps)]
    assert_compiled_matches_eager(
        lambda: nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 6)),
        lambda p: optim.Adam(p, lr=0.05), _loss, batches, steps=steps)   # new data every call


def test_compiled_step_replays_the_indices():
    """The indices come out of an op, so a replay computes them from each call's input."""
    compiled = rg.compile(lambda x: x.argsort(dim=1) + x.topk(2).indices.sum(dim=1, keepdim=True))
    rng = np.random.default_rng(5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        for _ in range(5):
            a = rng.standard_normal((3, 4)).astype(np.float32)
            t = torch.from_numpy(a)
            expected = t.argsort(dim=1) + t.topk(2).indices.sum(dim=1, keepdim=True)
            np.testing.assert_array_equal(compiled(rg.tensor(a)).data, expected.numpy())
    assert compiled.recordings == 2

