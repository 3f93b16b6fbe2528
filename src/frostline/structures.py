"""Structure builders (ASE) for seeds, validation sets and the mini-foundation data."""

from __future__ import annotations

import itertools

import numpy as np
from ase import Atoms
from ase.build import add_adsorbate, bulk, fcc111, molecule

METALS = ("Al", "Ni", "Cu", "Pd", "Ag", "Pt", "Au")
MOLECULES = ("H2", "O2", "CO", "CO2", "H2O", "CH4", "C2H2", "OH", "C2H4", "CH3OH")
ADSORBATES = ("H", "O", "C", "OH", "CO", "H2")


def neighbor_list(quantities: str, atoms: Atoms, cutoff: float) -> tuple[np.ndarray, ...]:
    """``ase.neighborlist.neighbor_list`` (same arguments and result) through matscipy's
    compiled neighbour list (installed with mace-torch; ~100x faster on small cells), ASE's
    own for a cell matscipy cannot invert (a molecule without a cell)."""
    from matscipy.neighbours import neighbour_list

    if abs(np.linalg.det(atoms.cell.array)) > 1e-6:
        return neighbour_list(quantities, atoms, cutoff)
    from ase.neighborlist import neighbor_list as ase_neighbor_list

    return ase_neighbor_list(quantities, atoms, cutoff)


def min_distance(atoms: Atoms) -> float:
    """Smallest interatomic distance (minimum image), inf for one atom."""
    if len(atoms) < 2:
        return float("inf")
    d = atoms.get_all_distances(mic=True)
    return float(d[np.triu_indices(len(atoms), 1)].min())


def rattle(atoms: Atoms, rng: np.random.Generator, stdev: float) -> Atoms:
    out = atoms.copy()
    out.positions += rng.normal(0.0, stdev, size=out.positions.shape)
    return out


def strain(atoms: Atoms, rng: np.random.Generator, max_strain: float) -> Atoms:
    out = atoms.copy()
    eps = rng.uniform(-max_strain, max_strain, size=(3, 3))
    eps = 0.5 * (eps + eps.T)
    out.set_cell(out.cell @ (np.eye(3) + eps), scale_atoms=True)
    return out


def cu111_slab(size: tuple[int, int, int] = (2, 2, 3), vacuum: float = 6.0) -> Atoms:
    """A Cu(111) slab, periodic in all directions (vacuum along z)."""
    slab = fcc111("Cu", size=size, vacuum=vacuum)
    slab.pbc = True
    return slab


def h2_on_slab(
    slab: Atoms,
    rng: np.random.Generator,
    height: tuple[float, float] = (1.2, 3.5),
    bond: tuple[float, float] = (0.65, 1.4),
    min_metal_h: float = 1.15,
    max_tries: int = 200,
) -> Atoms:
    """Place an H2 molecule at a random position, orientation, bond length and height."""
    top = slab.positions[:, 2].max()
    cell = slab.cell
    for _ in range(max_tries):
        frac = rng.uniform(0, 1, size=2)
        centre = frac[0] * cell[0] + frac[1] * cell[1]
        centre[2] = top + rng.uniform(*height)
        v = rng.normal(size=3)
        v /= np.linalg.norm(v)
        r = rng.uniform(*bond)
        h = Atoms("H2", positions=[centre - 0.5 * r * v, centre + 0.5 * r * v])
        atoms = slab + h
        if min_distance(atoms) >= min(min_metal_h, r) - 1e-9:
            d = atoms.get_all_distances(mic=True)[-2:, : len(slab)]
            if d.min() >= min_metal_h:
                return atoms
    raise RuntimeError("could not place H2 without overlaps")


def h2_cu111_structures(
    n: int, rng: np.random.Generator, rattle_stdev: float = 0.05, include_references: bool = True
) -> list[Atoms]:
    """H2/Cu(111) configurations plus (optionally) a clean slab and an H2 in a box.

    The references give different compositions so that per-element E0s are determined.
    """
    slab = cu111_slab()
    out: list[Atoms] = []
    if include_references:
        out.append(rattle(slab, rng, rattle_stdev))
        box = molecule("H2")
        box.set_cell([10.0, 10.0, 10.0])
        box.center()
        box.pbc = True
        out.append(box)
    while len(out) < n:
        out.append(h2_on_slab(rattle(slab, rng, rattle_stdev), rng))
    return out[:n]


