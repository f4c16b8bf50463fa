"""The op table: every op checked by float64 finite differences (`rg.gradcheck`), and its forward
and input gradients compared with PyTorch's in float32; then property tests for broadcast gradients.

Add an op by adding a row to CASES: a name, the retrograd function, the PyTorch one when the call
differs, input shapes (or explicit arrays) and the domain to draw inputs from.
"""
from __future__ import annotations

import operator

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import (
    assert_close,
    away_from,
    case,
    distinct,
    integers,
    op_table_tests,
    positive,
    real,
    scaled,
    uniform,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import retrograd as rg

T = torch.from_numpy   # constants (arrays, masks, index arrays) on the PyTorch side

ARR = np.array([[0.5, -1.0, 2.0, 0.25]], dtype=np.float32)      # NumPy operand of reflected ops
COND = np.array([[1, 0, 1, 0], [0, 0, 1, 1], [1, 1, 0, 0]], dtype=bool)
ROWS = np.array([True, False, True])
IDX2 = np.array([[0, 1], [1, 1]])
KINKS = np.array([-1.0, 0.0, 0.5, 2.0])                         # exactly on the kinks, on purpose
TIES = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, -1.0]])
MASKED = np.array([[0.5, -np.inf, 1.0], [-np.inf, 2.0, -np.inf]])   # attention-style masked logits

# Unary functions with the same name in both libraries: rg.<name>(x) vs torch.<name>(x) on a matrix,
# and the method x.<name>() on a 0-d tensor.
UNARY = [("neg", real), ("abs", away_from(0)), ("exp", real), ("log", positive),
         ("log1p", uniform(-0.5, 2.0)), ("sqrt", positive), ("sin", real), ("cos", real),
         ("tanh", real), ("sigmoid", scaled(5)), ("relu", away_from(0)), ("square", real)]

COMPARISONS = [("eq", operator.eq), ("ne", operator.ne), ("lt", operator.lt), ("le", operator.le),
               ("gt", operator.gt), ("ge", operator.ge)]

