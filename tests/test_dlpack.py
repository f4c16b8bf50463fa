"""Zero-copy exchange: NumPy's __array__ protocol and DLPack both ways (NumPy and torch)."""
from __future__ import annotations

import numpy as np
import pytest

import retrograd as rg

torch = pytest.importorskip("torch")


def test_asarray_shares_memory():
    t = rg.arange(6.0).reshape(2, 3)
    a = np.asarray(t)
    assert np.shares_memory(a, t.data)
    a[0, 0] = 42
    assert t.data[0, 0] == 42
    assert not np.shares_memory(np.array(t), t.data)         # np.array copies by default
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    with pytest.raises(ValueError, match="copy"):
        np.asarray(t, dtype=np.float64, copy=False)


def test_torch_from_dlpack_shares_memory():
    t = rg.arange(6.0).reshape(2, 3)
    tt = torch.from_dlpack(t)
    assert tt.shape == (2, 3) and tt.dtype == torch.float32
    tt[1, 2] = -7
    assert t.data[1, 2] == -7
    t.data[0, 0] = 9
    assert tt[0, 0].item() == 9


def test_numpy_from_dlpack_and_device():
    t = rg.randn(4)
    assert t.__dlpack_device__() == (1, 0)          # kDLCPU, device 0
    assert np.shares_memory(np.from_dlpack(t), t.data)


def test_rg_from_dlpack_shares_memory_with_torch():
    tt = torch.arange(4.0)
    t = rg.from_dlpack(tt)
    assert isinstance(t, rg.Tensor) and t.dtype == np.float32 and not t.requires_grad
    t.data[1] = 7
    assert tt[1].item() == 7
    tt[2] = -1
    assert t.data[2] == -1
    y = (rg.from_dlpack(torch.ones(3, dtype=torch.float64)) * 2).sum()
    assert y.item() == 6.0


def test_rg_from_dlpack_of_numpy_and_errors():
    a = np.arange(3.0)
    assert np.shares_memory(rg.from_dlpack(a).data, a)
    with pytest.raises(TypeError, match="__dlpack__"):
        rg.from_dlpack([1.0, 2.0])
    with pytest.raises(RuntimeError, match="detach"):
        torch.from_dlpack(rg.ones(2, requires_grad=True))
    x = rg.ones(2, requires_grad=True)
    assert np.shares_memory(torch.from_dlpack(x.detach()).numpy(), x.data)
