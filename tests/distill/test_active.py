"""Active learning of the surrogate against its teacher, the stability check's cell and limits.

The teacher here is ASE's EMT (Cu and H, milliseconds per cell) so that a real linear ACE is
fitted, explored, labelled and refitted in a few seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.emt import EMT
from ase.calculators.morse import MorsePotential

from frostline.distill.ace import (
    BasisSpec,
    SurrogateCalculator,
    build_basis,
    design_matrix,
    fit_linear_ace,
    write_yace,
)
from frostline.distill.active import (
    ACTIVE_GROUP,
    ActiveLearner,
    ActivePlan,
    rank_by_disagreement,
    surrogate_frames,
)
from frostline.distill.jobs import stability_run
from frostline.distill.teacher import LANGEVIN, generate_teacher_data, split_by_group
from frostline.distill.validate import StabilityRun, within_limits
from frostline.structures import cu111_slab, h2_on_slab, min_distance


@pytest.fixture(scope="module")
def small():
    """EMT teacher data around two H2/Cu(111) cells and a tiny linear ACE fitted to it."""
    rng = np.random.default_rng(0)
    seeds = [h2_on_slab(cu111_slab((2, 2, 2)), rng) for _ in range(2)]
    samples = generate_teacher_data(seeds, EMT(), 24, [300.0], md_steps=20, sample_every=4)
    train, holdout = split_by_group(samples, 0.2)
    spec = BasisSpec(("Cu", "H"), 8, 4.0)
    basis = build_basis(spec)
    design = design_matrix(basis, [samples[i].atoms for i in train])
    fit = fit_linear_ace(
        spec,
        design,
        [samples[i].energy for i in train],
        [samples[i].forces for i in train],
        basis=basis,
    )
    return seeds, samples, train, holdout, fit


def test_round_adds_the_most_disputed_frames(small, tmp_path):
    """One round: the added frames are the candidates with the largest force disagreement, they
    join the training data (source "active"), the refit agrees better on them, and the round
    records all of it with the stability check of the surrogate before it."""
    seeds, samples, train, holdout, fit = small
    samples, train = list(samples), list(train)
    n0 = len(samples)
    check = StabilityRun(seeds[0].repeat((2, 1, 1)), 300.0, 10, {"Cu-Cu": 2.5, "H-H": 0.74})
    plan = ActivePlan(
        rounds=1, frames=4, steps=20, temperatures=(300.0, 600.0), n_cell_runs=1, n_seed_runs=1
    )
    learner = ActiveLearner(EMT(), samples, train, holdout, seeds, check, plan, LANGEVIN, tmp_path)
    calc = SurrogateCalculator(write_yace(fit, tmp_path / "before.yace"))
    new_fit, rounds = learner.run(fit)
    (record,) = rounds
    added = samples[n0:]
    assert record.n_added == len(added) == 4 and train[-4:] == list(range(n0, n0 + 4))
    assert all(s.source == "active" and s.group == ACTIVE_GROUP for s in added)
    assert record.n_candidates > 4 and record.n_trajectories == 4
    # the same exploration again ranks the same frames first
    frames, _ = surrogate_frames(
        calc, learner.runs(0), plan, learner.round_langevin(0), check.contact_limits()
    )
    ranked = rank_by_disagreement(calc, EMT(), frames, 0)
    scores = [m for m, _ in ranked]
    assert record.added_before_mev_per_a == pytest.approx(np.mean(scores[:4]))
    assert min(scores[:4]) >= max(scores[4:])
    for (_, expected), got in zip(ranked[:4], added, strict=True):
        assert np.allclose(expected.atoms.positions, got.atoms.positions)
    assert record.added_after_mev_per_a < record.added_before_mev_per_a
    assert record.stable_before is not None and record.holdout_force_mae_mev_per_a > 0
    assert new_fit.coefficients.shape == fit.coefficients.shape


def test_exploration_stops_at_the_contact_limits():
    """A collapsing potential: the trajectory ends early and no kept frame breaks a limit."""
    cell = cu111_slab((2, 2, 2))
    morse = MorsePotential(epsilon=10.0, r0=1.2, rho0=1.5, rcut1=4.0, rcut2=5.0)
    limits = {"Cu-Cu": 1.8}
    plan = ActivePlan(rounds=1, frames=1, steps=100, temperatures=(300.0,), sample_every=2)
    frames, early = surrogate_frames(morse, [(cell, 300.0)], plan, LANGEVIN, limits)
    assert early == 1 and len(frames) < 50
    assert all(within_limits(a, limits) for a, _ in frames)
    assert not within_limits(cell.copy(), {"Cu-Cu": 3.0})


def test_stability_cell_is_relaxed_by_the_teacher():
    """The check starts from the teacher-relaxed biggest seed (a stretched H2 would heat any
    potential's MD), repeated to 100 atoms; the limits are 0.75 x the shortest contacts."""
    rng = np.random.default_rng(2)
    seed = h2_on_slab(cu111_slab((2, 2, 2)), rng)
    h = [i for i, s in enumerate(seed.get_chemical_symbols()) if s == "H"]
    seed.positions[h[1]] = seed.positions[h[0]] + [1.2, 0, 0]  # stretched H2
    run = stability_run([seed], [300.0, 500.0], 50, teacher=EMT())
    plain = stability_run([seed], [300.0, 500.0], 50)
    assert run.temperature == 500.0 and len(run.cell) >= 100
    work = run.cell.copy()
    work.calc = EMT()
    start = plain.cell.copy()
    start.calc = EMT()
    assert np.abs(work.get_forces()).max() < 0.5 * np.abs(start.get_forces()).max()
    assert run.contact_limits()["H-H"] == pytest.approx(0.75 * min_distance(seed[h]))


def test_basis_grows_while_the_md_check_fails(small, tmp_path):
    """A check no surrogate can pass (contacts must stay above 10 Å): after the rounds with the
    chosen size the next larger size is fitted and learns too; every round says its size, and
    the sweep records the grown size."""
    from frostline.config import DistillConfig
    from frostline.distill.jobs import grow_until_stable, sweep_fit

    seeds, samples, train, holdout, _ = small
    samples, train = list(samples), list(train)
    settings = DistillConfig(basis_sizes=[6, 8], active_rounds=1, active_frames=3)
    fit, points, chosen = sweep_fit(samples, train, holdout, ["Cu", "H"], [6], [4.0], 1.0)
    impossible = StabilityRun(seeds[0], 300.0, 5, {"Cu-Cu": 10.0, "Cu-H": 10.0, "H-H": 10.0})
    plan = ActivePlan(1, 3, 10, (300.0,), n_cell_runs=1, n_seed_runs=1)
    learner = ActiveLearner(
        EMT(), samples, train, holdout, seeds, impossible, plan, LANGEVIN, tmp_path
    )
    fit, rounds, chosen = grow_until_stable(learner, fit, points, chosen, settings)
    assert [r.n_functions_per_element for r in rounds] == [6, 8]
    assert [r.round for r in rounds] == [1, 2]
    assert fit.spec.n_functions_per_element == 8 == chosen.n_functions_per_element
    assert [p.n_functions_per_element for p in points] == [6, 8]
    assert not learner.check(fit).stable  # kept, and the assessment will say it failed


def test_compositions_between_the_labels():
    """Fidelity frames with a composition no seed has: a doubled cell minus one atom of its
    rarest element (3 H on a doubled H2/Cu(111)); single-element seeds are not used."""
    from frostline.distill.teacher import between_compositions

    rng = np.random.default_rng(3)
    seeds = [h2_on_slab(cu111_slab((2, 2, 2)), rng), cu111_slab((2, 2, 2))]
    frames = between_compositions(seeds, rng, 3)
    assert len(frames) == 3
    assert {a.get_chemical_formula() for a in frames} == {"H3Cu16"}
    assert {a.get_chemical_formula() for a in seeds} == {"H2Cu8", "Cu8"}
    assert between_compositions([cu111_slab()], rng, 3) == []
