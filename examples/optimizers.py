"""Six optimizers race on the same problem: SGD, Momentum, Nesterov, Adagrad, RMSprop and Adam.

Every run starts from the same initial weights and sees the same batches in the same order, with
the same learning rate, so the only difference between the curves is the update rule. At lr=0.01
plain SGD crawls; momentum 0.9 lets steps build up to about lr / (1 - 0.9), ten times larger;
Adagrad, RMSprop and Adam scale each weight's step by the size of its recent gradients.

Run:  python examples/optimizers.py        (about 3 s; writes runs/optimizers/losses.png)
"""
import os

import matplotlib
matplotlib.use("Agg")                          # draw into files, no window needed
import matplotlib.pyplot as plt  # noqa: E402

import retrograd as rg  # noqa: E402
from retrograd import nn, optim  # noqa: E402
from retrograd.data import DataLoader, datasets  # noqa: E402
from retrograd.train import evaluate, fit  # noqa: E402

OPTIMIZERS = {
    "SGD":      lambda params, lr: optim.SGD(params, lr=lr),
    "Momentum": lambda params, lr: optim.SGD(params, lr=lr, momentum=0.9),
    "Nesterov": lambda params, lr: optim.SGD(params, lr=lr, momentum=0.9, nesterov=True),
    "Adagrad":  lambda params, lr: optim.Adagrad(params, lr=lr),
    "RMSprop":  lambda params, lr: optim.RMSprop(params, lr=lr),
    "Adam":     lambda params, lr: optim.Adam(params, lr=lr),
}


def main(hidden=64, epochs=20, lr=0.01, batch_size=32, seed=0, out="runs/optimizers"):
    rg.manual_seed(seed)
    train_set, test_set = datasets.digits(split="both")
    model = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    # A copy of the starting weights (state_dict shares memory with the model, hence .copy()).
    start = {name: t.numpy().copy() for name, t in model.state_dict().items()}

    losses = {}
    for name, make in OPTIMIZERS.items():
        model.load_state_dict(start)
        # Its own generator with the same seed: every optimizer gets the same shuffles.
        loader = DataLoader(train_set, batch_size=batch_size, shuffle=True,
                            generator=rg.Generator(seed))
        history = fit(model, nn.CrossEntropyLoss(), make(model.parameters(), lr), loader,
                      epochs=epochs, progress=False)
        losses[name] = history["loss"]
        accuracy = evaluate(model, test_set)["accuracy"]
        print(f"{name:9s} final train loss {losses[name][-1]:.4f}   test accuracy {accuracy:.3f}")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, curve in losses.items():
        # Nesterov's curve lies almost on Momentum's: dash it so both stay visible.
        ax.plot(range(1, epochs + 1), curve, "--" if name == "Nesterov" else "-", label=name)
    ax.set(yscale="log", xlabel="epoch", ylabel="training loss (log scale)",
           title=f"digits MLP, every optimizer at lr={lr}")
    ax.legend()
    ax.grid(True, alpha=0.3)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "losses.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"loss curves: {path}")
    return losses


if __name__ == "__main__":
    main()
