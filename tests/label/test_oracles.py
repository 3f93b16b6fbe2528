"""Labelling through atomate2 makers: values, provenance, reuse, failures."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from helpers.labels import candidates, run_label
from pymatgen.io.ase import AseAtomsAdaptor

from frostline.config import OracleConfig
from frostline.schemas import CandidateStructure
from frostline.store import Records


def test_emt_labels_match_direct_calculation(job_store):
    labels, n_jobs = run_label(job_store, OracleConfig(name="emt"), candidates())
    assert n_jobs == 3 and all(lab.status == "ok" for lab in labels)
    for lab in labels:
        atoms = lab.to_atoms()
        atoms.calc = EMT()
        assert np.isclose(lab.energy, atoms.get_potential_energy(), atol=1e-6)
        assert np.allclose(lab.forces, atoms.get_forces(), atol=1e-6)
        assert np.allclose(lab.stress, atoms.get_stress(), atol=1e-6)
        assert lab.oracle == "emt" and lab.oracle_settings_hash and lab.structure_hash
    stored = Records(job_store).connect().find("labelled", {"campaign": "c"})
    assert len(stored) == 3


def test_finished_labels_are_reused_not_recomputed(job_store, tmp_path):
    counter = tmp_path / "calls.txt"
    oracle = OracleConfig(
        name="ase", settings={"calculator": "oracle_stubs.CountingEMT", "counter": str(counter)}
    )
    first, _ = run_label(job_store, oracle, candidates()[:2])
    assert counter.read_text().count("call") >= 2
    calls = counter.read_text().count("call")
    second, n_jobs = run_label(job_store, oracle, candidates())  # two known, one new
    assert n_jobs == 1
    assert counter.read_text().count("call") - calls >= 1
    assert {lab.structure_hash for lab in first} < {lab.structure_hash for lab in second}
    assert len(second) == 3 and all(lab.status == "ok" for lab in second)


def test_crashed_oracle_is_recorded_and_rest_proceed(job_store):
    oracle = OracleConfig(name="ase", settings={"calculator": "oracle_stubs.FailOnHydrogenEMT"})
    labels, _ = run_label(job_store, oracle, candidates())
    status = sorted(lab.status for lab in labels)
    assert status == ["failed", "ok", "ok"]
    failed = next(lab for lab in labels if lab.status == "failed")
    assert failed.reason and failed.energy is None
    assert Records(job_store).connect()["labelled"].count({"status": "failed"}) == 1


def test_nan_forces_are_refused(job_store):
    oracle = OracleConfig(name="ase", settings={"calculator": "oracle_stubs.NaNForcesEMT"})
    labels, _ = run_label(job_store, oracle, candidates()[:1])
    assert labels[0].status == "failed" and "non-finite" in labels[0].reason


def test_forces_that_do_not_sum_to_zero_are_refused(job_store):
    oracle = OracleConfig(name="ase", settings={"calculator": "oracle_stubs.NetForceEMT"})
    labels, _ = run_label(job_store, oracle, candidates()[:1])
    assert labels[0].status == "failed" and "sum to 2.000 eV/Å" in labels[0].reason
    assert labels[0].energy is None  # nothing of the broken result is kept as a label


def test_empty_batch_labels_nothing(job_store):
    labels, n_jobs = run_label(job_store, OracleConfig(name="emt"), [])
    assert labels == [] and n_jobs == 0


# -- kill a labelling batch midway, then resume ------------------------------------------------
_KILLED_RUN = """
import json, sys
from jobflow import run_locally
from frostline.config import OracleConfig, StoreConfig
from frostline.label.jobs import LabelMaker
from frostline.store import make_job_store

