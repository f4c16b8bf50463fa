"""retrograd.data: datasets, random_split, DataLoader and collate (PyTorch as the oracle)."""
import collections
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate as torch_collate

import retrograd as rg
from retrograd.data import (BatchSampler, ConcatDataset, DataLoader, Dataset, RandomSampler,
                            SequentialSampler, Subset, TensorDataset, datasets, default_collate,
                            random_split)


def make_ds(n=10):
    return TensorDataset(rg.arange(n * 2, dtype="float32").reshape(n, 2), rg.arange(n))


def epoch(loader):
    return [[t.data.copy() for t in batch] for batch in loader]


# -- datasets --------------------------------------------------------------------------------------

def test_tensor_dataset_rows():
    ds = make_ds(5)
    assert len(ds) == 5
    x, y = ds[3]
    np.testing.assert_array_equal(x.data, [6.0, 7.0])
    assert y.shape == () and y.item() == 3 and x.dtype == np.float32
    np.testing.assert_array_equal(ds[1:3][0].data, [[2, 3], [4, 5]])
    ds_np = TensorDataset(np.zeros((4, 3)), np.arange(4))   # arrays are wrapped, dtype kept
    assert ds_np[0][0].dtype == np.float64


def test_tensor_dataset_size_mismatch_names_sizes():
    with pytest.raises(ValueError, match=r"same size in the first dimension.*\[5, 4\]"):
        TensorDataset(rg.zeros(5, 2), rg.zeros(4))
    with pytest.raises(ValueError, match="at least one tensor"):
        TensorDataset()
    with pytest.raises(ValueError, match="0-d"):
        TensorDataset(rg.tensor(1.0))


def test_subset_and_concat():
    ds = make_ds(10)
    sub = Subset(ds, [7, 2, 5])
    assert len(sub) == 3 and sub[0][1].item() == 7 and sub[-1][1].item() == 5
    both = ConcatDataset([sub, ds])
    assert len(both) == 13 and both[2][1].item() == 5 and both[3][1].item() == 0
    assert (sub + ds)[12][1].item() == 9
    with pytest.raises(IndexError):
        both[13]


@pytest.mark.parametrize("lengths, sizes", [([7, 3], [7, 3]), ([0.8, 0.2], [8, 2]),
                                            ([0.5, 0.3, 0.2], [5, 3, 2]),
                                            ([1 / 3] * 3, [4, 3, 3])])
def test_random_split_partitions(lengths, sizes):
    parts = random_split(make_ds(10), lengths, generator=rg.Generator(0))
    assert [len(p) for p in parts] == sizes
    seen = [i for p in parts for i in p.indices]
    assert sorted(seen) == list(range(10))       # covers everything, no overlap


def test_random_split_fraction_counts_match_torch():
    for n, fracs in [(10, [1 / 3] * 3), (101, [0.7, 0.2, 0.1]), (7, [0.5, 0.5])]:
        ours = random_split(make_ds(n), fracs, generator=rg.Generator(0))
        theirs = torch.utils.data.random_split(range(n), fracs)
        assert [len(p) for p in ours] == [len(p) for p in theirs]


def test_random_split_reproducible():
    ds = make_ds(20)
    a = random_split(ds, [15, 5], generator=rg.Generator(3))
    b = random_split(ds, [15, 5], generator=rg.Generator(3))
    c = random_split(ds, [15, 5], generator=rg.Generator(4))
    assert a[0].indices == b[0].indices and a[0].indices != c[0].indices
    rg.manual_seed(1)
    d = random_split(ds, [15, 5])
    rg.manual_seed(1)
    assert random_split(ds, [15, 5])[1].indices == d[1].indices


def test_random_split_errors():
    with pytest.raises(ValueError, match=r"sum to 9, but the dataset has 10"):
        random_split(make_ds(10), [5, 4])
    with pytest.raises(ValueError, match="non-negative"):
        random_split(make_ds(10), [12, -2])


# -- DataLoader ------------------------------------------------------------------------------------

def test_batches_in_order_with_partial_last():
    loader = DataLoader(make_ds(10), batch_size=4)
    assert len(loader) == 3
    batches = list(loader)
    assert isinstance(batches[0], list) and len(batches) == 3
    assert [b[0].shape for b in batches] == [(4, 2), (4, 2), (2, 2)]
    np.testing.assert_array_equal(np.concatenate([b[1].data for b in batches]), np.arange(10))
    assert batches[0][0].dtype == np.float32 and batches[0][1].dtype == np.int64


