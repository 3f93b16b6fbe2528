"""Calibration of the committee: how committee force spread maps to true force error.

Every freshly labelled batch gives, for each structure, the committee's max atomic force std
(what selection used) and the committee-mean model's true max atomic force error against the
oracle. A straight line ``error = intercept + slope * std`` is fitted by least squares; the trust
window of the next selection is then derived from a target error instead of fixed numbers:
``trust_lo`` is the std at which the expected error reaches the target, ``trust_hi`` the std at
which it reaches ``hi_factor`` times the target (frames beyond are too wild to label; DP-GEN's
customary 0.05 / 0.15 eV/Å corresponds to a factor 3). When the intercept already exceeds the
target (the model is nowhere accurate enough), ``trust_lo`` sits at its lower bound and every
frame below ``trust_hi`` is worth labelling.

``hi_reference="typical"`` measures "too wild" against the model's current error level
instead: ``trust_hi`` is where the expected error reaches ``hi_factor`` times the larger of the
target and the batch's median true error. While the model is poor everywhere (median error
above the target) the target-based ``trust_hi`` lands inside the bulk of the explored pool and
calls most ordinary frames "too uncertain" (measured: 172-180 of ~190 frames per iteration in
the selection benchmark); once the model is accurate both rules agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field

from frostline.finetune.evaluate import atom_force_errors
from frostline.select.uncertainty.calibration import ConformalCalibration, FrameScores

HI_REFERENCES = ("target", "typical")


class Calibration(BaseModel):
    """A fitted score → error relation and the trust window derived from it.

    ``uncertainty: committee`` (and ``descriptor``): a straight line through (score, error);
    ``last-layer``: a split-conformal bound with per-element scales (``conformal``), ``stds``
    then holding each frame's normalised score (``ConformalCalibration.frame_score``).
    """

    n_points: int
    uncertainty: str = Field("committee", description="the uncertainty method calibrated")
    slope: float | None = None
    intercept: float | None = None
    r2: float | None = None
    stds: list[float] = Field(default_factory=list, description="committee max force std, eV/Å")
    errors: list[float] = Field(default_factory=list, description="true max force error, eV/Å")
    trust_lo: float | None = None
    trust_hi: float | None = None
    hi_reference_error: float | None = Field(
        None, description="eV/Å: the error that hi_factor multiplies (target or typical)"
    )
    pooled_from: list[int] = Field(
        default_factory=list,
        description="earlier iterations whose batch points were added to the fit (``stds`` and "
        "``errors`` hold this batch's points only; ``n_points`` counts all that were fitted)",
    )
    note: str | None = Field(None, description="why no window was derived, if none was")
    conformal: ConformalCalibration | None = Field(
        None, description="last-layer: the conformal fit (quantile, per-element scales)"
    )
    coverage_observed: float | None = Field(
        None, description="last-layer: share of the fitted frames whose error is within the bound"
    )
    coverage_previous_fit: float | None = Field(
        None,
        description="last-layer: share of this batch within the previous fit's bound (held out)",
    )
    frames: list[FrameScores] = Field(
        default_factory=list, description="last-layer: this batch's per-atom scores"
    )
    atom_errors: list[list[float]] = Field(
        default_factory=list, description="last-layer: this batch's atomic force errors, eV/Å"
    )
    started_at: float | None = Field(None, description="epoch seconds when calibration began")
    wall_time_s: float = 0.0


def max_atomic_force_error(predicted: np.ndarray, reference: np.ndarray) -> float:
    """Largest per-atom force error norm (eV/Å): the quantity the committee std estimates."""
    return float(atom_force_errors(predicted, reference).max())


def fit_calibration(
    stds: Sequence[float],
    errors: Sequence[float],
    target_error: float,
    hi_factor: float = 3.0,
    min_points: int = 5,
    bounds: tuple[float, float] = (0.005, 2.0),
    hi_reference: str = "target",
) -> Calibration:
    """Fit ``error = intercept + slope * std`` and derive the trust window for ``target_error``.

    No window is derived (``trust_lo`` None, with a ``note``) when there are fewer than
    ``min_points`` finite points, no spread in std, or a non-positive slope; the caller then
    keeps its previous window. Both limits are clipped to ``bounds``; ``trust_hi`` is at least
    twice ``trust_lo``. ``hi_reference``: ``target`` or ``typical`` (see the module docstring).
    """
    if hi_reference not in HI_REFERENCES:
        raise ValueError(f"hi_reference must be one of {HI_REFERENCES}, got {hi_reference!r}")
    s = np.asarray(stds, dtype=float)
    e = np.asarray(errors, dtype=float)
    ok = np.isfinite(s) & np.isfinite(e)
    s, e = s[ok], e[ok]
    cal = Calibration(n_points=int(len(s)), stds=s.tolist(), errors=e.tolist())
    if len(s) < min_points:
        cal.note = f"{len(s)} points < {min_points}"
        return cal
    if np.ptp(s) <= 1e-12:
        cal.note = "no spread in committee std"
        return cal
    slope, intercept = np.polyfit(s, e, 1)
    pred = intercept + slope * s
    ss_tot = float(((e - e.mean()) ** 2).sum())
    cal.slope, cal.intercept = float(slope), float(intercept)
    cal.r2 = 1.0 - float(((e - pred) ** 2).sum()) / ss_tot if ss_tot > 0 else 1.0
    if slope <= 0:
        cal.note = "error does not grow with committee std"
        return cal
    lo = float(np.clip((target_error - intercept) / slope, *bounds))
    reference = target_error
    if hi_reference == "typical":
        reference = max(target_error, float(np.median(e)))
    hi = float(np.clip((hi_factor * reference - intercept) / slope, *bounds))
    cal.trust_lo, cal.trust_hi = lo, max(hi, 2.0 * lo)
    cal.hi_reference_error = reference
    return cal


def pooled_points(
    stds: Sequence[float],
    errors: Sequence[float],
    earlier: Sequence[dict],
    index: int,
    history: int,
) -> tuple[list[float], list[float], list[int]]:
    """This batch's (std, error) pairs plus those of the ``history - 1`` iterations before
    ``index``, read from their iteration documents (``calibration.stds`` / ``errors``).

    Returns (stds, errors, indices of the iterations added). Documents outside the window,
    without calibration points or with mismatched lists are skipped.
    """
    all_stds, all_errors, added = list(stds), list(errors), []
    for doc in pooled_iterations(earlier, index, history):
        cal = doc.get("calibration") or {}
        s, e = cal.get("stds") or [], cal.get("errors") or []
        if not s or len(s) != len(e):
            continue
        all_stds += list(s)
        all_errors += list(e)
        added.append(int(doc["index"]))
    return all_stds, all_errors, added


def pooled_iterations(earlier: Sequence[dict], index: int, history: int) -> list[dict]:
    """The iteration documents of ``earlier`` among the ``history - 1`` before ``index``,
    oldest first (the batches a calibration with ``history`` pools)."""
    if history < 1:
        raise ValueError(f"calibration history must be >= 1, got {history}")
    window = [d for d in earlier if d.get("index") is not None and index - history < d["index"]]
    return sorted([d for d in window if d["index"] < index], key=lambda d: d["index"])
