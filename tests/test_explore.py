"""Exploration sampler: MD frames carry committee uncertainty; bad trajectories stop early."""

from __future__ import annotations

import numpy as np
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
