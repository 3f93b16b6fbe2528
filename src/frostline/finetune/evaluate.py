"""Errors of a model (or committee) against oracle labels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase.calculators.calculator import Calculator, PropertyNotImplementedError
from ase.units import GPa
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from frostline.schemas import LabelledStructure, ValidationMetrics


def predict(
    calc: Calculator, labelled: Sequence[LabelledStructure]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Energies (eV) and forces (eV/Å) predicted by ``calc`` for each labelled structure."""
    energies, forces, _ = predict_with_stress(calc, labelled, stress=False)
    return energies, forces


def predict_with_stress(
    calc: Calculator, labelled: Sequence[LabelledStructure], stress: bool = True
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray | None]]:
    """Energies, forces and ASE Voigt stress (eV/Å³) predicted by ``calc``.

    The stress is predicted only for periodic structures that have a stress label, and is
    None where the calculator cannot compute one (MACE computes it in the same call).
    """
    energies, forces, stresses = [], [], []
    for lab in labelled:
        atoms = AseAtomsAdaptor.get_atoms(Structure.from_dict(lab.structure))
        atoms.calc = calc
        energies.append(float(atoms.get_potential_energy()))
        forces.append(np.asarray(atoms.get_forces(), dtype=float))
        predicted = None
        if stress and lab.stress is not None and atoms.pbc.all():
            try:
                predicted = np.asarray(atoms.get_stress(), dtype=float)
            except PropertyNotImplementedError:
                predicted = None
        stresses.append(predicted)
    return np.asarray(energies), forces, stresses


def atom_force_errors(predicted: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each atom's force error norm (eV/Å); a frame's largest is what uncertainty estimates."""
    diff = np.asarray(predicted, dtype=float) - np.asarray(reference, dtype=float)
    return np.linalg.norm(diff, axis=1)


def composition_matrix(
    labelled: Sequence[LabelledStructure], elements: Sequence[str]
) -> np.ndarray:
    """Counts of each element per structure (rows: structures)."""
    rows = []
    for lab in labelled:
        symbols = [s["species"][0]["element"] for s in lab.structure["sites"]]
        rows.append([symbols.count(e) for e in elements])
    return np.asarray(rows, dtype=float)


def fit_element_shift(
    labelled: Sequence[LabelledStructure], predicted: np.ndarray, elements: Sequence[str]
) -> np.ndarray:
    """Per-element energy shifts (eV) minimising |E_ref - (E_pred + counts·shift)|² (lstsq)."""
    reference = np.asarray([lab.energy for lab in labelled])
    counts = composition_matrix(labelled, elements)
    shift, *_ = np.linalg.lstsq(counts, reference - predicted, rcond=None)
    return shift


def force_mae_by_element(
    reference_forces: Sequence[np.ndarray],
    forces: Sequence[np.ndarray],
    symbols: Sequence[Sequence[str]],
) -> dict[str, float]:
    """Force component MAE (meV/Å) over the atoms of each element.

    The overall force MAE is these weighted by atom counts: on a Cu slab with a few H atoms it
    is mostly the Cu error, however wrong the H atoms are.
    """
    errors = np.concatenate(
        [
            np.abs(np.asarray(p) - np.asarray(r)).reshape(-1, 3)
            for p, r in zip(forces, reference_forces, strict=True)
        ]
    )
    flat = np.concatenate([np.asarray(s, dtype=str) for s in symbols])
    if len(flat) != len(errors):
        raise ValueError(f"symbols: {len(flat)} atoms given for {len(errors)} force rows")
    return {str(el): float(errors[flat == el].mean() * 1000) for el in dict.fromkeys(flat)}


def error_metrics(
    reference_energies: Sequence[float],
    reference_forces: Sequence[np.ndarray],
    energies: Sequence[float],
    forces: Sequence[np.ndarray],
    symbols: Sequence[Sequence[str]] | None = None,
) -> ValidationMetrics:
    """MAE/RMSE of energy per atom (meV/atom) and force components (meV/Å).

    With ``symbols`` (each structure's chemical symbols) also the force MAE per element.
    """
    n_atoms = np.asarray([len(f) for f in reference_forces], dtype=float)
    de = (np.asarray(energies) - np.asarray(reference_energies)) / n_atoms
    df = np.concatenate(
        [
            (np.asarray(p) - np.asarray(r)).ravel()
            for p, r in zip(forces, reference_forces, strict=True)
        ]
    )
    by_element = {}
    if symbols is not None:
        by_element = force_mae_by_element(reference_forces, forces, symbols)
    return ValidationMetrics(
        n_structures=len(n_atoms),
        energy_mae_mev_per_atom=float(np.mean(np.abs(de)) * 1000),
        energy_rmse_mev_per_atom=float(np.sqrt(np.mean(de**2)) * 1000),
        force_mae_mev_per_a=float(np.mean(np.abs(df)) * 1000),
        force_rmse_mev_per_a=float(np.sqrt(np.mean(df**2)) * 1000),
        force_mae_by_element=by_element,
        frame_max_force_errors=[
            float(atom_force_errors(p, r).max())
            for p, r in zip(forces, reference_forces, strict=True)
        ],
    )


def metrics(
    labelled: Sequence[LabelledStructure],
    energies: np.ndarray,
    forces: Sequence[np.ndarray],
    stresses: Sequence[np.ndarray | None] | None = None,
) -> ValidationMetrics:
    """Errors of predicted ``energies``/``forces`` (and stresses, GPa) against labels."""
    result = error_metrics(
        [lab.energy for lab in labelled],
        [np.asarray(lab.forces) for lab in labelled],
        energies,
        forces,
        symbols=[[s["species"][0]["element"] for s in lab.structure["sites"]] for lab in labelled],
    )
    pairs = [
        (np.asarray(p), np.asarray(lab.stress))
        for lab, p in zip(labelled, stresses or [None] * len(labelled), strict=True)
        if p is not None and lab.stress is not None
    ]
    if pairs:
        ds = np.concatenate([(p - r).ravel() for p, r in pairs]) / GPa
        result.n_stress = len(pairs)
        result.stress_mae_gpa = float(np.mean(np.abs(ds)))
        result.stress_rmse_gpa = float(np.sqrt(np.mean(ds**2)))
    return result


def evaluate(calc: Calculator, labelled: Sequence[LabelledStructure]) -> ValidationMetrics:
    """Errors of ``calc`` on ``labelled`` (only structures with status ok)."""
    ok = [lab for lab in labelled if lab.status == "ok"]
    if not ok:
        raise ValueError("no successfully labelled structures to evaluate on")
    energies, forces, stresses = predict_with_stress(calc, ok)
    return metrics(ok, energies, forces, stresses)


def evaluate_zero_shot(
    calc: Calculator,
    reference: Sequence[LabelledStructure],
    validation: Sequence[LabelledStructure],
    elements: Sequence[str],
) -> ValidationMetrics:
    """Foundation errors on ``validation``, energies shifted per element (fit on ``reference``).

    The oracle's energy zero differs from the foundation's; forces need no such shift.
    """
    ref = [lab for lab in reference if lab.status == "ok"]
    val = [lab for lab in validation if lab.status == "ok"]
    e_ref, _ = predict(calc, ref)
    shift = fit_element_shift(ref, e_ref, elements)
    e_val, f_val, s_val = predict_with_stress(calc, val)
    return metrics(val, e_val + composition_matrix(val, elements) @ shift, f_val, s_val)
