"""The Tensor API: creation and dtype inference, random draws, conversion, attributes, repr, casts
and comparisons. torch==2.13.0 is the reference for anything both libraries spell the same way."""
import numpy as np
import pytest
import torch

import retrograd as rg


def torch_dtype_name(t):
    return str(t.dtype).removeprefix("torch.")


# --------------------------------------------------------------------------------------------------
# rg.tensor: dtype inference follows torch.tensor
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    [1.0, 2.0], 3.0, [1, 2.5], [[1.0], [2.0]],            # Python floats -> float32
    [1, 2], 7, [[1, 2], [3, 4]],                         # ints -> int64
    [True, False], True,                                 # bools -> bool
    np.array([1.0, 2.0]), np.float64(2.0),               # NumPy float64 stays float64
    np.array([1, 2], dtype=np.int32), np.array([1.0], dtype=np.float32),
], ids=repr)
def test_tensor_dtype_inference_matches_torch(data):
    t = rg.tensor(data)
    ref = torch.tensor(data)
    assert rg.dtypes.name(t.dtype) == torch_dtype_name(ref)
    assert t.shape == tuple(ref.shape)
    np.testing.assert_array_equal(t.data, ref.numpy())


def test_tensor_dtype_override_and_names():
    assert rg.tensor([1, 2], dtype=rg.float32).dtype == np.float32
    assert rg.tensor([1.5, 2.5], dtype=rg.int64).tolist() == [1, 2]
    assert rg.tensor([1.0], dtype="float64").dtype == np.float64
    assert rg.tensor([1.0], dtype="double").dtype == np.float64
    assert rg.tensor([1.0], dtype="float").dtype == np.float32
    assert rg.tensor([1], dtype=rg.long).dtype == np.int64
    assert rg.tensor([1.0], dtype=np.float64).dtype == np.float64
    with pytest.raises(TypeError, match="unknown dtype"):
        rg.tensor([1.0], dtype="complex-ish")


def test_tensor_copies_its_input():
    a = np.array([1.0, 2.0])
    t = rg.tensor(a)
    a[0] = 100
    assert t.tolist() == [1.0, 2.0]
    u = rg.tensor(t)
    t.data[1] = 50
    assert u.tolist() == [1.0, 2.0] and not u.requires_grad


def test_tensor_from_unsupported_object():
    with pytest.raises(TypeError, match="cannot build a tensor"):
        rg.tensor({"a": 1})


# --------------------------------------------------------------------------------------------------
# Filled tensors, ranges
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["zeros", "ones", "empty"])
def test_filled_tensors_take_varargs_or_a_tuple(name):
    fn = getattr(rg, name)
    for t in (fn(2, 3), fn((2, 3)), fn([2, 3])):
        assert t.shape == (2, 3) and t.dtype == np.float32
        assert not t.requires_grad and t.is_leaf
    assert fn(4).shape == (4,)
    assert fn(()).shape == ()
    assert fn(2, dtype=rg.float64).dtype == np.float64
    assert fn(2, requires_grad=True).requires_grad
    if name != "empty":
        np.testing.assert_array_equal(fn(2, 3).data, getattr(torch, name)(2, 3).numpy())


def test_full():
    t = rg.full((2, 3), 1.5)
    assert t.shape == (2, 3) and t.dtype == np.float32
    np.testing.assert_array_equal(t.data, np.full((2, 3), 1.5))
    for value in (7, 1.5, True):                        # dtype from the fill value, as torch
        assert rg.dtypes.name(rg.full((2,), value).dtype) == \
            torch_dtype_name(torch.full((2,), value))
    assert rg.full([2], 3, dtype=rg.float64).dtype == np.float64


def test_zeros_like_ones_like_full_like():
    f = rg.tensor([[1.0, 2.0, 3.0]], dtype=rg.float64)
    i = rg.tensor([1, 2])
    z, o = rg.zeros_like(f), rg.ones_like(i)
    assert z.shape == (1, 3) and z.dtype == np.float64 and z.tolist() == [[0.0, 0.0, 0.0]]
    assert o.dtype == np.int64 and o.tolist() == [1, 1]
    assert rg.zeros_like(i, dtype=rg.float32).dtype == np.float32
    assert rg.ones_like(i, dtype="float").dtype == np.float32          # retrograd's name
    assert rg.full_like(f, 4.0).tolist() == [[4.0, 4.0, 4.0]]
    assert rg.zeros_like(f, requires_grad=True).requires_grad


def test_arange_int_and_float():
    a = rg.arange(5)
    assert a.dtype == np.int64 and a.tolist() == [0, 1, 2, 3, 4]
    assert rg.arange(2, 8, 2).tolist() == [2, 4, 6]
    b = rg.arange(0, 1, 0.25)
    assert b.dtype == np.float32 and b.tolist() == [0.0, 0.25, 0.5, 0.75]
    assert rg.arange(0.0, 3).dtype == np.float32
    assert rg.arange(3, dtype=rg.float64).dtype == np.float64
    for args in [(5,), (2, 8, 2), (0, 1, 0.25), (0.0, 3), (5, 0, -1)]:
        ref = torch.arange(*args)
        t = rg.arange(*args)
        assert rg.dtypes.name(t.dtype) == torch_dtype_name(ref)
        np.testing.assert_array_equal(t.data, ref.numpy())


