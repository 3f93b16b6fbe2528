"""Exploration sampler: MD frames carry committee uncertainty; bad trajectories stop early."""

from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.emt import EMT

from frostline.explore.samplers import committee_uncertainty, langevin_frames
from frostline.structures import cu111_slab


def test_langevin_frames_with_single_model():
    frames = list(langevin_frames(cu111_slab(), EMT(), 300.0, steps=20, sample_every=5, seed=1))
    assert [f.step for f in frames] == [5, 10, 15, 20]
    assert all(f.max_force_std == 0.0 for f in frames)  # one model has no spread
    assert not np.allclose(frames[0].atoms.positions, frames[-1].atoms.positions)


class FakeCommittee(EMT):
    """EMT plus a fixed force variance, standing in for a committee's spread."""

    def __init__(self, var: float):
        super().__init__()
        self.var = var

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        super().calculate(atoms, properties, system_changes)
        n = len(self.atoms)
        self.results["forces_var"] = np.full((n, 3), self.var)
        self.results["energy_var"] = 4.0


def test_committee_uncertainty_definition():
    slab = cu111_slab()
    calc = FakeCommittee(0.01)
    slab.calc = calc
    slab.get_forces()
    f_std, e_std = committee_uncertainty(calc, slab)
    assert np.isclose(f_std, np.sqrt(0.03))
    assert np.isclose(e_std, 2.0 / len(slab))


def test_trajectory_aborts_beyond_force_std():
    frames = list(
        langevin_frames(cu111_slab(), FakeCommittee(1.0), 300.0, 50, 5, abort_force_std=1.0)
    )
    assert len(frames) == 1 and frames[0].max_force_std > 1.0


def test_committee_uncertainty_requests_member_forces_on_demand(foundation):
    """A calculator computing member forces only on request still yields the force deviation."""
    from frostline.explore.shared_committee import (
        SharedCommittee,
        SharedCommitteeCalculator,
        load_mace_model,
        perturbed_member,
    )

    base = load_mace_model(foundation)
    committee = SharedCommittee([perturbed_member(base, k, scale=0.1) for k in range(2)], "cpu")
    calc = SharedCommitteeCalculator(committee)
    frames = list(langevin_frames(cu111_slab(), calc, 300.0, steps=4, sample_every=2, seed=1))
    assert [f.step for f in frames] == [2, 4]
    assert all(f.max_force_std > 0 and f.energy_std_per_atom > 0 for f in frames)


