"""Cells pyace can evaluate, and the pieces every ACE module shares (errors, the late import).

pyace (and LAMMPS ``pair_style pace``) only handle cells that are periodic in all three
directions or in none: :func:`ace_ready` pads a slab's non-periodic directions with vacuum
wider than the cutoff (see :mod:`frostline.distill.ace`).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

PADDING_MARGIN = 1.0
"""Å of vacuum beyond the cutoff between periodic images along a padded axis."""


class ACEError(ValueError):
    """A linear ACE cannot be built, fitted or written with the given settings."""


def _pyace():
    import pyace  # noqa: F401 -- import late: pyace sets a root logging handler on import

    return pyace


# -- cells ---------------------------------------------------------------------------------------
def ace_ready(atoms: Atoms, cutoff: float, margin: float = PADDING_MARGIN) -> Atoms:
    """``atoms`` as a cell pyace can evaluate (periodic in all or in no direction).

    Fully periodic and fully non-periodic cells are returned unchanged (the same object).
    For a partly periodic cell, every non-periodic cell vector is replaced by a vector
    orthogonal to the periodic ones whose length is the atoms' extent along it plus
    ``cutoff + margin``; pbc becomes True. Positions, and so energies and forces, are unchanged.
    """
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if pbc.all() or not pbc.any():
        return atoms
    out = atoms.copy()
    cell = np.asarray(atoms.cell.array, dtype=float)
    periodic = cell[pbc]
    if np.any(np.linalg.norm(periodic, axis=1) < 1e-8):
        raise ACEError("a periodic direction of the cell has a zero-length cell vector")
    _, _, vt = np.linalg.svd(periodic)  # rows k.. of vt span the complement of the periodic ones
    directions = vt[len(periodic) :]
    new = cell.copy()
    positions = atoms.positions
    for axis, direction in zip(np.flatnonzero(~pbc), directions, strict=True):
        proj = positions @ direction
        length = float(proj.max() - proj.min()) + cutoff + margin
        new[axis] = direction * length
    if np.linalg.det(new) < 0:  # keep a right-handed cell
        new[np.flatnonzero(~pbc)[-1]] *= -1
    out.set_cell(new, scale_atoms=False)
    out.pbc = True
    return out


def is_padded(atoms: Atoms) -> bool:
    """True when :func:`ace_ready` changes the cell of ``atoms`` (partly periodic)."""
    pbc = np.asarray(atoms.pbc, dtype=bool)
    return bool(pbc.any() and not pbc.all())
