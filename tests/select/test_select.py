"""Selection rules on fixed synthetic committees and structures: every fate, budget, calibration."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111, molecule
from pymatgen.io.ase import AseAtomsAdaptor

from frostline.config import ConvergenceConfig, SelectConfig
from frostline.schemas import (
    CandidateStructure,
    ExploreResult,
    Provenance,
    ValidationMetrics,
    as_structure,
)
from frostline.select.batch import Fate, plan_batch, stratum_quotas, trust_fate
from frostline.select.calibration import fit_calibration, max_atomic_force_error
from frostline.select.contacts import ContactIndex, shortest_contacts
from frostline.select.convergence import stop_reason, validation_blocker
from frostline.select.filters import SanityLimits, sanity_reason
from frostline.select.jobs import SelectMaker, exploration_stratum
from frostline.select.novelty import DescriptorModel
from frostline.structures import h2_cu111_structures

LIMITS = SanityLimits()


def slab() -> Atoms:
    atoms = fcc111("Cu", (1, 1, 2), vacuum=4.0)
    atoms.pbc = True
    return atoms


def as_candidate(atoms: Atoms, std: float | None = 0.2, **kw) -> CandidateStructure:
    return CandidateStructure(
        structure=AseAtomsAdaptor.get_structure(atoms).as_dict(), max_force_std=std, **kw
    )


def candidate(std: float, squeeze: bool = False) -> CandidateStructure:
    atoms = slab()
    if squeeze:
        atoms.positions[1] = atoms.positions[0] + [0.3, 0, 0]
    return as_candidate(atoms, std)


@pytest.fixture(scope="module")
def descriptor(foundation) -> DescriptorModel:
    return DescriptorModel(foundation)


@pytest.fixture(scope="module")
def h2cu() -> list[Atoms]:
    return h2_cu111_structures(4, np.random.default_rng(3), include_references=False)


def test_trust_window():
    assert trust_fate(0.01, 0.05, 0.5) == Fate.ACCURATE
    assert trust_fate(0.2, 0.05, 0.5) == Fate.UNCERTAIN
    assert trust_fate(0.5, 0.05, 0.5) == Fate.TOO_UNCERTAIN
    assert trust_fate(float("nan"), 0.05, 0.5) == Fate.TOO_UNCERTAIN
    assert trust_fate(None, 0.05, 0.5) == Fate.TOO_UNCERTAIN


def test_squeezed_dimer_is_rejected_with_reason():
    assert "too close" in sanity_reason(candidate(0.2, squeeze=True).structure, LIMITS)
    assert sanity_reason(candidate(0.2).structure, LIMITS) is None
    dimer = Atoms("Cu2", positions=[[0, 0, 0], [1.2, 0, 0]], cell=[8, 8, 8], pbc=True)
    # 1.2 Å passes the absolute 0.6 Å limit but is < 0.5 x (1.32 + 1.32) Å
    assert "covalent" in sanity_reason(dimer, LIMITS)
    plan = plan_batch([candidate(0.2, squeeze=True), candidate(0.2)], 0.05, 0.5, LIMITS, cap=5)
    assert plan.fates == [Fate.FAILED_FILTER, Fate.SELECTED]
    assert plan.reason_counts() == {"atoms too close": 1}


def test_exploded_collapsed_extreme_and_nan_frames_are_rejected():
    flown = slab()
    flown.positions[1, 2] += 30.0
    flown.cell[2, 2] += 40.0
    assert sanity_reason(flown, LIMITS).startswith("exploded")
    squashed = bulk("Cu", "fcc", a=3.6, cubic=True)
    squashed.set_cell(squashed.cell * 0.55, scale_atoms=True)
    reason = sanity_reason(squashed, SanityLimits(min_distance=0.5, min_distance_ratio=0))
    assert reason == "collapsed cell: 1.94 Å³/atom < 2"  # 3.6³ / 4 x 0.55³
    hot = as_candidate(slab(), 0.2, max_force=55.0)
    assert sanity_reason(hot.structure, LIMITS, max_force=hot.max_force).startswith("extreme")
    broken = slab()
    broken.positions[0, 0] = np.nan
    assert sanity_reason(broken, LIMITS) == "non-finite coordinates or cell"
    h2 = molecule("H2", vacuum=4.0)
    h2.pbc = True
    assert sanity_reason(h2, LIMITS) is None  # an isolated molecule is fine


def run_select(maker: SelectMaker, stds, spent: int = 0, iteration: int = 0, trust=None, **kwargs):
    explored = ExploreResult(
        candidates=[candidate(s) for s in stds], n_trajectories=1, n_steps_total=10, wall_time_s=0
    )
    return maker.make.original(maker, explored, spent, iteration, trust, **kwargs)


def test_budget_and_cap_are_never_exceeded():
    rng = np.random.default_rng(0)
    for _ in range(40):
        budget, cap, spent = rng.integers(1, 40), rng.integers(1, 12), rng.integers(0, 45)
        conv = ConvergenceConfig(max_iterations=10, label_budget=budget, accurate_fraction=0.99)
        maker = SelectMaker(max_labels_per_iteration=cap, convergence=conv, strategy="dpgen")
        res = run_select(maker, list(rng.uniform(0.0, 0.6, 30)), spent=spent)
        assert len(res.selected) <= cap
        assert spent + len(res.selected) <= max(budget, spent)
        assert sum(res.fates.values()) == 30
    conv = ConvergenceConfig(max_iterations=10, label_budget=23, accurate_fraction=0.99)
    maker = SelectMaker(max_labels_per_iteration=5, convergence=conv)
    res = run_select(maker, list(np.linspace(0.06, 0.4, 30)), spent=20)
    assert len(res.selected) == 3 and res.n_over_budget == 27
    assert res.fates == {"selected": 3, "over budget": 27}
    res = run_select(maker, list(np.linspace(0.06, 0.4, 30)), spent=23)
    assert res.selected == [] and res.stop_reason == "label budget spent"
    assert res.fates == {"not needed": 30}


def test_calibrated_window_replaces_the_fixed_one():
    maker = SelectMaker(convergence=ConvergenceConfig(max_iterations=5, accurate_fraction=0.99))
    res = run_select(maker, [0.01, 0.1, 0.3, 0.6], trust=[0.2, 0.5])
    assert (res.trust_lo, res.trust_hi) == (0.2, 0.5)
    assert res.fates == {"accurate": 2, "selected": 1, "too uncertain": 1}


def validation(force_mae: float = 30.0, frame_errors=(0.1,) * 10) -> dict:
    """Validation metrics as the committee's evaluation records them."""
    return {"n_structures": len(frame_errors), "energy_mae_mev_per_atom": 5.0,
            "energy_rmse_mev_per_atom": 6.0, "force_mae_mev_per_a": force_mae,
            "force_rmse_mev_per_a": 1.3 * force_mae,
            "frame_max_force_errors": list(frame_errors)}  # fmt: skip


