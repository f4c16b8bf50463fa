"""The autograd engine: graph semantics, grad mode, hooks, `rg.grad`, custom Functions, in-place
updates, error messages, and backpropagation checked against the textbook delta formulas.

PyTorch (torch==2.13.0) is the oracle wherever both libraries spell the computation the same way.
"""
import re

import numpy as np
import pytest
import torch

import retrograd as rg


def both(values, dtype=np.float32, requires_grad=True):
    """The same data as a retrograd tensor and a torch tensor."""
    array = np.array(values, dtype=dtype)
    return (rg.tensor(array, requires_grad=requires_grad),
            torch.tensor(array, requires_grad=requires_grad))


def close(actual, expected, rtol=1e-6, atol=1e-6):
    if isinstance(actual, rg.Tensor):
        actual = actual.data
    if isinstance(expected, torch.Tensor):
        expected = expected.detach().numpy()
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


# --------------------------------------------------------------------------------------------------
# Graph semantics
# --------------------------------------------------------------------------------------------------

def test_reused_tensor_gradients_are_summed():
    x = rg.tensor([1.0, -2.0, 3.0], requires_grad=True)
    (x * x + x).sum().backward()                  # d/dx (x^2 + x) = 2x + 1
    np.testing.assert_array_equal(x.grad.data, [3.0, -3.0, 7.0])


def test_diamond_graph_matches_torch():
    def f(x):
        a, b = x * 2, x.exp()
        return (a * b + a.sin() * b).sum()

    x, xt = both([0.3, -1.2, 2.0])
    f(x).backward()
    f(xt).backward()
    close(x.grad, xt.grad, rtol=1e-5)


def test_retain_graph_allows_second_backward_and_grads_accumulate():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.data.copy()
    y.backward()
    expected = np.exp([1.0, 2.0]) * (1 + np.array([1.0, 2.0]))
    np.testing.assert_allclose(first, expected, rtol=1e-6)
    np.testing.assert_allclose(x.grad.data, 2 * expected, rtol=1e-6)


def test_second_backward_through_freed_graph_says_what_to_do():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward()
    before = x.grad.data.copy()
    with pytest.raises(RuntimeError, match="second time") as info:
        y.backward()
    assert "retain_graph=True" in str(info.value)
    assert "detach" in str(info.value)
    np.testing.assert_array_equal(x.grad.data, before)    # the failed call changed nothing


def test_backward_through_partly_freed_graph_raises():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    h = x.exp()                                # shared by two losses
    h.sum().backward()                         # frees ExpBackward
    with pytest.raises(RuntimeError, match="retain_graph"):
        (h * 2).sum().backward()


def test_leaf_grad_accumulates_across_backward_calls():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    g = x.grad
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [3 + 2, 3 + 4])
    assert x.grad is g                         # same tensor, as in torch
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [3.0, 3.0])


def test_long_chain_backward_needs_no_recursion():
    x0 = rg.tensor([0.5], dtype=rg.float64, requires_grad=True)
    x = x0
    for _ in range(10_000):
        x = x * 1.0001 + 0.0
    x.sum().backward()
    np.testing.assert_allclose(x0.grad.data, [1.0001 ** 10_000], rtol=1e-9)

    t0 = rg.tensor([0.5, -0.2], requires_grad=True)
    t = t0
    for _ in range(10_000):
        t = t.tanh()
    t.sum().backward()
    ref = torch.tensor([0.5, -0.2], requires_grad=True)
    r = ref
    for _ in range(10_000):
        r = r.tanh()
    r.sum().backward()
    close(t0.grad, ref.grad, rtol=1e-3)


