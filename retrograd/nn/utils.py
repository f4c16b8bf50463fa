"""`nn.utils`: gradient clipping (the remedy for exploding gradients) and parameter vectors."""
from __future__ import annotations

from typing import Iterable

import numpy as np

from ..tensor import Tensor
from .clip_grad import (clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_,  # noqa: F401
                        get_total_norm)


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """All parameters flattened into one 1-D tensor (a copy)."""
    return Tensor(np.concatenate([p.data.reshape(-1) for p in parameters]))


def vector_to_parameters(vector: Tensor, parameters: Iterable[Tensor]) -> None:
    """Give `parameters` the values of consecutive slices of `vector`.

    As torch, each parameter gets new memory rather than being written in place: a graph that
    saved a parameter's old values still backpropagates through them.

    >>> vector_to_parameters(parameters_to_vector(best.parameters()), model.parameters())
    """
    parameters = list(parameters)
    flat = vector.data
    need = sum(p.data.size for p in parameters)
    if flat.ndim != 1 or flat.size != need:
        raise ValueError(f"vector_to_parameters: vector of shape {flat.shape}, the parameters "
                         f"need a 1-D vector of {need} elements")
    offset = 0
    for p in parameters:
        n = p.data.size
        p.data = flat[offset:offset + n].reshape(p.data.shape).astype(p.data.dtype, copy=True)
        offset += n
