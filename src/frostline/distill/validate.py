"""Checks of a surrogate: errors against teacher samples, MD stability, speed."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet

from frostline.distill.schemas import StabilityReport
from frostline.distill.teacher import TeacherSample
from frostline.finetune.evaluate import error_metrics
from frostline.schemas import ValidationMetrics
from frostline.select.contacts import ContactIndex
from frostline.select.contacts import shortest_contacts as atom_contacts


def predict_atoms(calc: Calculator, structures: Sequence[Atoms]):
    """Energies and forces of ``calc`` on copies of ``structures``."""
    energies, forces = [], []
    for atoms in structures:
        work = atoms.copy()
        work.calc = calc
        energies.append(float(work.get_potential_energy()))
        forces.append(np.asarray(work.get_forces(), dtype=float))
    return energies, forces


def teacher_errors(calc: Calculator, samples: Sequence[TeacherSample]) -> ValidationMetrics:
    """Errors of ``calc`` against the teacher's labels of ``samples`` (force MAE per element)."""
    energies, forces = predict_atoms(calc, [s.atoms for s in samples])
    symbols = [s.atoms.get_chemical_symbols() for s in samples]
    return error_metrics(
        [s.energy for s in samples], [s.forces for s in samples], energies, forces, symbols
    )


@dataclass(frozen=True)
class StabilityCriteria:
    """When a surrogate's short MD counts as stable (defaults: issue 45).

    ``temperature_tolerance``: the mean Langevin temperature of the second half within this
    fraction of the target; ``excursion``: no instantaneous temperature above
    ``T (1 + max(excursion_floor, excursion * sqrt(2 / (3 N))))`` (``sqrt(2/3N)`` is the
    canonical relative spread of the kinetic temperature of N atoms); ``contact_fraction``: no
    contact of an element pair below this fraction of the shortest one labelled for that pair;
    ``max_drift_mev_per_atom_per_ps``: the NVE total energy's fitted slope.
    """

    temperature_tolerance: float = 0.25
    excursion: float = 5.0
    excursion_floor: float = 0.5
    contact_fraction: float = 0.75
    max_drift_mev_per_atom_per_ps: float = 20.0
    collapse_a: float = 0.3
    """MD stops early when two atoms come closer than this (Å)."""

    def max_temperature(self, temperature: float, n_atoms: int) -> float:
        """The excursion bound (K) for ``n_atoms`` at ``temperature``."""
        spread = float(np.sqrt(2.0 / (3.0 * max(n_atoms, 1))))
        return temperature * (1.0 + max(self.excursion_floor, self.excursion * spread))


def pair_label(pair: tuple[str, str]) -> str:
    """``"Cu-H"``: how reports name an element pair (``frostline.select.contacts`` sorts it)."""
    return "-".join(pair)


def shortest_contacts(structures: Sequence[Atoms]) -> dict[str, float]:
    """Shortest distance of every element pair within 3 Å over ``structures`` (e.g. the
    labelled ones): ``frostline.select.contacts.ContactIndex``, keyed ``"A-B"``."""
    return {pair_label(p): d for p, d in ContactIndex(structures).shortest.items()}


def within_limits(atoms: Atoms, limits: dict[str, float]) -> bool:
    """No contact of ``atoms`` shorter than its element pair's entry in ``limits`` (Å)."""
    contacts = atom_contacts(atoms)
    return all(d >= limits.get(pair_label(p), 0.0) for p, d in contacts.items())


def _step_contacts(work: Atoms, seen: ContactIndex, collapse: float) -> bool:
    """Count this step's contacts in ``seen``; True when two atoms are closer than ``collapse``."""
    contacts = atom_contacts(work)
    seen.add(contacts)
    return min(contacts.values(), default=np.inf) < collapse


def _langevin(work: Atoms, temperature, steps, timestep_fs, friction, rng, seen, collapse):
    """Langevin steps; temperatures and whether energies stayed finite (contacts in ``seen``)."""
    dyn = Langevin(
        work,
        timestep=timestep_fs * units.fs,
        temperature_K=temperature,
        friction=friction / units.fs,
        rng=rng,
    )
    temps, finite = [], True
    for _ in range(steps):
        dyn.run(1)
        finite &= bool(np.isfinite(work.get_potential_energy()))
        temps.append(float(work.get_temperature()))
        if _step_contacts(work, seen, collapse) or not finite:
            break
    return temps, finite


def _nve(work: Atoms, steps, timestep_fs, seen, collapse):
    """Velocity Verlet steps; total energies (eV), contacts in ``seen``."""
    nve = VelocityVerlet(work, timestep=timestep_fs * units.fs)
    totals = [work.get_total_energy()]
    for _ in range(steps):
        nve.run(1)
        totals.append(work.get_total_energy())
        if _step_contacts(work, seen, collapse) or not np.isfinite(totals[-1]):
            break
    return totals


