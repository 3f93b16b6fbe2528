"""A populated model registry on either store kind, and the CLI invoked in-process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from ase import Atoms
from conftest import tiny_campaign, tiny_model_blob
from typer.testing import CliRunner

from frostline.cli import app
from frostline.config import StoreConfig
from frostline.flows.campaign import CONFIG_COPY
from frostline.schemas import (
    CampaignDoc,
    IterationDoc,
    LabelledStructure,
    ModelDoc,
    ModelFile,
    Provenance,
    ValidationMetrics,
    as_structure_dict,
    structure_hash,
)
from frostline.store import Records, make_job_store

PASSWORD = "s3cr3t-Pa55"

# model id -> (kind, campaign, elements, force MAE meV/Å or None)
MODELS = {
    "alpha-it000-m0": ("committee-member", "alpha", ["Cu", "H"], 40.0),
    "alpha-it001-m0": ("committee-member", "alpha", ["Cu", "H"], 25.0),
    "alpha-final": ("mace-finetuned", "alpha", ["Cu", "H"], 20.0),
    "beta-it000-m0": ("committee-member", "beta", ["Cu", "H", "O"], 30.0),
    "beta-final": ("mace-finetuned", "beta", ["Cu", "H", "O"], 15.0),
    "gamma-m0": ("committee-member", "gamma", ["Cu"], 50.0),
    "pt-foundation": ("mace-foundation", None, ["H", "Pt"], None),
}


def model_bytes(model_id: str) -> bytes:
    """The exported models hold real (tiny) weights; the others stand-in bytes."""
    return tiny_model_blob() if model_id.endswith("final") else f"MACE {model_id} ".encode() * 50


def model_doc(model_id: str, sha: str, size: int) -> ModelDoc:
    kind, campaign, elements, mae = MODELS[model_id]
    metrics = None
    if mae is not None:
        metrics = ValidationMetrics(
            n_structures=3,
            energy_mae_mev_per_atom=mae / 10,
            energy_rmse_mev_per_atom=mae / 8,
            force_mae_mev_per_a=mae,
            force_rmse_mev_per_a=mae * 1.3,
            force_mae_by_element={el: mae * (2.0 if el == "H" else 0.9) for el in elements},
        )
    return ModelDoc(
        model_id=model_id,
        kind=kind,
        campaign=campaign,
        iteration=int(model_id.split("-it")[1][:3]) if "-it" in model_id else 0,
        member=0,
        elements=elements,
        foundation="mini-foundation.model",
        freeze_level=6,
        trainable_parameters=1000,
        total_parameters=50000,
        n_train=2,
        training_set_hashes=["a" * 32, "b" * 32],
        metrics=metrics,
        file=ModelFile(filename="member0.model", sha256=sha, size_bytes=size),
    )


def labelled(
    i: int, campaign: str, role: str = "train", status: str = "ok", oracle: str = "emt"
) -> LabelledStructure:
    rng = np.random.default_rng(i)
    atoms = Atoms("Cu2H", positions=rng.uniform(0, 5, (3, 3)), cell=[6.0, 6.0, 6.0], pbc=True)
    structure = as_structure_dict(atoms)
    ok = status == "ok"
    return LabelledStructure(
        structure=structure,
        energy=-3.0 - 0.1 * i if ok else None,
        forces=rng.normal(size=(3, 3)).round(6).tolist() if ok else None,
        stress=rng.normal(size=6).round(6).tolist() if ok else None,
        oracle=oracle,
        oracle_settings_hash="0123456789abcdef",
        structure_hash=structure_hash(structure),
        provenance=Provenance(iteration=i % 2, sampler="langevin", temperature=300.0),
        role=role,
        status=status,
        reason=None if ok else "oracle job failed",
        campaign=campaign,
    )


LABELS = [
    # (seed, campaign, role, status)
    (0, "alpha", "train", "ok"),
    (1, "alpha", "train", "ok"),
    (2, "alpha", "train", "ok"),
    (3, "alpha", "train", "failed"),
    (4, "alpha", "validation", "ok"),
    (5, "beta", "train", "ok"),
    (0, "beta", "train", "ok"),  # a label of alpha's reused by beta
]


def populate(records: Records) -> None:
    """Models + files, labelled structures, two campaigns with iterations."""
    for model_id in MODELS:
        data = model_bytes(model_id)
        sha = records.put_model_file(model_id, data)
        doc = model_doc(model_id, sha, len(data))
        records.upsert("model_docs", [doc.model_dump(mode="json")], ["model_id"])
    records.upsert(
        "labelled",
        [labelled(i, c, r, s).model_dump(mode="json") for i, c, r, s in LABELS],
        ["campaign", "structure_hash", "oracle_settings_hash", "role"],
    )
    for name, state, maes in (("alpha", "stopped", [40.0, 20.0]), ("beta", "running", [30.0])):
        campaign = CampaignDoc(
            campaign=name, config={}, foundation="mini", oracle="emt", elements=["Cu", "H"]
        )
        doc = campaign.model_dump(mode="json") | {"state": state}
        if state == "stopped":
            doc["stop_reason"] = "max iterations"
        records.upsert("campaigns", [doc], ["campaign"])
        for index, mae in enumerate(maes):
            it = IterationDoc(
                campaign=name,
                index=index,
                n_labelled=3,
                n_selected=1,
                n_new_labels=1,
                n_candidates=4,
                n_accurate=1,
                n_uncertain=3,
                n_failed_frames=0,
                accurate_fraction=0.25,
                force_mae_mev_per_a=mae,
            )
            records.upsert("iterations", [it.model_dump(mode="json")], ["campaign", "index"])


@dataclass
class Backend:
    kind: str
    records: Records
    args: list[str]  # CLI store selection
    uri: str | None


def make_backend(kind: str, tmp_path: Path, mongodb_config: StoreConfig | None) -> Backend:
    if kind == "embedded":
        folder = tmp_path / "campaign"
        folder.mkdir()
        (folder / CONFIG_COPY).write_text(yaml.safe_dump(tiny_campaign()))
        records = Records(make_job_store(StoreConfig(), folder)).connect()
        return Backend(kind, records, ["--dir", str(folder)], None)
    assert mongodb_config is not None
    records = Records(make_job_store(mongodb_config)).connect()
    args = ["--store", mongodb_config.uri, "--database", mongodb_config.database]
    return Backend(kind, records, args, mongodb_config.uri)


def ids(docs: list[dict]) -> list[str]:
    return [d["model_id"] for d in docs]


def invoke(args: list[str], **env):
    return CliRunner().invoke(app, args, env={"COLUMNS": "200", **env})
