"""Import of labelled structures (extxyz) as a campaign's initial training set.

Reads what ``frostline data export`` writes (labels in a SinglePointCalculator) and what
mace-torch / other codes write (``REF_energy`` / ``REF_forces`` / ``REF_stress`` keys, or
``energy`` / ``forces`` / ``stress`` in ``info`` / ``arrays``). Every problem is a
``ConfigError`` naming the file and the structure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read
from ase.stress import full_3x3_to_voigt_6_stress

from frostline.config import ConfigError
from frostline.schemas import LabelledStructure, Provenance, as_structure_dict, structure_hash

IMPORT_SETTINGS_HASH = "imported"
"""``oracle_settings_hash`` of imported labels (never matched by an oracle's reuse query)."""
_PREFIXES = ("REF_", "ref_", "DFT_", "dft_", "")


def _find(atoms: Atoms, key: str, per_atom: bool):
    """A label from the calculator or from info/arrays under any known prefix (None if absent)."""
    places = (atoms.arrays, atoms.info) if per_atom else (atoms.info,)
    for prefix in _PREFIXES:
        if prefix == "" and atoms.calc is not None and key in atoms.calc.results:
            return atoms.calc.results[key]
        for where in places:  # per-atom data misplaced in info is found (and its shape refused)
            if f"{prefix}{key}" in where:
                return where[f"{prefix}{key}"]
    if not per_atom and key == "stress" and atoms.calc is not None:
        return atoms.calc.results.get("stress")
    return None


def _stress(value, path: Path, i: int) -> list[float] | None:
    if value is None:
        return None
    s = np.asarray(value, dtype=float)
    if s.shape == (3, 3):
        s = full_3x3_to_voigt_6_stress(s)
    if s.shape != (6,):
        raise ConfigError(f"{path}: structure {i}: stress has shape {s.shape}, expected 6 or 3x3")
    if not np.all(np.isfinite(s)):
        raise ConfigError(f"{path}: structure {i}: stress contains NaN or inf")
    return s.tolist()


def read_labelled_file(
    path: str | Path,
    elements: list[str],
    campaign: str | None = None,
    oracle: str = "imported",
) -> list[LabelledStructure]:
    """Labelled structures of an extxyz file, checked: energy and forces present and finite,
    forces of shape (n_atoms, 3), only ``elements``. Provenance sampler ``import``."""
    from frostline.reliability.inputs import check_atoms, check_structure_file

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: labelled file not found (field 'system.labelled_file')")
    check_structure_file(path, "system.labelled_file")
    try:
        frames = read(path, index=":")
    except Exception as exc:  # ASE raises many types for unreadable files
        raise ConfigError(f"{path}: cannot read labelled structures: {exc}") from None
    if not frames:
        raise ConfigError(f"{path}: no structures in labelled file")
    out = []
    for i, atoms in enumerate(frames):
        check_atoms(atoms, path, i, elements)
        n = len(atoms)
        energy = _find(atoms, "energy", per_atom=False)
        if energy is None:
            raise ConfigError(
                f"{path}: structure {i} has no energy (calculator, 'energy' or 'REF_energy')"
            )
        forces = _find(atoms, "forces", per_atom=True)
        if forces is None:
            raise ConfigError(
                f"{path}: structure {i} has no forces (calculator, 'forces' or 'REF_forces')"
            )
        try:
            energy = float(np.asarray(energy, dtype=float).reshape(()))
        except (TypeError, ValueError):
            raise ConfigError(f"{path}: structure {i}: energy is not one number") from None
        forces = np.asarray(forces, dtype=float)
        if forces.shape != (n, 3):
            raise ConfigError(
                f"{path}: structure {i}: forces have shape {forces.shape}, expected ({n}, 3)"
            )
        if not np.isfinite(energy) or not np.all(np.isfinite(forces)):
            raise ConfigError(f"{path}: structure {i}: energy or forces contain NaN or inf")
        if not np.all(np.isfinite(atoms.positions)):
            raise ConfigError(f"{path}: structure {i} has non-finite coordinates")
        if not atoms.pbc.all():  # pymatgen structures are periodic: give molecules a box
            if abs(atoms.cell.volume) < 1e-6:
                raise ConfigError(
                    f"{path}: structure {i} has no cell; give every structure a (box) cell"
                )
            atoms.pbc = True
        stress = _stress(_find(atoms, "stress", per_atom=False), path, i)
        structure = as_structure_dict(
            Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=True)
        )
        out.append(
            LabelledStructure(
                structure=structure,
                energy=energy,
                forces=forces.tolist(),
                stress=stress,
                oracle=oracle,
                oracle_settings_hash=IMPORT_SETTINGS_HASH,
                structure_hash=structure_hash(structure),
                provenance=Provenance(iteration=-1, sampler="import", parent=f"{path.name}:{i}"),
                role="train",
                campaign=campaign,
            )
        )
    return out
