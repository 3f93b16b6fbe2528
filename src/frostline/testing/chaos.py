"""Chaos harness: kill -9 ``frostline run`` at random points, resume, and audit the store.

Used by ``tests/reliability/test_chaos.py`` (a few kills) and ``workflows/benchmarks/chaos.py``
(>= 20).
The oracle is :class:`CountingEMT`, which appends the frostline structure hash of every
*finished* calculation (with its process id and calculator instance) to a counter file, so the
audit can tell, per label, how many oracle jobs computed it:

- **lost**: a structure the oracle computed whose ``ok`` label is not in the store, or a stored
  training label the final flow does not count (bought, then forgotten by a resumed run);
- **duplicated**: the oracle computed the same structure in more than one job.

A kill between the end of a calculation and jobflow's write of its output loses that result
(it never reached the store) and the structure is computed again on resume: that window (a few
ms per label) is the one way "duplicated" can be non-zero.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from ase.calculators.emt import EMT

from frostline.config import merge_sections
from frostline.label.jobs import LABEL_KEY
from frostline.testing.campaigns import tiny_campaign


class CountingEMT(EMT):
    """EMT that logs ``structure_hash pid instance`` to ``counter`` after each calculation."""

    def __init__(self, counter: str, **kwargs):
        super().__init__(**kwargs)
        self.counter = counter

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        super().calculate(atoms, properties, system_changes)
        from pymatgen.io.ase import AseAtomsAdaptor

        from frostline.schemas import structure_hash

        key = structure_hash(AseAtomsAdaptor.get_structure(self.atoms))
        with open(self.counter, "a") as fh:
            fh.write(f"{key} {os.getpid()} {id(self)}\n")
            fh.flush()
            os.fsync(fh.fileno())


def chaos_campaign(name: str, counter: Path, **overrides) -> dict:
    """A small EMT campaign (two iterations) whose oracle counts its calculations."""
    config = tiny_campaign(
        name,
        system={"n_initial": 4, "n_validation": 2},
        finetune={"epochs": 1},
        explore={"steps": 8},
        oracle={
            "name": "ase",
            "settings": {
                "calculator": "frostline.testing.chaos.CountingEMT",
                "counter": str(counter),
            },
        },
    )
    return merge_sections(config, overrides)


def frostline_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "frostline.cli", *args]


@dataclass
class Kill:
    delay_s: float
    stage: str  # the last job jobflow started before the kill ("" : still starting up)
    returncode: int


@dataclass
class ChaosRun:
    kills: list[Kill] = field(default_factory=list)
    finished_early: int = 0  # runs that completed before their kill was due
    final_returncode: int | None = None
    final_output: str = ""
    wall_s: float = 0.0


JOB_LOG = {"FROSTLINE_JOB_LOG": "1"}
"""The runs this harness kills print every job's start and end (it counts and aims at them)."""


def _last_job(log: str) -> str:
    mark = "Starting job - "
    started = [ln.split(mark, 1)[1] for ln in log.splitlines() if mark in ln]
    return started[-1].split(" (")[0].strip() if started else ""


def kill_and_resume(
    config_path: Path,
    campaign_dir: Path,
    kills: int,
    seed: int = 0,
    delay_s: tuple[float, float] = (0.0, 40.0),
    env: dict | None = None,
    final_timeout_s: float = 900.0,
    on_run=None,
    job_range: tuple[int, int] = (1, 1),
) -> ChaosRun:
    """Start ``frostline run`` ``kills`` times, SIGKILL each a seeded random delay after the
    start of its k-th job (k drawn from ``job_range``, inclusive), then run it to the end.

    Counting jobs rather than seconds places the kills across the campaign whatever the
    machine's speed (a quiet machine finishes a tiny campaign before a fixed delay runs out).
    ``on_run(proc)`` is called while each killed run is alive (e.g. to try a second,
    concurrent run)."""
    rng = np.random.default_rng(seed)
    out = ChaosRun()
    t0 = time.perf_counter()
    env = {**os.environ, **JOB_LOG, **(env or {})}
    cmd = frostline_command("run", str(config_path), "--dir", str(campaign_dir))
    log_path = Path(campaign_dir).parent / f"{Path(campaign_dir).name}.chaos.log"
    for _ in range(kills):
        delay = float(rng.uniform(*delay_s))
        nth_job = int(rng.integers(job_range[0], job_range[1] + 1))
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            if on_run is not None:
                on_run(proc)
            # the delay counts from the k-th job (start-up time varies with the machine's load)
            while proc.poll() is None and log_path.read_text().count("Starting job - ") < nth_job:
                time.sleep(0.05)
            start = time.perf_counter()
            while proc.poll() is None and time.perf_counter() - start < delay:
                time.sleep(0.05)
            if proc.poll() is not None:  # finished (or failed) before its kill was due
                out.finished_early += 1
                out.final_returncode = proc.returncode
                out.final_output = log_path.read_text()
                out.wall_s = time.perf_counter() - t0
                return out
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        out.kills.append(Kill(delay, _last_job(log_path.read_text()), proc.returncode))
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=final_timeout_s)
    out.final_returncode = res.returncode
    out.final_output = res.stdout + res.stderr
    out.wall_s = time.perf_counter() - t0
    return out


ORACLE_WINDOW = "Starting job - record label"
"""Log line of a ``record label`` job starting: its oracle job's output is stored, the label
not yet (killed here, a run used to compute the label again)."""
AIMED_MARKS = (
    ORACLE_WINDOW,
    ORACLE_WINDOW,
    "Finished job - finetune 0",
    ORACLE_WINDOW,
    "Finished job - finetune 1",
)
"""Where ``kill_at`` kills, in order: between oracle outputs and their labels, and just after a
fine-tune's output (its committee) was stored."""


