"""One campaign on a shared store: order-free resume keys, superseded models, the lease."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import yaml
from conftest import tiny_campaign
from typer.testing import CliRunner

from frostline.choices import NO_REPLAY_FILTER, REPLAY_FILTER, REPLAY_WEIGHT
from frostline.cli import app
from frostline.config import parse_config
from frostline.finetune.foundation import sha256_file
from frostline.finetune.jobs import FineTuneMaker
from frostline.flows.campaign import write_config_copy
from frostline.registry.models import list_models, mark_superseded
from frostline.reliability.memo import memo_keys
from frostline.schemas import LabelledStructure, ModelDoc, ModelFile
from frostline.store import Records


def fake_labels(n: int) -> list[LabelledStructure]:
    structure = {"lattice": {"matrix": np.eye(3).tolist()}, "sites": []}
    return [
        LabelledStructure(
            structure=structure, oracle="emt", structure_hash=f"{i:040x}", oracle_settings_hash="s"
        )
        for i in range(n)
    ]


@dataclass
class StoredBefore(FineTuneMaker):
    """FineTuneMaker as it was before 2026-12-07's defaults: replay of any frame at weight 1."""

    replay_weight: float = 1.0
    replay_filter: str = NO_REPLAY_FILTER


def test_finetune_resume_key_is_the_same_whatever_order_the_labels_come_in(foundation):
    maker = FineTuneMaker(committee_size=2)
    train, valid = fake_labels(6), fake_labels(3)
    keys = maker._memo_keys(foundation, train, valid, "c", 1, None, None)
    shuffled = [train[i] for i in (4, 1, 5, 0, 3, 2)]
    again = maker._memo_keys(foundation, shuffled, valid[::-1], "c", 1, None, None)
    assert keys[0] == again[0]
    # the key frostline computed before (labels in the order given) is still looked up
    ids = [(x.structure_hash, x.oracle_settings_hash, x.status) for x in shuffled]
    old = memo_keys(
        "finetune",
        maker=maker._keyed(None),
        foundation=sha256_file(foundation),
        train=ids,
        validation=[(x.structure_hash, x.oracle_settings_hash, x.status) for x in valid[::-1]],
        campaign="c",
        iteration=1,
        freeze=None,
    )
    assert set(old) <= set(again) and old[0] not in keys
    assert maker._memo_keys(foundation, train[:5], valid, "c", 1, None, None)[0] != keys[0]


def test_a_replay_weight_stored_before_it_reached_the_loss_is_fine_tuned_again(foundation):
    """Before 2026-12-07 a replay weight other than 1 never reached mace-torch's loss: a
    campaign stored then with one re-trains its committees on resume; every other campaign
    (weight 1, or no replay) keeps the keys it was stored with."""
    train, valid = fake_labels(6), fake_labels(3)

    def stored_keys(maker) -> tuple:  # the keys of a frostline before the weight's fix
        return tuple(
            memo_keys(
                "finetune", maker=maker, foundation=sha256_file(foundation),
                train=sorted((x.structure_hash, x.oracle_settings_hash, x.status) for x in train),
                validation=sorted(
                    (x.structure_hash, x.oracle_settings_hash, x.status) for x in valid
                ),
                campaign="c", iteration=1, freeze=None,
            )
        )  # fmt: skip

    replay = {"strategy": "multihead-replay"}
    for settings, reused in (
        ({**replay, "replay_weight": 0.3}, False),
        ({"strategy_sweep": ("multihead-replay",), "replay_weight": 0.3}, False),
        ({**replay, "replay_weight": 1.0}, True),
        ({"replay_weight": 0.5}, True),  # frozen: the weight is not used
    ):
        stored = StoredBefore(**settings)  # the defaults of then: any frame
        keys = FineTuneMaker(**{"replay_filter": NO_REPLAY_FILTER, **settings})._memo_keys(
            foundation, train, valid, "c", 1, None, None
        )
        assert bool(set(stored_keys(stored)) & set(keys)) is reused, settings


