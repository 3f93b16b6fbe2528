"""Labelling through atomate2 makers: values, provenance, reuse, failures."""

from __future__ import annotations

import tempfile

import numpy as np
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from atomate2.forcefields.schemas import ForceFieldTaskDocument
from jobflow import run_locally
from pymatgen.io.ase import AseAtomsAdaptor

from frostline.config import OracleConfig
from frostline.label.jobs import LabelMaker
from frostline.schemas import CandidateStructure, LabelledStructure
from frostline.store import Records
from frostline.structures import cu111_slab


def candidates() -> list[CandidateStructure]:
    cu = bulk("Cu", "fcc", cubic=True)
    cu.rattle(0.05, seed=1)
    h2 = molecule("H2", vacuum=4.0)
    h2.pbc = True
    return [
        CandidateStructure(structure=AseAtomsAdaptor.get_structure(a).as_dict())
        for a in (cu, cu111_slab(), h2)
    ]


def run_label(store, oracle: OracleConfig, cands, campaign: str = "c"):
    job = LabelMaker(oracle=oracle, campaign=campaign).make(cands)
    # atomate2 writes files into the job folder: keep them out of the checkout
    root = tempfile.mkdtemp(prefix="frostline-label-")
    responses = run_locally(job, store=store, create_folders=True, root_dir=root, log=False)
    store.connect()
    labels = [LabelledStructure.model_validate(x) for x in job.output.resolve(store)]
    n_oracle_jobs = sum(
        1
        for uuid in responses
        for r in responses[uuid].values()
        if isinstance(r.output, ForceFieldTaskDocument)
    )
    return labels, n_oracle_jobs


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


def test_empty_batch_labels_nothing(job_store):
    labels, n_jobs = run_label(job_store, OracleConfig(name="emt"), [])
    assert labels == [] and n_jobs == 0
