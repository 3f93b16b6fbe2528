"""Did a selection buy better labels? Each campaign's label sets retrained with one protocol.

``selection.py`` compares the committees the campaigns trained inside the loop (a capped
number of epochs, the kept epoch chosen on a 10 % holdout of a few labels, one learning rate):
their oracle-MD test error moves by tens of meV/Å from one iteration to the next for every arm,
as much as the arms differ. Here the labels each campaign had bought before each iteration (its
training set at 10, 18, 26, ... labels) are fine-tuned again with the same protocol for every
arm, seed and size: one model, the campaign's foundation at ``--freeze`` (default f0),
``--lr``, the data-efficiency benchmark's epoch budget with ``--patience``, the kept epoch chosen
on the campaign's validation structures, and (while a run ends at its epoch cap) the same run
continued to 2x, 4x the epochs up to ``--max-extension``, the lowest validation error kept.
Each model is scored on ``selection.py``'s oracle-MD test set (``OUT/oracle-md-test.extxyz``).

Curves are averaged over the seeds of an arm (folders ``ARM``, ``ARM-seed1``, ...) point by
point. Prints a table per arm, writes ``OUT/label_sets.png``, and last "labels needed to reach
the target force MAE with retrained label sets, AL / random = X" (target: random's best
retrained MAE, as in ``selection.py``). Every training is recorded in
``OUT/label-sets-ledger.json`` (errors, epochs; a re-run trains only what is missing). A
campaign folder that is gone is read from its archive ``OUT/FOLDER.campaign.json``
(``selection.py`` writes it), whose structures give the same ledger keys.

    .venv/bin/python workflows/benchmarks/label_sets.py OUT [--al-arm frostline-descriptor]
        [--random-arm random-single] [--seeds 3] [--sizes 18 34 50] [--lr 0.005]
        [--freeze 0] [--patience 30] [--max-extension 4]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ase import Atoms
from ase.io import read
from rich.console import Console
from rich.table import Table

from frostline.config import CampaignConfig
from frostline.finetune.foundation import resolve_foundation

sys.path.insert(0, str(Path(__file__).resolve().parent))
import data_efficiency as de  # noqa: E402  (the ledger, training and extension rules)
from campaign_record import CampaignRecord, archive_path, has_store  # noqa: E402
from common import figure  # noqa: E402
from selection import labels_ratio, mean_curve  # noqa: E402

console = Console()


def seed_folders(out: Path, arm: str, seeds: int) -> list[Path]:
    """``OUT/ARM``, ``OUT/ARM-seed1``, ... (the folders ``selection.py --seeds`` writes; a
    folder that is gone counts if its archive ``OUT/FOLDER.campaign.json`` is there)."""
    folders = [out / (arm if seed == 0 else f"{arm}-seed{seed}") for seed in range(seeds)]
    missing = [str(f) for f in folders if not (has_store(f) or archive_path(f).exists())]
    if missing:
        raise SystemExit(f"no campaign (or archive) in {', '.join(missing)} (run selection.py)")
    return folders


def label_sets(folder: Path) -> tuple[str, list[tuple[int, list[Atoms]]], list[Atoms]]:
    """(foundation file, [(labels, training set)] per iteration, validation structures)."""
    record = CampaignRecord.load(folder)
    config = CampaignConfig.model_validate(record.config)
    valid = [v.to_atoms() for v in record.structures("validation")]
    return str(resolve_foundation(config.foundation)), record.label_sets(str(folder)), valid


def portable(path: Path) -> Path:
    """``path`` relative to the working directory when inside it (the repository, where the
    benchmarks run): the foundation path is part of the ledger keys, so records made in one
    checkout are found in another."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def retrained_curve(
    folder: Path, sizes: list[int] | None, test: list[Atoms], args: argparse.Namespace, out: Path
) -> list[tuple[int, float]]:
    """(labels, oracle-MD test force MAE) of the retrained label sets of one campaign."""
    foundation, sets, valid = label_sets(folder)
    ledger = de.Ledger(out / "label-sets-ledger.json", out / "label-sets")
    settings = argparse.Namespace(**{**vars(args), "foundation": portable(Path(foundation))})
    arm = f"f{args.freeze}"
    points = []
    for n, data in sets:
        if sizes and n not in sizes:
            continue
        work = out / "label-sets" / folder.name / f"n{n}"
        first = de.train(arm, data, work, settings, valid, test, ledger)
        runs = [first]
        runs += [r for _, r in de.extend_while_capped(arm, data, first, work, ledger, settings,
                                                        valid, test)]  # fmt: skip
        kept = min(runs, key=lambda r: r.validation[0])
        console.print(
            f"{folder.name} n={n}: test F MAE {kept.test[0]:.1f} meV/Å "
            f"(validation {kept.validation[0]:.1f}, {len(runs)} run(s))"
        )
        points.append((n, kept.test[0]))
    return points


def plot(curves: dict[str, list[tuple[int, float]]], path: Path) -> None:
    with figure(path, figsize=(6, 4)) as (fig, ax):
        for arm, points in curves.items():
            ax.plot(*zip(*points, strict=True), "o-", label=arm)
        ax.set_xlabel("training labels")
        ax.set_ylabel("oracle-MD test force MAE (meV/Å)")
        ax.set_title("label sets retrained with one protocol (mean over seeds)")
        ax.legend(fontsize=8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="selection.py's output folder")
    parser.add_argument("--al-arm", default="frostline-descriptor")
    parser.add_argument("--random-arm", default="random-single")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=None, help="label counts to retrain (all)"
    )
    parser.add_argument("--freeze", type=int, default=0)
    parser.add_argument("--lr", type=float, default=0.005, help="fine-tuning learning rate")
    parser.add_argument("--patience", type=int, default=30)
    parser.add_argument("--max-extension", type=int, default=4)
    args = parser.parse_args()
    # the data-efficiency benchmark's training rules: its epoch budget per size and extensions
    training = argparse.Namespace(
        seed=0, epoch_scale=1, quick=False, lr=0.01, lr_finetune=args.lr,
        patience=args.patience, extend_from="checkpoint", max_extension=args.max_extension,
        freeze=args.freeze,
    )  # fmt: skip
    test_path = args.out / "oracle-md-test.extxyz"
    if not test_path.exists():
        raise SystemExit(f"{test_path}: no oracle-MD test set (run selection.py first)")
    test = read(test_path, ":")
    curves = {}
    for arm in (args.al_arm, args.random_arm):
        per_seed = [
            retrained_curve(folder, args.sizes, test, training, args.out)
            for folder in seed_folders(args.out, arm, args.seeds)
        ]
        curves[arm] = mean_curve(per_seed)
    table = Table(title="oracle-MD test force MAE (meV/Å) of retrained label sets, seed mean")
    table.add_column("labels", justify="right")
    for arm in curves:
        table.add_column(arm, justify="right")
    for i, (n, _) in enumerate(curves[args.al_arm]):
        table.add_row(str(n), *(f"{curves[arm][i][1]:.1f}" for arm in curves))
    console.print(table)
    plot(curves, args.out / "label_sets.png")
    ratio = labels_ratio(curves[args.al_arm], curves[args.random_arm])
    print(
        "labels needed to reach the target force MAE with retrained label sets, "
        f"AL / random = {ratio:.2f}"
    )


if __name__ == "__main__":
    main()
