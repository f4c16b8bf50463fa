"""A multi-layer perceptron reads handwritten digits: 8x8 images in, one of ten classes out.

The data is scikit-learn's 1,797 bundled digits (no download); 20% is held out for testing.
`fit` runs the training loop and returns a History, whose curves we save as a PNG.

Run:  python examples/digits_mlp.py        (about 3 s; writes runs/digits_mlp/curves.png)
"""
import os

import retrograd as rg
from retrograd import nn, optim
from retrograd.data import DataLoader, datasets
from retrograd.train import evaluate, fit


def main(hidden=128, epochs=20, lr=1e-3, batch_size=32, seed=0, out="runs/digits_mlp",
         progress=True):
    rg.manual_seed(seed)       # the same weights and the same shuffling every run
    train_set, test_set = datasets.digits(split="both")    # pixels already scaled to [0, 1]

    # 64 pixels -> two hidden ReLU layers -> 10 scores, one per digit.
    model = nn.Sequential(
        nn.Linear(64, hidden), nn.ReLU(),
        nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, 10),
    )
    loss_fn = nn.CrossEntropyLoss()            # softmax + negative log-likelihood, on raw scores
    optimizer = optim.Adam(model.parameters(), lr=lr)

    history = fit(model, loss_fn, optimizer,
                  DataLoader(train_set, batch_size=batch_size, shuffle=True), epochs=epochs,
                  val_data=test_set, metrics=("accuracy",), progress=progress)

    test = evaluate(model, test_set, loss_fn=loss_fn)
    print(f"test accuracy {test['accuracy']:.3f} on {len(test_set)} held-out digits "
          f"(train accuracy {history['accuracy'][-1]:.3f})")

    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "curves.png")
    history.plot(path)                         # loss and accuracy per epoch, train vs test
    print(f"learning curves: {path}")
    return model, history, test


if __name__ == "__main__":
    main()
