"""Files that lie: every malformed, foreign or mismatched file gives an error naming the file and
the key, never a crash deep inside NumPy, a silently wrong model, or executed code. Also nested
objects (checkpoints) round-trip, and weights move between PyTorch and retrograd both ways."""
from __future__ import annotations

import json
import math
import pickle
from collections import Counter

import numpy as np
import pytest
import safetensors.torch
import torch

import retrograd as rg
from retrograd import io, nn


def write_raw(path, header: dict, data: bytes, length: int | None = None) -> None:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes((len(raw) if length is None else length).to_bytes(8, "little") + raw + data)


def good_header():
    return {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
            "b": {"dtype": "F32", "shape": [2], "data_offsets": [24, 32]}}


# -- the header ------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, message", [
    (lambda h: h["w"].update(dtype="X9"), r"'w' has dtype 'X9'"),
    (lambda h: h["w"].update(dtype="F64"), r"'w': shape \(2, 3\) of F64 needs 48 bytes"),
    (lambda h: h["w"].update(shape=[3, 3]), r"'w': shape \(3, 3\) of F32 needs 36 bytes"),
    (lambda h: h["w"].update(shape=[2, -3]), r"'w' has an invalid shape"),
    (lambda h: h["b"].update(data_offsets=[20, 28]), r"'b' starts at byte 20.*overlapping"),
    (lambda h: h["b"].update(data_offsets=[28, 36]), r"'b' starts at byte 28.*gap"),
    (lambda h: h["w"].pop("shape"), r"'w' needs dtype, shape and data_offsets"),
    (lambda h: h.update(__metadata__={"epoch": 3}), r"__metadata__ must map strings"),
])
def test_a_malformed_header_names_the_file_and_the_key(tmp_path, change, message):
    header = good_header()
    change(header)
    path = tmp_path / "bad.safetensors"
    write_raw(path, header, bytes(32))
    with pytest.raises(ValueError, match=r"bad\.safetensors.*" + message):
        io.load(path)


def test_a_wrong_header_length_is_caught_whichever_way_it_is_wrong(tmp_path):
    path = tmp_path / "len.safetensors"
    raw = json.dumps(good_header()).encode()
    n = len(raw)
    write_raw(path, good_header(), bytes(32), length=n - 10)     # cuts the JSON short
    with pytest.raises(ValueError, match=r"len\.safetensors.*not valid JSON.*header length"):
        io.load(path)
    write_raw(path, good_header(), bytes(32), length=n + 10_000)  # past the end of the file
    with pytest.raises(ValueError, match=r"len\.safetensors.*truncated"):
        io.load(path)
    write_raw(path, good_header(), bytes(32), length=2 ** 40)     # absurd
    with pytest.raises(ValueError, match=r"len\.safetensors.*not a safetensors file"):
        io.load(path)


def test_the_data_section_cut_short(tmp_path):
    path = tmp_path / "short.safetensors"
    write_raw(path, good_header(), bytes(20))
    with pytest.raises(ValueError, match=r"short\.safetensors.*truncated.*32 bytes"):
        io.load(path)


class _Trap:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_named_like_safetensors_is_refused_unexecuted(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps({"0.weight": _Trap(marker)}, protocol=4))
    with pytest.raises(ValueError, match=r"model\.safetensors.*pickle"):
        nn.Linear(2, 2).load_state_dict(io.load(path))
    assert not marker.exists()


def test_a_damaged_structure_is_an_error_not_a_guess(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    io.save({"model": {"w": np.ones(2, np.float32)}, "epoch": 1}, path)
    data = path.read_bytes().replace(b'\\"$tensor\\": \\"model.w\\"',
                                     b'\\"$tensor\\": \\"model.x\\"')
    path.write_bytes(data)
    with pytest.raises(ValueError, match=r"ckpt\.safetensors.*damaged.*model\.x"):
        io.load(path)


# -- dtypes ----------------------------------------------------------------------------------------

def test_bfloat16_from_torch_is_widened_to_float32(tmp_path):
    path = tmp_path / "bf16.safetensors"
    w = torch.randn(4, 5).to(torch.bfloat16)
    safetensors.torch.save_file({"w": w}, str(path))
    got = io.load(path)["w"]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got.numpy(), w.float().numpy())


