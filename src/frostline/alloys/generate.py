"""Seed and validation structures of alloy systems (ASE builders, pymatgen symmetry).

Solid solutions (fcc / bcc / hcp) with random or special-quasirandom-like (SQS-like)
decorations at exact compositions, ordered prototypes (L1_2, L1_0, B2, L2_1), strained cells,
vacancies and surfaces. Every builder takes a seeded ``numpy`` generator; every structure is
checked for overlapping atoms. Lattice constants follow Vegard's law on the volume per atom of
the elements' reference states (``ase.data.reference_states``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.build import bcc110, bulk, fcc111, hcp0001
from ase.data import atomic_numbers, reference_states
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor

from frostline.structures import min_distance, neighbor_list

LATTICES = ("fcc", "bcc", "hcp")
BINARY_PROTOTYPES = ("L1_2", "L1_0", "B2")
TERNARY_PROTOTYPES = ("L2_1",)
CUBIC_PROTOTYPES = ("A1", "L1_2", "B2", "L2_1")
"""Prototypes with cubic symmetry (their elastic tensor has three constants: C11, C12, C44)."""
_REPEATS = {
    "fcc": {4: (1, 1, 1), 8: (2, 1, 1), 16: (2, 2, 1), 32: (2, 2, 2)},
    "bcc": {2: (1, 1, 1), 4: (2, 1, 1), 8: (2, 2, 1), 16: (2, 2, 2)},
    "hcp": {2: (1, 1, 1), 4: (2, 1, 1), 8: (2, 2, 1), 16: (2, 2, 2)},
}
_ATOMS_PER_CELL = {"fcc": 4, "bcc": 2, "hcp": 2}
HCP_C_OVER_A = float(np.sqrt(8.0 / 3.0))


class GenerationError(RuntimeError):
    """A structure cannot be generated as asked (e.g. overlapping atoms)."""


def atomic_volume(element: str) -> float:
    """Volume per atom (Å³) of the element's reference crystal (fcc, bcc or hcp)."""
    ref = reference_states[atomic_numbers[element]] or {}
    kind, a = ref.get("symmetry"), ref.get("a")
    if kind == "fcc":
        return a**3 / 4
    if kind == "bcc":
        return a**3 / 2
    if kind == "hcp":
        return np.sqrt(3) / 2 * a**2 * a * ref.get("c/a", HCP_C_OVER_A) / 2
    raise GenerationError(f"no fcc/bcc/hcp reference state for {element} (it is {kind})")


def vegard_volume(fractions: dict[str, float]) -> float:
    """Volume per atom of a solid solution by Vegard's law (on volumes per atom)."""
    total = sum(fractions.values())
    return sum(x * atomic_volume(e) for e, x in fractions.items()) / total


def lattice_constant(lattice: str, volume_per_atom: float) -> float:
    """Cubic ``a`` (fcc, bcc) or hexagonal ``a`` (ideal c/a, hcp) for a volume per atom."""
    if lattice == "fcc":
        return (4 * volume_per_atom) ** (1 / 3)
    if lattice == "bcc":
        return (2 * volume_per_atom) ** (1 / 3)
    if lattice == "hcp":
        return (4 * volume_per_atom / (np.sqrt(3) * HCP_C_OVER_A)) ** (1 / 3)
    raise GenerationError(f"unknown lattice {lattice!r} (use one of {', '.join(LATTICES)})")


def composition_counts(fractions: Sequence[float], n_atoms: int) -> list[int]:
    """Integer atom counts for ``fractions`` (largest remainder), each element at least once."""
    x = np.asarray(fractions, dtype=float)
    if len(x) > n_atoms:
        raise GenerationError(f"{len(x)} elements do not fit into {n_atoms} atoms")
    raw = x / x.sum() * n_atoms
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts))[: n_atoms - counts.sum()]:
        counts[i] += 1
    while (counts == 0).any():  # take from the most abundant
        counts[np.argmax(counts)] -= 1
        counts[np.argmin(counts)] += 1
    return [int(c) for c in counts]


