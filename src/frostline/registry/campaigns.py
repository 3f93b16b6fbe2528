"""Campaigns in a store: one summary row each (state, iterations, labels, final error)."""

from __future__ import annotations

from typing import Any

from frostline.store import Records

CAMPAIGN_FIELDS = ["campaign", "state", "stop_reason", "elements", "oracle", "created", "updated"]


def list_campaigns(records: Records) -> list[dict[str, Any]]:
    """Every campaign of the store, by name: state, stop reason, number of iterations, labels
    (successful train / validation labels, failed labels), number of models, and the validation
    force MAE (meV/Å) of the last iteration that recorded one (``final_force_mae_mev_per_a``).
    """
    out = []
    labelled = records["labelled"]
    iterations = records["iterations"]
    for doc in records["campaigns"].query({}, properties=CAMPAIGN_FIELDS, sort={"campaign": 1}):
        name = doc["campaign"]
        last = next(
            iter(
                iterations.query(
                    {"campaign": name, "force_mae_mev_per_a": {"$ne": None}},
                    properties=["force_mae_mev_per_a", "index"],
                    sort={"index": -1},
                    limit=1,
                )
            ),
            {},
        )
        out.append(
            {
                "campaign": name,
                "state": doc.get("state"),
                "stop_reason": doc.get("stop_reason"),
                "elements": doc.get("elements"),
                "oracle": doc.get("oracle"),
                "n_iterations": iterations.count({"campaign": name}),
                "n_train_labels": labelled.count(
                    {"campaign": name, "role": "train", "status": "ok"}
                ),
                "n_validation": labelled.count(
                    {"campaign": name, "role": "validation", "status": "ok"}
                ),
                "n_failed_labels": labelled.count({"campaign": name, "status": "failed"}),
                "n_models": records["model_docs"].count({"campaign": name}),
                "final_force_mae_mev_per_a": last.get("force_mae_mev_per_a"),
                "updated": doc.get("updated"),
            }
        )
    return out