def test_converged_needs_the_validation_errors_to_agree():
    """An agreeing committee is never enough: the validation frames' true errors decide too."""
    conv = ConvergenceConfig(accurate_fraction=0.8, max_iterations=5)
    maker = SelectMaker(convergence=conv, target_force_error=0.3)
    stds = [0.01] * 9 + [0.2]  # 90 % of the frames "accurate" by the uncertainty
    res = run_select(maker, stds)  # no validation errors at all: not converged, labels bought
    assert res.stop_reason is None and len(res.selected) == 1
    assert "no validation errors" in res.convergence_note
    wrong = validation(2010.0, [2.5] * 10)  # the case: spread 0, errors huge
    res = run_select(maker, stds, validation_metrics=wrong)
    assert res.stop_reason is None and "0 % of frames" in res.convergence_note
    half = validation(100.0, [0.1] * 5 + [0.5] * 5)  # 50 % within the target < 80 %
    assert run_select(maker, stds, validation_metrics=half).stop_reason is None
    good = validation(30.0, [0.1] * 9 + [0.5])
    res = run_select(maker, stds, validation_metrics=good)
    assert res.stop_reason == "converged" and res.convergence_note is None
    assert run_select(maker, stds, 0, 4, validation_metrics=wrong).stop_reason == "max iterations"
    strict = SelectMaker(convergence=ConvergenceConfig(
        accurate_fraction=0.8, max_iterations=5, max_validation_force_mae=20))  # fmt: skip
    res = run_select(strict, stds, validation_metrics=good)
    assert res.stop_reason is None and "30.0 > 20 meV/Å" in res.convergence_note
    with pytest.raises(ValueError, match="max_validation_force_mae"):
        ConvergenceConfig(max_validation_force_mae=-1)


def test_validation_blocker_and_stop_reason():
    conv = ConvergenceConfig(accurate_fraction=0.9, max_iterations=5)
    agree = ValidationMetrics.model_validate(validation(frame_errors=[0.1] * 9 + [0.4]))
    assert validation_blocker(conv, agree, 0.3) is None
    assert "90 %" in validation_blocker(conv, agree, 0.05)
    assert stop_reason(conv, 0, 0.95, 10, 3, "some blocker") is None
    assert stop_reason(conv, 0, 0.95, 10, 3, None) == "converged"


def test_converged_when_accurate_fraction_reached():
    maker = SelectMaker(convergence=ConvergenceConfig(accurate_fraction=0.8, max_iterations=5))
    res = run_select(maker, [0.01] * 9 + [0.2], validation_metrics=validation())
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


def test_duplicate_of_a_labelled_structure_is_never_sent(descriptor, h2cu):
    labelled = h2cu[:2]
    near = labelled[0].copy()
    near.rattle(0.0005, seed=1)
    moved = labelled[0].copy()
    moved.rattle(0.1, seed=2)
    cands = [as_candidate(a, 0.3) for a in (labelled[0], near, labelled[1], moved, h2cu[2])]
    plan = plan_batch(
        cands, 0.05, 0.5, LIMITS, cap=10, labelled=labelled, descriptor=descriptor,
        novelty_threshold=0.02,
    )  # fmt: skip
    assert plan.fates[:3] == [Fate.DUPLICATE] * 3
    assert plan.fates[3:] == [Fate.SELECTED, Fate.SELECTED]
    assert plan.novelty[0] == pytest.approx(0.0, abs=1e-6)
    assert plan.novelty[1] < 0.02 < plan.novelty[3]


