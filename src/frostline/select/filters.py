"""Sanity filters run before any oracle call: frames no DFT code should be asked to compute.

Each rule returns a short reason string (recorded as the candidate's fate) or ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.data import covalent_radii
from pymatgen.io.ase import AseAtomsAdaptor

from frostline.schemas import CandidateStructure, as_structure
from frostline.structures import min_distance, neighbor_list


@dataclass(frozen=True)
class SanityLimits:
    """Thresholds of the sanity filters (see ``SelectConfig`` for their meaning)."""

    min_distance: float = 0.6
    min_distance_ratio: float = 0.5
    max_neighbour_distance: float = 5.0
    min_volume_per_atom: float = 2.0
    max_force: float = 20.0


def _squeezed(atoms: Atoms, ratio: float) -> str | None:
    """Atoms closer than ``ratio`` times the sum of their covalent radii."""
    if len(atoms) < 2 or ratio <= 0:
        return None
    radii = covalent_radii[atoms.numbers]
    cutoff = float(2 * radii.max() * ratio)
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    if not len(d):
        return None
    bad = d < ratio * (radii[i] + radii[j])
    if not bad.any():
        return None
    k = int(np.argmin(np.where(bad, d / (radii[i] + radii[j]), np.inf)))
    sym = atoms.get_chemical_symbols()
    return (
        f"atoms too close: {sym[i[k]]}-{sym[j[k]]} {d[k]:.2f} Å "
        f"< {ratio:g} x covalent sum {radii[i[k]] + radii[j[k]]:.2f} Å"
    )


def _isolated(atoms: Atoms, max_distance: float) -> str | None:
    """An atom without any neighbour within ``max_distance`` (a fragment flew off)."""
    if len(atoms) < 2 or max_distance <= 0:
        return None
    i, j = neighbor_list("ij", atoms, max_distance)
    lonely = np.setdiff1d(np.arange(len(atoms)), i[i != j])  # its own images do not count
    if not len(lonely):
        return None
    sym = atoms.get_chemical_symbols()[int(lonely[0])]
    return f"exploded: {sym} atom {int(lonely[0])} has no neighbour within {max_distance:g} Å"


def _collapsed(atoms: Atoms, min_volume_per_atom: float) -> str | None:
    """A periodic cell whose volume per atom is unphysically small."""
    if not atoms.pbc.all() or min_volume_per_atom <= 0:
        return None
    vol = abs(float(np.linalg.det(atoms.cell.array))) / len(atoms)
    if vol < min_volume_per_atom:
        return f"collapsed cell: {vol:.2f} Å³/atom < {min_volume_per_atom:g}"
    return None


def sanity_reason(
    structure: dict | Atoms, limits: SanityLimits, max_force: float | None = None
) -> str | None:
    """Why a structure must not be labelled (``None``: it may be)."""
    if not isinstance(structure, Atoms):
        structure = AseAtomsAdaptor.get_atoms(as_structure(structure))
    atoms = structure
    if not np.all(np.isfinite(atoms.positions)) or not np.all(np.isfinite(atoms.cell.array)):
        return "non-finite coordinates or cell"
    if atoms.pbc.any() and abs(np.linalg.det(atoms.cell.array)) < 1e-6:
        return "zero-volume cell"
    dmin = min_distance(atoms)
    if dmin < limits.min_distance:
        return f"atoms too close: {dmin:.2f} Å < {limits.min_distance:g} Å"
    if max_force is not None and not (max_force <= limits.max_force):
        return f"extreme force: {max_force:.1f} eV/Å > {limits.max_force:g} eV/Å"
    return (
        _squeezed(atoms, limits.min_distance_ratio)
        or _collapsed(atoms, limits.min_volume_per_atom)
        or _isolated(atoms, limits.max_neighbour_distance)
    )


def candidate_sanity(candidate: CandidateStructure, limits: SanityLimits) -> str | None:
    """``sanity_reason`` of an explored candidate (uses its predicted max force when known)."""
    return sanity_reason(candidate.structure, limits, max_force=candidate.max_force)
