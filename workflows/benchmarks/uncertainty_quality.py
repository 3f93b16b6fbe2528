"""Does the committee know where it is wrong? Uncertainty against true error on a fixed test set.

Selection can only beat random picking when its uncertainty ranks frames by their true error.
For every iteration's committee of every campaign folder given, on a labelled test set (default:
the selection benchmark's oracle-MD test set beside the folders), this compares two uncertainty
measures with the committee-mean model's true error:

- ``std``: the committee force deviation (per atom the norm of the member-force standard
  deviation, DP-GEN's measure; per frame its largest atom), what ``uncertainty: committee`` ranks;
- ``novelty``: the frame's largest descriptor distance to the labelled environments the
  committee was trained on (the campaign foundation's invariant features, what
  ``uncertainty: descriptor`` ranks; the only measure of a single-model campaign).

Figures per iteration: Spearman rank correlation over frames (largest atomic force error) and
over atoms (atomic force error norm); per element, the novelty of that element's atoms against
their force MAE per frame, and how often that element's atom is the frame's most novel one;
``capture``: the share of the 10 % worst frames that are
among the 10 % most uncertain (random ranking: 0.10); ``enrichment``: mean error of the quarter
most uncertain frames over the mean error of all frames (random: 1.00). Prints a table, writes
``uncertainty_quality.png`` (rank correlation against labels, and std against error for each
folder's last committee) and ``uncertainty_quality.json`` beside the test set; last, each
folder's last committee's frame-level Spearman rho for std / novelty.

    .venv/bin/python workflows/benchmarks/uncertainty_quality.py FOLDER [FOLDER ...]
        [--test PATH] [--no-novelty]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read
from rich.console import Console
from rich.progress import track
from rich.table import Table
from scipy.stats import spearmanr

console = Console()


def committee_predictions(calc, test: list[Atoms]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per frame: committee-mean forces (n, 3) and per-atom force deviation (n,; 0: one model)."""
    forces, deviation = [], []
    for atoms in test:
        work = atoms.copy()
        work.calc = calc
        forces.append(np.asarray(work.get_forces(), dtype=float))
        var = np.asarray(calc.results.get("forces_var", np.zeros((len(atoms), 3))), dtype=float)
        deviation.append(np.sqrt(var.sum(axis=1)))
    return forces, deviation


def ranking_quality(uncertainty: np.ndarray, error: np.ndarray) -> dict[str, float]:
    """Spearman rho, top-decile capture and top-quartile enrichment of ``uncertainty``."""
    n = len(error)
    k10, k25 = max(1, round(0.1 * n)), max(1, round(0.25 * n))
    by_u = np.argsort(-uncertainty, kind="stable")
    worst = set(np.argsort(-error, kind="stable")[:k10].tolist())
    return {
        "rho": float(spearmanr(uncertainty, error).statistic),
        "capture": len(worst & set(by_u[:k10].tolist())) / k10,
        "enrichment": float(error[by_u[:k25]].mean() / error.mean()),
    }


def training_atoms(records, campaign: str, iteration: int) -> list[Atoms]:
    """The training labels the committee of ``iteration`` was fitted on."""
    from frostline.registry.data import labelled_atoms, labelled_filter

    criteria = {**labelled_filter(campaign, "train"), "provenance.iteration": {"$lt": iteration}}
    return [labelled_atoms(d) for d in records.find("labelled", criteria)]


def evaluate_folder(folder: Path, test: list[Atoms], novelty: bool) -> list[dict]:
    """One row per iteration committee of the campaign in ``folder``."""
    import yaml

    from frostline.config import CampaignConfig
    from frostline.finetune.committee import load_committee
    from frostline.finetune.foundation import resolve_foundation
    from frostline.registry.queries import campaign_status, iteration_committees, open_campaign_dir
    from frostline.select.calibration import max_atomic_force_error
    from frostline.select.novelty import DescriptorModel, descriptor_uncertainty, memoized

    records = open_campaign_dir(folder)
    status = campaign_status(records)
    name = status["campaign"]
    config = CampaignConfig.model_validate(yaml.safe_load((folder / "campaign.yaml").read_text()))
    describe = None
    if novelty:
        describe = memoized(DescriptorModel(str(resolve_foundation(config.foundation))))
    reference = [np.asarray(a.arrays["REF_forces"], dtype=float) for a in test]
    rows = []
    for it, members in track(iteration_committees(records), description=folder.name):
        calc = load_committee(records, members, device="cpu")
        forces, deviation = committee_predictions(calc, test)
        frame_error = np.array(
            [max_atomic_force_error(f, r) for f, r in zip(forces, reference, strict=True)]
        )
        row = {
            "arm": folder.name,
            "iteration": it["index"],
            "labels": it["n_labelled"],
            "force_mae": 1000
            * float(np.mean(np.abs(np.concatenate(forces) - np.concatenate(reference)))),
            "frame_error": frame_error.tolist(),
        }
        if len(members) > 1:  # a single model has no spread: novelty only
            frame_std = np.array([d.max() for d in deviation])
            atom_error = np.concatenate(
                [np.linalg.norm(f - r, axis=1) for f, r in zip(forces, reference, strict=True)]
            )
            row["std"] = ranking_quality(frame_std, frame_error)
            row["std_atom_rho"] = float(spearmanr(np.concatenate(deviation), atom_error).statistic)
            row["frame_std"] = frame_std.tolist()
        if describe is not None:
            labelled = training_atoms(records, name, it["index"])
            scores = np.array(descriptor_uncertainty(test, labelled, describe))
            row["novelty"] = ranking_quality(scores, frame_error)
            row["element_novelty"] = element_novelty_ranking(test, forces, labelled, describe)
        rows.append(row)
    return rows


