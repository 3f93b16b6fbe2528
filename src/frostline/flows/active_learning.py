"""The active-learning loop as a jobflow Flow: fine-tune → explore → select → label → repeat."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobflow import Flow, Maker, Response
from pydantic import BaseModel

from frostline.config import CampaignConfig, SelectConfig
from frostline.explore.jobs import ExploreMaker
from frostline.finetune.jobs import FineTuneMaker
from frostline.flows.jobs import (
    ForgettingCheckMaker,
    setup_campaign,
    update_campaign,
    zero_shot_baseline,
)
from frostline.jobs import frostline_job
from frostline.label.jobs import LabelMaker
from frostline.label.oracles import oracle_settings
from frostline.progress import show_iteration
from frostline.schemas import (
    CampaignSummary,
    ExploreResult,
    FineTuneResult,
    IterationDoc,
    LabelledStructure,
    SelectionResult,
    ValidationMetrics,
)
from frostline.select.calibration import Calibration
from frostline.select.filters import SanityLimits
from frostline.select.jobs import SelectMaker, calibrate_committee
from frostline.store import Records, current_records
from frostline.submit.routing import Routes, route, routing_table


def sweep_due(policy: str, n_train: int, swept_at: int | None) -> bool:
    """Whether the next fine-tune sweeps freeze levels again (it has ``freeze_sweep`` levels).

    ``first``: never after the first sweep; ``every``: at every iteration; ``doubled``: when the
    training set has at least doubled since the last sweep (``swept_at`` labels; None: no sweep
    has run, so there is no level to revisit). Sweeps then cost a logarithmic number of
    extra trainings, while the level chosen on ten labels does not rule a whole campaign.
    """
    if policy == "every":
        return True
    if policy == "doubled":
        return swept_at is not None and n_train >= 2 * swept_at
    if policy == "first":
        return False
    raise ValueError(f"finetune.sweep: unknown policy {policy!r} (first / every / doubled)")


def stage_times(
    finetuned: FineTuneResult,
    explored: ExploreResult,
    selection: SelectionResult,
    calibration: Calibration | None,
    started: float | None,
) -> dict[str, float]:
    """Wall time per stage and the orchestration rest (jobflow + store) of one iteration.

    Fine-tune, explore, select and calibrate are timed inside their jobs; ``label`` is the
    time between the end of selection and the start of calibration (the oracle jobs, including
    their own scheduling); ``orchestration`` is what remains of the iteration's wall time.
    Timestamps come from the workers' clocks (keep them synchronised on clusters).
    """
    times = {
        "finetune": finetuned.wall_time_s,
        "explore": explored.wall_time_s,
        "select": selection.wall_time_s,
    }
    if calibration is not None:
        if calibration.started_at is not None and selection.finished_at is not None:
            times["label"] = max(0.0, calibration.started_at - selection.finished_at)
        times["calibrate"] = calibration.wall_time_s
    if started is not None:
        total = time.time() - started
        times["orchestration"] = max(0.0, total - sum(times.values()))
        times["total"] = total
    return times


def section_fields(section: BaseModel, maker: type, **fixed: Any) -> dict[str, Any]:
    """Keyword arguments of dataclass ``maker`` from config ``section``: each field the two
    share by name (as a tuple or a list where the maker's default is one), then ``fixed``."""
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(maker):
        if f.name not in type(section).model_fields or f.name in fixed:
            continue
        value = getattr(section, f.name)
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        if isinstance(default, tuple | list):
            value = type(default)(value)
        kwargs[f.name] = value
    return {**kwargs, **fixed}


@dataclass
class CalibrationSettings:
    """Committee calibration after each labelled batch (``apply``: use its trust window)."""

    apply: bool = True
    target_error: float = 0.3
    hi_factor: float = 3.0
    min_points: int = 5
    hi_reference: str = "target"
    history: int = 1

    @classmethod
    def from_section(cls, select: SelectConfig) -> CalibrationSettings:
        """The calibration settings of a campaign's ``select`` section."""
        return cls(
            apply=select.trust == "calibrated",
            target_error=select.target_force_error,
            hi_factor=select.hi_factor,
            min_points=select.min_calibration_points,
            hi_reference=select.hi_reference,
            history=select.calibration_history,
        )


@dataclass
class ActiveLearningMaker(Maker):
    """One campaign: initial labels, then iterations until converged, out of budget or iterations.

    Iteration ``i`` is a job that replaces itself (``Response(replace=...)``) by the stage jobs
    and a final ``advance`` job, which in turn replaces itself by iteration ``i + 1`` or returns
    the campaign summary; the flow's output therefore resolves to the last iteration's summary.
    """

    name: str = "active learning"
    campaign: str = "campaign"
    foundation: str = ""
    finetune: FineTuneMaker = field(default_factory=FineTuneMaker)
    explore: ExploreMaker = field(default_factory=ExploreMaker)
    select: SelectMaker = field(default_factory=SelectMaker)
    label: LabelMaker = field(default_factory=LabelMaker)
    calibration: CalibrationSettings = field(default_factory=lambda: CalibrationSettings())
    sweep: str = "first"  # when to sweep freeze levels again: first / every / doubled
    resweep: bool = False  # older name of sweep="every", kept so stored flows still load
    routing: Routes | None = None  # manager config per job type (frostline.submit.routing)

    @classmethod
    def from_config(cls, config: CampaignConfig, foundation: str) -> ActiveLearningMaker:
        """The makers of ``config``'s sections: every field a maker shares with its section
        (same name) comes from the section; the campaign-wide ones are set here."""
        ft, se = config.finetune, config.select
        routes = routing_table(config.routing)
        shared = {"device": ft.device, "seed": config.seed}
        return cls(
            name=f"active learning {config.name}",
            campaign=config.name,
            foundation=foundation,
            finetune=FineTuneMaker(**section_fields(ft, FineTuneMaker, seed=config.seed)),
            sweep=ft.sweep,
            explore=ExploreMaker(
                **section_fields(
                    config.explore,
                    ExploreMaker,
                    uncertainty=se.uncertainty,
                    target_force_error=se.target_force_error,
                    **shared,
                )
            ),
            select=SelectMaker(
                **section_fields(
                    se,
                    SelectMaker,
                    limits=SanityLimits(**section_fields(se, SanityLimits)),
                    descriptor_model=foundation if Path(foundation).is_file() else None,
                    campaign=config.name,
                    convergence=config.convergence,
                    **shared,
                )
            ),
            calibration=CalibrationSettings.from_section(se),
            label=LabelMaker(oracle=config.oracle, campaign=config.name, routing=routes),
            routing=routes,
        )

    def make(self, config: CampaignConfig) -> Flow:
        """The whole campaign as a Flow whose output is the final campaign summary."""
        setup = setup_campaign(
            config.model_dump(mode="json"), self.foundation, str(oracle_settings(config.oracle))
        )
        initial = self.label.make(
            setup.output["initial"], role="train", iteration=-1, imported=setup.output["imported"]
        )
        validation = self.label.make(setup.output["validation"], role="validation", iteration=-1)
        initial.name, validation.name = "label initial", "label validation"
        baseline = zero_shot_baseline(
            self.campaign, self.foundation, initial.output, validation.output, config.elements
        )
        first = self.iteration(0, initial.output, validation.output, setup.output["starts"], 0)
        jobs, output = [setup, initial, validation, baseline, first], first.output
        route(jobs, "control", self.routing)
        if config.forgetting.enabled:  # the summary, extended with a "forgetting" key
            check = ForgettingCheckMaker.from_config(config, self.foundation).make(output)
            route(check, "finetune", self.routing)
            jobs.append(check)
            output = check.output
        if config.distill.enabled:  # the summary, extended with a "surrogate" key
            from frostline.distill.jobs import DistillMaker

            distill = DistillMaker.from_config(config, device=config.finetune.device)
            surrogate = distill.make(output)
            surrogate.name = "distill"
            route(surrogate, "distill", self.routing)
            jobs.append(surrogate)
            output = surrogate.output
        return Flow(jobs, output=output, name=self.name)

    @frostline_job(CampaignSummary, enforce=False, expose_store=False)  # replaced by a flow
    def iteration(
        self,
        index: int,
        train: list[LabelledStructure],
        validation: list[LabelledStructure],
        starts: list[dict],
        n_labels_spent: int,
        trust: list[float] | None = None,
        freeze: int | None = None,
        swept_at: int | None = None,
        lr: float | None = None,
        strategy: str | None = None,
    ):
        """Iteration ``index``: fine-tune, explore, select, label, calibrate, then advance.

        ``trust``: the calibrated trust window from the previous iteration (None: fixed);
        ``freeze``: the level an earlier freeze sweep chose (None: the maker decides, sweeping
        if it has ``freeze_sweep`` levels); ``swept_at``: training labels at the last sweep;
        ``lr``: the learning rate an earlier ``lr_sweep`` chose (None: the maker's);
        ``strategy``: the fine-tuning strategy an earlier ``strategy_sweep`` chose.
        """
        started = time.time()
        show_iteration(index)  # the run's progress display, if one is open
        if index == 0:  # the initial set counts against the budget (imported labels cost nothing)
            n_labels_spent = sum(
                LabelledStructure.model_validate(t).provenance.sampler != "import" for t in train
            )
        chosen = {"strategy": strategy} if strategy else {}  # memo keys unchanged without one
        ft = self.finetune.make(
            self.foundation, train, validation, self.campaign, index, freeze, lr, **chosen
        )
        ft.name = f"finetune {index}"
        ex = self.explore.make(ft.output, starts, index, trust)
        ex.name = f"explore {index}"
        se = self.select.make(ex.output, n_labels_spent, index, trust, ft.output.committee_metrics)
        se.name = f"select {index}"
        lab = self.label.make(se.output.selected, role="train", iteration=index)
        lab.name = f"label {index}"
        cal = calibrate_committee(
            ft.output,
            se.output,
            lab.output,
            self.calibration.target_error,
            self.calibration.hi_factor,
            self.calibration.min_points,
            self.select.device,
            self.calibration.hi_reference,
            self.calibration.history,
            self.campaign,
            index,
        )
        cal.name = f"calibrate {index}"
        adv = self.advance(
            index,
            ft.output,
            ex.output,
            se.output,
            lab.output,
            train,
            validation,
            starts,
            n_labels_spent,
            cal.output,
            started,
            swept_at,
        )
        adv.name = f"advance {index}"
        for stage, kind in ((ft, "finetune"), (ex, "explore"), (se, "select"), (cal, "select")):
            route(stage, kind, self.routing)
        route([lab, adv], "control", self.routing)
        return Response(replace=Flow([ft, ex, se, lab, cal, adv], output=adv.output))

    @frostline_job(CampaignSummary, enforce=False)  # a dict, or replaced by a flow
    def advance(
        self,
        index: int,
        finetuned: FineTuneResult,
        explored: ExploreResult,
        selection: SelectionResult,
        new_labels: list[LabelledStructure],
        train: list[LabelledStructure],
        validation: list[LabelledStructure],
        starts: list[dict],
        n_labels_spent: int,
        calibration: Calibration | None = None,
        started: float | None = None,
        swept_at: int | None = None,
    ):
        """Record the iteration; stop with a summary or go on with iteration ``index + 1``.

        ``started``: epoch seconds when the iteration began, for the wall-time accounting;
        ``swept_at``: training labels when a freeze sweep last ran (before this iteration).
        """
        finetuned = FineTuneResult.model_validate(finetuned)
        calibration = Calibration.model_validate(calibration) if calibration else None
        explored = ExploreResult.model_validate(explored)
        selection = SelectionResult.model_validate(selection)
        new_labels = [LabelledStructure.model_validate(x) for x in new_labels or []]
        train = [LabelledStructure.model_validate(x) for x in train]
        doc = self.iteration_doc(
            index, finetuned, explored, selection, calibration, train, new_labels, started
        )
        ok_new = [x for x in new_labels if x.status == "ok"]
        records = current_records()
        records.upsert("iterations", [doc.model_dump(mode="json")], key=["campaign", "index"])
        spent = n_labels_spent + len(new_labels)
        reason = selection.stop_reason
        if reason is None and not new_labels:
            reason = "no new labels"
        if reason is not None:
            return self.stop(records, doc, reason, spent, finetuned.committee_metrics)
        return self.next_iteration(
            index,
            doc,
            finetuned,
            selection,
            calibration,
            train,
            ok_new,
            validation,
            starts,
            spent,
            swept_at,
        )

    def iteration_doc(
        self,
        index: int,
        finetuned: FineTuneResult,
        explored: ExploreResult,
        selection: SelectionResult,
        calibration: Calibration | None,
        train: list[LabelledStructure],
        new_labels: list[LabelledStructure],
        started: float | None,
    ) -> IterationDoc:
        """The record of iteration ``index`` (counts, errors, selection, calibration, times)."""
        ok_new = [x for x in new_labels if x.status == "ok"]
        m = finetuned.committee_metrics
        return IterationDoc(
            campaign=self.campaign,
            index=index,
            n_labelled=sum(t.status == "ok" for t in train),
            n_selected=len(selection.selected),
            n_new_labels=len(ok_new),
            n_failed_labels=len(new_labels) - len(ok_new),
            n_candidates=selection.n_candidates,
            n_accurate=selection.n_accurate,
            n_uncertain=selection.n_uncertain,
            n_failed_frames=selection.n_failed,
            n_calibration_picks=selection.n_calibration_picks,
            n_contact_picks=selection.n_contact_picks,
            n_topped_up=selection.n_topped_up,
            stratum_quota=selection.stratum_quota,
            accurate_fraction=selection.accurate_fraction,
            energy_mae_mev_per_atom=m.energy_mae_mev_per_atom if m else None,
            force_mae_mev_per_a=m.force_mae_mev_per_a if m else None,
            energy_rmse_mev_per_atom=m.energy_rmse_mev_per_atom if m else None,
            force_rmse_mev_per_a=m.force_rmse_mev_per_a if m else None,
            force_mae_by_element=m.force_mae_by_element if m else {},
            freeze_level=finetuned.freeze_level,
            freeze_sweep=[p.model_dump() for p in finetuned.freeze_sweep],
            finetune_lr=finetuned.lr,
            finetune_strategy=finetuned.strategy,
            model_ids=[md.model_id for md in finetuned.models],
            stop_reason=selection.stop_reason,
            convergence_note=selection.convergence_note,
            fates=selection.fates,
            filter_reasons=selection.filter_reasons,
            trust_window=[selection.trust_lo, selection.trust_hi]
            if selection.trust_lo is not None
            else None,
            uncertainty=selection.uncertainty,
            calibration=calibration.model_dump(exclude={"started_at"}) if calibration else None,
            wall_time_s=stage_times(finetuned, explored, selection, calibration, started),
        )

    def stop(
        self,
        records: Records,
        doc: IterationDoc,
        reason: str,
        spent: int,
        metrics: ValidationMetrics | None,
    ) -> dict[str, Any]:
        """Close the campaign after iteration ``doc.index`` (converged or stopped for
        ``reason``, ``spent`` labels); the campaign summary."""
        state = "converged" if reason == "converged" else "stopped"
        update_campaign(
            records,
            self.campaign,
            state=state,
            stop_reason=reason,
            final_model_ids=doc.model_ids,
            n_iterations=doc.index + 1,
            n_labels_spent=spent,
        )
        return {
            "campaign": self.campaign,
            "state": state,
            "stop_reason": reason,
            "iterations": doc.index + 1,
            "labels_spent": spent,
            "final_model_ids": doc.model_ids,
            "final_metrics": metrics.model_dump() if metrics else None,
        }

    def next_iteration(
        self,
        index: int,
        doc: IterationDoc,
        finetuned: FineTuneResult,
        selection: SelectionResult,
        calibration: Calibration | None,
        train: list[LabelledStructure],
        ok_new: list[LabelledStructure],
        validation: list[LabelledStructure],
        starts: list[dict],
        spent: int,
        swept_at: int | None,
    ) -> Response:
        """Iteration ``index + 1`` on ``train`` plus this one's good labels ``ok_new``: the trust
        window calibrated (or kept), the freeze level and rate carried unless a sweep is due."""
        trust = None
        if self.calibration.apply and calibration and calibration.trust_lo is not None:
            trust = [calibration.trust_lo, calibration.trust_hi]
        elif selection.trust_lo is not None:  # keep the window this iteration used
            trust = [selection.trust_lo, selection.trust_hi]
        if finetuned.freeze_sweep:  # this iteration swept
            swept_at = doc.n_labelled
        policy = "every" if self.resweep else self.sweep
        due = sweep_due(policy, doc.n_labelled + len(ok_new), swept_at)
        freeze = None if due else finetuned.freeze_level
        # a rate is carried only when a rate sweep chose it (keeps memo keys of other campaigns)
        lr = finetuned.lr if not due and self.finetune.lr_sweep else None
        strategy = finetuned.strategy if not due and self.finetune.strategy_sweep else None
        nxt = self.iteration(
            index + 1, train + ok_new, validation, starts, spent, trust, freeze, swept_at, lr,
            strategy,
        )  # fmt: skip
        nxt.name = f"iteration {index + 1}"
        route(nxt, "control", self.routing)
        return Response(replace=Flow([nxt], output=nxt.output))
