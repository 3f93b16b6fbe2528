"""Can recalibration alone make the last-layer bound cover the shifted test sets?

Offline analysis on the models, calibration labels and test sets of ``uncertainty_quality.py``
(run that first: it trains and caches the models): member 0's last-layer (per-element atom
covariance) scores are computed once, then the 90 % bound is recalibrated three ways and its
coverage printed per set: split conformal as in frostline (pooled), the same with k labelled
frames of the test set added to the calibration (coverage on the rest, 200 draws), localized
conformal (calibration frames weighted by a Gaussian kernel in log score), and an additive floor
(bound = q (u + c)). Last line: ``Spearman(u, error / u) on cu100 = X`` (near -1: the error does
not follow the score, so no multiplier of it can cover the set).

    OMP_NUM_THREADS=2 .venv/bin/python workflows/benchmarks/uncertainty_recalibration.py
"""

from __future__ import annotations

import math

import numpy as np
import uncertainty_quality as uq
from ase.io import read

from frostline.finetune.committee import committee_calculator
from frostline.select.uncertainty import (
    LastLayerUncertainty,
    atom_force_errors,
    coverage_of,
    fit_conformal,
    spearman,
)

SETS = ("oracle-md", "elbow", "cu100")


def scored_sets() -> dict[str, list]:
    """(scores, atom errors) per frame of the calibration and every test set."""
    train_labels, cal_labels = uq.campaign_sets(5)
    model = committee_calculator([uq.OUT / "models" / "member0.model"], device="cpu")
    method = LastLayerUncertainty.fit(model, [x.to_atoms() for x in train_labels], "atoms", 1e-4)
    frames = {"calibration": [x.to_atoms() for x in cal_labels], "oracle-md": read(uq.MD_TEST, ":"),
              "elbow": uq.elbow_set(), "cu100": uq.cu100_set()}  # fmt: skip
    return {
        name: [
            (p.scores, atom_force_errors(p.forces, uq.reference_forces(a)))
            for p, a in zip(method.predict(fs), fs, strict=True)
        ]  # fmt: skip
        for name, fs in frames.items()
    }


def pooled(cal: list, test: list) -> float:
    """Coverage on ``test`` of frostline's split-conformal bound fitted on ``cal``."""
    c = fit_conformal("last-layer", [s for s, _ in cal], [e for _, e in cal], coverage=0.9)
    return coverage_of([c.bound(s) for s, _ in test], [max(e) for _, e in test])


def weighted_quantile(ratios: np.ndarray, weights: np.ndarray, coverage: float = 0.9) -> float:
    """Weighted conformal quantile (the test point's own weight 1 at infinity)."""
    order = np.argsort(ratios)
    cumulative = np.cumsum(weights[order]) / (weights.sum() + 1.0)
    i = int(np.searchsorted(cumulative, coverage))
    return float(ratios[order][i]) if i < len(ratios) else math.inf


def main() -> None:
    d = scored_sets()
    c = fit_conformal("last-layer", [s for s, _ in d["calibration"]],
                      [e for _, e in d["calibration"]], coverage=0.9)  # fmt: skip
    u_e = {k: (np.array([c.frame_score(s) for s, _ in v]), np.array([max(e) for _, e in v]))
           for k, v in d.items()}  # fmt: skip
    uc, ec = u_e["calibration"]
    rng = np.random.default_rng(0)
    for name in SETS:
        ut, et = u_e[name]
        print(f"{name}: pooled coverage {pooled(d['calibration'], d[name]):.3f}")
        for k in (2, 4, 8):
            draws = [rng.permutation(len(d[name])) for _ in range(200)]
            covs = [pooled(d["calibration"] + [d[name][i] for i in p[:k]],
                           [d[name][i] for i in p[k:]]) for p in draws]  # fmt: skip
            print(f"  + {k} labels of the set in the calibration: {np.mean(covs):.3f}")
        for h in (0.5, 1.0):
            w = [np.exp(-0.5 * ((np.log(uc) - np.log(u)) / h) ** 2) for u in ut]
            b = np.array([weighted_quantile(ec / uc, wi) * u for wi, u in zip(w, ut, strict=True)])
            print(f"  localized (width {h}): {np.mean(et <= b):.3f}, "
                  f"{np.mean(np.isinf(b)):.0%} of bounds infinite")  # fmt: skip
        for label, floor in (("median", np.median(uc)), ("p90", np.percentile(uc, 90))):
            q = weighted_quantile(ec / (uc + floor), np.ones_like(uc))
            print(f"  floor c = calibration {label} u: {np.mean(et <= q * (ut + floor)):.3f}")
    ut, et = u_e["cu100"]
    print(f"Spearman(u, error / u) on cu100 = {spearman(ut, et / ut):.2f}")


if __name__ == "__main__":
    main()
