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
    """Copy consecutive slices of `vector` into `parameters` (in place)."""
    offset = 0
    flat = vector.data
    for p in parameters:
        n = p.data.size
        if offset + n > flat.size:
            raise ValueError(f"vector_to_parameters: vector of {flat.size} elements is too short")
        p.data[...] = flat[offset:offset + n].reshape(p.data.shape)
        offset += n
    if offset != flat.size:
        raise ValueError(f"vector_to_parameters: vector has {flat.size} elements, parameters "
                         f"need {offset}")