def test_duplicates_within_the_batch_and_diverse_picking(descriptor, h2cu):
    a, b = h2cu[0], h2cu[1]
    a2 = a.copy()
    a2.rattle(0.005, seed=4)  # close to a, not a duplicate at the threshold
    # a and its near-copies have the highest std; b is less uncertain but distinct
    cands = [as_candidate(a, 0.40), as_candidate(a.copy(), 0.39), as_candidate(a2, 0.38)]
    cands.append(as_candidate(b, 0.20))
    plan = plan_batch(
        cands, 0.05, 0.5, LIMITS, cap=2, descriptor=descriptor, novelty_threshold=0.01
    )
    assert plan.fates[0] == Fate.SELECTED and plan.fates[1] == Fate.DUPLICATE
    assert plan.fates[3] == Fate.SELECTED  # diversity beats a's near-copy despite lower std
    assert plan.fates[2] == Fate.OVER_BUDGET
    greedy = plan_batch(cands, 0.05, 0.5, LIMITS, cap=2, strategy="dpgen")
    assert greedy.fates.count(Fate.SELECTED) == 2 and Fate.DUPLICATE not in greedy.fates


def test_cost_weighting_prefers_small_cells_at_equal_uncertainty():
    small, big = slab(), slab().repeat((2, 2, 1))
    cands = [as_candidate(big, 0.3), as_candidate(small, 0.3)]
    plan = plan_batch(cands, 0.05, 0.5, LIMITS, cap=1, cost_exponent=1.0)
    assert plan.fates == [Fate.OVER_BUDGET, Fate.SELECTED]
    plan = plan_batch(cands, 0.05, 0.5, LIMITS, cap=1, cost_exponent=0.0)
    assert plan.fates[0] == Fate.SELECTED


def test_random_strategy_ignores_the_committee():
    cands = [candidate(s) for s in (0.0, 0.01, 0.9, 0.2)]
    plan = plan_batch(cands, 0.05, 0.5, LIMITS, cap=4, strategy="random")
    assert plan.fates == [Fate.SELECTED] * 4
    with pytest.raises(ValueError, match="strategy"):
        plan_batch(cands, 0.05, 0.5, LIMITS, cap=4, strategy="greedy")


@pytest.mark.slow
def test_stochastic_picks_in_proportion_to_the_score():
    # two frames in the window (std 0.1 and 0.3), one accurate, one too uncertain; one pick
    cands = [candidate(s) for s in (0.1, 0.3, 0.01, 0.9)]
    picks = []
    for seed in range(600):
        plan = plan_batch(
            cands, 0.05, 0.5, LIMITS, cap=1, strategy="stochastic", rng=np.random.default_rng(seed)
        )
        assert plan.fates[2] == Fate.ACCURATE and plan.fates[3] == Fate.TOO_UNCERTAIN
        assert len(plan.selected) == 1 and plan.fates.count(Fate.OVER_BUDGET) == 1
        picks.append(plan.selected[0])
    share = picks.count(0) / len(picks)
    assert 0.19 < share < 0.31  # p = 0.1 / (0.1 + 0.3) = 0.25; diverse would never pick it
    assert plan_batch(cands, 0.05, 0.5, LIMITS, cap=1).selected == [1]

    def share_of_first(power: float) -> float:
        """How often a stochastic pick of one takes candidate 0, with ``sampling_power``."""
        picks = [
            plan_batch(cands, 0.05, 0.5, LIMITS, 1, "stochastic", np.random.default_rng(seed),
                       sampling_power=power).selected[0]
            for seed in range(600)
        ]  # fmt: skip
        return picks.count(0) / 600

    assert 0.05 < share_of_first(2.0) < 0.16  # p = 0.01 / (0.01 + 0.09) = 0.1
    assert 0.43 < share_of_first(0.0) < 0.57


@pytest.mark.parametrize(
    "strategy, calibration_picks",
    [("stochastic", 0), ("stochastic", 1), ("representative", 0), ("representative", 1)],
)
def test_sampling_strategies_respect_cap_gate_and_window(
    descriptor, h2cu, strategy, calibration_picks
):
    a = h2cu[0]
    cands = [as_candidate(a, 0.40), as_candidate(a.copy(), 0.39)]  # a duplicate pair
    cands += [as_candidate(x, 0.2) for x in h2cu[1:6]] + [candidate(0.9), candidate(0.01)]
    for seed in range(5):
        plan = plan_batch(
            cands,
            0.05,
            0.5,
            LIMITS,
            cap=3,
            strategy=strategy,
            rng=np.random.default_rng(seed),
            descriptor=descriptor,
            novelty_threshold=0.01,
            calibration_picks=calibration_picks,
        )
        assert len(plan.selected) == 3 and len(plan.calibration) == calibration_picks
        assert not {0, 1} <= set(plan.selected)  # never both of a duplicate pair
        assert plan.fates[-2] == Fate.TOO_UNCERTAIN  # a calibration pick may take the last
        last = len(cands) - 1
        assert plan.fates[last] == (Fate.SELECTED if last in plan.calibration else Fate.ACCURATE)
        for i, twin in ((0, 1), (1, 0)):
            if i in plan.selected:
                assert plan.fates[twin] == Fate.DUPLICATE


def shifted(dz: float) -> Atoms:
    """The test slab moved by ``dz`` Å along z (inside its vacuum: no wrapping)."""
    atoms = slab()
    atoms.positions[:, 2] += dz
    return atoms


def centre_of_mass_descriptor(atoms: Atoms) -> np.ndarray:
    """A synthetic per-atom descriptor: every atom carries the frame's centre of mass."""
    return np.repeat(atoms.get_center_of_mass()[None, :], len(atoms), axis=0)