def test_linspace_and_eye():
    t = rg.linspace(0, 1, 5)
    assert t.dtype == np.float32
    np.testing.assert_allclose(t.data, torch.linspace(0, 1, 5).numpy())
    assert rg.linspace(-1, 1, 3, dtype=rg.float64).tolist() == [-1.0, 0.0, 1.0]
    np.testing.assert_array_equal(rg.eye(3).data, torch.eye(3).numpy())
    np.testing.assert_array_equal(rg.eye(2, 3).data, torch.eye(2, 3).numpy())
    assert rg.eye(2).dtype == np.float32


# --------------------------------------------------------------------------------------------------
# Random draws
# --------------------------------------------------------------------------------------------------

def test_rand_randn_shapes_dtypes_and_ranges():
    rg.manual_seed(0)
    u = rg.rand(200, 5)
    assert u.shape == (200, 5) and u.dtype == np.float32
    assert rg.rand((2, 3)).shape == (2, 3)
    assert 0 <= u.data.min() and u.data.max() < 1
    assert abs(u.data.mean() - 0.5) < 0.05
    n = rg.randn(1000)
    assert n.shape == (1000,) and n.dtype == np.float32
    assert abs(n.data.mean()) < 0.15 and abs(n.data.std() - 1) < 0.1
    assert rg.randn(2, 2, dtype=rg.float64).dtype == np.float64
    assert rg.randn(3, requires_grad=True).requires_grad


def test_randint_pytorch_signatures():
    rg.manual_seed(1)
    a = rg.randint(5, (1000,))                          # randint(high, size)
    assert a.dtype == np.int64 and a.shape == (1000,)
    assert set(np.unique(a.data)) == {0, 1, 2, 3, 4}
    b = rg.randint(3, 6, (10, 20))                      # randint(low, high, size)
    assert b.shape == (10, 20)
    assert set(np.unique(b.data)) == {3, 4, 5}
    assert rg.randint(2, size=(4,)).shape == (4,)
    assert rg.randint(1, 3, size=(2, 2)).shape == (2, 2)
    assert rg.randint(10, (3,), dtype=rg.int32).dtype == np.int32
    with pytest.raises(TypeError, match="randint"):
        rg.randint(5)


def test_manual_seed_reproducibility():
    def draws():
        return [rg.rand(3, 2), rg.randn(4), rg.randint(0, 100, (5,)), rg.randperm(6)]

    rg.manual_seed(1234)
    first = draws()
    rg.manual_seed(1234)
    second = draws()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.data, b.data)
    rg.manual_seed(4321)
    third = draws()
    assert not np.array_equal(first[0].data, third[0].data)
    assert not np.array_equal(first[0].data, rg.rand(3, 2).data)   # the stream moves on


def test_generator_is_independent_of_the_default():
    g = rg.Generator().manual_seed(7)
    a = rg.rand(3, generator=g)
    rg.rand(10)                                         # draws from the default do not matter
    g.manual_seed(7)
    np.testing.assert_array_equal(rg.rand(3, generator=g).data, a.data)


# --------------------------------------------------------------------------------------------------
# NumPy interop and Python scalars
# --------------------------------------------------------------------------------------------------

def test_from_numpy_shares_memory_both_ways():
    a = np.array([1.0, 2.0, 3.0])
    t = rg.from_numpy(a)
    assert t.dtype == np.float64                        # keeps the array's dtype
    a[0] = 10
    assert t.tolist() == [10.0, 2.0, 3.0]
    t += 1                                              # in-place, outside the graph
    np.testing.assert_array_equal(a, [11.0, 3.0, 4.0])
    assert np.shares_memory(t.numpy(), a)
    with pytest.raises(TypeError, match="expected a numpy.ndarray"):
        rg.from_numpy([1, 2])


def test_numpy_shares_memory_and_refuses_tensors_that_require_grad():
    t = rg.tensor([1.0, 2.0])
    n = t.numpy()
    n[1] = 5
    assert t.tolist() == [1.0, 5.0]
    x = rg.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="detach"):
        x.numpy()
    assert x.detach().numpy() is x.data
    np.testing.assert_array_equal(np.asarray(t), [1.0, 5.0])


def test_item_and_tolist():
    t = rg.tensor([[1.5, 2.0], [3.0, 4.0]])
    assert t.tolist() == [[1.5, 2.0], [3.0, 4.0]]
    assert t[0, 0].item() == 1.5 and type(t[0, 0].item()) is float
    assert rg.tensor(3).item() == 3 and type(rg.tensor(3).item()) is int
    assert rg.tensor([True]).item() is True
    assert rg.tensor(2.5).tolist() == 2.5
    assert float(rg.tensor([2.5])) == 2.5 and int(rg.tensor(4)) == 4
    with pytest.raises(ValueError, match=r"one element.*shape \(2, 2\)"):
        t.item()


