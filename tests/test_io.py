"""retrograd.io: safetensors files that PyTorch reads and writes, atomic writes, clear errors."""
from __future__ import annotations

import os
import pickle
import stat

import numpy as np
import pytest
import safetensors.torch
import torch

import retrograd as rg
from retrograd import io, nn

from helpers import ATOMIC_WRITE_STAGES, crash_atomic_write_at


def arrays() -> dict[str, np.ndarray]:
    g = np.random.default_rng(0)
    return {
        "fc1.weight": g.standard_normal((4, 3)).astype(np.float32),
        "fc1.bias": g.standard_normal(4).astype(np.float64),
        "steps": np.array([1, -2, 3 << 40], dtype=np.int64),
        "bn.num_batches_tracked": np.array(7, dtype=np.int64),      # 0-d, as torch's BatchNorm
        "mask": np.array([True, False, True]),
        "half": np.arange(5, dtype=np.float16),
        "small": np.arange(6, dtype=np.int32).reshape(2, 3),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }


def test_round_trip_keeps_keys_dtypes_shapes_values_and_metadata(tmp_path):
    path = tmp_path / "state.safetensors"
    source = arrays()
    io.save({k: rg.from_numpy(v) for k, v in source.items()}, path,
            metadata={"note": "best", "epoch": 3, "lrs": [0.1, 0.01], "cfg": {"a": 1}})
    loaded = io.load(path)
    assert set(loaded) == set(source)
    for key, expected in source.items():
        got = loaded[key]
        assert isinstance(got, rg.Tensor)
        assert got.dtype == expected.dtype and got.shape == expected.shape, key
        np.testing.assert_array_equal(got.numpy(), expected)
        assert got.numpy().flags.writeable  # usable as a parameter's data, updated in place
    # strings stay strings, everything else is JSON
    assert io.load_metadata(path) == {"note": "best", "epoch": "3", "lrs": "[0.1, 0.01]",
                                      "cfg": '{"a": 1}'}


def test_no_metadata_and_non_contiguous_inputs(tmp_path):
    path = tmp_path / "t.safetensors"
    w = rg.randn(3, 5)
    io.save({"wT": w.T, "every_other": w.numpy()[:, ::2]}, path)
    loaded = io.load(path)
    np.testing.assert_array_equal(loaded["wT"].numpy(), w.numpy().T)
    np.testing.assert_array_equal(loaded["every_other"].numpy(), w.numpy()[:, ::2])
    assert io.load_metadata(path) == {}


def test_save_a_module_saves_its_state_dict(tmp_path):
    rg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    io.save(model, tmp_path / "m.safetensors")
    loaded = io.load(tmp_path / "m.safetensors")
    assert set(loaded) == set(model.state_dict())
    other = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    other.load_state_dict(loaded)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[k].numpy(), v.numpy())


def test_bad_inputs_are_rejected_by_name(tmp_path):
    with pytest.raises(TypeError, match="'bad'.*dtype"):
        io.save({"bad": np.array(["a", "b"])}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="keys must be strings"):
        io.save({1: np.zeros(2)}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="metadata keys"):
        io.save({"a": np.zeros(2)}, tmp_path / "x.safetensors", metadata={1: "x"})
    with pytest.raises(TypeError, match="dict of tensors"):
        io.save([np.zeros(2)], tmp_path / "x.safetensors")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        io.save({"a": np.zeros(2)}, tmp_path / "no" / "such" / "dir.safetensors")
    assert not os.listdir(tmp_path)


# -- interchange with PyTorch ----------------------------------------------------------------------

def _pair():
    rg.manual_seed(0)
    ours = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    torch.manual_seed(1)  # different weights, so a load that did nothing would show
    theirs = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x = np.random.default_rng(2).standard_normal((5, 6)).astype(np.float32)
    return ours, theirs, x