def test_representative_picks_centres_by_mass_not_extremes():
    # a broad region A of ordinary frames and a tight, more uncertain pair C far from it
    region_a = [as_candidate(shifted(0.05 * j), 0.2) for j in range(11)]
    pair_c = [as_candidate(shifted(-1.5), 0.3), as_candidate(shifted(-1.48), 0.3)]
    cands = region_a + pair_c
    kwargs = dict(descriptor=centre_of_mass_descriptor, novelty_threshold=0.0)
    diverse = plan_batch(cands, 0.05, 0.5, LIMITS, cap=2, **kwargs)
    assert 10 in diverse.selected  # greedy novelty: A's frame farthest from C, an extreme
    for seed in range(5):
        rng = np.random.default_rng(seed)
        plan = plan_batch(cands, 0.05, 0.5, LIMITS, 2, "representative", rng, **kwargs)
        assert len(plan.selected) == 2 and plan.fates.count(Fate.OVER_BUDGET) == 11
        assert 5 in plan.selected  # A's middle frame: nearest its centre
        assert len({11, 12} & set(plan.selected)) == 1  # one of the pair, not both
        rng = np.random.default_rng(seed)
        three = plan_batch(cands, 0.05, 0.5, LIMITS, 3, "representative", rng, **kwargs)
        assert sum(i < 11 for i in three.selected) == 2  # the broad region gets two centres
        assert not {0, 10} & set(three.selected)  # ... and neither is an edge frame


def test_representative_with_mace_descriptors_and_a_frame_without_hydrogen(descriptor, h2cu):
    clean = h2cu[0].copy()
    del clean[[a.index for a in clean if a.symbol == "H"]]  # a clean slab: no H block
    cands = [as_candidate(x, 0.1 + 0.05 * j) for j, x in enumerate(h2cu)]
    cands.append(as_candidate(clean, 0.2))
    plan = plan_batch(
        cands, 0.05, 0.5, LIMITS, 3, "representative", np.random.default_rng(0),
        descriptor=descriptor, novelty_threshold=0.02,
    )  # fmt: skip
    assert len(plan.selected) == 3 and plan.fates.count(Fate.OVER_BUDGET) == 2
    with pytest.raises(ValueError, match="descriptor"):
        plan_batch(cands, 0.05, 0.5, LIMITS, cap=3, strategy="representative")


def test_calibration_picks_sample_the_whole_plausible_range():
    stds = [0.01] * 10 + [0.2] * 10 + [0.9] * 5  # accurate, in the window, too uncertain
    cands = [candidate(s) for s in stds] + [candidate(0.01, squeeze=True)]
    seen_accurate = False
    for seed in range(20):
        plan = plan_batch(
            cands, 0.05, 0.5, LIMITS, cap=4, rng=np.random.default_rng(seed), calibration_picks=2
        )
        assert len(plan.selected) == 4 and len(plan.calibration) == 2
        assert set(plan.calibration) <= set(plan.selected)
        assert all(stds[i] < 0.5 for i in plan.selected)  # never wild or failed frames
        assert plan.fates[-1] == Fate.FAILED_FILTER
        assert plan.n_accurate == 10  # the stop rule sees the true accurate count
        others = set(plan.selected) - set(plan.calibration)
        assert all(stds[i] == 0.2 for i in others)  # the strategy fills the rest
        seen_accurate |= any(stds[i] == 0.01 for i in plan.calibration)
    assert seen_accurate  # calibration also sees frames the window would call accurate
    never = plan_batch(cands, 0.05, 0.5, LIMITS, cap=0, calibration_picks=2)
    assert never.selected == [] and never.calibration == []


def test_calibration_picks_are_recorded_and_counted_once():
    maker = SelectMaker(
        calibration_picks=3,
        max_labels_per_iteration=5,
        convergence=ConvergenceConfig(max_iterations=5, accurate_fraction=0.99),
    )
    res = run_select(maker, [0.01] * 6 + [0.3] * 6 + [0.9] * 2)
    assert res.n_calibration_picks == 3 and len(res.selected) == 5
    assert res.n_accurate == 6 and res.n_failed == 2
    assert res.n_accurate + res.n_uncertain + res.n_failed == res.n_candidates == 14
    stopped = SelectMaker(
        calibration_picks=3, convergence=ConvergenceConfig(max_iterations=5, accurate_fraction=0.5)
    )
    res = run_select(stopped, [0.01] * 8 + [0.3] * 2, validation_metrics=validation())
    # converged: the picks are not sent
    assert res.stop_reason == "converged" and res.selected == []
    assert res.fates == {"accurate": 8, "not needed": 2}


def test_calibration_recovers_a_known_linear_relation():
    rng = np.random.default_rng(0)
    std = rng.uniform(0.05, 0.5, 200)
    err = 0.02 + 2.5 * std + rng.normal(0, 0.01, 200)
    cal = fit_calibration(std, err, target_error=0.3, hi_factor=3.0)
    assert cal.slope == pytest.approx(2.5, rel=0.02)
    assert cal.intercept == pytest.approx(0.02, abs=0.01)
    assert cal.r2 > 0.98
    assert cal.trust_lo == pytest.approx((0.3 - 0.02) / 2.5, rel=0.03)
    assert cal.trust_hi == pytest.approx((3 * 0.3 - 0.02) / 2.5, rel=0.03)


