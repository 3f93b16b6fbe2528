"""Batched MD: replicas in one batch follow the trajectories they follow alone and in ASE."""

from __future__ import annotations

import mace  # noqa: F401
import numpy as np
import pytest
import torch
from ase import units
from ase.md.velocitydistribution import thermalize_momenta
from ase.md.verlet import VelocityVerlet
from mace.calculators import MACECalculator

from frostline.explore.batched import BatchedLangevin, batched_langevin_frames
from frostline.explore.samplers import langevin_frames
from frostline.explore.shared_committee import SharedCommittee, load_mace_model, perturbed_member
from frostline.structures import cu111_slab, h2_on_slab


@pytest.fixture(scope="module")
def paths(foundation, tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("batched-members")
    base = load_mace_model(foundation)
    out = []
    for k in range(2):
        path = folder / f"m{k}.model"
        torch.save(perturbed_member(base, seed=k, scale=0.1), path)
        out.append(str(path))
    return out


@pytest.fixture(scope="module")
def committee(paths) -> SharedCommittee:
    return SharedCommittee.from_paths(paths, device="cpu")


@pytest.fixture(scope="module")
def starts():
    rng = np.random.default_rng(11)
    return [h2_on_slab(cu111_slab(), rng) for _ in range(2)]


def _positions(replica):
    return np.array([f.atoms.positions for f in replica.frames])


@pytest.mark.slow
def test_identical_replicas_follow_the_batch_of_one(committee, starts):
    one = batched_langevin_frames(committee, starts[:1], [600.0], [5], 8, 4)[0]
    many = batched_langevin_frames(committee, starts[:1] * 3, [600.0] * 3, [5] * 3, 8, 4)
    assert [f.step for f in one.frames] == [4, 8]
    assert not np.allclose(_positions(one)[0], _positions(one)[-1])
    for rep in many:
        assert np.allclose(_positions(rep), _positions(one), atol=1e-10, rtol=0)
        for a, b in zip(rep.frames, one.frames, strict=True):
            assert np.isclose(a.max_force_std, b.max_force_std, rtol=1e-8)
            assert np.isclose(a.energy_std_per_atom, b.energy_std_per_atom, rtol=1e-8)


@pytest.mark.slow
def test_velocity_verlet_matches_ase(committee, paths, starts):
    """friction=0 is velocity Verlet; same initial momenta, mace's own calculator in ASE."""
    start = starts[0].copy()
    thermalize_momenta(start, temperature_K=500.0, rng=np.random.default_rng(2))
    ref = start.copy()
    ref.calc = MACECalculator(model_paths=paths, device="cpu", default_dtype="float64")
    VelocityVerlet(ref, timestep=1.0 * units.fs).run(8)
    md = BatchedLangevin(
        committee, [start, starts[1]], [500.0, 500.0], [0, 1], friction=0.0, thermalize=False
    )
    replicas = md.run(8, sample_every=8)
    frame = replicas[0].frames[-1]
    assert frame.step == 8
    assert np.allclose(frame.atoms.positions, ref.positions, atol=1e-9, rtol=0)
    assert np.allclose(frame.atoms.get_momenta(), ref.get_momenta(), atol=1e-8, rtol=0)
    assert not np.allclose(frame.atoms.positions, start.positions, atol=1e-3)


@pytest.mark.slow
def test_langevin_replicas_match_the_ase_engine(committee, paths, starts):
    """Each replica of one batch reproduces langevin_frames (ASE Langevin + MACECalculator)."""
    calc = MACECalculator(model_paths=paths, device="cpu", default_dtype="float64")
    temps, seeds = [300.0, 900.0], [7, 8]
    replicas = batched_langevin_frames(committee, starts, temps, seeds, 10, 5)
    for rep, start, temp, seed in zip(replicas, starts, temps, seeds, strict=True):
        ref = list(langevin_frames(start, calc, temp, 10, 5, seed=seed))
        assert [f.step for f in rep.frames] == [f.step for f in ref] == [5, 10]
        for a, b in zip(rep.frames, ref, strict=True):
            assert np.allclose(a.atoms.positions, b.atoms.positions, atol=1e-9, rtol=0)
            assert np.allclose(a.atoms.get_momenta(), b.atoms.get_momenta(), atol=1e-8, rtol=0)
            assert np.isclose(a.max_force_std, b.max_force_std, rtol=1e-7)
            assert np.isclose(a.max_force, b.max_force, rtol=1e-7) and a.max_force > 0
            assert np.isclose(a.energy_std_per_atom, b.energy_std_per_atom, rtol=1e-7)
            assert np.isclose(a.min_distance, b.min_distance)
            assert a.max_force_std > 0


def test_skin_lists_equal_lists_rebuilt_every_step(committee, starts):
    kwargs = dict(temperatures=[1500.0, 1500.0], seeds=[3, 4], timestep_fs=1.0)
    every = BatchedLangevin(committee, starts, skin=0.0, **kwargs)
    skin = BatchedLangevin(committee, starts, skin=0.3, **kwargs)
    a, b = every.run(8, 4), skin.run(8, 4)
    assert every.n_rebuilds == 2 * 8
    assert 0 < skin.n_rebuilds < every.n_rebuilds  # H atoms move 0.15 Å in a few steps
    for ra, rb in zip(a, b, strict=True):
        assert np.allclose(_positions(ra), _positions(rb), atol=1e-10, rtol=0)


def test_replica_leaving_the_trust_window_stops_alone(committee, starts):
    """A replica beyond abort_force_std leaves the batch; the others go on unchanged."""
    rng = np.random.default_rng(0)
    hot = h2_on_slab(cu111_slab(), rng, bond=(0.6, 0.62), height=(1.3, 1.4))  # squeezed H2
    cold = cu111_slab()
    args = ([cold, hot], [100.0, 100.0], [1, 2], 8, 4)
    pilot = batched_langevin_frames(committee, *args, abort_force_std=np.inf)
    cold_max = max(f.max_force_std for f in pilot[0].frames)
    hot_first = pilot[1].frames[0].max_force_std
    assert cold_max < hot_first, (cold_max, hot_first)
    threshold = 0.5 * (cold_max + hot_first)
    md = BatchedLangevin(committee, *args[:3])
    calls: list[int] = []
    run = md.run(8, 4, abort_force_std=threshold, on_step=calls.append)
    assert run[1].stopped == "force_std" and run[1].steps_done == 4
    assert [f.step for f in run[1].frames] == [4]
    assert run[0].stopped is None and run[0].steps_done == 8
    assert calls == [2] * 4 + [1] * 4  # replica-steps saved
    assert np.allclose(_positions(run[0]), _positions(pilot[0]), atol=1e-10, rtol=0)


def test_bad_arguments_name_the_field(committee, starts):
    with pytest.raises(ValueError, match="temperatures"):
        BatchedLangevin(committee, starts, [300.0], [0, 1])
    with pytest.raises(ValueError, match="skin"):
        BatchedLangevin(committee, starts, [300.0] * 2, [0, 1], skin=-1)
    md = BatchedLangevin(committee, starts, [300.0] * 2, [0, 1])
    with pytest.raises(ValueError, match="sample_every"):
        md.run(10, 0)
