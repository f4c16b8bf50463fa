"""A variational autoencoder: compress each digit to a few numbers, and learn to draw new digits.

The encoder maps an image x to a Gaussian over codes, q(z|x) = N(mu, exp(logvar)); the decoder
maps a code z back to pixel probabilities p(x|z). Training maximises the evidence lower bound

    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || N(0, I))   <=   log p(x)

(we minimise its negative, in nats per image): a reconstruction term, the binary cross-entropy of
the 64 pixels, plus a KL term that keeps the codes close to the prior N(0, I), so that codes drawn
from the prior decode to plausible digits.

Sampling z ~ q(z|x) is not differentiable in mu and logvar; the *reparameterization trick* writes
it as z = mu + eps * exp(0.5 * logvar) with eps ~ N(0, I) drawn outside the graph, so the gradient
flows through mu and logvar like through any other op. For a Gaussian the KL has a closed form:
KL = -0.5 * sum(1 + logvar - mu^2 - exp(logvar)).

Pixels are grey levels in [0, 1], used as soft targets of the cross-entropy, so the reconstruction
term cannot reach 0 (its floor is the pixels' own entropy); the bound still falls as the model
learns. Watch the KL column: for the first epochs it is ~0, the decoder draws the average digit
and ignores the code; then the codes start to carry the digit, the KL rises and the
reconstruction term falls faster. Writes originals vs reconstructions, and digits decoded from the
prior, as PNGs.

Run:  python examples/vae.py                 (about 5 s; writes runs/vae/*.png)
      python examples/vae.py --latent 2 --epochs 100
"""
import argparse
import os
import time

import matplotlib
matplotlib.use("Agg")                          # draw into files, no window needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import retrograd as rg  # noqa: E402
import retrograd.nn.functional as F  # noqa: E402
from retrograd import nn, optim  # noqa: E402
from retrograd.data import DataLoader, datasets  # noqa: E402


class VAE(nn.Module):
    """x (N, 64) -> (logits (N, 64), mu (N, latent), logvar (N, latent))."""

    def __init__(self, latent=8, hidden=256):
        super().__init__()
        self.latent = latent
        self.encoder = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                     nn.ReLU(), nn.Linear(hidden, 2 * latent))   # mu and logvar
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(),
                                     nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, 64))                       # pixel logits

    def encode(self, x):
        h = self.encoder(x)
        return h[:, :self.latent], h[:, self.latent:]

    def forward(self, x):
        mu, logvar = self.encode(x)
        eps = rg.randn(*mu.shape)                  # the noise lives outside the graph...
        z = mu + eps * (0.5 * logvar).exp()        # ...so z is differentiable in mu and logvar
        return self.decoder(z), mu, logvar


def negative_elbo(x, logits, mu, logvar):
    """(-ELBO, reconstruction, KL), each summed over pixels / code dimensions, averaged over
    the batch: nats per image."""
    n = x.shape[0]
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / n
    kl = -0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum() / n
    return recon + kl, recon, kl


def evaluate(model, x):
    """-ELBO, reconstruction and KL on all of `x` (N, 64), one sample of z per image."""
    with rg.no_grad():
        return [t.item() for t in negative_elbo(x, *model(x))]


def tile(images, cols, gap=1):
    """(N, 8, 8) images -> one array, `cols` per row, a gap of blank pixels between them."""
    rows = -(-len(images) // cols)
    grid = np.zeros((rows * (8 + gap), cols * (8 + gap)), dtype=np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        grid[r * (8 + gap):r * (8 + gap) + 8, c * (8 + gap):c * (8 + gap) + 8] = image
    return grid


def save_image(grid, path, title):
    fig, ax = plt.subplots(figsize=(6, 6 * grid.shape[0] / grid.shape[1] + 0.5))
    ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1)
    ax.set(xticks=[], yticks=[], title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(latent=8, hidden=256, epochs=60, lr=3e-3, batch_size=64, seed=0, out="runs/vae",
         progress=True):
    """Train on the digits; return per-epoch train/test -ELBO (nats per image) and PNG paths."""
    rg.manual_seed(seed)
    train_set, test_set = datasets.digits(split="both")     # (N, 64) pixels in [0, 1]
    x_test = test_set.tensors[0]
    model = VAE(latent, hidden)
    optimizer = optim.Adam(model.parameters(), lr=lr)
    loader = DataLoader(train_set, batch_size=batch_size, shuffle=True)

    history = dict(train=[], test=[], recon=[], kl=[])
    initial = evaluate(model, x_test)[0]
    p = np.clip(x_test.numpy().astype(np.float64), 1e-12, 1 - 1e-12)
    floor = float(-(p * np.log(p) + (1 - p) * np.log(1 - p)).sum(1).mean())
    if progress:
        print(f"epoch   0  test -ELBO {initial:7.2f} nats/image (untrained; the reconstruction "
              f"term's floor, the test pixels' own entropy, is {floor:.2f})")
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        total, seen = 0.0, 0
        for x, _ in loader:
            loss, recon, kl = negative_elbo(x, *model(x))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, seen = total + loss.item() * len(x), seen + len(x)
        test, recon, kl = evaluate(model, x_test)
        for key, value in zip(history, (total / seen, test, recon, kl)):
            history[key].append(value)
        if progress and (epoch <= 5 or epoch % 10 == 0 or epoch == epochs):
            print(f"epoch {epoch:3d}  train -ELBO {total / seen:7.2f}  test -ELBO {test:7.2f} "
                  f"= reconstruction {recon:6.2f} + KL {kl:5.2f}")
    seconds = time.perf_counter() - start

    os.makedirs(out, exist_ok=True)
    model.eval()
    with rg.no_grad():
        originals = x_test[:10].numpy()
        mu, _ = model.encode(x_test[:10])                            # the code's mean, no noise
        recons = model.decoder(mu).sigmoid().numpy()
        samples = model.decoder(rg.randn(100, latent)).sigmoid().numpy()   # z ~ N(0, I)
    recon_path = os.path.join(out, "reconstructions.png")
    save_image(tile(np.concatenate([originals, recons]).reshape(-1, 8, 8), cols=10), recon_path,
               "test digits (top) and their reconstructions (bottom)")
    sample_path = os.path.join(out, "samples.png")
    save_image(tile(samples.reshape(-1, 8, 8), cols=10), sample_path,
               f"decoded from the prior z ~ N(0, I), {latent}-d")
    print(f"test -ELBO {initial:.1f} -> {history['test'][-1]:.1f} nats/image in {epochs} epochs "
          f"({seconds:.1f} s); {recon_path}, {sample_path}")
    return dict(initial=initial, floor=floor, **history, seconds=seconds,
                reconstructions=recon_path, samples=sample_path)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latent", type=int, default=8, help="code dimensions")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads (one is fastest for matrices this small)")
    parser.add_argument("--out", default="runs/vae")
    args = parser.parse_args()
    rg.set_num_threads(args.threads)
    main(args.latent, args.hidden, args.epochs, args.lr, seed=args.seed, out=args.out)