def test_calibration_when_the_model_is_nowhere_accurate():
    """Error floor above the target: label everything short of the wild frames."""
    std = np.linspace(0.05, 0.45, 8)
    cal = fit_calibration(std, 0.43 + 0.88 * std, target_error=0.3, hi_factor=3.0)
    assert cal.trust_lo == 0.005  # the lower bound
    assert cal.trust_hi == pytest.approx((0.9 - 0.43) / 0.88)


def test_calibration_refuses_to_guess():
    assert fit_calibration([0.1, 0.2], [0.3, 0.5], 0.3).trust_lo is None
    flat = fit_calibration([0.1] * 6, [0.3, 0.2, 0.4, 0.3, 0.1, 0.2], 0.3)
    assert flat.trust_lo is None and "spread" in flat.note
    inverse = fit_calibration([0.1, 0.2, 0.3, 0.4, 0.5], [0.5, 0.4, 0.3, 0.2, 0.1], 0.3)
    assert inverse.trust_lo is None and inverse.slope < 0
    nan = fit_calibration([0.1, np.nan, 0.3, 0.4, 0.5, 0.6], [0.2, 0.3, np.nan, 1, 1, 1], 0.3)
    assert nan.n_points == 4


def test_max_atomic_force_error():
    ref = np.zeros((3, 3))
    pred = np.array([[0.0, 0.0, 0.0], [0.3, 0.4, 0.0], [0.1, 0.0, 0.0]])
    assert max_atomic_force_error(pred, ref) == pytest.approx(0.5)


def test_single_model_descriptor_uncertainty(foundation, h2cu, monkeypatch):
    """uncertainty='descriptor': no committee spread needed, novelty against labels decides."""
    labelled = h2cu[:2]
    near = labelled[0].copy()
    near.rattle(0.002, seed=1)
    moved = labelled[0].copy()
    moved.rattle(0.1, seed=2)
    frames = [labelled[0], near, moved, h2cu[2]]
    explored = ExploreResult(
        candidates=[as_candidate(a, 0.0) for a in frames],  # one model: no spread at all
        n_trajectories=1,
        n_steps_total=10,
        wall_time_s=0,
    )
    monkeypatch.setattr(SelectMaker, "_labelled_atoms", lambda self, iteration=None: labelled)
    conv = ConvergenceConfig(max_iterations=5, accurate_fraction=0.99)
    kwargs = {"trust_lo": 0.1, "trust_hi": 50.0, "novelty_threshold": 0.0, "convergence": conv}
    single = SelectMaker(uncertainty="descriptor", descriptor_model=foundation, **kwargs)
    res = single.make.original(single, explored, 0, 1)
    assert res.uncertainty == "descriptor"
    assert res.fates == {"accurate": 2, "selected": 2}
    scores = [c.max_force_std for c in res.selected]
    assert all(0.1 < s < 50 for s in scores)  # the novelty of the moved and the new frame
    committee = SelectMaker(descriptor_model=foundation, **kwargs)
    assert committee.make.original(committee, explored, 0, 1).fates == {"accurate": 4}
    with pytest.raises(ValueError, match="descriptor_model"):
        SelectMaker(uncertainty="descriptor")
    with pytest.raises(ValueError, match="SelectMaker field 'uncertainty'"):
        SelectMaker(uncertainty="dropout")


def test_descriptor_uncertainty_gets_a_window_in_its_own_units():
    from frostline.config import DESCRIPTOR_TRUST, SelectConfig

    assert (SelectConfig().trust_lo, SelectConfig().trust_hi) == (0.05, 0.5)
    cfg = SelectConfig(uncertainty="descriptor")
    assert (cfg.trust_lo, cfg.trust_hi) == DESCRIPTOR_TRUST
    cfg = SelectConfig(uncertainty="descriptor", trust_lo=0.3, trust_hi=2.0)
    assert (cfg.trust_lo, cfg.trust_hi) == (0.3, 2.0)
    with pytest.raises(ValueError, match="trust_hi must be larger"):
        SelectConfig(uncertainty="descriptor", trust_lo=6.0)


def test_a_single_model_campaign_must_use_descriptor_uncertainty():
    from frostline.config import ConfigError, parse_config

    base = {"name": "one", "elements": ["Cu"], "finetune": {"committee_size": 1}}
    with pytest.raises(ConfigError, match="committee_size 1 has no committee spread"):
        parse_config(base, "one.yaml")
    cfg = parse_config({**base, "select": {"uncertainty": "descriptor"}}, "one.yaml")
    assert cfg.select.uncertainty == "descriptor" and cfg.select.trust_hi == 5.0


def test_typical_hi_reference_keeps_ordinary_frames_of_a_poor_model():
    """A model poor everywhere: the target-based trust_hi cuts into ordinary frames."""
    std = np.linspace(0.05, 0.45, 8)
    err = 0.4 + 3.0 * std  # median 1.15 eV/Å, above the 0.3 target everywhere
    target = fit_calibration(std, err, target_error=0.3, hi_factor=3.0)
    typical = fit_calibration(std, err, 0.3, 3.0, hi_reference="typical")
    assert target.trust_hi < std.max() < typical.trust_hi
    assert typical.hi_reference_error == pytest.approx(np.median(err))
    assert typical.trust_hi == pytest.approx((3 * np.median(err) - 0.4) / 3.0)
    assert typical.trust_lo == target.trust_lo  # "accurate" still means the target
    good = 0.02 + 2.5 * std * 0.3  # an accurate model: median below the target, rules agree
    a = fit_calibration(std, good, 0.3, 3.0)
    b = fit_calibration(std, good, 0.3, 3.0, hi_reference="typical")
    assert (a.trust_lo, a.trust_hi) == (b.trust_lo, b.trust_hi)
    with pytest.raises(ValueError, match="hi_reference"):
        fit_calibration(std, err, 0.3, hi_reference="median")


