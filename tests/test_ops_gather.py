"""Gathering and indexing ops (retrograd/ops/scatter_gather.py): gather, scatter, scatter_add,
index_select, take_along_dim, masked_fill, narrow, select, one_hot.

The op table is checked by float64 finite differences and against PyTorch (values, dtypes and
gradients in float32); index arrays and masks are constants captured in the rows' lambdas. Then
errors, and a compiled training step that gathers at new indices on every call.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from helpers import (
    assert_close,
    assert_compiled_matches_eager,
    case,
    distinct,
    op_table_tests,
)

import retrograd as rg
import retrograd.nn.functional as F
from retrograd import nn, optim
from retrograd.ops.scatter_gather import _add_at, _positions

T = torch.from_numpy   # constants (index arrays, masks) on the PyTorch side
R = rg.tensor

G_REPEAT = np.array([[0, 0, 2], [1, 0, 1]])              # (2, 3) into (2, 3) at dim 1: repeats
G_ROWS = np.array([[2, 0, 2], [0, 0, 1]])                # (2, 3) into (3, 4) at dim 0: smaller
G_LONG = np.array([[0, 1, 2, 2, 2], [1, 1, 1, 0, 0]])    # (2, 5) into (2, 3): longer along dim
G_3D = np.array([[[1, 0], [0, 0]], [[1, 1], [0, 1]]])    # (2, 2, 2) into (2, 3, 2) at dim -1
G_1D = np.array([3, 0, 3, 3, 1])
TA_NEG = np.array([[-1], [0], [-4]])                     # (3, 1): negative, broadcast over x's 1
TA_ROW = np.array([[3, 0]])                              # (1, 2): broadcast over x's rows
SEL = np.array([2, 0, 2])
S_UNIQUE = np.array([[2, 0, 1, 2], [0, 1, 0, 1]])         # (2, 4) into (3, 4) at dim 0, no repeats
S_COLS = np.array([[3, 1], [0, 2], [2, 3]])              # (3, 2) into (3, 4) at dim 1
S_DUP = np.array([[0, 0, 1], [2, 2, 2]])                 # (2, 3) at dim 1: repeats add up
ROW_MASK = np.array([[True], [False], [True]])
COL_MASK = np.array([False, True, True, False])
BIG_MASK = np.array([[True, False, False, True], [False, False, True, False]])


CASES = [
    # -- gather: index has input's rank; its shape is the output's -------------------------------
    case("gather_repeated", lambda x: rg.gather(x, 1, R(G_REPEAT)), (2, 3),
         torch_fn=lambda x: torch.gather(x, 1, T(G_REPEAT))),
    case("gather_method_dim0_smaller_index", lambda x: x.gather(0, R(G_ROWS)), (3, 4),
         torch_fn=lambda x: x.gather(0, T(G_ROWS))),
    case("gather_longer_along_dim", lambda x: x.gather(1, G_LONG), (2, 3),
         torch_fn=lambda x: x.gather(1, T(G_LONG))),
    case("gather_negative_dim", lambda x: x.gather(-1, R(G_3D)), (2, 3, 2),
         torch_fn=lambda x: x.gather(-1, T(G_3D))),
    case("gather_1d", lambda x: x.gather(0, R(G_1D)), (4,),
         torch_fn=lambda x: x.gather(0, T(G_1D))),
    case("gather_int32_index", lambda x: x.gather(1, R(G_REPEAT.astype(np.int32))), (2, 3),
         torch_fn=lambda x: x.gather(1, T(G_REPEAT.astype(np.int32)))),
    case("gather_0d", lambda x: x.gather(0, R(np.array(0))), (),
         torch_fn=lambda x: x.gather(0, torch.tensor(0))),
    case("gather_empty_index", lambda x: x.gather(1, R(np.zeros((2, 0), np.int64))), (2, 3),
         torch_fn=lambda x: x.gather(1, torch.zeros(2, 0, dtype=torch.long))),

    # -- take_along_dim: gather with broadcasting; negative indices count from the end -----------
    case("take_along_dim_broadcast_input", lambda x: rg.take_along_dim(x, R(TA_NEG), 1), (1, 4),
         torch_fn=lambda x: torch.take_along_dim(x, T(TA_NEG), 1)),
    case("take_along_dim_broadcast_indices", lambda x: x.take_along_dim(R(TA_ROW), dim=-1),
         (3, 4), torch_fn=lambda x: x.take_along_dim(T(TA_ROW), dim=-1)),
    case("take_along_dim_argmax", lambda x: x.take_along_dim(x.argmax(0, keepdim=True), 0),
         (3, 4), domain=distinct,
         torch_fn=lambda x: x.take_along_dim(x.argmax(0, keepdim=True), 0)),
    case("take_along_dim_none", lambda x: rg.take_along_dim(x, R(G_REPEAT)), (2, 3),
         torch_fn=lambda x: torch.take_along_dim(x, T(G_REPEAT))),

    # -- index_select: a vector of indices, repeats add up -----------------------------------------
    case("index_select_repeated", lambda x: rg.index_select(x, 0, R(SEL)), (3, 4),
         torch_fn=lambda x: torch.index_select(x, 0, T(SEL))),
    case("index_select_negative_dim", lambda x: x.index_select(-1, R(SEL)), (2, 3, 3),
         torch_fn=lambda x: x.index_select(-1, T(SEL))),
    case("index_select_middle_dim", lambda x: x.index_select(1, SEL), (2, 4, 2),
         torch_fn=lambda x: x.index_select(1, T(SEL))),
    case("index_select_0d_index", lambda x: x.index_select(1, R(np.array(1))), (2, 3),
         torch_fn=lambda x: x.index_select(1, torch.tensor(1))),

    # -- scatter and scatter_add: both inputs get gradients ---------------------------------------
    case("scatter_src_dim0", lambda x, s: rg.scatter(x, 0, R(S_UNIQUE), s), (3, 4), (2, 4),
         torch_fn=lambda x, s: torch.scatter(x, 0, T(S_UNIQUE), s)),
    case("scatter_negative_dim", lambda x, s: x.scatter(-1, R(S_COLS), src=s), (3, 4), (3, 2),
         torch_fn=lambda x, s: x.scatter(-1, T(S_COLS), src=s)),
    case("scatter_value", lambda x: rg.scatter(x, 1, R(S_DUP), value=2.5), (3, 4),
         torch_fn=lambda x: torch.scatter(x, 1, T(S_DUP), value=2.5)),
    case("scatter_value_method", lambda x: x.scatter(0, R(S_UNIQUE), value=-1.0), (3, 4),
         torch_fn=lambda x: x.scatter(0, T(S_UNIQUE), value=-1.0)),
    case("scatter_add_duplicates", lambda x, s: rg.scatter_add(x, 1, R(S_DUP), s), (3, 4),
         (2, 3), torch_fn=lambda x, s: torch.scatter_add(x, 1, T(S_DUP), s)),
    case("scatter_add_1d", lambda x, s: x.scatter_add(0, R(G_1D), s), (4,), (5,),
         torch_fn=lambda x, s: x.scatter_add(0, T(G_1D), s)),

    # -- masked_fill: mask broadcast (either way); the value may be a 0-d tensor with a gradient --
    case("masked_fill_row_mask", lambda x: rg.masked_fill(x, R(ROW_MASK), 0.5), (3, 4),
         torch_fn=lambda x: torch.masked_fill(x, T(ROW_MASK), 0.5)),
    case("masked_fill_col_mask", lambda x: x.masked_fill(R(COL_MASK), -2.0), (3, 4),
         torch_fn=lambda x: x.masked_fill(T(COL_MASK), -2.0)),
    case("masked_fill_mask_broadcasts_input", lambda x: x.masked_fill(R(BIG_MASK), 1.0), (4,),
         torch_fn=lambda x: x.masked_fill(T(BIG_MASK), 1.0)),
    case("masked_fill_tensor_value", lambda x, v: x.masked_fill(R(BIG_MASK), v), (2, 4), (),
         torch_fn=lambda x, v: x.masked_fill(T(BIG_MASK), v)),
    case("masked_fill_neg_inf_softmax",
         lambda x: x.masked_fill(R(BIG_MASK), float("-inf")).softmax(-1), (2, 4),
         torch_fn=lambda x: x.masked_fill(T(BIG_MASK), float("-inf")).softmax(-1)),

    # -- narrow and select: views through basic indexing ------------------------------------------
    case("narrow", lambda x: rg.narrow(x, 1, 1, 2), (3, 4),
         torch_fn=lambda x: torch.narrow(x, 1, 1, 2)),
    case("narrow_negative", lambda x: x.narrow(-1, -3, 2), (2, 3, 4),
         torch_fn=lambda x: x.narrow(-1, -3, 2)),
    case("narrow_empty", lambda x: x.narrow(0, 3, 0), (3, 4),
         torch_fn=lambda x: x.narrow(0, 3, 0)),
    case("select", lambda x: rg.select(x, 0, 2), (3, 4),
         torch_fn=lambda x: torch.select(x, 0, 2)),
    case("select_negative", lambda x: x.select(-2, -1), (2, 3, 4),
         torch_fn=lambda x: x.select(-2, -1)),
]

# src larger than index: torch computes these but its backward fails ("ScatterAddBackward0
# returned an invalid gradient ... expected shape compatible with [3, 5]"), so only the values
# are compared with torch (test_scatter_with_larger_src_matches_torch_forward)
SRC_LARGER = [
    case("scatter_src_larger", lambda x, s: x.scatter(1, R(S_COLS), s), (3, 4), (4, 3),
         torch_fn=lambda x, s: x.scatter(1, T(S_COLS), s)),
    case("scatter_add_src_larger", lambda x, s: x.scatter_add(0, R(S_UNIQUE), s), (3, 4),
         (3, 5), torch_fn=lambda x, s: x.scatter_add(0, T(S_UNIQUE), s)),
]

test_case_names_are_unique, test_gradcheck_float64, test_matches_torch = op_table_tests(
    CASES, gradcheck_only=SRC_LARGER)


@pytest.mark.parametrize("c", SRC_LARGER)
def test_scatter_with_larger_src_matches_torch_forward(c):
    arrays = [a.astype(np.float32) for a in c.arrays()]
    ours = c.fn(*[rg.tensor(a) for a in arrays])
    theirs = c.torch_fn(*[torch.tensor(a) for a in arrays])
    assert_close(ours.data, theirs.numpy(), c.name)


# -- values and gradients in detail ----------------------------------------------------------------

def test_gather_gradient_adds_up_over_repeated_indices():
    x = rg.zeros(2, 3, requires_grad=True)
    x.gather(1, R([[0, 0, 0, 2], [1, 1, 1, 1]])).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[3, 0, 1], [0, 4, 0]])


@pytest.mark.parametrize("dtype", [rg.float32, rg.float64])
def test_gradients_keep_the_input_dtype(dtype):
    """Large enough for _add_at's bincount path (float64 sums), which must round back."""
    rng = np.random.default_rng(0)
    x = rg.tensor(rng.standard_normal((64, 128)), dtype=dtype, requires_grad=True)
    index = R(rng.integers(0, 128, (64, 128)))
    out = x.gather(1, index)
    out.backward(rg.ones(64, 128, dtype=dtype))
    assert out.dtype == dtype and x.grad.dtype == dtype
    counts = np.zeros((64, 128))
    np.add.at(counts, _positions(index.data, 1), 1.0)
    np.testing.assert_array_equal(x.grad.data, counts)


