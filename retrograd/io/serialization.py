"""Saving and loading tensors in the safetensors format: PyTorch reads our files and we read its.

A safetensors file is an 8-byte little-endian header length, a JSON header (each tensor's dtype,
shape and byte range, plus optional string metadata), then the raw little-endian bytes. Nothing in
it is executable, unlike a pickle, which is why this is the only format here: retrograd never
unpickles. Keys are stored as given, so a `state_dict()` saved here has PyTorch's names and loads
into the same architecture in either library.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..creation import from_numpy
from ..tensor import Tensor
from .atomic import PathLike, atomic_write_bytes

_INSTALL_HINT = 'pip install safetensors'
_MAX_HEADER = 100_000_000  # the limit the safetensors reference implementation enforces
_MAGIC = {  # what other files commonly mistaken for weights start with
    b"PK\x03\x04": "a zip archive (torch.save's format: a pickle inside a zip)",
    b"\x93NUMPY": "a NumPy .npy file",
    b"\x89HDF": "an HDF5 file (Keras .h5?)",
}


def save(tensors: Mapping[str, Any], path: PathLike,
         metadata: Mapping[str, Any] | None = None) -> None:
    """Write a dict of tensors (e.g. `model.state_dict()`) to `path` as safetensors, atomically.

    Values may be Tensors or NumPy arrays (any numeric dtype, any shape including 0-d). `metadata`
    is a flat dict stored in the header as strings: string values are kept as they are, anything
    else is JSON-encoded (read it back with `load_metadata`). A crash mid-write leaves the previous
    file at `path` intact (see `atomic_write_bytes`).

    >>> rg.io.save(model.state_dict(), "model.safetensors", metadata={"epoch": 3})
    >>> model.load_state_dict(rg.io.load("model.safetensors"))
    """
    if hasattr(tensors, "state_dict") and callable(tensors.state_dict):
        tensors = tensors.state_dict()  # a Module: save its weights, as people often mean to
    if not isinstance(tensors, Mapping):
        raise TypeError(f"save: expected a dict of tensors (e.g. model.state_dict()), "
                        f"got {type(tensors).__name__}")
    arrays = {}
    for key, value in tensors.items():
        if not isinstance(key, str):
            raise TypeError(f"save: keys must be strings, got {key!r} ({type(key).__name__})")
        if key == "__metadata__":
            raise ValueError("save: '__metadata__' is reserved by the safetensors format; pass "
                             "metadata= instead")
        array = value.data if isinstance(value, Tensor) else np.asarray(value)
        if array.dtype.kind not in "biufc":
            raise TypeError(f"save: tensor {key!r} has dtype {array.dtype}, which safetensors "
                            "cannot store (numbers and bools only)")
        # safetensors copies raw memory from the data pointer: it must be one dense block
        # (not np.ascontiguousarray, which turns 0-d arrays into 1-d)
        arrays[key] = array if array.flags.c_contiguous else array.copy(order="C")
    data = _safetensors_numpy().save(arrays, metadata=_encode_metadata(metadata))
    atomic_write_bytes(path, data)


def load(path: PathLike) -> dict[str, Tensor]:
    """Read a safetensors file into a dict of Tensors, keys as stored.

    Raises FileNotFoundError if `path` is missing, and ValueError naming the file if it is not a
    safetensors file (a pickle, a torch.save zip, ...) or is truncated.

    >>> state = rg.io.load("model.safetensors")
    >>> model.load_state_dict(state)
    """
    path = os.fspath(path)
    data, _ = _read(path)
    try:
        arrays = _safetensors_numpy().load(data)
    except Exception as err:  # safetensors raises its own SafetensorError; name the file
        raise ValueError(f"{path}: not a valid safetensors file ({err})") from err
    # the arrays are fresh buffers, so the tensors may own them (copy only if read-only)
    return {key: from_numpy(array if array.flags.writeable else array.copy())
            for key, array in arrays.items()}


def load_metadata(path: PathLike) -> dict[str, str]:
    """The metadata stored in a safetensors file's header (all values are strings).

    >>> rg.io.save(state, "m.safetensors", metadata={"epoch": 3, "note": "best"})
    >>> rg.io.load_metadata("m.safetensors")
    {'epoch': '3', 'note': 'best'}
    """
    _, header = _read(os.fspath(path))
    return dict(header.get("__metadata__") or {})


def _encode_metadata(metadata: Mapping[str, Any] | None) -> dict[str, str] | None:
    if metadata is None:
        return None
    out = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise TypeError(f"save: metadata keys must be strings, got {key!r}")
        out[key] = value if isinstance(value, str) else json.dumps(value)
    return out


def _read(path: str) -> tuple[bytes, dict]:
    """The file's bytes and its parsed header, after checks that turn every way a file can be
    wrong into an error that names it."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{path} is a directory, not a safetensors file") from None
    size = len(data)
    if size < 8:
        raise ValueError(f"{path}: truncated or empty: {size} bytes, too short to hold even the "
                         "8-byte header length of a safetensors file")
    n = int.from_bytes(data[:8], "little")
    if n > _MAX_HEADER or not data[8:9] == b"{":
        raise ValueError(f"{path}: not a safetensors file: it looks like {_guess_format(data)}. "
                         "retrograd only reads safetensors (it never unpickles); convert the "
                         "weights with safetensors.torch.save_file(model.state_dict(), path)")
    if 8 + n > size:
        raise ValueError(f"{path}: truncated: the header alone should be {n} bytes but the file "
                         f"has only {size - 8} after the length field")
    try:
        header = json.loads(data[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a safetensors file: its header is not valid JSON "
                         f"({err})") from err
    if not isinstance(header, dict):
        raise ValueError(f"{path}: not a safetensors file: its header is not a JSON object")
    end = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            end = max(end, int(info["data_offsets"][1]))
        except (TypeError, KeyError, IndexError, ValueError) as err:
            raise ValueError(f"{path}: not a valid safetensors file: entry {key!r} has no "
                             "data_offsets") from err
    if 8 + n + end > size:
        raise ValueError(f"{path}: truncated: the header describes {end} bytes of tensor data but "
                         f"only {size - 8 - n} follow it (an interrupted download or copy?)")
    return data, header


def _guess_format(data: bytes) -> str:
    for magic, name in _MAGIC.items():
        if data.startswith(magic):
            return name
    if data[:1] == b"\x80" and 2 <= data[1] <= 5:
        return f"a Python pickle (protocol {data[1]})"
    return "something else (the first 8 bytes are not a plausible header length)"


def _safetensors_numpy():
    try:
        import safetensors.numpy
    except ImportError as err:
        raise ImportError(f"retrograd.io needs the safetensors package, which is not installed: "
                          f"{_INSTALL_HINT}") from err
    return safetensors.numpy
