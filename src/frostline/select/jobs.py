"""Selection stage jobs: which explored frames are worth an oracle call, and calibration."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np
from jobflow import Maker
from pymatgen.io.ase import AseAtomsAdaptor

from frostline.choices import (
    ContactDeficit,
    Strategy,
    Stratify,
    Uncertainty,
)
from frostline.config import ConvergenceConfig, SelectConfig, maker_settings
from frostline.finetune.committee import load_committee
from frostline.finetune.evaluate import predict
from frostline.jobs import frostline_job
from frostline.schemas import (
    CandidateStructure,
    ExploreResult,
    FineTuneResult,
    LabelledStructure,
    SelectionResult,
    ValidationMetrics,
    as_structure,
    structure_hash,
)
from frostline.select.batch import BatchPlan, Fate, SelectionSettings, select_batch
from frostline.select.calibration import (
    Calibration,
    fit_calibration,
    max_atomic_force_error,
    pooled_points,
)
from frostline.select.convergence import stop_reason, validation_blocker
from frostline.select.filters import SanityLimits
from frostline.select.strategies import strategy_class
from frostline.store import current_records


def exploration_stratum(candidate: CandidateStructure) -> str:
    """The exploration condition that produced a frame: its sampler and MD temperature."""
    p = candidate.provenance
    return p.sampler if p.temperature is None else f"{p.sampler} {p.temperature:g} K"


@dataclass
class SelectMaker(Maker):
    """Filters, committee trust window, novelty gate against every label bought, budget.

    ``descriptor_model`` (a MACE ``.model`` path, normally the campaign's foundation) enables
    the novelty gate and diverse picking; without it selection uses the trust window only.

    ``uncertainty``: ``committee`` (the committee's max atomic force std, eV/Å),
    ``descriptor`` (one model is enough: a frame's novelty against every label bought, in
    descriptor units; needs ``descriptor_model``; the trust window is then in those units, and
    calibration fits the true force error against it) or ``last-layer`` (member 0's LLPR
    standard deviation per atom, recorded by exploration; a calibrated window is in the units
    of its conformal fit, whose per-element scales are applied to every atom's score here).
    """

    name: str = "select"
    trust_lo: float = 0.05
    trust_hi: float = 0.5
    max_labels_per_iteration: int = 8
    limits: SanityLimits = field(default_factory=SanityLimits)
    strategy: Strategy = "diverse"
    novelty_threshold: float = 0.02
    calibration_picks: int = 0
    contact_picks: int = 0
    contact_margin: float = 0.02
    contact_deficit: ContactDeficit = "absolute"
    sampling_power: float = 1.0
    stratify: Stratify = "none"
    cost_exponent: float = 1.0
    descriptor_model: str | None = None
    uncertainty: Uncertainty = "committee"
    target_force_error: float = 0.3
    device: str = "cpu"
    campaign: str = "campaign"
    convergence: ConvergenceConfig = field(default_factory=ConvergenceConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        maker_settings(self, SelectConfig)  # the campaign file's rules, named by field
        if self.strategy == "representative" and not self.descriptor_model:
            raise ValueError(
                "SelectMaker.strategy 'representative' needs descriptor_model (a MACE .model file;"
                " campaigns use their foundation file)"
            )
        if self.uncertainty == "descriptor" and not self.descriptor_model:
            raise ValueError(
                "SelectMaker.uncertainty 'descriptor' needs descriptor_model (a MACE .model file; "
                "campaigns use their foundation file)"
            )

    @frostline_job(SelectionResult)
    def make(
        self,
        explored: ExploreResult,
        n_labels_spent: int,
        iteration: int = 0,
        trust: list[float] | None = None,
        validation_metrics: ValidationMetrics | dict | None = None,
    ) -> SelectionResult:
        """Give every frame its fate, decide whether to stop, and pick the batch to label.

        ``trust``: a ``[lo, hi]`` window (eV/Å) from calibration, replacing the fixed one.
        ``validation_metrics``: the committee's errors on the validation set (convergence
        needs them to agree: ``frostline.select.convergence``).
        """
        t0 = time.perf_counter()
        explored = ExploreResult.model_validate(explored)
        lo, hi = trust if trust else (self.trust_lo, self.trust_hi)
        descriptor, labelled = self._descriptor(iteration)
        trained = self._labelled_atoms(iteration, role="train") if self.contact_picks else []
        candidates = self._scored(explored.candidates, labelled, descriptor)
        candidates = self._normalised(candidates, iteration, trust)
        n = len(candidates)
        strata = (
            [exploration_stratum(c) for c in candidates] if self.stratify == "exploration" else None
        )
        cap = max(
            0, min(self.max_labels_per_iteration, self.convergence.label_budget - n_labels_spent)
        )
        reason: list[str | None] = [None]
        validation = (
            ValidationMetrics.model_validate(validation_metrics) if validation_metrics else None
        )
        blocker = validation_blocker(self.convergence, validation, self.target_force_error)

        def stop(n_accurate: int, n_selectable: int) -> bool:
            frac = n_accurate / n if n else 0.0
            reason[0] = stop_reason(
                self.convergence, iteration, frac, n_labels_spent, n_selectable, blocker
            )
            return reason[0] is not None

        plan = select_batch(
            candidates,
            self.settings(lo, hi, cap),
            np.random.default_rng(self.seed + iteration),
            labelled=labelled,
            descriptor=descriptor,
            stop=stop,
            trained=trained,
            strata=strata,
        )
        result = self._result(plan, candidates, lo, hi, reason[0])
        if blocker and result.accurate_fraction >= self.convergence.accurate_fraction:
            result.convergence_note = blocker  # accurate by the uncertainty, not by validation
        result.wall_time_s, result.finished_at = time.perf_counter() - t0, time.time()
        return result

    def settings(self, trust_lo: float, trust_hi: float, cap: int) -> SelectionSettings:
        """The selection rules of this maker (its fields of the same names) for a trust window
        and a cap."""
        window = {"trust_lo": trust_lo, "trust_hi": trust_hi, "cap": cap}
        names = [f.name for f in fields(SelectionSettings) if f.name not in window]
        return SelectionSettings(**window, **{name: getattr(self, name) for name in names})

    def _descriptor(self, iteration: int) -> tuple[Callable | None, list]:
        """The descriptor model and the labelled structures, where selection needs them."""
        wants = self.novelty_threshold > 0 or strategy_class(self.strategy).scored
        if not self.descriptor_model or not (wants or self.uncertainty == "descriptor"):
            return None, []
        from frostline.select.novelty import DescriptorModel, memoized

        descriptor = memoized(DescriptorModel(self.descriptor_model, device=self.device))
        return descriptor, self._labelled_atoms(iteration)

    def _scored(
        self, candidates: list[CandidateStructure], labelled: list, descriptor: Callable | None
    ) -> list[CandidateStructure]:
        """The candidates, with descriptor novelty as their uncertainty if so configured."""
        if self.uncertainty != "descriptor":
            return candidates
        from frostline.select.novelty import descriptor_uncertainty

        scores = descriptor_uncertainty(
            [AseAtomsAdaptor.get_atoms(as_structure(c.structure)) for c in candidates],
            labelled,
            descriptor,
        )
        return [
            c.model_copy(update={"max_force_std": s})
            for c, s in zip(candidates, scores, strict=True)
        ]

    def _normalised(
        self, candidates: list[CandidateStructure], iteration: int, trust: list[float] | None
    ) -> list[CandidateStructure]:
        """last-layer: each frame's score in the units of the calibrated window ``trust`` (the
        per-element scales of the conformal fit that derived it applied to its atoms' scores);
        an uncalibrated window compares the raw largest atom score."""
        if self.uncertainty != "last-layer" or not trust:
            return candidates
        from frostline.select.uncertainty.calibration import ConformalCalibration, FrameScores
        from frostline.select.uncertainty.loop import window_scales

        earlier = current_records().find(
            "iterations", {"campaign": self.campaign, "index": {"$lt": iteration}}
        )
        scales = window_scales(earlier, trust)
        if not scales:
            return candidates
        cal = ConformalCalibration(method="last-layer", element_scales=scales)
        out = []
        for c in candidates:
            if c.atom_scores is not None:
                symbols = [site["species"][0]["element"] for site in c.structure["sites"]]
                score = cal.frame_score(FrameScores(atom=c.atom_scores, symbols=symbols))
                c = c.model_copy(update={"max_force_std": score})
            out.append(c)
        return out

    def _result(
        self,
        plan: BatchPlan,
        candidates: list[CandidateStructure],
        lo: float,
        hi: float,
        stop: str | None,
    ) -> SelectionResult:
        counts = plan.counts()
        n, n_acc = len(candidates), plan.n_accurate
        n_failed = counts.get(Fate.TOO_UNCERTAIN, 0) + counts.get(Fate.FAILED_FILTER, 0)
        return SelectionResult(
            selected=[candidates[i] for i in plan.selected],
            n_candidates=n,
            n_accurate=n_acc,
            n_uncertain=n - n_acc - n_failed,  # calibration picks count where their std put them
            n_failed=n_failed,
            n_over_budget=counts.get(Fate.OVER_BUDGET, 0),
            n_duplicates=counts.get(Fate.DUPLICATE, 0),
            n_calibration_picks=len(plan.calibration),
            n_contact_picks=len(plan.contact),
            n_topped_up=len(plan.topped_up),
            stratum_quota={str(k): v for k, v in plan.quota.items()},
            fates=counts,
            filter_reasons=plan.reason_counts(),
            trust_lo=lo,
            trust_hi=hi,
            uncertainty=self.uncertainty,
            accurate_fraction=n_acc / n if n else 0.0,
            stop_reason=stop,
        )

    def _labelled_atoms(self, iteration: int | None = None, role: str | None = None) -> list:
        """Every structure labelled (any role, or ``role``) for this campaign before ``iteration``.

        Labels of this or later iterations can only be in the store when a killed run is
        resumed; counting them would make the resumed selection avoid exactly the structures
        the killed run bought (and the flow reuses), so they are left out.
        """
        criteria: dict = {"campaign": self.campaign, "status": "ok"}
        if iteration is not None:
            criteria["provenance.iteration"] = {"$lt": iteration}
        if role is not None:
            criteria["role"] = role
        docs = current_records().find("labelled", criteria)
        return [AseAtomsAdaptor.get_atoms(as_structure(d["structure"])) for d in docs]


@frostline_job(Calibration)
def calibrate_committee(
    finetuned: FineTuneResult,
    selection: SelectionResult,
    new_labels: list[LabelledStructure],
    target_error: float,
    hi_factor: float = 3.0,
    min_points: int = 5,
    device: str = "auto",
    hi_reference: str = "target",
    history: int = 1,
    campaign: str | None = None,
    index: int = 0,
) -> Calibration:
    """Fit committee std → true max force error on the batch just labelled.

    The committee that explored (``finetuned``) predicts the new labels; its mean-force error
    per structure is paired with the std that selection saw for that structure. With
    ``history`` > 1 the points of the ``history - 1`` iterations before ``index`` of
    ``campaign`` (from their iteration documents in the store) join the fit.

    A selection made with ``uncertainty: last-layer`` is calibrated with a split-conformal
    bound on member 0's per-atom LLPR scores and true atomic force errors instead
    (``frostline.select.uncertainty.loop.calibrate_last_layer``).
    """
    started_at, t0 = time.time(), time.perf_counter()
    finetuned = FineTuneResult.model_validate(finetuned)
    selection = SelectionResult.model_validate(selection)
    labels = [LabelledStructure.model_validate(x) for x in new_labels or []]
    labels = [x for x in labels if x.status == "ok"]
    if selection.uncertainty == "last-layer":  # a conformal bound on member 0's LLPR scores
        settings = dict(
            target_error=target_error, hi_factor=hi_factor, device=device,
            min_points=min_points, hi_reference=hi_reference, history=history,
        )  # fmt: skip
        cal = _calibrate_last_layer(finetuned, selection, labels, settings, campaign, index)
        cal.started_at, cal.wall_time_s = started_at, time.perf_counter() - t0
        return cal
    std_by_hash = {structure_hash(c.structure): c.max_force_std for c in selection.selected}
    pairs = [(std_by_hash[x.structure_hash], x) for x in labels if x.structure_hash in std_by_hash]
    stds, errors = [], []
    if pairs:
        calc = load_committee(current_records(), finetuned.models, device=device)
        _, forces = predict(calc, [x for _, x in pairs])
        stds = [s for s, _ in pairs]
        errors = [
            max_atomic_force_error(f, np.asarray(x.forces))
            for f, (_, x) in zip(forces, pairs, strict=True)
        ]
    fit_stds, fit_errors, added = stds, errors, []
    if history > 1 and campaign is not None:
        window = {"$gte": index - history + 1, "$lt": index}
        earlier = current_records().find("iterations", {"campaign": campaign, "index": window})
        fit_stds, fit_errors, added = pooled_points(stds, errors, earlier, index, history)
    cal = fit_calibration(
        fit_stds, fit_errors, target_error, hi_factor, min_points, hi_reference=hi_reference
    )
    if added:  # the document keeps this batch's (finite) points; the fit used all of them
        batch = [(s, e) for s, e in zip(stds, errors, strict=True) if np.isfinite([s, e]).all()]
        cal.stds, cal.errors = [float(s) for s, _ in batch], [float(e) for _, e in batch]
        cal.pooled_from = added
    cal.started_at, cal.wall_time_s = started_at, time.perf_counter() - t0
    return cal


def _calibrate_last_layer(
    finetuned: FineTuneResult,
    selection: SelectionResult,
    labels: list[LabelledStructure],
    settings: dict,
    campaign: str | None,
    index: int,
) -> Calibration:
    """The conformal calibration of the last-layer scores on the selected, labelled frames."""
    from frostline.select.uncertainty.loop import calibrate_last_layer

    picked = {structure_hash(c.structure) for c in selection.selected}
    labels = [x for x in labels if x.structure_hash in picked]
    records = current_records()
    earlier = []
    if campaign is not None:  # the pooled batches, and the previous fit (held-out coverage)
        window = {"$gte": index - max(settings["history"], 2) + 1, "$lt": index}
        earlier = records.find("iterations", {"campaign": campaign, "index": window})
    return calibrate_last_layer(records, finetuned.models[0], labels, settings, earlier, index)