@pytest.mark.slow
def test_explore_maker_engines_give_the_same_candidates(foundation, tmp_path):
    """engine='batched' (one batch, shared-trunk committee) == engine='ase' (MACECalculator)."""
    from jobflow import run_locally
    from pymatgen.io.ase import AseAtomsAdaptor

    from frostline.config import StoreConfig
    from frostline.explore.jobs import ExploreMaker
    from frostline.explore.shared_committee import load_mace_model, perturbed_member
    from frostline.finetune.safe_model import model_to_blob
    from frostline.schemas import ExploreResult, FineTuneResult, ModelDoc, ModelFile
    from frostline.store import Records, make_job_store
    from frostline.structures import h2_on_slab

    store = make_job_store(StoreConfig(), tmp_path)
    records = Records(store).connect()
    base = load_mace_model(foundation)
    docs = []
    for k in range(2):
        data = model_to_blob(perturbed_member(base, seed=k, scale=0.1))
        sha = records.put_model_file(f"m{k}", data)
        file = ModelFile(filename=f"m{k}.model", sha256=sha, size_bytes=len(data))
        docs.append(
            ModelDoc(model_id=f"m{k}", kind="committee-member", elements=["Cu", "H"], file=file)
        )
    finetuned = FineTuneResult(
        models=docs, freeze_level=6, trainable_parameters=1, total_parameters=2, wall_time_s=0.0
    ).model_dump(mode="json")
    rng = np.random.default_rng(3)
    starts = [AseAtomsAdaptor.get_structure(h2_on_slab(cu111_slab(), rng)).as_dict() for _ in "ab"]
    results = {}
    runs = (
        ("ase", "float64", 0.0),
        ("batched", "float64", 0.0),
        ("batched", "float32", 0.0),
        ("batched", "float32", 0.04),
    )
    for engine, dtype, max_strain in runs:
        maker = ExploreMaker(
            temperatures=[300.0, 700.0],
            steps=8,
            sample_every=4,
            starts_per_temperature=1,
            engine=engine,
            dtype=dtype,
            max_strain=max_strain,
            device="cpu",
        )
        job = maker.make(finetuned, starts, 1)
        root = tmp_path / f"{engine}-{dtype}-{max_strain}"
        run_locally(job, store=store, root_dir=root, create_folders=True, log=False)
        store.connect()
        key = engine if dtype == "float64" else f"{engine}-{dtype}"
        key += "-strained" if max_strain else ""
        results[key] = ExploreResult.model_validate(job.output.resolve(store))
    ase, batched = results["ase"], results["batched"]
    assert len(ase.candidates) == len(batched.candidates) == 4
    assert ase.n_steps_total == batched.n_steps_total == 16
    assert ase.n_trajectories == batched.n_trajectories == 2
    for a, b in zip(ase.candidates, batched.candidates, strict=True):
        assert a.provenance.temperature == b.provenance.temperature
        sa, sb = (np.array([s["xyz"] for s in c.structure["sites"]]) for c in (a, b))
        assert np.allclose(sa, sb, atol=1e-8)
        assert np.isclose(a.max_force_std, b.max_force_std, rtol=1e-6)
        assert np.isclose(a.max_force, b.max_force, rtol=1e-6) and a.max_force > 0
        assert np.isclose(a.energy_std_per_atom, b.energy_std_per_atom, rtol=1e-6)
    # the frames are kept in the data store, the output documents only refer to them
    outputs = list(store.docs_store.query({"name": "explore"}, ["output", "uuid", "index"]))
    assert len(outputs) == len(runs)
    for doc in outputs:
        assert set(doc["output"]["candidates"]) >= {"blob_uuid", "store"}
        assert doc["output"]["candidates"]["store"] == "data"
        assert doc["output"]["n_trajectories"] == 2  # the small fields stay in the document
    data = store.additional_stores["data"]
    assert data.count({"job_uuid": {"$in": [d["uuid"] for d in outputs]}}) == len(runs)
    # a resumed run (same maker, models, starts, iteration) reuses the frames through the memo
    rerun = ExploreMaker(
        temperatures=[300.0, 700.0], steps=8, sample_every=4, starts_per_temperature=1,
        engine="ase", device="cpu",
    ).make(finetuned, starts, 1)  # fmt: skip
    run_locally(rerun, store=store, root_dir=tmp_path / "again", create_folders=True, log=False)
    store.connect()
    assert ExploreResult.model_validate(rerun.output.resolve(store)) == ase
    # float32 MD (twice as fast on CPU) stays on the float64 trajectory over these 8 steps
    for a, b in zip(batched.candidates, results["batched-float32"].candidates, strict=True):
        sa, sb = (np.array([s["xyz"] for s in c.structure["sites"]]) for c in (a, b))
        assert np.allclose(sa, sb, atol=1e-3)
        assert np.isclose(a.max_force_std, b.max_force_std, rtol=1e-2, atol=1e-4)
    # strained starts: every trajectory runs in its own strained copy of its start cell
    cells = [np.array(c.structure["lattice"]["matrix"]) for c in batched.candidates]
    strained = [
        np.array(c.structure["lattice"]["matrix"])
        for c in results["batched-float32-strained"].candidates
    ]
    assert all(np.allclose(c, cells[0]) for c in cells)  # fixed-cell MD from unstrained starts
    assert all(not np.allclose(c, cells[0], atol=1e-3) for c in strained)
    assert not np.allclose(strained[0], strained[2])  # one strain per trajectory
    assert np.allclose(strained[0], strained[1])  # kept along the trajectory
    with pytest.raises(ValueError, match="ExploreMaker field 'max_strain'"):
        ExploreMaker(max_strain=0.6)
    with pytest.raises(ValueError, match="ExploreMaker field 'engine'"):
        ExploreMaker(engine="lammps")
    with pytest.raises(ValueError, match="ExploreMaker field 'dtype'"):
        ExploreMaker(dtype="float16")


def test_strained_start_cells_are_seeded_and_bounded():
    from ase.build import bulk

    from frostline.explore.jobs import ExploreMaker

    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    maker = ExploreMaker(temperatures=[300.0, 900.0], starts_per_temperature=3, max_strain=0.05)
    plan = maker.plan(1, iteration=2)
    cells = maker.start_cells([cu], plan)
    again = maker.start_cells([cu], plan)
    assert all(np.allclose(a.cell, b.cell) for a, b in zip(cells, again, strict=True))
    volumes = np.array([a.get_volume() for a in cells]) / cu.get_volume()
    assert len(set(np.round(volumes, 6))) == len(plan)  # every trajectory its own cell
    assert np.all(np.abs(volumes - 1) < 3 * 0.05 + 0.01)
    for atoms in cells:  # a pure strain: symmetric deformation gradient, within the bound
        eps = np.linalg.solve(cu.cell.array, atoms.cell.array) - np.eye(3)
        assert np.allclose(eps, eps.T) and np.abs(eps).max() <= 0.05
        assert np.allclose(atoms.get_scaled_positions(), cu.get_scaled_positions())
    unstrained = ExploreMaker(max_strain=0.0).start_cells([cu], plan)
    assert all(np.allclose(a.cell, cu.cell) for a in unstrained)
