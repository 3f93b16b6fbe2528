"""Model registry, data export and campaign listing, on the embedded store and on MongoDB.

Every registry operation runs against both backends: the embedded montydb store of a campaign
directory and a real MongoDB wire-protocol server (SecantusDB). Stores are filled by writing
documents through ``Records`` (no campaign is run).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from ase.io import read
from conftest import exported_weights_match, tiny_model_blob
from helpers.registry import (
    MODELS,
    PASSWORD,
    Backend,
    ids,
    invoke,
    labelled,
    make_backend,
    model_bytes,
    model_doc,
    populate,
)

from frostline.registry.campaigns import list_campaigns
from frostline.registry.data import export_labelled
from frostline.registry.models import export_model, get_model, list_models, parse_elements
from frostline.registry.queries import iteration_committees
from frostline.registry.stores import open_store
from frostline.store import Records, StoreError


@pytest.fixture(params=["embedded", "mongodb"])
def backend(request, tmp_path) -> Backend:
    """A populated store of either kind, with the CLI arguments that select it."""
    config = request.getfixturevalue("mongodb_store_config") if request.param == "mongodb" else None
    b = make_backend(request.param, tmp_path, config)
    populate(b.records)
    yield b
    b.records.close()


# -- Python API --------------------------------------------------------------------------------
def test_exact_vs_subset_elements(backend):
    r = backend.records
    assert ids(list_models(r, elements=["Cu", "H"])) == [
        "alpha-final",
        "alpha-it001-m0",
        "alpha-it000-m0",
    ]
    assert ids(list_models(r, elements="H,cu", elements_mode="subset")) == [
        "beta-final",
        "alpha-final",
        "alpha-it001-m0",
        "beta-it000-m0",
        "alpha-it000-m0",
    ]
    assert ids(list_models(r, elements=["Cu"])) == ["gamma-m0"]
    # models without metrics come last
    assert ids(list_models(r, elements=["H"], elements_mode="subset"))[-1] == "pt-foundation"
    assert ids(list_models(r, elements=["Au"], elements_mode="subset")) == []


def test_kind_campaign_mae_filters_and_limit(backend):
    r = backend.records
    everything = list_models(r)
    assert len(everything) == len(MODELS)
    maes = [(d.get("metrics") or {}).get("force_mae_mev_per_a") for d in everything]
    assert maes[:-1] == sorted(maes[:-1]) and maes[-1] is None
    assert "training_set_hashes" not in everything[0] and "_id" not in everything[0]
    assert ids(list_models(r, kind="mace-finetuned")) == ["beta-final", "alpha-final"]
    assert ids(list_models(r, campaign="beta")) == ["beta-final", "beta-it000-m0"]
    assert ids(list_models(r, max_force_mae=25)) == ["beta-final", "alpha-final", "alpha-it001-m0"]
    assert ids(list_models(r, elements=["Cu", "H"], max_force_mae=22.5)) == ["alpha-final"]
    assert ids(list_models(r, kind="committee-member", campaign="alpha", max_force_mae=30)) == [
        "alpha-it001-m0"
    ]
    assert ids(list_models(r, limit=2)) == ["beta-final", "alpha-final"]
    assert len(list_models(r, limit=0)) == len(MODELS)
    assert list_models(r, campaign="nope") == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"elements": "Cu,Xx"}, "unknown element"),
        ({"elements": ""}, "no elements"),
        ({"elements": "Cu", "elements_mode": "some"}, "exact or subset"),
        ({"kind": "mace"}, "unknown model kind"),
        ({"max_force_mae": -1.0}, ">= 0"),
        ({"max_force_mae": float("nan")}, ">= 0"),
        ({"limit": -3}, "limit"),
    ],
)
def test_malformed_filters(job_store, kwargs, message):
    records = Records(job_store).connect()
    with pytest.raises(ValueError, match=message):
        list_models(records, **kwargs)


def test_parse_elements():
    assert parse_elements(" h, CU ,Cu,") == ["Cu", "H"]
    with pytest.raises(ValueError, match="Xx, Q"):
        parse_elements("Cu,Xx,Q")


def test_get_model(backend):
    doc = get_model(backend.records, "beta-final")
    assert doc["elements"] == ["Cu", "H", "O"]
    assert doc["training_set_hashes"] == ["a" * 32, "b" * 32]
    assert doc["metrics"]["force_mae_mev_per_a"] == 15.0
    with pytest.raises(StoreError, match="no model with id 'nope'"):
        get_model(backend.records, "nope")


def test_export_model_verifies_checksum(backend, tmp_path):
    out = tmp_path / "out.model"
    assert export_model(backend.records, "alpha-final", out) == out
    assert exported_weights_match(out, model_bytes("alpha-final"))
    with pytest.raises(StoreError, match="exists: not overwritten"):
        export_model(backend.records, "beta-final", out)
    assert exported_weights_match(out, model_bytes("alpha-final"))  # kept
    folder = tmp_path / "models"
    folder.mkdir()
    assert export_model(backend.records, "beta-final", folder) == folder / "beta-final.model"
    # corrupt the stored blob: the export fails and writes nothing
    blobs = backend.records["model_files"]
    doc = blobs.query_one({"model_id": "alpha-final"})
    doc["data_b64"] = doc["data_b64"][:-8] + "AAAAAAA="
    blobs.update([{k: v for k, v in doc.items() if k != "_id"}], key="model_id")
    bad = tmp_path / "bad.model"
    with pytest.raises(StoreError, match="corrupted"):
        export_model(backend.records, "alpha-final", bad)
    assert not bad.exists()
    assert not list(tmp_path.glob(".bad.model*"))  # no temporary file left either
    with pytest.raises(StoreError, match="no model"):
        export_model(backend.records, "nope", tmp_path / "x.model")


def test_export_model_record_mismatch(backend, tmp_path):
    """A model document whose recorded sha256 differs from the stored file's."""
    doc = get_model(backend.records, "gamma-m0")
    doc["file"]["sha256"] = "0" * 64
    backend.records.upsert("model_docs", [doc], ["model_id"])
    with pytest.raises(StoreError, match="sha256 mismatch"):
        export_model(backend.records, "gamma-m0", tmp_path / "g.model")
    assert not (tmp_path / "g.model").exists()


