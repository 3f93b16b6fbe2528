"""A linear ACE surrogate against the MACE it was distilled from: speed like with like, fidelity
on frames outside both training sets.

    .venv/bin/python workflows/benchmarks/surrogate_speed.py [--n-teacher 300] [--quick]
    .venv/bin/python workflows/benchmarks/surrogate_speed.py --reprint   # committed results

1. teacher: the shipped mini foundation (MACE, 32x0e, 2 layers, r_max 5 Å; float64);
2. surrogate: ``frostline.distill.jobs.build_surrogate`` (teacher MD at 300/800/1,200 K,
   strains up to 6 %, vacancies around H2/Cu(111) seeds; basis sweep until the held-out force
   MAE vs the teacher meets ``--target``; ``--active-rounds`` rounds of teacher-labelled active
   learning of the surrogate), then the MD stability check of the surrogate and of the teacher
   (same teacher-relaxed cell, same seed); reused from ``results/surrogate_speed/surrogate/``
   when its inputs are unchanged;
3. held-out frames outside both the teacher data and the foundation's training data: H2 on
   another facet (Cu(100)), Cu(111)+H2 strained by 5-8 %, H coverages no label has (1 H on
   3x3, 3 H on 2x2), and teacher MD at 1,500 K; labelled by the oracle (GFN1-xTB, tblite;
   labels cached in ``oracle_labels.json``), the teacher and the surrogate;
4. speed: µs/atom/step (energy + forces) of the teacher and the surrogate on the same ~100- and
   ~1,000-atom Cu(111)+H2 cells, float64 both, 1 thread and all threads, one warm-up call and
   ``--repeats`` timed calls (median) on both sides; a MACE with MACE-MP-0 medium's architecture
   (random weights) on the ~100-atom cell with 1 thread is the secondary comparison.

The line before the last gives the medium-sized comparison; the last line is exactly
``speed-up teacher/ACE = X at held-out force MAE ratio ACE/teacher = Y``: X on the ~1,000-atom
cell with 1 thread, Y = force MAE(ACE vs oracle) / force MAE(teacher vs oracle) over the held-out
frames. ``report.json`` holds every figure (per category and element, ACE vs teacher as well).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import time
from pathlib import Path

import mace  # noqa: F401  (before e3nn)
import numpy as np
import torch
from ase.build import fcc100
from rich.console import Console
from rich.table import Table

from frostline.config import DistillConfig
from frostline.distill.ace import SurrogateCalculator
from frostline.distill.jobs import active_line, build_surrogate
from frostline.distill.schemas import ActiveRound
from frostline.distill.teacher import principal_strain
from frostline.distill.validate import error_metrics, predict_atoms, time_per_atom_step
from frostline.explore.samplers import langevin_frames
from frostline.finetune.committee import committee_calculator
from frostline.finetune.foundation import MINI_FOUNDATION, mace_mp_medium_sized
from frostline.structures import cu111_slab, h2_cu111_structures, h2_on_slab, rattle

RESULTS = Path(__file__).resolve().parent / "results" / "surrogate_speed"
console = Console()
SURROGATE_FILES = ("yace", "yaml", "asi", "grade")
SUFFIX = {"yace": ".yace", "yaml": ".yaml", "asi": ".asi", "grade": ".grade.npz"}


def digest(obj) -> str:
    """Short sha256 of a JSON-able object (inputs of a stage)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def frame_digest(atoms) -> str:
    return digest(
        [atoms.get_chemical_symbols(), np.round(atoms.positions, 6).tolist(), atoms.cell.tolist()]
    )


def slab_cell(size: tuple[int, int, int], seed: int = 0):
    """Cu(111) ``size`` slab with one H2 (periodic, vacuum along z)."""
    return h2_on_slab(cu111_slab(size), np.random.default_rng(seed))