def test_calibration_history_pools_the_last_batches():
    """history N: this batch plus the N-1 iterations before it (from their documents); the
    pooled fit of three noisy 8-point batches recovers the relation one batch cannot."""
    from frostline.select.calibration import pooled_points

    rng = np.random.default_rng(3)

    def batch():
        std = rng.uniform(0.05, 0.5, 8)
        return std, 0.1 + 2.0 * std + rng.normal(0, 0.25, 8)

    docs = []
    for i in range(4):
        s, e = batch()
        docs.append({"index": i, "calibration": {"stds": s.tolist(), "errors": e.tolist()}})
    docs.append({"index": 2, "calibration": {"stds": [0.1], "errors": []}})  # mismatched: skipped
    docs.append({"index": 3, "calibration": None})  # nothing recorded: skipped
    s, e = batch()
    stds, errors, added = pooled_points(s, e, docs, index=4, history=3)
    assert added == [2, 3] and len(stds) == len(errors) == 24
    assert stds[:8] == list(s)  # this batch first, then the earlier ones in order
    assert pooled_points(s, e, docs, index=4, history=1)[2] == []
    pooled = fit_calibration(stds, errors, 0.3)
    single = fit_calibration(s, e, 0.3)
    assert abs(pooled.slope - 2.0) < abs(single.slope - 2.0)
    with pytest.raises(ValueError, match="history"):
        pooled_points(s, e, docs, index=4, history=0)


def h2_over_slab(bond: float, x: float = 0.0) -> Atoms:
    """The Cu(111) test slab with an H2 (bond length ``bond`` Å) 2 Å above its top layer."""
    atoms = slab()
    top = atoms.positions[:, 2].max() + 2.0
    centre = np.array([x, 0.0, top])
    atoms += Atoms("H2", positions=[centre, centre + [bond, 0.0, 0.0]])
    return atoms


def test_shortest_contacts_per_element_pair_and_the_deficit():
    contacts = shortest_contacts(h2_over_slab(0.74))
    assert set(contacts) == {("Cu", "Cu"), ("Cu", "H"), ("H", "H")}
    assert contacts[("H", "H")] == pytest.approx(0.74)
    index = ContactIndex([h2_over_slab(0.74)])
    assert index.deficit(shortest_contacts(h2_over_slab(0.62))) == pytest.approx(0.12)
    assert index.deficit(shortest_contacts(h2_over_slab(0.90))) == 0.0  # longer: covered
    bare = ContactIndex([slab()])  # no H labelled: H-H counts from the 3 Å cutoff
    assert bare.deficit(shortest_contacts(h2_over_slab(0.74))) == pytest.approx(3.0 - 0.74)
    index.add(shortest_contacts(h2_over_slab(0.62)))
    assert index.deficit(shortest_contacts(h2_over_slab(0.63))) == 0.0
    lone = Atoms("H", cell=[10, 10, 10], pbc=True)  # no contact within the cutoff at all
    assert shortest_contacts(lone) == {} and index.deficit({}) == index.deficit({}, "relative") == 0


def squeezed_copper(by: float) -> Atoms:
    """``h2_over_slab(0.74)`` with one Cu atom moved ``by`` Å towards its nearest Cu neighbour."""
    atoms = h2_over_slab(0.74)
    cu = [i for i, s in enumerate(atoms.get_chemical_symbols()) if s == "Cu"]
    d = atoms.get_distances(cu[0], cu[1:], mic=True, vector=True)
    nearest = d[np.argmin(np.linalg.norm(d, axis=1))]
    atoms.positions[cu[0]] += by * nearest / np.linalg.norm(nearest)
    return atoms


def test_relative_contact_deficit_ranks_the_h2_wall_before_a_longer_cu_cu_gap():
    index = ContactIndex([h2_over_slab(0.74)])
    cu_cu = index.shortest[("Cu", "Cu")]
    squeezed_h2, squeezed_cu = h2_over_slab(0.63), squeezed_copper(0.25)
    for frame, pair, short in ((squeezed_h2, ("H", "H"), 0.11), (squeezed_cu, ("Cu", "Cu"), 0.25)):
        contacts = shortest_contacts(frame)
        labelled = index.shortest[pair]
        assert labelled - contacts[pair] == pytest.approx(short, abs=1e-6)
        assert index.deficit(contacts) == pytest.approx(short, abs=1e-6)  # the pair decides
        assert index.deficit(contacts, "relative") == pytest.approx(short / labelled, abs=1e-6)
    assert 0.25 / cu_cu < 0.11 / 0.74  # 0.25 Å of a Cu-Cu bond is less compression
    cands = [as_candidate(h2_over_slab(0.74 + 0.01 * k, x=0.1 * k), 0.3) for k in range(4)]
    cands += [as_candidate(squeezed_cu, 0.01), as_candidate(squeezed_h2, 0.01)]
    trained = [h2_over_slab(0.74)]
    common = dict(cap=2, trained=trained, contact_picks=1)
    assert plan_batch(cands, 0.05, 0.5, LIMITS, **common).contact == [4]  # Å: Cu-Cu first
    relative = plan_batch(cands, 0.05, 0.5, LIMITS, contact_deficit="relative", **common)
    assert relative.contact == [5]  # fraction of the labelled contact: the H2 wall first
    within = plan_batch(cands, 0.05, 0.5, LIMITS, contact_deficit="relative",
                        contact_margin=0.2, **common)  # fmt: skip
    assert within.contact == []  # 15 % short is within a 20 % margin
    with pytest.raises(ValueError, match="contact deficit 'percent'"):
        index.deficit(shortest_contacts(squeezed_h2), "percent")


