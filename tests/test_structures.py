"""Structure builders and seed files."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111, molecule
from ase.io import write
from conftest import tiny_campaign

from frostline.config import ConfigError, parse_config
from frostline.seeds import campaign_structures, read_seed_file
from frostline.structures import (
    h2_cu111_structures,
    min_distance,
    mini_foundation_structures,
    neighbor_list,
)


def test_h2_cu111_structures_have_references_and_no_overlaps():
    rng = np.random.default_rng(0)
    structures = h2_cu111_structures(8, rng)
    formulas = {a.get_chemical_formula(mode="hill") for a in structures}
    assert {"Cu12", "H2", "H2Cu12"} <= formulas
    for atoms in structures:
        if "Cu" in atoms.get_chemical_symbols() and "H" in atoms.get_chemical_symbols():
            h = [i for i, s in enumerate(atoms.get_chemical_symbols()) if s == "H"]
            cu = [i for i, s in enumerate(atoms.get_chemical_symbols()) if s == "Cu"]
            d = atoms.get_all_distances(mic=True)[np.ix_(h, cu)]
            assert d.min() >= 1.1


def test_campaign_structures_deterministic():
    config = parse_config(tiny_campaign())
    a, b = campaign_structures(config), campaign_structures(config)
    assert len(a.initial) == 5 and len(a.validation) == 3
    assert all(
        np.allclose(x.positions, y.positions) for x, y in zip(a.initial, b.initial, strict=True)
    )
    assert all(len(set(s.get_chemical_symbols())) == 2 for s in a.starts)


def test_mini_foundation_data_covers_elements():
    structures = mini_foundation_structures(1, np.random.default_rng(1))
    symbols = {s for a in structures for s in a.get_chemical_symbols()}
    assert {"Al", "Ni", "Cu", "Pd", "Ag", "Pt", "Au", "H", "C", "O"} <= symbols
    assert max(len(a) for a in structures) <= 16
    assert min(min_distance(a) for a in structures) > 0.6


@pytest.mark.parametrize(
    ("atoms", "message"),
    [
        (Atoms("Cu2", positions=[[0, 0, 0], [0.2, 0, 0]], cell=[5, 5, 5], pbc=True), "closer"),
        (Atoms("Cu", positions=[[np.nan, 0, 0]], cell=[5, 5, 5], pbc=True), "non-finite"),
        (Atoms("Fe", positions=[[0, 0, 0]], cell=[5, 5, 5], pbc=True), "Fe not listed"),
        (Atoms("Cu", positions=[[0, 0, 0]], cell=[0, 0, 0], pbc=True), "zero-volume"),
    ],
)
def test_bad_seed_files_are_refused(tmp_path, atoms, message):
    path = tmp_path / "seeds.extxyz"
    write(path, atoms)
    with pytest.raises(ConfigError, match=message) as exc:
        read_seed_file(path, ["Cu", "H"])
    assert str(path) in str(exc.value)


def test_empty_and_missing_seed_files(tmp_path):
    empty = tmp_path / "empty.extxyz"
    empty.write_text("")
    with pytest.raises(ConfigError, match="empty.extxyz"):
        read_seed_file(empty, ["Cu"])
    with pytest.raises(ConfigError, match="not found"):
        read_seed_file(tmp_path / "missing.extxyz", ["Cu"])


def test_seeds_file_campaign(tmp_path):
    path = tmp_path / "seeds.extxyz"
    write(path, [bulk("Cu", "fcc", cubic=True), bulk("Cu", "fcc", a=3.7, cubic=True)])
    config = parse_config(
        tiny_campaign(elements=["Cu"], system={"builder": None, "seeds_file": str(path)})
    )
    structures = campaign_structures(config)
    assert len(structures.initial) == 5 and len(structures.starts) == 2


def _moved(atoms: Atoms, shift: list[float]) -> Atoms:
    atoms.positions += shift
    return atoms


@pytest.mark.parametrize(
    "atoms",
    [
        fcc111("Cu", (1, 1, 2), vacuum=4.0, periodic=True),  # 2 atoms, many images
        fcc111("Cu", (2, 2, 3), vacuum=5.0),  # periodic in x, y only
        bulk("Cu") * (2, 1, 1),
        molecule("H2O", vacuum=3.0),  # a box, no periodicity
        molecule("H2O"),  # no cell at all: ASE's own list
        _moved(molecule("CH3OH", cell=[2, 2, 2]), [-5, 7, 1]),  # outside a non-periodic cell
        _moved(fcc111("Cu", (2, 2, 3), vacuum=5.0), [0, 0, 30]),  # outside along z
        _moved(fcc111("Cu", (2, 2, 2), vacuum=5.0, periodic=True), [13.1, -7.7, 40]),
    ],
    ids=[
        "slab-2-atoms",
        "slab",
        "bulk",
        "molecule-in-box",
        "molecule-no-cell",
        "molecule-outside-its-cell",
        "slab-outside-its-cell",
        "periodic-unwrapped",
    ],
)
def test_neighbor_list_is_ases(atoms):
    """The compiled neighbour list gives ASE's pairs and distances, whatever the cell."""
    from ase.neighborlist import neighbor_list as ase_neighbor_list

    for cutoff in (1.0, 2.9, 5.0):
        ours = sorted(zip(*neighbor_list("ijd", atoms, cutoff), strict=True))
        ases = sorted(zip(*ase_neighbor_list("ijd", atoms, cutoff), strict=True))
        assert [(i, j) for i, j, _ in ours] == [(i, j) for i, j, _ in ases]
        assert np.allclose([d for *_, d in ours], [d for *_, d in ases])
        assert len(ours) > 0 or cutoff == 1.0