def test_drop_last():
    loader = DataLoader(make_ds(10), batch_size=4, drop_last=True)
    assert len(loader) == 2
    assert [b[0].shape[0] for b in loader] == [4, 4]
    assert len(DataLoader(make_ds(8), batch_size=4, drop_last=True)) == 2
    with pytest.raises(ValueError, match="no batches"):
        DataLoader(make_ds(3), batch_size=4, drop_last=True)


def test_fast_path_matches_per_sample_collate():
    ds = make_ds(11)
    sub = random_split(ds, [0.6, 0.4], generator=rg.Generator(0))[0]
    for data in (ds, sub, Subset(sub, [4, 0, 2])):
        fast = epoch(DataLoader(data, batch_size=3))
        slow = epoch(DataLoader(data, batch_size=3, collate_fn=lambda b: default_collate(b)))
        assert len(fast) == len(slow)
        for f, s in zip(fast, slow):
            for a, b in zip(f, s):
                np.testing.assert_array_equal(a, b)
                assert a.dtype == b.dtype


def test_batches_are_copies():
    ds = make_ds(4)
    x, _ = next(iter(DataLoader(ds, batch_size=2)))
    x.data[:] = -1
    assert ds.tensors[0].data.min() == 0


def test_shuffle_reproducible_and_new_each_epoch():
    ds = make_ds(50)
    rg.manual_seed(0)
    loader = DataLoader(ds, batch_size=8, shuffle=True)
    e1, e2 = epoch(loader), epoch(loader)
    rg.manual_seed(0)
    r1, r2 = epoch(loader), epoch(loader)
    labels = lambda e: np.concatenate([b[1] for b in e])  # noqa: E731
    np.testing.assert_array_equal(labels(e1), labels(r1))
    np.testing.assert_array_equal(labels(e2), labels(r2))
    assert not np.array_equal(labels(e1), labels(e2))          # a new order each epoch
    assert sorted(labels(e1)) == list(range(50))               # still every sample once
    assert not np.array_equal(labels(e1), np.arange(50))


def test_shuffle_with_generator():
    ds = make_ds(30)
    a = epoch(DataLoader(ds, batch_size=7, shuffle=True, generator=rg.Generator(5)))
    rg.manual_seed(123)  # the default generator must not matter
    b = epoch(DataLoader(ds, batch_size=7, shuffle=True, generator=rg.Generator(5)))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x[1], y[1])


def test_argument_errors():
    ds = make_ds(4)
    for bad in (0, -2, 2.5, None, True):
        with pytest.raises(ValueError, match=f"batch_size must be a positive integer, got {bad}"):
            DataLoader(ds, batch_size=bad)
    with pytest.raises(ValueError, match="empty"):
        DataLoader(TensorDataset(rg.zeros(0, 3)))
    with pytest.raises(ValueError, match="mutually exclusive"):
        DataLoader(ds, shuffle=True, sampler=[0, 1])
    with pytest.raises(TypeError, match="callable"):
        DataLoader(ds, collate_fn="stack")


def test_samplers():
    ds = make_ds(5)
    loader = DataLoader(ds, batch_size=2, sampler=[4, 3, 2, 1, 0])
    np.testing.assert_array_equal(np.concatenate([b[1].data for b in loader]), [4, 3, 2, 1, 0])
    bs = BatchSampler(SequentialSampler(ds), batch_size=2, drop_last=False)
    assert list(bs) == [[0, 1], [2, 3], [4]] and len(bs) == 3
    loader = DataLoader(ds, batch_sampler=[[0, 4], [2]])
    assert len(loader) == 2 and [b[1].tolist() for b in loader] == [[0, 4], [2]]
    rs = RandomSampler(ds, generator=rg.Generator(0))
    assert sorted(rs) == list(range(5)) and len(rs) == 5
    rs = RandomSampler(ds, num_samples=12, generator=rg.Generator(0))
    assert len(list(rs)) == 12 and set(rs) == set(range(5))
    with pytest.raises(ValueError, match="num_samples"):
        RandomSampler(TensorDataset(rg.zeros(0)))


# -- collate vs torch.utils.data.default_collate ---------------------------------------------------

def to_torch_like(x):
    """Our collated structure with Tensors turned into NumPy, for comparing with torch's."""
    if isinstance(x, rg.Tensor):
        return x.data
    if isinstance(x, torch.Tensor):
        return x.numpy()
    if isinstance(x, dict):
        return {k: to_torch_like(v) for k, v in x.items()}
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return type(x)(*map(to_torch_like, x))
    if isinstance(x, list):
        return [to_torch_like(v) for v in x]
    return x


