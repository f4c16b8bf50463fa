"""Saving and loading tensors in the safetensors format: PyTorch reads our files and we read its.

A safetensors file is an 8-byte little-endian header length, a JSON header (each tensor's dtype,
shape and byte range, plus optional string metadata), then the raw little-endian bytes. Nothing in
it is executable, unlike a pickle, which is why this is the only format here: retrograd never
unpickles. Keys are stored as given, so a `state_dict()` saved here has PyTorch's names and loads
into the same architecture in either library.

A nested object (a training checkpoint: `{"model": ..., "optimizer": ..., "epoch": 3}`, what one
would hand to `torch.save`) is stored in the same format: its tensors under dotted keys
("model.fc1.weight", "optimizer.state.0.exp_avg"), everything else (numbers, strings, lists,
tuples, dicts) as JSON in the header's metadata, where each tensor is a reference to its key.
One file, so one atomic write covers all of it.
"""
from __future__ import annotations

import json
import math
import os
import sys
from collections import Counter
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
_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "U64": "<u8", "I32": "<i4",
           "U32": "<u4", "I16": "<i2", "U16": "<u2", "I8": "i1", "U8": "u1", "BOOL": "?",
           "C64": "<c8", "BF16": "<u2"}  # BF16: read as raw bits, widened to float32 below
STRUCTURE_KEY = "retrograd.structure"  # metadata entry holding a nested object's skeleton


class StateDict(dict):
    """The dict `load` returns: tensors by key, plus `filename`, the file they came from, so that
    `Module.load_state_dict` can name the file when a key or a shape does not fit."""

    filename: str | None = None


def save(obj: Any, path: PathLike, metadata: Mapping[str, Any] | None = None) -> None:
    """Write `obj` to `path` as safetensors, atomically.

    `obj` is a dict of tensors (e.g. `model.state_dict()`; a Module saves its state dict), written
    as a plain safetensors file that `safetensors.torch.load_file` reads; values may be Tensors or
    NumPy arrays of any numeric dtype and shape (0-d too). `obj` may also be a nested dict, as
    one passes to `torch.save`: tensors at any depth plus numbers, strings, None, lists, tuples
    and dicts (e.g. an optimizer's state_dict), rebuilt as it was by `load`. Anything else (a
    function, an arbitrary object) is refused: the file never holds code.

    `metadata` is a flat dict stored in the header as strings: string values are kept as they
    are, anything else is JSON-encoded (read it back with `load_metadata`). A crash mid-write
    leaves the previous file at `path` intact (see `atomic_write_bytes`).

    >>> rg.save(model.state_dict(), "model.safetensors", metadata={"epoch": 3})
    >>> model.load_state_dict(rg.load("model.safetensors"))
    >>> rg.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}, "ck")
    """
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        obj = obj.state_dict()  # a Module: save its weights, as people often mean to
    if not isinstance(obj, Mapping):
        raise TypeError(f"save: expected a dict of tensors (e.g. model.state_dict()), "
                        f"got {type(obj).__name__}")
    meta = _encode_metadata(metadata) or {}
    if STRUCTURE_KEY in meta:
        raise ValueError(f"save: the metadata key {STRUCTURE_KEY!r} is reserved")
    if all(_is_array(v) for v in obj.values()):
        tensors = dict(obj)  # a state dict: stored flat, keys as given, as PyTorch stores it
    else:
        tensors = {}
        meta[STRUCTURE_KEY] = json.dumps(_encode(obj, [], tensors), allow_nan=False)
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
    data = _safetensors_numpy().save(arrays, metadata=meta or None)
    atomic_write_bytes(path, data)


def load(path: PathLike) -> Any:
    """Read a safetensors file: a dict of Tensors with the keys as stored (a `StateDict`), or, for
    a file `save` wrote from a nested object, that object rebuilt.

    Nothing in the file is executed. A missing file raises FileNotFoundError; a file that is not
    safetensors (a pickle, a torch.save zip, ...), is truncated, has a malformed header, a dtype
    NumPy lacks, or a tensor whose shape and byte range disagree raises ValueError naming the
    file (and the key). bfloat16 tensors are widened to float32 (NumPy has no bfloat16).

    >>> state = rg.load("model.safetensors")
    >>> model.load_state_dict(state)
    """
    path = os.fspath(path)
    data, header, start = _read(path)
    arrays = StateDict()
    arrays.filename = path
    for key, info in header.items():
        if key == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        kind = info["dtype"]
        array = np.frombuffer(data, dtype=_DTYPES[kind], count=(end - begin) //
                              np.dtype(_DTYPES[kind]).itemsize, offset=start + begin)
        if kind == "BF16":  # the top half of a float32: shift the bits back into place
            array = (array.astype(np.uint32) << 16).view(np.float32)
        # a copy: aligned, writeable, native byte order, and not pinning the whole file's bytes
        arrays[key] = from_numpy(array.astype(array.dtype.newbyteorder("="))
                                 .reshape(info["shape"]))
    skeleton = (header.get("__metadata__") or {}).get(STRUCTURE_KEY)
    if skeleton is None:
        return arrays
    try:
        return _decode(json.loads(skeleton), arrays, path)
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: the {STRUCTURE_KEY!r} metadata is damaged ({err})") from err


def load_metadata(path: PathLike) -> dict[str, str]:
    """The metadata stored in a safetensors file's header (all values are strings).

    >>> rg.io.save(state, "m.safetensors", metadata={"epoch": 3, "note": "best"})
    >>> rg.io.load_metadata("m.safetensors")
    {'epoch': '3', 'note': 'best'}
    """
    _, header, _ = _read(os.fspath(path))
    return dict(header.get("__metadata__") or {})


