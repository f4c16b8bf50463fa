"""Products, reductions and elementwise ops added to the op table: einsum, bmm, outer, prod, norm,
sign and rsqrt. Each row is checked by float64 finite differences and against PyTorch in float32;
then error messages, and einsum under rg.compile against eager, bit for bit."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from helpers import (
    assert_compiled_matches_eager,
    away_from,
    case,
    distinct,
    op_table_tests,
    positive,
)

import retrograd as rg
from retrograd import nn, optim

INF = math.inf


def ein(name, eq, *inputs, **kw):
    """An einsum row: the same call in both libraries."""
    return case(name, lambda *xs: rg.einsum(eq, *xs), *inputs,
                torch_fn=lambda *xs: torch.einsum(eq, *xs), **kw)


def norm_case(name, shape, p, dim=None, keepdim=False, **kw):
    return case(name, lambda x: rg.norm(x, p=p, dim=dim, keepdim=keepdim), shape,
                torch_fn=lambda x: torch.norm(x, p=p, dim=dim, keepdim=keepdim), **kw)


ONE_ZERO = np.array([[1.5, 0.0, 2.0], [3.0, -0.5, 1.2]])
TWO_ZEROS_ROW = np.array([[1.5, 0.0, 0.0, 2.0], [3.0, -0.5, 1.2, 0.7]])
TWO_ZEROS_APART = np.array([[1.5, 0.0, 2.0], [0.0, -0.5, 1.2]])
ZERO_ROW = np.array([[3.0, 4.0, 1.0], [0.0, 0.0, 0.0]])
WITH_ZEROS = np.array([[-2.0, 0.0, 3.0], [0.0, 0.5, -0.1]])
TIED = np.array([[1.0, -3.0, 3.0], [2.0, 2.0, -1.0]])

CASES = [
    # -- einsum --------------------------------------------------------------------------------
    ein("einsum_matmul", "ij,jk->ik", (3, 4), (4, 5)),
    ein("einsum_batched_matmul", "bij,bjk->bik", (2, 3, 4), (2, 4, 5)),
    ein("einsum_bilinear", "bi,ij,bj->b", (4, 3), (3, 5), (4, 5)),
    ein("einsum_transpose", "ij->ji", (3, 4)),
    ein("einsum_sum_all", "ij->", (3, 4)),
    ein("einsum_outer", "i,j->ij", (3,), (4,)),
    ein("einsum_dot", "i,i->", (5,), (5,)),
    ein("einsum_ellipsis", "...ij,...jk->...ik", (2, 3, 4), (2, 4, 5)),
    ein("einsum_ellipsis_broadcast", "...ij,...jk->...ik", (2, 1, 3, 4), (5, 4, 2)),
    ein("einsum_ellipsis_summed", "...ij->j", (2, 3, 4)),
    ein("einsum_ellipsis_implicit", "...ij,jk", (2, 3, 4), (4, 5)),
    ein("einsum_implicit", "ij,jk", (3, 4), (4, 5)),
    ein("einsum_implicit_order", "bA,ac", (2, 3), (4, 5)),    # out "Abc": A before a-z
    ein("einsum_implicit_transpose", "ji", (3, 4)),
    ein("einsum_three_operands", "ij,jk,kl->il", (2, 3), (3, 4), (4, 5)),
    ein("einsum_index_only_in_one", "ij,jk->i", (3, 4), (4, 5)),
    ein("einsum_size_one_broadcast", "ij,jk->ik", (3, 1), (4, 5)),
    ein("einsum_spaces", " ij , jk -> ik ", (3, 4), (4, 5)),
    ein("einsum_scalar_operand", ",ij->ij", (), (3, 4)),
    ein("einsum_empty_index", "ij,jk->ik", np.zeros((3, 0)), np.zeros((0, 4)), gradcheck=False),
    ein("einsum_size_one_and_zero", "ij,jk->ik", (3, 1), np.zeros((0, 4)), gradcheck=False),
    case("einsum_list_operands", lambda a, b: rg.einsum("ij,jk->ik", [a, b]), (3, 4), (4, 5),
         torch_fn=lambda a, b: torch.einsum("ij,jk->ik", [a, b])),
    ein("einsum_diagonal", "ii->i", (3, 3)),
    ein("einsum_trace", "ii", (4, 4)),
    ein("einsum_batch_diagonal", "bii->bi", (2, 3, 3)),
    ein("einsum_diagonal_with_other", "ii,i->i", (3, 3), (3,)),
    ein("einsum_diagonal_of_three", "iii->i", (2, 2, 2)),

    # -- bmm, outer ----------------------------------------------------------------------------
    case("bmm", lambda a, b: rg.bmm(a, b), (2, 3, 4), (2, 4, 5),
         torch_fn=lambda a, b: torch.bmm(a, b)),
    case("bmm_method", lambda a, b: a.bmm(b), (3, 1, 4), (3, 4, 2)),
    case("outer", lambda a, b: rg.outer(a, b), (3,), (4,),
         torch_fn=lambda a, b: torch.outer(a, b)),
    case("outer_method", lambda a, b: a.outer(b), (1,), (5,)),

    # -- prod ----------------------------------------------------------------------------------
    case("prod_all", lambda x: rg.prod(x), (3, 4), torch_fn=lambda x: torch.prod(x)),
    case("prod_dim", lambda x: x.prod(dim=1), (3, 4)),
    case("prod_dim0_keepdim", lambda x: x.prod(0, keepdim=True), (3, 4)),
    case("prod_negative_dim", lambda x: x.prod(-2), (2, 3, 4)),
    case("prod_0d", lambda x: x.prod(), ()),
    case("prod_0d_dim", lambda x: x.prod(0), ()),
    case("prod_one_zero", lambda x: x.prod(), ONE_ZERO),
    case("prod_one_zero_dim", lambda x: x.prod(1), ONE_ZERO),
    case("prod_one_zero_dim0", lambda x: x.prod(0, keepdim=True), ONE_ZERO),
    case("prod_two_zeros", lambda x: x.prod(), TWO_ZEROS_ROW),
    case("prod_two_zeros_same_row", lambda x: x.prod(1), TWO_ZEROS_ROW),
    case("prod_two_zeros_apart", lambda x: x.prod(dim=1, keepdim=True), TWO_ZEROS_APART),
    case("prod_two_zeros_apart_all", lambda x: x.prod(), TWO_ZEROS_APART),
    case("prod_empty", lambda x: x.prod(), np.zeros((0, 3)), gradcheck=False),
    case("prod_empty_dim", lambda x: x.prod(0), np.zeros((0, 3)), gradcheck=False),

    # -- norm ----------------------------------------------------------------------------------
    norm_case("norm_2", (3, 4), 2),
    norm_case("norm_2_dim", (3, 4), 2, dim=1),
    norm_case("norm_2_dims_keepdim", (2, 3, 4), 2, dim=(0, 2), keepdim=True),
    norm_case("norm_fro", (3, 4), "fro"),
    norm_case("norm_fro_dims", (2, 3, 4), "fro", dim=(1, 2)),
    norm_case("norm_1", (3, 4), 1, domain=away_from(0)),
    norm_case("norm_1_dim", (3, 4), 1, dim=0, domain=away_from(0)),
    norm_case("norm_inf", (3, 4), INF, domain=distinct),
    norm_case("norm_inf_dim", (3, 4), INF, dim=1, domain=distinct),
    norm_case("norm_neg_inf_dim", (3, 4), -INF, dim=-1, keepdim=True, domain=distinct),
    norm_case("norm_inf_ties", TIED, INF, dim=1, gradcheck=False),
    norm_case("norm_0", (3, 4), 0),
    norm_case("norm_0_dim_zeros", WITH_ZEROS, 0, dim=1),
    norm_case("norm_3", (3, 4), 3),
    norm_case("norm_3_dim", (3, 4), 3.0, dim=1),
    norm_case("norm_1_5", (3, 4), 1.5, dim=0, domain=away_from(0)),
    norm_case("norm_0_5", (3, 4), 0.5, domain=away_from(0)),
    norm_case("norm_negative_p", (3, 4), -1.5, dim=1, domain=positive),
    norm_case("norm_2_zero_row", ZERO_ROW, 2, dim=1, gradcheck=False),    # zero gradient there
    norm_case("norm_3_zero_row", ZERO_ROW, 3, dim=1, gradcheck=False),
    norm_case("norm_0_5_with_zeros", WITH_ZEROS, 0.5, dim=1, gradcheck=False),
    norm_case("norm_2_all_zero", np.zeros((2, 3)), 2, gradcheck=False),
    norm_case("norm_0d", (), 2, domain=away_from(0)),
    case("norm_method_default", lambda x: x.norm(), (3, 4), torch_fn=lambda x: x.norm()),
    case("norm_method_dim", lambda x: x.norm(1, 1, True), (3, 4), domain=away_from(0)),

    # -- sign, rsqrt ---------------------------------------------------------------------------
    case("sign", lambda x: rg.sign(x), (3, 4), torch_fn=lambda x: torch.sign(x),
         domain=away_from(0)),
    case("sign_method_zeros", lambda x: x.sign(), WITH_ZEROS, gradcheck=False),
    case("rsqrt", lambda x: rg.rsqrt(x), (3, 4), torch_fn=lambda x: torch.rsqrt(x),
         domain=positive),
    case("rsqrt_method_0d", lambda x: x.rsqrt(), (), domain=positive),
]

test_case_names_are_unique, test_gradcheck_float64, test_matches_torch = op_table_tests(CASES)


# -- values and gradients worth spelling out -----------------------------------------------------

def test_prod_gradient_with_zeros_is_the_product_of_the_others():
    x = rg.tensor([2.0, 0.0, 3.0, 4.0], requires_grad=True)
    x.prod().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 24.0, 0.0, 0.0])
    x = rg.tensor([2.0, 0.0, 0.0, 4.0], requires_grad=True)
    x.prod().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0, 0.0, 0.0])


def test_norm_2_gradient_at_zero_is_zero_not_nan():
    x = rg.zeros(2, 3, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")     # no division-by-zero warning either
        x.norm(dim=1).sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.zeros((2, 3), np.float32))


def test_dtypes_stay_float32_and_integers_follow_torch():
    x = rg.tensor([[1.0, 2.0], [3.0, 4.0]])
    for out in (rg.einsum("ij,jk", x, x), x.prod(), x.prod(1), x.norm(), x.norm(3), x.norm(INF),
                x.norm(0), x.sign(), x.rsqrt(), rg.bmm(x[None], x[None]), rg.outer(x[0], x[1])):
        assert out.dtype == np.float32
    ints = rg.tensor([[1, 2], [3, 4]], dtype=rg.int32)
    assert ints.prod().dtype == np.int64 and ints.prod().item() == 24      # as torch.prod
    assert ints.rsqrt().dtype == np.float32
    assert ints.sign().dtype == np.int32
    assert rg.zeros(0, 3).prod().item() == 1.0


def test_einsum_output_does_not_share_memory_with_its_input():
    x = rg.tensor([[1.0, 2.0], [3.0, 4.0]])
    y = rg.einsum("ij->ji", x)
    y[0, 1] = 10.0
    np.testing.assert_array_equal(x.data, [[1.0, 2.0], [3.0, 4.0]])


def test_einsum_large_operands_match_torch():
    """Sizes past the point where the BLAS contraction order is used instead of NumPy's loop."""
    g = np.random.default_rng(0)
    arrays = [g.standard_normal(s).astype(np.float32) for s in [(64, 48), (48, 40), (64, 40)]]
    xs = [rg.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, tout = rg.einsum("bi,ij,bj->b", *xs), torch.einsum("bi,ij,bj->b", *ts)
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=1e-4, atol=1e-3)
    out.sum().backward()
    tout.sum().backward()
    for x, t in zip(xs, ts):
        np.testing.assert_allclose(x.grad.data, t.grad.numpy(), rtol=1e-4, atol=1e-3)


