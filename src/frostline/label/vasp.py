"""VASP through atomate2: Materials-Project static settings, escalation and label conversion.

The maker is atomate2's ``MPGGAStaticMaker`` (pymatgen ``MPStaticSet``: PBE, MP POTCARs, MP
U values, ``force_gamma``, metal k-points) with the oracle's ``settings.incar`` as
``user_incar_settings`` (``settings.kpoints`` as ``user_kpoints_settings``, ``settings.potcar``
as ``user_potcar_settings``). VASP runs through atomate2's ``run_vasp`` (custodian ``VaspJob``,
whose termination kills only its own process group; custodian's handlers fix the usual VASP
errors). An electronically unconverged result (task state not ``successful``) is retried once
with :func:`escalate_vasp_settings`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ase.stress import full_3x3_to_voigt_6_stress
from ase.units import GPa
from pymatgen.core import Structure

VASP_DEFAULTS: dict[str, Any] = {"incar": {}, "kpoints": None, "potcar": None}
"""Default VASP oracle settings (MP defaults unless overridden here)."""
VASP_RUNTIME_KEYS = ("command", "write_input_set_kwargs")
"""Settings that change how VASP runs, not what it computes (kept out of the settings hash)."""


def vasp_maker(settings: dict[str, Any], name: str = "label vasp"):
    """atomate2's ``MPGGAStaticMaker`` with the oracle's INCAR/KPOINTS/POTCAR overrides."""
    from atomate2.vasp.jobs.mp import MPGGAStaticMaker
    from pymatgen.io.vasp.sets import MPStaticSet

    generator = MPStaticSet(
        force_gamma=True,
        auto_metal_kpoints=True,
        inherit_incar=False,
        user_incar_settings=dict(settings.get("incar") or {}),
        user_kpoints_settings=settings.get("kpoints") or None,
        user_potcar_settings=settings.get("potcar") or None,
    )
    run_kwargs: dict[str, Any] = {}
    if settings.get("command"):
        run_kwargs["vasp_cmd"] = settings["command"]
    return MPGGAStaticMaker(
        name=name,
        input_set_generator=generator,
        run_vasp_kwargs=run_kwargs,
        write_input_set_kwargs=dict(settings.get("write_input_set_kwargs") or {}),
        stop_children_kwargs={"handle_unsuccessful": False},
    )


def escalate_vasp_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings for the one retry of an unconverged VASP run: ``ALGO = All``, twice ``NELM``
    (at least 200), a gentler Kerker mixing (``AMIX 0.1``, ``BMIX 0.01``). Physics unchanged."""
    incar = dict(settings.get("incar") or {})
    incar.update(ALGO="All", NELM=max(200, 2 * int(incar.get("NELM", 100))), AMIX=0.1, BMIX=0.01)
    return {**settings, "incar": incar}


def vasp_labels(doc: Any) -> tuple[float, np.ndarray, np.ndarray | None, Structure]:
    """Energy (eV), forces (eV/Å), ASE Voigt stress (eV/Å³) and structure of a VASP task doc.

    VASP (and atomate2's ``TaskDoc.output.stress``) reports stress in kbar with compression
    positive; ASE's convention is the opposite sign, in eV/Å³.
    """
    out = doc.output
    energy = float(out.energy)
    forces = np.asarray(out.forces, dtype=float)
    stress = None
    if out.stress is not None:
        kbar = np.asarray(out.stress, dtype=float)
        stress = full_3x3_to_voigt_6_stress(kbar * (-GPa / 10.0))
    return energy, forces, stress, out.structure


def vasp_unconverged(doc: Any) -> str | None:
    """Why a VASP task document is not a usable label (None when it is)."""
    state = getattr(doc, "state", None)
    state = getattr(state, "value", state)
    if state not in (None, "successful"):
        return f"VASP task state {state} (electronic or ionic convergence not reached)"
    return None
