"""Teacher data for distillation: configurations around the campaign's data, labelled by the
final fine-tuned MACE (committee mean).

Sources, from the campaign's labelled (training) configurations as seeds:

- ``seed``: the seeds themselves, relabelled by the teacher;
- ``strain``: random symmetric strains plus a rattle, alternately up to ``max_strain`` and up to
  ``STRAIN_REACH`` x ``max_strain`` (users strain cells beyond the campaign's labels);
- ``defect``: one random atom removed (a vacancy, or a lone adatom from a molecule) plus a rattle;
- ``md``: Langevin MD with the teacher at each temperature, a frame every ``sample_every`` steps.

Every structure belongs to a *group* (one MD trajectory, or one seed with its variants' kind), so
that held-out data can be split by group, not by frame (frames of one trajectory are correlated).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from frostline.explore.samplers import langevin_frames
from frostline.structures import min_distance, rattle, strain

MIN_DISTANCE = 0.6
"""Å: generated structures with closer atoms are discarded."""
STRAIN_REACH = 2.0
"""Every other strained structure is strained up to this multiple of ``max_strain``."""


@dataclass(frozen=True)
class Langevin:
    """The teacher's Langevin MD: time step (fs), friction (1/fs) and the random seed (which
    also draws the seeds, strains and defects)."""

    timestep_fs: float = 1.0
    friction: float = 0.02
    seed: int = 0


LANGEVIN = Langevin()


@dataclass
class TeacherSample:
    """A structure with the teacher's energy (eV) and forces (eV/Å)."""

    atoms: Atoms
    energy: float
    forces: np.ndarray
    source: str
    group: int
    temperature: float | None = None


