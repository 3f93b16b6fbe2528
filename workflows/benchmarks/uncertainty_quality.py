"""Which uncertainty tells where the model is wrong? Every method, calibrated, on three test sets.

The campaign of the selection benchmark (H2/Cu(111), GFN1-xTB oracle, mini-64 foundation,
freeze f0 as the sweep chose): a committee of ``--committee`` members is fine-tuned with the
campaign's settings on the training labels bought by the random-single campaign's first
``--train-iterations`` iterations (the committee a young campaign has); the labels of its
later iterations (frames of the model's MD at the campaign temperatures, labelled) are the
calibration batches. Methods (``frostline.select.uncertainty``):

- ``committee``: the committee's force deviation per atom around the committee mean;
- ``descriptor``: member 0, scored by each atom's distance to the training environments in
  the foundation's descriptor space;
- ``last-layer``: member 0, scored by its last-layer (LLPR) variance per atom, structure
  covariance (Bigi et al.); ``last-layer-atoms``: the same with one covariance per element.

Each is calibrated (split-conformal, per-element scales, 90 %) on the calibration batches and
measured on three labelled test sets: ``oracle-md`` (GFN1-xTB's own MD at 300/800/1200 K, the
selection benchmark's test set), ``elbow`` (the H2 dissociation grid above Cu(111)) and
``cu100`` (H2 on the held-out Cu(100) facet, GFN1-xTB MD at the campaign temperatures). Per
method and set: Spearman rho of the frame score with the frame's largest atomic force error,
AUROC for frames whose error exceeds the target (0.3 eV/Å), the miscalibration area and the
empirical coverage of the calibrated 90 % bound; the cost of a force call relative to one
model (member 0; warm-up, repeats, alternated, same cell, threads and precision).

With no arguments the whole comparison runs, or re-prints from ``results.json`` when its
inputs (data, settings, this script's methods) are unchanged. Last line:
``best method: NAME, AUROC = X, coverage90 = Y, cost = Z`` (worst AUROC over the sets, the
coverage furthest from 0.9; best = highest worst-set AUROC).

    OMP_NUM_THREADS=2 .venv/bin/python workflows/benchmarks/uncertainty_quality.py [--force]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read, write
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "uncertainty_quality"
ARCHIVE = HERE / "results" / "selection_long" / "random-single.campaign.json"
MD_TEST = HERE / "results" / "selection_long" / "oracle-md-test.extxyz"
TARGET = 0.3  # eV/Å: the campaign's target_force_error
COVERAGE = 0.9
console = Console(width=150)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--committee", type=int, default=4)
    parser.add_argument("--train-iterations", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=100, help="cap (members stop by patience)")
    parser.add_argument("--patience", type=int, default=20)
    parser.add_argument("--regularizer", type=float, default=1e-4, help="LLPR ridge (relative)")
    parser.add_argument("--repeats", type=int, default=30, help="timed force calls per method")
    parser.add_argument("--force", action="store_true", help="recompute even if unchanged")
    parser.add_argument("--out", type=Path, default=OUT, help="results folder")
    return parser


# -- data -----------------------------------------------------------------------------------


def campaign_sets(train_iterations: int) -> tuple[list, list]:
    """(training labels, calibration labels) of the archived random-single campaign."""
    from campaign_record import CampaignRecord

    labels = CampaignRecord.from_archive(ARCHIVE).structures("train")
    train = [x for x in labels if x.provenance.iteration < train_iterations]
    return train, [x for x in labels if x.provenance.iteration >= train_iterations]


def label_xtb_frames(frames: list[Atoms]) -> list[Atoms]:
    from data_efficiency import label_xtb

    out = label_xtb(frames)
    for atoms in out:
        atoms.calc = None
    return out


def elbow_set() -> list[Atoms]:
    """The H2/Cu(111) dissociation grid, GFN1-xTB labels (cached)."""
    from h2cu_elbow import elbow_frames

    path = OUT / "h2cu-elbow.extxyz"
    if not path.exists():
        write(path, label_xtb_frames(elbow_frames()), format="extxyz")
    return read(path, ":")


def cu100_set(temperatures=(300.0, 800.0, 1200.0), steps: int = 200) -> list[Atoms]:
    """H2 on Cu(100) (a facet no label has): GFN1-xTB Langevin MD, a frame every 20 steps."""
    path = OUT / "cu100-md.extxyz"
    if path.exists():
        return read(path, ":")
    from ase.build import fcc100
    from common import oracle_md_frames

    from frostline.label.calculators import xtb_calculator

    rng = np.random.default_rng(100)
    calc, frames = xtb_calculator(), []
    for temperature in temperatures:
        slab = fcc100("Cu", size=(2, 2, 3), vacuum=6.0)
        centre = slab.positions[slab.positions[:, 2].argmax()] + [1.28, 1.28, 1.6]
        atoms = slab + Atoms("H2", positions=[centre - [0.37, 0, 0], centre + [0.37, 0, 0]])
        frames += oracle_md_frames(atoms, calc, temperature, steps - 20, rng, first=20)
    write(path, frames, format="extxyz")
    return read(path, ":")


def reference_forces(atoms: Atoms) -> np.ndarray:
    if "REF_forces" in atoms.arrays:
        return np.asarray(atoms.arrays["REF_forces"], dtype=float)
    return np.asarray(atoms.get_forces(), dtype=float)


# -- models ---------------------------------------------------------------------------------


def train_committee(args, train: list, key: str) -> list[Path]:
    """The committee, fine-tuned with the campaign's settings (reused when its key matches)."""
    import os

    from frostline.finetune.foundation import resolve_foundation
    from frostline.finetune.jobs import FineTuneMaker

    folder = OUT / "models"
    paths = [folder / f"member{k}.model" for k in range(args.committee)]
    work = OUT / "training"
    for d in (folder, work):
        d.mkdir(parents=True, exist_ok=True)
    maker = FineTuneMaker(freeze=0, committee_size=args.committee, epochs=args.epochs,
                          patience=args.patience, retrain_failed=2, lr=0.01)  # fmt: skip
    foundation, cwd = resolve_foundation("mini-64"), Path.cwd()
    for k, path in enumerate(paths):
        stamp = path.with_suffix(".key")  # a finished member is reused when its key matches
        if path.exists() and stamp.exists() and stamp.read_text() == key:
            continue
        console.print(f"[bold]training[/] member {k + 1}/{args.committee} on {len(train)} labels")
        data, weights = maker._member_data(train, seed=k)
        os.chdir(work)
        try:
            trained = maker._train(foundation, data, k, 0, maker.lr, "cpu", f"member{k}", [],
                                   weights)  # fmt: skip
        finally:
            os.chdir(cwd)
        path.write_bytes(trained.path.read_bytes())
        stamp.write_text(key)
    return paths


