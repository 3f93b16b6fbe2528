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
    stop_reason: str | None = None  # why the trajectory stopped at this frame (``AbortRule``)


@dataclass
class AbortRule:
    """When a trajectory stops (after the frame that breaks it), for both MD engines.

    ``force_std``: raw committee force deviation, eV/Å (inf: not applied, as for an uncalibrated
    last-layer score); ``min_distance``: Å; ``error_bound``: the frame's calibrated predicted
    error bound (eV/Å, e.g. ``frostline.select.uncertainty.loop.ErrorBound``), stopping the
    trajectory above ``max_error``.
    """

    force_std: float = 1.0
    min_distance: float = 0.5
    error_bound: Callable[[Frame], float] | None = None
    max_error: float = math.inf

    def reason(self, frame: Frame) -> str | None:
        """``not_finite``, ``min_distance``, ``force_std``, ``error_bound`` or None (go on)."""
        scored = frame.atom_scores is not None  # a scorer's inf is an unknown element, not NaN
        if not np.isfinite(frame.max_force or 0.0) or not (
            scored or np.isfinite(frame.max_force_std)
        ):
            return "not_finite"
        if frame.min_distance < self.min_distance:
            return "min_distance"
        if frame.max_force_std > self.force_std:
            return "force_std"
        if self.error_bound is not None and self.error_bound(frame) > self.max_error:
            return "error_bound"
        return None


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
    error_bound: Callable[[Frame], float] | None = None,
    max_error: float = math.inf,
    bias=None,
) -> Iterator[Frame]:
    """Run Langevin MD and yield a frame every ``sample_every`` steps.

    The trajectory stops early (after yielding the offending frame) when atoms come closer than
    ``abort_min_distance`` or the committee's force deviation exceeds ``abort_force_std``.

    ``scorer`` (e.g. ``LastLayerScorer``): per-atom scores of the model call that gave the
    frame's forces (called with the frame's symbols); they replace the committee deviation as
    the frame's uncertainty (``max_force_std`` = their maximum, ``atom_scores``), and
    ``abort_force_std`` is then not applied (an uncalibrated score has no eV/Å scale): only
    close contacts and non-finite numbers stop the trajectory.

    ``error_bound``/``max_error``: the calibrated stop (:class:`AbortRule`); the stopping frame's
    ``stop_reason`` says which rule stopped it. ``bias``: a ``LastLayerBias`` whose hooks sit on
    ``calc``'s model (uncertainty-biased MD, :mod:`frostline.explore.bias`): laid out here for
    ``start``'s atoms; the frames' forces then include the bias force.
    """
    atoms = start.copy()
    atoms.calc = calc
    if bias is not None:
        bias.layout(atoms.get_chemical_symbols())
        calc.reset()  # results it cached for these positions were computed without the bias
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
        frame = atoms.copy()
        frame.calc = None
        out = Frame(frame, done, temperature, f_std, e_std, min_distance(atoms), fmax, scores)
        out.stop_reason = AbortRule(limit, abort_min_distance, error_bound, max_error).reason(out)
        yield out
        if out.stop_reason is not None:
            return