CASES = [
    # -- elementwise, unary ------------------------------------------------------------------------
    *[case(name, lambda x, n=name: getattr(rg, n)(x), (2, 3), domain=dom,
           torch_fn=lambda x, n=name: getattr(torch, n)(x)) for name, dom in UNARY],
    *[case(f"{name}_0d_method", lambda x, n=name: getattr(x, n)(), (), domain=dom)
      for name, dom in UNARY],
    case("neg_operator", lambda x: -x, (3,)),
    case("sigmoid_large", lambda x: x.sigmoid(), (3, 4), domain=scaled(40)),
    case("tanh_large", lambda x: x.tanh(), (3, 4), domain=scaled(20)),
    case("abs_operator", lambda x: abs(x), (3,), domain=away_from(0)),
    case("leaky_relu", lambda x: rg.leaky_relu(x), (3, 4), torch_fn=lambda x: F.leaky_relu(x),
         domain=away_from(0)),
    case("leaky_relu_slope", lambda x: rg.leaky_relu(x, 0.2), (3, 4),
         torch_fn=lambda x: F.leaky_relu(x, 0.2), domain=away_from(0)),
    case("elu", lambda x: rg.elu(x), (3, 4), torch_fn=lambda x: F.elu(x), domain=away_from(0)),
    case("elu_alpha", lambda x: rg.elu(x, alpha=0.5), (3, 4),
         torch_fn=lambda x: F.elu(x, alpha=0.5), domain=away_from(0)),
    case("gelu", lambda x: rg.gelu(x), (3, 4), torch_fn=lambda x: F.gelu(x), domain=scaled(2)),
    case("gelu_tanh", lambda x: rg.gelu(x, approximate="tanh"), (3, 4),
         torch_fn=lambda x: F.gelu(x, approximate="tanh"), domain=scaled(2)),
    case("softplus", lambda x: rg.softplus(x), (3, 4), torch_fn=lambda x: F.softplus(x),
         domain=scaled(3)),
    case("softplus_beta_threshold", lambda x: rg.softplus(x, beta=2.0, threshold=1.0), (4, 5),
         torch_fn=lambda x: F.softplus(x, beta=2.0, threshold=1.0), domain=away_from(0.5)),
    case("softplus_large", lambda x: rg.softplus(x), (3, 4), torch_fn=lambda x: F.softplus(x),
         domain=scaled(30)),

    # -- arithmetic, with broadcasting, 0-d, and Python scalars / NumPy arrays on either side ------
    case("add", lambda a, b: a + b, (3, 4), (3, 4)),
    case("add_broadcast", lambda a, b: a + b, (3, 1), (4,)),
    case("add_0d", lambda a, b: a + b, (), (2, 3)),
    case("add_0d_0d", lambda a, b: a + b, (), ()),
    case("add_scalar", lambda x: x + 1.5, (2, 3)),
    case("radd_scalar", lambda x: 1.5 + x, (2, 3)),
    case("radd_array", lambda x: ARR + x, (3, 4), torch_fn=lambda x: T(ARR) + x),
    case("add_fn", lambda a, b: rg.add(a, b), (2, 1), (3,), torch_fn=torch.add),
    case("sub", lambda a, b: a - b, (3, 4), (3, 4)),
    case("sub_broadcast", lambda a, b: a - b, (2, 1, 3), (4, 1)),
    case("sub_scalar", lambda x: x - 2, ()),
    case("rsub_scalar", lambda x: 2 - x, (3,)),
    case("rsub_array", lambda x: ARR - x, (3, 4), torch_fn=lambda x: T(ARR) - x),
    case("sub_fn", lambda a, b: rg.sub(a, b), (3,), (2, 1), torch_fn=torch.sub),
    case("mul", lambda a, b: a * b, (3, 4), (3, 4)),
    case("mul_broadcast", lambda a, b: a * b, (4, 1), (1, 3)),
    case("mul_0d", lambda a, b: a * b, (), (3,)),
    case("mul_same_tensor", lambda x: x * x, (3,)),
    case("rmul_scalar", lambda x: 3 * x, (2, 3)),
    case("mul_array", lambda x: x * ARR, (3, 4), torch_fn=lambda x: x * T(ARR)),
    case("mul_numpy_scalar", lambda x: x * np.float64(2.0), (2, 3), gradcheck=False),
    case("mul_fn", lambda a, b: rg.mul(a, b), (2, 3), (), torch_fn=torch.mul),
    case("div", lambda a, b: a / b, (3, 4), (3, 4), domain=(real, away_from(0, gap=0.5))),
    case("div_broadcast", lambda a, b: a / b, (3, 1), (4,), domain=(real, away_from(0, gap=0.5))),
    case("div_0d", lambda a, b: a / b, (2, 2), (), domain=(real, away_from(0, gap=0.5))),
    case("div_scalar", lambda x: x / 4, (2, 3)),
    case("rdiv_scalar", lambda x: 2 / x, (3, 4), domain=away_from(0, gap=0.5)),
    case("rdiv_array", lambda x: ARR / x, (3, 4), torch_fn=lambda x: T(ARR) / x,
         domain=away_from(0, gap=0.5)),
    case("div_fn", lambda a, b: rg.div(a, b), (2, 3), (3,), torch_fn=torch.div,
         domain=(real, away_from(0, gap=0.5))),
    case("pow", lambda a, b: a ** b, (3, 4), (3, 4), domain=(positive, real)),
    case("pow_broadcast", lambda a, b: a ** b, (3, 1), (4,), domain=(positive, real)),
    case("pow_0d_exponent", lambda a, b: a ** b, (2, 3), (), domain=(positive, real)),
    case("pow_int", lambda x: x ** 3, (3, 4)),
    case("pow_square_0d", lambda x: x ** 2, ()),
    case("pow_half", lambda x: x ** 0.5, (3, 4), domain=positive),
    case("pow_negative", lambda x: x ** -1.5, (3, 4), domain=positive),
    case("rpow_scalar", lambda x: 2 ** x, (3, 4)),
    case("rpow_array", lambda x: np.abs(ARR) ** x, (3, 4), torch_fn=lambda x: T(np.abs(ARR)) ** x),
    case("pow_method", lambda x: x.pow(2.5), (3,), domain=positive),
    case("pow_fn", lambda a, b: rg.pow(a, b), (3,), (2, 1), torch_fn=torch.pow,
         domain=(positive, real)),

    # -- matrix products ---------------------------------------------------------------------------
    case("matmul_1d_1d", lambda a, b: a @ b, (4,), (4,)),
    case("matmul_1d_2d", lambda a, b: a @ b, (3,), (3, 4)),
    case("matmul_2d_1d", lambda a, b: a @ b, (3, 4), (4,)),
    case("matmul_2d_2d", lambda a, b: a @ b, (2, 3), (3, 4)),
    case("matmul_batched", lambda a, b: a @ b, (2, 3, 4), (2, 4, 2)),
    case("matmul_batch_broadcast", lambda a, b: a @ b, (2, 1, 2, 3), (3, 3, 2)),
    case("matmul_batch_2d", lambda a, b: a @ b, (2, 2, 3), (3, 2)),
    case("matmul_1d_3d", lambda a, b: a @ b, (3,), (2, 3, 2)),
    case("matmul_3d_1d", lambda a, b: a @ b, (2, 2, 3), (3,)),
    case("matmul_fn", lambda a, b: rg.matmul(a, b), (2, 3), (3, 2), torch_fn=torch.matmul),
    case("matmul_method", lambda a, b: a.matmul(b), (2, 3), (3,)),
    case("rmatmul_array", lambda x: ARR @ x, (4, 3), torch_fn=lambda x: T(ARR) @ x),
    case("linear", lambda x, w, b: rg.linear(x, w, b), (5, 3), (4, 3), (4,), torch_fn=F.linear),
    case("linear_no_bias", lambda x, w: rg.linear(x, w), (5, 3), (4, 3), torch_fn=F.linear),
    case("linear_3d", lambda x, w, b: rg.linear(x, w, b), (2, 3, 3), (4, 3), (4,),
         torch_fn=F.linear),
    case("linear_1d", lambda x, w, b: rg.linear(x, w, b), (3,), (2, 3), (2,), torch_fn=F.linear),

    # -- elementwise, binary, and clamp ------------------------------------------------------------
    case("maximum", lambda a, b: rg.maximum(a, b), (3, 4), (3, 4), torch_fn=torch.maximum),
    case("maximum_broadcast", lambda a, b: a.maximum(b), (3, 1), (4,)),
    case("minimum", lambda a, b: rg.minimum(a, b), (3, 4), (3, 4), torch_fn=torch.minimum),
    case("minimum_broadcast", lambda a, b: a.minimum(b), (), (4,)),
    case("max_elementwise", lambda a, b: a.max(b), (2, 3), (2, 3)),
    case("min_elementwise", lambda a, b: a.min(b), (2, 3), (3,)),
    case("where", lambda a, b: rg.where(COND, a, b), (3, 4), (3, 4),
         torch_fn=lambda a, b: torch.where(T(COND), a, b)),
    case("where_broadcast", lambda a, b: rg.where(COND, a, b), (3, 1), (4,),
         torch_fn=lambda a, b: torch.where(T(COND), a, b)),
    case("where_scalar", lambda a: rg.where(COND, a, 0.0), (3, 4),
         torch_fn=lambda a: torch.where(T(COND), a, 0.0)),
    case("where_tensor_condition", lambda a, b: rg.where(a > 0, a, b), (3, 4), (4,),
         torch_fn=lambda a, b: torch.where(a > 0, a, b)),
    case("clamp", lambda x: x.clamp(-0.5, 0.5), (3, 4), domain=away_from(-0.5, 0.5)),
    case("clamp_min", lambda x: x.clamp(min=0.1), (3, 4), domain=away_from(0.1)),
    case("clamp_max", lambda x: x.clamp(max=-0.2), (3, 4), domain=away_from(-0.2)),
    case("clip", lambda x: x.clip(-0.3, 0.3), (3, 4), domain=away_from(-0.3, 0.3)),
    case("clamp_fn", lambda x: rg.clamp(x, -1, 1), (3, 4), torch_fn=lambda x: torch.clamp(x, -1, 1),
         domain=away_from(-1, 1)),
    case("clip_fn_one_sided", lambda x: rg.clip(x, min=0.0), (3, 4),
         torch_fn=lambda x: torch.clip(x, min=0.0), domain=away_from(0)),
    case("clamp_tensor_bounds", lambda x, lo, hi: x.clamp(lo, hi), (3, 4), (3, 4), (4,),
         domain=(real, uniform(-1.0, -0.3), uniform(0.3, 1.0))),
    case("clamp_tensor_min", lambda x, lo: rg.clamp(x, min=lo), (3, 4), (3, 1),
         torch_fn=lambda x, lo: torch.clamp(x, min=lo)),
    case("clamp_tensor_max_0d", lambda x, hi: x.clip(max=hi), (3, 4), ()),

    # -- on kinks and ties: no finite differences, PyTorch's convention only -----------------------
    case("abs_at_zero", lambda x: x.abs(), KINKS, gradcheck=False),
    case("relu_at_zero", lambda x: x.relu(), KINKS, gradcheck=False),
    case("leaky_relu_at_zero", lambda x: rg.leaky_relu(x, 0.2), KINKS, gradcheck=False,
         torch_fn=lambda x: F.leaky_relu(x, 0.2)),
    case("elu_at_zero", lambda x: rg.elu(x, alpha=0.5), KINKS, gradcheck=False,
         torch_fn=lambda x: F.elu(x, alpha=0.5)),
    case("clamp_at_bounds", lambda x: x.clamp(-1.0, 0.5), KINKS, gradcheck=False),
    case("clamp_tensor_bounds_ties", lambda x, lo, hi: x.clamp(lo, hi), KINKS,
         np.array([-1.0, 0.5, 0.5, 3.0]), np.array([0.0, 0.0, 0.5, 2.0]), gradcheck=False),
    case("maximum_ties", lambda a, b: a.maximum(b), KINKS, np.array([-1.0, 1.0, 0.5, 0.0]),
         gradcheck=False),
    case("minimum_ties", lambda a, b: a.minimum(b), KINKS, np.array([-1.0, 1.0, 0.5, 0.0]),
         gradcheck=False),
    case("max_ties", lambda x: x.max(), TIES, gradcheck=False),            # shared evenly
    case("min_ties", lambda x: x.min(), -TIES, gradcheck=False),
    case("amax_ties_dim", lambda x: x.amax(dim=1), TIES, gradcheck=False),
    case("amin_ties_dim", lambda x: x.amin(dim=0), np.array([[1.0, 2.0], [1.0, 0.0]]),
         gradcheck=False),
    case("max_dim_ties", lambda x: x.max(dim=1), TIES, gradcheck=False),   # all to the first
    case("pow_zero_exponent_at_zero", lambda x: x ** 0, KINKS, gradcheck=False),
    case("pow_zero_base", lambda a, b: a ** b, np.array([0.0, 0.0, 2.0]), np.array([2.0, 0.5, 1.0]),
         gradcheck=False),

    # -- reductions --------------------------------------------------------------------------------
    case("sum", lambda x: x.sum(), (3, 4)),
    case("sum_dim", lambda x: x.sum(dim=1), (3, 4)),
    case("sum_dims_keepdim", lambda x: x.sum(dim=(0, 2), keepdim=True), (2, 3, 4)),
    case("sum_negative_dim", lambda x: x.sum(-1), (2, 3, 4)),
    case("sum_0d", lambda x: x.sum(), ()),
    case("sum_0d_dim", lambda x: x.sum(dim=0), ()),
    case("sum_0d_dims", lambda x: x.sum(dim=(-1,), keepdim=True), ()),
    case("sum_dim_list", lambda x: x.sum(dim=[0, 2]), (2, 3, 2)),
    case("sum_axis_keepdims", lambda x: x.sum(axis=1, keepdims=True), (3, 4),
         torch_fn=lambda x: x.sum(dim=1, keepdim=True)),
    case("sum_fn", lambda x: rg.sum(x, dim=0), (3, 4), torch_fn=lambda x: torch.sum(x, dim=0)),
    case("mean", lambda x: x.mean(), (3, 4)),
    case("mean_dim", lambda x: x.mean(dim=0), (3, 4)),
    case("mean_dims_keepdim", lambda x: x.mean(dim=(1, 2), keepdim=True), (2, 3, 4)),
    case("mean_0d", lambda x: x.mean(), ()),
    case("mean_axis_keepdims", lambda x: x.mean(axis=(0, 1), keepdims=True), (2, 3, 2),
         torch_fn=lambda x: x.mean(dim=(0, 1), keepdim=True)),
    case("mean_fn", lambda x: rg.mean(x, dim=-1), (3, 4), torch_fn=lambda x: torch.mean(x, dim=-1)),
    case("var", lambda x: x.var(), (3, 4)),
    case("var_dim", lambda x: x.var(dim=1), (3, 4)),
    case("var_biased", lambda x: x.var(dim=1, unbiased=False), (3, 4)),
    case("var_unbiased", lambda x: x.var(dim=(0, 1), unbiased=True), (2, 3, 2)),
    case("var_correction", lambda x: x.var(dim=0, keepdim=True, correction=2), (4, 3)),
    case("var_axis_keepdims", lambda x: x.var(axis=1, keepdims=True), (3, 4),
         torch_fn=lambda x: x.var(dim=1, keepdim=True)),
    case("var_fn", lambda x: rg.var(x, 0, correction=0), (3, 4),
         torch_fn=lambda x: torch.var(x, 0, correction=0)),
    case("std", lambda x: x.std(), (3, 4)),
    case("std_dim", lambda x: x.std(dim=0), (3, 4)),
    case("std_biased", lambda x: x.std(dim=1, unbiased=False, keepdim=True), (3, 4)),
    case("std_correction", lambda x: x.std(dim=(0, 2), correction=0), (2, 3, 2)),
    case("std_axis", lambda x: x.std(axis=-1), (3, 4), torch_fn=lambda x: x.std(dim=-1)),
    case("std_fn", lambda x: rg.std(x, dim=1), (3, 4), torch_fn=lambda x: torch.std(x, dim=1)),
    case("max", lambda x: x.max(), (3, 4), domain=distinct),
    case("max_dim", lambda x: x.max(dim=1), (3, 4), domain=distinct),
    case("max_dim_keepdim", lambda x: x.max(dim=0, keepdim=True), (3, 4), domain=distinct),
    case("max_axis_keepdims", lambda x: x.max(axis=1, keepdims=True), (2, 3, 2), domain=distinct,
         torch_fn=lambda x: x.max(dim=1, keepdim=True)),
    case("max_fn", lambda x: rg.max(x, dim=-1), (3, 4), domain=distinct,
         torch_fn=lambda x: torch.max(x, dim=-1)),
    case("max_0d", lambda x: x.max(), ()),
    case("max_0d_dim", lambda x: x.max(dim=0), ()),
    case("min_0d_dim_keepdim", lambda x: x.min(-1, keepdim=True), ()),
    case("var_0d_dims", lambda x: x.var(dim=(0,), correction=0), ()),
    case("amax_0d_dims", lambda x: x.amax(dim=(0,)), ()),
    case("min", lambda x: x.min(), (3, 4), domain=distinct),
    case("min_dim", lambda x: x.min(dim=1), (3, 4), domain=distinct),
    case("min_dim_keepdim", lambda x: x.min(-1, True), (2, 3, 2), domain=distinct),
    case("min_axis", lambda x: x.min(axis=0), (3, 4), domain=distinct,
         torch_fn=lambda x: x.min(dim=0)),
    case("amax", lambda x: x.amax(), (3, 4), domain=distinct),
    case("amax_dim", lambda x: x.amax(dim=1), (3, 4), domain=distinct),
    case("amax_dims_keepdim", lambda x: x.amax(dim=(0, 2), keepdim=True), (2, 3, 2),
         domain=distinct),
    case("amax_axis_keepdims", lambda x: x.amax(axis=0, keepdims=True), (3, 4), domain=distinct,
         torch_fn=lambda x: x.amax(dim=0, keepdim=True)),
    case("amin", lambda x: rg.amin(x, dim=-1), (3, 4), domain=distinct,
         torch_fn=lambda x: torch.amin(x, dim=-1)),
    case("amin_axis", lambda x: x.amin(axis=(0, 1)), (3, 4), domain=distinct,
         torch_fn=lambda x: x.amin(dim=(0, 1))),
    case("argmax", lambda x: x.argmax(), (3, 4), domain=distinct, gradcheck=False),
    case("argmax_dim", lambda x: x.argmax(dim=1), (3, 4), domain=distinct, gradcheck=False),
    case("argmax_keepdim", lambda x: x.argmax(dim=0, keepdim=True), (3, 4), domain=distinct,
         gradcheck=False),
    case("argmax_axis", lambda x: rg.argmax(x, axis=1), (3, 4), domain=distinct, gradcheck=False,
         torch_fn=lambda x: torch.argmax(x, dim=1)),
    case("argmin", lambda x: x.argmin(), (3, 4), domain=distinct, gradcheck=False),
    case("argmin_dim", lambda x: x.argmin(dim=-1, keepdim=True), (2, 3, 2), domain=distinct,
         gradcheck=False),
    case("argmin_axis_keepdims", lambda x: x.argmin(axis=0, keepdims=True), (3, 4),
         domain=distinct, gradcheck=False, torch_fn=lambda x: x.argmin(dim=0, keepdim=True)),
    case("logsumexp", lambda x: x.logsumexp(dim=1), (3, 4)),
    case("logsumexp_dims_keepdim", lambda x: x.logsumexp(dim=(0, 2), keepdim=True), (2, 3, 2)),
    case("logsumexp_all", lambda x: rg.logsumexp(x), (3, 4),
         torch_fn=lambda x: torch.logsumexp(x, dim=(0, 1))),
    case("logsumexp_axis", lambda x: rg.logsumexp(x, axis=0, keepdims=True), (3, 4),
         torch_fn=lambda x: torch.logsumexp(x, dim=0, keepdim=True)),
    case("logsumexp_large", lambda x: x.logsumexp(dim=-1), (3, 4), domain=scaled(1e4)),
    case("logsumexp_0d", lambda x: x.logsumexp(dim=0), ()),
    case("softmax", lambda x: x.softmax(dim=1), (3, 4)),
    case("softmax_dim0", lambda x: x.softmax(dim=0), (3, 4)),
    case("softmax_3d", lambda x: rg.softmax(x, dim=1), (2, 3, 2),
         torch_fn=lambda x: torch.softmax(x, dim=1)),
    case("softmax_default_dim", lambda x: rg.softmax(x), (3, 4),
         torch_fn=lambda x: torch.softmax(x, dim=-1)),
    case("softmax_axis", lambda x: rg.softmax(x, axis=0), (3, 4),
         torch_fn=lambda x: torch.softmax(x, dim=0)),
    case("softmax_large", lambda x: x.softmax(dim=-1), (3, 4), domain=scaled(1e4)),
    case("softmax_0d", lambda x: x.softmax(dim=0), ()),
    case("softmax_masked", lambda x: x.softmax(dim=1), MASKED),
    case("log_softmax", lambda x: x.log_softmax(dim=1), (3, 4)),
    case("log_softmax_dim0", lambda x: rg.log_softmax(x, dim=0), (3, 4),
         torch_fn=lambda x: torch.log_softmax(x, dim=0)),
    case("log_softmax_3d", lambda x: x.log_softmax(dim=-2), (2, 3, 2)),
    case("log_softmax_axis", lambda x: rg.log_softmax(x, axis=1), (3, 4),
         torch_fn=lambda x: F.log_softmax(x, dim=1)),
    case("log_softmax_large", lambda x: x.log_softmax(dim=-1), (3, 4), domain=scaled(1e4)),
    case("log_softmax_masked", lambda x: x.log_softmax(dim=1), MASKED, gradcheck=False),  # -inf out

    # -- shape -------------------------------------------------------------------------------------
    case("reshape", lambda x: x.reshape(4, 3), (3, 4)),
    case("reshape_tuple", lambda x: x.reshape((2, 6)), (3, 4)),
    case("reshape_infer", lambda x: x.reshape(-1), (3, 4)),
    case("reshape_0d", lambda x: x.reshape(1, 1), ()),
    case("reshape_to_0d", lambda x: x.reshape(()), (1, 1)),
    case("reshape_fn", lambda x: rg.reshape(x, (6, 2)), (3, 4),
         torch_fn=lambda x: torch.reshape(x, (6, 2))),
    case("view_infer", lambda x: x.view(2, -1, 3), (3, 4)),
    case("view_as", lambda x, y: x.view_as(y), (3, 4), (6, 2)),
    case("flatten", lambda x: x.flatten(), (2, 3, 2)),
    case("flatten_start", lambda x: x.flatten(1), (2, 3, 2)),
    case("flatten_range", lambda x: x.flatten(0, 1), (2, 3, 2)),
    case("flatten_0d", lambda x: x.flatten(), ()),
    case("transpose", lambda x: x.transpose(0, 2), (2, 3, 4)),
    case("transpose_negative", lambda x: x.transpose(-1, -2), (2, 3, 4)),
    case("transpose_fn", lambda x: rg.transpose(x, 0, 1), (2, 3),
         torch_fn=lambda x: torch.transpose(x, 0, 1)),
    case("swapaxes", lambda x: x.swapaxes(0, 1), (2, 3)),
    case("permute", lambda x: x.permute(2, 0, 1), (2, 3, 4)),
    case("permute_tuple", lambda x: x.permute((1, 2, 0)), (2, 3, 4)),
    case("permute_negative", lambda x: x.permute(-1, 0, -2), (2, 3, 4)),
    case("T", lambda x: x.T, (2, 3)),
    case("mT", lambda x: x.mT, (2, 3, 4)),
    case("t", lambda x: x.t(), (2, 3)),
    case("squeeze", lambda x: x.squeeze(), (1, 3, 1, 2)),
    case("squeeze_dim", lambda x: x.squeeze(0), (1, 3, 1, 2)),
    case("squeeze_dims", lambda x: x.squeeze((0, 2)), (1, 3, 1, 2)),
    case("squeeze_not_one", lambda x: x.squeeze(1), (1, 3, 1, 2)),
    case("squeeze_negative_dims", lambda x: x.squeeze((-2, -4)), (1, 3, 1, 2)),
    case("squeeze_fn", lambda x: rg.squeeze(x, -2), (3, 1, 2),
         torch_fn=lambda x: torch.squeeze(x, -2)),
    case("unsqueeze", lambda x: x.unsqueeze(1), (3, 4)),
    case("unsqueeze_negative", lambda x: x.unsqueeze(-1), (3, 4)),
    case("unsqueeze_0d", lambda x: x.unsqueeze(0), ()),
    case("unsqueeze_0d_negative", lambda x: x.unsqueeze(-1), ()),
    case("expand", lambda x: x.expand(3, -1), (1, 4)),
    case("expand_new_dims", lambda x: x.expand(2, 3, 4), (3, 1)),
    case("expand_0d", lambda x: x.expand(2, 3), ()),
    case("expand_as", lambda x, y: x.expand_as(y) * y, (3, 1), (2, 3, 4)),
    case("broadcast_to", lambda x: x.broadcast_to((2, 3, 4)), (3, 1)),
    case("broadcast_to_fn", lambda x: rg.broadcast_to(x, (3, 4)), (4,),
         torch_fn=lambda x: torch.broadcast_to(x, (3, 4))),
    case("repeat", lambda x: x.repeat(2, 3), (2, 3)),
    case("repeat_new_dim", lambda x: x.repeat(2, 1, 2), (2, 3)),
    case("tile", lambda x: x.tile(2, 2), (2, 3)),
    case("tile_short_reps", lambda x: x.tile((2,)), (2, 3)),
    case("tile_fn", lambda x: rg.tile(x, (1, 3)), (3,), torch_fn=lambda x: torch.tile(x, (1, 3))),
    case("tile_fn_short_reps", lambda x: rg.tile(x, 2), (2, 3),
         torch_fn=lambda x: torch.tile(x, (2,))),
    case("repeat_0d", lambda x: x.repeat(3), ()),

    # -- indexing ----------------------------------------------------------------------------------
    case("index_int", lambda x: x[1], (3, 4)),
    case("index_negative_int_slice", lambda x: x[-1, 1:3], (3, 4)),
    case("index_step", lambda x: x[:, ::2], (3, 4)),
    case("index_negative_step", lambda x: x[::-1], (3, 4), torch_fn=lambda x: x.flip(0)),
    case("index_negative_step_2", lambda x: x[..., 3:0:-2], (2, 3, 4),
         torch_fn=lambda x: x.flip(-1)[..., 0:3:2]),
    case("index_ellipsis", lambda x: x[..., 1], (2, 3, 4)),
    case("index_none", lambda x: x[None, :, None, 1], (3, 4)),
    case("index_0d", lambda x: x[()], ()),
    case("index_0d_ellipsis", lambda x: x[...], ()),
    case("index_int_array", lambda x: x[[0, 2]], (3, 4)),
    case("index_0d_tensor", lambda x: x[rg.tensor(1)], (3, 4),
         torch_fn=lambda x: x[torch.tensor(1)]),
    case("index_bool_list", lambda x: x[[True, False, True]], (3, 4)),
    case("index_arrays_around_slice", lambda x: x[[0, 1, 1], :, [1, 0, 1]], (2, 3, 2)),
    case("index_repeated", lambda x: x[[0, 2, 0, 0]], (3, 4)),
    case("index_2d_array", lambda x: x[rg.tensor(IDX2)], (3, 4), torch_fn=lambda x: x[T(IDX2)]),
    case("index_array_pairs", lambda x: x[[0, 2, 0], [1, 1, 1]], (3, 4)),
    case("index_slice_and_array", lambda x: x[1:, [3, 0, 3]], (3, 4)),
    case("index_negative_array", lambda x: x[:, [-1, -1]], (3, 4)),
    case("index_bool_mask", lambda x: x[COND], (3, 4), torch_fn=lambda x: x[T(COND)]),
    case("index_bool_rows", lambda x: x[ROWS], (3, 4), torch_fn=lambda x: x[T(ROWS)]),
    case("index_tensor_mask", lambda x: x[x > 0], (3, 4)),

    # -- joining and splitting ---------------------------------------------------------------------
    case("cat", lambda a, b: rg.cat([a, b]), (2, 3), (4, 3),
         torch_fn=lambda a, b: torch.cat([a, b])),
    case("cat_dim1", lambda a, b, c: rg.cat([a, b, c], dim=1), (2, 1), (2, 3), (2, 2),
         torch_fn=lambda a, b, c: torch.cat([a, b, c], dim=1)),
    case("cat_negative_dim", lambda a, b: rg.cat((a, b), dim=-1), (2, 2, 1), (2, 2, 3),
         torch_fn=lambda a, b: torch.cat((a, b), dim=-1)),
    case("cat_axis", lambda a, b: rg.concatenate([a, b], axis=1), (2, 1), (2, 2),
         torch_fn=lambda a, b: torch.cat([a, b], dim=1)),
    case("stack", lambda a, b: rg.stack([a, b]), (2, 3), (2, 3),
         torch_fn=lambda a, b: torch.stack([a, b])),
    case("stack_dim1", lambda a, b, c: rg.stack([a, b, c], dim=1), (2, 3), (2, 3), (2, 3),
         torch_fn=lambda a, b, c: torch.stack([a, b, c], dim=1)),
    case("stack_negative_dim", lambda a, b: rg.stack([a, b], dim=-1), (2, 3), (2, 3),
         torch_fn=lambda a, b: torch.stack([a, b], dim=-1)),
    case("stack_0d", lambda a, b: rg.stack([a, b]), (), (),
         torch_fn=lambda a, b: torch.stack([a, b])),
    case("split", lambda x: x.split(2), (5, 3)),
    case("split_sizes", lambda x: x.split([1, 3], dim=1), (2, 4)),
    case("split_fn", lambda x: rg.split(x, 2, dim=1), (2, 5),
         torch_fn=lambda x: torch.split(x, 2, dim=1)),
    case("chunk", lambda x: x.chunk(3), (7, 2)),
    case("chunk_dim", lambda x: x.chunk(2, dim=1), (2, 5)),
    case("chunk_fewer", lambda x: rg.chunk(x, 4), (6,), torch_fn=lambda x: torch.chunk(x, 4)),
    case("split_negative_dim", lambda x: x.split([2, 1], dim=-1), (2, 3)),
    case("chunk_negative_dim", lambda x: x.chunk(2, dim=-2), (3, 2)),
    case("pad", lambda x: rg.pad(x, (1, 2)), (2, 3), torch_fn=lambda x: F.pad(x, (1, 2))),
    case("pad_2d", lambda x: rg.pad(x, (1, 0, 0, 2)), (2, 3),
         torch_fn=lambda x: F.pad(x, (1, 0, 0, 2))),
    case("pad_value", lambda x: rg.pad(x, (2, 1), value=0.5), (3,),
         torch_fn=lambda x: F.pad(x, (2, 1), value=0.5)),
    case("pad_middle_dim", lambda x: rg.pad(x, (0, 0, 1, 1)), (2, 2, 3),
         torch_fn=lambda x: F.pad(x, (0, 0, 1, 1))),
    case("pad_all_dims", lambda x: rg.pad(x, (1, 0, 0, 1, 2, 0)), (2, 1, 2),
         torch_fn=lambda x: F.pad(x, (1, 0, 0, 1, 2, 0))),

    # -- comparisons: bool tensors, never in the graph ---------------------------------------------
    *[case(f"compare_{name}", lambda a, b, f=f: f(a, b), (3, 4), (3, 4), domain=integers(-1, 2),
           gradcheck=False) for name, f in COMPARISONS],
    *[case(f"compare_{name}_broadcast", lambda a, b, f=f: f(a, b), (3, 1), (4,),
           domain=integers(-1, 2), gradcheck=False) for name, f in COMPARISONS],
    *[case(f"compare_{name}_scalar", lambda a, f=f: f(a, 0), (3, 4), domain=integers(-1, 2),
           gradcheck=False) for name, f in COMPARISONS],
    case("compare_method", lambda a, b: a.le(b), (2, 3), (3,), domain=integers(-1, 2),
         gradcheck=False),
]