def test_a_dtype_numpy_lacks_names_the_key(tmp_path):
    if not hasattr(torch, "float8_e4m3fn"):
        pytest.skip("torch without float8")
    path = tmp_path / "f8.safetensors"
    safetensors.torch.save_file({"ok": torch.ones(2), "q.weight": torch.ones(2, 2).to(
        torch.float8_e4m3fn)}, str(path))
    with pytest.raises(ValueError, match=r"f8\.safetensors.*'q\.weight'.*F8_E4M3.*convert"):
        io.load(path)


def test_wrong_kind_of_dtype_for_a_parameter_names_key_and_file(tmp_path):
    path = tmp_path / "mask.safetensors"
    io.save({"weight": np.ones((2, 3), bool), "bias": np.zeros(2, np.float32)}, path)
    model = nn.Linear(3, 2)
    with pytest.raises(RuntimeError, match=r"(?s)mask\.safetensors.*dtype mismatch for weight.*bool"
                                           r".*float32"):
        model.load_state_dict(io.load(path))
    # float64 into float32 is a cast, as in PyTorch
    io.save({"weight": np.ones((2, 3)), "bias": np.zeros(2)}, path)
    model.load_state_dict(io.load(path))
    assert model.weight.dtype == np.float32 and model.weight.data.sum() == 6


# -- the file does not fit the model ---------------------------------------------------------------

def test_shapes_and_keys_that_do_not_fit_name_file_key_and_shapes(tmp_path):
    path = tmp_path / "small.safetensors"
    io.save(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), path)
    bigger = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    before = bigger[0].weight.data.copy()
    with pytest.raises(RuntimeError) as err:
        bigger.load_state_dict(io.load(path))
    msg = str(err.value)
    assert "small.safetensors" in msg and "Sequential" in msg
    assert "size mismatch for 0.weight" in msg and "(8, 4)" in msg and "(16, 4)" in msg
    assert "size mismatch for 2.weight" in msg and "(2, 8)" in msg and "(2, 16)" in msg
    np.testing.assert_array_equal(bigger[0].weight.data, before)      # untouched

    other = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2), nn.Linear(2, 2))
    with pytest.raises(RuntimeError, match=r"small\.safetensors.*\n.*missing keys: 3\.weight "
                                           r"\(2, 2\), 3\.bias \(2,\)"):
        other.load_state_dict(io.load(path))
    result = other.load_state_dict(io.load(path), strict=False)
    assert type(result).__name__ == "_IncompatibleKeys"              # PyTorch's name
    assert result.missing_keys == ["3.weight", "3.bias"] and result.unexpected_keys == []
    assert repr(nn.Linear(2, 2).load_state_dict(nn.Linear(2, 2).state_dict())) == \
        "<All keys matched successfully>"


def test_a_prefixed_state_dict_gets_a_hint(tmp_path):
    model = nn.Sequential(nn.Linear(3, 2))
    wrapped = {"module." + k: v for k, v in model.state_dict().items()}   # DataParallel's
    with pytest.raises(RuntimeError) as err:
        model.load_state_dict(wrapped)
    msg = str(err.value)
    assert "unexpected keys: module.0.weight (2, 3), module.0.bias (2,)" in msg
    assert "prefix 'module.'" in msg and "removeprefix" in msg
    with pytest.raises(TypeError, match=r"rg\.load\(path\)"):
        model.load_state_dict("model.safetensors")


# -- nested objects (what one would torch.save) ----------------------------------------------------

