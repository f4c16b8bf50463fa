"""Saving and loading weights (safetensors, never pickle), and atomic file writes.

>>> import retrograd as rg
>>> rg.io.save(model.state_dict(), "model.safetensors", metadata={"epoch": 10})
>>> model.load_state_dict(rg.io.load("model.safetensors"))

Files are interchangeable with PyTorch's: `safetensors.torch.load_file("model.safetensors")` gives
a state dict for the same architecture in torch, and `safetensors.torch.save_file` writes one that
`rg.io.load` reads.
"""
from .atomic import atomic_write_bytes, atomic_write_text
from .serialization import load, load_metadata, save

__all__ = ["save", "load", "load_metadata", "atomic_write_bytes", "atomic_write_text"]
