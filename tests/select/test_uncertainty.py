"""Uncertainty methods and their calibration (frostline.select.uncertainty)."""

from __future__ import annotations

import numpy as np
import pytest

from frostline.select.uncertainty import FrameScores, auroc, coverage_of, fit_conformal, spearman
from frostline.select.uncertainty.calibration import conformal_quantile, miscalibration_area


def synthetic(n: int, rng: np.random.Generator, h_factor: float = 5.0):
    """Frames of 4 Cu + 1 H atoms: each atom's error = its score x element factor x noise."""
    symbols = ["Cu"] * 4 + ["H"]
    factor = np.array([1.0] * 4 + [h_factor])
    scores, errors = [], []
    for _ in range(n):
        s = rng.lognormal(-2.0, 0.8, size=5)
        e = s * factor * np.abs(rng.normal(size=5))
        scores.append(FrameScores(atom=s.tolist(), symbols=symbols))
        errors.append(e.tolist())
    return scores, errors


def test_conformal_bound_has_its_nominal_coverage_on_held_out_frames():
    """Fitted on 400 frames, the 90 % bound covers 90 % (±0.05) of 4000 new ones."""
    rng = np.random.default_rng(0)
    cal = fit_conformal("synthetic", *synthetic(400, rng), coverage=0.9)
    assert cal.fitted and cal.element_scales["H"] / cal.element_scales["Cu"] == pytest.approx(
        5, rel=0.3
    )
    scores, errors = synthetic(4000, rng)
    frame_error = [max(e) for e in errors]
    observed = coverage_of([cal.bound(s) for s in scores], frame_error)
    assert abs(observed - 0.9) <= 0.05
    assert abs(coverage_of([cal.bound(s, 0.5) for s in scores], frame_error) - 0.5) <= 0.05
    assert miscalibration_area(cal, scores, frame_error) < 0.05
    lo, hi = cal.window(target=0.3, hi_factor=3.0)
    assert cal.quantile * lo == pytest.approx(0.3) and hi == pytest.approx(3 * lo)


def test_uncalibrated_per_element_scales_would_miss_the_coverage():
    """Without per-element scales the H atoms (5x the error at the same score) dominate: the
    same data with H and Cu swapped in the calibration batch gives a wrong bound."""
    rng = np.random.default_rng(1)
    cal = fit_conformal("synthetic", *synthetic(400, rng, h_factor=1.0))
    scores, errors = synthetic(4000, rng, h_factor=5.0)  # H suddenly 5x worse
    observed = coverage_of([cal.bound(s) for s in scores], [max(e) for e in errors])
    assert observed < 0.8  # the bound is only as good as its calibration data: refit each batch


def test_conformal_refuses_too_few_frames_and_says_why():
    rng = np.random.default_rng(2)
    cal = fit_conformal("synthetic", *synthetic(3, rng), min_frames=5)
    assert not cal.fitted and "3 labelled frames < 5" in cal.note
    with pytest.raises(ValueError, match="no bound"):
        cal.bound(FrameScores(atom=[1.0], symbols=["H"]))
    assert conformal_quantile([1.0, 2.0], 0.9) == np.inf  # 2 points cannot give 90 %


def test_quality_figures():
    error = np.array([0.1, 0.2, 0.4, 0.8])
    assert spearman([1, 2, 3, 4], error) == pytest.approx(1.0)
    assert auroc([1, 2, 3, 4], error, target=0.3) == pytest.approx(1.0)
    assert auroc([4, 3, 2, 1], error, target=0.3) == pytest.approx(0.0)
    assert np.isnan(auroc([1, 2, 3, 4], error, target=5.0))  # every frame below the target
    assert np.isnan(spearman([1, 1, 1, 1], error))


# -- last-layer (LLPR) on a real MACE model --------------------------------------------------


@pytest.fixture(scope="module")
def mini_calc():
    import mace  # noqa: F401
    from mace.calculators import MACECalculator

    from frostline.finetune.foundation import resolve_foundation

    return MACECalculator(
        model_paths=resolve_foundation("mini"), device="cpu", default_dtype="float64"
    )


@pytest.fixture(scope="module")
def frames():
    from frostline.structures import h2_cu111_structures

    return h2_cu111_structures(5, np.random.default_rng(3), include_references=False)


