"""The last-layer (LLPR) uncertainty in the active-learning loop: state, scoring, calibration.

``select.uncertainty: last-layer`` scores frames with member 0 of each fine-tuned committee:

- **state**: the per-element inverse covariance of member 0's last-layer features on its own
  training structures (``LLPR`` with ``covariance="atoms"``, ridge ``LLPR_REGULARIZER`` as in
  the uncertainty benchmark), fitted once per model and stored beside the model's weights in
  the blob store (``<model_id>.llpr``, an ``.npz`` read with ``allow_pickle=False``). A resumed
  campaign reloads it instead of refitting; a stored state is never overwritten.
- **scoring**: forward hooks (:class:`LastLayerScorer`) read the features during the force
  call of the MD engine, so exploring with the uncertainty costs about one model.
- **calibration**: after every labelled batch, member 0's true atomic force errors on the new
  labels and their per-atom scores refit a split-conformal bound with per-element scales
  (``fit_conformal``); the trust window of the next selection is where that bound equals the
  target error and ``hi_factor`` times it (``ConformalCalibration.window``), in the fit's
  normalised frame-score units (``ConformalCalibration.frame_score``), which selection applies
  to the candidates' per-atom scores.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from pymatgen.io.ase import AseAtomsAdaptor

from frostline.schemas import LabelledStructure, ModelDoc, as_structure
from frostline.select.calibration import Calibration, pooled_iterations
from frostline.select.uncertainty.calibration import (
    ConformalCalibration,
    FrameScores,
    coverage_of,
    fit_conformal,
)
from frostline.select.uncertainty.last_layer import LLPR, LastLayerFeatures, calculator_features
from frostline.store import BLOB_STORE, Records, StoreError

LLPR_COVARIANCE = "atoms"  # one covariance per element (the benchmark's "last-layer-atoms")
LLPR_REGULARIZER = 1e-4  # relative ridge, the benchmark's default
STATE_SUFFIX = ".llpr"
COVERAGE = 0.9  # nominal coverage of the calibrated bound


# -- the fitted state, stored without pickle ---------------------------------------------------


def state_to_bytes(llpr: LLPR) -> bytes:
    """An ``.npz`` of the LLPR state (settings, elements, one inverse covariance each)."""
    elements = sorted(llpr.inverse)
    arrays = {f"inverse_{i}": llpr.inverse[z] for i, z in enumerate(elements)}
    buffer = io.BytesIO()
    np.savez(
        buffer,
        covariance=np.array(llpr.covariance),
        regularizer=np.array(llpr.regularizer),
        n_train=np.array(llpr.n_train),
        elements=np.array(elements, dtype=str),
        **arrays,
    )
    return buffer.getvalue()


def state_from_bytes(data: bytes, source: str = "LLPR state") -> LLPR:
    """The LLPR state written by :func:`state_to_bytes` (no pickle is ever loaded)."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            llpr = LLPR(str(npz["covariance"]), float(npz["regularizer"]))
            llpr.n_train = int(npz["n_train"])
            elements = [str(z) for z in npz["elements"]]
            llpr.inverse = {z: np.array(npz[f"inverse_{i}"]) for i, z in enumerate(elements)}
    except (ValueError, KeyError, OSError) as exc:
        raise StoreError(f"{source}: not a valid LLPR state ({exc})") from None
    return llpr


def state_id(model_id: str) -> str:
    """The blob-store key of a model's LLPR state."""
    return f"{model_id}{STATE_SUFFIX}"


def training_atoms(records: Records, model: ModelDoc) -> list[Atoms]:
    """The structures ``model`` was trained on (its ``training_set_hashes``), by hash order."""
    hashes = sorted(set(model.training_set_hashes))
    docs = records.find("labelled", {"structure_hash": {"$in": hashes}, "status": "ok"})
    by_hash = {}
    for doc in docs:
        by_hash.setdefault(doc["structure_hash"], doc["structure"])
    missing = [h for h in hashes if h not in by_hash]
    if missing or not hashes:
        raise StoreError(
            f"model {model.model_id}: {len(missing)} of its {len(hashes)} training structures "
            "are not in the store (the LLPR state needs them)"
        )
    return [AseAtomsAdaptor.get_atoms(as_structure(by_hash[h])) for h in hashes]


