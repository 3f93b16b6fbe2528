"""Embedded store: records, model blobs with checksums, persistence across processes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from frostline.config import StoreConfig
from frostline.store import Records, StoreError, make_job_store, redact_uri


def test_model_file_roundtrip_and_checksum(job_store):
    records = Records(job_store).connect()
    sha = records.put_model_file("m1", b"model bytes")
    assert records.get_model_file("m1", expected_sha256=sha) == b"model bytes"
    with pytest.raises(StoreError, match="sha256 mismatch"):
        records.get_model_file("m1", expected_sha256="0" * 64)
    with pytest.raises(StoreError, match="no model file"):
        records.get_model_file("missing")


def test_corrupted_blob_is_detected(job_store):
    records = Records(job_store).connect()
    records.put_model_file("m1", b"abc")
    doc = records["model_files"].query_one({"model_id": "m1"})
    doc["data_b64"] = "YWJk"  # "abd"
    records["model_files"].update([doc], key="model_id")
    with pytest.raises(StoreError, match="corrupted"):
        records.get_model_file("m1")


def test_records_persist_across_processes(tmp_path):
    records = Records(make_job_store(StoreConfig(), tmp_path)).connect()
    records.upsert(
        "iterations", [{"campaign": "c", "index": 0, "n_labelled": 3}], ["campaign", "index"]
    )
    records.upsert(
        "iterations", [{"campaign": "c", "index": 0, "n_labelled": 4}], ["campaign", "index"]
    )
    records.close()
    code = (
        "from frostline.store import Records, make_job_store;"
        "from frostline.config import StoreConfig;"
        f"r = Records(make_job_store(StoreConfig(), {str(tmp_path)!r})).connect();"
        "print([d['n_labelled'] for d in r.find('iterations', {'campaign': 'c'})])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[4]"


def test_processes_open_one_embedded_store_at_the_same_time(tmp_path):
    """``frostline status`` while a campaign runs: concurrent connects must not fail.

    maggma's MontyStore rewrote montydb's storage files on every connect; a process connecting
    meanwhile read an empty engine name ("Empty module name", ~1 connect in 5 here).
    """
    Records(make_job_store(StoreConfig(), tmp_path)).connect().close()
    code = (
        "from frostline.store import Records, StoreError, make_job_store;"
        "from frostline.config import StoreConfig;"
        "failed = []\n"
        "for _ in range(60):\n"
        f"    try: Records(make_job_store(StoreConfig(), {str(tmp_path)!r})).connect().close()\n"
        "    except StoreError as e: failed.append(str(e))\n"
        "print(len(failed), failed[:1])"
    )
    runs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)]
    runs.append(subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True))
    outputs = [run.communicate(timeout=600)[0].strip() for run in runs]
    assert all(run.returncode == 0 for run in runs)
    assert outputs == ["0 []", "0 []"]


def test_mongodb_without_uri_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("FROSTLINE_MONGODB_URI", raising=False)
    with pytest.raises(StoreError, match="FROSTLINE_MONGODB_URI"):
        make_job_store(StoreConfig(kind="mongodb"), tmp_path)


def test_redact_uri():
    assert redact_uri("mongodb://user:secret@host:27017/db") == "mongodb://***@host:27017/db"


def test_mongodb_outputs_collection_is_indexed(mongodb_store_config):
    """Reference resolution, job-name and resume lookups use indexes on MongoDB."""
    from frostline.reliability.memo import MEMO_FIELD
    from frostline.store import OUTPUT_INDEXES

    assert f"metadata.{MEMO_FIELD}" in OUTPUT_INDEXES
    records = Records(make_job_store(mongodb_store_config)).connect()
    try:
        info = records.job_store.docs_store._collection.index_information()
        indexed = {field for spec in info.values() for field, _ in spec["key"]}
        assert set(OUTPUT_INDEXES) <= indexed
        labelled = records.job_store.additional_stores["labelled"]._collection
        assert "structure_hash" in {
            f for s in labelled.index_information().values() for f, _ in s["key"]
        }
    finally:
        records.close()