def element_novelty_ranking(
    test: list[Atoms], forces: list[np.ndarray], labelled: list[Atoms], describe
) -> dict[str, dict[str, float]]:
    """Per element: does the novelty of that element's atoms rank frames by their error?

    ``rho``: Spearman rank correlation over frames of the largest novelty among the element's
    atoms with the force MAE over the same atoms (meV/Å); ``sets_max``: share of frames whose
    largest novelty (what ``uncertainty: descriptor`` ranks) is one of this element's atoms.
    """
    from frostline.finetune.evaluate import force_mae_by_element
    from frostline.select.novelty import NoveltyIndex

    index = NoveltyIndex()
    for atoms in labelled:
        index.add(describe(atoms), atoms.get_chemical_symbols())
    novelty, error, owner = defaultdict(list), defaultdict(list), []
    for atoms, predicted in zip(test, forces, strict=True):
        symbols = np.asarray(atoms.get_chemical_symbols())
        distances = index.atom_distances(describe(atoms), symbols)
        owner.append(symbols[int(np.argmax(distances))])
        frame_error = force_mae_by_element([atoms.arrays["REF_forces"]], [predicted], [symbols])
        for element, mae in frame_error.items():
            novelty[element].append(float(distances[symbols == element].max()))
            error[element].append(mae)
    return {
        element: {
            "rho": float(spearmanr(novelty[element], error[element]).statistic),
            "sets_max": float(np.mean([o == element for o in owner])),
        }
        for element in novelty
    }


def print_table(rows: list[dict]) -> None:
    table = Table(title="uncertainty against true force error (oracle-MD test frames)")
    for column in (
        "arm",
        "labels",
        "F MAE meV/Å",
        "std ρ frame",
        "std ρ atom",
        "std capture",
        "std enrich",
        "novelty ρ",
        "novelty capture",
        "novelty enrich",
    ):
        table.add_column(column, justify="right")
    for r in rows:
        s, nov = r.get("std"), r.get("novelty")
        table.add_row(
            r["arm"],
            str(r["labels"]),
            f"{r['force_mae']:.1f}",
            *(
                (f"{s['rho']:.2f}", f"{r['std_atom_rho']:.2f}")
                + (f"{s['capture']:.2f}", f"{s['enrichment']:.2f}")
                if s
                else ("–",) * 4
            ),
            *(
                (f"{nov['rho']:.2f}", f"{nov['capture']:.2f}", f"{nov['enrichment']:.2f}")
                if nov
                else ("–",) * 3
            ),
        )
    console.print(table)
    for r in rows:
        if r.get("element_novelty"):
            parts = [
                f"{el} rho {v['rho']:.2f} (sets the frame's max in {100 * v['sets_max']:.0f} %)"
                for el, v in r["element_novelty"].items()
            ]
            print(f"{r['arm']} {r['labels']} labels, per-element novelty vs that element's "
                  f"force MAE: " + ", ".join(parts))  # fmt: skip


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = sorted({r["arm"] for r in rows})
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, arm in enumerate(arms):
        mine = [r for r in rows if r["arm"] == arm]
        colour = cycle[i % len(cycle)]
        for key, style in (("std", "o-"), ("novelty", "s--")):
            measured = [r for r in mine if key in r]
            if measured:
                labels, rhos = [r["labels"] for r in measured], [r[key]["rho"] for r in measured]
                ax1.plot(labels, rhos, style, color=colour, label=f"{arm} {key}")
        committee = [r for r in mine if "std" in r]
        if not committee:
            continue
        last = committee[-1]
        ax2.scatter(
            last["frame_std"],
            last["frame_error"],
            s=14,
            color=colour,
            label=f"{arm} ({last['labels']} labels)",
        )
    ax1.axhline(0.0, color="grey", lw=0.8)
    ax1.set_xlabel("training labels")
    ax1.set_ylabel("Spearman ρ (frame uncertainty, frame error)")
    ax1.legend(fontsize=7)
    ax2.set_xlabel("committee max atomic force std (eV/Å)")
    ax2.set_ylabel("max atomic force error of the mean (eV/Å)")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+", help="campaign directories")
    parser.add_argument("--test", type=Path, help="labelled extxyz (REF_forces) test set")
    parser.add_argument("--no-novelty", action="store_true", help="committee std only")
    args = parser.parse_args()
    test_path = args.test or args.folders[0].parent / "oracle-md-test.extxyz"
    if not test_path.exists():
        parser.error(f"--test: {test_path} does not exist")
    test = read(test_path, ":")
    console.print(f"test set: {len(test)} frames, {sum(len(a) for a in test)} atoms ({test_path})")
    rows = [
        r for folder in args.folders for r in evaluate_folder(folder, test, not args.no_novelty)
    ]
    if not rows:
        raise SystemExit("no model in the campaigns of the folders given")
    print_table(rows)
    out = test_path.parent
    plot(rows, out / "uncertainty_quality.png")
    (out / "uncertainty_quality.json").write_text(json.dumps(rows, indent=1))
    last = {r["arm"]: r for r in rows}.values()  # rows run in iteration order per folder
    console.print(f"plot: {out / 'uncertainty_quality.png'}")

    def rho(row: dict, key: str) -> str:
        return f"{row[key]['rho']:.2f}" if key in row else "–"

    print(
        "last committees, Spearman rho of frame error with std / novelty: "
        + ", ".join(f"{r['arm']} {rho(r, 'std')} / {rho(r, 'novelty')}" for r in last)
    )


if __name__ == "__main__":
    main()
