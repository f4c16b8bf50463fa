"""Data types: NumPy's, under PyTorch's names, with float32 as the default for floating data."""
from __future__ import annotations

import builtins
from typing import Any

import numpy as np

float16 = half = np.dtype(np.float16)
float32 = float = np.dtype(np.float32)
float64 = double = np.dtype(np.float64)
int8 = np.dtype(np.int8)
int16 = short = np.dtype(np.int16)
int32 = int = np.dtype(np.int32)
int64 = long = np.dtype(np.int64)
uint8 = np.dtype(np.uint8)
bool_ = np.dtype(np.bool_)

_default_float = float32

_NAMES = {"float16": float16, "half": float16, "float32": float32, "float": float32,
          "float64": float64, "double": float64, "int8": int8, "int16": int16, "int32": int32,
          "int": int32, "int64": int64, "long": int64, "uint8": uint8, "bool": bool_}


def get_default_dtype() -> np.dtype:
    return _default_float


def set_default_dtype(dtype: Any) -> None:
    """Dtype of floating tensors created from Python numbers (float32 unless changed)."""
    global _default_float
    dtype = resolve(dtype)
    if dtype.kind != "f":
        raise TypeError(f"set_default_dtype: only floating types can be the default, got {dtype}")
    _default_float = dtype


def resolve(dtype: Any) -> np.dtype:
    """A NumPy dtype from a NumPy type, a dtype, or a name such as 'float32'."""
    if isinstance(dtype, str) and dtype in _NAMES:
        return _NAMES[dtype]
    if dtype is builtins.float:
        return _default_float
    if dtype is builtins.int:
        return int64
    if dtype is builtins.bool:
        return bool_
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"unknown dtype {dtype!r}") from None


def name(dtype: np.dtype) -> str:
    return "bool" if dtype == bool_ else dtype.name


def as_array(data: Any, dtype: Any = None) -> np.ndarray:
    """An array from `data`, following torch.tensor: Python floats become the default float dtype,
    NumPy arrays keep their dtype unless `dtype` says otherwise."""
    if dtype is not None:
        return np.array(data, dtype=resolve(dtype))
    if isinstance(data, np.ndarray):
        return data.copy()
    array = np.array(data)
    if array.dtype.kind == "f" and array.dtype != _default_float and not isinstance(data, np.generic):
        array = array.astype(_default_float)
    elif array.dtype.kind == "O":
        raise TypeError(f"tensor(): cannot build a tensor from {type(data).__name__}")
    return array