def assert_same(ours, theirs, float64_ok=False):
    assert type(ours) is type(theirs), (type(ours), type(theirs))
    if isinstance(ours, np.ndarray):
        np.testing.assert_array_equal(ours, theirs)
        if float64_ok and theirs.dtype == np.float64:   # Python floats: float32 here, float64 there
            assert ours.dtype == np.float32
        else:
            assert ours.dtype == theirs.dtype, (ours.dtype, theirs.dtype)
    elif isinstance(ours, dict):
        assert ours.keys() == theirs.keys()
        for k in ours:
            assert_same(ours[k], theirs[k], float64_ok)
    elif isinstance(ours, (list, tuple)):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert_same(a, b, float64_ok)
    else:
        assert ours == theirs


Point = collections.namedtuple("Point", "x y")

COLLATE_CASES = {
    "ints": [1, 2, 3],
    "bools": [True, False],
    "np_scalars": [np.float64(1.5), np.float64(2.0)],
    "np_int32": [np.int32(1), np.int32(7)],
    "np_float64_arrays": [np.zeros(3), np.ones(3)],
    "np_float32_arrays": [np.zeros((2, 2), np.float32), np.ones((2, 2), np.float32)],
    "np_uint8_images": [np.full((1, 2, 2), 9, np.uint8), np.zeros((1, 2, 2), np.uint8)],
    "tuples": [(np.arange(3), 1, "a"), (np.arange(3) + 1, 2, "b")],
    "dicts": [{"img": np.zeros(2, np.float32), "label": 3, "name": "p"},
              {"img": np.ones(2, np.float32), "label": 4, "name": "q"}],
    "nested": [{"pair": [np.int64(1), {"z": np.zeros(1, np.int16)}]},
               {"pair": [np.int64(2), {"z": np.ones(1, np.int16)}]}],
    "namedtuple": [Point(np.zeros(2, np.float32), 0), Point(np.ones(2, np.float32), 1)],
    "strings": ["a", "b"],
}


@pytest.mark.parametrize("name", list(COLLATE_CASES))
def test_default_collate_matches_torch(name):
    batch = COLLATE_CASES[name]
    assert_same(to_torch_like(default_collate(batch)), to_torch_like(torch_collate(batch)))


def test_default_collate_python_floats_are_float32():
    batch = [(1.5, {"w": 0.25}), (2.5, {"w": 0.75})]
    ours, theirs = default_collate(batch), torch_collate(batch)
    assert_same(to_torch_like(ours), to_torch_like(theirs), float64_ok=True)
    assert ours[0].dtype == np.float32 and ours[1]["w"].dtype == np.float32
    assert default_collate([1, 2.5]).dtype == np.float32            # int first, float later


def test_default_collate_tensors_and_errors():
    out = default_collate([rg.zeros(2, 3), rg.ones(2, 3)])
    assert isinstance(out, rg.Tensor) and out.shape == (2, 2, 3) and out.dtype == np.float32
    with pytest.raises(RuntimeError, match=r"same shape.*\(3,\) at index 0 and \(4,\) at index 1"):
        default_collate([np.zeros(3), np.zeros(4)])
    with pytest.raises(RuntimeError, match="same length"):
        default_collate([[1, 2], [3]])
    with pytest.raises(TypeError, match="found <class 'NoneType'>"):
        default_collate([None, None])
    with pytest.raises(TypeError, match="found <U1"):
        default_collate([np.array(["a"]), np.array(["b"])])


class Pairs(Dataset):
    """A Python-level dataset: dict samples with arrays, numbers and strings."""

    def __len__(self):
        return 7

    def __getitem__(self, i):
        return {"x": np.full(3, i, np.float32), "y": i % 2, "w": np.float64(i / 2), "id": f"s{i}"}


def test_custom_dataset_default_collate_matches_torch():
    ours = list(DataLoader(Pairs(), batch_size=3))
    theirs = list(torch.utils.data.DataLoader(Pairs(), batch_size=3))
    assert len(ours) == len(theirs) == 3
    for a, b in zip(ours, theirs):
        assert_same(to_torch_like(a), to_torch_like(b))


def test_custom_collate_fn():
    seen = []

    def collate(samples):
        seen.append(len(samples))
        return sum(int(s[1].item()) for s in samples)

    sums = list(DataLoader(make_ds(10), batch_size=4, collate_fn=collate))
    assert sums == [0 + 1 + 2 + 3, 4 + 5 + 6 + 7, 8 + 9] and seen == [4, 4, 2]


# -- built-in datasets -----------------------------------------------------------------------------