@dataclass(frozen=True)
class TeacherPlan:
    """How many structures of each source make up ``n`` teacher structures."""

    n_seed: int
    n_strain: int
    n_defect: int
    n_md: int

    @classmethod
    def split(cls, n: int, n_seeds: int) -> TeacherPlan:
        """Half MD, up to a sixth the seeds themselves, the rest strained and defected variants."""
        n_md = n // 2
        n_seed = min(n_seeds, n // 6)
        rest = n - n_md - n_seed
        return cls(n_seed=n_seed, n_strain=rest - rest // 2, n_defect=rest // 2, n_md=n_md)


def label(calc: Calculator, atoms: Atoms) -> tuple[float, np.ndarray]:
    """Teacher energy and forces of ``atoms`` (the calculator is attached to a copy)."""
    work = atoms.copy()
    work.calc = calc
    energy = float(work.get_potential_energy())
    forces = np.asarray(work.get_forces(), dtype=float).copy()
    return energy, forces


def _defect(atoms: Atoms, rng: np.random.Generator) -> Atoms:
    out = atoms.copy()
    del out[int(rng.integers(len(out)))]
    return out


@dataclass
class _Samples:
    """Teacher samples being collected: each added structure is labelled (unless its energy
    and forces come with it) in the current ``group``."""

    calc: Calculator
    progress: Callable[[int], None] | None
    samples: list[TeacherSample] = field(default_factory=list)
    group: int = 0

    def add(self, atoms: Atoms, source: str, energy=None, forces=None, temperature=None) -> None:
        if energy is None:
            energy, forces = label(self.calc, atoms)
        self.samples.append(TeacherSample(atoms, energy, forces, source, self.group, temperature))
        if self.progress is not None:
            self.progress(1)


def generate_teacher_data(
    seeds: Sequence[Atoms],
    calc: Calculator,
    n_structures: int,
    temperatures: Sequence[float],
    md_steps: int = 100,
    sample_every: int = 5,
    rattle_stdev: float = 0.05,
    max_strain: float = 0.03,
    langevin: Langevin = LANGEVIN,
    progress: Callable[[int], None] | None = None,
) -> list[TeacherSample]:
    """About ``n_structures`` teacher-labelled structures (see the module docstring).

    ``progress(k)`` is called after every ``k`` structures labelled.
    """
    if not seeds:
        raise ValueError("teacher data needs at least one seed structure")
    if n_structures < 4:
        raise ValueError(f"n_teacher_structures must be >= 4, not {n_structures}")
    if not temperatures or any(t <= 0 for t in temperatures):
        raise ValueError(f"temperatures must be > 0 K, got {list(temperatures)}")
    rng = np.random.default_rng(langevin.seed)
    plan = TeacherPlan.split(n_structures, len(seeds))
    out = _Samples(calc, progress)
    for i in rng.permutation(len(seeds))[: plan.n_seed]:
        out.add(seeds[i].copy(), "seed")
        out.group += 1
    for source, count in (("strain", plan.n_strain), ("defect", plan.n_defect)):
        _add_variants(out, seeds, rng, source, count, rattle_stdev, max_strain)
    _add_md(out, seeds, rng, plan.n_md, temperatures, md_steps, sample_every, langevin)
    return out.samples


def _add_variants(
    out: _Samples,
    seeds: Sequence[Atoms],
    rng: np.random.Generator,
    source: str,
    count: int,
    rattle_stdev: float,
    max_strain: float,
) -> None:
    """``count`` strained (``source="strain"``) or defected seeds, each rattled, in a group of
    its own (fewer when too many tries come too close)."""
    made = tries = 0
    while made < count and tries < 20 * count + 20:
        tries += 1
        base = seeds[int(rng.integers(len(seeds)))]
        if source == "strain":
            reach = STRAIN_REACH if made % 2 else 1.0
            atoms = rattle(strain(base, rng, reach * max_strain), rng, rattle_stdev)
        elif len(base) > 2:
            atoms = rattle(_defect(base, rng), rng, rattle_stdev)
        else:
            continue
        if min_distance(atoms) < MIN_DISTANCE:
            continue
        out.add(atoms, source)
        out.group += 1
        made += 1


def _add_md(
    out: _Samples,
    seeds: Sequence[Atoms],
    rng: np.random.Generator,
    n_md: int,
    temperatures: Sequence[float],
    md_steps: int,
    sample_every: int,
    langevin: Langevin,
) -> None:
    """``n_md`` frames of teacher Langevin MD from random seeds, the temperatures in turn, a
    group per trajectory (one that leaves the teacher's domain ends there)."""
    calc = out.calc
    frames_per_run = max(1, md_steps // sample_every)
    max_runs = 3 * math.ceil(n_md / frames_per_run) if n_md else 0
    made = run = 0
    while made < n_md and run < max_runs:  # trajectories that end early are replaced
        temperature = float(temperatures[run % len(temperatures)])
        start = seeds[int(rng.integers(len(seeds)))]
        frames = langevin_frames(
            start,
            calc,
            temperature,
            md_steps,
            sample_every,
            timestep_fs=langevin.timestep_fs,
            friction=langevin.friction,
            seed=langevin.seed + 7919 * (run + 1),
            abort_force_std=math.inf,
        )
        run += 1
        for frame in frames:
            if made >= n_md:
                break
            # the generator is paused right after the teacher evaluated this frame
            energy = float(calc.results["energy"])
            forces = np.asarray(calc.results["forces"], dtype=float).copy()
            if not np.all(np.isfinite(forces)) or not np.isfinite(energy):
                break  # the trajectory left the teacher's domain: keep what came before
            if frame.min_distance < MIN_DISTANCE:
                continue  # a close contact (MD stops by itself below 0.5 Å)
            out.add(frame.atoms, "md", energy, forces, temperature)
            made += 1
        out.group += 1


def split_by_group(
    samples: Sequence[TeacherSample], holdout_fraction: float, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Indices (train, holdout): whole groups held out until ``holdout_fraction`` is reached."""
    if not 0 < holdout_fraction < 1:
        raise ValueError(f"holdout_fraction must be in (0, 1), not {holdout_fraction}")
    groups = sorted({s.group for s in samples})
    if len(groups) < 2:
        raise ValueError("teacher data has a single group: nothing to hold out")
    rng = np.random.default_rng(seed)
    target = holdout_fraction * len(samples)
    held: set[int] = set()
    count = 0
    for g in rng.permutation(groups):
        if count >= target or len(held) == len(groups) - 1:
            break
        held.add(int(g))
        count += sum(s.group == g for s in samples)
    train = [i for i, s in enumerate(samples) if s.group not in held]
    holdout = [i for i, s in enumerate(samples) if s.group in held]
    return train, holdout


def principal_strain(atoms: Atoms, rng: np.random.Generator, low: float, high: float) -> Atoms:
    """``atoms`` under a random symmetric strain whose largest principal value (in magnitude)
    is uniform in [``low``, ``high``] (positions scaled with the cell)."""
    eps = rng.uniform(-1, 1, size=(3, 3))
    eps = 0.5 * (eps + eps.T)
    eps *= rng.uniform(low, high) / np.abs(np.linalg.eigvalsh(eps)).max()
    out = atoms.copy()
    out.set_cell(out.cell @ (np.eye(3) + eps), scale_atoms=True)
    return out


def between_compositions(seeds: Sequence[Atoms], rng: np.random.Generator, n: int) -> list[Atoms]:
    """Up to ``n`` cells whose composition no seed and no teacher structure has: a seed with two
    or more elements doubled along its first periodic axis, minus one atom of its rarest element
    (e.g. 3 H on a doubled H2/Cu(111) cell: a coverage between the labels'), rattled by 0.02 Å."""
    usable = [
        a for a in seeds if a.pbc[0] and len(set(a.get_chemical_symbols())) > 1 and len(a) > 2
    ]
    out: list[Atoms] = []
    for _ in range(n if usable else 0):
        atoms = usable[int(rng.integers(len(usable)))].repeat((2, 1, 1))
        symbols = np.array(atoms.get_chemical_symbols())
        kinds, counts = np.unique(symbols, return_counts=True)
        rarest = np.flatnonzero(symbols == kinds[np.argmin(counts)])
        del atoms[int(rng.choice(rarest))]
        out.append(rattle(atoms, rng, 0.02))
    return out


def beyond_samples(
    seeds: Sequence[Atoms],
    calc: Calculator,
    temperature: float,
    max_strain: float,
    n: int = 16,
    langevin: Langevin = LANGEVIN,
) -> list[TeacherSample]:
    """Teacher-labelled frames outside the teacher data: half the seeds strained by
    1.25-1.5 x the largest teacher strain (``STRAIN_REACH x max_strain``, at least 5 %), a
    quarter with a composition between the labels (:func:`between_compositions`), the rest
    teacher MD frames at ``temperature`` (pass one above the teacher data's)."""
    rng = np.random.default_rng(langevin.seed + 104729)
    out: list[TeacherSample] = []
    reach = max(STRAIN_REACH * max_strain, 0.04)
    for k in range(n // 2):
        base = seeds[int(rng.integers(len(seeds)))]
        for _ in range(50):
            atoms = principal_strain(base, rng, 1.25 * reach, 1.5 * reach)
            if min_distance(atoms) >= MIN_DISTANCE:
                break
        energy, forces = label(calc, atoms)
        out.append(TeacherSample(atoms, energy, forces, "beyond-strain", k))
    for k, atoms in enumerate(between_compositions(seeds, rng, n // 4)):
        energy, forces = label(calc, atoms)
        out.append(TeacherSample(atoms, energy, forces, "beyond-composition", n // 2 + k))
    start = max(seeds, key=len)
    frames = langevin_frames(
        start,
        calc,
        temperature,
        10 * (n - len(out)),
        10,
        langevin.timestep_fs,
        langevin.friction,
        langevin.seed,
        abort_force_std=math.inf,
    )
    for frame in frames:
        if frame.min_distance >= MIN_DISTANCE:
            energy, forces = label(calc, frame.atoms)
            out.append(TeacherSample(frame.atoms, energy, forces, "beyond-md", n, temperature))
    return out