# -- errors ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("eq, shapes, match", [
    ("ij,jk->ik", [(2, 3)], r"einsum\(\): the equation names 2 operand\(s\) but 1 were given"),
    ("ij->ij", [(2, 3), (3, 4)], r"names 1 operand\(s\) but 2 were given"),
    ("ij,jk->ik", [(2, 3), (4, 5)], (r"subscript j has size 4 in operand 1 \(shape \(4, 5\)\), "
                                     r"which does not match size 3")),
    ("ij->i", [(3,)], r"operand 0 has 1 dimension\(s\) but its subscripts 'ij' name 2"),
    ("i1->i", [(3, 1)], r"invalid subscript '1'"),
    ("i->ii", [(3,)], r"output subscript i appears more than once"),
    ("i->j", [(3,)], r"output subscript j does not appear in any operand"),
    ("ii->i", [(3, 4)], (r"subscript i is repeated for operand 0 \(shape \(3, 4\)\) but its "
                         r"sizes differ, 3 != 4")),
    ("i..j->i", [(3, 4)], r"'\.' is only allowed as one ellipsis"),
])
def test_einsum_errors(eq, shapes, match):
    with pytest.raises(ValueError, match=match):
        rg.einsum(eq, *[rg.zeros(*s) for s in shapes])


def test_einsum_equation_must_be_a_string():
    with pytest.raises(TypeError, match="equation must be a string"):
        rg.einsum(rg.zeros(2), "i->i")