def test_contact_picks_buy_the_short_contact_the_committee_is_calm_about():
    trained = [h2_over_slab(0.74), h2_over_slab(0.78, x=0.5)]
    frames = [h2_over_slab(0.74 + 0.01 * k, x=0.1 * k) for k in range(6)]  # covered bonds
    stds = [0.3] * 6
    frames += [h2_over_slab(0.62), h2_over_slab(0.63, x=0.3), h2_over_slab(0.61, x=0.6)]
    stds += [0.01, 0.06, 0.9]  # compressed: committee calm (accurate / low), and a wild one
    cands = [as_candidate(a, s) for a, s in zip(frames, stds, strict=True)]
    plain = plan_batch(cands, 0.05, 0.5, LIMITS, cap=3, trained=trained)
    assert not {6, 7, 8} & set(plain.selected) and plain.contact == []
    plan = plan_batch(cands, 0.05, 0.5, LIMITS, cap=3, trained=trained, contact_picks=2)
    # the shortest plausible contact first (the 0.61 Å frame is beyond trust_hi); the 0.63 Å
    # one is then covered by that pick: one contact pick, the strategy fills the rest by std
    assert plan.contact == [6] and len(plan.selected) == 3
    assert set(plan.selected) - {6} <= set(range(6))
    assert plan.fates[7] == Fate.OVER_BUDGET and plan.fates[8] == Fate.TOO_UNCERTAIN
    assert plan.n_accurate == 1  # the stop rule still sees the window's count
    wide = plan_batch(cands, 0.05, 0.5, LIMITS, cap=3, trained=trained, contact_picks=2,
                      contact_margin=0.2)  # fmt: skip
    assert wide.contact == []  # 0.12 Å short is within a 0.2 Å margin
    rnd = plan_batch(cands, 0.05, 0.5, LIMITS, cap=3, trained=trained, contact_picks=2,
                     strategy="random")  # fmt: skip
    assert rnd.contact == []  # the baseline ignores every rule


def test_select_maker_counts_contact_picks_against_training_labels_only(monkeypatch):
    asked = []

    def labelled(self, iteration=None, role=None):
        asked.append(role)
        return [h2_over_slab(0.74)] if role == "train" else [h2_over_slab(0.60)]

    monkeypatch.setattr(SelectMaker, "_labelled_atoms", labelled)
    maker = SelectMaker(
        contact_picks=1,
        novelty_threshold=0.0,
        max_labels_per_iteration=2,
        convergence=ConvergenceConfig(max_iterations=5, accurate_fraction=0.99),
    )
    frames = [h2_over_slab(0.76, x=0.1 * k) for k in range(4)] + [h2_over_slab(0.64)]
    explored = ExploreResult(
        candidates=[as_candidate(a, s) for a, s in zip(frames, [0.3] * 4 + [0.01], strict=True)],
        n_trajectories=1,
        n_steps_total=10,
        wall_time_s=0,
    )
    res = maker.make.original(maker, explored, 0, 1, None)
    assert asked == ["train"]  # a validation label at 0.60 Å must not hide the gap
    assert res.n_contact_picks == 1 and len(res.selected) == 2
    picked = [AseAtomsAdaptor.get_atoms(as_structure(c.structure)) for c in res.selected]
    assert min(shortest_contacts(a)[("H", "H")] for a in picked) == pytest.approx(0.64)


def test_stratum_quotas_share_the_cap_by_largest_remainders():
    keys = ["300 K"] * 10 + ["800 K"] * 7 + ["1200 K"] * 3
    assert stratum_quotas(keys, 8) == {"300 K": 4, "800 K": 3, "1200 K": 1}  # 4.0, 2.8, 1.2
    assert stratum_quotas(keys, 20) == {"300 K": 10, "800 K": 7, "1200 K": 3}
    assert stratum_quotas(keys, 50) == {"300 K": 10, "800 K": 7, "1200 K": 3}  # never > frames
    assert stratum_quotas(["a", "b"], 1) == {"a": 1, "b": 0}  # a tie: the first seen
    assert stratum_quotas([], 5) == {}
    for cap in range(25):
        assert sum(stratum_quotas(keys, cap).values()) == min(cap, 20)


def md_frame(std: float, temperature: float, dz: float = 0.0) -> CandidateStructure:
    provenance = Provenance(iteration=1, sampler="langevin", temperature=temperature)
    return as_candidate(shifted(dz), std, provenance=provenance)


