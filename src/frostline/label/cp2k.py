"""CP2K through atomate2: environment, a safe run, SCF escalation and unit conversion.

What this module takes care of (DESIGN.md §5):

- ``PMG_CP2K_DATA_DIR``: pymatgen's per-element basis/potential settings. When unset, frostline
  builds them once (``pymatgen.cli.pmg_config.setup_cp2k_data``, i.e. ``pmg config --cp2k``)
  from the CP2K data folder (``$FROSTLINE_CP2K_DATA``, default ``/usr/share/cp2k`` for Debian's
  ``cp2k`` package), restricted to the files that hold atomate2's pinned basis sets and
  potentials, into a cache folder (``$FROSTLINE_CACHE`` or ``~/.cache/frostline``).
  ``PMG_DEFAULT_CP2K_FUNCTIONAL`` defaults to ``PBE``. Both are set only for the duration of a
  CP2K job (:func:`cp2k_environment`), in ``os.environ`` and pymatgen's ``SETTINGS``.
- The command: ``ATOMATE2_CP2K_CMD`` (atomate2's ``CP2K_CMD`` setting) or the first of
  ``cp2k.psmp`` / ``cp2k.ssmp`` / ``cp2k`` on ``PATH``.
- No custodian: atomate2's default ``run_cp2k`` wraps CP2K in custodian, whose ``Cp2kJob``
  terminates a run with ``killall cp2k.psmp`` (every CP2K of the machine, other users' too).
  frostline runs CP2K with atomate2's ``JobType.DIRECT`` (one shell command in the job folder,
  optionally under coreutils ``timeout``, which signals only its own child) and does its own
  error handling: an unconverged SCF marks the task document failed, and the label stage
  retries once with :func:`escalate_cp2k_settings`.
- atomate2 0.1.5's ``CalculationInput.cleanup_dft`` validator calls ``.upper()`` on every value
  of the parsed ``dft`` section, which current pymatgen fills with ints and bools too
  (``Multiplicity: 1``): :func:`patch_atomate2_cleanup_dft` replaces only that validator with one
  that skips non-strings (same behaviour for strings) and rebuilds the three affected models.
- Units: atomate2's CP2K task documents hold energies in eV (pymatgen converts), forces as
  CP2K prints them, in Hartree/Bohr, and the stress tensor in GPa with CP2K's sign (positive
  = tensile is ASE's; CP2K's is the opposite, as in ``ase.calculators.cp2k``).
  :func:`cp2k_labels` converts to eV, eV/Å and ASE Voigt eV/Å³.
"""

from __future__ import annotations

import copy
import gzip
import os
import shutil
import tempfile
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase.stress import full_3x3_to_voigt_6_stress
from ase.units import Bohr, GPa, Hartree
from atomate2.cp2k.jobs.base import _DATA_OBJECTS
from atomate2.cp2k.jobs.core import StaticMaker
from atomate2.cp2k.schemas.task import TaskDocument
from atomate2.cp2k.sets.core import StaticSetGenerator
from jobflow import Response
from pymatgen.core import Structure
from pymatgen.io.vasp.inputs import Kpoints

from frostline.jobs import frostline_job
from frostline.settings import settings

DATA_DIR_KEY = "PMG_CP2K_DATA_DIR"
FUNCTIONAL_KEY = "PMG_DEFAULT_CP2K_FUNCTIONAL"
"""pymatgen's CP2K settings (environment and ``pymatgen.core.SETTINGS``) set for a CP2K job."""
CP2K_DATA_FILES = (
    "POTENTIAL",
    "POTENTIAL_UZH",
    "BASIS_MOLOPT",
    "BASIS_MOLOPT_UZH",
    "BASIS_ADMM",
    "BASIS_ADMM_MOLOPT",
    "BASIS_ADMM_UZH",
)
"""Files holding every basis set / potential atomate2's CP2K base set pins by hash."""
FORCE_UNIT = Hartree / Bohr
"""CP2K forces (Hartree/Bohr) to eV/Å."""

