"""Teacher-labelled active learning of the surrogate itself (issue 45).

A linear ACE fitted to teacher data can still have holes where users run MD: hot cells, H close
to Cu, dissociated H2. Each round runs short Langevin MD *with the surrogate* (the stability
check's cell and a few seed cells, at every distillation temperature and beyond), labels the
frames it visits with the teacher (cheap), adds the ``frames`` where surrogate and teacher
disagree most (force MAE; trajectories that end in a close contact contribute their last frames)
and refits the chosen basis. Every round is recorded (:class:`ActiveRound`): candidates, frames
added, their disagreement before and after the refit, and the stability check before the round.

With ``core`` (``distill.core_repulsion``) every refit gets a ZBL core below the shortest contact
of each element pair in its training frames (:meth:`BasisSpec.with_core`), so atoms pushed closer
than anything the teacher labelled meet a physical repulsion instead of the basis' extrapolation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from frostline.distill.ace import (
    Design,
    LinearACEFit,
    SurrogateCalculator,
    build_basis,
    design_matrix,
    fit_linear_ace,
    write_yace,
)
from frostline.distill.schemas import ActiveRound
from frostline.distill.teacher import MIN_DISTANCE, Langevin, TeacherSample, label
from frostline.distill.validate import StabilityRun, within_limits
from frostline.explore.samplers import langevin_frames

ACTIVE_GROUP = 1_000_000
"""Group numbers of actively learned frames start here (one group per round)."""


@dataclass(frozen=True)
class ActivePlan:
    """How the surrogate explores: ``rounds`` x (MD from the stability cell, ``n_cell_runs``
    times per temperature, and from ``n_seed_runs`` seed cells per temperature), ``steps``
    long, a frame every ``sample_every`` steps; the ``frames`` most disputed are added."""

    rounds: int
    frames: int
    steps: int
    temperatures: tuple[float, ...]
    sample_every: int = 5
    n_cell_runs: int = 2
    n_seed_runs: int = 4
    core: bool = False


def surrogate_frames(
    calc: Calculator,
    runs: Sequence[tuple[Atoms, float]],
    plan: ActivePlan,
    langevin: Langevin,
    limits: dict[str, float],
) -> tuple[list[tuple[Atoms, float]], int]:
    """Frames of surrogate Langevin MD, one trajectory per ``(start, temperature)`` in ``runs``,
    and how many ended early: at a contact below its pair's entry in ``limits`` (the frames
    before it are kept: where the surrogate went wrong) or non-finite forces."""
    frames: list[tuple[Atoms, float]] = []
    early = 0
    for k, (start, temperature) in enumerate(runs):
        n = 0
        for frame in langevin_frames(
            start,
            calc,
            temperature,
            plan.steps,
            plan.sample_every,
            langevin.timestep_fs,
            langevin.friction,
            langevin.seed + 7919 * (k + 1),
            abort_force_std=math.inf,
            abort_min_distance=MIN_DISTANCE,
        ):
            if not (np.isfinite(frame.max_force) and within_limits(frame.atoms, limits)):
                break
            n += 1
            frames.append((frame.atoms, temperature))
        early += n * plan.sample_every < plan.steps
    return frames, early


def rank_by_disagreement(
    calc: Calculator, teacher: Calculator, frames: Sequence[tuple[Atoms, float]], group: int
) -> list[tuple[float, TeacherSample]]:
    """Teacher-labelled ``frames`` with the surrogate's force MAE against the teacher (meV/Å),
    largest first (frames the teacher cannot label, non-finite, are dropped)."""
    ranked = []
    for atoms, temperature in frames:
        energy, forces = label(teacher, atoms)
        if not (np.isfinite(energy) and np.all(np.isfinite(forces))):
            continue
        _, predicted = label(calc, atoms)
        mae = float(np.mean(np.abs(predicted - forces)) * 1000)
        ranked.append((mae, TeacherSample(atoms, energy, forces, "active", group, temperature)))
    return sorted(ranked, key=lambda pair: -pair[0])


def join(a: Design, b: Design) -> Design:
    """Design rows of ``a`` followed by those of ``b`` (same basis)."""
    return Design(
        np.vstack([a.energy, b.energy]),
        [*a.forces, *b.forces],
        np.vstack([a.counts, b.counts]),
        a.n_functions,
    )


def refit(
    fit: LinearACEFit,
    design: Design,
    samples: Sequence[TeacherSample],
    energy_weight: float,
    ridge: float,
    core: dict[str, float] | None = None,
) -> LinearACEFit:
    """The same basis fitted to ``samples`` (rows ``design``); with ``core`` a ZBL core below
    each element pair's entry (no sample may have a closer contact: the fit ignores the core)."""
    spec = fit.spec.with_core(core) if core else fit.spec
    return fit_linear_ace(
        spec,
        design,
        [s.energy for s in samples],
        [s.forces for s in samples],
        energy_weight,
        ridge,
        basis=build_basis(spec),
    )


