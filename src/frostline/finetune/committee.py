"""Load a committee of MACE models from the store (checksums verified) as one ASE calculator."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import mace  # noqa: F401
import torch

from frostline.schemas import ModelDoc
from frostline.store import Records


def resolve_device(device: str = "auto") -> str:
    """``auto`` is CUDA when present, else CPU."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def fetch_model_files(records: Records, models: Sequence[ModelDoc], folder: Path) -> list[Path]:
    """Write the models' files from the blob store into ``folder`` after sha256 checks."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for m in models:
        data = records.get_model_file(m.model_id, expected_sha256=m.file.sha256)
        path = folder / f"{m.model_id}.model"
        path.write_bytes(data)
        paths.append(path)
    return paths


def committee_calculator(paths: Sequence[Path | str], device: str = "auto", dtype: str = "float64"):
    """A ``MACECalculator`` over all members (mean prediction, ``*_var`` spreads)."""
    from mace.calculators import MACECalculator

    paths = [str(p) for p in paths]
    return MACECalculator(
        model_paths=paths if len(paths) > 1 else paths[0],
        device=resolve_device(device),
        default_dtype=dtype,
    )


def load_committee(
    records: Records, models: Sequence[ModelDoc], device: str = "auto", dtype: str = "float64"
):
    """Fetch the members from the store and build the committee calculator."""
    folder = Path(tempfile.mkdtemp(prefix="frostline-committee-"))
    paths = fetch_model_files(records, models, folder)
    return committee_calculator(paths, device=device, dtype=dtype)
