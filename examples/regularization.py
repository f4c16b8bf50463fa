"""Overfitting, and three ways to fight it: dropout, an L2 penalty, and early stopping.

The data is two interleaving half-moons with so much noise that the classes overlap: no boundary
separates them perfectly, so a network that gets every training point right has memorised noise.
A wide MLP trained long on 80 points does exactly that; its accuracy on fresh points (the test
set) falls well below its training accuracy. Each regulariser narrows that gap.

Run:  python examples/regularization.py    (about 4 s; writes runs/regularization/boundaries.png)
"""
import os

import matplotlib
matplotlib.use("Agg")                          # draw into files, no window needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import retrograd as rg  # noqa: E402
from retrograd import nn, optim  # noqa: E402
from retrograd.data import datasets  # noqa: E402
from retrograd.train import EarlyStopping, evaluate, fit  # noqa: E402

VARIANTS = {
    "none":           dict(),
    "dropout 0.5":    dict(dropout=0.5),
    "L2 1e-2":        dict(weight_decay=1e-2),   # Adam adds 1e-2 * w to each gradient
    "early stopping": dict(early_stopping=True),
}


def make_model(hidden, dropout=0.0):
    # Dropout(0.0) passes its input through unchanged, so one definition serves every variant.
    return nn.Sequential(
        nn.Linear(2, hidden), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(hidden, 2),
    )


def main(n_train=80, noise=0.35, hidden=128, epochs=600, lr=1e-2, seed=0,
         out="runs/regularization"):
    # Three independent draws: fit on train, pick the stopping epoch on val, report on test.
    train_set = datasets.moons(n_samples=n_train, noise=noise, seed=seed)
    val_set = datasets.moons(n_samples=200, noise=noise, seed=seed + 1)
    test_set = datasets.moons(n_samples=2000, noise=noise, seed=seed + 2)

    results, models = {}, {}
    print(f"{'regulariser':16s} {'train acc':>9s} {'test acc':>9s} {'gap':>6s}  epochs")
    for name, options in VARIANTS.items():
        rg.manual_seed(seed)                   # the same initial weights for every variant
        model = make_model(hidden, options.get("dropout", 0.0))
        optimizer = optim.Adam(model.parameters(), lr=lr,
                               weight_decay=options.get("weight_decay", 0.0))
        # Stop once the validation loss has not improved for 50 epochs; keep the best weights.
        callbacks = ([EarlyStopping(monitor="val_loss", patience=50, restore_best=True)]
                     if options.get("early_stopping") else [])
        history = fit(model, nn.CrossEntropyLoss(), optimizer, train_set, epochs=epochs,
                      val_data=val_set, callbacks=callbacks, progress=False)
        train_acc = evaluate(model, train_set)["accuracy"]    # eval mode: no dropout
        test_acc = evaluate(model, test_set)["accuracy"]
        results[name] = dict(train=train_acc, test=test_acc, gap=train_acc - test_acc,
                             epochs=len(history))
        models[name] = model
        print(f"{name:16s} {train_acc:9.3f} {test_acc:9.3f} {train_acc - test_acc:6.3f}  "
              f"{len(history)}")

    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "boundaries.png")
    plot_boundaries(models, results, train_set, path)
    print(f"decision boundaries: {path}")
    return results


def plot_boundaries(models, results, train_set, path):
    """One panel per variant: the region each model calls class 1, and the training points."""
    x, y = (t.numpy() for t in train_set.tensors)
    xx, yy = np.meshgrid(np.linspace(-1.7, 2.7, 200), np.linspace(-1.4, 1.9, 200))
    grid = rg.tensor(np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float32))
    fig, axes = plt.subplots(1, len(models), figsize=(4 * len(models), 3.6), sharey=True)
    for ax, (name, model) in zip(axes, models.items()):
        model.eval()
        with rg.no_grad():
            class1 = model(grid).argmax(1).numpy().reshape(xx.shape)
        ax.contourf(xx, yy, class1, levels=[-0.5, 0.5, 1.5], colors=["#c6dbef", "#fdd0a2"])
        ax.scatter(x[:, 0], x[:, 1], c=y, cmap="coolwarm", s=12, edgecolors="k", linewidths=0.3)
        r = results[name]
        ax.set_title(f"{name}\ntrain {r['train']:.2f}, test {r['test']:.2f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