def build_methods(args, paths: list[Path], train: list[Atoms]) -> dict:
    """Every method, fitted on the training labels."""
    from frostline.finetune.committee import committee_calculator
    from frostline.finetune.foundation import resolve_foundation
    from frostline.select.novelty import DescriptorModel, memoized
    from frostline.select.uncertainty import (
        CommitteeUncertainty,
        DescriptorUncertainty,
        LastLayerUncertainty,
    )

    single = committee_calculator([paths[0]], device="cpu")
    describe = memoized(DescriptorModel(resolve_foundation("mini-64")))
    return {
        "committee": CommitteeUncertainty(committee_calculator(paths, device="cpu")),
        "descriptor": DescriptorUncertainty.fit(single, describe, train),
        "last-layer": LastLayerUncertainty.fit(single, train, "structures", args.regularizer),
        "last-layer-atoms": LastLayerUncertainty.fit(
            committee_calculator([paths[0]], device="cpu"), train, "atoms", args.regularizer
        ),
    }


# -- figures --------------------------------------------------------------------------------


def measure(method, calibration: list[Atoms], tests: dict[str, list[Atoms]]) -> dict:
    """Calibrate ``method`` on the calibration labels; its figures on every test set."""
    from frostline.select.uncertainty import (
        atom_force_errors,
        auroc,
        coverage_of,
        fit_conformal,
        miscalibration_area,
        spearman,
    )

    def run(frames):
        predictions = method.predict(frames)
        errors = [atom_force_errors(p.forces, reference_forces(a))
                  for p, a in zip(predictions, frames, strict=True)]  # fmt: skip
        return [p.scores for p in predictions], errors

    scores, errors = run(calibration)
    cal = fit_conformal(method.name, scores, errors, coverage=COVERAGE)
    out = {"calibration": cal.model_dump(exclude={"ratios"}), "sets": {}}
    for name, frames in tests.items():
        scores, errors = run(frames)
        frame_error = [max(e) for e in errors]
        u = [cal.frame_score(s) for s in scores]
        out["sets"][name] = {
            "n": len(frames),
            "force_mae": 1000 * float(np.mean(np.concatenate(errors)) / math.sqrt(3)),
            "above_target": float(np.mean(np.asarray(frame_error) > TARGET)),
            "spearman": spearman(u, frame_error),
            "auroc": auroc(u, frame_error, TARGET),
            "auroc_median": auroc(u, frame_error, float(np.median(frame_error))),
            "miscalibration": miscalibration_area(cal, scores, frame_error),
            "coverage90": coverage_of([cal.bound(s) for s in scores], frame_error),
            "frame_score": u,
            "frame_error": frame_error,
        }
    return out


