"""Random numbers: one library-wide generator, so `rg.manual_seed(s)` makes every draw reproducible."""
from __future__ import annotations

import weakref
from typing import Any

import numpy as np


class Generator:
    """A seedable source of random numbers (a NumPy PCG64 generator underneath).

    >>> g = rg.Generator().manual_seed(0)
    >>> loader = DataLoader(data, shuffle=True, generator=g)
    """

    def __init__(self, seed: int | None = None):
        self.rng = np.random.default_rng(seed)
        self._seed = seed
        _generators.add(self)

    def manual_seed(self, seed: int) -> "Generator":
        self.rng = np.random.default_rng(int(seed))
        self._seed = int(seed)
        return self

    def initial_seed(self) -> int | None:
        return self._seed

    def get_state(self) -> dict[str, Any]:
        return self.rng.bit_generator.state

    def set_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state


def states() -> dict[int, Any]:
    """The state of every live Generator, by id: rg.compile compares them to notice draws made
    around the library's functions while it records a step."""
    return {id(g): g.rng.bit_generator.state for g in list(_generators)}


_generators: "weakref.WeakSet[Generator]" = weakref.WeakSet()
default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    """Seed the library's default generator: weight init, dropout, shuffling and rand* all follow it."""
    return default_generator.manual_seed(seed)


def seed() -> int:
    """Seed the default generator from the OS and return the seed used."""
    s = int(np.random.SeedSequence().entropy % (2 ** 63))
    default_generator.manual_seed(s)
    return s


def get_rng_state() -> dict[str, Any]:
    return default_generator.get_state()


def set_rng_state(state: dict[str, Any]) -> None:
    default_generator.set_state(state)


def rng(generator: Generator | None = None) -> np.random.Generator:
    """The NumPy generator to draw from: the given one, or the library default."""
    return (generator or default_generator).rng