def test_broadcast_gradients_are_reduced_to_input_shapes():
    rng = np.random.default_rng(0)
    shapes = [(3, 1), (4,), (2, 3, 4), ()]
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    ours = [rg.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    for a, b, c, d in (ours, theirs):
        ((a + b) * c * d - a / (b.exp() + 1)).sum().backward()
    for o, t, shape in zip(ours, theirs, shapes):
        assert o.grad.shape == shape
        close(o.grad, t.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_dtype_is_the_input_dtype(dtype):
    x = rg.tensor(np.array([1.0, 2.0], dtype=dtype), requires_grad=True)
    (x * np.array([0.5, 3.0], dtype=np.float64)).sum().backward()   # float64 constant
    assert x.grad.dtype == dtype
    np.testing.assert_array_equal(x.grad.data, [0.5, 3.0])


def test_mixed_dtype_inputs_each_get_their_own_dtype():
    a = rg.tensor([1.0, 2.0], dtype=rg.float32, requires_grad=True)
    b = rg.tensor([3.0, 4.0], dtype=rg.float64, requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    np.testing.assert_array_equal(a.grad.data, [3.0, 4.0])
    np.testing.assert_array_equal(b.grad.data, [1.0, 2.0])


def test_leaf_grads_never_alias_each_other_or_the_seed():
    a = rg.tensor([1.0, 2.0], requires_grad=True)
    b = rg.tensor([3.0, 4.0], requires_grad=True)
    seed = rg.tensor([1.0, 1.0])
    (a + b).backward(seed)                     # Add hands the same array to both inputs
    a.grad.data += 10
    np.testing.assert_array_equal(b.grad.data, [1.0, 1.0])
    np.testing.assert_array_equal(seed.data, [1.0, 1.0])
    assert not np.shares_memory(a.grad.data, b.grad.data)

    c = rg.tensor([5.0, 6.0], requires_grad=True)
    g = np.array([2.0, 3.0], dtype=np.float32)
    c.backward(g)                              # a leaf as the root
    c.grad.data[0] = 100
    np.testing.assert_array_equal(g, [2.0, 3.0])

    d = rg.tensor([1.0, 2.0], requires_grad=True)
    e = d.reshape(2, 1)                        # view ops pass views of the gradient back
    e.backward(rg.ones(2, 1))
    (d.sum() + d.sum()).backward()
    np.testing.assert_array_equal(d.grad.data, [3.0, 3.0])


def test_grad_fn_is_leaf_and_next_functions():
    a = rg.tensor([1.0, 2.0], requires_grad=True)
    b = a * 2
    c = b.exp() + a
    assert a.is_leaf and a.grad_fn is None
    assert not b.is_leaf and not c.is_leaf
    assert rg.tensor([1.0]).is_leaf
    assert c.grad_fn.name() == "AddBackward"
    exp_node, leaf = c.grad_fn.next_functions
    assert leaf is a
    assert exp_node.next_functions == (b.grad_fn,)
    assert b.grad_fn.next_functions[0] is a
    # a constant input has no node
    assert (a * rg.tensor([3.0, 4.0])).grad_fn.next_functions[1] is None


def test_non_leaf_grad_is_not_kept_unless_retained():
    a = rg.tensor([1.0, 2.0], requires_grad=True)
    b = a * 2
    c = b * 3
    c.retain_grad()
    (c * c).sum().backward(retain_graph=True)
    assert b.grad is None
    np.testing.assert_array_equal(c.grad.data, 2 * np.array([6.0, 12.0]))
    (c * c).sum().backward()                   # retained grads accumulate too, as in torch
    np.testing.assert_array_equal(c.grad.data, 4 * np.array([6.0, 12.0]))
    a.retain_grad()                            # no-op on a leaf
    np.testing.assert_array_equal(a.grad.data, 2 * 2 * 36 * np.array([1.0, 2.0]))


# --------------------------------------------------------------------------------------------------
# Grad mode, detach, requires_grad_
# --------------------------------------------------------------------------------------------------

def test_no_grad_context_manager():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    with rg.no_grad():
        assert not rg.is_grad_enabled()
        y = x * 2
    assert rg.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    np.testing.assert_array_equal(y.data, [2.0, 4.0])


def test_no_grad_decorator_and_restore_after_exception():
    x = rg.tensor([1.0, 2.0], requires_grad=True)

    @rg.no_grad()
    def double(t):
        return t * 2

    assert not double(x).requires_grad
    assert rg.is_grad_enabled()
    with pytest.raises(ZeroDivisionError):
        with rg.no_grad():
            1 / 0
    assert rg.is_grad_enabled()


def test_enable_grad_inside_no_grad():
    x = rg.tensor([1.0, 2.0], requires_grad=True)

    @rg.enable_grad()
    def square(t):
        return t * t

    with rg.no_grad():
        with rg.enable_grad():
            y = x * 3
        z = square(x)
        w = x * 3
        assert not rg.is_grad_enabled()
    assert y.requires_grad and z.requires_grad and not w.requires_grad
    (y + z).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [5.0, 7.0])


def test_detach_shares_data_and_cuts_the_graph():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    d = y.detach()
    assert d.data is y.data
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf
    (d * x).sum().backward()                   # no gradient flows through d
    np.testing.assert_array_equal(x.grad.data, [2.0, 4.0])


def test_in_place_edit_through_detach_is_caught():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    y = x * x                                  # saves x
    x.detach().add_(1.0)                       # the same memory and version counter, as in torch
    np.testing.assert_array_equal(x.data, [2.0, 3.0])
    with pytest.raises(RuntimeError, match="in-place"):
        y.sum().backward()


def test_requires_grad_():
    x = rg.tensor([1.0, 2.0])
    assert not (x * 2).requires_grad
    assert x.requires_grad_() is x
    y = x * 2
    assert y.requires_grad
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, [2.0, 2.0])
    x.requires_grad_(False)
    assert not (x * 2).requires_grad
    with pytest.raises(RuntimeError, match="detach"):
        y.requires_grad_(False)                # a non-leaf


# --------------------------------------------------------------------------------------------------
# Hooks
# --------------------------------------------------------------------------------------------------

def test_leaf_hook_sees_the_gradient_replaces_it_and_can_be_removed():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    seen = []

    def hook(g):
        seen.append(g.data.copy())
        return g * 10

    handle = x.register_hook(hook)
    (x * 3 + x).sum().backward()               # the hook runs once, on the summed gradient
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], [4.0, 4.0])
    np.testing.assert_array_equal(x.grad.data, [40.0, 40.0])
    handle.remove()
    x.grad = None
    (x * 3).sum().backward()
    assert len(seen) == 1
    np.testing.assert_array_equal(x.grad.data, [3.0, 3.0])