def library_version() -> str:
    """retrograd's version, for a checkpoint's metadata (read lazily: io loads before it is set)."""
    return str(getattr(sys.modules.get("retrograd"), "__version__", "unknown"))


# -- nested objects: a JSON skeleton with references to the tensors -------------------------------

def _is_array(value: Any) -> bool:
    return isinstance(value, (Tensor, np.ndarray))


def _encode(value: Any, where: list, tensors: dict) -> Any:
    if _is_array(value):
        key = ".".join(map(str, where)) or "tensor"
        while key in tensors:  # {"a.b": {"c": x}} and {"a": {"b.c": y}} would meet
            key += "_"
        tensors[key] = value
        return {"$tensor": key}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, Counter):
        return {"$counter": [[_encode(k, where + [k], tensors), n] for k, n in value.items()]}
    if isinstance(value, Mapping):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: _encode(v, where + [k], tensors) for k, v in value.items()}
        return {"$dict": [[_encode(k, where + ["key"], tensors), _encode(v, where + [k], tensors)]
                          for k, v in value.items()]}
    if isinstance(value, list):
        return [_encode(v, where + [i], tensors) for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v, where + [i], tensors) for i, v in enumerate(value)]}
    name = "".join(f"[{p!r}]" for p in where) or "the object"
    raise TypeError(f"save: cannot store {name}, a {type(value).__name__}: only tensors, NumPy "
                    "arrays, numbers, strings, None, lists, tuples and dicts can be saved (the "
                    "file never holds code; save the state_dict() of objects)")


def _decode(value: Any, tensors: StateDict, path: str) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors, path) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (tag, inner), = value.items()
        if tag == "$tensor":
            return tensors[inner]
        if tag == "$float":
            return float(inner)
        if tag == "$tuple":
            return tuple(_decode(v, tensors, path) for v in inner)
        if tag == "$counter":
            return Counter({_decode(k, tensors, path): n for k, n in inner})
        if tag == "$dict":
            return {_decode(k, tensors, path): _decode(v, tensors, path) for k, v in inner}
    out = {k: _decode(v, tensors, path) for k, v in value.items()}
    if out and all(isinstance(v, Tensor) for v in out.values()):
        state = StateDict(out)  # e.g. checkpoint["model"]: errors loading it name the file
        state.filename = path
        return state
    return out


def _encode_metadata(metadata: Mapping[str, Any] | None) -> dict[str, str] | None:
    if metadata is None:
        return None
    out = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise TypeError(f"save: metadata keys must be strings, got {key!r}")
        out[key] = value if isinstance(value, str) else json.dumps(value)
    return out


# -- reading: every way a file can be wrong becomes an error naming it ----------------------------

def _read(path: str) -> tuple[bytes, dict, int]:
    """The file's bytes, its parsed and checked header, and where the tensor data starts."""
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
                         f"({err}); is the header length field ({n}) wrong?") from err
    if not isinstance(header, dict):
        raise ValueError(f"{path}: not a safetensors file: its header is not a JSON object")
    meta = header.get("__metadata__")
    if meta is not None and not (isinstance(meta, dict)
                                 and all(isinstance(v, str) for v in meta.values())):
        raise ValueError(f"{path}: invalid safetensors header: __metadata__ must map strings to "
                         "strings")
    spans = []
    for key, info in header.items():
        if key != "__metadata__":
            spans.append((*_check_entry(path, key, info), key))
    spans.sort()
    end = 0
    for begin, stop, key in spans:  # the format: one dense buffer, tensors back to back
        if begin != end:
            raise ValueError(f"{path}: invalid safetensors header: tensor {key!r} starts at byte "
                             f"{begin} of the data, expected {end} ("
                             + ("overlapping tensors)" if begin < end else "a gap before it)"))
        end = stop
    if 8 + n + end > size:
        raise ValueError(f"{path}: truncated: the header describes {end} bytes of tensor data but "
                         f"only {size - 8 - n} follow it (an interrupted download or copy?)")
    return data, header, 8 + n


def _check_entry(path: str, key: str, info: Any) -> tuple[int, int]:
    """(begin, end) of one tensor's bytes, after checking its dtype, shape and byte count."""
    bad = f"{path}: invalid safetensors header: tensor {key!r}"
    if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
        raise ValueError(f"{bad} needs dtype, shape and data_offsets, got {info!r}")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if dtype not in _DTYPES:
        raise ValueError(f"{bad} has dtype {dtype!r}, which NumPy cannot hold (readable: "
                         f"{', '.join(_DTYPES)}); convert it before saving, e.g. .float() in "
                         "torch")
    if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
        raise ValueError(f"{bad} has an invalid shape {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2
            and all(type(o) is int for o in offsets) and 0 <= offsets[0] <= offsets[1]):
        raise ValueError(f"{bad} has invalid data_offsets {offsets!r}")
    nbytes = math.prod(shape) * np.dtype(_DTYPES[dtype]).itemsize
    if offsets[1] - offsets[0] != nbytes:
        raise ValueError(f"{bad}: shape {tuple(shape)} of {dtype} needs {nbytes} bytes but its "
                         f"data_offsets {offsets} span {offsets[1] - offsets[0]} (wrong dtype or "
                         "shape in the header?)")
    return offsets[0], offsets[1]


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
