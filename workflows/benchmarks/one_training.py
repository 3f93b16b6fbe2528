"""One training of the data-efficiency benchmark, by its own rules, outside its sweep.

Trains one arm (``scratch`` or ``fN``) of one case at one training-set size with
``data_efficiency.py``'s data split, nested subsets, settings, ledger keys and extensions
(2x, 4x, ... while capped), in the benchmark's folder layout under ``--out``. Used for
diagnostics (another rate, another scheduler patience) and to train part of a case's grid in a
second process: with ``--ledger`` (a side ledger) the runs land in the folders the benchmark
uses and are found by it as model files, while the benchmark's own process keeps its ledger;
merge the side ledger's records into ``OUT/CASE-ledger.json`` when no benchmark runs
(``--merge``). Reads the labels ``data_efficiency.py`` cached (``OUT/CASE-labels.extxyz``, or
``--labels``).

    OMP_NUM_THREADS=1 .venv/bin/python workflows/benchmarks/one_training.py --case alloys --n 60
        --arm f0 --lr 0.005 --scheduler-patience 10 --labels
        workflows/benchmarks/results/data_efficiency_f64_p30/alloys-labels.extxyz
        --out workflows/benchmarks/results/scheduler_patience --folder-suffix=-lr0.005-sp10
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from ase.io import read

sys.path.insert(0, str(Path(__file__).resolve().parent))
import data_efficiency as de  # noqa: E402  (split, subsets, settings, ledger and extensions)


def merge(side: Path, main: Path) -> tuple[list[str], list[str]]:
    """Copy ``side``'s records into ``main``: names ``main`` lacks are added, names it holds
    with another key (other settings or data) are replaced by the side's; returns (added,
    replaced). Run only while no benchmark process writes ``main`` (it rewrites the whole file
    from its own copy)."""
    records = json.loads(main.read_text()) if main.exists() else {}
    added, replaced = [], []
    for name, record in json.loads(side.read_text()).items():
        if name not in records:
            added.append(name)
        elif records[name]["key"] != record["key"]:
            replaced.append(name)
        else:
            continue
        records[name] = record
    partial = main.with_suffix(".json.partial")
    partial.write_text(json.dumps(records, indent=1, sort_keys=True))
    partial.replace(main)
    return added, replaced


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=["h2cu", "alloys"], required=True)
    parser.add_argument("--n", type=int, required=True, help="training-set size (a subset's)")
    parser.add_argument("--arm", default="f0", help="scratch, or fN (fine-tune at level N)")
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--scheduler-patience", type=int, default=0)
    parser.add_argument("--patience", type=int, default=30)
    parser.add_argument("--max-extension", type=int, default=4)
    parser.add_argument(
        "--foundation",
        type=Path,
        default=Path("src/frostline/data/mini-foundation-64.model"),
        help="as the benchmark run was given it (the path string is part of the ledger keys)",
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--labels", type=Path, help="default OUT/CASE-labels.extxyz")
    parser.add_argument("--ledger", type=Path, help="default OUT/CASE-ledger.json")
    parser.add_argument(
        "--folder-suffix", default="", help="appended to nN (else the benchmark's rate folder)"
    )
    parser.add_argument(
        "--merge", action="store_true", help="merge --ledger into OUT/CASE-ledger.json, no training"
    )
    args = parser.parse_args()
    main_ledger = args.out / f"{args.case}-ledger.json"
    if args.merge:
        if args.ledger is None:
            raise SystemExit("--merge needs --ledger (the side ledger to merge)")
        added, replaced = merge(args.ledger, main_ledger)
        print(f"{main_ledger}: added {added or 'none'}, replaced {replaced or 'none'}")
        return
    rate_field = "lr" if args.arm == "scratch" else "lr_finetune"
    run_args = argparse.Namespace(
        seed=0, epoch_scale=1, quick=False, extend_from="checkpoint", extend_all=False,
        lr=[0.01], lr_finetune=[0.005], patience=args.patience,
        max_extension=args.max_extension, foundation=args.foundation,
        scheduler_patience=args.scheduler_patience,
    )  # fmt: skip
    setattr(run_args, rate_field, [args.lr])
    structures = read(args.labels or args.out / f"{args.case}-labels.extxyz", ":")
    n_pool, n_val = 300, 30  # data_efficiency.py's defaults (--n, --n-val)
    pool, val, test = structures[:n_pool], structures[n_pool : n_pool + n_val], structures[330:]
    subsets = de.nested_subsets(pool, np.random.default_rng([run_args.seed, 1]))
    by_size = {len(d): d for d in subsets.values()}
    if args.n not in by_size:
        raise SystemExit(f"--n {args.n}: the subsets have sizes {sorted(by_size)}")
    ledger = de.Ledger(args.ledger or main_ledger, args.out / args.case)
    work = args.out / args.case / f"n{args.n}"
    if args.folder_suffix:
        work = work.with_name(work.name + args.folder_suffix)
    else:  # the benchmark's folder for this rate (its grid's first rate: 0.01 / 0.005)
        work = de.rate_folder(work, args.lr, 0.01 if args.arm == "scratch" else 0.005)
    first = de.train(args.arm, by_size[args.n], work, run_args, val, test, ledger)
    runs = [(1, first), *de.extend_while_capped(
        args.arm, by_size[args.n], first, work, ledger, run_args, val, test
    )]  # fmt: skip
    for factor, t in runs:
        print(
            f"{args.case} n={args.n} {args.arm} lr {args.lr:g} {factor}x epochs: test "
            f"{t.test[0]:.1f} ({t.test[1]:.1f}), validation {t.validation[0]:.1f} meV/Å, "
            f"{t.epochs_run} epochs, kept {t.best_epoch}, "
            + ("stopped early" if t.stopped_early else "at its cap")
        )


if __name__ == "__main__":
    main()
