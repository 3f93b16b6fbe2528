"""Structure sets of one chemical system: active-learning seeds and held-out validation set."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import write

from frostline.alloys.config import GenerateConfig, PropertyValidationConfig, SpotCheckConfig
from frostline.alloys.generate import (
    CUBIC_PROTOTYPES,
    binary_fractions,
    check_structure,
    element_crystal,
    prototype,
    solid_solution,
    surface_slab,
    vacancy,
)
from frostline.alloys.properties import at_volume
from frostline.structures import rattle, strain


def subsystems(system: Sequence[str]) -> list[tuple[str, ...]]:
    """Every sub-system with two or more elements (binaries of a ternary, then itself)."""
    return [c for k in range(2, len(system) + 1) for c in itertools.combinations(system, k)]


def _compositions(sub: tuple[str, ...], binary: list[float], ternary: list[list[float]]):
    return [binary_fractions(x) for x in binary] if len(sub) == 2 else [tuple(t) for t in ternary]


def ordered_prototypes(system: Sequence[str], edges: str = "all") -> list[Atoms]:
    """L1_2 (both ways), L1_0 and B2 of every pair; L2_1 with each element on the 8c site.

    ``edges="L1_2"``: the pairs of a ternary get their L1_2 prototypes only.
    """
    out = []
    for sub in subsystems(system):
        if len(sub) == 2:
            a, b = sub
            out += [prototype("L1_2", (a, b)), prototype("L1_2", (b, a))]
            if edges == "all" or len(system) == 2:
                out += [prototype("L1_0", (a, b)), prototype("B2", (a, b))]
        else:
            for i in range(3):
                rest = [e for j, e in enumerate(sub) if j != i]
                out.append(prototype("L2_1", (sub[i], *rest)))
    return out


def scaled_volume(atoms: Atoms, ratio: float) -> Atoms:
    """A copy of ``atoms`` isotropically scaled to ``ratio`` times its volume."""
    scaled = at_volume(atoms, ratio * atoms.get_volume() / len(atoms))
    scaled.info["prototype"] = f"{atoms.info.get('prototype', 'cell')}-V{ratio:g}"
    return scaled


def seed_structures(
    system: Sequence[str], options: GenerateConfig, rng: np.random.Generator
) -> list[Atoms]:
    """Seeds of one system's active-learning loop, the pure elements first.

    The elements come first so that the initial training set (the first ``n_initial`` seeds)
    has several compositions (per-element E0s are then determined), then the elements scaled to
    ``options.volume_scales`` (compressed and expanded: the initial set fixes the EOS curvature,
    also when the oracle's equilibrium volume differs from the reference volumes); the rest is
    shuffled.
    Prototypes are strained and rattled so that the ideal cells of the validation set stay
    held out.
    """
    elements = [element_crystal(e, lat) for lat in options.lattices for e in system]
    elements += [scaled_volume(a, ratio) for ratio in options.volume_scales for a in elements]
    solutions = []
    for sub in subsystems(system):
        for lat, comp in itertools.product(
            options.lattices,
            _compositions(sub, options.compositions, options.ternary_compositions),
        ):
            for _ in range(options.per_composition):
                solutions.append(
                    solid_solution(sub, comp, rng, lat, options.n_atoms, options.sqs_trials)
                )
    extras = []
    if options.prototypes:
        for atoms in ordered_prototypes(system):
            extras.append(rattle(strain(atoms, rng, options.max_strain), rng, options.rattle))
            extras[-1].info["prototype"] = atoms.info["prototype"] + "-perturbed"
    for _ in range(options.n_strained):
        atoms = solutions[rng.integers(len(solutions))]
        extras.append(rattle(strain(atoms, rng, options.max_strain), rng, options.rattle))
        extras[-1].info["prototype"] = atoms.info["prototype"] + "-strained"
    for _ in range(options.n_vacancies):
        extras.append(vacancy(solutions[rng.integers(len(solutions))], rng))
    if options.surfaces:
        for sub in subsystems(system):
            extras.append(surface_slab(sub, [1.0] * len(sub), rng, options.lattices[0]))
    rest = solutions + extras
    rest = [rest[i] for i in rng.permutation(len(rest))]
    return [check_structure(a, options.min_distance) for a in elements + rest]


def validation_structures(
    system: Sequence[str], options: PropertyValidationConfig, rng: np.random.Generator
) -> list[Atoms]:
    """Held-out set: fcc elements, ideal ordered prototypes and SQS-like fcc cells.

    A ternary's set has its pairs' L1_2 prototypes (for the hull) but not their other
    prototypes and SQS-like cells, which the binary systems validate.
    ``info['prototype']`` names each; ``info['cubic']`` marks the cubic prototypes whose
    elastic constants are validated: the elements and those with all of the system's elements.
    """
    out = [element_crystal(e, "fcc") for e in system]
    out += ordered_prototypes(system, edges="L1_2")
    full = tuple(system)
    for comp in _compositions(full, options.compositions, options.ternary_compositions):
        out.append(solid_solution(full, comp, rng, "fcc", options.n_atoms, options.sqs_trials))
    for atoms in out:
        n_elements = len(set(atoms.get_chemical_symbols()))
        atoms.info["cubic"] = atoms.info["prototype"] in CUBIC_PROTOTYPES and n_elements in (
            1,
            len(system),
        )
        check_structure(atoms, 1.5)
    return out


def spot_check_structures(
    structures: Sequence[Atoms], options: SpotCheckConfig, rng: np.random.Generator
) -> list[Atoms]:
    """The ``options.n`` smallest validation cells (DFT cost), more elements first, strained
    and rattled so that forces and stress are not zero by symmetry."""
    order = sorted(
        range(len(structures)),
        key=lambda i: (len(structures[i]), -len(set(structures[i].get_chemical_symbols())), i),
    )
    out = []
    for i in order[: options.n]:
        atoms = rattle(strain(structures[i], rng, options.strain), rng, options.rattle)
        atoms.info["prototype"] = structures[i].info.get("prototype", "")
        check_structure(atoms, 1.2)
        out.append(atoms)
    return out


def write_seeds(atoms_list: list[Atoms], path: Path) -> Path:
    """Write seeds as extxyz (the campaign's ``system.seeds_file``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = []
    for atoms in atoms_list:
        a = atoms.copy()
        a.info = {"prototype": atoms.info.get("prototype", "")}
        clean.append(a)
    write(path, clean, format="extxyz")
    return path
