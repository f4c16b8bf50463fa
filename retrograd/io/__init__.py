"""Saving and loading weights (safetensors, never pickle), and atomic file writes.

>>> import retrograd as rg
>>> rg.io.save(model.state_dict(), "model.safetensors", metadata={"epoch": 10})
>>> model.load_state_dict(rg.io.load("model.safetensors"))

Files are interchangeable with PyTorch's: `safetensors.torch.load_file("model.safetensors")` gives
a state dict for the same architecture in torch, and `safetensors.torch.save_file` writes one that
`rg.io.load` reads. A nested object (what one would `torch.save`: model and optimizer state dicts,
the epoch, ...) is saved in the same format, tensors under dotted keys and the rest as JSON in the
header, and `load` rebuilds it; nothing is ever unpickled. `fit(checkpoint=...)` uses this for
full training checkpoints (see `retrograd.train.checkpoint`).
"""
from .atomic import atomic_write_bytes, atomic_write_text
from .serialization import StateDict, library_version, load, load_metadata, save

__all__ = ["save", "load", "load_metadata", "StateDict", "library_version", "atomic_write_bytes",
           "atomic_write_text"]