store_dir, oracle, cands, root = sys.argv[1:5]
store = make_job_store(StoreConfig(), store_dir)
job = LabelMaker(oracle=OracleConfig.model_validate(json.load(open(oracle))), campaign="k").make(
    json.load(open(cands))
)
run_locally(job, store=store, create_folders=True, root_dir=root, log=False)
"""


@pytest.mark.slow
def test_killed_batch_keeps_finished_labels_and_resumes(tmp_path):
    import json
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from frostline.config import StoreConfig
    from frostline.store import make_job_store

    cands = []
    for seed in range(5):
        cu = bulk("Cu", "fcc", a=3.6, cubic=True)
        cu.rattle(0.05, seed=seed)
        cands.append(CandidateStructure(structure=AseAtomsAdaptor.get_structure(cu).as_dict()))
    counter, switch = tmp_path / "calls.txt", tmp_path / "kill.switch"
    switch.touch()
    oracle = OracleConfig(
        name="ase",
        settings={
            "calculator": "oracle_stubs.KillSwitchEMT",
            "counter": str(counter),
            "switch": str(switch),
            "kill_at": 3,
        },
    )
    (tmp_path / "oracle.json").write_text(oracle.model_dump_json())
    (tmp_path / "cands.json").write_text(json.dumps([c.model_dump(mode="json") for c in cands]))
    (tmp_path / "run1").mkdir()
    tests_dir = str(Path(__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([tests_dir, os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _KILLED_RUN,
            str(tmp_path),
            str(tmp_path / "oracle.json"),
            str(tmp_path / "cands.json"),
            str(tmp_path / "run1"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not switch.exists()
    store = make_job_store(StoreConfig(), tmp_path)  # a fresh connection to the same store
    records = Records(store).connect()
    kept = records.find("labelled", {"campaign": "k"})
    assert len(kept) == 2 and all(d["status"] == "ok" for d in kept)  # finished before the kill
    before = {d["structure_hash"]: d["energy"] for d in kept}
    records.close()

    labels, n_jobs = run_label(store, oracle, cands, campaign="k")  # resume
    assert n_jobs == 3  # only the structures without a label
    calls = counter.read_text().split()
    assert len(calls) == 5 and len(set(calls)) == 5  # every structure computed exactly once
    assert len(labels) == 5 and all(lab.status == "ok" for lab in labels)
    assert {lab.structure_hash: lab.energy for lab in labels if lab.structure_hash in before} == (
        before
    )
    stored = Records(store).connect().find("labelled", {"campaign": "k"})
    keys = [(d["structure_hash"], d["oracle_settings_hash"], d["role"]) for d in stored]
    assert len(stored) == 5 and len(set(keys)) == 5  # none lost, none duplicated


def test_duplicates_in_a_batch_are_computed_once(job_store):
    cands = candidates()
    labels, n_jobs = run_label(job_store, OracleConfig(name="emt"), [cands[0], cands[0], cands[2]])
    assert n_jobs == 2 and len(labels) == 2


def test_oracle_hash_follows_settings():
    from frostline.label.oracles import oracle_hash, oracle_settings

    base = oracle_hash(OracleConfig(name="cp2k"))
    assert base != oracle_hash(OracleConfig(name="cp2k", settings={"input": {"cutoff": 600}}))
    assert base != oracle_hash(OracleConfig(name="cp2k", settings={"kpoints": "gamma"}))
    # how CP2K runs (threads, command) does not change the numbers
    assert base == oracle_hash(OracleConfig(name="cp2k", settings={"omp_threads": 1}))
    vasp = oracle_hash(OracleConfig(name="vasp"))
    assert vasp != oracle_hash(OracleConfig(name="vasp", settings={"incar": {"ENCUT": 700}}))
    assert oracle_settings(OracleConfig(name="cp2k"))["input"]["cutoff"] >= 500
    # the ASE oracles keep the hash they had before (labels in existing stores stay valid)
    from frostline.schemas import settings_hash

    assert oracle_hash(OracleConfig(name="emt")) == settings_hash(
        {"oracle": "emt", "calculator": "ase.calculators.emt.EMT"}
    )


def test_maker_oracle_takes_any_atomate2_maker(job_store):
    oracle = OracleConfig(
        name="maker",
        settings={
            "maker": "atomate2.forcefields.jobs.ForceFieldStaticMaker",
            "kwargs": {"force_field_name": {"@module": "ase.calculators.emt", "@callable": "EMT"}},
        },
    )
    labels, n_jobs = run_label(job_store, oracle, candidates()[:1])
    assert n_jobs == 1 and labels[0].status == "ok" and labels[0].oracle == "maker"
    atoms = labels[0].to_atoms()
    atoms.calc = EMT()
    assert np.allclose(labels[0].forces, atoms.get_forces(), atol=1e-6)
    with pytest.raises(ValueError, match="settings.maker"):
        OracleConfig(name="maker", settings={"kwargs": {}})


def test_a_stored_oracle_output_without_its_label_is_recorded_not_recomputed(job_store, tmp_path):
    """A run killed after an oracle job's output was stored and before ``record label`` wrote
    the label: the next run records that output instead of calling the oracle again."""
    counter = tmp_path / "calls.txt"
    oracle = OracleConfig(
        name="ase", settings={"calculator": "oracle_stubs.CountingEMT", "counter": str(counter)}
    )
    first, n_jobs = run_label(job_store, oracle, candidates()[:2])
    assert n_jobs == 2
    calls = counter.read_text().count("call")
    records = Records(job_store).connect()
    records["labelled"].remove_docs({})  # the state of a kill between the two jobs
    assert records.find("labelled") == []
    second, n_jobs = run_label(job_store, oracle, candidates())  # two stored, one new
    assert n_jobs == 1  # calls per structure as in the first run: one structure computed
    assert counter.read_text().count("call") - calls == calls // 2
    stored = {lab.structure_hash: lab for lab in second}
    for lab in first:  # the very same calculation, recorded from the stored output
        assert stored[lab.structure_hash].job_uuid == lab.job_uuid
        assert stored[lab.structure_hash].energy == lab.energy
    assert len(records.find("labelled", {"status": "ok"})) == 3
