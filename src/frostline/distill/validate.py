"""Checks of a surrogate: errors against teacher samples, MD stability, speed."""

from __future__ import annotations

import time
from collections.abc import Sequence

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
from frostline.structures import min_distance


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
    """Errors of ``calc`` against the teacher's labels of ``samples``."""
    energies, forces = predict_atoms(calc, [s.atoms for s in samples])
    return error_metrics([s.energy for s in samples], [s.forces for s in samples], energies, forces)


def md_stability(
    calc: Calculator,
    atoms: Atoms,
    temperature: float,
    steps: int = 200,
    timestep_fs: float = 0.5,
    friction: float = 0.02,
    seed: int = 0,
    min_contact: float = 0.5,
    max_drift_mev_per_atom: float = 10.0,
) -> StabilityReport:
    """Langevin MD at ``temperature`` then NVE from its last state, both ``steps`` long.

    Stable when every energy is finite, no two atoms come closer than ``min_contact`` Å, the
    Langevin temperature of the second half averages below ``2 T + 100 K``, and the NVE total
    energy drifts by less than ``max_drift_mev_per_atom`` (last minus first).
    """
    work = atoms.copy()
    work.calc = calc
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(work, temperature_K=temperature, rng=rng)
    dyn = Langevin(
        work,
        timestep=timestep_fs * units.fs,
        temperature_K=temperature,
        friction=friction / units.fs,
        rng=rng,
    )
    temps, contacts, finite = [], [], True
    for _ in range(steps):
        dyn.run(1)
        e = work.get_potential_energy()
        finite &= bool(np.isfinite(e))
        temps.append(float(work.get_temperature()))
        contacts.append(min_distance(work))
        if not finite or contacts[-1] < min_contact:
            break
    nve = VelocityVerlet(work, timestep=timestep_fs * units.fs)
    totals = [work.get_total_energy()]
    if finite and contacts[-1] >= min_contact:
        for _ in range(steps):
            nve.run(1)
            totals.append(work.get_total_energy())
            contacts.append(min_distance(work))
            if not np.isfinite(totals[-1]) or contacts[-1] < min_contact:
                break
    finite &= bool(np.all(np.isfinite(totals)))
    n = len(work)
    drift = float((totals[-1] - totals[0]) / n * 1000) if finite else float("inf")
    mean_t = float(np.mean(temps[len(temps) // 2 :])) if temps else float("nan")
    closest = float(np.min(contacts)) if contacts else float("nan")
    stable = (
        finite
        and closest >= min_contact
        and mean_t <= 2 * temperature + 100
        and abs(drift) <= max_drift_mev_per_atom
    )
    return StabilityReport(
        temperature_k=temperature,
        steps=steps,
        timestep_fs=timestep_fs,
        n_atoms=n,
        mean_temperature_k=mean_t,
        max_temperature_k=float(np.max(temps)) if temps else float("nan"),
        min_distance_a=closest,
        nve_drift_mev_per_atom=drift,
        stable=bool(stable),
    )


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