def timed_cost(methods: dict, one_model: Path, frame: Atoms, repeats: int) -> dict[str, float]:
    """Seconds per force call of each method, relative to one model (member 0 alone)."""
    from frostline.finetune.committee import committee_calculator

    calc = committee_calculator([one_model], device="cpu")
    timings: dict[str, list[float]] = {name: [] for name in ["one model", *methods]}

    def call(name: str) -> None:
        if name == "one model":
            atoms = frame.copy()
            calc.reset()  # no cached results: every call is a model call
            atoms.calc = calc
            atoms.get_forces()
        else:
            methods[name].predict([frame])

    for _ in range(3):  # warm-up
        for name in timings:
            call(name)
    for _ in range(repeats):
        for name in timings:  # alternated: the same load on every method
            start = time.perf_counter()
            call(name)
            timings[name].append(time.perf_counter() - start)
    base = float(np.median(timings["one model"]))
    return {name: float(np.median(t)) / base for name, t in timings.items() if name != "one model"}


def fingerprint(args, train, calibration, tests) -> str:
    """What the figures depend on: data, settings, the method code."""
    from frostline.select.uncertainty import calibration as cal_module
    from frostline.select.uncertainty import last_layer, methods

    h = hashlib.sha256()
    for frames in (train, calibration, *tests.values()):
        for a in frames:
            h.update(a.positions.tobytes() + a.numbers.tobytes())
            h.update(reference_forces(a).tobytes())
    settings = {k: v for k, v in vars(args).items() if k not in ("force", "repeats", "out")}
    h.update(json.dumps(settings, sort_keys=True).encode())
    for module in (cal_module, last_layer, methods):
        h.update(Path(module.__file__).read_bytes())
    h.update(Path(__file__).read_bytes())  # the figures this script computes
    return h.hexdigest()


def model_key(args, train) -> str:
    h = hashlib.sha256(json.dumps([args.committee, args.epochs, args.patience]).encode())
    for a in train:
        h.update(a.positions.tobytes() + reference_forces(a).tobytes())
    return h.hexdigest()


# -- report ---------------------------------------------------------------------------------


def set_auroc(s: dict) -> float:
    """AUROC for frames above the target; where every frame of the set is on one side of the
    target (nan), for frames above the set's median error instead."""
    return s["auroc_median"] if math.isnan(s["auroc"]) else s["auroc"]


def summary(result: dict) -> tuple[float, float]:
    """(worst AUROC over the sets, the coverage90 furthest from the nominal 0.9)."""
    sets = result["sets"].values()
    aurocs = [set_auroc(s) for s in sets if not math.isnan(set_auroc(s))]
    coverages = [s["coverage90"] for s in sets]
    return min(aurocs, default=math.nan), max(coverages, key=lambda c: abs(c - COVERAGE))


