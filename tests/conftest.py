"""Make the package importable when pytest is run from anywhere, without installing it."""
import pathlib
import sys

ROOT = str(pathlib.Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


import pytest  # noqa: E402


@pytest.fixture
def one_blas_thread():
    """What the example scripts do: on small matrices a second BLAS thread only waits, and on a busy
    machine its spinning can make a GEMM 50x slower. The previous setting is restored."""
    import retrograd as rg
    before = rg.get_num_threads()
    rg.set_num_threads(1)
    yield
    rg.set_num_threads(before)
