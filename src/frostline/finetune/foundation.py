"""Foundation models: resolve a path or ``mace_mp`` name, and build the mini foundation.

MACE-MP weights cannot be downloaded on offline machines (DESIGN.md §5), so frostline ships a small
MACE pretrained on broad small cells labelled by CHGNet 0.3.0 (PBE level, weights inside its wheel).
"""

from __future__ import annotations

import functools
import hashlib
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import mace  # noqa: F401
import numpy as np
import torch
from ase import Atoms
from rich.progress import track

from frostline.finetune.train import MaceTrainSettings, run_mace_training

if TYPE_CHECKING:
    from frostline.select.filters import SanityLimits

MACE_MP_NAMES = (
    "small",
    "medium",
    "large",
    "medium-mpa-0",
    "medium-omat-0",
    "small-0b3",
    "medium-0b3",
    "mpa",
    "omat",
)
PACKAGE_DATA = Path(__file__).resolve().parent.parent / "data"
MINI_FOUNDATION = PACKAGE_DATA / "mini-foundation.model"
MINI_FOUNDATIONS = {
    "mini": MINI_FOUNDATION,  # 32x0e, ~750 CHGNet-PBE cells (fast: tests and demos)
    "mini-64": PACKAGE_DATA / "mini-foundation-64.model",  # 64x0e, float32, 2330 cells
}
"""Foundations shipped with frostline, by name (see README, "mini foundations")."""


class FoundationError(ValueError):
    """The foundation model cannot be found or does not cover the campaign."""


def resolve_foundation(spec: str, base_dir: Path | None = None) -> str:
    """Return an absolute path to a foundation ``.model`` file, or a ``mace_mp`` name.

    ``spec`` is a shipped mini foundation (``"mini"``, ``"mini-64"``: :data:`MINI_FOUNDATIONS`),
    a path (relative to ``base_dir``), or a ``mace_mp`` model name; names are downloaded and
    cached by mace-torch (needs network).
    """
    if spec in MINI_FOUNDATIONS:
        shipped = MINI_FOUNDATIONS[spec]
        if not shipped.exists():
            raise FoundationError(
                f"mini foundation {shipped} is missing: run `frostline foundation build-mini`"
            )
        return str(shipped)
    path = Path(spec).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if path.exists():
        return str(path.resolve())
    if spec in MACE_MP_NAMES:
        return spec
    raise FoundationError(
        f"foundation '{spec}' is neither an existing file nor a mace_mp name "
        f"({', '.join(MACE_MP_NAMES)})"
    )


def mace_mp_cached_file(name: str) -> Path | None:
    """The local file mace-torch would load for the ``mace_mp`` model ``name`` (its download
    cache, as ``mace.calculators.foundations_models.download_mace_mp_checkpoint`` finds it), or
    ``None`` when it is not there (loading it would need the network)."""
    from mace.calculators import foundations_models as fm

    if name == "medium-mpa-0" and Path(fm.local_model_path).is_file():
        return Path(fm.local_model_path)
    url = fm.mace_mp_urls.get(name)
    if url is None:
        return None
    stem = "".join(c for c in Path(url).name if c.isalnum() or c == "_")
    cached = Path(fm.get_cache_dir()) / stem
    return cached if cached.is_file() else None


def check_foundation_available(spec: str) -> None:
    """``FoundationError`` unless ``spec`` (a resolved foundation) can be loaded offline: a
    ``mace_mp`` name must be in mace-torch's download cache before any label is bought."""
    if Path(spec).exists() or spec not in MACE_MP_NAMES:
        return
    if mace_mp_cached_file(spec) is None:
        raise FoundationError(
            f"mace_mp model '{spec}' is not in mace-torch's cache (it would be downloaded at "
            "fine-tuning, after labels were bought): load it once with network access, "
            f"e.g. `python -c \"from mace.calculators import mace_mp; mace_mp('{spec}')\"`, "
            "or give a .model file"
        )