def print_report(report: dict) -> None:
    table = Table(title=f"uncertainty vs true error ({report['n_train']} training labels, "
                        f"{report['n_calibration']} calibration labels)")  # fmt: skip
    for column in ("method", "set", "frames", "F MAE", "> target", "Spearman", "AUROC",
                   "AUROC med", "miscal.", "cov90", "cost"):  # fmt: skip
        table.add_column(column, justify="right")
    for name, result in report["methods"].items():
        for set_name, s in result["sets"].items():
            table.add_row(
                name, set_name, str(s["n"]), f"{s['force_mae']:.0f}",
                f"{s['above_target']:.2f}", f"{s['spearman']:.2f}", f"{s['auroc']:.2f}",
                f"{s['auroc_median']:.2f}",
                f"{s['miscalibration']:.3f}", f"{s['coverage90']:.2f}",
                f"{report['cost'][name]:.2f}",
            )  # fmt: skip
    console.print(table)
    for name, result in report["methods"].items():
        scales = result["calibration"]["element_scales"]
        console.print(
            f"{name}: calibration {result['calibration']['n_frames']} frames, per-element scales "
            + ", ".join(f"{z} {v:.3g}" for z, v in scales.items())
            + f", conformal q90 {result['calibration']['quantile']:.3g}"
        )
    plot(report, OUT / "uncertainty_quality.png")
    ranked = {n: (summary(r)[0], -report["cost"][n]) for n, r in report["methods"].items()}
    best = max(ranked, key=ranked.get)
    worst_auroc, coverage = summary(report["methods"][best])
    print(f"AUROC: frames above {TARGET} eV/Å; on a set where every frame is above it, frames "
          "above the set's median error (AUROC med)")  # fmt: skip
    print(f"best method: {best}, AUROC = {worst_auroc:.2f}, coverage90 = {coverage:.2f}, "
          f"cost = {report['cost'][best]:.2f}")  # fmt: skip


def plot(report: dict, path: Path) -> None:
    """Calibrated frame score against the frame's largest force error, per method and set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["methods"])
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        result = report["methods"][name]
        q = result["calibration"]["quantile"]
        for set_name, s in result["sets"].items():
            ax.scatter(np.asarray(s["frame_score"]) * q, s["frame_error"], s=10, label=set_name)
        lim = [1e-2, 1e1]
        ax.plot(lim, lim, "k--", lw=0.8, label="bound = error")
        ax.axhline(TARGET, color="grey", lw=0.8)
        ax.set(xscale="log", yscale="log", title=name, xlabel="calibrated 90 % bound (eV/Å)",
               ylabel="max atomic force error (eV/Å)")  # fmt: skip
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    global OUT
    args = build_parser().parse_args()
    OUT = args.out
    OUT.mkdir(parents=True, exist_ok=True)
    train_labels, calibration_labels = campaign_sets(args.train_iterations)
    train = [x.to_atoms() for x in train_labels]
    calibration = [x.to_atoms() for x in calibration_labels]
    tests = {"oracle-md": read(MD_TEST, ":"), "elbow": elbow_set(), "cu100": cu100_set()}
    key = fingerprint(args, train, calibration, tests)
    results = OUT / "results.json"
    if results.exists() and not args.force:
        report = json.loads(results.read_text())
        if report.get("key") == key:
            console.print(f"inputs unchanged: figures from {results}")
            print_report(report)
            return
    paths = train_committee(args, train_labels, model_key(args, train))
    methods = build_methods(args, paths, train)
    report = {"key": key, "n_train": len(train), "n_calibration": len(calibration),
              "date": time.strftime("%Y-%m-%d"), "methods": {}}  # fmt: skip
    for name, method in methods.items():
        console.print(f"[bold]measuring[/] {name}")
        report["methods"][name] = measure(method, calibration, tests)
        (OUT / "partial.json").write_text(json.dumps(report))  # figures survive a failure
    report["cost"] = timed_cost(methods, paths[0], tests["oracle-md"][0], args.repeats)
    results.write_text(json.dumps(report, indent=1))
    print_report(report)


if __name__ == "__main__":
    main()
