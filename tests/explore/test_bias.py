"""Uncertainty-biased exploration and the calibrated stop, on the real mini foundation."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_campaign

from frostline.config import ConfigError, parse_config
from frostline.explore.bias import LastLayerBias
from frostline.explore.samplers import langevin_frames
from frostline.select.uncertainty.calibration import ConformalCalibration
from frostline.select.uncertainty.last_layer import LLPR, calculator_features
from frostline.select.uncertainty.loop import ErrorBound, LastLayerScorer
from frostline.structures import cu111_slab, h2_on_slab

SCALES = {"Cu": 0.5, "H": 0.02}  # eV/Å per unit LLPR std, as a conformal fit gives them


@pytest.fixture(scope="module")
def mini(foundation):
    """The mini foundation's calculator, an LLPR state fitted on two H2/Cu(111) frames, and
    a third frame to move."""
    from frostline.finetune.committee import committee_calculator

    rng = np.random.default_rng(0)
    frames = [h2_on_slab(cu111_slab(), rng) for _ in range(4)]
    train = frames[:2]
    calc = committee_calculator([foundation], device="cpu")
    features = calculator_features(calc, train)
    llpr = LLPR("atoms", 1e-4).fit(features, [a.get_chemical_symbols() for a in train])
    return calc, llpr, frames[3]  # the foundation's thermal MD keeps its atoms apart from it


def _energy_forces(calc, atoms):
    work = atoms.copy()
    work.calc = calc
    calc.reset()
    return work.get_potential_energy(), work.get_forces().copy()


def test_bias_force_is_minus_the_gradient_of_the_bias_energy(mini):
    calc, llpr, atoms = mini
    model, symbols = calc.models[0], atoms.get_chemical_symbols()
    e0, f0 = _energy_forces(calc, atoms)
    scorer = LastLayerScorer(model, llpr)
    _energy_forces(calc, atoms)
    sigma = scorer(symbols)
    scorer.close()
    weights = np.array([SCALES[z] ** 2 for z in symbols])
    variance = float((weights * sigma**2).sum())
    width = np.sqrt(variance / len(atoms))  # mid-slope of the bias: not saturated
    bias = LastLayerBias(model, llpr, strength=0.5, width=width, scales=SCALES)
    try:
        bias.layout(symbols)
        e1, f1 = _energy_forces(calc, atoms)
        # the model's energy gained E_b = A [exp(-σ²/(N B²)) - 1] with σ² the scaled LLPR sum
        assert e1 - e0 == pytest.approx(0.5 * np.expm1(-1.0), rel=1e-9)
        bias_force, h = f1 - f0, 1e-4
        assert np.abs(bias_force).max() > 1e-3  # a real push, not a zero to agree with
        n = len(atoms)  # a Cu atom, both H atoms:
        for i, k in ((0, 2), (n - 2, 0), (n - 1, 1), (n - 1, 2)):
            energies = []
            for step in (h, -h):
                moved = atoms.copy()
                moved.positions[i, k] += step
                _energy_forces(calc, moved)
                energies.append(float(bias.last_energy[0]))
            gradient = (energies[0] - energies[1]) / (2 * h)
            assert bias_force[i, k] == pytest.approx(-gradient, rel=1e-3, abs=1e-7)
    finally:
        bias.close()
    assert _energy_forces(calc, atoms)[0] == pytest.approx(e0, abs=1e-10)  # hooks gone


def _max_scaled_sigma(frames) -> float:
    return max(
        SCALES[z] * s
        for f in frames
        for z, s in zip(f.atoms.get_chemical_symbols(), f.atom_scores, strict=True)
    )


@pytest.mark.slow  # two 40-step MD runs (~25 s)
def test_biased_md_reaches_larger_uncertainty_than_thermal_md_from_the_same_start(mini):
    calc, llpr, start = mini
    model = calc.models[0]
    runs = {}
    for name in ("thermal", "biased"):
        scorer = LastLayerScorer(model, llpr)
        bias = LastLayerBias(model, llpr, 5.0, 0.5, SCALES) if name == "biased" else None
        try:
            runs[name] = list(
                langevin_frames(start, calc, 300.0, 40, 5, seed=3, scorer=scorer, bias=bias)
            )
        finally:
            scorer.close()
            if bias is not None:
                bias.close()
    assert len(runs["thermal"]) == len(runs["biased"]) == 8  # neither stopped
    # measured: 65 vs 9.4 eV/Å (scaled LLPR std; the bare foundation knows little of H2/Cu)
    assert _max_scaled_sigma(runs["biased"]) > 2 * _max_scaled_sigma(runs["thermal"])


def test_batched_engine_biases_each_replica_as_the_ase_engine(mini):
    """Two replicas in one batch (one bias each, by the layout) follow the ASE biased runs."""
    from frostline.explore.batched import batched_langevin_frames
    from frostline.explore.shared_committee import SharedCommittee

    calc, llpr, start = mini
    model, seeds = calc.models[0], [2, 5]
    reference = []
    for seed in seeds:
        bias = LastLayerBias(model, llpr, 5.0, 0.5, SCALES)
        try:
            reference.append(list(langevin_frames(start, calc, 300.0, 10, 5, seed=seed, bias=bias)))
        finally:
            bias.close()
    committee = SharedCommittee([model], device="cpu")
    bias = LastLayerBias(committee.models[0], llpr, 5.0, 0.5, SCALES)
    try:
        replicas = batched_langevin_frames(
            committee, [start, start], [300.0] * 2, seeds, 10, 5, abort_force_std=np.inf,
            bias=bias,
        )  # fmt: skip
    finally:
        bias.close()
    assert len(bias.last_energy) == 2 and (bias.last_energy < 0).all()
    for rep, ref in zip(replicas, reference, strict=True):
        assert [f.step for f in rep.frames] == [f.step for f in ref] == [5, 10]
        for a, b in zip(rep.frames, ref, strict=True):
            assert np.allclose(a.atoms.positions, b.atoms.positions, atol=1e-9, rtol=0)
            assert np.isclose(a.max_force, b.max_force, rtol=1e-7)


def test_md_stops_on_the_calibrated_bound_in_both_engines(mini):
    from frostline.explore.batched import batched_langevin_frames
    from frostline.explore.shared_committee import SharedCommittee

    calc, llpr, start = mini
    fit = ConformalCalibration(method="last-layer", element_scales=SCALES, quantile=2.0)
    bound = ErrorBound.of({"conformal": fit.model_dump()})
    scorer = LastLayerScorer(calc.models[0], llpr)
    try:
        frames = list(langevin_frames(start, calc, 300.0, 10, 5, seed=1, scorer=scorer))
        assert frames[-1].stop_reason is None and len(frames) == 2  # no bound: no stop
        limit = 0.5 * bound(frames[0])  # the first frame's bound is twice the limit
        stopped = list(
            langevin_frames(
                start, calc, 300.0, 20, 5, seed=1, scorer=scorer, error_bound=bound, max_error=limit
            )  # fmt: skip
        )
        assert len(stopped) == 1 and stopped[0].stop_reason == "error_bound"
    finally:
        scorer.close()
    committee = SharedCommittee([calc.models[0]], device="cpu")
    scorer = LastLayerScorer(committee.models[0], llpr)
    try:
        replicas = batched_langevin_frames(
            committee, [start], [300.0], [1], 10, 5, scorer=scorer, error_bound=bound,
            max_error=limit,
        )  # fmt: skip
    finally:
        scorer.close()
    assert replicas[0].stopped == "error_bound" and replicas[0].steps_done == 5


def test_error_bound_of_each_calibration():
    assert ErrorBound.of({}) is None  # no calibration: no calibrated stop
    assert ErrorBound.of({"slope": -0.5, "intercept": 1.0}) is None  # not increasing
    linear = ErrorBound.of({"slope": 2.0, "intercept": 0.1})

    class Frame:
        max_force_std, atom_scores = 0.4, None

    assert linear(Frame()) == pytest.approx(0.9)


def test_bad_bias_settings_are_one_line_naming_the_field():
    for explore, field in (
        ({"bias_strength": -1.0}, "explore.bias_strength"),
        ({"bias_width": 0.0}, "explore.bias_width"),
        ({"bias": "metadynamics"}, "explore.bias"),
        ({"abort_error_factor": 0.5}, "explore.abort_error_factor"),
    ):
        with pytest.raises(ConfigError) as err:
            parse_config(tiny_campaign(explore=explore, select={"uncertainty": "last-layer"}))
        assert "\n" not in str(err.value) and field in str(err.value), str(err.value)
    with pytest.raises(ConfigError, match="explore.bias: uncertainty needs select.uncertainty"):
        parse_config(tiny_campaign(explore={"bias": "uncertainty"}))
    config = parse_config(
        tiny_campaign(explore={"bias": "uncertainty"}, select={"uncertainty": "last-layer"})
    )
    from frostline.flows.active_learning import ActiveLearningMaker

    maker = ActiveLearningMaker.from_config(config, "mini").explore
    assert (maker.bias, maker.target_force_error) == (
        "uncertainty",
        config.select.target_force_error,
    )
    from frostline.explore.jobs import ExploreMaker

    with pytest.raises(ValueError, match="ExploreMaker field 'bias_strength'"):
        ExploreMaker(uncertainty="last-layer", bias="uncertainty", bias_strength=-1.0)


def test_features_and_bias_hooks_coexist_in_either_order(mini):
    """Hooks measure their layers' gains with a probe call, which must not reach (and break)
    hooks already on the model (exploration attaches the bias before the scorer)."""
    calc, llpr, atoms = mini
    model = calc.models[0]
    bias = LastLayerBias(model, llpr, 1.0, 0.3, SCALES)
    scorer = LastLayerScorer(model, llpr)
    try:
        bias.layout(atoms.get_chemical_symbols())
        _energy_forces(calc, atoms)
        assert len(scorer(atoms.get_chemical_symbols())) == len(atoms)
        assert bias.last_energy.shape == (1,)
    finally:
        scorer.close()
        bias.close()