def load_foundation_model(spec: str):
    """Load a foundation as a torch module (path, or ``mace_mp`` name through mace-torch).

    A foundation file is a pickled mace-torch ``.model``: loading it is the user's trust
    decision, as with mace-torch itself (models in frostline's store are never unpickled,
    see ``frostline.finetune.safe_model``). A corrupt file is one ``FoundationError`` line.
    """
    from frostline.finetune.safe_model import ModelFormatError, load_user_model_file

    if Path(spec).exists():
        try:
            return load_user_model_file(spec, "foundation")
        except ModelFormatError as exc:
            raise FoundationError(str(exc)) from None
    from mace.calculators import mace_mp

    return mace_mp(model=spec, device="cpu", default_dtype="float64").models[0]


def foundation_elements(spec: str) -> list[str]:
    """Chemical symbols a foundation model was trained on (cached per file version)."""
    path = Path(spec)
    stamp = (path.stat().st_mtime_ns, path.stat().st_size) if path.is_file() else None
    return list(_foundation_elements(spec, stamp))


@functools.lru_cache(maxsize=8)
def _foundation_elements(spec: str, stamp: tuple | None) -> tuple[str, ...]:
    from ase.data import chemical_symbols

    model = load_foundation_model(spec)
    return tuple(chemical_symbols[int(z)] for z in model.atomic_numbers)


def foundation_architecture(spec: str) -> dict[str, float | int]:
    """A foundation's architecture as :class:`MaceTrainSettings` fields (for a like-for-like
    model trained from scratch): ``num_channels``, ``max_L``, ``r_max``, ``num_interactions``,
    ``correlation``, ``max_ell``, ``num_radial_basis``."""
    from mace.tools.scripts_utils import extract_config_mace_model

    config = extract_config_mace_model(load_foundation_model(spec))
    hidden = config["hidden_irreps"]
    return {
        "num_channels": int(hidden[0].mul),
        "max_L": int(max(ir.l for _, ir in hidden)),
        "r_max": float(config["r_max"]),
        "num_interactions": int(config["num_interactions"]),
        "correlation": int(config["correlation"]),
        "max_ell": int(config["max_ell"]),
        "num_radial_basis": int(config["num_bessel"]),
    }


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def label_with_chgnet(structures: Sequence[Atoms], model_name: str | None = None) -> list[Atoms]:
    """Label structures with CHGNet (0.3.0 PBE by default; ``"r2scan"`` for its r2SCAN model)."""
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    model = CHGNet.load(model_name=model_name) if model_name else CHGNet.load()
    calc = CHGNetCalculator(model=model, use_device="cpu")
    out = []
    for atoms in track(structures, description="CHGNet labels"):
        a = atoms.copy()
        a.calc = calc
        labelled = a.copy()
        labelled.info["REF_energy"] = float(a.get_potential_energy())
        labelled.arrays["REF_forces"] = np.asarray(a.get_forces(), dtype=float)
        labelled.info["REF_stress"] = np.asarray(a.get_stress(), dtype=float)
        out.append(labelled)
    return out


def drop_unphysical(labelled: Sequence[Atoms], limits: SanityLimits | None = None) -> list[Atoms]:
    """Labelled structures that pass the campaigns' sanity filters (printed: what was dropped).

    Random adsorbate placements sometimes put atoms 1 Å apart; their labelled forces (up to
    ~140 eV/Å here) are no physics a potential should fit, and in a squared-error loss a few
    such frames dominate the gradient. The same limits as selection's sanity filters
    (``select.filters.SanityLimits``: minimum distances, collapsed cells, ``max_force``).
    """
    from collections import Counter

    from frostline.select.filters import SanityLimits, sanity_reason

    limits = limits or SanityLimits()
    kept, dropped = [], Counter()
    for atoms in labelled:
        max_force = float(np.abs(atoms.arrays["REF_forces"]).max()) if len(atoms) else 0.0
        reason = sanity_reason(atoms, limits, max_force=max_force)
        if reason is None:
            kept.append(atoms)
        else:
            dropped[reason.split(":")[0]] += 1
    if dropped:
        summary = ", ".join(f"{n} {why}" for why, n in dropped.most_common())
        print(f"dropped {sum(dropped.values())} of {len(labelled)} labelled structures: {summary}")
    return kept


