"""``frostline submit --manager fireworks``: flow_to_workflow on a LaunchPad (SecantusDB server),
run by ``rapidfire`` with two FWorkers of categories "gpu" and "cpu"."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
import yaml
from conftest import tiny_campaign
from helpers.submit import EXPECTED_WORKER, ROUTING, TWO_ITERATIONS
from typer.testing import CliRunner

from frostline.cli import app
from frostline.submit.routing import TYPE_KEY


def _drain(lp, fworkers, launch_dir, max_rounds: int = 200) -> None:
    """Alternate the FWorkers (one rapidfire pass each) until nothing is READY or WAITING."""
    from fireworks.core.rocket_launcher import rapidfire

    for _ in range(max_rounds):
        for fw in fworkers:
            rapidfire(lp, fw, m_dir=str(launch_dir), nlaunches=0, max_loops=1, sleep_time=0)
        if not lp.fireworks.count_documents({"state": {"$in": ["READY", "WAITING"]}}):
            return
    raise AssertionError("FireWorks campaign did not finish")


@pytest.fixture(scope="module")
def fireworks_run(tmp_path_factory, secantus_server, foundation):
    from fireworks import FWorker

    tmp = tmp_path_factory.mktemp("fireworks")
    host, port = secantus_server.address
    launchpad = tmp / "my_launchpad.yaml"
    launchpad.write_text(yaml.safe_dump({"host": host, "port": port, "name": "fw_frostline"}))
    config = tiny_campaign(
        "fw",
        system={"builder": "h2_cu111", "n_initial": 3, "n_validation": 2},
        select=TWO_ITERATIONS,
        routing=ROUTING,
        store={"kind": "mongodb", "uri": secantus_server.uri, "database": "fw_store"},
    )
    path = tmp / "campaign.yaml"
    path.write_text(yaml.safe_dump(config))
    from frostline.submit.fireworks import load_launchpad

    lp = load_launchpad(launchpad)
    lp.reset("", require_password=False)
    campaign_dir = tmp / "campaign"
    t0 = time.monotonic()
    args = ["submit", str(path), "--manager", "fireworks", "--launchpad", str(launchpad)]
    res = CliRunner().invoke(app, [*args, "--dir", str(campaign_dir), "--json"])
    assert res.exit_code == 0, res.output
    submitted = json.loads(res.stdout.strip().splitlines()[-1])
    launches = tmp / "launches"
    launches.mkdir()
    fworkers = [FWorker(name="gpu-node", category="gpu"), FWorker(name="cpu-node", category="cpu")]
    _drain(lp, fworkers, launches)
    return {"lp": lp, "submitted": submitted, "dir": campaign_dir, "wall": time.monotonic() - t0}


@pytest.mark.slow
def test_every_firework_completed_on_its_category(fireworks_run):
    lp = fireworks_run["lp"]
    fws = list(lp.fireworks.find({}, {"fw_id": 1, "state": 1, "spec": 1, "name": 1}))
    assert len(fws) > fireworks_run["submitted"]["n_jobs"]  # replacements were added
    assert Counter(fw["state"] for fw in fws) == {"COMPLETED": len(fws)}
    kinds = Counter()
    for fw in fws:
        kind = fw["spec"].get(TYPE_KEY)
        assert kind is not None, fw["name"]
        assert fw["spec"]["_category"] == EXPECTED_WORKER[kind], fw["name"]
        launch = lp.launches.find_one({"fw_id": fw["fw_id"], "state": "COMPLETED"})
        assert launch["fworker"]["category"] == EXPECTED_WORKER[kind], fw["name"]
        kinds[kind] += 1
    assert kinds["finetune"] == 2 and kinds["explore"] == 2 and kinds["label"] == 7
    print(f"FireWorks campaign: {len(fws)} Fireworks in {fireworks_run['wall']:.0f} s")


@pytest.mark.slow
def test_fireworks_status_reads_the_same_database(fireworks_run):
    res = CliRunner().invoke(app, ["status", str(fireworks_run["dir"]), "--json"])
    assert res.exit_code == 0, res.output
    status = json.loads(res.stdout.strip().splitlines()[-1])
    assert status["campaign"] == "fw" and status["state"] == "stopped"
    assert [it["index"] for it in status["iterations"]] == [0, 1]
    assert status["n_train_labels"] == 5 and status["n_validation"] == 2


def test_unreachable_launchpad_is_one_line(tmp_path):
    launchpad = tmp_path / "lp.yaml"
    launchpad.write_text(yaml.safe_dump({"host": "127.0.0.1", "port": 9, "name": "x"}))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_campaign()))
    args = ["submit", str(config), "--manager", "fireworks", "--launchpad", str(launchpad)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    assert "cannot reach the LaunchPad database" in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