def test_non_leaf_hook_changes_what_flows_upstream():
    x, xt = both([1.0, 2.0])
    results = []
    for t in (x, xt):
        h = t * 2
        seen = []
        h.register_hook(lambda g, seen=seen: seen.append(np.array(g.tolist())) or g * 10)
        (h * h).sum().backward()
        results.append(seen)
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][0], [4.0, 8.0])
    close(x.grad, xt.grad)
    np.testing.assert_array_equal(x.grad.data, [80.0, 160.0])


def test_hook_returning_none_keeps_the_gradient_and_remove_works_on_non_leaf():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    calls = []
    handle = h.register_hook(lambda g: calls.append(1))
    handle.remove()
    handle.remove()                            # removing twice is harmless
    h.register_hook(lambda g: calls.append(2))
    h.sum().backward()
    assert calls == [2]
    np.testing.assert_array_equal(x.grad.data, [2.0, 2.0])


def test_hook_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="doesn't require grad"):
        rg.tensor([1.0]).register_hook(lambda g: g)


# --------------------------------------------------------------------------------------------------
# rg.grad
# --------------------------------------------------------------------------------------------------

def test_grad_returns_gradients_without_touching_dot_grad():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    w = rg.tensor([3.0, -1.0], requires_grad=True)
    loss = (x * x * w).sum()
    dx, dw = rg.grad(loss, [x, w])
    np.testing.assert_array_equal(dx.data, [6.0, -4.0])
    np.testing.assert_array_equal(dw.data, [1.0, 4.0])
    assert x.grad is None and w.grad is None
    (dx_single,) = rg.grad((x * x).sum(), x)
    np.testing.assert_array_equal(dx_single.data, [2.0, 4.0])


