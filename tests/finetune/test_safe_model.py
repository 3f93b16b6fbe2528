"""Models in the store are weights plus architecture, loaded without unpickling (issue 41).

A pickle payload planted as a stored model (with its sha256 written everywhere the store keeps
one) runs nothing on resume (fine-tune memo reuse), committee/exploration loads or export; a
campaign stored before (pickled ``.model`` blobs) resumes after ``frostline models migrate``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import add_adsorbate, fcc111
from conftest import tiny_campaign
from helpers.labels import emt_labels
from jobflow import run_locally
from typer.testing import CliRunner

from frostline.cli import app
from frostline.config import StoreConfig, parse_config
from frostline.finetune.committee import (
    committee_calculator,
    fetch_model_files,
    load_committee,
    load_models,
)
from frostline.finetune.jobs import FineTuneMaker
from frostline.finetune.safe_model import (
    FORMAT,
    ModelFormatError,
    model_from_blob,
    model_to_blob,
    read_blob,
)
from frostline.flows.campaign import write_config_copy
from frostline.schemas import FineTuneResult
from frostline.store import Records, make_job_store


def _slab():
    atoms = fcc111("Cu", (2, 2, 2), vacuum=5.0)
    add_adsorbate(atoms, "H", 1.5)
    atoms.rattle(0.05, seed=1)
    return atoms


def _predict(calc) -> tuple[float, np.ndarray]:
    atoms = _slab()
    atoms.calc = calc
    return atoms.get_potential_energy(), atoms.get_forces()


class Payload:
    """A pickle that writes ``marker`` when unpickled (what an attacker would plant)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def payload_bytes(marker: Path) -> bytes:
    buf = io.BytesIO()
    torch.save(Payload(marker), buf)
    return buf.getvalue()


def swap_blob(store, model_id: str, data: bytes) -> None:
    """Replace a stored model's bytes and write their sha256 wherever the store keeps one
    (blob document, ``model_docs``, the memoised fine-tune outputs)."""
    records = Records(store).connect()
    sha = records.put_model_file(model_id, data)
    doc = records["model_docs"].query_one({"model_id": model_id})
    doc["file"].update(sha256=sha, size_bytes=len(data))
    records["model_docs"].update([doc], key=["model_id"])
    for out in store.docs_store.query({"output.models.model_id": model_id}):
        for m in out["output"]["models"]:
            if m["model_id"] == model_id:
                m["file"].update(sha256=sha, size_bytes=len(data))
        store.docs_store.update([out], key=["uuid", "index"])


def finetune_job(foundation: str):
    maker = FineTuneMaker(committee_size=2, epochs=1, batch_size=2, keep_foundation_elements=True)
    return maker.make(foundation, emt_labels(4, 0), emt_labels(2, 1), "safe", 0)


def run(job, store, folder: Path) -> FineTuneResult | None:
    run_locally(job, store=store, root_dir=folder, create_folders=True, log=False)
    store.connect()
    try:
        return FineTuneResult.model_validate(job.output.resolve(store))
    except Exception:  # the job failed: no output stored
        return None


@pytest.fixture(scope="module")
def trained(foundation, tmp_path_factory):
    """A fine-tuned 2-member committee in an embedded store, and the .model files trained."""
    folder = tmp_path_factory.mktemp("safe")
    write_config_copy(parse_config(tiny_campaign(name="safe")), folder)  # `--dir` opens it
    store = make_job_store(StoreConfig(), folder)
    result = run(finetune_job(foundation), store, folder / "jobs")
    files = {p.stem: p for p in (folder / "jobs").rglob("*.model") if p.stem == p.parent.name}
    originals = [files[f"member{m.member}"] for m in result.models]
    return result, store, folder, originals


def test_weights_only_is_honoured_although_mace_forces_it_off(foundation):
    assert os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD") == "1"  # set by importing mace
    with pytest.raises(ModelFormatError, match="not stored as frostline weights"):
        read_blob(Path(foundation).read_bytes(), "mini")


def test_rebuilt_models_predict_as_the_trained_files(trained):
    result, store, _, originals = trained
    records = Records(store).connect()
    blob = records.get_model_file(result.models[0].model_id)
    assert read_blob(blob)["format"] == FORMAT
    rebuilt = _predict(load_committee(records, result.models, device="cpu"))
    original = _predict(committee_calculator(originals, device="cpu"))
    assert rebuilt[0] == pytest.approx(original[0], abs=1e-10)
    assert np.abs(rebuilt[1] - original[1]).max() < 1e-10
    # the float32 mini-64 foundation round-trips as well (dtype kept)
    from frostline.finetune.foundation import MINI_FOUNDATIONS

    model = torch.load(MINI_FOUNDATIONS["mini-64"], weights_only=False)
    again = model_from_blob(model_to_blob(model))
    assert next(again.parameters()).dtype == torch.float32
    e0 = _predict(committee_calculator([model], dtype="float32"))[0]
    assert _predict(committee_calculator([again], dtype="float32"))[0] == pytest.approx(e0)