test_case_names_are_unique, test_gradcheck_float64, test_matches_torch = op_table_tests(CASES)


def test_max_with_dim_names_values_and_indices():
    x = rg.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 7.0]])
    values, indices = x.max(dim=1)
    assert x.max(dim=1).values.tolist() == values.tolist() == [5.0, 7.0]
    assert x.min(dim=1).indices.tolist() == [0, 1]
    assert indices.tolist() == [1, 0] and indices.dtype == rg.int64


def test_expand_rejects_minus_one_in_a_new_dimension():
    with pytest.raises(ValueError, match="new leading dimension"):
        rg.ones(3).expand(-1, 3)
    assert rg.ones(1, 3).expand(2, -1, 3).shape == (2, 1, 3)


def test_log_softmax_of_huge_logits_is_finite():
    x = rg.tensor([[1e4, 0.0, -1e4], [1e4, 1e4, 1e4]], requires_grad=True)
    out = x.log_softmax(dim=1)
    out.backward(rg.ones(2, 3))
    assert np.isfinite(out.data).all() and np.isfinite(x.grad.data).all()
    np.testing.assert_allclose(out.data[1], -np.log(3.0), rtol=1e-6)


# -- properties: gradients of broadcast ops have their input's shape and dtype ---------------------

# (retrograd, torch) pairs; inputs are drawn from [0.5, 2] so division and pow are well-defined.
BINARY = {
    "add": (operator.add, operator.add),
    "sub": (operator.sub, operator.sub),
    "mul": (operator.mul, operator.mul),
    "div": (operator.truediv, operator.truediv),
    "pow": (operator.pow, operator.pow),
    "maximum": (rg.maximum, torch.maximum),
    "minimum": (rg.minimum, torch.minimum),
    "where": (lambda a, b: rg.where(a > 1, a, b), lambda a, b: torch.where(a > 1, a, b)),
    "expand": (lambda a, b: a.broadcast_to(np.broadcast_shapes(a.shape, b.shape)) * b,
               lambda a, b: a.broadcast_to(np.broadcast_shapes(a.shape, b.shape)) * b),
}