def test_grad_with_respect_to_non_leaf_matches_torch():
    x, xt = both([1.0, 2.0])
    out = []
    for t, lib in ((x, rg), (xt, torch)):
        h = t * 3
        z = (h.sin() * h).sum()
        out.append(lib.autograd.grad(z, [h, t]) if lib is torch else rg.grad(z, [h, t]))
    for ours, theirs in zip(*out):
        close(ours, theirs, rtol=1e-5)
    assert x.grad is None


def test_grad_outputs_and_several_outputs():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    (g,) = rg.grad(x * 2, x, grad_outputs=rg.tensor([1.0, 10.0]))
    np.testing.assert_array_equal(g.data, [2.0, 20.0])
    (g,) = rg.grad([x * 2, x * x], x, grad_outputs=[np.ones(2), np.ones(2)])
    np.testing.assert_array_equal(g.data, [4.0, 6.0])
    with pytest.raises(RuntimeError, match="pass gradient="):
        rg.grad(x * 2, x)


def test_grad_allow_unused_and_retain_graph():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    unused = rg.tensor([5.0], requires_grad=True)
    y = (x * x).sum()
    with pytest.raises(RuntimeError, match="allow_unused=True"):
        rg.grad(y, [x, unused], retain_graph=True)
    gx, gu = rg.grad(y, [x, unused], allow_unused=True, retain_graph=True)
    assert gu is None
    np.testing.assert_array_equal(gx.data, [2.0, 4.0])
    (again,) = rg.grad(y, x)                   # the graph was retained
    np.testing.assert_array_equal(again.data, [2.0, 4.0])
    with pytest.raises(RuntimeError, match="retain_graph"):
        rg.grad(y, x)


def test_grad_results_are_fresh_arrays():
    a = rg.tensor([1.0, 2.0], requires_grad=True)
    b = rg.tensor([3.0, 4.0], requires_grad=True)
    ga, gb = rg.grad(a + b, [a, b], grad_outputs=rg.ones(2))
    ga.data += 1
    np.testing.assert_array_equal(gb.data, [1.0, 1.0])


# --------------------------------------------------------------------------------------------------
# Custom Functions
# --------------------------------------------------------------------------------------------------

class ScaledCube(rg.Function):
    """k * x^3 * w with a non-tensor option k; records what forward was told."""

    seen_needs = []

    @staticmethod
    def forward(ctx, x, w, k=1.0):
        ScaledCube.seen_needs.append(ctx.needs_input_grad)
        ctx.save_for_backward(x, w)
        ctx.k = k
        return k * x ** 3 * w

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        gx = grad * ctx.k * 3 * x ** 2 * w if ctx.needs_input_grad[0] else None
        gw = grad * ctx.k * x ** 3 if ctx.needs_input_grad[1] else None
        return gx, gw


def test_custom_function_forward_backward_and_needs_input_grad():
    ScaledCube.seen_needs.clear()
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    w = rg.tensor([3.0], requires_grad=True)
    y = ScaledCube.apply(x, w, k=2.0)
    np.testing.assert_array_equal(y.data, [6.0, 48.0])
    assert y.grad_fn.name() == "ScaledCubeBackward"
    assert y.grad_fn.next_functions == (x, w)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, [18.0, 72.0])
    np.testing.assert_array_equal(w.grad.data, [18.0])     # reduced from the broadcast shape (2,)

    ScaledCube.apply(x, rg.tensor([3.0]))
    with rg.no_grad():
        z = ScaledCube.apply(x, w)
    assert not z.requires_grad and z.grad_fn is None
    assert ScaledCube.seen_needs == [(True, True), (True, False), (False, False)]


def test_custom_function_saved_tensors_freed_after_backward():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    y = ScaledCube.apply(x, rg.tensor([1.0]))
    node = y.grad_fn
    assert len(node.saved_tensors) == 2
    y.sum().backward()
    assert node.saved_tensors == ()


def test_custom_function_wrong_number_of_gradients():
    class Bad(rg.Function):
        @staticmethod
        def forward(ctx, a, b):
            return a + b

        @staticmethod
        def backward(ctx, grad):
            return grad

    a = rg.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="returned 1 gradients for 2 inputs"):
        Bad.apply(a, a).sum().backward()


