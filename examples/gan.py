"""A generative adversarial network: a generator learns to forge samples, a discriminator learns
to tell them from real ones, and each gets better by playing against the other.

The discriminator D is a classifier trained with BCEWithLogitsLoss: real samples are labelled 1,
the generator's fakes 0. The generator G turns noise z ~ N(0, I) into samples, and is trained with
the *non-saturating* loss: label its own fakes 1 and minimise -log D(G(z)). (The original minimax
loss log(1 - D(G(z))) has a vanishing gradient exactly when G is bad and D confident, early on.)
Two details that matter:

- the D step sees `fake.detach()`: the fakes are inputs to D there, so no gradient reaches G;
- Adam with betas=(0.5, 0.999), the DCGAN setting: less momentum copes better with a moving target.

Two data sets:

- `ring`: a mixture of 8 Gaussians (std 0.05) on a circle of radius 2, the standard test for
  *mode collapse* (a generator producing only some of the modes still fools a weak D). We count
  the modes covered (at least `min_fraction` of generated samples within 3 standard deviations of
  the mode's centre) and the "high-quality" fraction (samples within 3 std of some centre).
- `digits`: 8x8 handwritten digits with a small DCGAN (transposed convolutions up, strided
  convolutions down, BatchNorm). A digit classifier, trained here on the real images, reads the
  fakes: how many of the 10 digits appear, and how many fakes it reads with >90% confidence.

Run:  python examples/gan.py                 (both, about 1 min; writes runs/gan/*.png)
      python examples/gan.py --data ring --steps 3000
"""
import argparse
import os
import time

import matplotlib
matplotlib.use("Agg")                          # draw into files, no window needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import retrograd as rg  # noqa: E402
from retrograd import nn, optim  # noqa: E402
from retrograd.data import DataLoader, datasets  # noqa: E402
from retrograd.train import fit  # noqa: E402


# --- the ring of Gaussians -------------------------------------------------------------------

def ring_centres(modes=8, radius=2.0):
    """The (modes, 2) centres, evenly spaced on a circle."""
    angles = 2 * np.pi * np.arange(modes) / modes
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)


def sample_ring(n, rng, modes=8, radius=2.0, std=0.05):
    """n points: a random centre each, plus isotropic Gaussian noise of standard deviation `std`."""
    centres = ring_centres(modes, radius)
    return centres[rng.integers(modes, size=n)] + rng.normal(0, std, (n, 2)).astype(np.float32)


def mode_coverage(samples, centres, std, min_fraction=0.02):
    """How well `samples` (N, 2) cover the mixture whose modes sit at `centres`.

    A sample is high-quality if it lies within 3 std of its nearest centre; a mode is covered if at
    least `min_fraction` of all samples are high-quality samples of that mode (an even spread gives
    each of 8 modes 1/8 = 0.125)."""
    dist = np.linalg.norm(samples[:, None, :] - centres[None, :, :], axis=2)    # (N, modes)
    nearest, close = dist.argmin(1), dist.min(1) <= 3 * std
    counts = np.bincount(nearest[close], minlength=len(centres))
    return dict(modes=int((counts >= min_fraction * len(samples)).sum()),
                high_quality=float(close.mean()), counts=counts.tolist())


