"""Faults lose nothing: oracle faults isolated, time-outs, failing campaigns stop with one line,
campaign locks, store retries through a MongoDB-protocol server outage."""

from __future__ import annotations

import re
import threading
import time
from typing import ClassVar  # module level: dataclasses read string annotations here

import numpy as np
import pytest
import yaml
from ase.build import bulk
from conftest import tiny_campaign
from helpers.labels import candidates, run_label
from jobflow import run_locally
from pymatgen.io.ase import AseAtomsAdaptor
from pymongo.errors import AutoReconnect
from typer.testing import CliRunner

from frostline.cli import app
from frostline.config import OracleConfig, StoreConfig, parse_config
from frostline.label.jobs import LabelMaker
from frostline.label.oracles import oracle_hash
from frostline.reliability.faults import FaultLog
from frostline.reliability.locking import CampaignLock, CampaignLockedError
from frostline.reliability.retry import StoreUnavailableError, with_retry
from frostline.schemas import CandidateStructure, LabelledStructure
from frostline.store import Records, make_job_store

FAULTY = "frostline.testing.faulty_oracles"


def faulty(name: str, timeout_s: float | None = None, **settings) -> OracleConfig:
    return OracleConfig(
        name="ase", settings={"calculator": f"{FAULTY}.{name}", **settings}, timeout_s=timeout_s
    )


def snapshot(records: Records, collection: str) -> dict:
    return {
        (d["structure_hash"], d["oracle_settings_hash"], d["role"]): d
        for d in records.find(collection)
    }


# -- oracle faults -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("oracle", "expected", "reason"),
    [
        (faulty("RaisingEMT", element="H"), ["failed", "ok", "ok"], "oracle job failed"),
        (faulty("NaNEMT"), ["failed"] * 3, "non-finite"),
        (faulty("WrongCountEMT"), ["failed"] * 3, ""),
    ],
    ids=["raises", "nan-forces", "wrong-atom-count"],
)
def test_oracle_faults_are_recorded_isolated_and_touch_nothing_stored(
    job_store, oracle, expected, reason
):
    good, _ = run_label(job_store, OracleConfig(name="emt"), candidates())  # bought earlier
    records = Records(job_store).connect()
    before = snapshot(records, "labelled")
    with FaultLog(console=False) as faults:
        labels, _ = run_label(job_store, oracle, candidates())
    assert sorted(lab.status for lab in labels) == sorted(expected)
    for lab in labels:
        if lab.status == "failed":
            assert lab.reason and lab.energy is None and lab.forces is None
            assert reason in lab.reason
    if reason == "oracle job failed":  # the crash itself is in the run's fault report
        assert any("injected fault" in f.error for f in faults.faults)
    after = snapshot(Records(job_store).connect(), "labelled")
    assert {k: after[k] for k in before} == before  # earlier labels untouched
    assert len(after) == len(before) + len(labels)
    assert all(lab.status == "ok" for lab in good)


def test_hanging_oracle_times_out_and_the_rest_proceed(job_store):
    oracle = faulty("HangingEMT", timeout_s=1.5, hang_s=600, max_atoms=2)  # H2 has 2 atoms
    assert oracle_hash(oracle) == oracle_hash(faulty("HangingEMT", hang_s=600, max_atoms=2))
    start = time.perf_counter()
    with FaultLog(console=False) as faults:
        labels, _ = run_label(job_store, oracle, candidates())
    assert time.perf_counter() - start < 60
    by_atoms = {len(lab.structure["sites"]): lab.status for lab in labels}
    assert by_atoms[2] == "ok" and sorted(by_atoms.values()) == ["failed", "failed", "ok"]
    timeouts = [f for f in faults.faults if "exceeded the time-out of 1.5 s" in f.error]
    assert len(timeouts) == 2 and all("\n" not in f.line() for f in timeouts)


def test_timeout_is_refused_for_dft_oracles():
    with pytest.raises(ValueError, match="timeout_s applies to ASE-calculator oracles"):
        OracleConfig(name="cp2k", timeout_s=10)