# --------------------------------------------------------------------------------------------------
# Error messages
# --------------------------------------------------------------------------------------------------

def test_matmul_shape_mismatch_message():
    with pytest.raises(ValueError, match=re.escape("matmul: cannot multiply (3, 4) by (5, 2)")):
        rg.ones(3, 4) @ rg.ones(5, 2)


def test_backward_on_non_scalar_needs_gradient():
    y = rg.ones(3, 4, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=re.escape("(3, 4)")) as info:
        y.backward()
    assert "gradient=" in str(info.value)
    assert "reduce" in str(info.value) and ".sum()" in str(info.value)
    with pytest.raises(RuntimeError, match="gradient has shape"):
        y.backward(np.ones(3))


def test_backward_on_tensor_without_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        rg.tensor([1.0]).sum().backward()


@pytest.mark.parametrize("make", [
    lambda: rg.tensor([1, 2], requires_grad=True),
    lambda: rg.tensor([1, 2]).requires_grad_(),
    lambda: rg.arange(3, requires_grad=True),
    lambda: rg.zeros(2, dtype=rg.int64, requires_grad=True),
])
def test_requires_grad_on_int_tensor_is_a_clear_error(make):
    with pytest.raises(RuntimeError, match="only floating-point tensors can require grad") as e:
        make()
    assert "int64" in str(e.value) and ".float()" in str(e.value)


# --------------------------------------------------------------------------------------------------
# In-place updates
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["+=", "-=", "*=", "/=", "add_", "mul_", "setitem"])
def test_in_place_on_leaf_that_requires_grad_raises(op):
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad") as info:
        if op == "+=":
            x += 1
        elif op == "-=":
            x -= 1
        elif op == "*=":
            x *= 2
        elif op == "/=":
            x /= 2
        elif op == "setitem":
            x[0] = 5.0
        else:
            getattr(x, op)(2.0)
    assert "no_grad" in str(info.value)
    np.testing.assert_array_equal(x.data, [1.0, 2.0])


def test_in_place_under_no_grad_modifies_data():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    data = x.data
    with rg.no_grad():
        x += 1
        x *= 2
        x -= 0.5
        x /= 2
        x[0] = 7.0
    assert x.data is data and x.is_leaf and x.requires_grad
    np.testing.assert_array_equal(x.data, [7.0, 2.75])
    (x * x).sum().backward()                   # still a usable leaf
    np.testing.assert_array_equal(x.grad.data, [14.0, 5.5])


def _in_place_chain(x, w):
    y = x * 3
    y += w
    y *= 2
    y -= x
    y *= w                                     # y's old value is needed for w's gradient
    y /= 4
    return (y * y).sum()


def test_in_place_on_non_leaf_matches_torch():
    (x, xt), (w, wt) = both([1.0, -2.0, 0.5]), both([0.5, 1.5, -1.0])
    _in_place_chain(x, w).backward()
    _in_place_chain(xt, wt).backward()
    close(x.grad, xt.grad, rtol=1e-5)
    close(w.grad, wt.grad, rtol=1e-5)


def test_in_place_keeps_memory_and_moves_grad_fn():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    data = y.data
    y += 1
    assert y.data is data
    assert y.grad_fn.name() == "AddBackward"
    np.testing.assert_array_equal(y.data, [4.0, 7.0])


def test_in_place_on_value_needed_by_backward_raises():
    x = rg.tensor([0.5, -1.0], requires_grad=True)
    y = x.sigmoid()                            # sigmoid saves its output
    y *= 2
    with pytest.raises(RuntimeError, match="in-place") as info:
        y.sum().backward()
    assert "SigmoidBackward" in str(info.value)

    x = rg.tensor([0.5, -1.0], requires_grad=True)
    h = x * 2
    z = h * h                                  # saves h as an input
    h += 1
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        z.sum().backward()


def test_in_place_on_a_view_inside_the_graph_raises():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="view"):
        y[0:1] += 1


