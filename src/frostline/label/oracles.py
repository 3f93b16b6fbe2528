"""Oracles as atomate2 makers, and conversion of their task documents into labels."""

from __future__ import annotations

from typing import Any

import numpy as np
from ase.stress import full_3x3_to_voigt_6_stress
from ase.units import GPa
from atomate2.forcefields.jobs import ForceFieldStaticMaker
from jobflow import Maker

from frostline.config import OracleConfig
from frostline.schemas import settings_hash

_CALCULATORS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "emt": ("ase.calculators.emt", "EMT", {}),
    "xtb": (
        "frostline.label.calculators",
        "xtb_calculator",
        {"method": "GFN1-xTB", "electronic_temperature": 1000.0},
    ),
    "chgnet": ("frostline.label.calculators", "chgnet_calculator", {}),
    "chgnet-r2scan": ("frostline.label.calculators", "chgnet_calculator", {"model_name": "r2scan"}),
}


def _calculator(oracle: OracleConfig) -> tuple[str, str, dict[str, Any]]:
    """(module, callable, keyword arguments) of the oracle's ASE calculator."""
    if oracle.name == "ase":
        kwargs = dict(oracle.settings)
        module, func = kwargs.pop("calculator").rsplit(".", 1)
        return module, func, kwargs
    module, func, defaults = _CALCULATORS[oracle.name]
    return module, func, {**defaults, **oracle.settings}


def oracle_settings(oracle: OracleConfig) -> dict[str, Any]:
    """The full settings of an oracle (defaults plus user settings)."""
    module, func, kwargs = _calculator(oracle)
    return {"oracle": oracle.name, "calculator": f"{module}.{func}", **kwargs}


def oracle_hash(oracle: OracleConfig) -> str:
    return settings_hash(oracle_settings(oracle))


def oracle_maker(oracle: OracleConfig) -> Maker:
    """The atomate2 maker that labels one structure with ``oracle``."""
    module, func, kwargs = _calculator(oracle)
    return ForceFieldStaticMaker(
        name=f"label {oracle.name}",
        force_field_name={"@module": module, "@callable": func},
        calculator_kwargs=kwargs,
    )


def labels_from_task_document(doc: Any) -> tuple[float, np.ndarray, np.ndarray | None]:
    """Energy (eV), forces (eV/Å) and ASE-convention Voigt stress (eV/Å³) from an atomate2 doc.

    atomate2 force-field documents keep stress in kbar with the opposite sign (compression
    positive); it is converted back to ASE's convention.
    """
    out = doc.output
    energy = float(out.energy)
    forces = np.asarray(out.forces, dtype=float)
    stress = None
    if out.stress is not None:
        kbar = np.asarray(out.stress, dtype=float)
        stress = full_3x3_to_voigt_6_stress(kbar * (-GPa / 10.0))
    return energy, forces, stress