def mlp(sizes):
    """Linear layers of the given widths with LeakyReLU(0.2) between them."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


# --- the adversarial game, for any G, D and source of real batches ----------------------------

def gan_step(G, D, real, z_dim, opt_g, opt_d, loss_fn):
    """One D update then one G update on a batch of `real` samples; returns (d_loss, g_loss)."""
    n = real.shape[0]
    ones, zeros = rg.ones(n, 1), rg.zeros(n, 1)
    fake = G(rg.randn(n, z_dim))

    # D: real -> 1, fake -> 0. detach(): this step must not push gradients into G.
    d_loss = loss_fn(D(real), ones) + loss_fn(D(fake.detach()), zeros)
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()

    # G, non-saturating: make D call the fakes real. This backward also fills D's .grad, but only
    # G steps here, and opt_d.zero_grad() clears them before D's next step.
    g_loss = loss_fn(D(fake), ones)
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    return d_loss.item(), g_loss.item()


def generate(G, n, z_dim):
    """n samples from G in eval mode (BatchNorm uses its running statistics), as a NumPy array."""
    G.eval()
    with rg.no_grad():
        x = G(rg.randn(n, z_dim)).numpy()
    G.train()
    return x


def train_ring(steps=3000, batch=256, z_dim=2, hidden=128, lr=1e-3, std=0.05, min_fraction=0.02,
               n_eval=2500, seed=0, out="runs/gan", snapshots=4, progress=True):
    """Train a GAN on the 8-Gaussian ring; return coverage before and after, losses, a PNG path."""
    rg.manual_seed(seed)
    rng = np.random.default_rng(seed)
    centres = ring_centres()
    G = mlp([z_dim, hidden, hidden, 2])
    D = mlp([2, hidden, hidden, 1])
    opt_g = optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    loss_fn = nn.BCEWithLogitsLoss()

    before = mode_coverage(generate(G, n_eval, z_dim), centres, std, min_fraction)
    snap_at = set(np.linspace(0, steps, snapshots + 1).astype(int)[1:])
    shots, d_losses, g_losses = [], [], []
    start = time.perf_counter()
    for step in range(1, steps + 1):
        real = rg.from_numpy(sample_ring(batch, rng, std=std))
        d, g = gan_step(G, D, real, z_dim, opt_g, opt_d, loss_fn)
        d_losses.append(d)
        g_losses.append(g)
        if step in snap_at:
            x = generate(G, n_eval, z_dim)
            cov = mode_coverage(x, centres, std, min_fraction)
            shots.append((step, x, cov))
            if progress:
                print(f"ring step {step:5d}  D loss {np.mean(d_losses[-100:]):.3f}  "
                      f"G loss {np.mean(g_losses[-100:]):.3f}  modes {cov['modes']}/8  "
                      f"high-quality {cov['high_quality']:.2f}")
    seconds = time.perf_counter() - start
    after = shots[-1][2]

    fig, axes = plt.subplots(1, len(shots), figsize=(3.2 * len(shots), 3.4))
    real = sample_ring(n_eval, rng, std=std)
    for ax, (step, x, cov) in zip(np.atleast_1d(axes), shots):
        ax.scatter(real[:, 0], real[:, 1], s=2, c="tab:blue", alpha=0.3, label="real")
        ax.scatter(x[:, 0], x[:, 1], s=2, c="tab:red", alpha=0.3, label="generated")
        ax.set(xlim=(-3, 3), ylim=(-3, 3), aspect="equal", xticks=[], yticks=[],
               title=f"step {step}: {cov['modes']}/8 modes")
    np.atleast_1d(axes)[0].legend(loc="center", markerscale=4, fontsize=8)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "ring.png")
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    print(f"ring: {after['modes']}/8 modes covered (untrained G: {before['modes']}), "
          f"high-quality fraction {after['high_quality']:.2f} (untrained: "
          f"{before['high_quality']:.2f}); {steps} steps in {seconds:.1f} s; samples: {path}")
    return dict(modes=after["modes"], high_quality=after["high_quality"], counts=after["counts"],
                modes_before=before["modes"], high_quality_before=before["high_quality"],
                d_loss=d_losses, g_loss=g_losses, seconds=seconds, png=path)


# --- digits ----------------------------------------------------------------------------------

class Generator(nn.Module):
    """z (N, z_dim) -> image (N, 1, 8, 8) in [-1, 1]: project to 2x2, then two 2x upsamplings."""

    def __init__(self, z_dim=32, width=64):
        super().__init__()
        self.width = width
        self.project = nn.Sequential(nn.Linear(z_dim, 2 * width * 4), nn.BatchNorm1d(2 * width * 4),
                                     nn.ReLU())
        self.up = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),     # 2x2 -> 4x4
            nn.BatchNorm2d(width), nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1),             # 4x4 -> 8x8
            nn.Tanh())

    def forward(self, z):
        return self.up(self.project(z).reshape(-1, 2 * self.width, 2, 2))


def discriminator(width=64):
    """image (N, 1, 8, 8) -> one logit: two strided convolutions down to 2x2, then Linear."""
    return nn.Sequential(
        nn.Conv2d(1, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),            # 8 -> 4
        nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.BatchNorm2d(2 * width),
        nn.LeakyReLU(0.2),                                                          # 4 -> 2
        nn.Flatten(), nn.Linear(2 * width * 4, 1))


def digit_reader(train_set, epochs=10, seed=0):
    """A plain MLP digit classifier on the real images (about 97% test accuracy)."""
    rg.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    fit(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=3e-3),
        DataLoader(train_set, batch_size=64, shuffle=True), epochs=epochs, progress=False)
    return model.eval()


def read_digits(reader, images):
    """What the classifier makes of `images` (N, 1, 8, 8) in [0, 1]: the digits that get at least
    5% of the samples, and the fraction read with a top softmax probability above 0.9."""
    with rg.no_grad():
        p = rg.softmax(reader(rg.from_numpy(images.reshape(len(images), 64))), dim=1).numpy()
    share = np.bincount(p.argmax(1), minlength=10) / len(p)
    return dict(classes=int((share >= 0.05).sum()), confidence=float(p.max(1).mean()),
                confident=float((p.max(1) > 0.9).mean()), share=share.round(3).tolist())


def tile(images, cols=10, gap=1):
    """(N, h, w) images -> one (rows*(h+gap), cols*(w+gap)) array, a gap of blank pixels between."""
    n, h, w = images.shape
    rows = -(-n // cols)
    grid = np.zeros((rows * (h + gap), cols * (w + gap)), dtype=images.dtype)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        grid[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = image
    return grid


def train_digits(epochs=40, batch=64, z_dim=32, width=64, lr=2e-4, n_eval=1000, seed=0,
                 out="runs/gan", progress=True):
    """Train a DCGAN on all 1,797 digits; return the classifier's reading of fakes, a PNG path."""
    train_set, test_set = datasets.digits(split="both")
    reader = digit_reader(train_set, seed=seed)
    all_digits = datasets.digits(flat=False)
    rg.manual_seed(seed)
    G, D = Generator(z_dim, width), discriminator(width)
    opt_g = optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    loss_fn = nn.BCEWithLogitsLoss()
    loader = DataLoader(all_digits, batch_size=batch, shuffle=True, drop_last=True)

    def fakes(n):
        return (generate(G, n, z_dim) + 1) / 2             # tanh's [-1, 1] back to pixels [0, 1]

    before = read_digits(reader, fakes(n_eval))
    start = time.perf_counter()
    d_losses, g_losses = [], []
    for epoch in range(1, epochs + 1):
        ds, gs = [], []
        for images, _ in loader:
            d, g = gan_step(G, D, images * 2 - 1, z_dim, opt_g, opt_d, loss_fn)
            ds.append(d)
            gs.append(g)
        d_losses.append(float(np.mean(ds)))
        g_losses.append(float(np.mean(gs)))
        if progress and (epoch % 5 == 0 or epoch == epochs):
            print(f"digits epoch {epoch:3d}  D loss {d_losses[-1]:.3f}  G loss {g_losses[-1]:.3f}")
    seconds = time.perf_counter() - start
    samples = fakes(n_eval)
    after = read_digits(reader, samples)

    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "digits.png")
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(tile(samples[:100, 0]), cmap="gray_r", vmin=0, vmax=1)
    ax.set(xticks=[], yticks=[], title=f"GAN digits after {epochs} epochs")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    real = read_digits(reader, test_set.tensors[0].numpy())
    print(f"digits: the classifier reads {after['classes']}/10 digits among the fakes, "
          f"{after['confident']:.0%} of them with >90% confidence (untrained G: "
          f"{before['classes']}/10, {before['confident']:.0%}; real test digits: "
          f"{real['confident']:.0%}); {epochs} epochs in {seconds:.1f} s; samples: {path}")
    return dict(classes=after["classes"], confident=after["confident"], share=after["share"],
                classes_before=before["classes"], confident_before=before["confident"],
                confident_real=real["confident"],
                d_loss=d_losses, g_loss=g_losses, seconds=seconds, png=path)


def main(data="both", steps=3000, epochs=40, seed=0, out="runs/gan", progress=True):
    """Train on `data` ("ring", "digits" or "both"); return {"ring": ..., "digits": ...}."""
    results = {}
    if data in ("ring", "both"):
        results["ring"] = train_ring(steps=steps, seed=seed, out=out, progress=progress)
    if data in ("digits", "both"):
        results["digits"] = train_digits(epochs=epochs, seed=seed, out=out, progress=progress)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=["ring", "digits", "both"], default="both")
    parser.add_argument("--steps", type=int, default=3000, help="ring: training steps")
    parser.add_argument("--epochs", type=int, default=40, help="digits: training epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads (one is fastest for matrices this small)")
    parser.add_argument("--out", default="runs/gan")
    args = parser.parse_args()
    rg.set_num_threads(args.threads)
    main(args.data, args.steps, args.epochs, args.seed, args.out)
