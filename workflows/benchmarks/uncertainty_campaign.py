"""A small EMT campaign run with `select.uncertainty: committee` or `last-layer` (one seed a run).

Usage: `python workflows/benchmarks/uncertainty_campaign.py MODE OUT [--seed N] [--trust-hi X]`
(MODE: committee, two members, first window trust_lo 0.05 and --trust-hi; last-layer, one model,
the open first window). Prints one JSON document: labels bought, the final validation errors and,
per iteration, the validation errors, the trust window and the calibration's state; saved as
`results/uncertainty_campaign/<MODE>-seed<N>.json` beside this script with --save.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from frostline.config import merge_sections, parse_config
from frostline.flows.campaign import run_campaign
from frostline.registry.queries import campaign_status, open_campaign_dir

RESULTS = Path(__file__).resolve().parent / "results" / "uncertainty_campaign"
BASE = {
    "elements": ["Cu", "H"],
    "foundation": "mini",
    "system": {"builder": "h2_cu111", "n_initial": 8, "n_validation": 16},
    "finetune": {"freeze": 0, "committee_size": 2, "epochs": 8, "batch_size": 4, "lr": 0.01,
                 "subsample": 0.85},
    "explore": {"temperatures": [300.0, 800.0], "steps": 60, "sample_every": 6,
                "starts_per_temperature": 2},
    "select": {"max_labels_per_iteration": 10},
    "oracle": {"name": "emt"},
    "convergence": {"max_iterations": 3, "label_budget": 80, "accurate_fraction": 0.9},
    "distill": {"enabled": False},
}  # fmt: skip


def config(mode: str, seed: int, trust_hi: float) -> dict:
    """The campaign of ``mode`` (its first window: committee [0.05, trust_hi], last-layer open)."""
    if mode == "committee":
        select = {"trust_lo": 0.05, "trust_hi": trust_hi}
        over = {"select": select}
    else:
        over = {"finetune": {"committee_size": 1}, "select": {"uncertainty": "last-layer"}}
    return merge_sections(BASE, {**over, "name": f"ab-{mode}-{seed}", "seed": seed})


def iteration_row(it: dict) -> dict:
    """What one iteration bought and how its model and calibration did."""
    cal, times = it.get("calibration") or {}, it.get("wall_time_s") or {}
    keys = ("index", "n_labelled", "n_new_labels", "force_mae_mev_per_a",
            "energy_mae_mev_per_atom", "accurate_fraction", "trust_window")  # fmt: skip
    return {k: it.get(k) for k in keys} | {
        "explore_s": times.get("explore"),
        "finetune_s": times.get("finetune"),
        "calibration_note": cal.get("note"),
        "linear_r2": cal.get("r2"),
        "conformal_quantile": (cal.get("conformal") or {}).get("quantile"),
        "coverage_previous_fit": cal.get("coverage_previous_fit"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["committee", "last-layer"])
    parser.add_argument("out", type=Path, help="campaign folder (must not exist)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trust-hi", type=float, default=10.0, help="committee: first trust_hi")
    parser.add_argument("--save", action="store_true", help="write the JSON into results/")
    args = parser.parse_args()
    t0 = time.time()
    summary = run_campaign(parse_config(config(args.mode, args.seed, args.trust_hi)), args.out)
    status = campaign_status(open_campaign_dir(args.out))
    final = summary.get("final_metrics") or {}
    report = {
        "mode": args.mode,
        "seed": args.seed,
        "wall_s": round(time.time() - t0),
        "stop_reason": summary.get("stop_reason"),
        "labels_spent": summary.get("labels_spent"),
        "final_force_mae_mev_per_a": final.get("force_mae_mev_per_a"),
        "final_force_mae_by_element": final.get("force_mae_by_element"),
        "iterations": [iteration_row(it) for it in status["iterations"]],
    }
    text = json.dumps(report, indent=1, default=str)
    print(text)
    if args.save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{args.mode}-seed{args.seed}.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