CP2K_DEFAULTS: dict[str, Any] = {
    # atomate2 ``Cp2kInputGenerator.user_input_settings`` (DftSet keywords)
    "input": {"cutoff": 500, "rel_cutoff": 50, "spin_polarized": False},
    # "gamma" (no KPOINTS section), {"grid": [n, n, n]} or atomate2's {"reciprocal_density": x}
    "kpoints": {"reciprocal_density": 64},
    "sort_structure": False,  # keep the candidate's atom order (forces map 1:1)
}
"""Default CP2K oracle settings; ``oracle.settings`` overrides them (dicts merged)."""
CP2K_RUNTIME_KEYS = ("command", "omp_threads", "timeout_s")
"""Settings that change how CP2K runs, not what it computes (kept out of the settings hash)."""


def cache_dir() -> Path:
    """frostline's cache folder (``$FROSTLINE_CACHE`` or ``~/.cache/frostline``)."""
    return settings().cache


def cp2k_command() -> str:
    """The CP2K executable: ``ATOMATE2_CP2K_CMD`` or the first CP2K binary on ``PATH``."""
    env = os.environ.get("ATOMATE2_CP2K_CMD")
    if env:
        return env
    for name in ("cp2k.psmp", "cp2k.ssmp", "cp2k"):
        if shutil.which(name):
            return name
    raise RuntimeError(
        "no CP2K executable: install CP2K (Debian: apt-get install cp2k) or set ATOMATE2_CP2K_CMD"
    )


def cp2k_data_dir() -> Path:
    """pymatgen's CP2K data folder, built once when ``PMG_CP2K_DATA_DIR`` is not set.

    An existing ``PMG_CP2K_DATA_DIR`` (environment or pymatgen's ``SETTINGS``) is used as is.
    Otherwise the data are generated from ``$FROSTLINE_CP2K_DATA`` (default
    ``/usr/share/cp2k``) into ``cache_dir()/cp2k-data`` through a temporary folder and an atomic
    rename, so concurrent workers never see a half-written folder. Nothing global is changed.
    """
    from pymatgen.core import SETTINGS  # read from the environment at pymatgen's import

    given = os.environ.get("PMG_CP2K_DATA_DIR") or SETTINGS.get("PMG_CP2K_DATA_DIR")
    if given:
        return Path(given)
    target = cache_dir() / "cp2k-data"
    if not (target / "Cu").is_file():
        _build_cp2k_data(settings().cp2k_data, target)
    return target


def _build_cp2k_data(source: Path, target: Path) -> None:
    """``pmg config --cp2k`` on the files of ``source`` atomate2 needs, into ``target``."""
    if not source.is_dir():
        raise RuntimeError(
            f"CP2K data folder {source} not found: install CP2K's data "
            "(Debian: apt-get install cp2k) or set PMG_CP2K_DATA_DIR / FROSTLINE_CP2K_DATA"
        )
    from contextlib import redirect_stdout
    from io import StringIO

    from pymatgen.cli.pmg_config import setup_cp2k_data

    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".cp2k-data-", dir=target.parent))
    try:
        sources = work / "sources"
        sources.mkdir()
        for name in CP2K_DATA_FILES:
            if (source / name).is_file():
                (sources / name).symlink_to(source / name)
        with redirect_stdout(StringIO()):  # it prints one line per element
            setup_cp2k_data([str(sources), str(work / "data")])
        try:
            (work / "data").rename(target)
        except OSError:  # another process finished first
            if not (target / "Cu").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextmanager
def _items_set(mapping: MutableMapping[str, Any], values: dict[str, Any]) -> Iterator[None]:
    """``mapping`` updated with ``values`` for the duration; the earlier items put back after."""
    saved = {key: mapping[key] for key in values if key in mapping}
    mapping.update(values)
    try:
        yield
    finally:
        for key in values:
            if key in saved:
                mapping[key] = saved[key]
            else:
                mapping.pop(key, None)


@contextmanager
def cp2k_environment() -> Iterator[Path]:
    """pymatgen's CP2K set-up for the duration of a block (a CP2K job); yields the data folder.

    ``PMG_CP2K_DATA_DIR`` (:func:`cp2k_data_dir`) and ``PMG_DEFAULT_CP2K_FUNCTIONAL`` (``PBE``
    unless set) are put into ``os.environ`` and pymatgen's ``SETTINGS`` (which pymatgen's CP2K
    sets read); both are restored when the block exits, also on an error. atomate2's validator
    is patched (:func:`patch_atomate2_cleanup_dft`).
    """
    from pymatgen.core import SETTINGS

    data_dir = str(cp2k_data_dir())
    functional = os.environ.get(FUNCTIONAL_KEY, "PBE")
    settings_functional = SETTINGS[FUNCTIONAL_KEY] if FUNCTIONAL_KEY in SETTINGS else functional
    patch_atomate2_cleanup_dft()
    env = {DATA_DIR_KEY: data_dir, FUNCTIONAL_KEY: functional}
    pmg = {DATA_DIR_KEY: data_dir, FUNCTIONAL_KEY: settings_functional}
    with _items_set(os.environ, env), _items_set(SETTINGS, pmg):
        yield Path(data_dir)


