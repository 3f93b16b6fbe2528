"""Limits and checks on structure files given by users (seeds, labelled imports).

Every problem is a ``ConfigError`` that names the file (and the structure), raised before any
store write. Limits: a structure file larger than :data:`MAX_STRUCTURE_FILE_BYTES` is refused
before it is parsed (a wrong file, e.g. a trajectory dump, would take minutes and gigabytes);
a structure with more than :data:`MAX_ATOMS` atoms is refused (active learning labels small
cells; the oracle cost and the O(N²) sanity checks grow with it).
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np
from ase import Atoms

from frostline.config import ConfigError

MAX_STRUCTURE_FILE_BYTES = 64 * 1024 * 1024
MAX_ATOMS = 2000


def check_structure_file(path: Path, field: str) -> None:
    """The file exists, is a regular file and is not over the size limit."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: file not found (field '{field}')")
    if not path.is_file():
        raise ConfigError(f"{path}: not a regular file (field '{field}')")
    size = path.stat().st_size
    if size == 0:
        raise ConfigError(f"{path}: empty file (field '{field}')")
    if size > MAX_STRUCTURE_FILE_BYTES:
        raise ConfigError(
            f"{path}: {size / 2**20:.0f} MiB is over the {MAX_STRUCTURE_FILE_BYTES // 2**20} MiB "
            f"limit of structure files (field '{field}')"
        )


def check_atoms_shape(atoms: Atoms, path: Path, i: int) -> None:
    """Atom count within limits, finite positions and cell."""
    if len(atoms) > MAX_ATOMS:
        raise ConfigError(
            f"{path}: structure {i} has {len(atoms)} atoms, over the limit of {MAX_ATOMS}"
        )
    if not np.all(np.isfinite(atoms.positions)):
        raise ConfigError(f"{path}: structure {i} has non-finite coordinates")
    if not np.all(np.isfinite(np.asarray(atoms.cell))):
        raise ConfigError(f"{path}: structure {i} has a non-finite cell")


def check_atoms(atoms: Atoms, path: Path, i: int, elements: Collection[str]) -> None:
    """Structure ``i`` of ``path`` has atoms, within the limits, of ``elements`` only."""
    if len(atoms) == 0:
        raise ConfigError(f"{path}: structure {i} has no atoms")
    check_atoms_shape(atoms, path, i)
    unknown = sorted(set(atoms.get_chemical_symbols()) - set(elements))
    if unknown:
        raise ConfigError(
            f"{path}: structure {i} contains {', '.join(unknown)} not listed in 'elements'"
        )
