"""Vanishing gradients: why a deep sigmoid network cannot learn, and the three fixes that made
deep learning work.

Backpropagation multiplies the gradient by every layer's local derivative on its way down. A
sigmoid's derivative is at most 1/4, so after 15 sigmoid layers the gradient reaching the first
layer is many orders of magnitude smaller than at the last: the early layers barely move. Then:

- ReLU + He init: ReLU's derivative is 1 where it is active, and He's initial weights
  (variance 2 / fan_in) keep the signal's size the same from layer to layer;
- + BatchNorm: re-standardises every layer's inputs, so their scale cannot drift with depth;
- + residual connections: y = x + f(x) gives the gradient a path that skips f.

We measure each layer's weight-gradient norm after one backward pass (the residual net's last
layer reads the sum of every block's output, hence its larger gradient), then train each network
briefly with SGD, whose steps scale with the gradient.

Run:  python examples/vanishing.py         (about 3 s; writes runs/vanishing/grad_norms.png)
"""
import os

import matplotlib
matplotlib.use("Agg")                          # draw into files, no window needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import retrograd as rg  # noqa: E402
from retrograd import nn, optim  # noqa: E402
from retrograd.data import DataLoader, datasets  # noqa: E402
from retrograd.train import evaluate, fit  # noqa: E402

VARIANTS = ["sigmoid", "ReLU+He", "+BatchNorm", "+residual"]   # each adds to the one before


def make_model(variant, depth, width):
    """`depth` hidden layers of `width` units on the 64 digit pixels, then 10 class scores."""
    def layer(n_in):
        if variant == "sigmoid":
            return [nn.Linear(n_in, width), nn.Sigmoid()]
        norm = nn.Identity() if variant == "ReLU+He" else nn.BatchNorm1d(width)
        return [nn.Linear(n_in, width), norm, nn.ReLU()]

    layers = layer(64)
    for _ in range(depth - 1):
        if variant == "+residual":
            layers.append(nn.Residual(nn.Sequential(*layer(width))))    # x + f(x)
        else:
            layers += layer(width)
    model = nn.Sequential(*layers, nn.Linear(width, 10))
    if variant != "sigmoid":   # the sigmoid net keeps PyTorch's default init, U(+-1/sqrt(fan_in))
        for m in model.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
    return model


def gradient_norms(model, x, y):
    """The norm of each Linear layer's weight gradient, first layer to last, after one backward."""
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    return [float(np.linalg.norm(m.weight.grad.numpy()))
            for m in model.modules() if isinstance(m, nn.Linear)]


def main(depth=15, width=64, batch=256, epochs=3, lr=0.01, seed=0, out="runs/vanishing"):
    train_set, test_set = datasets.digits(split="both")
    x, y = (t[:batch] for t in train_set.tensors)          # one batch to measure gradients on

    results = {}
    for variant in VARIANTS:
        rg.manual_seed(seed)
        model = make_model(variant, depth, width)
        norms = gradient_norms(model, x, y)
        # Same batches for every network: its own loader generator with the same seed.
        loader = DataLoader(train_set, batch_size=32, shuffle=True, generator=rg.Generator(seed))
        optimizer = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        history = fit(model, nn.CrossEntropyLoss(), optimizer, loader, epochs=epochs,
                      progress=False)
        results[variant] = dict(norms=norms, ratio=norms[0] / norms[-1], loss=history["loss"],
                                test_accuracy=evaluate(model, test_set)["accuracy"])

    def row(label, key, fmt):
        print(f"{label:<10s}" + "".join(f"{key(results[v]):{fmt}}" for v in VARIANTS))

    print(f"weight-gradient norm per Linear layer ({depth} hidden layers of {width}, "
          f"one batch of {batch}):")
    print(f"{'layer':<10s}" + "".join(f"{v:>12s}" for v in VARIANTS))
    for i in range(depth + 1):
        row(str(i + 1), lambda r: r["norms"][i], "12.1e")
    row("first/last", lambda r: r["ratio"], "12.1e")
    print(f"\nafter {epochs} epochs of SGD (lr={lr}, momentum 0.9):")
    row("train loss", lambda r: r["loss"][-1], "12.3f")
    row("test acc", lambda r: r["test_accuracy"], "12.3f")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for variant in VARIANTS:
        ax.plot(range(1, depth + 2), results[variant]["norms"], marker="o", label=variant)
    ax.set(yscale="log", xlabel="Linear layer (1 = nearest the input)",
           ylabel="weight-gradient norm (log scale)", title=f"{depth + 1} Linear layers deep")
    ax.legend()
    ax.grid(True, alpha=0.3)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "grad_norms.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"\ngradient norms per layer: {path}")
    return results


if __name__ == "__main__":
    main()