def _cleanup_dft(cls, dft: Any) -> Any:
    """atomate2's ``cleanup_dft`` for dicts holding non-strings (strings as before)."""
    if isinstance(dft, dict) and any(
        isinstance(v, str) and v.upper() == "UKS" for v in dft.values()
    ):
        dft["UKS"] = True
    return dft


def patch_atomate2_cleanup_dft() -> None:
    """Make atomate2's ``CalculationInput.cleanup_dft`` validator skip non-string values.

    atomate2 0.1.5 does ``any(v.upper() == "UKS" for v in dft.values())``; pymatgen now parses
    ints and bools into that dict, so every CP2K task document fails with ``AttributeError``.
    Only this validator is replaced (strings are treated exactly as before) and the models
    holding ``CalculationInput`` are rebuilt. Idempotent (the installed validator tells whether
    it is done); a no-op if atomate2 changes. Not undone: the job's task document is decoded
    again (same validator) when the next job resolves its output.
    """
    from atomate2.cp2k.schemas.calculation import Calculation, CalculationInput
    from atomate2.cp2k.schemas.task import TaskDocument

    decorator = CalculationInput.__pydantic_decorators__.field_validators.get("cleanup_dft")
    if decorator is None or getattr(decorator.func, "__func__", None) is _cleanup_dft:
        return
    decorator.func = _cleanup_dft.__get__(CalculationInput)
    for model in (CalculationInput, Calculation, TaskDocument):
        model.model_rebuild(force=True)


def _kpoints(spec: Any) -> Kpoints | dict | None:
    if spec in (None, "gamma"):
        return None
    if isinstance(spec, dict) and "grid" in spec:
        grid = spec["grid"]
        if len(grid) != 3 or any(int(n) < 1 for n in grid):
            raise ValueError(f"oracle cp2k: settings.kpoints.grid must be 3 positive ints: {grid}")
        # CP2K's own Monkhorst-Pack scheme (Γ-centred for odd n; CP2K reduces it by time
        # reversal only). pymatgen turns a Γ grid into a GENERAL list reduced by the cell's
        # space group, which CP2K (SYMMETRY off) uses without symmetrising density, forces
        # or stress: wrong for every cell with symmetry.
        return Kpoints.monkhorst_automatic(tuple(int(n) for n in grid))
    if isinstance(spec, dict):
        return dict(spec)
    raise ValueError(f"oracle cp2k: settings.kpoints must be 'gamma' or a mapping, not {spec!r}")


