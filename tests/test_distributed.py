"""retrograd.distributed: the sampler alone, and real MPI jobs started by pytest as subprocesses
(`mpiexec -n N python -m mpi4py script.py`, the scripts in tests/distributed_scripts/)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import retrograd as rg
from retrograd.data import DataLoader, TensorDataset
from retrograd.distributed import DistributedSampler, average_metrics, launch

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).resolve().parent / "distributed_scripts"


def _mpiexec():
    beside = Path(sys.executable).parent / "mpiexec"   # pip install mpich puts it in the venv
    return str(beside) if beside.exists() else shutil.which("mpiexec")


MPIEXEC = _mpiexec()


def _has_mpi4py():
    try:
        import importlib.util
        return importlib.util.find_spec("mpi4py") is not None
    except ImportError:
        return False


needs_mpi = pytest.mark.skipif(
    MPIEXEC is None or not _has_mpi4py(),
    reason="needs mpi4py and an MPI launcher (mpiexec beside the Python executable or on PATH): "
           "pip install 'retrograd[distributed]'")


def _env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PMI_", "OMPI_", "MV2_", "PMIX_"))}  # not launched ourselves
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def mpirun(n, *args, timeout=120, check=True):
    cmd = [MPIEXEC, "-n", str(n), sys.executable, "-m", "mpi4py", *map(str, args)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env(),
                            cwd=ROOT, stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {result.returncode}\n--- stdout\n{result.stdout}"
                    f"\n--- stderr\n{result.stderr[-4000:]}")
    return result


# -- no MPI needed ---------------------------------------------------------------------------------

def test_import_retrograd_does_not_import_mpi4py():
    code = ("import retrograd, retrograd.distributed, sys; "
            "assert 'mpi4py' not in sys.modules, 'mpi4py imported'")
    subprocess.run([sys.executable, "-c", code], check=True, env=_env())


def test_init_without_mpi4py_names_the_install_command():
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "import retrograd.distributed as d\n"
            "try:\n    d.init()\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, env=_env()).stdout
    assert "pip install 'retrograd[distributed]'" in out and "mpiexec -n 2" in out


def test_launch_is_detected_from_the_environment(monkeypatch):
    for var in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert (launch.launched_world_size(), launch.launched_rank(), launch.is_launched()) == \
        (1, 0, False)
    monkeypatch.setenv("PMI_SIZE", "4")          # MPICH's hydra
    monkeypatch.setenv("PMI_RANK", "3")
    assert (launch.launched_world_size(), launch.launched_rank()) == (4, 3)
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")  # Open MPI
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "1")
    assert (launch.launched_world_size(), launch.launched_rank()) == (2, 1)


def test_world_of_one_collectives_are_identity():
    logs = {"loss": 0.25, "accuracy": 0.5}
    assert average_metrics(logs) == logs


@pytest.mark.parametrize("n, replicas, drop_last", [(10, 3, False), (10, 3, True), (12, 4, False),
                                                    (5, 4, False), (7, 2, True), (3, 5, False)])
def test_sampler_shards_cover_without_overlap(n, replicas, drop_last):
    shards = [list(DistributedSampler(range(n), replicas, r, shuffle=True, seed=1,
                                      drop_last=drop_last)) for r in range(replicas)]
    lengths = {len(s) for s in shards}
    assert len(lengths) == 1                                   # every rank: the same steps
    assert lengths.pop() == (n // replicas if drop_last else -(-n // replicas))
    flat = [i for s in shards for i in s]
    if drop_last:
        assert len(set(flat)) == len(flat)                     # disjoint
    else:
        assert set(flat) == set(range(n))                      # covers the dataset
        assert len(flat) - len(set(flat)) == len(flat) - n     # repeats only the padding


def test_sampler_epochs_reshuffle_identically_on_every_rank():
    def shard(rank, epoch):
        s = DistributedSampler(range(20), num_replicas=2, rank=rank, seed=3)
        s.set_epoch(epoch)
        return list(s)

    assert shard(0, 0) == shard(0, 0)
    assert shard(0, 0) != shard(0, 1)
    for epoch in range(3):   # the two ranks split one permutation
        assert sorted(shard(0, epoch) + shard(1, epoch)) == list(range(20))
    other_seed = DistributedSampler(range(20), num_replicas=2, rank=0, seed=4)
    assert list(other_seed) != shard(0, 0)


@pytest.mark.parametrize("n, replicas, drop_last", [(10, 3, False), (10, 3, True), (3, 5, False),
                                                    (8, 4, False)])
def test_sampler_matches_torch_without_shuffle(n, replicas, drop_last):
    torch_sampler = pytest.importorskip("torch.utils.data.distributed").DistributedSampler
    for rank in range(replicas):
        ours = DistributedSampler(range(n), replicas, rank, shuffle=False, drop_last=drop_last)
        theirs = torch_sampler(range(n), replicas, rank, shuffle=False, drop_last=drop_last)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)


def test_sampler_drives_a_dataloader():
    ds = TensorDataset(rg.arange(10), rg.arange(10) * 10)
    loader = DataLoader(ds, batch_size=2, sampler=DistributedSampler(ds, 2, 1, shuffle=False))
    batches = [x.tolist() for x, _ in loader]
    assert batches == [[1, 3], [5, 7], [9]]


def test_sampler_rejects_bad_rank():
    with pytest.raises(ValueError, match=r"rank should be in the interval \[0, 1\]"):
        DistributedSampler(range(4), num_replicas=2, rank=2)


# -- real MPI jobs -------------------------------------------------------------------------------

@needs_mpi
@pytest.mark.parametrize("mode", ["blocking", "overlap"])
def test_ddp_two_ranks_match_one_process_on_the_whole_batch(mode):
    # the script asserts: all ranks bit-identical, == one process on the concatenated batches
    out = mpirun(2, SCRIPTS / "ddp_steps.py", mode).stdout
    assert f"OK {mode} world=2" in out


@needs_mpi
@pytest.mark.slow
def test_ddp_four_ranks_oversubscribed():
    # 4 processes on a 2-core machine: MPICH's hydra oversubscribes without being asked
    out = mpirun(4, SCRIPTS / "ddp_steps.py", "overlap", timeout=240).stdout
    assert "OK overlap world=4" in out


@needs_mpi
def test_fit_under_mpiexec_equals_one_process_with_the_global_batch(tmp_path):
    (tmp_path / "mpi").mkdir()
    (tmp_path / "one").mkdir()
    result = mpirun(2, SCRIPTS / "fit_ranks.py", tmp_path / "mpi", 8)
    subprocess.run([sys.executable, str(SCRIPTS / "fit_ranks.py"), str(tmp_path / "one"), "16"],
                   check=True, capture_output=True, env=_env(), cwd=ROOT)
    r0, r1 = (np.load(tmp_path / "mpi" / f"rank{r}.npz") for r in (0, 1))
    one = np.load(tmp_path / "one" / "rank0.npz")
    assert np.array_equal(r0["params"], r1["params"])
    np.testing.assert_allclose(r0["params"], one["params"], rtol=1e-4, atol=1e-5)
    # the epoch's metrics are averaged over ranks: the global batch's
    np.testing.assert_allclose(r0["loss"], one["loss"], rtol=1e-5)
    assert np.array_equal(r0["loss"], r1["loss"])
    assert result.stdout.count("Epoch 1/3") == 1                 # rank 0 alone reports
    rows = (tmp_path / "mpi" / "log.csv").read_text().splitlines()
    assert len(rows) == 1 + 3                                    # and writes (CSVLogger)


@needs_mpi
@pytest.mark.parametrize("runner", ["-m mpi4py", "init's excepthook"])
def test_a_failing_rank_stops_the_job_with_its_error(runner):
    if runner == "-m mpi4py":
        result = mpirun(2, SCRIPTS / "fail_rank.py", timeout=60, check=False)
    else:   # `mpiexec -n 2 retrograd train`: no -m mpi4py, init() aborts the job itself
        result = subprocess.run([MPIEXEC, "-n", "2", sys.executable, SCRIPTS / "fail_rank.py"],
                                capture_output=True, text=True, timeout=60, env=_env(),
                                cwd=ROOT, stdin=subprocess.DEVNULL)
    assert result.returncode != 0
    assert "unreachable" not in result.stdout
    if runner == "-m mpi4py":
        # mpi4py aborts right after printing, and mpiexec may drop the end of the traceback
        assert "Traceback" in result.stderr
    else:                   # init's hook waits for the launcher to pass the traceback on
        assert "rank 1 failed on purpose" in result.stderr


@needs_mpi
def test_overlap_detects_a_weight_used_outside_its_module():
    result = mpirun(2, SCRIPTS / "tied_overlap.py", timeout=60, check=False)
    assert result.returncode != 0 and "not detected" not in result.stdout
    assert "was also used outside its module's forward" in result.stdout


@needs_mpi
@pytest.mark.slow
def test_retrograd_train_cli_under_mpiexec(tmp_path):
    cmd = [MPIEXEC, "-n", "2", sys.executable, "-m", "retrograd", "train", "--epochs", "4",
           "--hidden", "32", "--lr", "0.003", "--out", str(tmp_path), "--quiet"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=_env(),
                            cwd=ROOT, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("test accuracy") == 1
    assert "data-parallel over 2 MPI processes" in result.stdout
    accuracy = float(result.stdout.split("test accuracy")[1].split()[0])
    assert accuracy > 0.7
    assert (tmp_path / "model.safetensors").exists()


@needs_mpi
@pytest.mark.slow
def test_distributed_digits_example_learns():
    pytest.importorskip("sklearn")
    out = mpirun(2, ROOT / "examples" / "distributed_digits.py", 3, timeout=240).stdout
    assert "2 process(es)" in out and out.count("test accuracy") == 1   # rank 0 alone prints
    assert float(out.split("test accuracy")[1].split()[0]) > 0.7