def random_alloy(
    elements: tuple[str, ...], rng: np.random.Generator, size: tuple[int, int, int] = (2, 1, 1)
) -> Atoms:
    """Random fcc solid solution of ``elements`` (lattice constant: Vegard average)."""
    a = float(np.mean([bulk(e, "fcc", cubic=True).cell[0, 0] for e in elements]))
    atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat(size)
    symbols = rng.choice(elements, size=len(atoms))
    for e in elements:  # every element present at least once
        if e not in symbols:
            symbols[rng.integers(len(symbols))] = e
    atoms.set_chemical_symbols(list(symbols))
    return atoms


def molecule_in_box(name: str, box: float = 9.0) -> Atoms:
    mol = molecule(name)
    mol.set_cell([box, box, box])
    mol.center()
    mol.pbc = True
    return mol


def adsorbate_on_slab(metal: str, ads: str, rng: np.random.Generator) -> Atoms:
    slab = fcc111(metal, size=(2, 2, 3), vacuum=6.0)
    slab.pbc = True
    if ads == "H2":
        return h2_on_slab(slab, rng)
    mol = Atoms(ads) if len(ads) == 1 else molecule(ads)
    site = rng.choice(["ontop", "fcc", "hcp", "bridge"])
    add_adsorbate(slab, mol, float(rng.uniform(1.0, 2.5)), str(site))
    slab.pbc = True
    return slab


def mini_foundation_structures(n_per_group: int, rng: np.random.Generator) -> list[Atoms]:
    """Broad small cells (<= 16 atoms) over Al, Ni, Cu, Pd, Ag, Pt, Au, H, C, O.

    Bulk metals (strained, rattled), binary and ternary solid solutions, surfaces with
    adsorbates (H2 on Cu(111) among them), and molecules.
    """
    out: list[Atoms] = []
    for m in METALS:  # bulk elements
        for _ in range(n_per_group):
            cell = bulk(m, "fcc", cubic=True).repeat(rng.choice([(1, 1, 1), (2, 1, 1)]))
            out.append(rattle(strain(cell, rng, 0.06), rng, rng.uniform(0.02, 0.15)))
    pairs = list(itertools.combinations(METALS, 2))
    for _ in range(n_per_group * 4):  # binaries
        pair = pairs[rng.integers(len(pairs))]
        out.append(rattle(strain(random_alloy(pair, rng), rng, 0.04), rng, rng.uniform(0.02, 0.1)))
    triples = list(itertools.combinations(METALS, 3))
    for _ in range(n_per_group * 2):  # ternaries
        triple = triples[rng.integers(len(triples))]
        out.append(rattle(random_alloy(triple, rng), rng, rng.uniform(0.02, 0.1)))
    for m in METALS:  # clean and covered surfaces
        for _ in range(max(1, n_per_group // 3)):
            out.append(rattle(cu111_slab() if m == "Cu" else _slab(m), rng, 0.05))
        for _ in range(n_per_group):
            ads = ADSORBATES[rng.integers(len(ADSORBATES))]
            out.append(rattle(adsorbate_on_slab(m, ads, rng), rng, 0.04))
    for _ in range(n_per_group * 3):  # the demo's system, well covered at PBE level
        out.append(h2_on_slab(rattle(cu111_slab(), rng, 0.06), rng, height=(1.0, 4.0)))
    for name in MOLECULES:
        for _ in range(max(2, n_per_group // 2)):
            out.append(rattle(molecule_in_box(name), rng, rng.uniform(0.01, 0.08)))
    return [a for a in out if min_distance(a) > 0.6]


def _slab(metal: str) -> Atoms:
    slab = fcc111(metal, size=(2, 2, 3), vacuum=6.0)
    slab.pbc = True
    return slab