def md_stability(
    calc: Calculator,
    atoms: Atoms,
    temperature: float,
    steps: int = 200,
    timestep_fs: float = 0.5,
    friction: float = 0.02,
    seed: int = 0,
    reference_contacts: dict[str, float] | None = None,
    criteria: StabilityCriteria | None = None,
) -> StabilityReport:
    """Langevin MD at ``temperature`` then NVE from its last state, both ``steps`` long.

    Stable when every energy is finite and the ``criteria`` hold (temperature held, no contact
    below a fraction of ``reference_contacts`` — the shortest labelled distance per element
    pair, by default those of ``atoms`` itself — and a small NVE drift); ``failures`` says which
    did not. The MD stops early on a collapse (two atoms closer than ``criteria.collapse_a``).
    """
    crit = criteria or StabilityCriteria()
    refs = dict(reference_contacts or shortest_contacts([atoms]))
    work = atoms.copy()
    work.calc = calc
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(work, temperature_K=temperature, rng=rng)
    seen = ContactIndex()
    temps, finite = _langevin(
        work, temperature, steps, timestep_fs, friction, rng, seen, crit.collapse_a
    )
    totals = [work.get_total_energy()]
    if finite and len(temps) == steps:
        totals = _nve(work, steps, timestep_fs, seen, crit.collapse_a)
    finite &= bool(np.all(np.isfinite(totals))) and len(totals) == steps + 1
    n = len(work)
    per_atom = np.asarray(totals) / n * 1000  # meV/atom
    drift = float(per_atom[-1] - per_atom[0]) if finite else float("inf")
    slope = float("inf")
    if finite and len(per_atom) > 2:
        slope = float(np.polyfit(np.arange(len(per_atom)) * timestep_fs / 1000, per_atom, 1)[0])
    closest = {pair_label(p): d for p, d in seen.shortest.items()}
    report = StabilityReport(
        temperature_k=temperature,
        steps=steps,
        timestep_fs=timestep_fs,
        n_atoms=n,
        mean_temperature_k=float(np.mean(temps[len(temps) // 2 :])) if temps else float("nan"),
        max_temperature_k=float(np.max(temps)) if temps else float("nan"),
        max_temperature_bound_k=crit.max_temperature(temperature, n),
        temperature_tolerance=crit.temperature_tolerance,
        min_distance_a=min(closest.values(), default=float("nan")),
        min_contacts_a=closest,
        reference_contacts_a=refs,
        contact_fraction=crit.contact_fraction,
        nve_drift_mev_per_atom=drift,
        nve_drift_mev_per_atom_per_ps=slope,
        max_drift_mev_per_atom_per_ps=crit.max_drift_mev_per_atom_per_ps,
        stable=False,
    )
    report.failures = stability_failures(report, finite, crit)
    report.stable = not report.failures
    return report


def stability_failures(report: StabilityReport, finite: bool, crit: StabilityCriteria):
    """Human-readable reasons ``report`` fails ``crit`` (empty: stable)."""
    t = report.temperature_k
    out = []
    if not finite:
        out.append("MD stopped: non-finite energy or a collapse")
    if not abs(report.mean_temperature_k - t) <= crit.temperature_tolerance * t:
        out.append(
            f"mean temperature {report.mean_temperature_k:.0f} K outside "
            f"{t:.0f} K ± {100 * crit.temperature_tolerance:.0f} %"
        )
    if not report.max_temperature_k <= report.max_temperature_bound_k:
        out.append(
            f"temperature reached {report.max_temperature_k:.0f} K "
            f"(bound {report.max_temperature_bound_k:.0f} K)"
        )
    refs = report.reference_contacts_a
    for key, dist in sorted(report.min_contacts_a.items()):
        ref = refs.get(key, min(refs.values(), default=0.0))
        if dist < crit.contact_fraction * ref:
            out.append(
                f"{key} contact {dist:.2f} Å below {crit.contact_fraction:g} x the shortest "
                f"labelled {ref:.2f} Å"
            )
    drift = report.nve_drift_mev_per_atom_per_ps
    if finite and not abs(drift) <= crit.max_drift_mev_per_atom_per_ps:
        out.append(
            f"NVE drift {drift:.1f} meV/atom/ps (bound {crit.max_drift_mev_per_atom_per_ps:g})"
        )
    return out


def supercell(atoms: Atoms, n_atoms: int) -> Atoms:
    """``atoms`` repeated along its periodic directions to at least ``n_atoms`` atoms."""
    pbc = np.asarray(atoms.pbc, dtype=bool)
    reps = [1, 1, 1]
    periodic = [i for i in range(3) if pbc[i]] or [0]
    k = 0
    while len(atoms) * int(np.prod(reps)) < n_atoms:
        reps[periodic[k % len(periodic)]] += 1
        k += 1
    return atoms.repeat(reps)


def time_per_atom_step(
    calc: Calculator, atoms: Atoms, repeats: int = 5, warmup: int = 1, seed: int = 0
) -> float:
    """Wall time (µs) per atom per energy+force evaluation (median of ``repeats`` displaced
    copies, after ``warmup`` untimed ones); the calculator is reset before every call.
    """
    rng = np.random.default_rng(seed)
    work = atoms.copy()
    work.calc = calc
    base = work.positions.copy()
    times = []
    for i in range(warmup + repeats):
        work.positions = base + rng.normal(0, 0.01, size=base.shape)
        calc.reset()  # never a cached result (the same displacement may come twice)
        t0 = time.perf_counter()
        work.get_forces()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return float(np.median(times) / len(work) * 1e6)


@dataclass(frozen=True)
class StabilityRun:
    """The MD stability check a surrogate must pass: cell, temperature, steps, references."""

    cell: Atoms
    temperature: float
    steps: int
    reference_contacts: dict[str, float]
    timestep_fs: float = 0.5
    friction: float = 0.02
    seed: int = 0

    def contact_limits(self, criteria: StabilityCriteria | None = None) -> dict[str, float]:
        """Per element pair, the shortest contact the check accepts (Å)."""
        fraction = (criteria or StabilityCriteria()).contact_fraction
        return {pair: fraction * d for pair, d in self.reference_contacts.items()}

    def check(self, calc: Calculator) -> StabilityReport:
        """:func:`md_stability` of ``calc`` with these settings."""
        return md_stability(
            calc,
            self.cell,
            self.temperature,
            self.steps,
            self.timestep_fs,
            self.friction,
            self.seed,
            reference_contacts=self.reference_contacts,
        )