def test_a_nested_checkpoint_round_trips_exactly(tmp_path):
    rg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    opt = rg.optim.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    for _ in range(3):
        opt.zero_grad()
        model(rg.randn(5, 3)).sum().backward()
        opt.step()
    sched = rg.optim.lr_scheduler.MultiStepLR(opt, milestones=[2, 2, 5], gamma=0.5)
    plateau = rg.optim.lr_scheduler.ReduceLROnPlateau(opt)
    obj = {"model": model.state_dict(), "optimizer": opt.state_dict(),
           "scheduler": sched.state_dict(), "plateau": plateau.state_dict(), "epoch": 7,
           "misc": {"nan": math.nan, "inf": -math.inf, "tuple": (1, (2.5, None)), 3: "int key",
                    "$odd": True, "np": np.float32(0.1), "list": [np.int64(3), "s"]}}
    path = tmp_path / "ckpt.safetensors"
    rg.save(obj, path)
    back = rg.load(path)
    assert back["epoch"] == 7
    assert back["scheduler"]["milestones"] == Counter({2: 2, 5: 1})
    assert back["scheduler"] == sched.state_dict()
    assert back["plateau"]["best"] == math.inf and back["plateau"] == plateau.state_dict()
    misc = back["misc"]
    assert math.isnan(misc["nan"]) and misc["inf"] == -math.inf
    assert misc["tuple"] == (1, (2.5, None)) and misc[3] == "int key" and misc["$odd"] is True
    assert misc["np"] == float(np.float32(0.1)) and misc["list"] == [3, "s"]
    assert back["optimizer"]["param_groups"] == opt.state_dict()["param_groups"]  # betas a tuple
    fresh = rg.optim.Adam(model.parameters(), lr=1.0)
    fresh.load_state_dict(back["optimizer"])
    for i, entry in opt.state_dict()["state"].items():
        assert fresh.state_dict()["state"][i]["step"] == entry["step"] == 3
        np.testing.assert_array_equal(fresh.state_dict()["state"][i]["exp_avg"], entry["exp_avg"])
    other = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    other.load_state_dict(back["model"])
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[k].numpy(), v.numpy())
    with pytest.raises(RuntimeError, match=r"ckpt\.safetensors"):   # sub-dicts know their file
        nn.Linear(3, 3).load_state_dict(back["model"])


def test_objects_that_would_need_pickle_are_refused_with_their_path(tmp_path):
    with pytest.raises(TypeError, match=r"\['scheduler'\]\['fn'\], a function.*never holds code"):
        rg.save({"scheduler": {"fn": lambda e: 0.9 ** e}}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match=r"\['cfg'\]\[0\], a set"):
        rg.save({"cfg": [{1, 2}]}, tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="reserved"):
        rg.save({"a": 1}, tmp_path / "x.safetensors", metadata={"retrograd.structure": "x"})
    assert not list(tmp_path.iterdir())


# -- PyTorch both ways, with convolution, BatchNorm and an LSTM ------------------------------------

def _models(lib):
    n = lib.nn
    conv = n.Sequential(n.Conv2d(1, 4, 3), n.BatchNorm2d(4), n.ReLU(), n.Flatten(),
                        n.Linear(4 * 4 * 4, 5))
    return conv, n.LSTM(5, 6, num_layers=2, batch_first=True)


def _outputs(conv, lstm, x, seq, lib):
    conv.eval()
    grad = torch.no_grad() if lib is torch else rg.no_grad()
    with grad:
        a = conv(lib.from_numpy(x))
        b = lstm(lib.from_numpy(seq))[0]
    return a.numpy(), b.numpy()


@pytest.mark.parametrize("direction", ["ours_to_torch", "torch_to_ours"])
def test_weights_move_between_libraries(tmp_path, direction):
    rg.manual_seed(0)
    torch.manual_seed(1)
    ours, theirs = _models(rg), _models(torch)
    with torch.no_grad():       # non-trivial running statistics, so buffers must travel too
        theirs[0][1].running_mean.uniform_(-1, 1)
        theirs[0][1].running_var.uniform_(0.5, 2)
    ours[0][1].running_mean.data[:] = np.linspace(-1, 1, 4, dtype=np.float32)
    x = np.random.default_rng(2).standard_normal((2, 1, 6, 6)).astype(np.float32)
    seq = np.random.default_rng(3).standard_normal((2, 4, 5)).astype(np.float32)
    for i, (ours_m, theirs_m) in enumerate(zip(ours, theirs)):
        path = tmp_path / f"m{i}.safetensors"
        if direction == "ours_to_torch":
            rg.save(ours_m, path)
            theirs_m.load_state_dict(safetensors.torch.load_file(str(path)), strict=True)
        else:
            safetensors.torch.save_file(theirs_m.state_dict(), str(path))
            assert ours_m.load_state_dict(rg.load(path)) == ([], [])
    for a, b in zip(_outputs(*ours, x, seq, rg), _outputs(*theirs, x, seq, torch)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
