"""Exploration samplers: Langevin MD driven by the committee's mean forces."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import thermalize_momenta

from frostline.structures import min_distance


@dataclass
class Frame:
    """One sampled configuration and the committee's uncertainty on it."""

    atoms: Atoms
    step: int
    temperature: float
    max_force_std: float
    energy_std_per_atom: float
    min_distance: float
    max_force: float | None = None  # largest committee-mean atomic force, eV/Å
    atom_scores: list[float] | None = None  # per-atom uncertainty of a ``scorer`` (last-layer)


def committee_uncertainty(calc: Calculator, atoms: Atoms) -> tuple[float, float]:
    """(max atomic force deviation eV/Å, energy std eV/atom) from a committee calculator.

    The force deviation of atom i is sqrt(sum_xyz var_k(F_ik)) (DP-GEN's definition); a single
    model has no spread and gives zeros. A calculator that computes per-member forces only on
    request (``SharedCommitteeCalculator(member_forces="on_request")``) is asked for them here.
    """
    if "forces_var" not in calc.results and "forces_var" in calc.implemented_properties:
        calc.get_property("forces_var", atoms)
    results = calc.results
    if "forces_var" not in results:
        return 0.0, 0.0
    per_atom = np.sqrt(np.sum(np.asarray(results["forces_var"]), axis=1))
    e_std = float(np.sqrt(results.get("energy_var", 0.0))) / len(atoms)
    return float(per_atom.max()), e_std


def langevin_frames(
    start: Atoms,
    calc: Calculator,
    temperature: float,
    steps: int,
    sample_every: int,
    timestep_fs: float = 1.0,
    friction: float = 0.02,
    seed: int = 0,
    abort_force_std: float = 1.0,
    abort_min_distance: float = 0.5,
    scorer: Callable[[Sequence[str]], np.ndarray] | None = None,
) -> Iterator[Frame]:
    """Run Langevin MD and yield a frame every ``sample_every`` steps.

    The trajectory stops early (after yielding the offending frame) when atoms come closer than
    ``abort_min_distance`` or the committee's force deviation exceeds ``abort_force_std``.

    ``scorer`` (e.g. ``LastLayerScorer``): per-atom scores of the model call that gave the
    frame's forces (called with the frame's symbols); they replace the committee deviation as
    the frame's uncertainty (``max_force_std`` = their maximum, ``atom_scores``), and
    ``abort_force_std`` is then not applied (an uncalibrated score has no eV/Å scale): only
    close contacts and non-finite numbers stop the trajectory.
    """
    atoms = start.copy()
    atoms.calc = calc
    rng = np.random.default_rng(seed)
    thermalize_momenta(atoms, temperature_K=temperature, rng=rng)
    dyn = Langevin(
        atoms,
        timestep=timestep_fs * units.fs,
        temperature_K=temperature,
        friction=friction / units.fs,
        fixcm=False,
        rng=rng,
    )
    done = 0
    while done < steps:
        n = min(sample_every, steps - done)
        dyn.run(n)
        done += n
        fmax = float(np.linalg.norm(atoms.get_forces(), axis=1).max())
        scores, limit = None, abort_force_std
        if scorer is None:
            f_std, e_std = committee_uncertainty(calc, atoms)
        else:  # the hooks hold the features of the call that gave these forces
            scores = [float(x) for x in scorer(atoms.get_chemical_symbols())]
            f_std, e_std, limit = max(scores), 0.0, math.inf
        dmin = min_distance(atoms)
        frame = atoms.copy()
        frame.calc = None
        yield Frame(frame, done, temperature, f_std, e_std, dmin, fmax, scores)
        if dmin < abort_min_distance or f_std > limit or not np.isfinite(fmax):
            return
        if scorer is None and not np.isfinite(f_std):
            return
