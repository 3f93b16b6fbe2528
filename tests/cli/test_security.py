"""Security: MongoDB credentials only in env/config files (never in stored documents, logs or
job inputs), model files checksum-verified before any load, safe YAML, explicit torch.load."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch
import yaml
from conftest import tiny_campaign
from typer.testing import CliRunner

from frostline.cli import app
from frostline.config import StoreConfig, parse_config
from frostline.store import BLOB_STORE, Records, StoreError

SRC = Path(__file__).resolve().parents[2] / "src" / "frostline"
USER, PASSWORD = "frostuser", "Pw-9f3k-Secret"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """A SecantusDB server that requires SCRAM authentication (user made before restart)."""
    import pymongo
    from secantus import SecantusDBServer

    storage = str(tmp_path_factory.mktemp("authdb"))
    server = SecantusDBServer(storage_path=storage, port=0)
    server.start()
    pymongo.MongoClient(server.uri).admin.command("createUser", USER, pwd=PASSWORD, roles=["root"])
    server.stop()
    server = SecantusDBServer(storage_path=storage, port=0, require_auth=True)
    server.start()
    host, port = server.address
    try:
        yield f"mongodb://{USER}:{PASSWORD}@{host}:{port}/?authSource=admin"
    finally:
        server.stop()


def _secret_in(text: str) -> bool:
    return PASSWORD in text or f"{USER}:" in text


@pytest.mark.slow
def test_credentials_never_in_documents_logs_or_job_inputs(tmp_path, foundation, auth_server):
    """A campaign on an authenticated MongoDB (URI with credentials in the config file) whose
    oracle crashes: documents, logs, fault log, job folders and job inputs are scanned."""
    import pymongo

    from frostline.flows.active_learning import ActiveLearningMaker
    from frostline.flows.campaign import without_secrets

    data = tiny_campaign(
        name="secret",
        oracle={
            "name": "ase",
            "settings": {
                "calculator": "frostline.testing.faulty_oracles.RaisingEMT",
                "element": "Cu",
            },
        },
        store={"kind": "mongodb", "uri": auth_server, "database": "sec"},
    )
    path = tmp_path / "secret.yaml"
    path.write_text(yaml.safe_dump(data))
    folder = tmp_path / "c"
    res = CliRunner().invoke(app, ["run", str(path), "--dir", str(folder)])
    assert res.exit_code == 2 and "campaign secret stopped" in res.output  # it did run
    assert not _secret_in(res.output)
    db = pymongo.MongoClient(auth_server)["sec"]
    n_docs = 0
    for name in db.list_collection_names():
        for doc in db[name].find():
            n_docs += 1
            assert not _secret_in(json.dumps(doc, default=str)), (name, doc)
    assert n_docs >= 8  # campaign, labels, job outputs were written
    campaign = db["campaigns"].find_one({"campaign": "secret"})
    assert campaign["config"]["store"]["uri"].startswith("mongodb://***@")
    for file in folder.rglob("*"):
        if file.is_file() and file.name != "campaign.yaml":
            assert not _secret_in(file.read_text(errors="replace")), file
    copy = folder / "campaign.yaml"  # the config copy is a config file: owner-only
    assert copy.stat().st_mode & 0o077 == 0
    config = parse_config(data)
    flow = ActiveLearningMaker.from_config(without_secrets(config), "mini").make(
        without_secrets(config)
    )
    assert not _secret_in(json.dumps(flow.as_dict(), default=str))  # job inputs


def test_wrong_password_is_one_line_without_the_password(tmp_path, foundation, auth_server):
    wrong = auth_server.replace(PASSWORD, "Not-The-Pw-77")
    data = tiny_campaign(name="wrong", store={"kind": "mongodb", "uri": wrong, "database": "x"})
    path = tmp_path / "wrong.yaml"
    path.write_text(yaml.safe_dump(data))
    res = CliRunner().invoke(app, ["run", str(path), "--dir", str(tmp_path / "c")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "cannot connect to the store" in res.output
    assert "Not-The-Pw-77" not in res.output and USER not in res.output


def test_corrupted_model_blob_is_refused_before_any_load(job_store, tmp_path, monkeypatch):
    from frostline.finetune.committee import load_committee
    from frostline.finetune.foundation import MINI_FOUNDATION, sha256_file
    from frostline.registry.models import export_model
    from frostline.schemas import ModelDoc, ModelFile

    records = Records(job_store).connect()
    sha = records.put_model_file("m1", MINI_FOUNDATION.read_bytes())
    assert sha == sha256_file(MINI_FOUNDATION)
    doc = ModelDoc(
        model_id="m1",
        kind="committee-member",
        elements=["Cu", "H"],
        file=ModelFile(filename="m1.model", sha256=sha, size_bytes=MINI_FOUNDATION.stat().st_size),
    )
    records.upsert("model_docs", [doc.model_dump(mode="json")], key=["model_id"])
    blob = records[BLOB_STORE].query_one({"model_id": "m1"})
    blob["data_b64"] = "AAAA" + blob["data_b64"][4:]  # flipped bytes at the file's start
    records[BLOB_STORE].update([blob], key="model_id")

    out = tmp_path / "export"
    out.mkdir()
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    with pytest.raises(StoreError, match="m1: sha256 mismatch"):
        load_committee(records, [doc], device="cpu")
    with pytest.raises(StoreError, match="sha256 mismatch"):
        export_model(records, "m1", out)
    assert loads == [] and list(out.iterdir()) == []


def test_every_torch_load_is_explicit_and_yaml_is_safe():
    """mace sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD on import and MACE .model files are pickled
    modules, which weights_only=True refuses: frostline passes weights_only explicitly, and
    files from the store are sha256-checked before (test above)."""
    import mace  # noqa: F401

    from frostline.finetune.foundation import MINI_FOUNDATION

    assert os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD") == "1"
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(MINI_FOUNDATION, weights_only=True)
    loads, unsafe = [], []
    for file in SRC.rglob("*.py"):
        text = file.read_text()
        for call in re.findall(r"torch\.load\(.*", text):
            loads.append(call)
            assert "weights_only=" in call, f"{file}: {call}"
        unsafe += re.findall(r"yaml\.(?:load|unsafe_load|full_load)\(", text)
    assert loads and not unsafe


def test_store_error_messages_drop_credentials():
    from frostline.store import make_job_store

    config = StoreConfig(kind="mongodb", uri="mongodb://bob:hunter2@127.0.0.1:1/", database="d")
    with pytest.raises(StoreError) as info:
        Records(make_job_store(config, timeout_ms=200)).connect()
    assert "hunter2" not in str(info.value) and "bob" not in str(info.value)


@pytest.mark.parametrize(
    ("oracle", "field"),
    [
        (
            {"name": "ase", "settings": {"calculator": "subprocess.getoutput"}},
            "settings.calculator",
        ),
        ({"name": "ase", "settings": {"calculator": "os.system"}}, "settings.calculator"),
        ({"name": "maker", "settings": {"maker": "subprocess.Popen"}}, "settings.maker"),
    ],
)
def test_an_oracle_naming_other_code_than_a_calculator_or_maker_is_refused(tmp_path, oracle, field):
    """A config is code: only ASE calculator and jobflow maker classes are accepted."""
    marker = tmp_path / "marker"
    key = "calculator" if oracle["name"] == "ase" else "maker"
    extra = {"cmd": f"touch {marker}"} if key == "calculator" else {"kwargs": {"args": ["touch"]}}
    oracle = {**oracle, "settings": {**oracle["settings"], **extra}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_campaign(name="evil", oracle=oracle)))
    res = CliRunner().invoke(app, ["run", str(path), "--dir", str(tmp_path / "c")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    line = " ".join(res.output.split())
    assert field in line and "is not a class deriving from" in line, res.output
    assert not marker.exists() and not (tmp_path / "c").exists()
    # the oracle maker checks again (settings that reach it without the config's validation)
    from frostline.config import OracleConfig
    from frostline.label.oracles import oracle_maker

    with pytest.raises(ValueError, match="is not a class deriving from"):
        oracle_maker(OracleConfig.model_construct(**oracle))
    assert not marker.exists()
    ok = OracleConfig(name="ase", settings={"calculator": "ase.calculators.emt.EMT"})
    assert oracle_maker(ok).calculator_kwargs == {}