def test_add_at_paths_agree():
    """The bincount path (large) and np.add.at (small) sum the same values."""
    rng = np.random.default_rng(1)
    index = rng.integers(0, 50, (100, 80))
    values = rng.standard_normal((100, 80)).astype(np.float32)
    fast = _add_at(np.zeros((100, 50), np.float32), _positions(index, 1), values)
    slow = np.zeros((100, 50), np.float32)
    np.add.at(slow, _positions(index, 1), values)
    assert values.size >= 1 << 12 and fast.dtype == np.float32
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-5)


def test_scatter_add_matches_torch_on_large_duplicates():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((32, 10)).astype(np.float32)
    src = rng.standard_normal((32, 200)).astype(np.float32)
    index = rng.integers(0, 10, (32, 200))
    out = rg.scatter_add(R(x), 1, R(index), R(src))
    expected = torch.scatter_add(T(x), 1, T(index), T(src)).numpy()
    np.testing.assert_allclose(out.data, expected, rtol=1e-5, atol=1e-5)


def test_scatter_accepts_a_number_as_src_like_torch():
    out = rg.scatter(rg.zeros(2, 3), 1, R([[2], [0]]), 1.0)
    np.testing.assert_array_equal(out.data, [[0, 0, 1], [1, 0, 0]])


