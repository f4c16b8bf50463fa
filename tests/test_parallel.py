import pytest

import retrograd as rg


def test_set_num_threads_round_trips():
    before = rg.get_num_threads()
    try:
        rg.set_num_threads(1)
        assert rg.get_num_threads() == 1
    finally:
        rg.set_num_threads(before)
    assert rg.get_num_threads() == before


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2"])
def test_set_num_threads_rejects_non_positive_integers(bad):
    with pytest.raises(ValueError, match="set_num_threads"):
        rg.set_num_threads(bad)