def force_mae(fit: LinearACEFit, design: Design, samples: Sequence[TeacherSample]) -> float:
    """Force MAE (meV/Å) of ``fit`` against the teacher on ``samples`` (rows ``design``)."""
    if not samples:
        return float("nan")
    _, forces = fit.predict(design)
    errors = [np.abs(f - s.forces).ravel() for f, s in zip(forces, samples, strict=True)]
    return float(np.mean(np.concatenate(errors)) * 1000)


@dataclass
class ActiveLearner:
    """Grows a surrogate's training data where it disagrees with its teacher (see the module
    docstring); ``samples`` and ``train`` are extended in place."""

    teacher: Calculator
    samples: list[TeacherSample]
    train: list[int]
    holdout: list[int]
    seeds: Sequence[Atoms]
    stability: StabilityRun
    plan: ActivePlan
    langevin: Langevin
    workdir: Path
    energy_weight: float = 10.0
    ridge: float = 1e-6

    @property
    def core(self) -> dict[str, float] | None:
        """ZBL core radii: the stability check's contact limits (``None``: no core)."""
        return self.stability.contact_limits() if self.plan.core else None

    def runs(self, round_: int) -> list[tuple[Atoms, float]]:
        """(start, temperature) of this round's trajectories."""
        rng = np.random.default_rng(self.langevin.seed + 31 * (round_ + 1))
        picks = rng.choice(len(self.seeds), min(self.plan.n_seed_runs, len(self.seeds)), False)
        starts = [self.stability.cell] * self.plan.n_cell_runs + [self.seeds[i] for i in picks]
        return [(s, float(t)) for t in self.plan.temperatures for s in starts]

    def check(self, fit: LinearACEFit):
        """The stability check of ``fit`` (a ``StabilityReport``)."""
        yace = write_yace(fit, self.workdir / "check.yace")
        return self.stability.check(SurrogateCalculator(yace))

    def round_langevin(self, r: int) -> Langevin:
        """The surrogate MD settings of round ``r`` (its own random seed)."""
        lang = self.langevin
        return Langevin(lang.timestep_fs, lang.friction, lang.seed + 1000 * (r + 1))

    def run(self, fit: LinearACEFit) -> tuple[LinearACEFit, list[ActiveRound]]:
        """``plan.rounds`` rounds from ``fit``; the last refit and the rounds' records."""
        train_samples = [self.samples[i] for i in self.train]
        design = design_matrix(fit.basis, [s.atoms for s in train_samples])
        held = [self.samples[i] for i in self.holdout]
        held_design = design_matrix(fit.basis, [s.atoms for s in held])
        if self.plan.core:
            fit = refit(fit, design, train_samples, self.energy_weight, self.ridge, self.core)
        rounds = []
        for r in range(self.plan.rounds):
            fit, record, design = self.round(r, fit, design)
            record.holdout_force_mae_mev_per_a = force_mae(fit, held_design, held)
            rounds.append(record)
        return fit, rounds

    def round(
        self, r: int, fit: LinearACEFit, design: Design
    ) -> tuple[LinearACEFit, ActiveRound, Design]:
        """One round: explore with ``fit``, add the most disputed frames, refit."""
        calc = SurrogateCalculator(write_yace(fit, self.workdir / f"active{r}.yace"))
        report = self.stability.check(calc) if self.stability.steps else None
        limits = self.stability.contact_limits()
        runs = self.runs(r)
        frames, early = surrogate_frames(calc, runs, self.plan, self.round_langevin(r), limits)
        ranked = rank_by_disagreement(calc, self.teacher, frames, ACTIVE_GROUP + r)
        added = [s for _, s in ranked[: self.plan.frames]]
        self.train.extend(range(len(self.samples), len(self.samples) + len(added)))
        self.samples.extend(added)
        new_rows = design_matrix(fit.basis, [s.atoms for s in added])
        design = join(design, new_rows) if added else design
        train_samples = [self.samples[i] for i in self.train]
        new = refit(fit, design, train_samples, self.energy_weight, self.ridge, self.core)
        scores = [m for m, _ in ranked]
        record = ActiveRound(
            round=r + 1,
            n_trajectories=len(runs),
            n_ended_early=early,
            n_candidates=len(ranked),
            n_added=len(added),
            candidate_median_mev_per_a=float(np.median(scores)) if scores else float("nan"),
            added_before_mev_per_a=float(np.mean(scores[: len(added)])) if added else float("nan"),
            added_after_mev_per_a=force_mae(new, new_rows, added),
            stable_before=report.stable if report else None,
            failures_before=report.failures if report else [],
            mean_temperature_before_k=report.mean_temperature_k if report else None,
        )
        return new, record, design