def parent_lattice(lattice: str, volume_per_atom: float, n_atoms: int) -> Atoms:
    """An ``n_atoms`` supercell of the lattice (one species placeholder, periodic)."""
    repeats = _REPEATS.get(lattice, {})
    if n_atoms not in repeats:
        sizes = ", ".join(str(n) for n in repeats) or "none"
        raise GenerationError(f"{lattice} supercells of {n_atoms} atoms unsupported ({sizes})")
    a = lattice_constant(lattice, volume_per_atom)
    if lattice == "hcp":
        cell = bulk("X", "hcp", a=a, c=a * HCP_C_OVER_A)
    else:
        cell = bulk("X", lattice, a=a, cubic=True)
    return cell.repeat(repeats[n_atoms])


def pair_correlation_error(atoms: Atoms, cutoff: float) -> float:
    """Sum of squared Warren–Cowley parameters of the first shell (0 for an ideal random alloy).

    ``alpha_AB = 1 - P(B neighbour | A) / c_B`` over all ordered pairs of species.
    """
    symbols = np.array(atoms.get_chemical_symbols())
    species = sorted(set(symbols))
    if len(species) < 2:
        return 0.0
    i, j = neighbor_list("ij", atoms, cutoff)
    conc = {s: float(np.mean(symbols == s)) for s in species}
    err = 0.0
    for a, b in itertools.product(species, repeat=2):
        from_a = symbols[i] == a
        if not from_a.any():
            continue
        p = float(np.mean(symbols[j][from_a] == b))
        err += (1.0 - p / conc[b]) ** 2
    return err


def decorate(
    parent: Atoms,
    elements: Sequence[str],
    counts: Sequence[int],
    rng: np.random.Generator,
    sqs_trials: int = 0,
) -> Atoms:
    """Place ``counts`` atoms of ``elements`` on the sites of ``parent``.

    ``sqs_trials`` > 0: keep the best of that many random decorations by first-shell pair
    correlations (special-quasirandom-like); 0: one random decoration.
    """
    if sum(counts) != len(parent):
        raise GenerationError(f"counts {list(counts)} do not add up to {len(parent)} sites")
    base = np.repeat(np.asarray(elements), counts)
    nn = float(np.sort(parent.get_all_distances(mic=True)[0])[1]) if len(parent) > 1 else 3.0
    best, best_err = None, np.inf
    for _ in range(max(1, sqs_trials)):
        atoms = parent.copy()
        atoms.set_chemical_symbols(list(rng.permutation(base)))
        if sqs_trials <= 0:
            return atoms
        e = pair_correlation_error(atoms, 1.1 * nn)
        if e < best_err:
            best, best_err = atoms, e
    best.info["sqs_error"] = best_err
    return best


def solid_solution(
    elements: Sequence[str],
    fractions: Sequence[float],
    rng: np.random.Generator,
    lattice: str = "fcc",
    n_atoms: int = 8,
    sqs_trials: int = 0,
) -> Atoms:
    """A solid solution at the Vegard volume; random or SQS-like decoration."""
    counts = composition_counts(fractions, n_atoms)
    volume = vegard_volume(dict(zip(elements, counts, strict=True)))
    atoms = decorate(parent_lattice(lattice, volume, n_atoms), elements, counts, rng, sqs_trials)
    atoms.info["prototype"] = f"{lattice}-{'sqs' if sqs_trials > 0 else 'random'}"
    return atoms


def element_crystal(element: str, lattice: str = "fcc") -> Atoms:
    """The pure element on ``lattice`` at its reference volume per atom (conventional cell)."""
    atoms = parent_lattice(lattice, atomic_volume(element), _ATOMS_PER_CELL[lattice])
    atoms.set_chemical_symbols([element] * len(atoms))
    atoms.info["prototype"] = "A1" if lattice == "fcc" else lattice
    return atoms