@pytest.mark.slow
def test_campaign_that_cannot_go_on_stops_with_one_clear_line(tmp_path, foundation):
    """Every initial label crashes: the fine-tune cannot start; the CLI says so in one line,
    the campaign document records the faults, faults.log keeps the tracebacks."""
    data = tiny_campaign(
        name="doomed",
        oracle={"name": "ase", "settings": {"calculator": f"{FAULTY}.RaisingEMT", "element": "Cu"}},
    )
    path = tmp_path / "doomed.yaml"
    path.write_text(yaml.safe_dump(data))
    folder = tmp_path / "c"
    res = CliRunner().invoke(app, ["run", str(path), "--dir", str(folder)])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    message = res.output.split("error:", 1)[1]
    assert "campaign doomed stopped" in message and "finetune 0 failed" in message
    assert re.search(r"fine-tuning needs at least 2 labelled structures, got [01];", message)
    assert "faults.log" in message
    records = Records(make_job_store(StoreConfig(), folder)).connect()
    doc = records.campaign("doomed")
    assert doc["state"] == "failed" and "finetune 0" in doc["stop_reason"]
    assert any("injected fault" in f["error"] for f in doc["faults"])
    failed = records.find("labelled", {"campaign": "doomed"})
    assert len(failed) == 8 and sum(d["status"] == "failed" for d in failed) >= 7  # H2 has no Cu
    assert "Traceback" in (folder / "faults.log").read_text()


# -- one run per campaign directory ---------------------------------------------------------------
def test_second_run_of_a_directory_refuses_or_waits(tmp_path):
    first = CampaignLock(tmp_path).acquire()
    with pytest.raises(CampaignLockedError, match=r"in use by another frostline run \(pid \d+"):
        CampaignLock(tmp_path).acquire()
    threading.Timer(0.5, first.release).start()
    start = time.perf_counter()
    with CampaignLock(tmp_path, wait_s=30, poll_s=0.05):
        assert time.perf_counter() - start >= 0.4  # waited for the first run to finish
    CampaignLock(tmp_path).acquire().release()  # free again


