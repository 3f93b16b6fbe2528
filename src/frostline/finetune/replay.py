"""The mini foundations' own pretraining data: a replay set for multihead fine-tuning and a
held-out slice of their domain for the forgetting check.

Both are shipped with the package (``frostline/data/replay/``). The replay sets are subsets of
the structures each mini foundation was pretrained on: ``build_mini_foundation`` draws them
from ``mini_foundation_structures(n_per_group, rng(seed))`` and permutes them with the same
generator, so the same draw, relabelled by the same CHGNet 0.3.0 model, gives the same
structures and labels. The replay subset is taken from the end of the permuted list (the
validation split is its beginning). The held-out slice is a fresh draw of the same generator
(another seed): the same elements and structure types, none of them seen in pretraining.

Rebuild with ``python -m frostline.finetune.replay`` (CHGNet, ~5 min on 2 cores).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from frostline.choices import MACE_REPLAY_NAMES
from frostline.finetune.foundation import MINI_FOUNDATIONS, PACKAGE_DATA

REPLAY_DIR = PACKAGE_DATA / "replay"
HELDOUT_FILE = REPLAY_DIR / "foundation-domain-heldout.extxyz.gz"
"""Fresh CHGNet-PBE-labelled cells of the mini foundations' domain (none pretrained on)."""


@dataclass(frozen=True)
class Pretraining:
    """How a shipped mini foundation drew its pretraining structures (``build-mini`` flags)."""

    n_per_group: int
    seed: int = 0


PRETRAINING = {"mini": Pretraining(25), "mini-64": Pretraining(80)}
"""The ``build-mini`` draw of each shipped foundation (docs/user/foundations.md)."""


def replay_path(name: str) -> Path:
    """The shipped replay file of the mini foundation ``name``."""
    return REPLAY_DIR / f"{name}-replay.extxyz.gz"


def shipped_foundation_name(spec: str) -> str | None:
    """The name of the shipped mini foundation a resolved foundation path is, else ``None``.

    A float64 copy made for training (``foundation-float64.model``) is not recognised: pass
    the path the user gave (``FineTuneMaker`` resolves the replay set before converting).
    """
    for name, path in MINI_FOUNDATIONS.items():
        if Path(spec).resolve() == path.resolve():
            return name
    return None


def replay_file_for(spec: str) -> Path | None:
    """The replay set for a foundation: the shipped subset of a mini foundation's pretraining
    data, ``None`` for any other foundation (a user's file needs ``finetune.replay_file``)."""
    name = shipped_foundation_name(spec)
    if name is None:
        return None
    path = replay_path(name)
    return path if path.is_file() else None


def replay_source(replay_file: str | Path | None, foundation: str) -> str:
    """The replay set of a multihead-replay fine-tune: ``replay_file`` (``finetune.replay_file``)
    when given, the shipped subset of a mini foundation's pretraining data, or mace-torch's own
    Materials Project replay for a ``mace_mp`` name; a ``ValueError`` naming the field else."""
    if replay_file is not None:
        if not Path(replay_file).is_file():
            raise ValueError(f"finetune.replay_file: {replay_file} does not exist")
        return str(replay_file)
    if (shipped := replay_file_for(foundation)) is not None:
        return str(shipped)
    if not Path(foundation).exists():
        return MACE_REPLAY_NAMES[0]  # a mace_mp name: mace-torch's "mp" replay data
    raise ValueError(
        f"finetune.replay_file: foundation {Path(foundation).name} has no shipped replay "
        "set; give an extxyz of its pretraining data (REF_energy, REF_forces)"
    )


def pretraining_structures(name: str) -> list[Atoms]:
    """The unlabelled pretraining structures of ``name`` in ``build_mini_foundation``'s order."""
    from frostline.structures import mini_foundation_structures

    draw = PRETRAINING[name]
    rng = np.random.default_rng(draw.seed)
    structures = mini_foundation_structures(draw.n_per_group, rng)
    order = rng.permutation(len(structures))
    return [structures[i] for i in order]


def build_replay_set(name: str, n: int = 300) -> Path:
    """Label the last ``n`` pretraining structures of ``name`` with CHGNet and ship them."""
    return _label_and_write(pretraining_structures(name)[-n:], replay_path(name))


def build_heldout_set(n_per_group: int = 12, seed: int = 1000) -> Path:
    """Label a fresh draw of the mini foundations' generator (the held-out slice)."""
    from frostline.structures import mini_foundation_structures

    structures = mini_foundation_structures(n_per_group, np.random.default_rng(seed))
    return _label_and_write(structures, HELDOUT_FILE)


def _label_and_write(structures: list[Atoms], out: Path) -> Path:
    """CHGNet-PBE labels (as the pretraining's), minus unphysical frames, written to ``out``."""
    from ase.io import write

    from frostline.finetune.foundation import drop_unphysical, label_with_chgnet

    labelled = drop_unphysical(label_with_chgnet(structures))
    for atoms in labelled:
        atoms.calc = None
    out.parent.mkdir(parents=True, exist_ok=True)
    write(out, labelled, format="extxyz")
    return out


def read_heldout() -> list[Atoms]:
    """The shipped held-out slice of the foundation domain (``REF_`` labels)."""
    from ase.io import read

    return read(HELDOUT_FILE, ":")


if __name__ == "__main__":
    for foundation in PRETRAINING:
        print(build_replay_set(foundation))
    print(build_heldout_set())
