"""Selection rules and stopping criteria on fixed synthetic committees."""

from __future__ import annotations

import numpy as np
from ase.build import fcc111
from pymatgen.io.ase import AseAtomsAdaptor

from frostline.config import ConvergenceConfig
from frostline.schemas import CandidateStructure, ExploreResult
from frostline.select.convergence import stop_reason
from frostline.select.jobs import SelectMaker
from frostline.select.uncertainty import Fate, classify


def candidate(std: float, squeeze: bool = False) -> CandidateStructure:
    atoms = fcc111("Cu", (1, 1, 2), vacuum=4.0)
    atoms.pbc = True
    if squeeze:
        atoms.positions[1] = atoms.positions[0] + [0.3, 0, 0]
    return CandidateStructure(
        structure=AseAtomsAdaptor.get_structure(atoms).as_dict(), max_force_std=std
    )


def test_classify_trust_window():
    assert classify(candidate(0.01), 0.05, 0.5, 0.6) == Fate.ACCURATE
    assert classify(candidate(0.2), 0.05, 0.5, 0.6) == Fate.UNCERTAIN
    assert classify(candidate(0.7), 0.05, 0.5, 0.6) == Fate.FAILED
    assert classify(candidate(float("nan")), 0.05, 0.5, 0.6) == Fate.FAILED


def test_squeezed_dimer_is_failed():
    assert classify(candidate(0.2, squeeze=True), 0.05, 0.5, 0.6) == Fate.FAILED


def run_select(maker: SelectMaker, stds, spent: int = 0, iteration: int = 0):
    explored = ExploreResult(
        candidates=[candidate(s) for s in stds], n_trajectories=1, n_steps_total=10, wall_time_s=0
    )
    return maker.make.original(maker, explored, spent, iteration)


def test_budget_and_cap_are_never_exceeded():
    conv = ConvergenceConfig(max_iterations=10, label_budget=23, accurate_fraction=0.99)
    maker = SelectMaker(max_labels_per_iteration=5, convergence=conv)
    stds = list(np.linspace(0.06, 0.4, 30))
    assert len(run_select(maker, stds, spent=0).selected) == 5
    res = run_select(maker, stds, spent=20)
    assert len(res.selected) == 3 and res.n_over_budget == 27
    res = run_select(maker, stds, spent=23)
    assert res.selected == [] and res.stop_reason == "label budget spent"


def test_converged_when_accurate_fraction_reached():
    maker = SelectMaker(convergence=ConvergenceConfig(accurate_fraction=0.8, max_iterations=5))
    res = run_select(maker, [0.01] * 9 + [0.2])
    assert res.stop_reason == "converged" and res.selected == []
    assert res.accurate_fraction == 0.9


def test_empty_selection_stops_cleanly():
    maker = SelectMaker(convergence=ConvergenceConfig(accurate_fraction=0.9, max_iterations=5))
    res = run_select(maker, [0.9, 0.9, 0.01])  # nothing uncertain, not converged
    assert res.selected == [] and res.stop_reason == "no candidates to label"
    res = run_select(maker, [])
    assert res.selected == [] and res.stop_reason == "no candidates to label"


def test_stop_reason_order():
    conv = ConvergenceConfig(accurate_fraction=0.9, max_iterations=3, label_budget=10)
    assert stop_reason(conv, 0, 0.5, 5, 4) is None
    assert stop_reason(conv, 2, 0.5, 5, 4) == "max iterations"
    assert stop_reason(conv, 0, 0.95, 50, 0) == "converged"