def test_cli_refuses_a_locked_directory_before_touching_it(tmp_path, foundation):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_campaign(name="locked")))
    folder = tmp_path / "c"
    with CampaignLock(folder):
        res = CliRunner().invoke(app, ["run", str(path), "--dir", str(folder)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "campaign directory is in use by another frostline run" in res.output
    assert sorted(p.name for p in folder.iterdir()) == [".lock"]  # no store, no config copy


# -- store retries -----------------------------------------------------------------------------
def test_with_retry_backs_off_then_gives_up_in_one_line():
    calls = []

    def flaky():
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise AutoReconnect("connection refused")
        return "ok"

    assert with_retry(flaky, "update on labelled", retry_s=30) == "ok"
    assert len(calls) == 3 and calls[2] - calls[1] >= calls[1] - calls[0] - 0.05  # backoff

    def down():
        raise AutoReconnect("mongodb://alice:s3cret@db:27017 refused")

    with pytest.raises(StoreUnavailableError) as info:
        with_retry(down, "update on labelled", retry_s=1.2)
    text = str(info.value)
    assert "store unreachable" in text and "update on labelled" in text and "\n" not in text
    assert "s3cret" not in text


def _cu_candidates(n: int) -> list[CandidateStructure]:
    out = []
    for seed in range(n):
        cu = bulk("Cu", "fcc", a=3.6, cubic=True)
        cu.rattle(0.05, seed=seed)
        out.append(CandidateStructure(structure=AseAtomsAdaptor.get_structure(cu).as_dict()))
    return out


@pytest.mark.slow
def test_store_outage_during_a_run_is_ridden_out(tmp_path):
    """The MongoDB-protocol server is stopped mid-run and a new one started on the same port
    and storage 3 s later: every label is stored once and whole."""
    from secantus import SecantusDBServer

    storage = str(tmp_path / "db")
    server = SecantusDBServer(storage_path=storage, port=0)
    server.start()
    port, servers = server.port, [server]
    config = StoreConfig(kind="mongodb", uri=server.uri, database="outage")
    store = make_job_store(config, timeout_ms=500, retry_s=60)
    oracle = faulty("HangingEMT", hang_s=0.3)  # 0.3 s per label: the outage hits mid-batch
    cands = _cu_candidates(8)
    job = LabelMaker(oracle=oracle, campaign="o").make(cands)
    probe = Records(make_job_store(config, timeout_ms=500))
    events = []

    def outage():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if probe["labelled"].count({"campaign": "o"}) >= 2:
                    break
            except Exception:
                pass
            time.sleep(0.05)
        servers[0].stop()
        events.append(("stopped", time.monotonic()))
        time.sleep(3)
        servers.append(SecantusDBServer(storage_path=storage, port=port))
        servers[1].start()
        events.append(("restarted", time.monotonic()))

    thread = threading.Thread(target=outage)
    thread.start()
    try:
        with FaultLog(console=False) as faults:
            run_locally(job, store=store, create_folders=True, root_dir=tmp_path, log=False)
        thread.join()
        assert [e for e, _ in events] == ["stopped", "restarted"]
        assert faults.faults == []
        records = Records(make_job_store(config, timeout_ms=2000)).connect()
        docs = records.find("labelled", {"campaign": "o"})
        assert len(docs) == 8 and len({d["structure_hash"] for d in docs}) == 8
        labels = [LabelledStructure.model_validate(d) for d in docs]  # whole documents
        assert all(lab.status == "ok" and np.isfinite(lab.energy) for lab in labels)
        retried = sum(getattr(s, "n_retries", 0) for s in store.additional_stores.values())
        retried += getattr(store.docs_store, "n_retries", 0)
        assert retried > 0  # the run did meet the outage
        assert len(job.output.resolve(store)) == 8
    finally:
        thread.join()
        servers[-1].stop()


@pytest.mark.slow
def test_store_outage_beyond_the_budget_fails_in_one_line(tmp_path):
    from secantus import SecantusDBServer

    server = SecantusDBServer(storage_path=str(tmp_path / "db"), port=0)
    server.start()
    config = StoreConfig(kind="mongodb", uri=server.uri, database="gone")
    store = make_job_store(config, timeout_ms=300, retry_s=2)
    job = LabelMaker(oracle=OracleConfig(name="emt"), campaign="g").make(_cu_candidates(2))
    server.stop()
    start = time.perf_counter()
    with FaultLog(console=False) as faults:
        run_locally(job, store=store, create_folders=True, root_dir=tmp_path, log=False)
    assert time.perf_counter() - start < 30
    assert len(faults.faults) == 1 and "\n" not in faults.faults[0].line()
    assert "store unreachable for" in faults.faults[0].error


def test_config_errors_from_run_campaign_leave_no_store(tmp_path):
    from frostline.config import ConfigError
    from frostline.flows.campaign import run_campaign

    config = parse_config(tiny_campaign(name="bad", elements=["Cu", "Ni"]))  # builder: Cu, H
    with pytest.raises(ConfigError, match="elements"):
        run_campaign(config, tmp_path / "c", log=False)
    assert not (tmp_path / "c").exists()


def test_memo_keys_find_jobs_stored_before_a_maker_gained_fields():
    """A field added to a maker (listed in MEMO_ADDED_FIELDS) changes the job's key; at its
    default the second key is the one the maker without the field had, so old stores resume."""
    from dataclasses import dataclass

    from frostline.finetune.jobs import FineTuneMaker
    from frostline.reliability.memo import memo_key, memo_keys

    @dataclass
    class Before:
        lr: float = 0.01
        epochs: int = 20

    @dataclass
    class After:
        lr: float = 0.01
        epochs: int = 20
        loss: str = "weighted"
        MEMO_ADDED_FIELDS: ClassVar[tuple[str, ...]] = ("loss",)

    old = memo_key("finetune", maker=Before(), iteration=3)
    keys = memo_keys("finetune", maker=After(), iteration=3)
    assert len(keys) == 2 and keys[0] != old and keys[1] == old
    # a non-default value of the new field is a different job: no match with the old key
    assert old not in memo_keys("finetune", maker=After(loss="l1l2"), iteration=3)
    # nothing added: one key, the same as memo_key
    assert memo_keys("finetune", maker=Before(), iteration=3) == (old,)
    # other settings still give other keys
    assert memo_keys("finetune", maker=After(lr=0.02), iteration=3)[1] != old
    entries = FineTuneMaker.MEMO_ADDED_FIELDS
    listed = {f for e in entries for f in ((e,) if isinstance(e, str) else e)}
    assert listed <= set(FineTuneMaker.__dataclass_fields__)


def test_memo_keys_find_jobs_of_every_older_generation_of_a_maker():
    """Fields added in several steps: a store written between two additions (its key had the
    first added field, not the second) resumes too, and fields added together go together."""
    from dataclasses import dataclass

    from frostline.reliability.memo import memo_key, memo_keys

    @dataclass
    class First:
        lr: float = 0.01

    @dataclass
    class Second:  # gained loss and delta together
        lr: float = 0.01
        loss: str = "weighted"
        delta: float = 0.01

    @dataclass
    class Third:  # then a sweep
        lr: float = 0.01
        loss: str = "weighted"
        delta: float = 0.01
        sweep: tuple[float, ...] = ()
        MEMO_ADDED_FIELDS: ClassVar[tuple] = (("loss", "delta"), "sweep")

    first, second = (memo_key("ft", maker=m(), iteration=1) for m in (First, Second))
    keys = memo_keys("ft", maker=Third(), iteration=1)
    assert keys[1:] == (second, first) and keys[0] not in (first, second)
    # set, the newest field makes another job; an older field set matches only its generation
    assert not {first, second} & set(memo_keys("ft", maker=Third(sweep=(0.1,)), iteration=1))
    assert memo_keys("ft", maker=Third(loss="l1l2"), iteration=1)[1] == memo_key(
        "ft", maker=Second(loss="l1l2"), iteration=1
    )
    assert first not in memo_keys("ft", maker=Third(loss="l1l2"), iteration=1)
