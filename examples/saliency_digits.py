"""What does the CNN look at? Three attribution maps for one test digit of each class, in a PNG.

Trains the network of digits_cnn.py, then for one correctly classified test image per digit asks
which pixels the score of that digit depends on (`retrograd.inspect`):

- saliency: |d score / d pixel|, the plain input gradient (Simonyan et al., 2013), often noisy;
- SmoothGrad: the gradient averaged over 25 noisy copies of the image (Smilkov et al., 2017);
- Integrated Gradients: pixel times the average gradient on the path from a black image to it
  (Sundararajan et al., 2017); red pixels raise the score, blue ones lower it, and the map adds up
  to score(image) - score(black image).

Run:  python examples/saliency_digits.py [out.png]
      (about 15 s; writes runs/saliency_digits/saliency.png by default)
"""
import os
import sys

import matplotlib

matplotlib.use("Agg")                  # files only, no window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import retrograd as rg  # noqa: E402
from retrograd.data import datasets  # noqa: E402
from retrograd.inspect import integrated_gradients, saliency, smoothgrad  # noqa: E402
from retrograd.train import predict  # noqa: E402

import digits_cnn  # noqa: E402  (examples/ is on sys.path when a script in it runs)

ROWS = ("input", "saliency", "SmoothGrad", "Integrated\nGradients")


def one_per_class(model, test_set):
    """The first correctly classified test image of each digit 0-9: (10, 1, 8, 8) and labels."""
    images, labels = (t.data for t in test_set.tensors)
    predicted = predict(model, images).data.argmax(axis=1)
    picks = [np.flatnonzero((labels == c) & (predicted == c))[0] for c in range(10)]
    return images[picks], labels[picks]


def attributions(model, images, labels, seed=0):
    """Each map has the images' shape; each explains the score of the image's own label."""
    return {
        "saliency": saliency(model, images, target=labels),
        "smoothgrad": np.abs(smoothgrad(model, images, target=labels, samples=25,
                                        generator=rg.Generator(seed))),
        "integrated_gradients": integrated_gradients(model, images, target=labels, steps=64),
    }


def plot(images, labels, maps):
    """The figure: a 4 x 10 grid, one column per digit, rows input / saliency / SmoothGrad / IG."""
    fig, axes = plt.subplots(len(ROWS), len(labels), figsize=(1.2 * len(labels), 1.3 * len(ROWS)))
    rows = [images, maps["saliency"], maps["smoothgrad"], maps["integrated_gradients"]]
    for r, (name, row) in enumerate(zip(ROWS, rows)):
        for c, label in enumerate(labels):
            ax, a = axes[r, c], row[c, 0]
            if r == 0:
                ax.imshow(a, cmap="gray_r", vmin=0, vmax=1)
                ax.set_title(str(label))
            elif r == len(ROWS) - 1:               # signed: symmetric limits, white is zero
                m = float(np.abs(a).max()) or 1.0
                ax.imshow(a, cmap="RdBu_r", vmin=-m, vmax=m)
            else:
                ax.imshow(a, cmap="magma")         # each map on its own scale
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(name, fontsize=9)
    fig.suptitle("What the CNN looks at: the score of each digit, attributed to its pixels")
    fig.tight_layout()
    return fig


def main(out="runs/saliency_digits/saliency.png", epochs=15, seed=0, progress=True):
    """Train the digits CNN, attribute one test image per class, save the grid to `out`; return
    the images, labels, maps, the test accuracy and the path."""
    model, _, test = digits_cnn.main(epochs=epochs, seed=seed, progress=progress)
    _, test_set = datasets.digits(split="both", seed=seed, flat=False)
    images, labels = one_per_class(model, test_set)
    maps = attributions(model, images, labels, seed)

    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    fig = plot(images, labels, maps)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    print(f"attribution maps for digits 0-9: {out}")
    return {"images": images, "labels": labels, **maps, "accuracy": test["accuracy"],
            "model": model, "path": out}


if __name__ == "__main__":
    rg.set_num_threads(1)       # small matrices: a second BLAS thread costs more than it gives
    main(*sys.argv[1:2])