def surrogate(teacher, settings: DistillConfig, seeds) -> tuple[dict[str, Path], dict]:
    """The surrogate's files and build summary: reused when its inputs are unchanged."""
    folder = RESULTS / "surrogate"
    import frostline.distill as distill

    code = [p.read_text() for p in sorted(Path(distill.__file__).parent.glob("*.py"))]
    key = digest(
        [
            settings.model_dump(),
            [frame_digest(a) for a in seeds],
            MINI_FOUNDATION.stat().st_size,
            digest(code),  # the distillation code itself
        ]
    )
    info_path = RESULTS / "surrogate_build.json"
    files = {k: folder / f"surrogate{SUFFIX[k]}" for k in SURROGATE_FILES}
    if info_path.exists() and all(p.exists() for p in files.values()):
        info = json.loads(info_path.read_text())
        if info.get("key") == key:
            console.print(f"surrogate reused ({folder}, inputs {key})")
            return files, info
    t0 = time.perf_counter()
    build = build_surrogate(teacher, seeds, ["Cu", "H"], folder, settings, [300.0, 800.0])
    info = {
        "key": key,
        "n_teacher_train": len(build.train),
        "n_teacher_holdout": len(build.holdout),
        "sweep": [p.model_dump() for p in build.sweep],
        "chosen": build.chosen.model_dump(),
        "active_rounds": [r.model_dump() for r in build.active_rounds],
        "build_time_s": time.perf_counter() - t0,
    }
    console.print("MD stability check of the surrogate and of the teacher (same cell and seed)")
    info["stability"] = build.check.check(SurrogateCalculator(build.files["yace"])).model_dump()
    info["teacher_stability"] = build.check.check(teacher).model_dump()
    info_path.write_text(json.dumps(info, indent=2))
    return {k: Path(p) for k, p in build.files.items()}, info


def held_out_frames(teacher, quick: bool) -> dict[str, list]:
    """Frames outside both training sets: another facet, larger strains, hotter MD."""
    rng = np.random.default_rng(2024)
    n = 2 if quick else 6
    facet = fcc100("Cu", size=(2, 2, 3), vacuum=6.0)
    facet.pbc = True
    frames = {"Cu(100)+H2": [h2_on_slab(rattle(facet, rng, 0.05), rng) for _ in range(n)]}
    frames["strained 5-8 %"] = [
        principal_strain(atoms, rng, 0.05, 0.08)
        for atoms in h2_cu111_structures(n, rng, include_references=False)
    ]
    frames["other H coverage"] = [coverage_frame(rng, k % 2 == 0) for k in range(2 * n)]
    start = h2_cu111_structures(1, np.random.default_rng(7), include_references=False)[0]
    md = langevin_frames(start, teacher, 1500.0, 40 * n, 20, timestep_fs=0.5, seed=3)
    frames["MD 1500 K"] = [f.atoms for f in md][: 2 * n]
    return frames


def coverage_frame(rng: np.random.Generator, low: bool):
    """Cu(111) with an H coverage no label and no teacher frame has: one H on a 3x3 slab
    (1/9 monolayer; between the clean slab and the labels' H2 on 2x2) or three H on 2x2."""
    if low:
        atoms = h2_on_slab(rattle(cu111_slab((3, 3, 3)), rng, 0.05), rng)
        del atoms[-1]
        return atoms
    atoms = h2_on_slab(h2_on_slab(rattle(cu111_slab(), rng, 0.05), rng), rng)
    del atoms[-1]
    return atoms


def oracle_labels(frames: list) -> tuple[list[float], list[np.ndarray]]:
    """GFN1-xTB energies and forces, cached by frame in ``oracle_labels.json``."""
    path = RESULTS / "oracle_labels.json"
    cache = json.loads(path.read_text()) if path.exists() else {}
    missing = [a for a in frames if frame_digest(a) not in cache]
    if missing:
        from frostline.label.calculators import xtb_calculator

        t0 = time.perf_counter()
        energies, forces = predict_atoms(xtb_calculator(), missing)
        for a, e, f in zip(missing, energies, forces, strict=True):
            cache[frame_digest(a)] = {"energy": e, "forces": f.tolist()}
        path.write_text(json.dumps(cache))
        console.print(f"GFN1-xTB labels: {len(missing)} frames in {time.perf_counter() - t0:.0f} s")
    labels = [cache[frame_digest(a)] for a in frames]
    return [d["energy"] for d in labels], [np.asarray(d["forces"]) for d in labels]


def fidelity(teacher, ace, frames: dict[str, list], grade=None) -> dict:
    """Errors of teacher and ACE vs the oracle, and ACE vs teacher, per category and overall;
    with ``grade`` (``(GradeModel, basis)``) the share of frames its threshold flags."""
    out = {}
    everything = [a for group in frames.values() for a in group]
    for name, group in [*frames.items(), ("all", everything)]:
        symbols = [a.get_chemical_symbols() for a in group]
        ref_e, ref_f = oracle_labels(group)
        t_e, t_f = predict_atoms(teacher, group)
        a_e, a_f = predict_atoms(ace, group)
        out[name] = {
            "n_frames": len(group),
            "teacher_vs_oracle": error_metrics(ref_e, ref_f, t_e, t_f, symbols).model_dump(),
            "ace_vs_oracle": error_metrics(ref_e, ref_f, a_e, a_f, symbols).model_dump(),
            "ace_vs_teacher": error_metrics(t_e, t_f, a_e, a_f, symbols).model_dump(),
        }
        if grade is not None:
            model, basis = grade
            flagged = model.frame_grades(basis, group) > model.threshold
            out[name]["grade_flagged_fraction"] = float(np.mean(flagged))
    return out


