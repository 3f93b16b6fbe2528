"""Load a committee of MACE models from the store (checksums verified) as one ASE calculator.

Stored models are weights plus architecture, rebuilt without unpickling
(``frostline.finetune.safe_model``); files written here are frostline's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import mace  # noqa: F401
import torch

from frostline.finetune.safe_model import model_from_blob, write_model_file
from frostline.schemas import ModelDoc
from frostline.store import Records


def resolve_device(device: str = "auto") -> str:
    """``auto`` is CUDA when present, else CPU."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_models(records: Records, models: Sequence[ModelDoc]) -> list[torch.nn.Module]:
    """The models rebuilt from their stored weights and architecture (sha256 checked first)."""
    return [
        model_from_blob(
            records.get_model_file(m.model_id, expected_sha256=m.file.sha256), m.model_id
        )
        for m in models
    ]


def fetch_model_files(records: Records, models: Sequence[ModelDoc], folder: Path) -> list[Path]:
    """Write ``.model`` files of the models, rebuilt from the store, into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        write_model_file(model, folder / f"{m.model_id}.model")
        for m, model in zip(models, load_models(records, models), strict=True)
    ]


def committee_calculator(
    paths: Sequence[Path | str | torch.nn.Module], device: str = "auto", dtype: str = "float64"
):
    """A ``MACECalculator`` over all members (mean prediction, ``*_var`` spreads).

    Members are ``.model`` files or models already loaded (``load_models``).
    """
    from mace.calculators import MACECalculator

    options = {"device": resolve_device(device), "default_dtype": dtype}
    if paths and all(isinstance(p, torch.nn.Module) for p in paths):
        return MACECalculator(models=list(paths), **options)
    paths = [str(p) for p in paths]
    return MACECalculator(model_paths=paths if len(paths) > 1 else paths[0], **options)


def load_committee(
    records: Records, models: Sequence[ModelDoc], device: str = "auto", dtype: str = "float64"
):
    """Rebuild the members from the store and build the committee calculator."""
    return committee_calculator(load_models(records, models), device=device, dtype=dtype)