def test_export_labelled_roundtrip(backend, tmp_path):
    path = tmp_path / "alpha.extxyz"
    assert export_labelled(backend.records, path, campaign="alpha") == 3  # failed one left out
    frames = read(path, ":")
    expected = [labelled(i, "alpha") for i in (0, 1, 2)]
    assert len(frames) == 3
    for atoms, lab in zip(frames, expected, strict=True):
        assert atoms.get_chemical_symbols() == ["Cu", "Cu", "H"]
        np.testing.assert_allclose(atoms.positions, lab.to_calc_atoms().positions, atol=1e-6)
        assert atoms.get_potential_energy() == pytest.approx(lab.energy)
        np.testing.assert_allclose(atoms.get_forces(), lab.forces, atol=1e-8)
        np.testing.assert_allclose(atoms.get_stress(), lab.stress, atol=1e-8)
        assert atoms.info["oracle"] == "emt"
        assert atoms.info["structure_hash"] == lab.structure_hash
        assert atoms.info["provenance_sampler"] == "langevin"
        assert atoms.info["config_type"] == "langevin"
        assert atoms.info["campaign"] == "alpha" and atoms.info["role"] == "train"
    before = path.read_bytes()
    with pytest.raises(StoreError, match="exists: not overwritten"):  # without force: kept
        export_labelled(backend.records, path, campaign="alpha", role="validation")
    assert path.read_bytes() == before
    assert export_labelled(backend.records, path, "alpha", role="validation", force=True) == 1
    assert export_labelled(backend.records, path, "alpha", role="all", force=True) == 4
    # all campaigns: the label beta reused from alpha is written once
    assert export_labelled(backend.records, path, force=True) == 4
    with pytest.raises(StoreError, match="no successfully labelled"):
        export_labelled(backend.records, tmp_path / "none.extxyz", campaign="nope")
    assert not (tmp_path / "none.extxyz").exists()
    with pytest.raises(ValueError, match="role"):
        export_labelled(backend.records, path, role="test")


def test_list_campaigns(backend):
    rows = {r["campaign"]: r for r in list_campaigns(backend.records)}
    assert list(rows) == ["alpha", "beta"]
    alpha = rows["alpha"]
    assert alpha["state"] == "stopped" and alpha["stop_reason"] == "max iterations"
    assert alpha["n_iterations"] == 2
    assert alpha["n_train_labels"] == 3 and alpha["n_validation"] == 1
    assert alpha["n_failed_labels"] == 1 and alpha["n_models"] == 3
    assert alpha["final_force_mae_mev_per_a"] == 20.0
    assert rows["beta"]["n_train_labels"] == 2 and rows["beta"]["final_force_mae_mev_per_a"] == 30