def timings(models: dict, cells: dict, threads: list[int], repeats: int) -> dict:
    """µs/atom/step per model, cell and thread count (1 warm-up, median of ``repeats``)."""
    out: dict[str, dict[str, float]] = {}
    for label, (calc, which) in models.items():
        for c in which:
            for th in threads if label != "MACE MP-0-medium-sized" else [1]:
                torch.set_num_threads(th)
                us = time_per_atom_step(calc, cells[c], repeats=repeats, warmup=1)
                out.setdefault(label, {})[f"{c}-{th}"] = us
                console.print(f"  {label}, {c} cell ({len(cells[c])} atoms), {th} thr: {us:,.1f}")
    torch.set_num_threads(1)
    return out


def print_report(report: dict, out: Console | None = None) -> None:
    """Tables and the two closing lines (also used by ``--reprint``)."""
    out = out or console
    table = Table(title="µs/atom/step (energy + forces, float64; 1 warm-up, median of repeats)")
    columns = sorted({k for row in report["timings"].values() for k in row})
    table.add_column("model")
    for c in columns:
        size, th = c.split("-")
        table.add_column(f"{size} ({report['cells'][size]} at.), {th} thr.", justify="right")
    for label, row in report["timings"].items():
        table.add_row(label, *[f"{row[c]:,.1f}" if c in row else "–" for c in columns])
    out.print(table)
    err = Table(title="held-out frames (outside teacher data and foundation data): F MAE meV/Å")
    for col in (
        "frames",
        "n",
        "teacher vs oracle",
        "ACE vs oracle",
        "ACE vs teacher",
        "by element",
    ):
        err.add_column(col)
    for name, f in report["fidelity"].items():
        by_el = f["ace_vs_teacher"]["force_mae_by_element"]
        err.add_row(
            name,
            str(f["n_frames"]),
            f"{f['teacher_vs_oracle']['force_mae_mev_per_a']:.1f}",
            f"{f['ace_vs_oracle']['force_mae_mev_per_a']:.1f}",
            f"{f['ace_vs_teacher']['force_mae_mev_per_a']:.1f}",
            " · ".join(f"{k} {v:.1f}" for k, v in by_el.items()),
            f"{100 * f['grade_flagged_fraction']:.0f} %" if "grade_flagged_fraction" in f else "–",
        )
    out.print(err)
    g = report["build"].get("grade")
    if g:
        out.print(
            f"extrapolation grade: threshold {g['threshold']:.2f} (99 % of held-out teacher "
            f"frames); false alarms {100 * g['false_alarm_rate']:.1f} % of {g['n_held_in']:.0f} "
            f"held-out teacher frames, misses {100 * g['miss_rate']:.1f} % of "
            f"{g['n_extrapolative']:.0f} probes (distill.grade.extrapolative_probes)"
        )
    for r in report["build"].get("active_rounds", []):
        out.print(f"active round {r['round']}: {active_line(ActiveRound(**r))}")
    for who in ("stability", "teacher_stability"):
        st = report["build"].get(who)
        if st:
            out.print(
                f"MD check, {'surrogate' if who == 'stability' else 'teacher'}: "
                f"{'stable' if st['stable'] else 'FAILED'} ({st['n_atoms']} atoms, "
                f"{st['temperature_k']:.0f} K target, mean {st['mean_temperature_k']:.0f} K, max "
                f"{st['max_temperature_k']:.0f} K, closest {st['min_distance_a']:.2f} Å)"
                + (": " + "; ".join(st["failures"]) if st["failures"] else "")
            )
    b, chosen = report["build"], report["build"]["chosen"]
    rounds = b.get("active_rounds") or []
    out.print(
        f"surrogate: {chosen['n_functions_per_element']} functions/element, rc "
        f"{chosen['cutoff']} Å, held-out teacher F MAE {chosen['force_mae_mev_per_a']:.1f}"
        f" meV/Å after the sweep, {rounds[-1]['holdout_force_mae_mev_per_a'] if rounds else 0:.1f}"
        f" after active learning; {b['n_teacher_train']} train / {b['n_teacher_holdout']} held-out"
        " teacher frames;"
        f" load average at start {report['load_average']}"
    )
    for line in (
        f"secondary: speed-up MACE-MP-0-medium-sized/ACE = {report['speedup_medium']:.0f} "
        f"({report['cells']['small']}-atom cell, 1 thread; random weights)",
        f"speed-up teacher/ACE = {report['speedup_teacher']:.0f} at held-out force MAE ratio "
        f"ACE/teacher = {report['mae_ratio']:.2f}",
    ):
        out.print(line, soft_wrap=True, highlight=False, markup=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-teacher", type=int, default=300, help="teacher structures")
    parser.add_argument("--target", type=float, default=40.0, help="meV/Å vs teacher")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per measurement")
    parser.add_argument(
        "--active-rounds", type=int, default=DistillConfig().active_rounds, help="per basis size"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--reprint", action="store_true", help="print the committed report")
    args = parser.parse_args()
    global RESULTS
    if args.quick:  # a smoke test: its own (git-ignored) folder
        RESULTS = RESULTS / "quick"
    report_path = RESULTS / "report.json"
    if args.reprint:
        print_report(json.loads(report_path.read_text()))
        return
    t_start = time.perf_counter()
    load = [round(x, 1) for x in os.getloadavg()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # labelling and fitting: one thread is fastest on a shared machine
    teacher = committee_calculator([MINI_FOUNDATION], device="cpu", dtype="float64")
    settings = DistillConfig(
        n_teacher_structures=24 if args.quick else args.n_teacher,
        md_steps=20 if args.quick else 100,
        sample_every=4 if args.quick else 5,
        basis_sizes=[16] if args.quick else [50, 100, 200, 300],
        cutoffs=[5.0],
        target_force_mae_mev_per_a=args.target,
        active_rounds=1 if args.quick else args.active_rounds,
        active_steps=20 if args.quick else 200,
        stability_steps=20 if args.quick else 200,
    )
    seeds = h2_cu111_structures(12, np.random.default_rng(1), rattle_stdev=0.05)
    files, build = surrogate(teacher, settings, seeds)
    ace = SurrogateCalculator(files["yace"])
    frames = held_out_frames(teacher, args.quick)
    from pyace import ACEBBasisSet

    from frostline.distill.grade import GradeModel

    grade = GradeModel.load(files["grade"])
    build["grade"] = grade.calibration
    fid = fidelity(teacher, ace, frames, (grade, ACEBBasisSet(str(files["yaml"]))))
    sizes = {"small": (3, 3, 3), "large": (4, 4, 4)} if args.quick else {}
    cells = {
        c: slab_cell(sizes.get(c, s)) for c, s in {"small": (4, 4, 6), "large": (12, 12, 7)}.items()
    }
    from mace.calculators import MACECalculator

    medium = MACECalculator(
        models=mace_mp_medium_sized(range(1, 90)), device="cpu", default_dtype="float64"
    )
    models = {
        "MACE mini (teacher)": (teacher, ["small", "large"]),
        "linear ACE": (ace, ["small", "large"]),
        "MACE MP-0-medium-sized": (medium, ["small"]),
    }
    threads = sorted({1, os.cpu_count() or 1})
    times = timings(models, cells, threads, args.repeats)
    report = {
        "load_average": load,
        "cells": {c: len(a) for c, a in cells.items()},
        "threads": threads,
        "repeats": args.repeats,
        "timings": times,
        "build": build,
        "fidelity": fid,
        "speedup_teacher": times["MACE mini (teacher)"]["large-1"] / times["linear ACE"]["large-1"],
        "speedup_medium": times["MACE MP-0-medium-sized"]["small-1"]
        / times["linear ACE"]["small-1"],
        "mae_ratio": fid["all"]["ace_vs_oracle"]["force_mae_mev_per_a"]
        / fid["all"]["teacher_vs_oracle"]["force_mae_mev_per_a"],
        "wall_time_s": time.perf_counter() - t_start,
    }
    report_path.write_text(json.dumps(report, indent=2))
    print_report(report)
    text = Console(record=True, width=80, file=io.StringIO())
    print_report(report, text)  # the committed text report, as --reprint prints it
    (RESULTS / "report.txt").write_text(text.export_text())


if __name__ == "__main__":
    main()