def calm_and_hot_pool() -> list[CandidateStructure]:
    """Ten 300 K frames the window calls accurate, ten 1200 K frames inside it, two too hot."""
    calm = [md_frame(0.01 + 0.003 * j, 300, 0.05 * j) for j in range(10)]
    hot = [md_frame(0.1 + 0.03 * j, 1200, -0.05 * j) for j in range(10)]
    return calm + hot + [md_frame(0.9, 1200), md_frame(0.8, 800)]


def test_stratified_batch_follows_the_explored_temperatures():
    cands = calm_and_hot_pool()
    strata = [c.provenance.temperature for c in cands]
    plain = plan_batch(cands, 0.05, 0.5, LIMITS, cap=4)
    assert all(i >= 10 for i in plain.selected)  # unstratified: every pick from 1200 K
    plan = plan_batch(cands, 0.05, 0.5, LIMITS, cap=4, strata=strata)
    assert plan.quota == {300: 2, 1200: 2}  # the too-uncertain frames are not plausible
    assert plan.selected == [8, 9, 18, 19]  # the largest std of each temperature
    assert plan.topped_up == [8, 9]  # the 300 K picks were below trust_lo
    assert plan.n_accurate == 10 and plan.fates.count(Fate.ACCURATE) == 8  # the rest stay so
    assert plan.fates.count(Fate.OVER_BUDGET) == 8 and plan.fates.count(Fate.TOO_UNCERTAIN) == 2
    assert plan.calibration == [] and len(plan.fates) == len(cands)


def test_stratified_sampling_strategies_keep_the_quota_and_the_cap():
    cands = calm_and_hot_pool()
    strata = [c.provenance.temperature for c in cands]
    kwargs = dict(descriptor=centre_of_mass_descriptor, novelty_threshold=0.0, strata=strata)
    for strategy in ("dpgen", "stochastic", "representative"):
        for seed in range(3):
            rng = np.random.default_rng(seed)
            plan = plan_batch(cands, 0.05, 0.5, LIMITS, 6, strategy, rng, **kwargs)
            temps = [strata[i] for i in plan.selected]
            assert temps.count(300) == 3 and temps.count(1200) == 3, (strategy, seed)
            assert set(plan.topped_up) == {i for i in plan.selected if strata[i] == 300}
    # calibration picks count toward their stratum, and the cap still holds
    rng = np.random.default_rng(0)
    plan = plan_batch(cands, 0.05, 0.5, LIMITS, 4, rng=rng, calibration_picks=2, strata=strata)
    assert len(plan.selected) == 4 and len(plan.calibration) == 2
    assert [strata[i] for i in plan.selected].count(300) == 2
    # the random baseline ignores strata
    rng = np.random.default_rng(0)
    plan = plan_batch(cands, 0.05, 0.5, LIMITS, 4, "random", rng, strata=strata)
    assert plan.quota == {} and plan.topped_up == []
    with pytest.raises(ValueError, match="strata has 3 keys for 22 candidates"):
        plan_batch(cands, 0.05, 0.5, LIMITS, 4, strata=[300, 300, 1200])


def test_quota_a_stratum_cannot_fill_goes_to_the_others(descriptor):
    # five copies of one 300 K frame: the gate lets one through, its other quota goes to 1200 K
    # (five distinct rattled cells: the descriptor ignores a rigid shift)
    hot = []
    for j in range(5):
        atoms = slab()
        atoms.rattle(0.1, seed=j)
        hot.append(as_candidate(atoms, 0.1 + 0.02 * j, provenance=Provenance(temperature=1200)))
    cands = [md_frame(0.2, 300)] * 5 + hot
    strata = [c.provenance.temperature for c in cands]
    plan = plan_batch(
        cands, 0.05, 0.5, LIMITS, 4, descriptor=descriptor, novelty_threshold=0.05, strata=strata
    )
    assert plan.quota == {300: 2, 1200: 2}
    assert len(plan.selected) == 4 and sum(i < 5 for i in plan.selected) == 1
    assert plan.fates.count(Fate.DUPLICATE) == 4


def test_select_maker_stratifies_by_exploration_condition():
    explored = ExploreResult(
        candidates=calm_and_hot_pool(), n_trajectories=3, n_steps_total=10, wall_time_s=0
    )
    assert exploration_stratum(explored.candidates[0]) == "langevin 300 K"
    assert exploration_stratum(candidate(0.1)) == "seed"  # no temperature: the sampler alone
    conv = ConvergenceConfig(max_iterations=5, accurate_fraction=0.99)
    maker = SelectMaker(max_labels_per_iteration=4, stratify="exploration", convergence=conv)
    res = maker.make.original(maker, explored, 0, 1)
    assert res.stratum_quota == {"langevin 300 K": 2, "langevin 1200 K": 2}
    assert res.n_topped_up == 2 and len(res.selected) == 4
    assert res.n_accurate == 10  # counted where the window put them, before the top-up
    plain = SelectMaker(max_labels_per_iteration=4, convergence=conv)
    res = plain.make.original(plain, explored, 0, 1)
    assert res.stratum_quota == {} and res.n_topped_up == 0
    assert {c.provenance.temperature for c in res.selected} == {1200}
    with pytest.raises(ValueError, match="SelectMaker field 'stratify'"):
        SelectMaker(stratify="temperature")
    with pytest.raises(ValueError, match="stratify"):
        SelectConfig(stratify="temperature")