def test_iteration_committees(backend):
    r = backend.records
    template = model_doc("alpha-it001-m0", "0" * 64, 1)
    extra = [  # member 2 stored before member 1; a committee of an iteration with no document
        template.model_copy(update={"model_id": "alpha-it001-m2", "member": 2}),
        template.model_copy(update={"model_id": "alpha-it001-m1", "member": 1}),
        template.model_copy(update={"model_id": "alpha-it005-m0", "iteration": 5}),
    ]
    r.upsert("model_docs", [d.model_dump(mode="json") for d in extra], ["model_id"])
    got = [
        (it["index"], it["n_labelled"], [m.model_id for m in ms])
        for it, ms in iteration_committees(r, "alpha")
    ]
    # the final model (kind mace-finetuned) is not a committee member; iteration 5 has no doc
    assert got == [
        (0, 3, ["alpha-it000-m0"]),
        (1, 3, ["alpha-it001-m0", "alpha-it001-m1", "alpha-it001-m2"]),
    ]
    assert [m.member for _, ms in iteration_committees(r, "beta") for m in ms] == [0]
    with pytest.raises(StoreError, match="several campaigns"):
        iteration_committees(r)
    with pytest.raises(StoreError, match="no campaign named gamma"):
        iteration_committees(r, "gamma")


def test_status_counts_members_still_improving_at_their_cap(backend):
    from frostline.registry.queries import campaign_status
    from frostline.report.tables import status_table, training_hints
    from frostline.schemas import TrainingOutcome

    r = backend.records
    capped = TrainingOutcome(epochs_run=40, max_epochs=40, best_epoch=39, stopped_early=False)
    stopped = TrainingOutcome(epochs_run=31, max_epochs=200, best_epoch=1, stopped_early=True)
    template = model_doc("alpha-it001-m0", "0" * 64, 1)
    members = [  # iteration 1: one member still improving at the cap, one stopped by patience
        template.model_copy(update={"training": capped}),
        template.model_copy(
            update={"model_id": "alpha-it001-m1", "member": 1, "training": stopped}
        ),
    ]
    r.upsert("model_docs", [d.model_dump(mode="json") for d in members], ["model_id"])
    status = campaign_status(r, "alpha")
    by_index = {it["index"]: it["training"] for it in status["iterations"]}
    assert by_index[0] is None  # a member stored without its training outcome claims nothing
    assert by_index[1] == {
        "members": 2,
        "max_epochs": 200,
        "epochs_run": [40, 31],
        "best_epoch": [39, 1],
        "stopped_early": 1,
        "still_improving": 1,
        "never_improved": 0,
        "retrained": 0,
        "loss_overruled_forces": 0,
    }
    from rich.console import Console

    console = Console(width=250, record=True)
    console.print(status_table(status))
    assert "1/2 (cap 200)" in console.export_text()
    (hint,) = training_hints(status)
    assert hint.startswith("1 of 2 members of the last committee") and "patience" in hint
    r.upsert(
        "model_docs",
        [members[0].model_copy(update={"training": stopped}).model_dump(mode="json")],
        ["model_id"],
    )
    assert training_hints(campaign_status(r, "alpha")) == []
    # a member that kept its first epoch of several failed to train: said so
    failed = TrainingOutcome(epochs_run=40, max_epochs=40, best_epoch=0, stopped_early=False)
    r.upsert(
        "model_docs",
        [members[1].model_copy(update={"training": failed}).model_dump(mode="json")],
        ["model_id"],
    )
    status = campaign_status(r, "alpha")
    assert status["iterations"][1]["training"]["never_improved"] == 1
    (hint,) = training_hints(status)
    assert "kept their first epoch" in hint and "finetune.retrain_failed" in hint
    # a member whose loss kept an epoch with far worse forces than its best: said so
    overruled = TrainingOutcome(
        epochs_run=40, max_epochs=200, best_epoch=3, stopped_early=True,
        kept_force_mae=208.0, lowest_force_mae=142.0,
    )  # fmt: skip
    r.upsert(
        "model_docs",
        [members[1].model_copy(update={"training": overruled}).model_dump(mode="json")],
        ["model_id"],
    )
    status = campaign_status(r, "alpha")
    assert status["iterations"][1]["training"]["loss_overruled_forces"] == 1
    (hint,) = training_hints(status)
    assert "1 of 2 members" in hint and "finetune.loss: l1l2" in hint