def test_xor():
    x, y = datasets.xor().tensors
    np.testing.assert_array_equal(x.data, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(y.data, [[0], [1], [1], [0]])
    assert x.dtype == y.dtype == np.float32 and y.shape == (4, 1)


def test_digits_shapes_and_ranges():
    pytest.importorskip("sklearn")
    x, y = datasets.digits().tensors
    assert x.shape == (1797, 64) and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64 and set(y.tolist()) == set(range(10))
    assert x.data.min() == 0.0 and x.data.max() == 1.0
    raw = datasets.digits(normalize=False, flat=False).tensors[0]
    assert raw.shape == (1797, 1, 8, 8) and raw.data.max() == 16.0
    np.testing.assert_array_equal(raw.data.reshape(1797, 64) / 16, x.data)


def test_digits_split():
    pytest.importorskip("sklearn")
    train, test = datasets.digits("both")
    assert len(train) + len(test) == 1797 and abs(len(test) - 0.2 * 1797) < 10
    # the split is stratified: each digit is about 20% test
    counts = np.bincount(test.tensors[1].data, minlength=10) / np.bincount(
        datasets.digits().tensors[1].data, minlength=10)
    assert np.all(np.abs(counts - 0.2) < 0.01)
    # train and test partition the images (all 1,797 are distinct, so compare them as bytes)
    rows = lambda ds: [r.tobytes() for r in ds.tensors[0].data]  # noqa: E731
    full = rows(datasets.digits())
    assert len(set(full)) == 1797
    assert not set(rows(train)) & set(rows(test))
    assert sorted(rows(train) + rows(test)) == sorted(full)
    # deterministic by seed, independent of the library generator
    rg.manual_seed(99)
    again = datasets.digits("test")
    np.testing.assert_array_equal(again.tensors[0].data, test.tensors[0].data)
    other = datasets.digits("test", seed=1)
    assert not np.array_equal(other.tensors[1].data, test.tensors[1].data)
    np.testing.assert_array_equal(datasets.digits("train").tensors[1].data, train.tensors[1].data)
    with pytest.raises(ValueError, match="split must be"):
        datasets.digits("validation")


def test_digits_without_sklearn_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(ImportError, match=r'pip install "retrograd\[datasets\]"'):
        datasets.digits()


def test_moons():
    x, y = datasets.moons(n_samples=101, noise=0.0, shuffle=False).tensors
    assert x.shape == (101, 2) and x.dtype == np.float32 and y.dtype == np.int64
    assert (y.data == 0).sum() == 50 and (y.data == 1).sum() == 51
    np.testing.assert_allclose(np.linalg.norm(x.data[:50], axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(x.data[50:] - [1, 0.5], axis=1), 1, atol=1e-6)
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    sx, sy = sklearn_datasets.make_moons(n_samples=101, shuffle=False)
    np.testing.assert_allclose(x.data, sx, atol=1e-6)
    np.testing.assert_array_equal(y.data, sy)


def test_moons_and_spirals_reproducible():
    for make in (datasets.moons, datasets.spirals):
        a, b, c = make(seed=3), make(seed=3), make(seed=4)
        np.testing.assert_array_equal(a.tensors[0].data, b.tensors[0].data)
        assert not np.array_equal(a.tensors[0].data, c.tensors[0].data)
        rg.manual_seed(7)
        d = make(seed=None)
        rg.manual_seed(7)
        np.testing.assert_array_equal(make(seed=None).tensors[0].data, d.tensors[0].data)


def test_spirals():
    x, y = datasets.spirals(n_classes=4, n_samples_per_class=25, noise=0.0, shuffle=False).tensors
    assert x.shape == (100, 2) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(y.data, np.repeat(np.arange(4), 25))
    radius = np.linalg.norm(x.data, axis=1)
    np.testing.assert_allclose(radius[:25], np.linspace(0, 1, 25), atol=1e-6)
    shuffled = datasets.spirals(n_classes=4, n_samples_per_class=25).tensors[1].data
    assert np.bincount(shuffled).tolist() == [25] * 4
    with pytest.raises(ValueError, match="n_classes must be a positive integer, got 0"):
        datasets.spirals(n_classes=0)


def test_digits_trains_through_loader():
    """End to end: a softmax regression on digits learns through the fast loader path."""
    pytest.importorskip("sklearn")
    train, test = datasets.digits("both")
    rg.manual_seed(0)
    w = rg.zeros(64, 10, requires_grad=True)
    for _ in range(3):
        for x, y in DataLoader(train, batch_size=64, shuffle=True):
            logp = (x @ w).log_softmax(dim=1)
            loss = -(logp * rg.tensor(np.eye(10, dtype=np.float32)[y.data])).sum(dim=1).mean()
            w.grad = None
            loss.backward()
            w.data -= 0.5 * w.grad.data
    x, y = test.tensors
    accuracy = ((x @ w).data.argmax(1) == y.data).mean()
    assert accuracy > 0.85
