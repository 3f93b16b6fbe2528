"""The CLI as a user runs it: a campaign off a terminal, a stored model to list."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from frostline.schemas import ModelDoc, ModelFile


def run_off_a_terminal(data: dict, tmp_path: Path) -> tuple[subprocess.CompletedProcess, Path]:
    """``frostline run`` of campaign ``data`` with stdout and stderr in pipes (as in CI, logs,
    jobflow-remote workers); its result and the campaign directory."""
    config = tmp_path / f"{data['name']}.yaml"
    config.write_text(yaml.safe_dump(data))
    folder = tmp_path / "c"
    res = subprocess.run(
        [sys.executable, "-m", "frostline.cli", "run", str(config), "--dir", str(folder)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    return res, folder


def store_member(records, model_id: str, elements: list[str], campaign: str = "demo") -> None:
    data = f"model {model_id}".encode()
    sha = records.put_model_file(model_id, data)
    doc = ModelDoc(
        model_id=model_id, kind="committee-member", campaign=campaign, elements=elements,
        metrics=dict(n_structures=2, energy_mae_mev_per_atom=1.0, energy_rmse_mev_per_atom=1.0,
                     force_mae_mev_per_a=12.0, force_rmse_mev_per_a=14.0),
        file=ModelFile(filename="m.model", sha256=sha, size_bytes=len(data)),
    )  # fmt: skip
    records.upsert("model_docs", [doc.model_dump(mode="json")], ["model_id"])