# -- CLI ---------------------------------------------------------------------------------------
def test_cli_models_list_json_and_table(backend):
    res = invoke(["models", "list", *backend.args, "--elements", "Cu,H", "--json"])
    assert res.exit_code == 0, res.output
    assert ids(json.loads(res.stdout)) == ["alpha-final", "alpha-it001-m0", "alpha-it000-m0"]
    res = invoke(
        ["models", "list", *backend.args, "--elements", "H,Cu", "--elements-mode", "subset"]
        + ["--kind", "mace-finetuned", "--max-force-mae", "18", "--json"]
    )
    assert res.exit_code == 0, res.output
    assert ids(json.loads(res.stdout)) == ["beta-final"]
    res = invoke(["models", "list", *backend.args, "--campaign", "alpha", "--json"])
    assert len(json.loads(res.stdout)) == 3
    res = invoke(["models", "list", *backend.args])
    assert res.exit_code == 0, res.output
    assert "alpha-it000-m0" in res.stdout and "pt-foundation" in res.stdout
    assert "7 model(s)" in res.stdout


def test_cli_show_export_data_campaigns(backend, tmp_path):
    res = invoke(["models", "show", "beta-final", *backend.args, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["kind"] == "mace-finetuned"
    res = invoke(["models", "show", "beta-final", *backend.args])
    assert res.exit_code == 0 and "metrics.force_mae_mev_per_a" in res.stdout
    assert "metrics.force_mae_by_element" in res.stdout
    assert "Cu 13.50, H 30.00, O 13.50" in res.stdout
    out = tmp_path / "m.model"
    res = invoke(["models", "export", "alpha-final", *backend.args, "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert exported_weights_match(out, model_bytes("alpha-final"))
    xyz = tmp_path / "d.extxyz"
    res = invoke(["data", "export", *backend.args, "--campaign", "alpha", "-o", str(xyz)])
    assert res.exit_code == 0, res.output
    assert len(read(xyz, ":")) == 3
    res = invoke(["campaigns", "list", *backend.args, "--json"])
    assert res.exit_code == 0, res.output
    assert [r["campaign"] for r in json.loads(res.stdout)] == ["alpha", "beta"]
    res = invoke(["campaigns", "list", *backend.args])
    assert res.exit_code == 0 and "max iterations" in res.stdout


def assert_clean_failure(res, message: str) -> None:
    """Exit code 2, one line on stderr containing ``message``, no traceback, no password."""
    assert res.exit_code == 2, res.output
    assert message in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert PASSWORD not in res.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["models", "show", "no-such-model"], "no model with id 'no-such-model'"),
        (["models", "export", "no-such-model", "-o", "x.model"], "no model with id"),
        (["models", "list", "--elements", "Cu,Xx"], "unknown element(s): Xx"),
        (["models", "list", "--max-force-mae", "-1"], "must be a number >= 0"),
        (["models", "list", "--max-force-mae", "abc"], "not a number"),
        (["models", "list", "--elements-mode", "some", "--elements", "Cu"], "exact or subset"),
        (["models", "list", "--kind", "mace"], "unknown model kind"),
        (["data", "export", "--campaign", "nope", "-o", "x.extxyz"], "no successfully labelled"),
        (["data", "export", "--role", "test", "-o", "x.extxyz"], "role must be"),
    ],
)
def test_cli_bad_input(backend, extra, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = invoke([*extra[:2], *backend.args, *extra[2:]])
    assert_clean_failure(res, message)
    assert not list(tmp_path.glob("x.*"))


def test_cli_corrupted_model_export(backend, tmp_path):
    blobs = backend.records["model_files"]
    doc = blobs.query_one({"model_id": "beta-final"})
    doc["data_b64"] = "AAAA" + doc["data_b64"][4:]
    blobs.update([{k: v for k, v in doc.items() if k != "_id"}], key="model_id")
    out = tmp_path / "b.model"
    res = invoke(["models", "export", "beta-final", *backend.args, "-o", str(out)])
    assert_clean_failure(res, "sha256 mismatch (stored file is corrupted)")
    assert not out.exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_store_selection_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("FROSTLINE_MONGODB_URI", raising=False)
    assert_clean_failure(invoke(["models", "list"]), "no store given")
    assert_clean_failure(
        invoke(["campaigns", "list", "--dir", str(tmp_path)]), "not a campaign directory"
    )
    res = invoke(["models", "list", "--dir", str(tmp_path), "--store", "mongodb://h:1/"])
    assert_clean_failure(res, "not both")
    res = invoke(["models", "list", "--store", f"postgres://u:{PASSWORD}@h/db"])
    assert_clean_failure(res, "not a MongoDB URI")


def test_cli_unreachable_mongodb_fails_fast_without_password(monkeypatch):
    monkeypatch.delenv("FROSTLINE_MONGODB_URI", raising=False)
    uri = f"mongodb://frost:{PASSWORD}@127.0.0.1:{free_port()}/"
    start = time.perf_counter()
    res = invoke(["models", "list", "--store", uri])
    assert time.perf_counter() - start < 10
    assert_clean_failure(res, "MongoDB at mongodb://***@127.0.0.1")
    assert "Connection refused" in res.stderr or "connect" in res.stderr
    # the same URI from the environment
    res = invoke(["campaigns", "list"], FROSTLINE_MONGODB_URI=uri)
    assert_clean_failure(res, "mongodb://***@127.0.0.1")


def test_cli_password_never_printed(secantus_server, monkeypatch):
    """A reachable server refusing the credentials; a URL-encoded password too."""
    monkeypatch.delenv("FROSTLINE_MONGODB_URI", raising=False)
    host = secantus_server.uri.split("//")[1]
    for uri in (f"mongodb://frost:{PASSWORD}@{host}", f"mongodb://frost:{PASSWORD}%40x@{host}"):
        res = invoke(["models", "show", "m", "--store", uri])
        assert_clean_failure(res, "error")
        assert "x@" not in res.output
        res = invoke(["models", "list", "--store", uri.replace("frost:", "frost:%")])
        assert_clean_failure(res, "error")


def test_open_store_errors_are_store_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("FROSTLINE_MONGODB_URI", raising=False)
    with pytest.raises(StoreError, match="no store given"):
        open_store()
    with pytest.raises(StoreError, match="MongoDB at mongodb://\\*\\*\\*@127.0.0.1") as info:
        open_store(uri=f"mongodb://u:{PASSWORD}@127.0.0.1:{free_port()}/", timeout_ms=300)
    assert PASSWORD not in str(info.value)


# -- across processes --------------------------------------------------------------------------
WRITER = """
import sys
from frostline.config import StoreConfig
from frostline.schemas import ModelDoc, ModelFile
from frostline.store import Records, make_job_store

uri, database, blob = sys.argv[1], sys.argv[2], open(sys.argv[3], "rb").read()
records = Records(make_job_store(StoreConfig(kind="mongodb", uri=uri, database=database))).connect()
for i, elements in enumerate([["Cu", "H"], ["Cu", "H", "O"], ["Cu", "H"]]):
    model_id = f"proc-m{i}"
    data = blob if i == 1 else f"weights {i}".encode()
    sha = records.put_model_file(model_id, data)
    doc = ModelDoc(
        model_id=model_id, kind="committee-member", campaign="proc", elements=elements,
        metrics=dict(n_structures=1, energy_mae_mev_per_atom=1.0, energy_rmse_mev_per_atom=1.0,
                     force_mae_mev_per_a=10.0 + i, force_rmse_mev_per_a=12.0),
        file=ModelFile(filename="m.model", sha256=sha, size_bytes=len(data)),
    )
    records.upsert("model_docs", [doc.model_dump(mode="json")], ["model_id"])
records.close()
print("written")
"""


def test_records_written_by_another_process(mongodb_store_config, tmp_path):
    cfg = mongodb_store_config
    blob = tmp_path / "blob"
    blob.write_bytes(tiny_model_blob())
    out = subprocess.run(
        [sys.executable, "-c", WRITER, cfg.uri, cfg.database, str(blob)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "written"
    records = open_store(uri=cfg.uri, database=cfg.database)
    try:
        assert ids(list_models(records, elements="Cu,H")) == ["proc-m0", "proc-m2"]
        assert ids(list_models(records, elements="Cu,H", elements_mode="subset")) == [
            "proc-m0",
            "proc-m1",
            "proc-m2",
        ]
        path = export_model(records, "proc-m1", tmp_path / "p.model")
        assert exported_weights_match(path, tiny_model_blob())
    finally:
        records.close()
    # the CLI, with the URI from the environment
    args = ["models", "list", "--campaign", "proc", "--database", cfg.database, "--json"]
    res = invoke(args, FROSTLINE_MONGODB_URI=cfg.uri)
    assert res.exit_code == 0, res.output
    assert ids(json.loads(res.stdout)) == ["proc-m0", "proc-m1", "proc-m2"]
