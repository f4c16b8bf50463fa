"""Data loading: datasets, samplers and the DataLoader, with torch.utils.data's names.

>>> from retrograd.data import DataLoader, TensorDataset, random_split
>>> ds = TensorDataset(rg.randn(100, 3), rg.randint(0, 2, (100,)))
>>> train, val = random_split(ds, [0.8, 0.2])
>>> for x, y in DataLoader(train, batch_size=16, shuffle=True):
...     ...

Built-in datasets (no download), in `retrograd.data.datasets` and here: `xor`, `moons`, `spirals`,
`digits`, `mnist5k`.
"""
from . import datasets
from .datasets import digits, mnist5k, moons, spirals, xor
from .dataset import ConcatDataset, Dataset, Subset, TensorDataset, random_split
from .loader import DataLoader, default_collate
from .samplers import BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler

__all__ = [
    "Dataset", "TensorDataset", "Subset", "ConcatDataset", "random_split", "DataLoader",
    "default_collate", "Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler",
    "BatchSampler", "datasets", "xor", "moons", "spirals", "digits", "mnist5k",
]
