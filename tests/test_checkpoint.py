"""Training checkpoints: `fit(checkpoint=..., resume_from=...)` and `retrograd train --resume DIR`.

An interrupted run, resumed, must end with weights bit-identical to a run never interrupted (same
seed): Adam moments, the scheduler, dropout masks and the shuffling order all carry over. And the
checkpoint on disk must load after a kill at any instant.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import retrograd as rg
from retrograd import cli, io, nn
from retrograd.demos import digits
from retrograd.train import Callback, CSVLogger, EarlyStopping, fit
from retrograd.train import checkpoint as checkpoint_module

from helpers import ATOMIC_WRITE_STAGES, crash_atomic_write_at

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The run, as source: the SIGKILL test executes the same code in a child process.
RUN = textwrap.dedent("""
    import numpy as np
    import retrograd as rg
    from retrograd import nn
    from retrograd.data import DataLoader, TensorDataset
    from retrograd.train import fit

    def build():
        rg.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.3),
                              nn.Linear(32, 3))
        opt = rg.optim.Adam(model.parameters(), lr=1e-2)
        sched = rg.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        return model, opt, sched

    def data(kind):
        g = np.random.default_rng(0)
        x = g.standard_normal((96, 8)).astype(np.float32)
        y = g.integers(0, 3, 96)
        if kind == "tuple":           # fit wraps it; shuffled by the library generator
            return x, y
        return DataLoader(TensorDataset(rg.from_numpy(x), rg.from_numpy(y)), batch_size=16,
                          shuffle=True, generator=rg.Generator(7))     # its own generator

    def run(epochs, kind="tuple", **kwargs):
        model, opt, sched = build()
        history = fit(model, nn.CrossEntropyLoss(), opt, data(kind), epochs=epochs,
                      scheduler=sched, batch_size=16, seed=1, progress=False, **kwargs)
        return model, opt, sched, history