def prototype(name: str, elements: Sequence[str]) -> Atoms:
    """An ordered prototype at its Vegard volume.

    ``L1_2`` A3B (Cu3Au, Pm-3m), ``L1_0`` AB (CuAu, P4/mmm), ``B2`` AB (CsCl, Pm-3m) and
    ``L2_1`` A2BC (Heusler, Fm-3m; primitive 4-atom cell).
    """
    elements = list(elements)
    if name in ("L1_2", "L1_0", "B2") and len(elements) != 2:
        raise GenerationError(f"prototype {name} needs 2 elements, got {elements}")
    if name == "L2_1" and len(elements) != 3:
        raise GenerationError(f"prototype {name} needs 3 elements, got {elements}")
    a_el, b_el = elements[0], elements[1]
    if name == "L1_2":  # B at the corner, A on the face centres
        symbols = [b_el, a_el, a_el, a_el]
        volume = vegard_volume({a_el: 3, b_el: 1})
        atoms = bulk("X", "fcc", a=lattice_constant("fcc", volume), cubic=True)
    elif name == "L1_0":  # layers along z: (0,0,0), (1/2,1/2,0) A; the z = 1/2 sites B
        volume = vegard_volume({a_el: 1, b_el: 1})
        atoms = bulk("X", "fcc", a=lattice_constant("fcc", volume), cubic=True)
        symbols = [a_el if abs(z) < 1e-6 else b_el for z in atoms.get_scaled_positions()[:, 2]]
    elif name == "B2":
        volume = vegard_volume({a_el: 1, b_el: 1})
        a = lattice_constant("bcc", volume)
        atoms = Atoms("X2", scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5]], cell=[a] * 3, pbc=True)
        symbols = [a_el, b_el]
    elif name == "L2_1":  # A2BC: A on 8c, B on 4a, C on 4b
        c_el = elements[2]
        volume = vegard_volume({a_el: 2, b_el: 1, c_el: 1})
        lattice = Lattice.cubic((16 * volume) ** (1 / 3))
        conv = Structure.from_spacegroup(
            "Fm-3m",
            lattice,
            [a_el, b_el, c_el],
            [[0.25, 0.25, 0.25], [0, 0, 0], [0.5, 0.5, 0.5]],
        )
        atoms = AseAtomsAdaptor.get_atoms(conv.get_primitive_structure())
        atoms.info["prototype"] = name
        return atoms
    else:
        raise GenerationError(f"unknown prototype {name!r}")
    atoms.set_chemical_symbols(symbols)
    atoms.info["prototype"] = name
    return atoms


def vacancy(atoms: Atoms, rng: np.random.Generator) -> Atoms:
    """Remove one random atom, keeping at least one atom of every element."""
    symbols = atoms.get_chemical_symbols()
    removable = [i for i, s in enumerate(symbols) if symbols.count(s) > 1]
    if not removable:
        raise GenerationError(f"cannot make a vacancy in {atoms.get_chemical_formula()}")
    out = atoms.copy()
    del out[int(rng.choice(removable))]
    out.info["prototype"] = f"{atoms.info.get('prototype', 'cell')}-vacancy"
    return out


def surface_slab(
    elements: Sequence[str],
    fractions: Sequence[float],
    rng: np.random.Generator,
    lattice: str = "fcc",
    layers: int = 3,
    vacuum: float = 6.0,
) -> Atoms:
    """A close-packed (2x2) random-alloy slab (fcc111 / bcc110 / hcp0001), periodic in 3D."""
    counts = composition_counts(fractions, 4 * layers)
    volume = vegard_volume(dict(zip(elements, counts, strict=True)))
    a = lattice_constant(lattice, volume)
    size = (2, 2, layers)
    if lattice == "fcc":
        slab = fcc111("Cu", size=size, a=a, vacuum=vacuum)
    elif lattice == "bcc":
        slab = bcc110("Fe", size=size, a=a, vacuum=vacuum)
    else:
        slab = hcp0001("Ti", size=size, a=a, c=a * HCP_C_OVER_A, vacuum=vacuum)
    slab.pbc = True
    slab = decorate(slab, elements, counts, rng)
    slab.info["prototype"] = f"{lattice}-surface"
    return slab


def check_structure(atoms: Atoms, min_dist: float) -> Atoms:
    """Raise ``GenerationError`` when atoms overlap (minimum image) or the cell is degenerate."""
    if atoms.pbc.any() and abs(atoms.cell.volume) < 1e-6:
        raise GenerationError(f"{atoms.get_chemical_formula()}: zero-volume periodic cell")
    d = min_distance(atoms)
    if d < min_dist:
        raise GenerationError(
            f"{atoms.get_chemical_formula()} ({atoms.info.get('prototype')}): atoms {d:.2f} Å "
            f"apart (< {min_dist} Å)"
        )
    return atoms


def binary_fractions(x: float) -> tuple[float, float]:
    """(1 - x, x): ``x`` is the fraction of the second element."""
    return (1.0 - x, x)
