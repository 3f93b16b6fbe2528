"""What a frozen fine-tune costs per epoch: f0 (full) versus frozen levels, side by side.

Issue 3 promises committee members "cheap because most weights are frozen". Freezing removes
the frozen weights' gradients and optimizer updates, but the forces are a derivative of the
energy, so a force loss still back-propagates (twice) through every layer. This measures what
is left: each level fine-tunes the same foundation on the same labelled structures with the
same seed for ``--epochs`` epochs, the levels interleaved over ``--repeats`` rounds (so load
on the shared machine hits all of them alike), and the time per epoch is read from
mace-torch's own log (its millisecond timestamps of consecutive "Epoch N:" lines: training
plus the validation pass, what a member pays per epoch; setup and the final evaluation are
left out and reported separately as the wall time of the whole training).

    .venv/bin/python workflows/benchmarks/freeze_cost.py [--labels FILE.extxyz] [--n 30]
        [--levels 0 5 6] [--dtypes float64 float32] [--epochs 12] [--repeats 2]
        [--foundation PATH]

``--labels``: labelled structures (``REF_energy``/``REF_forces``), e.g. the data-efficiency
benchmark's ``OUT/h2cu-labels.extxyz`` (the first ``--n`` train, the next ``--n-val``
validate); without it H2/Cu(111) structures are generated and labelled by GFN1-xTB as the
data-efficiency benchmark does. ``--dtypes float64 float32`` also times f0 in float32 (mace-torch's
``--default_dtype``), interleaved with the rest. Prints a table, writes ``OUT/freeze_cost.json``
and a PNG, the float32 / float64 ratio when measured, and last ``seconds per epoch, fN / f0 = X``
for the most frozen level measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read
from rich.console import Console
from rich.progress import track
from rich.table import Table

from frostline.finetune.foundation import MINI_FOUNDATIONS, load_foundation_model
from frostline.finetune.freeze import count_parameters
from frostline.finetune.train import MaceTrainSettings, run_mace_training, training_logs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import figure  # noqa: E402
from data_efficiency import h2cu_structures, label_xtb  # noqa: E402

console = Console()
_EPOCH_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) INFO: Epoch (\d+):", re.M)


def epoch_seconds(log_text: str) -> list[float]:
    """Seconds between consecutive "Epoch N:" lines of a mace-torch log (one per epoch)."""
    stamps = [
        dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f")
        for m in _EPOCH_LINE.finditer(log_text)
    ]
    return [(b - a).total_seconds() for a, b in zip(stamps[:-1], stamps[1:], strict=True)]


def labelled_structures(args: argparse.Namespace) -> list[Atoms]:
    """The ``--labels`` file, or fresh H2/Cu structures labelled by GFN1-xTB."""
    need = args.n + args.n_val
    if args.labels is not None:
        structures = read(args.labels, index=":")
        if len(structures) < need:
            raise SystemExit(f"--labels {args.labels}: {len(structures)} structures, need {need}")
        return structures[:need]
    return label_xtb(h2cu_structures(need, np.random.default_rng(args.seed)))


def train_level(
    level: int,
    dtype: str,
    train: list[Atoms],
    valid: list[Atoms],
    work: Path,
    args: argparse.Namespace,
) -> dict:
    """Fine-tune at freeze ``level`` in ``dtype``; seconds per epoch (mace-torch's log), wall."""
    settings = MaceTrainSettings(
        name=f"f{level}",
        seed=args.seed,
        max_num_epochs=args.epochs,
        batch_size=4,
        lr=0.005,
        energy_weight=10.0,
        forces_weight=10.0,
        e0s="estimated",
        default_dtype=dtype,
        device="cpu",
        foundation_model=str(args.foundation),
        freeze=level or None,
    )
    shutil.rmtree(work, ignore_errors=True)  # mace-torch would resume an earlier run's checkpoint
    t0 = time.perf_counter()
    run_mace_training(settings, train, work, valid=valid)
    wall = time.perf_counter() - t0
    (log,) = training_logs(work, f"f{level}")  # a fresh folder: one run, one log
    per_epoch = epoch_seconds(log.read_text(errors="replace"))
    if not per_epoch:
        raise RuntimeError(f"{log}: no epoch lines")
    return {"wall_seconds": wall, "epoch_seconds": per_epoch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=None)
    parser.add_argument("--n", type=int, default=30, help="training structures")
    parser.add_argument("--n-val", type=int, default=10, help="validation structures")
    parser.add_argument("--levels", type=int, nargs="+", default=[0, 5, 6])
    parser.add_argument(
        "--dtypes",
        nargs="+",
        default=["float64"],
        choices=["float64", "float32"],
        help="training precisions, side by side (the first is the one levels are compared in)",
    )
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--foundation", type=Path, default=MINI_FOUNDATIONS["mini-64"])
    parser.add_argument(
        "--out", type=Path, default=Path("workflows/benchmarks/results/freeze_cost")
    )
    args = parser.parse_args()
    if 0 not in args.levels:
        raise SystemExit("--levels: include 0 (the full fine-tune every ratio is relative to)")
    args.out.mkdir(parents=True, exist_ok=True)
    structures = labelled_structures(args)
    train, valid = structures[: args.n], structures[args.n :]
    foundation = load_foundation_model(str(args.foundation))
    params = {level: count_parameters(foundation, level) for level in args.levels}

    first = args.dtypes[0]
    variants = [(level, first) for level in args.levels]
    variants += [(0, dtype) for dtype in args.dtypes[1:]]  # other precisions: f0 only
    runs: dict[str, list[dict]] = {variant_name(*v, first): [] for v in variants}
    rounds = [(r, *v) for r in range(args.repeats) for v in variants]
    for r, level, dtype in track(rounds, description="fine-tuning", console=console):
        name = variant_name(level, dtype, first)
        work = args.out / f"round{r}" / name.replace(" ", "-")
        runs[name].append(train_level(level, dtype, train, valid, work, args))

    rows = {}
    for level, dtype in variants:
        name = variant_name(level, dtype, first)
        epochs = [s for run in runs[name] for s in run["epoch_seconds"]]
        rows[name] = {
            "level": level,
            "dtype": dtype,
            "trainable": params[level][0],
            "total": params[level][1],
            "median_epoch_seconds": statistics.median(epochs),
            "epoch_seconds": epochs,
            "wall_seconds": [run["wall_seconds"] for run in runs[name]],
        }
    base = rows["f0"]["median_epoch_seconds"]
    table = Table(title=f"seconds per epoch, {args.n} structures, {args.foundation.name}")
    for col in ("level", "trainable / total", "s per epoch (median)", "vs f0", "wall s"):
        table.add_column(col, justify="right")
    for name, row in rows.items():
        table.add_row(
            name,
            f"{row['trainable']} / {row['total']}",
            f"{row['median_epoch_seconds']:.2f}",
            f"{row['median_epoch_seconds'] / base:.2f}",
            " / ".join(f"{w:.0f}" for w in row["wall_seconds"]),
        )
    console.print(table)
    summary = {"n_train": args.n, "n_valid": args.n_val, "epochs": args.epochs, "runs": rows}
    (args.out / "freeze_cost.json").write_text(json.dumps(summary, indent=1))
    plot(rows, args.out / "freeze_cost.png")
    print(f"plot: {args.out / 'freeze_cost.png'}")
    for dtype in args.dtypes[1:]:
        other = rows[variant_name(0, dtype, first)]["median_epoch_seconds"]
        print(f"seconds per epoch, f0 {dtype} / f0 {first} = {other / base:.2f}")
    top = f"f{max(args.levels)}"
    print(f"seconds per epoch, {top} / f0 = {rows[top]['median_epoch_seconds'] / base:.2f}")


def variant_name(level: int, dtype: str, first_dtype: str) -> str:
    """ "f5" in the first precision, "f0 float32" in another."""
    return f"f{level}" if dtype == first_dtype else f"f{level} {dtype}"


def plot(rows: dict[str, dict], path: Path) -> None:
    """Per-epoch seconds of every run (box per level/precision) beside its trainable fraction."""
    with figure(path, 2, figsize=(9, 3.6)) as (fig, (ax_time, ax_params)):
        labels = list(rows)
        ax_time.boxplot([row["epoch_seconds"] for row in rows.values()], tick_labels=labels)
        ax_time.set_ylabel("seconds per epoch")
        ax_time.set_title("time per epoch (mace-torch log)")
        ax_params.bar(labels, [100 * row["trainable"] / row["total"] for row in rows.values()])
        ax_params.set_ylabel("trainable parameters, %")
        ax_params.set_title("what each level trains")


if __name__ == "__main__":
    main()