def escalate_cp2k_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings for the one retry of an unconverged or crashed CP2K calculation.

    Physics is unchanged (same functional, basis, cutoff, smearing): twice the SCF steps, no
    orbital transformation (plain diagonalisation with Broyden mixing), and a gentler mixing
    (alpha 0.02, a longer history) so that a sloshing metallic SCF settles. The SCF steps go
    through ``override_default_params`` (``FORCE_EVAL/DFT/SCF/MAX_SCF``): pymatgen's ``DftSet``
    ignores ``max_scf`` with diagonalisation and always writes 400.
    """
    inp = copy.deepcopy(settings.get("input", {}))
    overrides = inp.setdefault("override_default_params", {})
    scf = overrides.setdefault("FORCE_EVAL", {}).setdefault("DFT", {}).setdefault("SCF", {})
    scf["MAX_SCF"] = 2 * int(scf.get("MAX_SCF") or 400)
    mixing = scf.setdefault("MIXING", {})
    mixing.update(METHOD="BROYDEN_MIXING", ALPHA=0.02, NBUFFER=12)
    inp["ot"] = False
    return {**settings, "input": inp}


@dataclass
class Cp2kStaticLabelMaker(StaticMaker):
    """atomate2's CP2K ``StaticMaker``, run directly (no custodian) with frostline's set-up.

    The environment (pymatgen CP2K data, functional, validator patch) is prepared inside the job,
    i.e. on the worker that runs it; CP2K runs as ``OMP_NUM_THREADS=n [timeout s] CMD -i
    cp2k.inp > cp2k.out``. A task document whose SCF did not converge is marked ``failed`` with
    the reason in ``analysis.errors``; when CP2K aborts (CP2K >= 2023 stops on an unconverged
    SCF) or its output cannot be parsed, the job returns ``{"failed": True, "reason": ...}``
    instead of raising, so the reason reaches the label record.
    """

    name: str = "cp2k static"
    omp_threads: int = 2
    timeout_s: float | None = None
    command: str | None = None

    # atomate2's ``cp2k_job`` minus ``output_schema=TaskDocument``: a failed run returns a
    # small dict (jobflow would otherwise coerce it into an empty TaskDocument)
    @frostline_job(TaskDocument, enforce=False, expose_store=False, data=_DATA_OBJECTS)
    def make(self, structure: Structure, prev_dir: str | Path | None = None):
        """Run one CP2K single point (``RUN_TYPE ENERGY_FORCE``) on ``structure``."""
        with cp2k_environment():
            return self._run(structure, prev_dir)

    def _run(self, structure: Structure, prev_dir: str | Path | None) -> Response:
        cmd = self.command or cp2k_command()
        if self.timeout_s:
            cmd = f"timeout -s KILL {int(self.timeout_s)} {cmd}"
        self.run_cp2k_kwargs = {
            "job_type": "direct",
            "cp2k_cmd": f"OMP_NUM_THREADS={int(self.omp_threads)} {cmd} -i cp2k.inp "
            "> cp2k.out 2> cp2k.err",
        }
        self.stop_children_kwargs = {"handle_unsuccessful": False}
        try:
            response = StaticMaker.make.original(self, structure, prev_dir)
        except Exception as exc:  # CP2K aborted (e.g. SCF failure) or its output is unreadable
            reason = scf_failure(Path.cwd()) or f"{type(exc).__name__}: {exc}"
            return Response(output={"failed": True, "reason": reason})
        doc = response.output
        reason = scf_failure(Path.cwd())
        if doc is not None and reason:
            from atomate2.cp2k.schemas.calculation import Status

            doc.state = Status.FAILED
            if doc.analysis is not None:
                doc.analysis.errors = [*(doc.analysis.errors or []), reason]
        return response


def scf_failure(directory: Path) -> str | None:
    """'SCF run NOT converged' (or None) from the ``cp2k.out`` (maybe gzipped) in ``directory``."""
    for name in ("cp2k.out", "cp2k.out.gz"):
        path = directory / name
        if path.is_file():
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rt", errors="replace") as fh:
                text = fh.read()
            if "SCF run NOT converged" in text:
                return "CP2K SCF run NOT converged"
            return None
    return "CP2K wrote no output (is CP2K installed? see cp2k.err in the job folder)"


def cp2k_maker(settings: dict[str, Any], name: str = "label cp2k") -> Cp2kStaticLabelMaker:
    """The CP2K static maker for full oracle ``settings`` (see :data:`CP2K_DEFAULTS`)."""
    generator = StaticSetGenerator(
        user_input_settings=dict(settings.get("input", {})),
        user_kpoints_settings=_kpoints(settings.get("kpoints")),
        sort_structure=bool(settings.get("sort_structure", False)),
    )
    return Cp2kStaticLabelMaker(
        name=name,
        input_set_generator=generator,
        omp_threads=int(settings.get("omp_threads", 2)),
        timeout_s=settings.get("timeout_s"),
        command=settings.get("command"),
    )


def cp2k_labels(doc: Any) -> tuple[float, np.ndarray, np.ndarray | None, Structure]:
    """Energy (eV), forces (eV/Å), ASE Voigt stress (eV/Å³) and structure of a CP2K task doc."""
    out = doc.output
    energy = float(out.energy)
    forces = np.asarray(out.forces, dtype=float) * FORCE_UNIT
    stress = None
    if out.stress is not None:
        gpa = np.asarray(out.stress, dtype=float)
        stress = full_3x3_to_voigt_6_stress(-gpa * GPa)
    return energy, forces, stress, out.structure