def build_mini_foundation(
    out: Path = MINI_FOUNDATION,
    n_per_group: int = 30,
    epochs: int = 40,
    seed: int = 0,
    work_dir: Path | None = None,
    settings: MaceTrainSettings | None = None,
    num_channels: int = 32,
    max_L: int = 0,
    batch_size: int = 8,
    dtype: str = "float64",
    patience: int | None = None,
) -> Path:
    """Pretrain the mini MACE foundation on CHGNet-labelled broad data (reproducible by seed).

    The CHGNet labels are cached in ``work_dir/labels-{n_per_group}-{seed}.extxyz``, so a
    rebuild with another architecture (``num_channels``, ``max_L``, ``dtype``) does not relabel.
    ``patience`` stops training after that many epochs without validation improvement (the
    written model is always the best one on validation).
    """
    from ase.io import read, write

    from frostline.structures import mini_foundation_structures

    work_dir = Path(work_dir or out.parent / f"{out.stem}-work")
    work_dir.mkdir(parents=True, exist_ok=True)
    cache = work_dir / f"labels-{n_per_group}-{seed}.extxyz"
    if cache.exists():
        labelled = read(cache, ":")
    else:
        rng = np.random.default_rng(seed)
        structures = mini_foundation_structures(n_per_group, rng)
        order = rng.permutation(len(structures))
        labelled = label_with_chgnet([structures[i] for i in order])
        for atoms in labelled:
            atoms.calc = None
        write(cache, labelled, format="extxyz")
    labelled = drop_unphysical(labelled)
    n_valid = max(10, len(labelled) // 20)
    settings = settings or MaceTrainSettings(
        name=out.stem,
        seed=seed,
        max_num_epochs=epochs,
        batch_size=batch_size,
        lr=0.01,
        e0s="average",
        num_channels=num_channels,
        max_L=max_L,
        r_max=5.0,
        num_interactions=2,
        forces_weight=10.0,
        default_dtype=dtype,
        extra={"patience": str(patience)} if patience else {},
    )
    model = run_mace_training(settings, labelled[n_valid:], work_dir, valid=labelled[:n_valid])
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(model, out)
    return out


def mace_mp_medium_sized(
    atomic_numbers: Sequence[int], dtype: torch.dtype = torch.float64
) -> torch.nn.Module:
    """A MACE with MACE-MP-0 medium's architecture and random weights (for timing only).

    128x0e+128x1o hidden irreps, 2 interactions, r_max 6 Å, correlation 3: the size users
    fine-tune, which the mini foundation is far below. Seeded, so timings are reproducible.
    """
    from e3nn import o3
    from mace import modules

    torch.manual_seed(0)
    z = list(atomic_numbers)
    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    model = modules.ScaleShiftMACE(
        r_max=6.0,
        num_bessel=10,
        num_polynomial_cutoff=5,
        max_ell=3,
        interaction_cls=block,
        interaction_cls_first=block,
        num_interactions=2,
        num_elements=len(z),
        hidden_irreps=o3.Irreps("128x0e+128x1o"),
        MLP_irreps=o3.Irreps("16x0e"),
        atomic_energies=np.zeros(len(z)),
        avg_num_neighbors=61.96,
        atomic_numbers=z,
        correlation=3,
        gate=torch.nn.functional.silu,
        radial_MLP=[64, 64, 64],
        atomic_inter_scale=0.8,
        atomic_inter_shift=0.0,
    )
    return model.to(dtype)
