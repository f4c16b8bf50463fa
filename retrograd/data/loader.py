"""DataLoader: batches from a dataset, in order or shuffled, collated into Tensors.

Semantics follow torch.utils.data.DataLoader (single process). One speed-up of our own: for a
`TensorDataset` (or a `Subset` of one, e.g. from `random_split`) with the default collate, a
batch is one fancy-index per tensor instead of `batch_size` lookups followed by a stack.
"""
from __future__ import annotations

import collections.abc as abc
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .. import dtypes
from ..random import Generator
from ..tensor import Tensor, _wrap
from .dataset import Dataset, Subset, TensorDataset
from .samplers import BatchSampler, RandomSampler, Sampler, SequentialSampler, check_batch_size

_COLLATE_ERROR = ("default_collate: batch must contain tensors, numpy arrays, numbers, dicts or "
                  "lists; found {}")


def default_collate(batch: Sequence[Any]) -> Any:
    """Stack a list of samples into a batch, keeping the samples' structure.

    Tensors and NumPy arrays are stacked along a new first dimension (keeping their dtype); Python
    ints become int64, bools bool, and Python floats the default float dtype (float32; PyTorch makes
    them float64); NumPy scalars keep their dtype. Tuples and lists collate element-wise into a
    list, dicts key-wise, named tuples field-wise; strings are left as they are.

    >>> default_collate([(rg.zeros(3), 0), (rg.ones(3), 1)])
    [tensor([[0., 0., 0.],
            [1., 1., 1.]]), tensor([0, 1])]
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _wrap(_stack([t.data for t in batch]))
    if isinstance(elem, np.ndarray):
        if elem.dtype.kind in "SUO":
            raise TypeError(_COLLATE_ERROR.format(elem.dtype))
        return _wrap(_stack(batch))
    if isinstance(elem, np.generic) and elem.dtype.kind not in "SUO":
        return _wrap(np.array(batch, dtype=elem.dtype))
    if isinstance(elem, bool):
        return _wrap(np.array(batch, dtype=np.bool_))
    if isinstance(elem, int):
        array = np.array(batch)  # like torch.tensor: any float in the batch makes it floating
        return _wrap(array.astype(dtypes.get_default_dtype() if array.dtype.kind == "f"
                                  else np.int64, copy=False))
    if isinstance(elem, float):
        return _wrap(np.array(batch, dtype=dtypes.get_default_dtype()))
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, abc.Mapping):
        collated = {key: default_collate([d[key] for d in batch]) for key in elem}
        try:
            return type(elem)(collated)
        except TypeError:  # a mapping type that can't be built from a dict
            return collated
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return type(elem)(*(default_collate(field) for field in zip(*batch)))
    if isinstance(elem, abc.Sequence):
        size = len(elem)
        if any(len(sample) != size for sample in batch):
            sizes = sorted({len(sample) for sample in batch})
            raise RuntimeError(f"default_collate: each element in the batch should have the same "
                               f"length, got lengths {sizes}")
        return [default_collate(field) for field in zip(*batch)]
    raise TypeError(_COLLATE_ERROR.format(type(elem)))


def _stack(arrays: Sequence[np.ndarray]) -> np.ndarray:
    shape = np.shape(arrays[0])
    for i, a in enumerate(arrays):
        if np.shape(a) != shape:
            raise RuntimeError(f"default_collate: samples must have the same shape to be stacked, "
                               f"got {shape} at index 0 and {np.shape(a)} at index {i}; pad them "
                               "or pass a collate_fn")
    return np.stack(arrays)


def _tensor_arrays(dataset: Any) -> tuple[list[np.ndarray], np.ndarray | None] | None:
    """(arrays, index map) when `dataset` is a TensorDataset, possibly under Subsets; else None."""
    index_map = None
    while type(dataset) is Subset:
        inner = np.asarray(dataset.indices, dtype=np.int64)
        index_map = inner if index_map is None else inner[index_map]
        dataset = dataset.dataset
    if type(dataset) is not TensorDataset:  # a subclass may override __getitem__
        return None
    return [t.data for t in dataset.tensors], index_map


class DataLoader:
    """Iterate over `dataset` in batches.

    Each pass (epoch) over the loader visits every sample once: in order, or in a fresh random
    order when `shuffle=True`, drawn from `generator` or the library default generator (so
    `rg.manual_seed(s)` makes the epochs reproducible). Samples are merged by `collate_fn`
    (`default_collate` unless given). The last batch is smaller when the batch size does not divide
    the dataset, unless `drop_last=True`. A custom `sampler` (indices) or `batch_sampler` (lists of
    indices) replaces the built-in ordering.

    >>> ds = TensorDataset(rg.randn(100, 3), rg.randint(0, 2, (100,)))
    >>> loader = DataLoader(ds, batch_size=32, shuffle=True)
    >>> len(loader)
    4
    >>> for x, y in loader:     # x: (32, 3) float32, y: (32,) int64; the last batch has 4
    ...     pass
    """

    def __init__(self, dataset: Dataset, batch_size: int = 1, shuffle: bool = False,
                 sampler: Sampler | Sequence[int] | None = None,
                 batch_sampler: Sampler | Sequence[Sequence[int]] | None = None,
                 drop_last: bool = False, collate_fn: Callable[[list], Any] | None = None,
                 generator: Generator | None = None):
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"DataLoader: collate_fn must be callable, got {collate_fn!r}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler is mutually exclusive with shuffle=True "
                             "(the sampler decides the order)")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler is mutually exclusive with batch_size, "
                                 "shuffle, sampler and drop_last")
        else:
            batch_size = check_batch_size(batch_size, "DataLoader")
        if isinstance(dataset, abc.Sized) and len(dataset) == 0:
            raise ValueError("DataLoader: the dataset is empty (length 0), there is nothing to "
                             "load")
        if sampler is None:
            sampler = (RandomSampler(dataset, generator=generator) if shuffle
                       else SequentialSampler(dataset))
        self._auto_batch = batch_sampler is None
        if batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
            if drop_last and isinstance(sampler, abc.Sized) and len(sampler) < batch_size:
                raise ValueError(f"DataLoader: drop_last=True with batch_size={batch_size} and "
                                 f"only {len(sampler)} samples would yield no batches; lower "
                                 "batch_size or set drop_last=False")
        self.dataset = dataset
        self.batch_size = batch_size if self._auto_batch else None
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.generator = generator
        self.collate_fn = default_collate if collate_fn is None else collate_fn

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def _index_batches(self) -> Iterator[np.ndarray | list]:
        if not self._auto_batch:
            yield from self.batch_sampler
            return
        sampler = self.sampler
        order = sampler._order() if hasattr(sampler, "_order") else list(sampler)
        n, bs = len(order), self.batch_size
        stop = n - n % bs if self.drop_last else n
        for start in range(0, stop, bs):
            yield order[start:start + bs]

    def __iter__(self) -> Iterator[Any]:
        fast = _tensor_arrays(self.dataset) if self.collate_fn is default_collate else None
        for indices in self._index_batches():
            if fast is not None:
                arrays, index_map = fast
                idx = np.asarray(indices, dtype=np.int64)
                if index_map is not None:
                    idx = index_map[idx]
                yield [_wrap(a[idx]) for a in arrays]
            else:
                if isinstance(indices, np.ndarray):
                    indices = indices.tolist()  # datasets get Python ints, as in PyTorch
                yield self.collate_fn([self.dataset[i] for i in indices])

    def __repr__(self) -> str:
        return (f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, batches={len(self)})")