def test_new_replay_defaults_reuse_exactly_the_committees_they_would_compute(foundation):
    """The replay's filter and weight are in a fine-tune's key only where a replay trains; with
    their new defaults a stored campaign resumes where its committees are what the new
    defaults compute, and only there."""
    train, valid = fake_labels(6), fake_labels(3)

    def keys(maker) -> set:
        return set(maker._memo_keys(foundation, train, valid, "c", 1, None, None))

    replay = {"strategy": "multihead-replay"}
    old = {"replay_filter": NO_REPLAY_FILTER, "replay_weight": 1.0}
    assert keys(FineTuneMaker(**old)) == keys(FineTuneMaker())  # no replay: the same fine-tune
    assert not keys(FineTuneMaker(**replay, replay_filter="inclusive")) & keys(
        FineTuneMaker(**replay)
    )
    for stored, now, reused in (
        (StoredBefore(), FineTuneMaker(), True),  # frozen: no replay, nothing changes
        (StoredBefore(freeze_sweep=(0, 6)), FineTuneMaker(freeze_sweep=(0, 6)), True),
        (StoredBefore(**replay), FineTuneMaker(**replay), False),  # filtered, lighter now
        (StoredBefore(**replay), FineTuneMaker(**replay, replay_weight=1.0), False),
        (StoredBefore(**replay), FineTuneMaker(**replay, **old), True),
        (
            StoredBefore(**replay, replay_filter=REPLAY_FILTER, replay_weight=REPLAY_WEIGHT),
            FineTuneMaker(**replay),
            True,
        ),
        (StoredBefore(**replay), FineTuneMaker(**replay, **old, replay_samples=100), False),
    ):
        assert bool(keys(stored) & keys(now)) is reused, (stored, now)


def test_memo_keys_leave_a_field_whose_default_changed_out_only_at_its_original_default():
    @dataclass
    class Before:
        lr: float = 0.01

    @dataclass
    class After:
        lr: float = 0.01
        filter: str = "none"
        MEMO_ADDED_FIELDS: ClassVar[tuple] = ("filter",)

    @dataclass
    class Changed(After):
        filter: str = "all"
        MEMO_ORIGINAL_DEFAULTS: ClassVar[dict] = {"filter": "none"}

    old = memo_keys("finetune", maker=Before())[0]
    assert old in memo_keys("finetune", maker=After())
    assert old not in memo_keys("finetune", maker=Changed())  # computes another thing now
    assert old in memo_keys("finetune", maker=Changed(filter="none"))


def test_models_a_campaign_did_not_use_are_superseded_and_listed_only_with_all(job_store, tmp_path):
    records = Records(job_store).connect()
    for member, tag in ((0, "a"), (1, "a"), (0, "b"), (1, "b")):
        doc = ModelDoc(
            model_id=f"c-it000-m{member}-{tag}",
            kind="committee-member",
            campaign="c",
            iteration=0,
            member=member,
            elements=["Cu", "H"],
            file=ModelFile(filename="m.model", sha256="0" * 64, size_bytes=1),
        )
        records.upsert("model_docs", [doc.model_dump(mode="json")], ["model_id"])
    used = ["c-it000-m0-b", "c-it000-m1-b"]
    assert mark_superseded(records, "c", 0, used) == 2
    assert sorted(d["model_id"] for d in list_models(records, campaign="c")) == used
    assert len(list_models(records, campaign="c", include_superseded=True)) == 4
    assert mark_superseded(records, "c", 0, used) == 2  # idempotent
    write_config_copy(parse_config(tiny_campaign(name="c")), tmp_path)  # the store's directory
    args = ["models", "list", "--dir", str(tmp_path), "--json"]
    listed = CliRunner().invoke(app, args)
    assert [d["model_id"] for d in json.loads(listed.stdout)] == used
    assert len(json.loads(CliRunner().invoke(app, [*args, "--all"]).stdout)) == 4


# -- the campaign lease --------------------------------------------------------------------------
def lease_collection(config, folder):
    from frostline.reliability.lease import LEASES
    from frostline.store import make_job_store

    return Records(make_job_store(config, folder)).connect().raw_collection(LEASES)