def test_setitem_inside_graph_matches_torch():
    results = []
    for lib in (rg, torch):
        x = lib.tensor([1.0, -2.0, 3.0, 4.0, 0.5], requires_grad=True)
        v = lib.tensor(5.0, requires_grad=True)
        u = lib.tensor([2.0, -1.0], requires_grad=True)
        h = x * 2
        h[1] = v * 3
        h[2:4] = u.exp()                       # a slice from another tensor
        h[lib.tensor([True, False, False, False, False])] = v
        (h * h * lib.tensor([1.0, 2.0, 3.0, 4.0, 5.0])).sum().backward()
        results.append([np.array(t.grad.tolist()) for t in (x, v, u)] + [np.array(h.tolist())])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    # only x[4] survives the writes: d/dx4 of 5 (2 x4)^2 = 5 * 2 * (2 x4) * 2 at x4 = 0.5
    np.testing.assert_array_equal(results[0][0], [0, 0, 0, 0, 5 * 2 * 1.0 * 2])


def test_setitem_into_plain_tensor_builds_a_graph():
    v = rg.tensor([2.0, 3.0], requires_grad=True)
    z = rg.zeros(4)
    z[1:3] = v * v
    assert z.requires_grad and z.grad_fn is not None
    (z * rg.tensor([1.0, 10.0, 100.0, 1000.0])).sum().backward()
    np.testing.assert_array_equal(v.grad.data, [2 * 2.0 * 10, 2 * 3.0 * 100])


def test_setitem_broadcast_value_gradient_is_summed():
    x, xt = both([1.0, 2.0, 3.0])
    v, vt = both(4.0)
    for a, b in ((x, v), (xt, vt)):
        h = a * 1
        h[:2] = b
        (h * h).sum().backward()
    close(v.grad, vt.grad)
    close(x.grad, xt.grad)
    assert v.grad.shape == ()


# --------------------------------------------------------------------------------------------------
# The textbook: backpropagation's delta rule for a 2-layer sigmoid network
# --------------------------------------------------------------------------------------------------

def _sigma(z):
    return 1 / (1 + np.exp(-z))


def _sigma_prime(z):
    return _sigma(z) * (1 - _sigma(z))


@pytest.mark.parametrize("batch", [1, 4])
def test_backward_equals_hand_written_delta_formulas(batch):
    rng = np.random.default_rng(batch)
    n0, n1, n2 = 3, 5, 2
    x = rng.standard_normal((n0, batch))        # column vectors, one per sample
    y = rng.uniform(0, 1, (n2, batch))
    W1, b1 = rng.standard_normal((n1, n0)), rng.standard_normal((n1, 1))
    W2, b2 = rng.standard_normal((n2, n1)), rng.standard_normal((n2, 1))

    # by hand: forward, then delta_L = (a_L - y) * sigma'(z_L), delta_l = (W^T delta) * sigma'(z_l)
    z1 = W1 @ x + b1
    a1 = _sigma(z1)
    z2 = W2 @ a1 + b2
    a2 = _sigma(z2)
    delta2 = (a2 - y) * _sigma_prime(z2)
    delta1 = (W2.T @ delta2) * _sigma_prime(z1)
    expected = {
        "W2": delta2 @ a1.T, "b2": delta2.sum(axis=1, keepdims=True),   # sums over the samples
        "W1": delta1 @ x.T, "b1": delta1.sum(axis=1, keepdims=True),
    }

    params = {name: rg.tensor(v, requires_grad=True)
              for name, v in (("W1", W1), ("b1", b1), ("W2", W2), ("b2", b2))}
    a1_t = (params["W1"] @ rg.tensor(x) + params["b1"]).sigmoid()
    a2_t = (params["W2"] @ a1_t + params["b2"]).sigmoid()
    E = 0.5 * ((rg.tensor(y) - a2_t) ** 2).sum()
    E.backward()

    np.testing.assert_allclose(E.item(), 0.5 * np.sum((y - a2) ** 2), rtol=1e-12)
    for name, grad in expected.items():
        assert params[name].grad.dtype == np.float64
        assert params[name].grad.shape == grad.shape
        np.testing.assert_allclose(params[name].grad.data, grad, rtol=1e-10, atol=1e-12,
                                   err_msg=name)