DTYPES = st.sampled_from(["float32", "float64"])
TOLERANCE = {"float32": dict(rtol=1e-5, atol=1e-4), "float64": dict(rtol=1e-10, atol=1e-10)}


def _leaves(rng, shapes, dtype):
    arrays = [rng.uniform(0.5, 2.0, s).astype(dtype) for s in shapes]
    return ([rg.tensor(a, requires_grad=True) for a in arrays],
            [torch.tensor(a, requires_grad=True) for a in arrays])


def _check_grads(xs, ts, out, tout, rng, dtype):
    assert out.shape == tuple(tout.shape) and out.dtype == dtype
    g = rng.standard_normal(out.shape).astype(dtype)
    out.backward(g)
    tout.backward(T(g))
    for x, t in zip(xs, ts):
        assert x.grad.shape == x.shape and x.grad.dtype == x.dtype
        assert_close(x.grad.data, t.grad.numpy(), "gradient", **TOLERANCE[dtype])


@settings(max_examples=80, deadline=None)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3),
       op=st.sampled_from(sorted(BINARY)), dtype=DTYPES, seed=st.integers(0, 2 ** 16))
def test_broadcast_gradient_has_input_shape_and_dtype(shapes, op, dtype, seed):
    rng = np.random.default_rng(seed)
    (a, b), (ta, tb) = _leaves(rng, shapes.input_shapes, dtype)
    fn, torch_fn = BINARY[op]
    out = fn(a, b)
    assert out.shape == shapes.result_shape
    _check_grads([a, b], [ta, tb], out, torch_fn(ta, tb), rng, dtype)


