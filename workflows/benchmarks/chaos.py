"""Chaos benchmark: kill -9 a campaign N times, inject faults, fuzz inputs; print the totals.

    python workflows/benchmarks/chaos.py --kills 20 --fuzz 100 --out /tmp/chaos

Totals printed (and written to OUT/chaos.json): kills survived (random ones, and ones aimed
between an oracle job's stored output and its label record, and just after a finished
fine-tune), faults injected (and how many were recorded and isolated), bad inputs tried (all
refused or accepted cleanly; foundation files that are not models and bad campaign names
included), labels lost, duplicated and recomputed (goal 0) and committees retrained (goal 0).
``tests/reliability/`` (``test_chaos.py``, ``test_reliability.py``, ``test_fuzz_inputs.py``)
runs the same harness with fewer cases.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from ase.build import bulk, molecule
from jobflow import run_locally
from pymatgen.io.ase import AseAtomsAdaptor

from frostline.config import OracleConfig, StoreConfig
from frostline.label.jobs import LabelMaker
from frostline.reliability.faults import FaultLog
from frostline.schemas import CandidateStructure, LabelledStructure
from frostline.store import BLOB_STORE, Records, StoreError, make_job_store
from frostline.testing.chaos import (
    AIMED_MARKS,
    audit,
    chaos_campaign,
    kill_and_resume,
    kill_at,
    write_config,
)

FAULTY = "frostline.testing.faulty_oracles"


def candidates(n: int = 3) -> list[CandidateStructure]:
    out = []
    for seed in range(n - 1):
        cu = bulk("Cu", "fcc", a=3.6, cubic=True)
        cu.rattle(0.05, seed=seed)
        out.append(cu)
    h2 = molecule("H2", vacuum=4.0)
    h2.pbc = True
    out.append(h2)
    return [CandidateStructure(structure=AseAtomsAdaptor.get_structure(a).as_dict()) for a in out]


def label(store, oracle: OracleConfig, cands, root: Path) -> tuple[list, list]:
    job = LabelMaker(oracle=oracle, campaign="faults").make(cands)
    with FaultLog(console=False) as faults:
        run_locally(job, store=store, create_folders=True, root_dir=root, log=False)
    store.connect()
    labels = [LabelledStructure.model_validate(x) for x in job.output.resolve(store)]
    return labels, faults.faults


def inject_faults(work: Path) -> dict:
    """Each fault once; 'handled' when recorded and the rest of the batch went on."""
    results = {}
    store = make_job_store(StoreConfig(), work / "faults")
    records = Records(store).connect()
    label(store, OracleConfig(name="emt"), candidates(), work)  # labels bought before
    before = records.find("labelled")
    cases = {
        "oracle raises": OracleConfig(
            name="ase", settings={"calculator": f"{FAULTY}.RaisingEMT", "element": "H"}
        ),
        "NaN forces": OracleConfig(name="ase", settings={"calculator": f"{FAULTY}.NaNEMT"}),
        "wrong atom count": OracleConfig(
            name="ase", settings={"calculator": f"{FAULTY}.WrongCountEMT"}
        ),
        "oracle hangs (timeout)": OracleConfig(
            name="ase",
            settings={"calculator": f"{FAULTY}.HangingEMT", "hang_s": 600, "max_atoms": 2},
            timeout_s=2,
        ),
    }
    for name, oracle in cases.items():
        labels, _ = label(store, oracle, candidates(), work)
        failed = [x for x in labels if x.status == "failed"]
        results[name] = bool(failed) and all(x.reason for x in failed) and len(labels) == 3
    after = {d["structure_hash"] + d["oracle_settings_hash"]: d for d in records.find("labelled")}
    untouched = all(after[d["structure_hash"] + d["oracle_settings_hash"]] == d for d in before)
    # corrupted model file: refused before anything is loaded
    from frostline.finetune.committee import fetch_model_files
    from frostline.finetune.foundation import MINI_FOUNDATION
    from frostline.schemas import ModelDoc, ModelFile

    sha = records.put_model_file("m", MINI_FOUNDATION.read_bytes())
    blob = records[BLOB_STORE].query_one({"model_id": "m"})
    blob["data_b64"] = "AAAA" + blob["data_b64"][4:]
    records[BLOB_STORE].update([blob], key="model_id")
    doc = ModelDoc(
        model_id="m",
        kind="committee-member",
        elements=["Cu"],
        file=ModelFile(filename="m", sha256=sha, size_bytes=1),
    )
    out = work / "fetched"
    try:
        fetch_model_files(records, [doc], out)
        results["model file corrupted"] = False
    except StoreError:
        results["model file corrupted"] = not any(out.iterdir())
    results["store outage (server stopped, restarted)"] = store_outage(work)
    results["_nothing stored modified"] = untouched
    return results


def store_outage(work: Path) -> bool:
    from secantus import SecantusDBServer

    storage = str(work / "outage-db")
    servers = [SecantusDBServer(storage_path=storage, port=0)]
    servers[0].start()
    port = servers[0].port
    config = StoreConfig(kind="mongodb", uri=servers[0].uri, database="outage")
    store = make_job_store(config, timeout_ms=500, retry_s=60)
    oracle = OracleConfig(
        name="ase", settings={"calculator": f"{FAULTY}.HangingEMT", "hang_s": 0.3}
    )

    def outage():
        time.sleep(2.0)
        servers[0].stop()
        time.sleep(3.0)
        servers.append(SecantusDBServer(storage_path=storage, port=port))
        servers[1].start()

    thread = threading.Thread(target=outage)
    thread.start()
    try:
        labels, faults = label(store, oracle, candidates(8), work)
        thread.join()
        return not faults and len(labels) == 8 and all(x.status == "ok" for x in labels)
    finally:
        thread.join()
        servers[-1].stop()


def _runner(check, work: Path, k):
    """One hypothesis test body: ``check`` each case in a folder of its own."""

    def run(case) -> None:
        check(case, work / f"f{next(k)}")

    return run


def fuzz(work: Path, n: int) -> Counter:
    """Bad configs, seed and labelled structure files (``n`` each), foundation files that are
    not models (truncated, random, a directory) and campaign names too long or naming a path
    (``n // 5`` each, at least 10): every one refused in one line or accepted cleanly."""
    from hypothesis import HealthCheck, given, settings

    from frostline.testing import fuzz as f

    config_case, structures = f.strategies()
    model_files, names = f.file_and_name_strategies()
    counts: Counter = Counter()
    k = iter(range(10**9))
    few = max(10, n // 5)
    for strategy, check, examples in (
        (config_case, lambda case, d: f.check_config_case(case, d, counts), n),
        (structures, lambda case, d: f.check_structure_case(case, d, counts, False), n),
        (structures, lambda case, d: f.check_structure_case(case, d, counts, True), n),
        (model_files, lambda case, d: f.check_model_file_case(case, d, counts), few),
        (names, lambda case, d: f.check_name_case(case, d, counts), few),
    ):
        opts = settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,  # the same inputs every run: totals comparable between runs
            database=None,
        )
        given(case=strategy)(opts(_runner(check, work, k)))()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-delay", type=float, default=0.0, help="s after the k-th job")
    parser.add_argument("--max-delay", type=float, default=5.0)
    parser.add_argument(
        "--max-job", type=int, default=20, help="k is drawn from 1..max-job (job starts)"
    )
    parser.add_argument("--fuzz", type=int, default=100, help="cases per input kind")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="frostline-chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    counter = work / "oracle_calls.txt"
    config = write_config(chaos_campaign("chaos", counter), work / "chaos.yaml")
    aimed = kill_at(config, work / "campaign", list(AIMED_MARKS))
    print(f"aimed kills: {[k.stage for k in aimed.kills]} ({aimed.finished_early} not reached)")
    run = kill_and_resume(
        config,
        work / "campaign",
        args.kills,
        args.seed,
        (args.min_delay, args.max_delay),
        job_range=(1, args.max_job),
    )
    result = audit(work / "campaign", "chaos", counter)
    stages = Counter(k.stage.split(" ")[0] or "start-up" for k in run.kills)
    stages.update(f"aimed: {k.stage}" for k in aimed.kills)
    print(f"kills: {len(run.kills)} (stages {dict(stages)}), final run exit {run.final_returncode}")

    faults = inject_faults(work)
    for name, ok in faults.items():
        print(f"fault {name}: {'handled' if ok else 'NOT HANDLED'}")
    counts = fuzz(work / "fuzz", args.fuzz)
    print(f"bad inputs: {dict(counts)}")

    totals = {
        "kills_survived": (
            len(run.kills) + len(aimed.kills)
            if run.final_returncode == 0 and result.consistent
            else 0
        ),
        "kills": len(run.kills) + len(aimed.kills),
        "aimed_kills": len(aimed.kills),
        "kill_stages": dict(stages),
        "faults_injected": sum(1 for k in faults if not k.startswith("_")),
        "faults_handled": sum(1 for k, v in faults.items() if v and not k.startswith("_")),
        "nothing_stored_modified": faults["_nothing stored modified"],
        "bad_inputs_tried": sum(counts.values()),
        "bad_inputs_refused": sum(v for k, v in counts.items() if k.endswith("refused")),
        "labels_lost": result.labels_lost,
        "labels_duplicated": result.labels_duplicated,
        "labels_recomputed": result.labels_recomputed,
        "committees_retrained": result.committees_retrained,
        "labels": result.labels_ok,
        "store_problems": result.problems,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    (work / "chaos.json").write_text(json.dumps(totals, indent=2))
    print(
        f"\nkills survived {totals['kills_survived']}/{totals['kills']} | faults injected "
        f"{totals['faults_injected']} (handled {totals['faults_handled']}) | bad inputs tried "
        f"{totals['bad_inputs_tried']} (refused cleanly {totals['bad_inputs_refused']}) | labels "
        f"lost {totals['labels_lost']} | labels duplicated {totals['labels_duplicated']} | "
        f"labels recomputed {totals['labels_recomputed']} | committees retrained "
        f"{totals['committees_retrained']} | store problems {len(result.problems)} | "
        f"{totals['wall_s']:.0f} s"
    )


if __name__ == "__main__":
    main()