def kill_at(
    config_path: Path,
    campaign_dir: Path,
    marks: list[str],
    env: dict | None = None,
    poll_s: float = 0.002,
) -> ChaosRun:
    """Start ``frostline run`` once per mark and SIGKILL it as soon as its log shows the mark
    (a line that starts with it; a resumed run must reach a new one). The campaign is not run
    to the end here (``kill_and_resume`` does that)."""
    out = ChaosRun()
    t0 = time.perf_counter()
    env = {**os.environ, **JOB_LOG, **(env or {})}
    cmd = frostline_command("run", str(config_path), "--dir", str(campaign_dir))
    log_path = Path(campaign_dir).parent / f"{Path(campaign_dir).name}.aimed.log"
    for mark in marks:
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            while proc.poll() is None and mark not in log_path.read_text():
                time.sleep(poll_s)
            if proc.poll() is not None:  # the run ended before reaching the mark
                out.finished_early += 1
                continue
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        out.kills.append(Kill(0.0, _last_job(log_path.read_text()), proc.returncode))
    out.wall_s = time.perf_counter() - t0
    return out


def write_config(config: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class Audit:
    oracle_calls: int
    labels_computed: int  # distinct structures the oracle finished
    labels_ok: int  # ok labels in the store (this campaign)
    labels_lost: int
    labels_duplicated: int
    orphaned_labels: int  # stored training labels the final flow does not count
    problems: list[str]
    labels_recomputed: int = 0  # oracle outputs stored more than once for one structure
    committees_retrained: int = 0  # fine-tunes of one iteration finished more than once

    @property
    def consistent(self) -> bool:
        return not self.problems


def audit(campaign_dir: Path, campaign: str, counter: Path) -> Audit:
    """Count labels lost and duplicated, and check the store's consistency."""
    from frostline.registry.queries import open_campaign_dir
    from frostline.schemas import LabelledStructure

    problems: list[str] = []
    lines = [ln.split() for ln in counter.read_text().splitlines() if ln.strip()]
    jobs = {(h, pid, inst) for h, pid, inst in lines}
    per_hash = Counter(h for h, _, _ in jobs)
    records = open_campaign_dir(campaign_dir)
    try:
        labelled = records.find("labelled", {"campaign": campaign})
        keys = Counter(tuple(d[k] for k in LABEL_KEY) for d in labelled)
        problems += [f"label stored {n} times: {k}" for k, n in keys.items() if n > 1]
        for d in labelled:
            try:
                LabelledStructure.model_validate(d)
            except Exception as exc:  # a partial document
                problems.append(f"invalid label document {d.get('structure_hash')}: {exc}")
        ok = {d["structure_hash"] for d in labelled if d.get("status") == "ok"}
        lost = set(per_hash) - ok
        problems += [f"label computed but not stored: {h}" for h in sorted(lost)]
        doc = records.campaign(campaign) or {}
        if doc.get("state") not in ("stopped", "converged"):
            problems.append(f"campaign state {doc.get('state')!r}")
        its = records.find("iterations", {"campaign": campaign})
        idx = Counter(d["index"] for d in its)
        problems += [f"iteration {i} stored {n} times" for i, n in idx.items() if n > 1]
        if sorted(idx) != list(range(doc.get("n_iterations", -1))):
            problems.append(f"iterations {sorted(idx)} for n_iterations {doc.get('n_iterations')}")
        orphaned = 0
        if its:
            last = max(its, key=lambda d: d["index"])
            n_train_ok = sum(
                1 for d in labelled if d.get("role") == "train" and d.get("status") == "ok"
            )
            orphaned = n_train_ok - (last["n_labelled"] + last["n_new_labels"])
            if orphaned:
                problems.append(f"{orphaned} stored training labels not in the final training set")
        for m in records.find("model_docs", {"campaign": campaign}):
            try:
                records.get_model_file(m["model_id"], expected_sha256=m["file"]["sha256"])
            except Exception as exc:
                problems.append(f"model {m['model_id']}: {exc}")
        for model_id in doc.get("final_model_ids") or []:
            if not records.find("model_docs", {"model_id": model_id}):
                problems.append(f"final model {model_id} has no document")
        recomputed, retrained = redone_work(records, campaign)
    finally:
        records.close()
    return Audit(
        oracle_calls=len(jobs),
        labels_computed=len(per_hash),
        labels_ok=len(ok),
        labels_lost=len(lost) + max(0, orphaned),
        labels_duplicated=sum(n - 1 for n in per_hash.values()),
        orphaned_labels=orphaned,
        problems=problems,
        labels_recomputed=recomputed,
        committees_retrained=retrained,
    )


def redone_work(records, campaign: str) -> tuple[int, int]:
    """(labels recomputed, committees retrained): finished work a resumed run did again.

    A label is recomputed when the job store holds more than one finished oracle output for
    its structure (a stored output was not reused); a committee is retrained when an
    iteration has more than one finished fine-tune (a member index stored twice).
    """
    from frostline.label.jobs import ORACLE_OUTPUT

    field = f"metadata.{ORACLE_OUTPUT}.structure_hash"
    outputs = records.job_store.docs_store.query({field: {"$exists": True}}, properties=[field])
    per_structure = Counter(d["metadata"][ORACLE_OUTPUT]["structure_hash"] for d in outputs)
    members = Counter(
        (d.get("iteration"), d.get("member"))
        for d in records.find("model_docs", {"campaign": campaign, "kind": "committee-member"})
    )
    per_iteration: dict = {}
    for (iteration, _), n in members.items():
        per_iteration[iteration] = max(per_iteration.get(iteration, 0), n)
    recomputed = sum(n - 1 for n in per_structure.values())
    return recomputed, sum(n - 1 for n in per_iteration.values())