def test_masked_fill_keeps_dtype_and_gives_mask_no_gradient():
    x = rg.tensor([1, 2, 3])
    assert rg.masked_fill(x, R([True, False, True]), 2.5).tolist() == [2, 2, 2]
    y = rg.ones(3, requires_grad=True)
    mask = R([True, False, False])
    out = y.masked_fill(mask, rg.tensor(0.0))
    out.sum().backward()
    assert mask.grad is None and y.grad.tolist() == [0.0, 1.0, 1.0]


def test_narrow_and_select_are_views_of_their_input():
    x = rg.arange(12.0).reshape(3, 4)
    assert x.narrow(1, -2, 2).tolist() == [[2, 3], [6, 7], [10, 11]]
    assert x.select(-1, -1).tolist() == [3, 7, 11]
    assert rg.narrow(x, 0, 1, 1).data.base is not None


def test_functions_and_methods_are_reachable():
    for name in ("gather", "scatter", "scatter_add", "index_select", "take_along_dim",
                 "masked_fill", "narrow", "select"):
        assert callable(getattr(rg, name)) and callable(getattr(rg.Tensor, name))


@pytest.mark.parametrize("ids, num_classes", [([0, 2, 1, 2], -1), ([[0, 3], [1, 1]], 5),
                                              ([], 3), (4, -1)])