@pytest.mark.parametrize("a, b, match", [
    ((3, 4), (2, 4, 5), r"bmm: input must be a 3-D tensor, got shape \(3, 4\)"),
    ((2, 3, 4), (4, 5), r"bmm: mat2 must be a 3-D tensor, got shape \(4, 5\)"),
    ((2, 3, 4), (3, 4, 5), r"bmm: cannot multiply \(2, 3, 4\) by \(3, 4, 5\)"),
    ((2, 3, 4), (2, 5, 5), (r"bmm: cannot multiply \(2, 3, 4\) by \(2, 5, 5\): expected mat2 "
                            r"of shape \(2, 4, m\)")),
])
def test_bmm_errors(a, b, match):
    with pytest.raises(ValueError, match=match):
        rg.bmm(rg.zeros(*a), rg.zeros(*b))


def test_outer_errors():
    with pytest.raises(ValueError, match=r"outer: input must be 1-D, got shape \(3, 4\)"):
        rg.outer(rg.zeros(3, 4), rg.zeros(2))
    with pytest.raises(ValueError, match=r"outer: vec2 must be 1-D, got shape \(\)"):
        rg.zeros(3).outer(rg.tensor(1.0))


def test_prod_and_norm_errors():
    x = rg.zeros(2, 3)
    with pytest.raises(TypeError, match=r"prod: dim must be an int or None, got \(0, 1\)"):
        x.prod(dim=(0, 1))
    with pytest.raises(IndexError, match="dimension 2 is out of range"):
        x.prod(2)
    with pytest.raises(ValueError, match=r"norm: p='nuc' is not supported"):
        x.norm("nuc")
    with pytest.raises(ValueError, match=r"norm: p='fro' takes at most 2 dimensions"):
        rg.zeros(2, 3, 4).norm("fro", dim=(0, 1, 2))
    with pytest.raises(RuntimeError, match="norm: expected a floating-point tensor, got dtype "
                                           "int64"):
        rg.norm(rg.tensor([1, 2]))
    with pytest.raises(ValueError, match="the inf norm of an empty tensor"):
        rg.zeros(0, 3).norm(INF)


# -- rg.compile ------------------------------------------------------------------------------------

class Bilinear(nn.Module):
    def __init__(self, n_in1: int, n_in2: int):
        super().__init__()
        self.weight = nn.Parameter(rg.randn(n_in1, n_in2) * 0.1)
        self.bias = nn.Parameter(rg.zeros(1))

    def forward(self, x, y):
        return rg.einsum("bi,ij,bj->b", x, self.weight, y) + self.bias


@pytest.mark.parametrize("batch, n1, n2", [(8, 5, 4), (64, 40, 32)])   # NumPy's loop; BLAS order
def test_compiled_einsum_training_matches_eager_bit_for_bit(batch, n1, n2):
    g = np.random.default_rng(3)
    batches = [tuple(rg.tensor(g.standard_normal(s, dtype=np.float32))
                     for s in [(batch, n1), (batch, n2), (batch,)]) for _ in range(3)]
    assert_compiled_matches_eager(
        lambda: Bilinear(n1, n2), lambda p: optim.SGD(p, lr=0.05, momentum=0.9),
        lambda m, x, y, t: ((m(x, y) - t) ** 2).mean(), batches, steps=10)
