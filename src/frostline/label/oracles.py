"""Oracles as atomate2 makers, and conversion of their task documents into labels.

| oracle | atomate2 maker | settings |
| --- | --- | --- |
| ``emt``, ``xtb``, ``chgnet``, ``chgnet-r2scan`` | ``ForceFieldStaticMaker`` | calculator kwargs |
| ``ase`` | ``ForceFieldStaticMaker`` | ``calculator: pkg.mod.CalculatorClass`` + its kwargs |
| ``cp2k`` | CP2K ``StaticMaker`` (run without custodian) | see ``label.cp2k.CP2K_DEFAULTS`` |
| ``vasp`` | ``MPGGAStaticMaker`` (MP static set) | ``incar``, ``kpoints``, ``potcar`` |
| ``maker`` | any atomate2 maker | ``maker: pkg.mod.Class``, ``kwargs`` (MSON-decoded) |

Every label is normalised to eV, eV/Å and ASE-convention Voigt stress in eV/Å³, atoms in the
candidate's order. ``oracle_hash`` hashes the full settings (defaults included, runtime-only
keys such as the command or thread count excluded), so changing any setting that changes the
numbers changes the hash and nothing is wrongly reused.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from atomate2.forcefields.jobs import ForceFieldStaticMaker
from jobflow import Maker
from pymatgen.core import Structure

from frostline.config import CALCULATOR_BASES, MAKER_BASES, OracleConfig, import_class
from frostline.label.cp2k import (
    CP2K_DEFAULTS,
    CP2K_RUNTIME_KEYS,
    cp2k_labels,
    cp2k_maker,
    escalate_cp2k_settings,
)
from frostline.label.vasp import (
    VASP_DEFAULTS,
    VASP_RUNTIME_KEYS,
    escalate_vasp_settings,
    vasp_labels,
    vasp_maker,
    vasp_unconverged,
)
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
DFT_ORACLES = ("cp2k", "vasp", "maker")
"""Oracles that are atomate2 DFT (or arbitrary) makers rather than ASE calculators."""
MAX_ATTEMPTS = {"cp2k": 2, "vasp": 2}
"""Calculations per structure: CP2K and VASP get one retry with escalated settings; ASE
calculators are deterministic (a crash would repeat) and arbitrary makers have no known
escalation, so they get none."""


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _calculator(oracle: OracleConfig) -> tuple[str, str, dict[str, Any]]:
    """(module, callable, keyword arguments) of the oracle's ASE calculator."""
    if oracle.name == "ase":
        kwargs = dict(oracle.settings)
        module, func = kwargs.pop("calculator").rsplit(".", 1)
        return module, func, kwargs
    module, func, defaults = _CALCULATORS[oracle.name]
    return module, func, {**defaults, **oracle.settings}


def builtin_calculator(oracle: OracleConfig):
    """An instance of a built-in ASE-calculator oracle (emt, xtb, chgnet, chgnet-r2scan) for
    local checks such as the forgetting check's equation of state; ``None`` for any other."""
    if oracle.name not in _CALCULATORS:
        return None
    import importlib

    module, func, kwargs = _calculator(oracle)
    return getattr(importlib.import_module(module), func)(**kwargs)


def _full_settings(oracle: OracleConfig) -> dict[str, Any]:
    if oracle.name == "cp2k":
        return _merge(CP2K_DEFAULTS, oracle.settings)
    if oracle.name == "vasp":
        return _merge(VASP_DEFAULTS, oracle.settings)
    if oracle.name == "maker":
        return {"kwargs": {}, **copy.deepcopy(oracle.settings)}
    module, func, kwargs = _calculator(oracle)
    return {"calculator": f"{module}.{func}", **kwargs}


def oracle_settings(oracle: OracleConfig) -> dict[str, Any]:
    """The full settings of an oracle (defaults plus user settings)."""
    return {"oracle": oracle.name, **_full_settings(oracle)}


def oracle_hash(oracle: OracleConfig) -> str:
    """Hash of the settings that determine the numbers (runtime-only keys left out)."""
    settings = oracle_settings(oracle)
    runtime = {"cp2k": CP2K_RUNTIME_KEYS, "vasp": VASP_RUNTIME_KEYS}.get(oracle.name, ())
    return settings_hash({k: v for k, v in settings.items() if k not in runtime})


def max_attempts(oracle: OracleConfig) -> int:
    """How many calculations a structure may cost (first try plus escalated retries)."""
    return MAX_ATTEMPTS.get(oracle.name, 1)


