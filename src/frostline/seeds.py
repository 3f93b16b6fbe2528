"""Seed, initial and validation structures of a campaign (built-in builders or a file)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read

from frostline.config import CampaignConfig, ConfigError
from frostline.structures import h2_cu111_structures, min_distance, rattle


@dataclass
class CampaignStructures:
    """Structures a campaign starts from."""

    initial: list[Atoms]  # labelled before the first fine-tune
    validation: list[Atoms]  # held out, labelled once
    starts: list[Atoms]  # MD starting points


def read_seed_file(path: Path, elements: list[str]) -> list[Atoms]:
    """Read seeds with ASE and check them; errors name the file and the structure."""
    from frostline.reliability.inputs import check_atoms, check_structure_file

    check_structure_file(path, "system.seeds_file")
    try:
        frames = read(path, index=":")
    except FileNotFoundError:
        raise ConfigError(f"{path}: seeds file not found (field 'system.seeds_file')") from None
    except Exception as exc:  # ASE raises many types for unreadable files
        raise ConfigError(f"{path}: cannot read seed structures: {exc}") from None
    if not frames:
        raise ConfigError(f"{path}: no structures in seeds file")
    for i, atoms in enumerate(frames):
        check_atoms(atoms, path, i, elements)
        if atoms.pbc.any() and abs(atoms.cell.volume) < 1e-6:
            raise ConfigError(f"{path}: structure {i} is periodic with a zero-volume cell")
        if min_distance(atoms) < 0.5:
            raise ConfigError(f"{path}: structure {i} has atoms closer than 0.5 Å")
    return frames


def campaign_structures(config: CampaignConfig) -> CampaignStructures:
    """Build the initial, validation and starting structures (deterministic in ``config.seed``)."""
    system = config.system
    rng = np.random.default_rng(config.seed)
    val_rng = np.random.default_rng(config.seed + 10_000)
    # without builder and seeds file, the imported labelled structures are the seeds
    seeds_path = system.seeds_file or (system.labelled_file if system.builder is None else None)
    if seeds_path is not None:
        seeds = read_seed_file(Path(seeds_path), config.elements)
        initial = list(seeds[: system.n_initial])
        while len(initial) < system.n_initial:
            initial.append(rattle(seeds[rng.integers(len(seeds))], rng, system.rattle))
        validation = [
            rattle(seeds[val_rng.integers(len(seeds))], val_rng, 2 * system.rattle)
            for _ in range(system.n_validation)
        ]
        return CampaignStructures(initial, validation, list(seeds))
    if system.builder == "h2_cu111":
        if set(config.elements) != {"Cu", "H"}:
            raise ConfigError("field 'elements': builder h2_cu111 needs elements [Cu, H]")
        initial = h2_cu111_structures(system.n_initial, rng, rattle_stdev=system.rattle)
        validation = h2_cu111_structures(
            system.n_validation, val_rng, rattle_stdev=2 * system.rattle, include_references=False
        )
        starts = [a for a in initial if len(set(a.get_chemical_symbols())) > 1]
        return CampaignStructures(initial, validation, starts)
    raise ConfigError(f"field 'system.builder': unknown builder {system.builder}")
