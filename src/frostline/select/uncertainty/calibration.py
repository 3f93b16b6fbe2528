"""Calibrated error bounds on top of any uncertainty score (split-conformal, per element).

A method scores each atom (committee force std, descriptor novelty, last-layer variance: any
non-negative number that grows with the error). Calibration on a labelled batch turns scores
into a bound on the frame's largest atomic force error with a stated coverage:

1. per element ``z``, a scale ``a_z``: the median over that element's atoms of
   ``error_i / score_i`` (H and Cu atoms of the same score do not have the same error);
2. the frame score ``u = max_i a_z(i) score_i`` (the atom most likely to be wrong);
3. the split-conformal quantile ``q`` of ``error_frame / u`` at level ``ceil((n+1) c) / n``
   (Vovk; Angelopoulos & Bates 2021): for frames exchangeable with the calibration frames,
   ``P(error <= q u) >= c``.

The bound ``q u`` is monotone in every atom's score; the trust window follows from it
(``window``): frames whose bound is below the target error are accurate with confidence ``c``.
Also here: the figures that say whether a score tracks the error (Spearman rank correlation,
AUROC for frames above a target, coverage, miscalibration area).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field

TINY = 1e-12


class FrameScores(BaseModel):
    """One frame's uncertainty: a score per atom (method units) and the atoms' elements."""

    atom: list[float]
    symbols: list[str]

    @property
    def frame(self) -> float:
        """The largest atom score (the raw per-frame score)."""
        return float(max(self.atom, default=0.0))


class ConformalCalibration(BaseModel):
    """Per-element scales and a conformal multiplier: ``bound = quantile * max_i a_z s_i``."""

    method: str = Field(description="the uncertainty method whose scores this calibrates")
    coverage: float = Field(0.9, gt=0, lt=1, description="nominal coverage of the bound")
    element_scales: dict[str, float] = Field(
        default_factory=dict, description="per element: median atomic error / score (eV/Å)"
    )
    quantile: float | None = Field(None, description="conformal multiplier of the frame score")
    ratios: list[float] = Field(
        default_factory=list, description="calibration frames' error / normalised score"
    )
    n_frames: int = 0
    note: str | None = Field(None, description="why no bound was fitted, if none was")

    @property
    def fitted(self) -> bool:
        return self.quantile is not None

    def frame_score(self, scores: FrameScores) -> float:
        """The normalised frame score ``u`` (eV/Å before the conformal multiplier)."""
        default = max(self.element_scales.values(), default=1.0)
        return max(
            (self.element_scales.get(z, default) * s for s, z in zip(scores.atom, scores.symbols,
                                                                     strict=True)),
            default=0.0,
        )  # fmt: skip

    def bound(self, scores: FrameScores, coverage: float | None = None) -> float:
        """Upper bound (eV/Å) on the frame's largest atomic force error at ``coverage``."""
        if not self.fitted:
            raise ValueError(f"{self.method} calibration has no bound: {self.note}")
        q = self.quantile if coverage is None else conformal_quantile(self.ratios, coverage)
        return q * self.frame_score(scores)

    def window(self, target: float, hi_factor: float) -> tuple[float, float]:
        """Trust window in normalised-score units: bound = target and hi_factor x target."""
        if not self.fitted:
            raise ValueError(f"{self.method} calibration has no bound: {self.note}")
        q = max(self.quantile, TINY)
        return target / q, hi_factor * target / q


def conformal_quantile(ratios: Sequence[float], coverage: float) -> float:
    """The split-conformal quantile: the ``ceil((n+1) c)``-th smallest ratio (inf if n small)."""
    r = np.sort(np.asarray(ratios, dtype=float))
    k = math.ceil((len(r) + 1) * coverage)
    return float(r[k - 1]) if 0 < k <= len(r) else math.inf


def element_scales(
    scores: Sequence[FrameScores], atom_errors: Sequence[Sequence[float]]
) -> dict[str, float]:
    """Per element, the median of atomic force error / atom score over the given frames."""
    by_element: dict[str, list[float]] = {}
    for frame, errors in zip(scores, atom_errors, strict=True):
        for s, z, e in zip(frame.atom, frame.symbols, errors, strict=True):
            if np.isfinite(s) and np.isfinite(e):
                by_element.setdefault(z, []).append(e / max(s, TINY))
    return {z: float(np.median(r)) or TINY for z, r in by_element.items()}


def fit_conformal(
    method: str,
    scores: Sequence[FrameScores],
    atom_errors: Sequence[Sequence[float]],
    coverage: float = 0.9,
    min_frames: int = 5,
) -> ConformalCalibration:
    """Fit the per-element scales and the conformal multiplier on labelled frames.

    ``atom_errors``: per frame, each atom's force error norm (eV/Å) of the model whose
    uncertainty is scored. With fewer than ``min_frames`` finite frames no bound is fitted.
    """
    cal = ConformalCalibration(method=method, coverage=coverage)
    keep = [
        i
        for i, (s, e) in enumerate(zip(scores, atom_errors, strict=True))
        if np.isfinite(s.atom).all() and np.isfinite(e).all() and len(e)
    ]
    cal.n_frames = len(keep)
    if len(keep) < min_frames:
        cal.note = f"{len(keep)} labelled frames < {min_frames}"
        return cal
    scores = [scores[i] for i in keep]
    atom_errors = [atom_errors[i] for i in keep]
    cal.element_scales = element_scales(scores, atom_errors)
    u = np.array([cal.frame_score(s) for s in scores])
    e = np.array([max(err) for err in atom_errors])
    cal.ratios = (e / np.maximum(u, TINY)).tolist()
    cal.quantile = conformal_quantile(cal.ratios, coverage)
    if not math.isfinite(cal.quantile):
        cal.quantile, cal.note = None, f"{len(keep)} frames too few for coverage {coverage}"
    return cal


# -- the figures that say whether a score tracks the error -------------------------------------


def spearman(score: Sequence[float], error: Sequence[float]) -> float:
    """Spearman rank correlation (nan when either side is constant)."""
    from scipy.stats import spearmanr

    s, e = np.asarray(score, dtype=float), np.asarray(error, dtype=float)
    if len(s) < 2 or np.ptp(s) == 0 or np.ptp(e) == 0:
        return math.nan
    return float(spearmanr(s, e).statistic)


def auroc(score: Sequence[float], error: Sequence[float], target: float) -> float:
    """Area under the ROC curve of ``score`` detecting frames with ``error > target``
    (nan when all frames are on one side of the target)."""
    positive = np.asarray(error, dtype=float) > target
    if positive.all() or not positive.any():
        return math.nan
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(positive, np.asarray(score, dtype=float)))


def coverage_of(bounds: Sequence[float], error: Sequence[float]) -> float:
    """Share of frames whose error is at or below their bound."""
    b, e = np.asarray(bounds, dtype=float), np.asarray(error, dtype=float)
    return float(np.mean(e <= b)) if len(e) else math.nan


def miscalibration_area(
    calibration: ConformalCalibration,
    scores: Sequence[FrameScores],
    error: Sequence[float],
    levels: Sequence[float] = tuple(np.linspace(0.05, 0.95, 19)),
) -> float:
    """Mean |observed - nominal| coverage over ``levels`` of the calibrated bound (0: perfect)."""
    u = np.array([calibration.frame_score(s) for s in scores])
    e = np.asarray(error, dtype=float)
    gaps = [
        abs(float(np.mean(e <= conformal_quantile(calibration.ratios, c) * u)) - c) for c in levels
    ]
    return float(np.mean(gaps))