def brute_force_gradients(calc, atoms):
    """d(energy)/d(last-layer weights), per structure and per atom, by autograd."""
    import torch

    from frostline.select.uncertainty.last_layer import _last_linears

    model = calc.models[0]
    weights = [layer.weight for layer in _last_linears(model)]
    for w in weights:
        w.requires_grad_(True)
    try:
        batch = calc._atoms_to_batch(atoms)
        out = model(batch.to_dict(), compute_force=False)

        def grad(y):
            g = torch.autograd.grad(y, weights, retain_graph=True)
            return np.concatenate([x.detach().numpy().reshape(-1) for x in g])

        per_atom = np.stack([grad(e) for e in out["node_energy"]])
        return grad(out["energy"].sum()), per_atom
    finally:
        for w in weights:
            w.requires_grad_(False)


def test_last_layer_variance_matches_brute_force(mini_calc, frames):
    """LLPR from the forward hooks equals the Laplace variance built from autograd Jacobians."""
    from frostline.select.uncertainty.last_layer import LLPR, calculator_features

    train, query = frames[:4], frames[4]
    features = calculator_features(mini_calc, [*train, query])
    symbols = [a.get_chemical_symbols() for a in train]
    llpr = LLPR("structures", regularizer=1e-3).fit(features[:4], symbols)
    J = np.stack([brute_force_gradients(mini_calc, a)[0] for a in train])
    gram = J.T @ J
    inverse = np.linalg.inv(gram + 1e-3 * np.mean(np.diag(gram)) * np.eye(len(gram)))
    j_query, j_atoms = brute_force_gradients(mini_calc, query)
    assert llpr.frame_variance(features[4]) == pytest.approx(j_query @ inverse @ j_query, rel=1e-8)
    brute_atoms = np.einsum("ij,jk,ik->i", j_atoms, inverse, j_atoms)
    got = llpr.atom_variances(features[4], query.get_chemical_symbols())
    np.testing.assert_allclose(got, brute_atoms, rtol=1e-8)
    assert np.all(got > 0)


def test_last_layer_scores_come_with_the_models_own_forces(mini_calc, frames):
    """One call: the forces are the plain model's, the per-atom scores are finite, a training
    frame is less uncertain than a strongly compressed one, an unknown element is inf."""
    from ase import Atoms

    from frostline.select.uncertainty import LastLayerUncertainty

    method = LastLayerUncertainty.fit(mini_calc, frames[:4], covariance="atoms")
    squeezed = frames[4].copy()
    squeezed.set_cell(squeezed.cell * 0.8, scale_atoms=True)
    seen, far = method.predict([frames[0], squeezed])
    plain = frames[0].copy()
    plain.calc = mini_calc
    np.testing.assert_allclose(seen.forces, plain.get_forces(), atol=1e-10)
    assert len(seen.scores.atom) == len(frames[0]) and np.isfinite(seen.scores.atom).all()
    assert far.scores.frame > seen.scores.frame
    (again,) = method.predict([frames[0]])  # the same atoms twice: a model call each time
    assert again.scores == seen.scores
    gold = Atoms("Au2", positions=[[0, 0, 0], [0, 0, 2.5]], cell=[10, 10, 10], pbc=True)
    assert np.isinf(method.predict([gold])[0].scores.frame)


def test_llpr_settings_are_checked():
    from frostline.select.uncertainty.last_layer import LLPR

    with pytest.raises(ValueError, match="covariance"):
        LLPR("per-frame")
    with pytest.raises(ValueError, match="regularizer"):
        LLPR("atoms", regularizer=0)


def test_calibration_plot_title_says_what_it_draws(tmp_path):
    """The plot shades a window only where one was derived, and says why none was."""
    from frostline.report.plots import calibration_plot, calibration_title
    from frostline.select.calibration import fit_calibration

    downward = fit_calibration([0.1, 0.2, 0.3, 0.4, 0.5], [0.5, 0.4, 0.3, 0.2, 0.1], 0.3)
    upward = fit_calibration([0.1, 0.2, 0.3, 0.4, 0.5], [0.1, 0.2, 0.3, 0.4, 0.5], 0.3)
    title = calibration_title("c", [downward.model_dump()])
    assert "no trust window: error does not grow with committee std" in title
    assert "shaded" in calibration_title("c", [downward.model_dump(), upward.model_dump()])
    status = {"campaign": "c", "iterations": [{"index": 0, "calibration": downward.model_dump()}]}
    assert calibration_plot(status, tmp_path / "cal.png").stat().st_size > 0