@pytest.mark.parametrize("kind", ["embedded", "mongodb"])
def test_a_lease_is_taken_once_renewed_and_taken_over_when_expired(kind, tmp_path, request):
    from frostline.config import StoreConfig
    from frostline.reliability.lease import CampaignLease, CampaignLeasedError

    config = request.getfixturevalue("mongodb_store_config") if kind == "mongodb" else StoreConfig()
    coll = lease_collection(config, tmp_path)
    first = CampaignLease(coll, "c", tmp_path / "a", ttl_s=1.0)
    assert first.try_take() is None and first.try_take() is None  # free, then already mine
    second = CampaignLease(coll, "c", tmp_path / "b", ttl_s=1.0)
    with pytest.raises(CampaignLeasedError, match=r"campaign c is being run on this store by .*"):
        second.acquire()
    assert CampaignLease(coll, "other", tmp_path / "b").try_take() is None  # per campaign
    time.sleep(1.2)  # the first holder died: no heartbeat, its lease expired
    assert first.renew()  # (not yet taken: the holder's own renewal still works)
    time.sleep(1.2)
    assert second.try_take() is None and not first.renew()  # taken over; the first lost it
    second.release()
    assert coll.find_one({"_id": "c"}) is None
    # a run killed and resumed in its own directory (holding the directory lock) goes on
    killed = CampaignLease(coll, "c", tmp_path / "a", ttl_s=60.0)
    assert killed.try_take() is None
    assert CampaignLease(coll, "c", tmp_path / "b", ttl_s=60.0, dir_locked=True).try_take()
    resumed = CampaignLease(coll, "c", tmp_path / "a", ttl_s=60.0, dir_locked=True)
    assert resumed.try_take() is None and not killed.renew()
    resumed.release()
    with CampaignLease(coll, "c", tmp_path / "a", ttl_s=0.4) as held:  # heartbeat keeps it
        time.sleep(1.0)
        assert not held.lost and CampaignLease(coll, "c", tmp_path).try_take() is not None


def run_in(config: Path, folder: Path, quiet: bool = True) -> subprocess.Popen:
    """``frostline run CONFIG --dir FOLDER`` in a process of its own (8 s leases)."""
    code = "from frostline.cli import app; app()"
    env = {**os.environ, "FROSTLINE_LEASE_S": "8", "PYTHONWARNINGS": "ignore"}
    out = subprocess.DEVNULL if quiet else subprocess.PIPE
    args = [sys.executable, "-c", code, "run", str(config), "--dir", str(folder)]
    return subprocess.Popen(args, env=env, text=True, stdout=out, stderr=out)


def wait_for(predicate, timeout: float = 300.0, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := predicate()) is not None:
            return value
        time.sleep(poll)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_two_runs_of_one_campaign_from_two_directories_on_one_store(
    mongodb_store_config, tmp_path, foundation
):
    """The second is refused with the holder's name; after the first is killed, a new run
    takes over once the lease has expired."""
    store = mongodb_store_config.model_dump(mode="json")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_campaign(name="shared", store=store)))
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    coll = lease_collection(mongodb_store_config, tmp_path)
    first = run_in(path, first_dir)
    try:
        held = wait_for(lambda: coll.find_one({"_id": "shared"}))
        assert held["pid"] == first.pid and held["directory"] == str(first_dir.resolve())
        second = run_in(path, second_dir, quiet=False)
        out, err = second.communicate(timeout=300)
        assert second.returncode == 2 and "Traceback" not in err
        line = " ".join(err.split())
        assert "campaign shared is being run on this store by" in line
        assert f"pid {first.pid} in {first_dir.resolve()}" in line
        assert len(err.strip().splitlines()) <= 2  # one line (wrapped at most once)
        assert first.poll() is None  # the first still runs, untouched
    finally:
        first.kill()
        first.wait()
    last = coll.find_one({"_id": "shared"})  # the dead holder's last heartbeat
    assert last["pid"] == first.pid
    # a new run started before the expiry is refused like the second (the CLI starts in well
    # under the 8 s lease); started after it, it takes the campaign over
    time.sleep(max(0.0, last["expiry"] - time.time()) + 0.5)
    third = run_in(path, second_dir)
    try:
        taken = wait_for(
            lambda: d if (d := coll.find_one({"_id": "shared"}))["pid"] == third.pid else None
        )
        assert taken["acquired"] >= last["expiry"]  # only once the dead holder's lease expired
        assert taken["directory"] == str(second_dir.resolve())
    finally:
        third.kill()
        third.wait()