def test_torch_reads_our_file(tmp_path):
    ours, theirs, x = _pair()
    path = tmp_path / "ours.safetensors"
    io.save(ours.state_dict(), path, metadata={"format": "pt"})
    state = safetensors.torch.load_file(str(path))
    assert set(state) == set(theirs.state_dict())
    theirs.load_state_dict(state, strict=True)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    with rg.no_grad():
        got = ours(rg.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_we_read_a_file_torch_wrote(tmp_path):
    ours, theirs, x = _pair()
    path = tmp_path / "theirs.safetensors"
    safetensors.torch.save_file(theirs.state_dict(), str(path), metadata={"who": "torch"})
    ours.load_state_dict(io.load(path))
    assert io.load_metadata(path) == {"who": "torch"}
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    with rg.no_grad():
        got = ours(rg.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


# -- files that are not (complete) safetensors -----------------------------------------------------

class _Trap:
    """Unpickling this creates a file: proof that a loader executed code from the data."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_is_refused_with_the_file_name_and_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    path = tmp_path / "weights.pkl"
    path.write_bytes(pickle.dumps({"w": _Trap(marker)}))
    with pytest.raises(ValueError, match=r"weights\.pkl.*not a safetensors file.*pickle"):
        io.load(path)
    with pytest.raises(ValueError, match="pickle"):
        io.load_metadata(path)
    assert not marker.exists()


def test_a_torch_save_file_is_refused_with_a_hint(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"w": torch.ones(3)}, str(path))
    with pytest.raises(ValueError, match=r"model\.pt.*zip.*safetensors\.torch\.save_file"):
        io.load(path)


@pytest.mark.parametrize("keep", ["all_but_5", "inside_header", "length_only", "empty"])
def test_a_truncated_file_is_reported_as_truncated(tmp_path, keep):
    good = tmp_path / "good.safetensors"
    io.save({"w": np.arange(12, dtype=np.float32), "b": np.ones(3)}, good)
    data = good.read_bytes()
    cut = {"all_but_5": len(data) - 5, "inside_header": 30, "length_only": 4, "empty": 0}[keep]
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[:cut])
    with pytest.raises(ValueError, match=r"cut\.safetensors.*truncated"):
        io.load(path)


def test_garbage_is_not_a_safetensors_file(tmp_path):
    path = tmp_path / "garbage.bin"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(ValueError, match=r"garbage\.bin.*not a safetensors file"):
        io.load(path)


def test_a_missing_file_is_named(tmp_path):
    path = tmp_path / "nowhere.safetensors"
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
        io.load(path)
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
        io.load_metadata(path)


# -- atomic writes ---------------------------------------------------------------------------------

def test_atomic_write_replaces_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "f.bin"
    io.atomic_write_bytes(path, b"first")
    io.atomic_write_bytes(path, b"second")
    assert path.read_bytes() == b"second"
    assert os.listdir(tmp_path) == ["f.bin"]
    io.atomic_write_text(path, "héllo\n")
    assert path.read_text(encoding="utf-8") == "héllo\n"


def test_atomic_write_keeps_the_mode_of_the_file_it_replaces(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    io.atomic_write_bytes(path, b"new")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    fresh = tmp_path / "fresh.bin"
    io.atomic_write_bytes(fresh, b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o666 & ~umask


@pytest.mark.parametrize("failing", ATOMIC_WRITE_STAGES)
def test_a_crash_mid_save_leaves_the_previous_file_intact(tmp_path, monkeypatch, failing):
    path = tmp_path / "ckpt.safetensors"
    io.save({"w": np.zeros(1000, dtype=np.float32)}, path, metadata={"epoch": 1})
    before = path.read_bytes()

    crash_atomic_write_at(monkeypatch, failing)
    with pytest.raises(OSError, match="simulated crash"):
        io.save({"w": np.ones(1000, dtype=np.float32)}, path, metadata={"epoch": 2})
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]  # the temporary file was removed
    if failing == "fsync_dir":      # the rename happened: the new file, whole
        np.testing.assert_array_equal(io.load(path)["w"].numpy(), np.ones(1000, np.float32))
        return
    assert path.read_bytes() == before
    np.testing.assert_array_equal(io.load(path)["w"].numpy(), np.zeros(1000, dtype=np.float32))
    assert io.load_metadata(path) == {"epoch": "1"}