def oracle_maker(oracle: OracleConfig, attempt: int = 0) -> Maker:
    """The atomate2 maker that labels one structure with ``oracle``.

    ``attempt`` 1 gives the escalated settings of the retry (CP2K: more SCF steps, no OT,
    gentler mixing; VASP: ALGO All, more NELM, gentler mixing).
    """
    name = f"label {oracle.name}" + (" retry" if attempt else "")
    settings = _full_settings(oracle)
    if oracle.name == "cp2k":
        return cp2k_maker(escalate_cp2k_settings(settings) if attempt else settings, name)
    if oracle.name == "vasp":
        return vasp_maker(escalate_vasp_settings(settings) if attempt else settings, name)
    if oracle.name == "maker":
        from monty.json import MontyDecoder

        cls = import_class(settings["maker"], "oracle maker: settings.maker", MAKER_BASES)
        kwargs = MontyDecoder().process_decoded(copy.deepcopy(settings.get("kwargs", {})))
        maker = cls(**kwargs)
        if not isinstance(maker, Maker):
            raise ValueError(f"oracle maker: {settings['maker']} is not a jobflow Maker")
        return maker
    module, func, kwargs = _calculator(oracle)
    if oracle.name == "ase":  # a user's path (the built-in oracles name frostline's factories)
        import_class(f"{module}.{func}", "oracle ase: settings.calculator", CALCULATOR_BASES)
    if oracle.timeout_s is not None:  # every calculation under a timer (reliability.timeouts)
        kwargs = {"target": f"{module}.{func}", "timeout_s": oracle.timeout_s, **kwargs}
        module, func = "frostline.reliability.timeouts", "timed_calculator"
    return ForceFieldStaticMaker(
        name=name,
        force_field_name={"@module": module, "@callable": func},
        calculator_kwargs=kwargs,
    )


def _kind(doc: Any) -> str:
    module = type(doc).__module__
    if module.startswith("atomate2.cp2k"):
        return "cp2k"
    if module.startswith(("emmet.core.tasks", "atomate2.vasp", "emmet.core.vasp")):
        return "vasp"
    return "forcefield"


def unconverged_reason(doc: Any) -> str | None:
    """Why a finished task document is not a usable label (None when it is)."""
    if _kind(doc) == "cp2k":
        state = getattr(doc.state, "value", doc.state)
        if state != "successful":
            errors = list(getattr(doc.analysis, "errors", None) or [])
            return "; ".join(errors) or f"CP2K task state {state}"
        return None
    if _kind(doc) == "vasp":
        return vasp_unconverged(doc)
    return None


def _site_order(reference: Structure, computed: Structure, tol: float = 1e-3) -> list[int]:
    """Index into ``computed`` of each site of ``reference`` (same species, same position)."""
    if len(reference) != len(computed):
        raise ValueError(f"oracle returned {len(computed)} sites for {len(reference)} atoms")
    dist = reference.lattice.get_all_distances(reference.frac_coords, computed.frac_coords)
    order = []
    for i, site in enumerate(reference):
        j = int(np.argmin(dist[i]))
        if dist[i, j] > tol or computed[j].species != site.species:
            raise ValueError(f"oracle output has no atom matching input atom {i} ({site.specie})")
        order.append(j)
    if len(set(order)) != len(order):
        raise ValueError("oracle output atoms do not map one-to-one onto the input atoms")
    return order


def labels_from_task_document(
    doc: Any, structure: Structure | None = None
) -> tuple[float, np.ndarray, np.ndarray | None]:
    """Energy (eV), forces (eV/Å) and ASE-convention Voigt stress (eV/Å³) from an atomate2 doc.

    Force-field and VASP documents keep stress in kbar with the opposite sign (compression
    positive); CP2K documents keep forces in Hartree/Bohr and stress in GPa (CP2K's sign).
    Everything is converted to ASE's units and convention. With ``structure`` (the candidate),
    forces are put back into its atom order when the code reordered the atoms (VASP sorts).
    """
    kind = _kind(doc)
    if kind == "cp2k":
        energy, forces, stress, computed = cp2k_labels(doc)
    elif kind == "vasp":
        energy, forces, stress, computed = vasp_labels(doc)
    else:  # force-field documents share VASP's kbar stress convention and keep the atom order
        energy, forces, stress, _ = vasp_labels(doc)
        computed = None
    if structure is not None and computed is not None and forces.ndim == 2:
        if len(forces) == len(structure):
            forces = forces[_site_order(structure, computed)]
    return energy, forces, stress
