"""Property sets of a validation set with one calculator, and their errors against the oracle."""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from pymatgen.io.ase import AseAtomsAdaptor

from frostline.alloys.properties import (
    at_volume,
    convex_hull,
    cubic_constants,
    cubic_elastic_constants,
    elastic_tensor,
    eos_scan,
)
from frostline.alloys.schemas import PropertyErrors, PropertySet, StructureProperties
from frostline.config import OracleConfig
from frostline.label.oracles import oracle_settings

ELASTIC_KEYS = ("C11", "C12", "C44", "B")


def oracle_calculator(oracle: OracleConfig) -> Calculator:
    """The ASE calculator of an ASE-type oracle (emt, xtb, chgnet, chgnet-r2scan, ase)."""
    settings = oracle_settings(oracle)
    settings.pop("oracle")
    path = settings.pop("calculator", None)
    if not isinstance(path, str):
        raise ValueError(f"oracle {oracle.name} has no ASE calculator to validate against")
    module, func = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), func)(**settings)


def property_set(
    structures: Sequence[Atoms],
    calc: Calculator,
    calculator: str,
    *,
    eos_points: int = 7,
    eos_range: float = 0.06,
    elastic: bool = True,
    elastic_strain: float = 0.01,
    elastic_steps: int = 1,
    elastic_fit: str = "cubic",
    hull_tolerance: float = 0.005,
    description: str = "",
) -> PropertySet:
    """EOS of every structure, elastic constants of the cubic ones, and the hull of the set."""
    started = time.perf_counter()
    rows = []
    for atoms in structures:
        eos = eos_scan(atoms, calc, eos_points, eos_range)
        constants = None
        if elastic and atoms.info.get("cubic"):
            cell = at_volume(atoms, eos.volume_per_atom)
            if elastic_fit == "cubic":
                constants = cubic_elastic_constants(cell, calc, elastic_strain)
            else:
                tensor = elastic_tensor(cell, calc, elastic_strain, elastic_steps)
                constants = cubic_constants(tensor)
        rows.append(
            StructureProperties(
                formula=atoms.get_chemical_formula(mode="metal"),
                prototype=str(atoms.info.get("prototype", "")),
                structure=AseAtomsAdaptor.get_structure(atoms).as_dict(),
                n_atoms=len(atoms),
                cubic=bool(atoms.info.get("cubic", False)),
                energy_per_atom=eos.energy_per_atom,
                volume_per_atom=eos.volume_per_atom,
                bulk_modulus_gpa=eos.bulk_modulus_gpa,
                eos_fit=eos.fit,
                elastic=constants,
            )
        )
    hull = convex_hull(
        [a.get_chemical_formula() for a in structures],
        [r.energy_per_atom for r in rows],
        hull_tolerance,
    )
    for row, point in zip(rows, hull, strict=True):
        row.formation_energy = point.formation_energy
        row.e_above_hull = point.e_above_hull
        row.stable = point.stable
    return PropertySet(
        calculator=calculator,
        description=description,
        structures=rows,
        wall_time_s=time.perf_counter() - started,
    )


def _mae(a: Sequence[float], b: Sequence[float]) -> float:
    return float(np.mean(np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))))


def property_errors(model: PropertySet, reference: PropertySet) -> PropertyErrors:
    """Errors of ``model`` against ``reference`` (same structures in the same order)."""
    if len(model.structures) != len(reference.structures):
        raise ValueError("property sets of different validation sets cannot be compared")
    m, r = model.structures, reference.structures
    elastic_pairs = [(x.elastic, y.elastic) for x, y in zip(m, r, strict=True) if x.elastic]
    elastic = {
        k: _mae([p[0][k] for p in elastic_pairs], [p[1][k] for p in elastic_pairs])
        for k in ELASTIC_KEYS
        if elastic_pairs
    }
    return PropertyErrors(
        n_structures=len(m),
        formation_energy_mae_mev=1000
        * _mae([x.formation_energy for x in m], [y.formation_energy for y in r]),
        e_above_hull_mae_mev=1000 * _mae([x.e_above_hull for x in m], [y.e_above_hull for y in r]),
        stability_agreement=float(
            np.mean([x.stable == y.stable for x, y in zip(m, r, strict=True)])
        ),
        n_stable_oracle=sum(bool(y.stable) for y in r),
        n_stable_model=sum(bool(x.stable) for x in m),
        volume_mae_a3=_mae([x.volume_per_atom for x in m], [y.volume_per_atom for y in r]),
        bulk_modulus_mae_gpa=_mae([x.bulk_modulus_gpa for x in m], [y.bulk_modulus_gpa for y in r]),
        n_elastic=len(elastic_pairs),
        elastic_mae_gpa=elastic,
    )