# --------------------------------------------------------------------------------------------------
# Attributes
# --------------------------------------------------------------------------------------------------

def test_shape_ndim_dtype_size_numel_T():
    t = rg.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    ref = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert t.shape == tuple(ref.shape) == (2, 3)
    assert t.ndim == t.dim() == 2
    assert t.dtype == np.float32
    assert t.size() == (2, 3) and t.size(1) == 3 and t.size(-2) == 2
    assert t.numel() == 6 and len(t) == 2
    assert t.T.shape == (3, 2)
    np.testing.assert_array_equal(t.T.data, ref.T.numpy())
    assert rg.tensor(1.0).shape == () and rg.tensor(1.0).numel() == 1
    with pytest.raises(TypeError, match="0-d"):
        len(rg.tensor(1.0))


def test_T_is_differentiable():
    x = rg.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    (x.T * rg.tensor([[1.0], [10.0], [100.0]])).sum().backward()
    assert x.grad.tolist() == [[1.0, 10.0, 100.0]]


# --------------------------------------------------------------------------------------------------
# repr
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    [1.0, 2.0], [1.5, 2.0], [[1.5, 2.0], [3.0, 4.0]], 3.0, 3.25, [-0.5, 0.0],
    [1e-6, 1.0], [1e9, 1.0], [1000.0, 1.0], [float("nan"), 1.5, float("inf")],
    [[1, 2], [3, 4]], [True, False], [],
], ids=repr)
def test_repr_matches_torch(data):
    assert repr(rg.tensor(data)) == repr(torch.tensor(data))


def test_repr_requires_grad_grad_fn_and_dtype():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    assert repr(x) == "tensor([1., 2.], requires_grad=True)" == repr(torch.tensor([1.0, 2.0],
                                                                                requires_grad=True))
    assert repr(x * 2) == "tensor([2., 4.], grad_fn=<MulBackward>)"
    assert repr(rg.tensor([1.0, 2.0], dtype=rg.float64)) == "tensor([1., 2.], dtype=float64)"
    assert repr(rg.tensor([1, 2], dtype=rg.int32)) == "tensor([1, 2], dtype=int32)"


# --------------------------------------------------------------------------------------------------
# Casts and comparisons
# --------------------------------------------------------------------------------------------------

def test_float_double_long():
    x = rg.tensor([1.5, -2.7])
    assert x.double().dtype == np.float64
    assert x.long().dtype == np.int64
    assert x.long().tolist() == torch.tensor([1.5, -2.7]).long().tolist() == [1, -2]  # toward 0
    assert rg.tensor([1, 2]).float().dtype == np.float32
    assert x.float() is not x and x.float().tolist() == x.tolist()


def test_casts_in_the_graph():
    x = rg.tensor([1.5, -2.0], requires_grad=True)
    d = x.double()
    assert d.requires_grad and d.grad_fn is not None
    (d * d).sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.tolist() == [3.0, -4.0]
    assert not x.long().requires_grad                   # integer results carry no gradient


def test_comparisons_return_bool_tensors_without_grad():
    x = rg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = rg.tensor([3.0, 2.0, 1.0])
    xt, yt = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([3.0, 2.0, 1.0])
    for op in ("__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"):
        for other, other_t in ((y, yt), (2.0, 2.0)):
            out = getattr(x, op)(other)
            assert out.dtype == np.bool_
            assert not out.requires_grad and out.grad_fn is None
            assert out.tolist() == getattr(xt, op)(other_t).tolist(), op
    assert ((x > 1) & (x < 3)).tolist() == [False, True, False]
    assert ((x < 2) | (x > 2)).tolist() == [True, False, True]
    assert (~(x > 1)).tolist() == [True, False, False]
    assert (x > 0).all().item() and not (x > 2).all().item() and (x > 2).any().item()
    assert x.eq(2.0).tolist() == [False, True, False]


def test_truth_value_of_a_tensor():
    assert bool(rg.tensor([1.0]))
    assert not bool(rg.tensor(0.0))
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(rg.tensor([1.0, 2.0]) > 0)


def test_to_takes_dtype_device_or_tensor_like_pytorch():
    t = rg.ones(2, requires_grad=True)
    assert t.to("cpu") is t and t.cpu() is t
    assert t.to(rg.float64).dtype == rg.float64
    assert t.to("cpu", dtype=rg.float64).dtype == rg.float64
    assert t.to(rg.zeros(1, dtype=rg.float64)).dtype == rg.float64
    assert t.to(rg.float32, copy=True) is not t
    t.to(rg.float64).sum().backward()
    assert t.grad.dtype == rg.float32
    with pytest.raises(ValueError, match="CPU only.*'cuda'"):
        t.to("cuda")


def test_float16_draws_and_repr():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert rg.randn(2, 3, dtype=rg.float16).dtype == rg.float16
        assert rg.rand(4, dtype=rg.float16).dtype == rg.float16
        assert repr(rg.ones(3, dtype=rg.float16)) == "tensor([1., 1., 1.], dtype=float16)"