def last_layer_state(records: Records, model: ModelDoc, device: str = "cpu") -> LLPR:
    """The LLPR state of ``model``: the stored one, or fitted on its training structures
    (float64, a model rebuilt from the store) and stored."""
    key = state_id(model.model_id)
    if records[BLOB_STORE].count({"model_id": key}):
        return state_from_bytes(records.get_model_file(key), key)
    from frostline.finetune.committee import load_committee

    calc = load_committee(records, [model], device=device, dtype="float64")
    atoms = training_atoms(records, model)
    features = calculator_features(calc, atoms)
    llpr = LLPR(LLPR_COVARIANCE, LLPR_REGULARIZER)
    llpr.fit(features, [a.get_chemical_symbols() for a in atoms])
    if not records[BLOB_STORE].count({"model_id": key}):  # never overwrite a stored state
        records.put_model_file(key, state_to_bytes(llpr))
    return llpr


class LastLayerScorer:
    """Per-atom LLPR standard deviations of a model's latest call (hooks on its readouts).

    Call it after the model computed the forces of a frame (or a batch of frames): it reads
    the features that call left, so the scores cost no extra model evaluation.
    """

    def __init__(self, model, llpr: LLPR):
        self.llpr = llpr
        self._hooks = LastLayerFeatures(model)

    def __call__(self, symbols: Sequence[str]) -> np.ndarray:
        """Scores of the atoms of the latest call (``symbols``: their elements, in order)."""
        variance = self.llpr.atom_variances(self._hooks.take(), symbols)
        return np.sqrt(np.clip(variance, 0.0, None))

    def close(self) -> None:
        """Detach the hooks."""
        self._hooks.remove()


# -- calibration after a labelled batch ---------------------------------------------------------


def label_scores(
    records: Records, model: ModelDoc, labels: Sequence[LabelledStructure], device: str = "cpu"
) -> tuple[list[FrameScores], list[list[float]]]:
    """Member ``model``'s per-atom scores and true atomic force errors (eV/Å) on ``labels``,
    from the stored LLPR state (scores and forces from one model call per structure)."""
    from frostline.finetune.committee import load_committee
    from frostline.select.uncertainty.methods import LastLayerUncertainty, atom_force_errors

    if not labels:
        return [], []
    method = LastLayerUncertainty(
        load_committee(records, [model], device=device, dtype="float64"),
        last_layer_state(records, model, device),
    )
    atoms = [AseAtomsAdaptor.get_atoms(as_structure(x.structure)) for x in labels]
    predictions = method.predict(atoms)
    errors = [
        atom_force_errors(p.forces, np.asarray(x.forces)).tolist()
        for p, x in zip(predictions, labels, strict=True)
    ]
    return [p.scores for p in predictions], errors


def conformal_trust(
    cal: ConformalCalibration,
    frame_errors: Sequence[float],
    target_error: float,
    hi_factor: float,
    hi_reference: str = "target",
) -> tuple[float, float, float]:
    """(lo, hi, reference error) of the window a fitted conformal calibration gives:
    bound = target, and bound = ``hi_factor`` x the target (``typical``: x the larger of the
    target and the median frame error)."""
    reference = target_error
    if hi_reference == "typical" and len(frame_errors):
        reference = max(target_error, float(np.median(frame_errors)))
    lo, hi = cal.window(target_error, hi_factor * reference / target_error)
    return lo, hi, reference


