"""``frostline submit`` with jobflow-remote: routing per job type, a campaign run by the runner
on two local shell workers ("gpu", "cpu") against a MongoDB wire-protocol server (SecantusDB),
a runner killed mid-campaign and restarted, runners killed at chosen points (while completing a
job, right after starting one), the run-folder transfer files, and the CLI's errors."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import tiny_campaign
from helpers.submit import EXPECTED_WORKER, ROUTING, TWO_ITERATIONS
from jobflow import JobStore
from typer.testing import CliRunner

from frostline.cli import app
from frostline.config import ConfigError, RoutingConfig, StoreConfig, parse_config
from frostline.store import make_job_store
from frostline.submit.remote import jobstore_spec, local_worker, project_dict, write_project
from frostline.submit.routing import TYPE_KEY, route, routing_table

TESTS = Path(__file__).resolve().parents[1]
RUNNER = {  # poll every 0.3 s (defaults: 30 s), give up on a stale lock after 20 s
    "delay_checkout": 0.3,
    "delay_check_run_status": 0.3,
    "delay_advance_status": 0.3,
    "lock_timeout": 20,
    "delta_retry": [1, 2, 5],
}


def remote_campaign(name: str, log: Path) -> dict:
    """The tiny campaign, smaller still (fewer jobs), with a logging oracle and routes."""
    return tiny_campaign(
        name,
        system={"builder": "h2_cu111", "n_initial": 3, "n_validation": 2},
        select=TWO_ITERATIONS,
        oracle={
            "name": "ase",
            "settings": {"calculator": "submit_stubs.LoggingEMT", "log": str(log)},
        },
        routing=ROUTING,
    )


# -- routing, without a manager --------------------------------------------------------------
def test_routing_table_falls_back_to_default():
    table = routing_table(RoutingConfig.model_validate(ROUTING))
    assert table["finetune"] == {"worker": "gpu", "exec_config": "gpu_env", "_category": "gpu"}
    assert table["label"]["resources"] == {"job_name": "fl-label"}
    assert table["control"] == {"worker": "cpu", "_category": "cpu"}
    routing = RoutingConfig.model_validate(
        {"default": {"worker": "w", "resources": {"nodes": 1}}, "label": {"category": "dft"}}
    )
    assert routing_table(routing)["label"] == {
        "worker": "w",
        "resources": {"nodes": 1},
        "_category": "dft",
    }
    assert routing_table(None) is None


def test_routing_errors_name_the_field():
    with pytest.raises(ConfigError, match=r"field 'routing\.label\.wroker': unknown field"):
        parse_config(tiny_campaign(routing={"label": {"wroker": "cpu"}}))
    with pytest.raises(ConfigError, match=r"field 'routing\.labels': unknown field"):
        parse_config(tiny_campaign(routing={"labels": {"worker": "cpu"}}))


def test_route_copies_shared_configs():
    from frostline.flows.jobs import setup_campaign, zero_shot_baseline

    a, b = setup_campaign({}, "f", "o"), zero_shot_baseline("c", "f", [], [], [])
    a2, before = setup_campaign({}, "f", "o"), a.config
    table = routing_table(RoutingConfig.model_validate(ROUTING))
    route(a, "finetune", table)
    assert a.config.manager_config["worker"] == "gpu" and not a.config.pass_manager_config
    assert a.config.expose_store  # the rest of the job's config is kept
    assert before.manager_config == {} and a2.config.manager_config == {}
    assert b.config.manager_config == {} and b.config.pass_manager_config
    assert a.metadata[TYPE_KEY] == "finetune"
    with pytest.raises(ValueError, match="unknown job type"):
        route(b, "gpu", table)


def test_submitted_flow_jobs_carry_their_routes(foundation):
    from frostline.flows.active_learning import ActiveLearningMaker

    config = parse_config(tiny_campaign(routing=ROUTING, distill={"enabled": True}))
    flow = ActiveLearningMaker.from_config(config, foundation).make(config)
    by_name = {j.name: j for j, _ in flow.iterflow()}
    assert by_name["distill"].config.manager_config["worker"] == "gpu"
    assert by_name["distill"].metadata[TYPE_KEY] == "distill"
    for name in ("setup_campaign", "label initial", "zero_shot_baseline", "active learning tiny"):
        assert by_name[name].config.manager_config["worker"] == "cpu", name
        assert by_name[name].config.pass_manager_config is False
    assert flow.jobs[-1].config.manager_config["worker"] == "gpu"
    # without a routing section nothing but the type tag changes
    plain = parse_config(tiny_campaign())
    flow = ActiveLearningMaker.from_config(plain, foundation).make(plain)
    assert all(j.config.manager_config == {} for j, _ in flow.iterflow())
    assert {j.metadata[TYPE_KEY] for j, _ in flow.iterflow()} == {"control"}


def test_label_replacement_routes_oracle_and_recorder(job_store, tmp_path):
    """Jobs a label job creates at run time get their own type's route, not their parent's."""
    from pymatgen.io.ase import AseAtomsAdaptor

    from frostline.config import OracleConfig
    from frostline.label.jobs import label_structure
    from frostline.schemas import CandidateStructure, Provenance
    from frostline.structures import cu111_slab

    atoms = cu111_slab()
    cand = CandidateStructure(
        structure=AseAtomsAdaptor.get_structure(atoms).as_dict(),
        provenance=Provenance(iteration=0, sampler="test"),
    )
    table = routing_table(RoutingConfig.model_validate(ROUTING))
    parent = label_structure(cand, OracleConfig(), "c", "train", routing=table)
    route(parent, "control", table)
    job_store.connect()
    response = parent.run(job_store)
    new = [j for j, _ in response.replace.iterflow()]
    oracle = [j for j in new if j.metadata.get(TYPE_KEY) == "label"]
    recorder = [j for j in new if j.name.startswith("record label")]
    assert len(oracle) == 1 and len(recorder) == 1
    assert oracle[0].config.manager_config == table["label"]
    assert oracle[0].config.manager_config["exec_config"] == "cpu_env"
    assert recorder[0].config.manager_config == table["control"]
    assert recorder[0].metadata[TYPE_KEY] == "control"


def test_jobstore_spec_has_frostline_stores():
    store = StoreConfig(kind="mongodb", uri="mongodb://127.0.0.1:1/", database="db")
    built = JobStore.from_dict_spec(jobstore_spec(store))
    ours = make_job_store(store)
    assert set(built.additional_stores) == set(ours.additional_stores)
    for name, s in ours.additional_stores.items():
        other = built.additional_stores[name]
        assert type(other) is type(s) and other.collection_name == s.collection_name, name
    assert built.docs_store.key == "uuid" and built.docs_store.collection_name == "outputs"


# -- a jobflow-remote project on the SecantusDB server ---------------------------------------
def _project(tmp: Path, name: str, uri: str, database: str) -> dict:
    """Two local shell workers; jobs run through one warm fork server (``tmp/warm.sock``)."""
    activate = Path(sys.prefix) / "bin" / "activate"
    pre_run = (
        f"source {activate}; export PYTHONPATH={TESTS}:$PYTHONPATH; "
        f"export FROSTLINE_WARM_SOCKET={tmp / 'warm.sock'}"
    )
    return project_dict(
        name,
        StoreConfig(kind="mongodb", uri=uri, database=database),
        workers={w: local_worker(tmp / w, pre_run=pre_run, warm=True) for w in ("gpu", "cpu")},
        exec_config={
            "gpu_env": {"export": {"FROSTLINE_TEST_EXEC": "gpu_env"}},
            "cpu_env": {"export": {"FROSTLINE_TEST_EXEC": "cpu_env"}},
        },
        runner=RUNNER,
        base_dir=tmp / "base",
    )


@pytest.fixture(scope="module")
def jfr_folder(tmp_path_factory):
    """``$JFREMOTE_PROJECTS_FOLDER`` for this module (env for subprocesses, SETTINGS in here)."""
    import jobflow_remote

    folder = tmp_path_factory.mktemp("jfremote")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JFREMOTE_PROJECTS_FOLDER", str(folder))
        mp.setattr(jobflow_remote.SETTINGS, "projects_folder", str(folder))
        yield folder


def _start_runner(project: str, log: Path) -> subprocess.Popen:
    code = (
        "from jobflow_remote.jobs.runner import Runner;"
        f"Runner(project_name={project!r}).run_all_jobs(max_seconds=900)"
    )
    with open(log, "a") as out:
        return subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop_warm_server(path: Path) -> None:
    pid_file = Path(f"{path}.pid")
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid_file.read_text()), signal.SIGTERM)


def _wait(proc: subprocess.Popen, what, timeout: float) -> None:
    start = time.monotonic()
    while not what():
        if proc.poll() is not None:
            return
        if time.monotonic() - start > timeout:
            raise TimeoutError("runner did not get there in time")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def remote_run(tmp_path_factory, secantus_server, jfr_folder, foundation):
    """Submit the campaign with the CLI, kill -9 the runner once two labels are done, restart
    it, and run to the end. Returns what the tests look at."""
    from jobflow_remote.config.manager import ConfigManager

    tmp = tmp_path_factory.mktemp("remote")
    name, database = "frostline-test", f"jfr{os.getpid()}"
    write_project(_project(tmp, name, secantus_server.uri, database), jfr_folder)
    project = ConfigManager().get_project(name)
    jc = project.get_job_controller()
    jc.reset(max_limit=0)
    log = tmp / "oracle.log"
    config = tmp / "campaign.yaml"
    config.write_text(yaml.safe_dump(remote_campaign("remote", log)))
    campaign_dir = tmp / "campaign"
    t0 = time.monotonic()
    res = CliRunner().invoke(
        app, ["submit", str(config), "--project", name, "--dir", str(campaign_dir), "--json"]
    )
    assert res.exit_code == 0, res.output
    submitted = json.loads(res.stdout.strip().splitlines()[-1])
    runner_log = tmp / "runner.log"

    def labels_done() -> int:
        return jc.count_jobs(query={f"job.metadata.{TYPE_KEY}": "label", "state": "COMPLETED"})

    first = _start_runner(name, runner_log)
    _wait(first, lambda: labels_done() >= 2, timeout=400)
    killed_after = labels_done()
    assert first.poll() is None, "the runner finished before it could be killed"
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    # the README's restart: locks the dead runner held are removed (jf admin unlock /
    # unlock-flow), then a new runner carries on from the states in the database
    jc.unlock_jobs()
    jc.unlock_flows()
    second = _start_runner(name, runner_log)
    retried: list = []
    try:
        assert second.wait(timeout=900) == 0, runner_log.read_text()[-3000:]
        # a job the dead runner was handing over (upload / completion) can end in REMOTE_ERROR;
        # the README's recovery retries it (``jf job retry -s REMOTE_ERROR``) and runs again
        from jobflow_remote.jobs.state import JobState

        stuck = jc.get_jobs_info(states=[JobState.REMOTE_ERROR])
        if stuck:
            retried = [(j.name, j.remote.error if j.remote else j.error) for j in stuck]
            print("retried after the kill:", retried)
            jc.retry_jobs(states=[JobState.REMOTE_ERROR], break_lock=True)
            third = _start_runner(name, runner_log)
            assert third.wait(timeout=900) == 0, runner_log.read_text()[-3000:]
    finally:
        _stop_warm_server(tmp / "warm.sock")
    return {
        "jc": jc,
        "submitted": submitted,
        "campaign_dir": campaign_dir,
        "log": log,
        "killed_after": killed_after,
        "retried": retried,
        "wall_s": time.monotonic() - t0,
        "tmp": tmp,
    }


@pytest.mark.slow
def test_every_job_completed(remote_run):
    from jobflow_remote.jobs.state import JobState

    jobs = remote_run["jc"].get_jobs_info()
    states = Counter(j.state for j in jobs)
    problems = [
        (j.name, j.state.value, j.previous_state, j.error or (j.remote.error if j.remote else None))
        for j in jobs
        if j.state != JobState.COMPLETED
    ]
    assert states == {JobState.COMPLETED: len(jobs)}, (states, problems)
    assert len(jobs) > remote_run["submitted"]["n_jobs"]  # Response(replace) added jobs
    assert 0 < remote_run["killed_after"]
    runs = [(j.end_time - j.start_time).total_seconds() for j in jobs if j.end_time]
    slow = sorted(((r, j.name) for r, j in zip(runs, jobs, strict=False)), reverse=True)[:6]
    print("slowest jobs:", ", ".join(f"{n} {r:.0f} s" for r, n in slow))
    print(
        f"jobflow-remote campaign: {len(jobs)} jobs in {remote_run['wall_s']:.0f} s "
        f"(job run time sum {sum(runs):.0f} s, max {max(runs):.0f} s)"
    )


@pytest.mark.slow
def test_jobs_ran_on_the_worker_their_type_names(remote_run):
    docs = remote_run["jc"].get_jobs_doc_query({})
    seen = Counter()
    for doc in docs:
        kind = doc.job.metadata.get(TYPE_KEY)
        assert kind is not None, doc.job.name
        assert doc.worker == EXPECTED_WORKER[kind], (doc.job.name, kind, doc.worker)
        assert Path(doc.run_dir).is_relative_to(remote_run["tmp"] / doc.worker), doc.run_dir
        seen[kind, doc.job.name.split()[0]] += 1
    # dynamic jobs of the second iteration (created by 'advance 0') kept their routes
    names = {d.job.name: d for d in docs}
    assert names["finetune 1"].worker == "gpu" and names["explore 1"].worker == "gpu"
    assert names["finetune 1"].exec_config == "gpu_env"
    labels = [d for d in docs if d.job.metadata.get(TYPE_KEY) == "label"]
    assert len(labels) == 3 + 2 + 2  # initial, validation, one batch of iteration 0
    for d in labels:
        assert d.exec_config == "cpu_env", d.exec_config
        resources = d.resources if isinstance(d.resources, dict) else d.resources.as_dict()
        assert resources.get("job_name") == "fl-label", d.resources


@pytest.mark.slow
def test_no_finished_label_ran_twice(remote_run):
    lines = remote_run["log"].read_text().split("\n")
    entries = {tuple(ln.split()) for ln in lines if ln}
    by_structure = Counter(key for key, _, _ in entries)  # processes that labelled each
    assert len(by_structure) == 7
    assert max(by_structure.values()) == 1, by_structure  # one process per structure, ever
    assert {tag for _, _, tag in entries} == {"cpu_env"}  # the label exec_config was applied


@pytest.mark.slow
def test_status_reads_the_same_database(remote_run):
    res = CliRunner().invoke(app, ["status", str(remote_run["campaign_dir"]), "--json"])
    assert res.exit_code == 0, res.output
    status = json.loads(res.stdout.strip().splitlines()[-1])
    assert status["campaign"] == "remote" and status["state"] == "stopped"
    assert [it["index"] for it in status["iterations"]] == [0, 1]
    assert status["n_train_labels"] == 5 and status["n_validation"] == 2
    assert status["n_models"] == 4


# -- the files a job hands to the runner -----------------------------------------------------
def test_transfer_store_reads_without_writing_and_writes_atomically(tmp_path, monkeypatch):
    """jobflow-remote's run-folder store, as the runner and the worker build it from a project
    written by ``project_dict``: connecting never rewrites the file, a write replaces the file
    whole, an unreadable file is an error (jobflow-remote's default would read it as empty)."""
    import orjson
    from jobflow_remote.remote.data import get_remote_store, update_store
    from maggma.stores import MemoryStore

    from frostline.store import _is_transfer_store
    from frostline.submit.transfer import REMOTE_JOBSTORE, TransferJSONStore

    store = StoreConfig(kind="mongodb", uri="mongodb://127.0.0.1:1/", database="db")
    assert project_dict("p", store, {"w": local_worker(tmp_path)})["remote_jobstore"] == (
        REMOTE_JOBSTORE
    )
    for template in ("local", "slurm"):  # the project files users copy carry it too
        text = (TESTS.parent / "configs" / "jobflow-remote" / f"{template}.yaml").read_text()
        assert yaml.safe_load(text)["remote_jobstore"] == REMOTE_JOBSTORE, template
    main = JobStore(MemoryStore(), additional_stores={"data": MemoryStore()})
    remote = get_remote_store(main, tmp_path, REMOTE_JOBSTORE)
    assert isinstance(remote.docs_store, TransferJSONStore) and _is_transfer_store(remote)
    assert JobStore.from_dict(remote.as_dict()).additional_stores["data"].path == str(
        tmp_path / "additional_store_data.json"
    )
    remote.connect()  # what a job does: creates the files, then its output goes in
    doc = {"uuid": "u", "index": 1, "output": {"x": 1, "blob": list(range(3))}, "metadata": {}}
    remote.update(doc, save={"data": "blob"})
    remote.close()
    files = sorted(tmp_path.glob("*.json"))
    assert [f.name for f in files] == ["additional_store_data.json", "remote_job_data.json"]
    assert not list(tmp_path.glob(".*"))  # no temporary file left
    stamps = {f: f.stat().st_mtime_ns for f in files}
    writes = []
    real_open = open
    monkeypatch.setattr(
        "builtins.open",
        lambda f, mode="r", *a, **k: (
            (writes.append(f) if "w" in mode else None) or real_open(f, mode, *a, **k)
        ),
    )
    update_store(main, get_remote_store(main, tmp_path, REMOTE_JOBSTORE), db_id=1)  # the runner
    monkeypatch.undo()
    assert writes == [] and {f: f.stat().st_mtime_ns for f in files} == stamps
    main.connect()
    assert main.get_output("u", load=True)["blob"] == [0, 1, 2]
    blob_file = tmp_path / "additional_store_data.json"
    os.truncate(blob_file, 0)  # what a kill inside jobflow-remote's in-place rewrite leaves
    with pytest.raises(orjson.JSONDecodeError):
        get_remote_store(main, tmp_path, REMOTE_JOBSTORE).connect()


# -- a runner killed while it completes a job ------------------------------------------------
KILL_WHILE_COMPLETING = """
import builtins, os, signal, sys
from pathlib import Path
from jobflow_remote.jobs import jobcontroller
from jobflow_remote.jobs.runner import Runner

TARGET, FILE, MARK = sys.argv[1], sys.argv[2], Path(sys.argv[3])
completing = []  # run dir of the target while the runner completes it

def die(how):
    MARK.write_text(how)
    os.kill(os.getpid(), signal.SIGKILL)

_open = builtins.open
def open_(file, mode="r", *args, **kwargs):
    f = _open(file, mode, *args, **kwargs)
    if completing and set(mode) & set("wax+") and Path(file) == Path(completing[0], FILE):
        die(f"writing {FILE}")  # just after open(): a "w" file is now empty
    return f
builtins.open = open_

_complete = Runner.complete_job
def complete_job(self, lock):
    doc = lock.locked_document
    if doc["uuid"] == TARGET:
        completing.append(doc["run_dir"])
    try:
        _complete(self, lock)
    finally:
        completing.clear()
Runner.complete_job = complete_job

_update_store = jobcontroller.update_store
def update_store(store, remote_store, db_id):
    _update_store(store, remote_store, db_id)
    if completing:
        die("outputs copied, job not yet completed")
jobcontroller.update_store = update_store

Runner(project_name=sys.argv[4]).run_all_jobs(max_seconds=300)
"""


def _small_project(tmp: Path, name: str, uri: str) -> dict:
    """One local shell worker running jobs cold (``jf execution run``), tests/ importable."""
    activate = Path(sys.prefix) / "bin" / "activate"
    pre_run = f"source {activate}; export PYTHONPATH={TESTS}:$PYTHONPATH"
    return project_dict(
        name,
        StoreConfig(kind="mongodb", uri=uri, database=name),
        workers={"cpu": local_worker(tmp / "cpu", pre_run=pre_run)},
        runner=RUNNER,
        base_dir=tmp / "base",
    )


@pytest.mark.slow
@pytest.mark.parametrize("file", ["additional_store_data.json", "remote_job_data.json"])
def test_runner_killed_while_completing_a_job_loses_nothing(
    file, tmp_path, secantus_server, jfr_folder
):
    """kill -9 of the runner while it completes a finished job: when it opens ``file`` in the
    job's run folder for writing (jobflow-remote's default transfer store rewrites the files it
    reads, so the kill leaves ``file`` empty), or, if it never writes there, right after it
    copied the job's outputs. A new runner then completes the job, and the next job must find
    its output and blob (before ``frostline.submit.transfer``: ``KeyError: <blob_uuid>`` in
    that job's upload, or the finished job failed: "exactly one document, but it contains 0").
    """
    from jobflow import Flow
    from jobflow_remote import submit_flow
    from jobflow_remote.config.manager import ConfigManager
    from jobflow_remote.jobs.state import JobState
    from submit_stubs import count_frames, frames

    name = f"kill-complete-{file.split('.')[0].replace('_', '-')}"
    write_project(_small_project(tmp_path, name, secantus_server.uri), jfr_folder)
    jc = ConfigManager().get_project(name).get_job_controller()
    jc.reset(max_limit=0)
    producer = frames(4)
    reader = count_frames(producer.output)
    submit_flow(Flow([producer, reader]), worker="cpu", project=name)
    mark, log = tmp_path / "killed.txt", tmp_path / "runner.log"
    with open(log, "a") as out:
        first = subprocess.Popen(
            [sys.executable, "-c", KILL_WHILE_COMPLETING, producer.uuid, file, str(mark), name],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        assert first.wait(timeout=300) == -signal.SIGKILL, log.read_text()[-3000:]
    print("runner killed:", mark.read_text())
    jc.unlock_jobs()
    jc.unlock_flows()
    second = _start_runner(name, log)
    assert second.wait(timeout=300) == 0, log.read_text()[-3000:]
    jobs = {j.uuid: j for j in jc.get_jobs_info()}
    for job in (producer, reader):
        info = jobs[job.uuid]
        error = (info.remote.error if info.remote else None) or info.error or ""
        assert info.state == JobState.COMPLETED, (info.name, info.state, error[-1500:])
    store = JobStore.from_dict_spec(
        jobstore_spec(StoreConfig(kind="mongodb", uri=secantus_server.uri, database=name))
    )
    store.connect()
    assert store.get_output(producer.uuid, load=True)["trajectory"] == [
        [float(i)] * 3 for i in range(4)
    ]
    assert store.get_output(reader.uuid) == 4


KILL_AFTER_SUBMIT = """
import os, signal, sys
from pathlib import Path
from jobflow_remote.jobs.runner import Runner

_submit = Runner.submit
def submit(self, lock):
    _submit(self, lock)  # the job's process is started; its SUBMITTED state is not yet written
    if lock.locked_document["uuid"] == sys.argv[1]:
        Path(sys.argv[2]).write_text(str(lock.update_on_release))
        os.kill(os.getpid(), signal.SIGKILL)
Runner.submit = submit

Runner(project_name=sys.argv[3]).run_all_jobs(max_seconds=300)
"""


@pytest.mark.slow
def test_runner_killed_after_starting_a_job_does_not_run_it_twice(
    tmp_path, secantus_server, jfr_folder
):
    """kill -9 of the runner right after it started a job, before it recorded the submission:
    the job stays UPLOADED and the next runner submits it again, into the same run folder,
    while the first run may still be going. With the warm worker one of the two runs waits for
    the other and does not compute the job again; the job and the next one complete."""
    from jobflow import Flow
    from jobflow_remote import submit_flow
    from jobflow_remote.config.manager import ConfigManager
    from jobflow_remote.jobs.state import JobState
    from submit_stubs import count_frames, frames

    name = "kill-after-submit"
    socket_path = tmp_path / "warm.sock"
    activate = Path(sys.prefix) / "bin" / "activate"
    pre_run = (
        f"source {activate}; export PYTHONPATH={TESTS}:$PYTHONPATH; "
        f"export FROSTLINE_WARM_SOCKET={socket_path}"
    )
    project = project_dict(
        name,
        StoreConfig(kind="mongodb", uri=secantus_server.uri, database=name),
        workers={"cpu": local_worker(tmp_path / "cpu", pre_run=pre_run, warm=True)},
        runner=RUNNER,
        base_dir=tmp_path / "base",
    )
    write_project(project, jfr_folder)
    jc = ConfigManager().get_project(name).get_job_controller()
    jc.reset(max_limit=0)
    producer = frames(4, seconds=5)
    reader = count_frames(producer.output)
    submit_flow(Flow([producer, reader]), worker="cpu", project=name)
    mark, log = tmp_path / "killed.txt", tmp_path / "runner.log"
    try:
        with open(log, "a") as out:
            first = subprocess.Popen(
                [sys.executable, "-c", KILL_AFTER_SUBMIT, producer.uuid, str(mark), name],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            assert first.wait(timeout=300) == -signal.SIGKILL, log.read_text()[-3000:]
        assert "SUBMITTED" in mark.read_text()  # what the dead runner was about to record
        assert jc.get_job_info(job_id=producer.uuid).state == JobState.UPLOADED
        jc.unlock_jobs()
        jc.unlock_flows()
        second = _start_runner(name, log)
        assert second.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:
        _stop_warm_server(socket_path)
    jobs = {j.uuid: j for j in jc.get_jobs_info()}
    for job in (producer, reader):
        info = jobs[job.uuid]
        error = (info.remote.error if info.remote else None) or info.error or ""
        assert info.state == JobState.COMPLETED, (info.name, info.state, error[-1500:])
    run_dir = Path(jc.get_job_doc(job_id=producer.uuid).run_dir)
    assert len((run_dir / "executions.log").read_text().split()) == 1  # one run, not two
    assert "already ran on this input" in (run_dir / "queue.err").read_text()
    store = JobStore.from_dict_spec(
        jobstore_spec(StoreConfig(kind="mongodb", uri=secantus_server.uri, database=name))
    )
    store.connect()
    assert store.get_output(reader.uuid) == 4


# -- CLI errors ------------------------------------------------------------------------------
def _one_line_error(res) -> str:
    assert res.exit_code == 2, res.output
    text = res.output.strip()
    assert "Traceback" not in text and len(text.splitlines()) == 1, text
    return text


def test_submit_missing_project_is_one_line(tmp_path, jfr_folder):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_campaign(routing=ROUTING)))
    res = CliRunner().invoke(app, ["submit", str(config), "--project", "nope"])
    assert "no jobflow-remote project 'nope'" in _one_line_error(res)
    res = CliRunner().invoke(app, ["submit", str(config)])
    assert "--project NAME is required" in _one_line_error(res)


def test_submit_unreachable_database_is_one_line(tmp_path, jfr_folder):
    write_project(_project(tmp_path, "down", "mongodb://127.0.0.1:9/", "x"), jfr_folder)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_campaign(routing=ROUTING)))
    start = time.monotonic()
    res = CliRunner().invoke(app, ["submit", str(config), "--project", "down"])
    assert "cannot connect" in _one_line_error(res)
    assert time.monotonic() - start < 20


def test_submit_checks_workers_and_queue(tmp_path, jfr_folder, secantus_server):
    old = _project(tmp_path, "old", secantus_server.uri, "old")
    del old["remote_jobstore"]  # a project written by hand before frostline's transfer files
    write_project(old, jfr_folder)
    write_project(_project(tmp_path, "fresh", secantus_server.uri, "fresh"), jfr_folder)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_campaign(routing=ROUTING)))
    res = CliRunner().invoke(app, ["submit", str(config), "--project", "old"])
    assert "project 'old': field 'remote_jobstore' is not set" in _one_line_error(res)
    bad = {**ROUTING, "label": {"worker": "dft"}}
    config.write_text(yaml.safe_dump(tiny_campaign(routing=bad)))
    res = CliRunner().invoke(app, ["submit", str(config), "--project", "fresh"])
    assert "field 'routing.label.worker': no worker 'dft'" in _one_line_error(res)
    config.write_text(yaml.safe_dump(tiny_campaign(routing=ROUTING)))
    res = CliRunner().invoke(app, ["submit", str(config), "--project", "fresh"])
    assert "jf -p fresh admin reset" in _one_line_error(res)