# -- bad input: one line, nothing overwritten ----------------------------------------------------
def bad_inputs(tmp_path: Path) -> dict[str, tuple[dict, str]]:
    from frostline.finetune.foundation import MINI_FOUNDATION

    truncated, random_bytes, folder = tmp_path / "t.model", tmp_path / "r.model", tmp_path / "d"
    truncated.write_bytes(MINI_FOUNDATION.read_bytes()[:4096])
    random_bytes.write_bytes(np.random.default_rng(0).bytes(8192))
    folder.mkdir()
    return {
        "truncated foundation": ({"foundation": str(truncated)}, f"foundation model {truncated}"),
        "random foundation": (
            {"foundation": str(random_bytes)},
            f"foundation model {random_bytes}",
        ),
        "directory foundation": ({"foundation": str(folder)}, f"{folder} is a directory"),
        "mace_mp name not cached": ({"foundation": "medium-omat-0"}, "not in mace-torch's cache"),
        "name ..": ({"name": ".."}, "field 'name'"),
        "name .": ({"name": "."}, "field 'name'"),
        "long name": ({"name": "n" * 300}, "at most 64 characters"),
    }


def test_bad_campaign_inputs_are_one_line_and_overwrite_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no mace_mp download cache
    mine = tmp_path / "campaign.yaml"
    mine.write_text("the user's own file\n")
    for what, (overrides, message) in bad_inputs(tmp_path).items():
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(tiny_campaign(name="bad") | overrides))
        res = CliRunner().invoke(app, ["run", str(path)])
        assert res.exit_code == 2, (what, res.output)
        assert "Traceback" not in res.output and message in " ".join(res.output.split()), what
        assert len(res.output.strip().splitlines()) <= 3, (what, res.output)  # one wrapped line
    assert mine.read_text() == "the user's own file\n"
    assert not (tmp_path / "campaigns").exists()


def test_exports_overwrite_only_with_force(job_store, tmp_path):
    from conftest import tiny_model_blob

    from frostline.schemas import LabelledStructure as Lab

    records = Records(job_store).connect()
    blob = tiny_model_blob()
    sha = records.put_model_file("m", blob)
    doc = ModelDoc(
        model_id="m",
        kind="mace-finetuned",
        campaign="c",
        elements=["Cu"],
        file=ModelFile(filename="m.model", sha256=sha, size_bytes=len(blob)),
    )
    records.upsert("model_docs", [doc.model_dump(mode="json")], ["model_id"])
    label = Lab.model_validate(
        {
            "structure": {
                "lattice": {"matrix": (np.eye(3) * 3).tolist()},
                "sites": [{"species": [{"element": "Cu", "occu": 1}], "abc": [0, 0, 0]}],
                "@module": "pymatgen.core.structure",
                "@class": "Structure",
            },
            "energy": -1.0,
            "forces": [[0.0, 0.0, 0.0]],
            "oracle": "emt",
            "campaign": "c",
        }
    )
    records.upsert("labelled", [label.model_dump(mode="json")], ["structure_hash"])
    write_config_copy(parse_config(tiny_campaign(name="c")), tmp_path)
    for args, name in ((["models", "export", "m"], "m.model"), (["data", "export"], "d.xyz")):
        out = tmp_path / name
        out.write_text("keep me")
        cmd = [*args, "-o", str(out), "--dir", str(tmp_path)]
        res = CliRunner().invoke(app, cmd)
        assert res.exit_code == 2 and "not overwritten (use --force" in res.output, res.output
        assert out.read_text() == "keep me"
        res = CliRunner().invoke(app, [*cmd, "--force"])
        assert res.exit_code == 0, res.output
        assert out.read_bytes() != b"keep me"
