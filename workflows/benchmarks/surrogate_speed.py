"""MACE teacher vs its linear ACE surrogate, side by side: speed and force error vs an oracle.

    .venv/bin/python workflows/benchmarks/surrogate_speed.py [--n-teacher 300] [--quick]

1. teacher: the shipped mini foundation (MACE, 32x0e, 2 layers, r_max 5 Å; float64);
2. oracle: GFN1-xTB (tblite) labels of fresh H2/Cu(111) cells (never seen by the fits);
3. surrogate: ``frostline.distill.jobs.build_surrogate`` (teacher MD / strains / defects around
   H2/Cu(111) seeds, basis sweep until the held-out force MAE vs the teacher meets the target);
4. speed: µs/atom/step (energy + forces) of the mini MACE, a MACE with MACE-MP-0 medium's
   architecture (128x0e+128x1o, 2 interactions, r_max 6, spherical harmonics to L=3,
   correlation 3, 89 elements; random weights: speed does not depend on their values) and the
   ACE surrogate on the same ~100- and ~1000-atom Cu(111)+H2 slabs, with 1 thread and all threads.

The last line is ``speed-up MACE/ACE = X at force MAE ratio ACE/MACE = Y``: X for the
MACE-MP-0-medium-sized model on the ~1000-atom cell with 1 thread, Y = (ACE force MAE vs the
oracle) / (teacher MACE force MAE vs the oracle). Results: ``workflows/benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import mace  # noqa: F401  (before e3nn)
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from frostline.config import DistillConfig
from frostline.distill.ace import SurrogateCalculator
from frostline.distill.jobs import build_surrogate
from frostline.distill.validate import error_metrics, predict_atoms, time_per_atom_step
from frostline.finetune.committee import committee_calculator
from frostline.finetune.foundation import MINI_FOUNDATION, mace_mp_medium_sized
from frostline.label.calculators import xtb_calculator
from frostline.structures import cu111_slab, h2_cu111_structures, h2_on_slab

RESULTS = Path(__file__).resolve().parent / "results"
console = Console()


def mp0_medium_sized(dtype: torch.dtype = torch.float64) -> torch.nn.Module:
    """A ScaleShiftMACE with MACE-MP-0 medium's hyperparameters and random weights."""
    return mace_mp_medium_sized(range(1, 90), dtype)


def slab_cell(size: tuple[int, int, int], seed: int = 0):
    """Cu(111) ``size`` slab with one H2 (periodic, vacuum along z)."""
    return h2_on_slab(cu111_slab(size), np.random.default_rng(seed))


def shifted_energy_mae(
    cells: list, reference: list[float], predicted: list[float], elements=("Cu", "H")
) -> float:
    """Energy MAE (meV/atom) after the per-element shift that best aligns the two references."""
    counts = np.array([[a.get_chemical_symbols().count(e) for e in elements] for a in cells])
    diff = np.asarray(reference) - np.asarray(predicted)
    shift, *_ = np.linalg.lstsq(counts.astype(float), diff, rcond=None)
    n = counts.sum(axis=1)
    return float(1000 * np.mean(np.abs((diff - counts @ shift) / n)))


