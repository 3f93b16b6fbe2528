"""Queries on a campaign store: status of campaigns and their iterations."""

from __future__ import annotations

from pathlib import Path

import yaml

from frostline.config import CONFIG_COPY, CampaignConfig, StoreConfig
from frostline.schemas import ModelDoc, TrainingOutcome
from frostline.store import Records, StoreError, make_job_store

ITERATION_KEYS = (
    "index",
    "finetune_strategy",
    "convergence_note",
    "n_labelled",
    "n_selected",
    "n_new_labels",
    "n_failed_labels",
    "n_candidates",
    "n_accurate",
    "n_uncertain",
    "n_failed_frames",
    "n_calibration_picks",
    "n_contact_picks",
    "n_topped_up",
    "stratum_quota",
    "accurate_fraction",
    "energy_mae_mev_per_atom",
    "force_mae_mev_per_a",
    "force_mae_by_element",
    "freeze_level",
    "freeze_sweep",
    "finetune_lr",
    "stop_reason",
    "fates",
    "filter_reasons",
    "trust_window",
    "uncertainty",
    "calibration",
    "wall_time_s",
    "model_ids",
)


def open_campaign_dir(campaign_dir: Path, store: StoreConfig | None = None) -> Records:
    """Records of the store a campaign directory was run with (or ``store`` if given)."""
    campaign_dir = Path(campaign_dir)
    if store is None:
        cfg_path = campaign_dir / CONFIG_COPY
        if not cfg_path.exists():
            raise StoreError(f"{campaign_dir}: not a campaign directory (no {CONFIG_COPY})")
        config = CampaignConfig.model_validate(yaml.safe_load(cfg_path.read_text()))
        store = config.store
    return Records(make_job_store(store, campaign_dir)).connect()


def campaign_status(records: Records, campaign: str | None = None) -> dict:
    """Campaign state and per-iteration figures (the ``status --json`` document)."""
    campaigns = records.find("campaigns")
    if not campaigns:
        raise StoreError("no campaign in this store")
    if campaign is None:
        if len(campaigns) > 1:
            names = ", ".join(sorted(c["campaign"] for c in campaigns))
            raise StoreError(f"several campaigns in this store ({names}): name one")
        doc = campaigns[0]
    else:
        doc = next((c for c in campaigns if c["campaign"] == campaign), None)
        if doc is None:
            raise StoreError(f"no campaign named {campaign}")
    name = doc["campaign"]
    iterations = sorted(records.find("iterations", {"campaign": name}), key=lambda d: d["index"])
    zero = doc.get("zero_shot") or {}
    labelled = records["labelled"]
    status = {
        "campaign": name,
        "state": doc.get("state"),
        "stop_reason": doc.get("stop_reason"),
        "foundation": doc.get("foundation"),
        "oracle": doc.get("config", {}).get("oracle", {}).get("name"),
        "target_force_error": doc.get("config", {}).get("select", {}).get("target_force_error"),
        "elements": doc.get("elements"),
        "n_train_labels": labelled.count({"campaign": name, "role": "train", "status": "ok"}),
        "n_validation": labelled.count({"campaign": name, "role": "validation", "status": "ok"}),
        "n_failed_labels": labelled.count({"campaign": name, "status": "failed"}),
        "n_models": records["model_docs"].count({"campaign": name}),
        "zero_shot_force_mae_mev_per_a": zero.get("force_mae_mev_per_a"),
        "zero_shot_energy_mae_mev_per_atom": zero.get("energy_mae_mev_per_atom"),
        "final_model_ids": doc.get("final_model_ids", []),
        "forgetting": doc.get("forgetting"),
        "iterations": [{k: it.get(k) for k in ITERATION_KEYS} for it in iterations],
    }
    members_by_iteration: dict[int, list[dict]] = {}
    for d in records.find("model_docs", {"campaign": name, "kind": "committee-member"}):
        members_by_iteration.setdefault(d.get("iteration"), []).append(d)
    for it in status["iterations"]:
        it["training"] = training_summary(members_by_iteration.get(it["index"], []))
    from frostline.distill.status import surrogate_summary
    from frostline.report.tables import orchestration_share

    status["orchestration_share"] = orchestration_share(status)
    status["surrogates"] = [
        surrogate_summary(d)
        for d in records.find("model_docs", {"campaign": name, "kind": "ace-surrogate"})
    ]
    return status


def training_summary(member_docs: list[dict]) -> dict | None:
    """How a committee's trainings ended: epochs run, best epochs, early stops, still improving.

    ``still_improving`` counts members that ran to their epoch cap with the kept epoch among the
    last few (more epochs, or ``finetune.patience`` with a higher cap, would likely lower their
    error); ``never_improved`` those that kept their first epoch of several (a failed training);
    ``retrained`` those trained again after such a failure (``finetune.retrain_failed``);
    ``loss_overruled_forces`` those whose kept epoch (lowest loss) had a force MAE on the same
    structures well above the lowest any epoch reached (``TrainingOutcome``).
    ``None`` when no member recorded its training (older stores).
    """
    outcomes = [
        TrainingOutcome.model_validate(d["training"]) for d in member_docs if d.get("training")
    ]
    if not outcomes:
        return None
    return {
        "members": len(outcomes),
        "max_epochs": max(o.max_epochs for o in outcomes),
        "epochs_run": [o.epochs_run for o in outcomes],
        "best_epoch": [o.best_epoch for o in outcomes],
        "stopped_early": sum(o.stopped_early for o in outcomes),
        "still_improving": sum(o.still_improving for o in outcomes),
        "never_improved": sum(o.never_improved for o in outcomes),
        "retrained": sum(o.retrained > 0 for o in outcomes),
        "loss_overruled_forces": sum(o.loss_overruled_forces for o in outcomes),
    }


def iteration_committees(
    records: Records, campaign: str | None = None
) -> list[tuple[dict, list[ModelDoc]]]:
    """Every iteration of a campaign with the committee it trained, in iteration order.

    Pairs each iteration of ``campaign_status`` (its ``n_labelled`` is the committee's training
    set size) with the committee members' model documents, sorted by member index; an iteration
    whose fine-tune stored no member (a killed run) is left out. Load one with
    ``frostline.finetune.committee.load_committee(records, members)``.
    """
    status = campaign_status(records, campaign)
    out = []
    for it in status["iterations"]:
        criteria = {
            "campaign": status["campaign"],
            "iteration": it["index"],
            "kind": "committee-member",
        }
        docs = records.find("model_docs", criteria)
        if docs:
            members = sorted(
                (ModelDoc.model_validate({k: v for k, v in d.items() if k != "_id"}) for d in docs),
                key=lambda m: m.member,
            )
            out.append((it, members))
    return out