def test_one_hot_matches_torch(ids, num_classes):
    out = F.one_hot(R(np.array(ids, dtype=np.int64)), num_classes)
    expected = TF.one_hot(torch.tensor(ids, dtype=torch.long), num_classes)
    assert out.dtype == np.int64 and not out.requires_grad
    np.testing.assert_array_equal(out.data, expected.numpy())


# -- errors name the op and the offending shapes or values -----------------------------------------

ERRORS = [
    (lambda: rg.ones(2, 3).gather(1, R(np.zeros((2, 5, 1), np.int64))), ValueError,
     r"gather: index of shape \(2, 5, 1\) must have as many dimensions as input of shape \(2, 3\)"),
    (lambda: rg.ones(2, 3).gather(1, R(np.zeros((3, 2), np.int64))), ValueError,
     r"gather: index of shape \(3, 2\) is larger than input of shape \(2, 3\) outside dimension 1"),
    (lambda: rg.ones(2, 3).gather(1, R([[0, 3]])), IndexError,
     r"gather: index 3 is out of range for dimension 1 of size 3"),
    (lambda: rg.ones(2, 3).gather(1, R([[0, -1]])), IndexError,
     r"gather: index -1 is out of range for dimension 1 of size 3"),
    (lambda: rg.ones(2, 3).gather(1, R([[0.0, 1.0]])), TypeError,
     r"gather: index must be an integer tensor, got dtype float32"),
    (lambda: rg.ones(2, 3).gather(1, R([[True, False]])), TypeError,
     r"gather: index must be an integer tensor, got dtype bool"),
    (lambda: rg.ones(2, 3).gather(2, R([[0]])), IndexError,
     r"gather: dimension 2 is out of range for a tensor with 2 dimensions \(expected -2 to 1\)"),
    (lambda: rg.ones(2, 3).take_along_dim(R([0, 1]), 1), ValueError,
     r"take_along_dim: indices of shape \(2,\) must have as many dimensions as input of shape"),
    (lambda: rg.ones(2, 3).take_along_dim(R([[0], [1], [2]]), 1), ValueError,
     r"take_along_dim: input of shape \(2, 3\) and indices of shape \(3, 1\) do not broadcast"),
    (lambda: rg.ones(2, 3).take_along_dim(R([[-4]]), 1), IndexError,
     r"take_along_dim: index -4 is out of range for dimension 1 of size 3"),
    (lambda: rg.ones(2, 3).index_select(0, R([[0]])), ValueError,
     r"index_select: index must be a vector \(0-d or 1-d\), got shape \(1, 1\)"),
    (lambda: rg.ones(2, 3).index_select(1, R([0, 3])), IndexError,
     r"index_select: index 3 is out of range for dimension 1 of size 3"),
    (lambda: rg.ones(2, 3).scatter(1, R([[0, 1]]), rg.ones(1, 1)), ValueError,
     r"scatter: index of shape \(1, 2\) is larger than src of shape \(1, 1\)"),
    (lambda: rg.ones(2, 3).scatter(1, R([[0, 1]]), rg.ones(1, 2, dtype=rg.float64)), TypeError,
     r"scatter: src of dtype float64 must have input's dtype float32"),
    (lambda: rg.ones(2, 3).scatter(1, R([[0, 1]])), TypeError,
     r"scatter: pass exactly one of src \(a tensor\) and value \(a number\)"),
    (lambda: rg.ones(2, 3).scatter(0, R([[2, 0]]), value=1.0), IndexError,
     r"scatter: index 2 is out of range for dimension 0 of size 2"),
    (lambda: rg.scatter_add(rg.ones(2, 3), 1, R([[0], [1], [2]]), rg.ones(3, 1)), ValueError,
     r"scatter_add: index of shape \(3, 1\) is larger than input of shape \(2, 3\) outside"),
    (lambda: rg.ones(2, 3).masked_fill(R([1, 0, 1]), 0.0), TypeError,
     r"masked_fill: mask must be a bool tensor, got dtype int64"),
    (lambda: rg.ones(2, 3).masked_fill(R([True, False]), 0.0), ValueError,
     r"masked_fill: mask of shape \(2,\) does not broadcast with input of shape \(2, 3\)"),
    (lambda: rg.ones(2, 3).masked_fill(R([True, False, True]), rg.ones(2)), ValueError,
     r"masked_fill: value must be a number or a 0-d tensor, got shape \(2,\)"),
    (lambda: rg.ones(2, 3).narrow(1, 2, 2), ValueError,
     r"narrow: start \(2\) \+ length \(2\) exceeds dimension 1 of size 3"),
    (lambda: rg.ones(2, 3).narrow(1, -4, 1), IndexError,
     r"narrow: start -4 is out of range for dimension 1 of size 3"),
    (lambda: rg.ones(2, 3).narrow(1, 0, -1), ValueError,
     r"narrow: length must be non-negative, got -1"),
    (lambda: rg.ones(2, 3).select(1, 3), IndexError,
     r"select: index 3 is out of range for dimension 1 of size 3 \(shape \(2, 3\)\)"),
    (lambda: rg.ones(2, 3).select(-3, 0), IndexError,
     r"select: dimension -3 is out of range for a tensor with 2 dimensions"),
    (lambda: F.one_hot(R([0, 3]), 2), ValueError,
     r"one_hot: class value 3 is too large for num_classes=2"),
    (lambda: F.one_hot(R([0, -1])), ValueError, r"one_hot: class values must be non-negative"),
    (lambda: F.one_hot(R(np.zeros(0, np.int64))), ValueError,
     r"one_hot: cannot infer num_classes from an empty tensor"),
    (lambda: F.one_hot(R([0.0, 1.0])), TypeError,
     r"one_hot: class values must be an integer tensor, got dtype float32"),
]