REDUCTIONS = ["sum", "mean", "amax", "amin", "logsumexp", "var"]


@settings(max_examples=60, deadline=None)
@given(shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=3),
       op=st.sampled_from(REDUCTIONS), keepdim=st.booleans(), dtype=DTYPES,
       seed=st.integers(0, 2 ** 16), data=st.data())
def test_reduction_gradient_has_input_shape_and_dtype(shape, op, keepdim, dtype, seed, data):
    axes = hnp.valid_tuple_axes(len(shape), min_size=1) if shape else st.sampled_from([(0,), (-1,)])
    dim = data.draw(st.none() | axes, label="dim")
    rng = np.random.default_rng(seed)
    (x,), (t,) = _leaves(rng, [shape], dtype)
    kwargs = {"correction": 0} if op == "var" else {}   # no division by n - 1 = 0
    out = getattr(x, op)(dim=dim, keepdim=keepdim, **kwargs)
    torch_dim = tuple(range(len(shape))) if dim is None else dim
    tout = getattr(t, op)(dim=torch_dim, keepdim=keepdim, **kwargs)
    _check_grads([x], [t], out, tout, rng, dtype)


@settings(max_examples=60, deadline=None)
@given(batch=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3),
       sizes=st.tuples(*[st.integers(1, 3)] * 3), vector=st.sampled_from([None, "a", "b"]),
       dtype=DTYPES, seed=st.integers(0, 2 ** 16))
def test_matmul_gradient_has_input_shape_and_dtype(batch, sizes, vector, dtype, seed):
    n, k, m = sizes
    shape_a = (k,) if vector == "a" else batch.input_shapes[0] + (n, k)
    shape_b = (k,) if vector == "b" else batch.input_shapes[1] + (k, m)
    rng = np.random.default_rng(seed)
    (a, b), (ta, tb) = _leaves(rng, [shape_a, shape_b], dtype)
    _check_grads([a, b], [ta, tb], a @ b, ta @ tb, rng, dtype)