def test_an_architecture_naming_other_code_is_refused(trained):
    result, store, _, _ = trained
    blob = Records(store).connect().get_model_file(result.models[0].model_id)
    payload = torch.load(io.BytesIO(blob), weights_only=True)
    for key, bad in (("class", "os.system"), ("class", "subprocess.Popen")):
        arch = {**json.loads(payload["architecture"]), key: bad}
        forged = io.BytesIO()
        torch.save({**payload, "architecture": json.dumps(arch)}, forged)
        with pytest.raises(ModelFormatError, match="not an allowed mace class"):
            model_from_blob(forged.getvalue(), "forged")
    arch = json.loads(payload["architecture"])
    arch["config"]["gate"] = {"$function": "subprocess.getoutput"}
    forged = io.BytesIO()
    torch.save({**payload, "architecture": json.dumps(arch)}, forged)
    with pytest.raises(ModelFormatError, match="not an allowed one"):
        model_from_blob(forged.getvalue(), "forged")


def test_a_planted_pickle_runs_nowhere(trained, foundation, tmp_path):
    result, store, folder, _ = trained
    live = tmp_path / "live"
    torch.load(io.BytesIO(payload_bytes(live)), weights_only=False)
    assert live.exists()  # the payload is real: unpickled, it runs
    marker = tmp_path / "marker"
    target = result.models[0].model_id
    originals = {
        m.model_id: Records(store).connect().get_model_file(m.model_id) for m in result.models
    }
    swap_blob(store, target, payload_bytes(marker))
    try:
        records = Records(store).connect()
        docs = [
            type(m).model_validate(records.find("model_docs", {"model_id": m.model_id})[0])
            for m in result.models
        ]
        # resume: the finished committee is found by its memo, its files checked: refused
        assert run(finetune_job(foundation), store, tmp_path / "resume") is None
        for load in (
            lambda: load_committee(records, docs, device="cpu"),
            lambda: load_models(records, docs),
            lambda: fetch_model_files(records, docs, tmp_path / "fetched"),
        ):
            with pytest.raises(ModelFormatError, match=f"model {target} is not stored"):
                load()
        out = tmp_path / "export.model"
        res = CliRunner().invoke(
            app, ["models", "export", target, "-o", str(out), "--dir", str(folder)]
        )
        assert res.exit_code == 2 and "Traceback" not in res.output and not out.exists()
        assert f"model {target} is not stored as frostline weights" in res.output
        res = CliRunner().invoke(app, ["models", "migrate", "--dir", str(folder)])
        assert res.exit_code == 2 and "--trust" in res.output and target in res.output
        assert not marker.exists()
    finally:
        for model_id, data in originals.items():
            swap_blob(store, model_id, data)


def test_a_campaign_stored_before_resumes_after_migrate(trained, foundation, tmp_path):
    """Old stores hold mace-torch's pickled .model files: resume refuses them in one line
    until ``models migrate --trust`` converts them, then the finished committee is reused."""
    result, store, folder, originals = trained
    records = Records(store).connect()
    kept = {m.model_id: records.get_model_file(m.model_id) for m in result.models}
    for m, path in zip(result.models, originals, strict=True):
        swap_blob(store, m.model_id, path.read_bytes())  # what frostline stored before
    old_sha = {
        m.model_id: hashlib.sha256(p.read_bytes()).hexdigest()
        for m, p in zip(result.models, originals, strict=True)
    }
    try:
        assert run(finetune_job(foundation), store, tmp_path / "before") is None
        res = CliRunner().invoke(app, ["models", "migrate", "--trust", "--dir", str(folder)])
        assert res.exit_code == 0, res.output
        assert "migrated 2 model(s)" in res.output
        resumed = run(finetune_job(foundation), store, tmp_path / "after")
        assert resumed is not None
        assert [m.file.sha256 for m in resumed.models] == [
            old_sha[m.model_id] for m in result.models
        ]
        assert not list((tmp_path / "after").rglob("member*.model"))  # nothing retrained
        e, f = _predict(load_committee(records, resumed.models, device="cpu"))
        e0, f0 = _predict(committee_calculator(originals, device="cpu"))
        assert e == pytest.approx(e0, abs=1e-10) and np.abs(f - f0).max() < 1e-10
        res = CliRunner().invoke(app, ["models", "migrate", "--dir", str(folder)])
        assert res.exit_code == 0 and "nothing to migrate" in res.output
    finally:
        for model_id, data in kept.items():
            swap_blob(store, model_id, data)
