"""kill -9 of ``frostline run`` at random points, then resume: nothing lost, nothing bought
twice, store consistent; a concurrent run refused; a corrupted model file stops a resumed run
without changing anything stored.

The test kills ``KILLS`` times (seeded delays) to stay within a few minutes on two cores;
``workflows/benchmarks/chaos.py --kills 20`` runs the same harness with more kills.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from frostline.cli import app
from frostline.reliability.locking import LOCK_NAME
from frostline.store import BLOB_STORE
from frostline.testing.chaos import (
    ORACLE_WINDOW,
    audit,
    chaos_campaign,
    kill_and_resume,
    kill_at,
    write_config,
)

pytestmark = pytest.mark.slow  # the whole module (see pyproject.toml, tool.pytest)

KILLS = 4
SEED = 20261124
CAMPAIGN = "chaos"


@pytest.fixture(scope="module")
def chaos(tmp_path_factory, foundation):
    base = tmp_path_factory.mktemp("chaos")
    counter = base / "oracle_calls.txt"
    config = write_config(chaos_campaign(CAMPAIGN, counter), base / "chaos.yaml")
    folder = base / "campaign"
    concurrent: dict = {}

    def second_run(proc) -> None:  # while a run holds the directory, start another one
        if concurrent:
            return
        lock, deadline = folder / LOCK_NAME, time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if lock.exists() and f'"pid": {proc.pid}' in lock.read_text():
                res = CliRunner().invoke(app, ["run", str(config), "--dir", str(folder)])
                concurrent.update(code=res.exit_code, output=res.output)
                return
            time.sleep(0.1)

    # aimed: between an oracle output stored and its label recorded, after a finished fine-tune
    aimed = kill_at(config, folder, [ORACLE_WINDOW, ORACLE_WINDOW, "Finished job - finetune 0"])
    run = kill_and_resume(
        config,
        folder,
        kills=KILLS,
        seed=SEED,
        delay_s=(0.0, 5.0),
        job_range=(1, 20),
        on_run=second_run,
    )
    return {
        "run": run,
        "aimed": aimed,
        "folder": folder,
        "config": config,
        "counter": counter,
        **concurrent,
    }


def test_campaign_completes_after_every_kill(chaos):
    run = chaos["run"]
    assert run.final_returncode == 0, run.final_output[-3000:]
    assert "done" in run.final_output and "Traceback" not in run.final_output
    assert len(run.kills) + run.finished_early >= KILLS
    assert all(k.returncode == -9 for k in run.kills)
    print("kills:", [(round(k.delay_s, 1), k.stage) for k in run.kills])


def test_no_label_lost_or_bought_twice_and_store_consistent(chaos):
    result = audit(chaos["folder"], CAMPAIGN, chaos["counter"])
    assert result.problems == []
    assert result.labels_lost == 0 and result.orphaned_labels == 0
    assert result.labels_duplicated == 0, "an oracle result was computed twice"
    assert len(chaos["aimed"].kills) == 3, chaos["aimed"]
    assert result.labels_recomputed == 0, "a stored oracle output was computed again"
    assert result.committees_retrained == 0, "a finished committee was trained again"
    # 4 initial + 2 validation + 2 bought in iteration 0 (the last iteration buys none)
    assert result.labels_ok == result.labels_computed == 8


def test_a_concurrent_run_is_refused(chaos):
    assert chaos.get("code") == 2, chaos
    assert "campaign directory is in use by another frostline run" in chaos["output"]
    assert "Traceback" not in chaos["output"]


def test_corrupted_model_file_stops_a_resumed_run_and_nothing_changes(chaos):
    from frostline.registry.queries import open_campaign_dir

    folder = chaos["folder"]
    records = open_campaign_dir(folder)
    model = sorted(
        records.find("model_docs", {"campaign": CAMPAIGN, "iteration": 0}),
        key=lambda d: d["model_id"],
    )[0]
    blob = records[BLOB_STORE].query_one({"model_id": model["model_id"]})
    data = blob["data_b64"]
    blob["data_b64"] = ("B" if data[100] != "B" else "C").join([data[:100], data[101:]])
    records[BLOB_STORE].update([blob], key="model_id")  # bit rot on disk

    def state() -> dict:
        return {
            name: sorted(repr(sorted(d.items())) for d in records.find(name, {}))
            for name in ("labelled", "iterations", "model_docs")
        }

    before, calls = state(), chaos["counter"].read_text()
    records.close()
    res = CliRunner().invoke(app, ["run", str(chaos["config"]), "--dir", str(folder)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "finetune 0 failed" in res.output and "sha256 mismatch" in res.output
    assert model["model_id"] in res.output
    records = open_campaign_dir(folder)
    assert state() == before  # labels, iterations, models as they were
    assert chaos["counter"].read_text() == calls  # the re-run bought no label again
    assert records.campaign(CAMPAIGN)["state"] == "failed"
    assert not list(Path(folder / "jobs").rglob(f"{model['model_id']}.model"))  # never loaded