def calibrate_last_layer(
    records: Records,
    model: ModelDoc,
    labels: Sequence[LabelledStructure],
    settings: dict,
    earlier: Sequence[dict] = (),
    index: int = 0,
) -> Calibration:
    """Refit the conformal calibration of the last-layer scores on the batch just labelled.

    ``settings``: ``target_error``, ``hi_factor``, ``min_points``, ``hi_reference``,
    ``history`` and ``device`` (those of ``calibrate_committee``); ``earlier``: iteration
    documents before ``index``: the batches of the last ``history - 1`` join the fit, and the
    latest fitted one's bound is checked on this batch (``coverage_previous_fit``).
    """
    scores, errors = label_scores(records, model, labels, settings.get("device", "cpu"))
    fit_scores, fit_errors, added = list(scores), list(errors), []
    for doc in pooled_iterations(earlier, index, settings.get("history", 1)):
        cal = doc.get("calibration") or {}
        frames, atom_errors = cal.get("frames") or [], cal.get("atom_errors") or []
        if frames and len(frames) == len(atom_errors):
            fit_scores += [FrameScores.model_validate(f) for f in frames]
            fit_errors += [list(e) for e in atom_errors]
            added.append(int(doc["index"]))
    conformal = fit_conformal(
        "last-layer", fit_scores, fit_errors, COVERAGE, settings.get("min_points", 5)
    )
    frame_errors = [max(e) for e in errors]
    out = Calibration(
        n_points=conformal.n_frames,
        uncertainty="last-layer",
        conformal=conformal,
        frames=scores,
        atom_errors=errors,
        errors=frame_errors,
        pooled_from=added,
        note=conformal.note,
    )
    out.coverage_previous_fit = previous_coverage(earlier, index, scores, frame_errors)
    if not conformal.fitted:
        out.stds = [s.frame for s in scores]
        return out
    out.stds = [conformal.frame_score(s) for s in scores]
    out.coverage_observed = coverage_of(
        [conformal.bound(s) for s in fit_scores], [max(e) for e in fit_errors]
    )
    target = settings["target_error"]
    lo, hi, reference = conformal_trust(
        conformal, [max(e) for e in fit_errors], target, settings.get("hi_factor", 3.0),
        settings.get("hi_reference", "target"),
    )  # fmt: skip
    if math.isfinite(lo) and math.isfinite(hi):
        out.trust_lo, out.trust_hi, out.hi_reference_error = lo, hi, reference
    return out


def previous_coverage(
    earlier: Sequence[dict], index: int, scores: Sequence[FrameScores], errors: Sequence[float]
) -> float | None:
    """Share of this batch's frames within the bound of the latest earlier fit (held-out
    frames, scored by this iteration's model: how the window selection used held up)."""
    for doc in sorted(earlier, key=lambda d: d.get("index", -1), reverse=True):
        conformal = (doc.get("calibration") or {}).get("conformal") or {}
        if doc.get("index", index) < index and conformal.get("quantile") is not None:
            if not scores:
                return None
            fit = ConformalCalibration.model_validate(conformal)
            return coverage_of([fit.bound(s) for s in scores], errors)
    return None


def window_calibration(iterations: Sequence[dict], trust: Sequence[float] | None) -> dict:
    """The calibration document that derived the window ``trust`` (the latest of
    ``iterations`` whose calibration window it is), or {} (no window, or one set by hand)."""
    if not trust:
        return {}
    for doc in sorted(iterations, key=lambda d: d.get("index", -1), reverse=True):
        cal = doc.get("calibration") or {}
        window = (cal.get("trust_lo"), cal.get("trust_hi"))
        if None in window:
            continue
        if all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(window, trust, strict=True)):
            return cal
    return {}


def window_scales(iterations: Sequence[dict], trust: Sequence[float] | None) -> dict[str, float]:
    """The per-element scales of the conformal fit that derived the window ``trust``, or {}
    (an uncalibrated window: scores are compared raw)."""
    conformal = window_calibration(iterations, trust).get("conformal") or {}
    if conformal.get("quantile") is None:
        return {}
    return dict(conformal.get("element_scales") or {})


@dataclass
class ErrorBound:
    """A frame's calibrated predicted error (eV/Å), from the calibration of a trust window.

    ``last-layer`` (a conformal fit): the bound ``q · max_i a_z(i) σ_i`` on the frame's largest
    atomic force error (its per-atom scores and elements); ``committee`` (a linear fit with a
    positive slope): ``slope · max_force_std + intercept``. Exploration stops a trajectory when
    it exceeds ``explore.abort_error_factor`` x ``select.target_force_error``.
    """

    conformal: ConformalCalibration | None = None
    slope: float = 0.0
    intercept: float = 0.0

    @classmethod
    def of(cls, calibration: dict) -> ErrorBound | None:
        """The bound of a stored calibration, or None (none fitted, or not increasing)."""
        conformal = calibration.get("conformal") or {}
        if conformal.get("quantile") is not None:
            return cls(conformal=ConformalCalibration.model_validate(conformal))
        if (calibration.get("slope") or 0.0) > 0:
            return cls(slope=calibration["slope"], intercept=calibration.get("intercept") or 0.0)
        return None

    def __call__(self, frame) -> float:
        """The bound of an explored ``Frame`` (its ``atom_scores``, or ``max_force_std``)."""
        if self.conformal is None:
            return self.slope * frame.max_force_std + self.intercept
        if frame.atom_scores is None:
            return math.nan
        symbols = frame.atoms.get_chemical_symbols()
        return self.conformal.bound(FrameScores(atom=frame.atom_scores, symbols=symbols))
