"""Uncertainty-biased vs thermal exploration MD: does the bias reach the H2 dissociation path?

The model is the uncertainty benchmark's member 0 (mini-64 fine-tuned on the archived
random-single campaign's first iterations, ``results/uncertainty_quality/models``); its
last-layer (LLPR, per-element covariance) state is fitted on those training labels and its
conformal calibration on the later labels (as ``select.uncertainty: last-layer`` does after a
labelled batch). From the same H2/Cu(111) starts (the molecule at its bond length, 1.5-3 Å
above the surface) and seeds, at the archived campaign's middle temperature (800 K;
``--temperatures``) and MD settings (200 steps, a frame every 10, Langevin 0.02 1/fs, 1 fs),
thermal MD and uncertainty-biased MD (``explore.bias: uncertainty``, the calibration's
per-element scales) run with the campaign's calibrated stop (``abort_error_factor`` x 0.3
eV/Å; ``--abort-factor 1e9``: none). Per mode: the fraction of sampled frames whose H-H
distance exceeds 1.2 Å (the dissociation path), the
largest frame score ``max_i a_z σ_i`` (eV/Å) and the trajectories stopped early.

    OMP_NUM_THREADS=2 .venv/bin/python workflows/benchmarks/biased_exploration.py
        [--strength 1.0] [--width 0.3] [--starts 4]

Last line: ``H-H > 1.2 Å: biased X % vs thermal Y % of frames; max σ biased A vs thermal B eV/Å``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
OUT = HERE / "results" / "biased_exploration"
MODEL = HERE / "results" / "uncertainty_quality" / "models" / "member0.model"
TARGET = 0.3  # eV/Å: the campaign's target_force_error
DISSOCIATED = 1.2  # Å: H-H distance counted as on the dissociation path
console = Console(width=120)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strength", type=float, default=1.0, help="explore.bias_strength, eV")
    parser.add_argument("--width", type=float, default=0.3, help="explore.bias_width, eV/Å")
    parser.add_argument("--abort-factor", type=float, default=10.0, help="abort_error_factor")
    parser.add_argument("--starts", type=int, default=4, help="starts per temperature")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[800.0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", type=Path, default=OUT)
    return parser


def calibrated_state(calc):
    """(LLPR state on the training labels, conformal fit on the calibration labels)."""
    from uncertainty_quality import campaign_sets, reference_forces

    from frostline.select.uncertainty import LastLayerUncertainty, atom_force_errors
    from frostline.select.uncertainty.calibration import fit_conformal

    train_labels, calibration_labels = campaign_sets(5)
    train = [x.to_atoms() for x in train_labels]
    method = LastLayerUncertainty.fit(calc, train, "atoms", 1e-4)
    frames = [x.to_atoms() for x in calibration_labels]
    predictions = method.predict(frames)
    errors = [atom_force_errors(p.forces, reference_forces(a))
              for p, a in zip(predictions, frames, strict=True)]  # fmt: skip
    fit = fit_conformal("last-layer", [p.scores for p in predictions], errors, 0.9)
    return method.llpr, fit


def hh_distance(atoms) -> float:
    h = [i for i, z in enumerate(atoms.get_chemical_symbols()) if z == "H"]
    return float(atoms.get_distance(h[0], h[1], mic=True))


def trajectory(calc, llpr, fit, start, temperature, seed, args, biased: bool) -> dict:
    """One run from ``start``: per frame H-H distance and frame score; why it stopped."""
    from frostline.explore.bias import LastLayerBias
    from frostline.explore.samplers import langevin_frames
    from frostline.select.uncertainty.calibration import FrameScores
    from frostline.select.uncertainty.loop import ErrorBound, LastLayerScorer

    model = calc.models[0]
    scorer = LastLayerScorer(model, llpr)
    scales = fit.element_scales
    bias = LastLayerBias(model, llpr, args.strength, args.width, scales) if biased else None
    bound = ErrorBound(conformal=fit)
    try:
        frames = list(
            langevin_frames(start, calc, temperature, args.steps, 10, seed=seed, scorer=scorer,
                            error_bound=bound, max_error=args.abort_factor * TARGET, bias=bias)
        )  # fmt: skip
    finally:
        scorer.close()
        if bias is not None:
            bias.close()
    return {
        "hh": [hh_distance(f.atoms) for f in frames],
        "score": [
            fit.frame_score(FrameScores(atom=f.atom_scores, symbols=f.atoms.get_chemical_symbols()))
            for f in frames
        ],  # fmt: skip
        "stop": frames[-1].stop_reason if frames else None,
    }


def summary(runs: list[dict]) -> dict:
    hh = np.concatenate([r["hh"] for r in runs])
    score = np.concatenate([r["score"] for r in runs])
    return {
        "frames": len(hh),
        "dissociated": float(np.mean(hh > DISSOCIATED)),
        "max_hh": float(hh.max()),
        "max_score": float(score.max()),
        "median_score": float(np.median(score)),
        "stopped": sum(r["stop"] is not None for r in runs),
        "runs": len(runs),
    }


def print_report(report: dict) -> None:
    table = Table(title="biased vs thermal exploration MD (H2/Cu(111), same starts and seeds)")
    for col in ("T (K)", "mode", "frames", f"H-H > {DISSOCIATED} Å", "max H-H (Å)",
                "max σ (eV/Å)", "median σ", "stopped"):  # fmt: skip
        table.add_column(col, justify="right")
    for key, row in report["rows"].items():
        temperature, mode = key.split("/")
        table.add_row(temperature, mode, str(row["frames"]), f"{100 * row['dissociated']:.1f} %",
                      f"{row['max_hh']:.2f}", f"{row['max_score']:.3f}",
                      f"{row['median_score']:.3f}", f"{row['stopped']}/{row['runs']}")  # fmt: skip
    console.print(table)
    b, t = report["total"]["biased"], report["total"]["thermal"]
    print(
        f"H-H > {DISSOCIATED} Å: biased {100 * b['dissociated']:.1f} % vs thermal "
        f"{100 * t['dissociated']:.1f} % of frames; max σ biased {b['max_score']:.3f} vs thermal "
        f"{t['max_score']:.3f} eV/Å"
    )


def main() -> None:
    args = build_parser().parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from frostline.finetune.committee import committee_calculator
    from frostline.structures import cu111_slab, h2_on_slab

    calc = committee_calculator([MODEL], device="cpu")
    llpr, fit = calibrated_state(calc)
    console.print(f"calibration: q {fit.quantile:.3f}, scales {fit.element_scales}")
    rng = np.random.default_rng(2026)
    starts = [  # the molecule at its bond length (0.74 Å), above the surface
        h2_on_slab(cu111_slab(), rng, height=(1.5, 3.0), bond=(0.72, 0.78))
        for _ in range(args.starts)
    ]
    partial = args.out / "partial.json"  # finished trajectories survive an interruption
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    saved = json.loads(partial.read_text()) if partial.exists() else {}
    runs: dict[str, list[dict]] = saved.get("runs", {}) if saved.get("settings") == settings else {}
    for temperature in args.temperatures:
        for k, start in enumerate(starts):
            for mode in ("thermal", "biased"):
                key = f"{temperature:g}/{mode}"
                if len(runs.get(key, [])) > k:
                    continue
                t0 = time.perf_counter()
                run = trajectory(
                    calc, llpr, fit, start, temperature, 100 + k, args, mode == "biased"
                )
                runs.setdefault(key, []).append(run)
                partial.write_text(json.dumps({"settings": settings, "runs": runs}))
                console.print(f"{temperature:g} K start {k} {mode}: {len(run['hh'])} frames, "
                              f"max H-H {max(run['hh']):.2f} Å, stop {run['stop']} "
                              f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "settings": settings,
        "calibration": fit.model_dump(exclude={"ratios"}),
        "rows": {key: summary(r) for key, r in runs.items()},
        "total": {
            mode: summary([r for key, rs in runs.items() if key.endswith(mode) for r in rs])
            for mode in ("thermal", "biased")
        },
        "runs": runs,
    }
    (args.out / "results.json").write_text(json.dumps(report, indent=1))
    partial.unlink()
    print_report(report)


if __name__ == "__main__":
    main()