@pytest.mark.parametrize("fn, error, match", ERRORS, ids=[m.split(":")[0] + f"_{i}" for i, (_, _, m)
                                                          in enumerate(ERRORS)])
def test_bad_arguments_raise_clear_errors(fn, error, match):
    with pytest.raises(error, match=match):
        fn()


# -- rg.compile: the index is an input of the op, so each call gathers at its own indices ----------

def test_compiled_dqn_step_with_gather_matches_eager():
    """A DQN-style update, Q(s, a) = q(s).gather(1, a.unsqueeze(1)), with new actions each call:
    compiled and eager steps give bit-identical parameters, with no fallback."""
    g = np.random.default_rng(3)
    batches = [(R(g.standard_normal((16, 6), dtype=np.float32)), R(g.integers(0, 4, 16)),
                R(g.standard_normal(16, dtype=np.float32))) for _ in range(10)]

    def loss_of(model, s, a, target):
        q = model(s).gather(1, a.unsqueeze(1)).squeeze(1)
        hot = F.one_hot(a, 4).float()               # also an op: replayed with each call's a
        return ((q - target) ** 2).mean() + 1e-3 * (model(s) * hot).sum()

    assert_compiled_matches_eager(
        lambda: nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4)),
        lambda p: optim.Adam(p, lr=1e-2), loss_of, batches, steps=len(batches))