""")
_namespace: dict = {}
exec(RUN, _namespace)
build, data, run = _namespace["build"], _namespace["data"], _namespace["run"]


class Crash(Callback):
    """Dies in the middle of an epoch, as a killed process would."""

    def __init__(self, epoch: int, batch: int = 2):
        self.epoch, self.batch = epoch, batch

    def on_batch_end(self, batch, logs):
        if self.state.epoch == self.epoch and batch == self.batch:
            raise KeyboardInterrupt("simulated crash")


def assert_same_run(a, b):
    (ma, oa, sa, ha), (mb, ob, sb, hb) = a, b
    for key, value in ma.state_dict().items():       # weights and BatchNorm buffers
        assert np.array_equal(value.numpy(), mb.state_dict()[key].numpy()), key
    state_a, state_b = oa.state_dict(), ob.state_dict()
    for i, entry in state_a["state"].items():
        for name, value in entry.items():
            assert np.array_equal(value, state_b["state"][i][name]), (i, name)
    assert state_a["param_groups"] == state_b["param_groups"]      # the lr the schedule set
    assert sa.state_dict() == sb.state_dict()
    assert ha.history == hb.history and ha.epoch == hb.epoch      # the whole run's curves


@pytest.mark.parametrize("kind", ["tuple", "loader_generator"])
def test_a_crashed_run_resumed_ends_bit_identical(tmp_path, kind):
    path = tmp_path / "ckpt.safetensors"
    expected = run(6, kind)
    with pytest.raises(KeyboardInterrupt):
        run(6, kind, checkpoint=path, callbacks=[Crash(epoch=3)])
    saved = io.load(path)
    assert saved["epoch"] == 3 and saved["step"] == 3 * 6 and not saved["stopped"]
    resumed = run(6, kind, checkpoint=path, resume_from=path)
    assert_same_run(expected, resumed)
    assert io.load(path)["epoch"] == 6


def test_resume_with_a_compiled_step(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    with pytest.raises(KeyboardInterrupt):
        run(5, compile=True, checkpoint=path, callbacks=[Crash(epoch=2)])
    assert_same_run(run(5), run(5, compile=True, resume_from=path))


def test_stop_after_three_epochs_then_continue_to_six(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    expected = run(6)
    first = run(3, checkpoint=path)
    assert len(first[3].epoch) == 3
    assert_same_run(expected, run(6, resume_from=path))
    # resuming a finished run trains no further
    done = run(3, resume_from=path)
    assert done[3].epoch == [0, 1, 2]
    np.testing.assert_array_equal(done[0][0].weight.data, first[0][0].weight.data)


def test_callbacks_carry_their_state_across_a_resume(tmp_path):
    path = tmp_path / "ckpt.safetensors"

    def callbacks(log):
        return [EarlyStopping(monitor="loss", patience=10, restore_best=True), CSVLogger(log)]

    straight = callbacks(tmp_path / "a.csv")
    run(6, callbacks=straight)
    with pytest.raises(KeyboardInterrupt):
        run(6, checkpoint=path, callbacks=callbacks(tmp_path / "b.csv") + [Crash(epoch=4)])
    resumed = callbacks(tmp_path / "b.csv")
    run(6, resume_from=path, callbacks=resumed)
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()  # all 6 rows
    assert resumed[0].best == straight[0].best and resumed[0].wait == straight[0].wait
    assert resumed[0].best_epoch == straight[0].best_epoch


def test_an_early_stopped_run_is_complete(tmp_path):
    path = tmp_path / "ckpt.safetensors"

    class StopAt2(Callback):
        def on_epoch_end(self, epoch, logs):
            if epoch == 1:
                self.state.stop_training = True

    run(6, checkpoint=path, callbacks=[StopAt2()])
    assert io.load(path)["stopped"]
    assert run(6, resume_from=path)[3].epoch == [0, 1]


def test_resume_errors_name_the_file_and_what_does_not_fit(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    run(1, checkpoint=path)
    model, opt, sched = build()
    loss = nn.CrossEntropyLoss()
    weights = tmp_path / "weights.safetensors"
    rg.save(model.state_dict(), weights)
    with pytest.raises(ValueError, match=r"weights\.safetensors.*not a training checkpoint"):
        fit(model, loss, opt, data("tuple"), epochs=2, scheduler=sched, resume_from=weights,
            progress=False)
    wide = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    with pytest.raises(RuntimeError, match=r"(?s)ckpt\.safetensors.*model.*0\.weight.*\(32, 8\)"
                                           r".*\(16, 8\)"):
        fit(wide, loss, rg.optim.Adam(wide.parameters()), data("tuple"), epochs=2,
            resume_from=path, progress=False)
    with pytest.raises(ValueError, match=r"ckpt\.safetensors.*scheduler=StepLR.*scheduler=None"):
        fit(model, loss, opt, data("tuple"), epochs=2, resume_from=path, progress=False)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        fit(model, loss, opt, data("tuple"), epochs=2, scheduler=sched,
            resume_from=tmp_path / "nowhere.safetensors", progress=False)


def test_the_checkpoint_is_readable_by_torch_tools(tmp_path):
    """Tensors under "model."/"optimizer." prefixes, the rest as JSON in the header: no pickle."""
    safetensors_torch = pytest.importorskip("safetensors.torch")
    path = tmp_path / "ckpt.safetensors"
    model = run(2, checkpoint=path)[0]
    tensors = safetensors_torch.load_file(str(path))
    assert {k.removeprefix("model.") for k in tensors if k.startswith("model.")} == \
        set(model.state_dict())
    assert "optimizer.state.0.exp_avg" in tensors
    assert "retrograd.structure" in io.load_metadata(path)


# -- a kill at any instant leaves a checkpoint that loads ------------------------------------------

def test_sigkill_during_training_then_resume(tmp_path):
    """A real SIGKILL of a training process at an arbitrary moment; resuming from whatever is on
    disk ends the same as the uninterrupted run."""
    path = tmp_path / "ckpt.safetensors"
    child = RUN + textwrap.dedent(f"""
        import sys
        run(400, checkpoint={str(path)!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(np.random.default_rng().uniform(0.0, 0.3))  # somewhere in a later epoch/write
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the child finished before it was killed"
    done = io.load(path)["epoch"]
    assert 1 <= done < 400
    others = [f for f in os.listdir(tmp_path) if f != "ckpt.safetensors"]
    assert all(f.startswith(".ckpt.safetensors.") and f.endswith(".tmp") for f in others)
    epochs = done + 2
    assert_same_run(run(epochs), run(epochs, resume_from=path))


# retrograd/io/atomic.py uses the standard library only: loaded alone, a child starts in ms
ATOMIC_PY = os.path.join(ROOT, "retrograd", "io", "atomic.py")


def test_kill_mid_write_repeatedly_leaves_old_or_new(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    payloads = []
    for i, fill in enumerate((1.0, 2.0)):
        rg.save({"model": {"w": np.full(600_000, fill, np.float32)}, "epoch": i}, path)
        payloads.append(path.read_bytes())
    blobs = [tmp_path / "a.bin", tmp_path / "b.bin"]
    for blob, payload in zip(blobs, payloads):
        blob.write_bytes(payload)
    child = textwrap.dedent(f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("atomic", {ATOMIC_PY!r})
        atomic = importlib.util.module_from_spec(spec); spec.loader.exec_module(atomic)
        blobs = [open(p, "rb").read() for p in {[str(b) for b in blobs]!r}]
        print("ready", flush=True)
        i = 0
        while True:
            atomic.atomic_write_bytes({str(path)!r}, blobs[i % 2])
            i += 1
    """)
    g = np.random.default_rng()
    for _ in range(8):
        proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE)
        try:
            assert proc.stdout.readline() == b"ready\n"
            time.sleep(g.uniform(0.005, 0.1))
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait()
            proc.stdout.close()
        assert path.read_bytes() in payloads
        state = io.load(path)
        assert state["epoch"] in (0, 1)
        assert np.all(state["model"]["w"].numpy() == state["epoch"] + 1.0)
        for leftover in tmp_path.glob(".ckpt.safetensors.*.tmp"):  # what a kill leaves behind
            leftover.unlink()


@pytest.mark.parametrize("stage", ATOMIC_WRITE_STAGES)
def test_a_failure_at_each_stage_of_a_checkpoint_write(tmp_path, monkeypatch, stage):
    path = tmp_path / "ckpt.safetensors"
    run(1, checkpoint=path)
    before = path.read_bytes()

    crash_atomic_write_at(monkeypatch, stage)
    with pytest.raises(OSError, match="simulated crash"):
        run(2, checkpoint=path)
    monkeypatch.undo()
    state = io.load(path)                                  # always loads: the old or the new
    assert state["epoch"] == 1   # the old file, or (renamed before the failure) the new one
    if stage != "fsync_dir":
        assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["ckpt.safetensors"]


# -- the command line ------------------------------------------------------------------------------

CLI_ARGS = ["train", "--hidden", "16", "--depth", "1", "--epochs", "5", "--batch-size", "128",
            "--quiet"]


def test_cli_resume_after_a_crash_is_bit_identical(tmp_path, monkeypatch, capsys):
    straight, crashed = str(tmp_path / "straight"), str(tmp_path / "crashed")
    assert cli.main(CLI_ARGS + ["--out", straight]) == 0
    real_save = checkpoint_module.Checkpointer.save

    def save_then_crash(self, epoch):
        real_save(self, epoch)
        if epoch == 2:
            raise KeyboardInterrupt("simulated crash after epoch 3's checkpoint")

    monkeypatch.setattr(checkpoint_module.Checkpointer, "save", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        cli.main(CLI_ARGS + ["--out", crashed])
    monkeypatch.undo()
    assert not os.path.exists(os.path.join(crashed, "model.safetensors"))
    assert io.load(os.path.join(crashed, "checkpoint.safetensors"))["epoch"] == 3
    assert cli.main(["train", "--resume", crashed, "--quiet"]) == 0
    a = io.load(os.path.join(straight, "model.safetensors"))
    b = io.load(os.path.join(crashed, "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key].numpy(), b[key].numpy()), key
    assert digits.resume_config(crashed).epochs == 5
    with pytest.raises(FileNotFoundError, match="--resume"):
        cli.main(["train", "--resume", str(tmp_path / "nothing-here")])