def parity_plot(path: Path, ref: np.ndarray, preds: dict[str, np.ndarray]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    lim = float(np.abs(ref).max()) * 1.05
    for label, pred in preds.items():
        mae = 1000 * np.mean(np.abs(pred - ref))
        ax.scatter(ref, pred, s=6, alpha=0.6, label=f"{label} (MAE {mae:.0f} meV/Å)")
    ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.8)
    ax.set(
        xlim=(-lim, lim),
        ylim=(-lim, lim),
        xlabel="GFN1-xTB force component (eV/Å)",
        ylabel="model force component (eV/Å)",
        title="H2/Cu(111): teacher MACE vs linear ACE",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-teacher", type=int, default=300, help="teacher structures")
    parser.add_argument("--n-oracle", type=int, default=20, help="GFN1-xTB test cells")
    parser.add_argument("--target", type=float, default=40.0, help="meV/Å vs teacher")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    args = parser.parse_args()
    t_start = time.perf_counter()
    all_threads = os.cpu_count() or 1
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
        stability_steps=0,
    )
    seeds = h2_cu111_structures(12, np.random.default_rng(1), rattle_stdev=0.05)
    build = build_surrogate(
        teacher, seeds, ["Cu", "H"], RESULTS / "surrogate", settings, temperatures=[300.0, 800.0]
    )
    ace = SurrogateCalculator(build.files["yace"])

    # oracle labels on fresh cells (another seed than the teacher's seeds)
    n_oracle = 4 if args.quick else args.n_oracle
    test_cells = h2_cu111_structures(n_oracle, np.random.default_rng(2024), rattle_stdev=0.08)
    oracle = xtb_calculator()
    t0 = time.perf_counter()
    ref_e, ref_f = predict_atoms(oracle, test_cells)
    console.print(f"GFN1-xTB labels: {n_oracle} cells in {time.perf_counter() - t0:.0f} s")
    mace_e, mace_f = predict_atoms(teacher, test_cells)
    ace_e, ace_f = predict_atoms(ace, test_cells)
    m_mace = error_metrics(ref_e, ref_f, mace_e, mace_f)
    m_ace = error_metrics(ref_e, ref_f, ace_e, ace_f)
    ace_vs_teacher = error_metrics(mace_e, mace_f, ace_e, ace_f)
    ref_flat = np.concatenate([f.ravel() for f in ref_f])
    parity_plot(
        RESULTS / "surrogate_parity.png",
        ref_flat,
        {
            "MACE (teacher)": np.concatenate([f.ravel() for f in mace_f]),
            "linear ACE": np.concatenate([f.ravel() for f in ace_f]),
        },
    )

    # speed
    cells = {"small": slab_cell((4, 4, 6)), "large": slab_cell((12, 12, 7))}
    if args.quick:
        cells = {"small": slab_cell((3, 3, 3)), "large": slab_cell((4, 4, 4))}
    from mace.calculators import MACECalculator

    mp0 = MACECalculator(models=mp0_medium_sized(), device="cpu", default_dtype="float64")
    models = {"MACE mini (teacher)": teacher, "MACE MP-0-medium-sized": mp0, "linear ACE": ace}
    timings: dict[str, dict[str, float]] = {}
    table = Table(title="µs/atom/step (energy + forces, float64)")
    table.add_column("model")
    columns = [(c, th) for c in cells for th in sorted({1, all_threads})]
    for c, th in columns:
        table.add_column(f"{c} ({len(cells[c])} at.), {th} thr.", justify="right")
    for label, calc in models.items():
        row = []
        for c, th in columns:
            torch.set_num_threads(th)
            slow = "MACE" in label and c == "large"  # a MACE step on ~1000 atoms takes seconds
            us = time_per_atom_step(
                calc, cells[c], repeats=1 if slow else 3, warmup=0 if slow else 1
            )
            timings.setdefault(label, {})[f"{c}-{th}"] = us
            row.append(f"{us:,.1f}")
        table.add_row(label, *row)
    torch.set_num_threads(1)
    console.print(table)

    err = Table(title=f"force/energy errors vs GFN1-xTB ({n_oracle} H2/Cu(111) cells)")
    for col in ("model", "F MAE meV/Å", "E MAE meV/atom (per-element shift)"):
        err.add_column(col)
    e_mace = shifted_energy_mae(test_cells, ref_e, mace_e)
    e_ace = shifted_energy_mae(test_cells, ref_e, ace_e)
    err.add_row("MACE mini (teacher)", f"{m_mace.force_mae_mev_per_a:.1f}", f"{e_mace:.1f}")
    err.add_row("linear ACE", f"{m_ace.force_mae_mev_per_a:.1f}", f"{e_ace:.1f}")
    err.add_row(
        "ACE vs teacher (same cells)",
        f"{ace_vs_teacher.force_mae_mev_per_a:.1f}",
        f"{ace_vs_teacher.energy_mae_mev_per_atom:.1f}",
    )
    console.print(err)
    sweep = ", ".join(
        f"{p.n_functions_per_element}/el: {p.force_mae_mev_per_a:.1f}" for p in build.sweep
    )
    console.print(
        f"teacher data: {len(build.train)} train / {len(build.holdout)} held out; "
        f"sweep (held-out F MAE vs teacher, meV/Å): {sweep}; chosen "
        f"{build.chosen.n_functions_per_element} functions/element, rc {build.chosen.cutoff} Å"
    )
    key = "large-1"
    speedup_mp0 = timings["MACE MP-0-medium-sized"][key] / timings["linear ACE"][key]
    speedup_mini = timings["MACE mini (teacher)"][key] / timings["linear ACE"][key]
    ratio = m_ace.force_mae_mev_per_a / m_mace.force_mae_mev_per_a
    console.print(
        f"large cell, 1 thread: ACE is {speedup_mini:.1f}x faster than the mini MACE teacher; "
        f"total {time.perf_counter() - t_start:.0f} s"
    )
    summary = {
        "timings_us_per_atom_step": timings,
        "cells": {c: len(a) for c, a in cells.items()},
        "threads": sorted({1, all_threads}),
        "errors_vs_oracle": {"mace": m_mace.model_dump(), "ace": m_ace.model_dump()},
        "energy_mae_shifted_mev_per_atom": {"mace": e_mace, "ace": e_ace},
        "ace_vs_teacher": ace_vs_teacher.model_dump(),
        "sweep": [p.model_dump() for p in build.sweep],
        "speedup_mp0_medium_vs_ace": speedup_mp0,
        "speedup_mini_vs_ace": speedup_mini,
        "force_mae_ratio_ace_over_mace": ratio,
    }
    (RESULTS / "surrogate_speed.json").write_text(json.dumps(summary, indent=2))
    print(f"speed-up MACE/ACE = {speedup_mp0:.0f} at force MAE ratio ACE/MACE = {ratio:.2f}")


if __name__ == "__main__":
    main()
