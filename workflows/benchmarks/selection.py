"""Does frostline's selection buy fewer labels for the same accuracy? Three campaigns side by side.

Same foundation, oracle, seed structures, held-out validation set, label budget and loop
settings; only the selection differs:

- ``frostline``: diverse picking (uncertainty per cost x novelty), novelty gate against every
  label bought, trust window calibrated each iteration (``--calibration-picks`` of each batch
  drawn at random from all plausible frames, so the calibration is not fitted on high-std
  frames only);
- ``dpgen``: DP-GEN style, fixed trust levels (0.05 / 0.15 eV/Å), random picks in the window,
  no novelty gate;
- ``random``: random frames from the campaign's own explored pool (no committee);
- ``frostline-typical`` (only with ``--arms``): ``frostline`` with ``hi_reference: typical``
  (compare with ``--al-arm frostline-typical``).

Prints a table of force MAE on the fixed validation set versus labels spent, writes a PNG, and
last "labels needed to reach the target force MAE, AL / random = X" (goal <= 0.5), the target
being the best force MAE the random campaign reaches (or ``--target``). With ``--seeds N`` every
arm runs N times (campaign seed 0..N-1: seeds, committee, exploration and picks differ) and the
curves are averaged point by point before the ratio is taken.

    .venv/bin/python workflows/benchmarks/selection.py [--iterations 5] [--per-iteration 8]
        [--committee 2] [--calibration-picks 2] [--seeds 1]
        [--engine batched] [--dtype float32]   (exploration engine and MD precision, all arms)
        [--temperatures 300 800] [--starts 2] [--steps 120]
                                               (exploration pool: temperatures x starts x
                                                steps/10 frames per iteration, all arms)
        [--foundation mini-64]                 (the foundation every arm fine-tunes)
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import yaml

from frostline.config import parse_config
from frostline.flows.campaign import run_campaign
from frostline.registry.queries import campaign_status, open_campaign_dir
from frostline.report.plots import write_campaign_plots

DEMO = Path(__file__).resolve().parents[2] / "src" / "frostline" / "data" / "demo_h2_cu111.yaml"

ARMS = {
    "frostline": {"strategy": "diverse", "trust": "calibrated"},
    # the same, "too uncertain" measured against the model's current error, not the target
    "frostline-typical": {"strategy": "diverse", "trust": "calibrated", "hi_reference": "typical"},
    "dpgen": {
        "strategy": "dpgen",
        "trust": "fixed",
        "trust_lo": 0.05,
        "trust_hi": 0.15,
        "novelty_threshold": 0.0,
    },
    "random": {"strategy": "random", "trust": "fixed", "novelty_threshold": 0.0},
}


def arm_config(name: str, args: argparse.Namespace, seed: int = 0) -> dict:
    base = yaml.safe_load(DEMO.read_text())
    base["name"] = f"selection-{name}" + (f"-seed{seed}" if seed else "")
    base["seed"] = seed
    base["select"] = {**base.get("select", {}), **ARMS[name]}
    base["select"]["max_labels_per_iteration"] = args.per_iteration
    if name.startswith("frostline"):
        base["select"]["calibration_picks"] = args.calibration_picks
    base["finetune"]["epochs"] = args.epochs
    base["foundation"] = args.foundation
    base["finetune"]["committee_size"] = args.committee
    base["explore"] = {
        **base["explore"],
        "engine": args.engine,
        "dtype": args.dtype,
        "temperatures": args.temperatures,
        "starts_per_temperature": args.starts,
        "steps": args.steps,
    }
    base["convergence"] = {
        "accurate_fraction": 1.0,  # never stop early: compare whole curves
        "max_iterations": args.iterations,
        "label_budget": 10_000,
    }
    base["distill"] = {"enabled": False}
    return base


def curve(folder: Path) -> list[tuple[int, float]]:
    """(training labels, validation force MAE meV/Å) of every iteration's committee."""
    status = campaign_status(open_campaign_dir(folder))
    return [(it["n_labelled"], it["force_mae_mev_per_a"]) for it in status["iterations"]]


def mean_curve(curves: list[list[tuple[int, float]]]) -> list[tuple[int, float]]:
    """Point-by-point mean over seeds (iterations in common; label counts averaged too)."""
    n = min(len(c) for c in curves)
    labels = [round(float(np.mean([c[i][0] for c in curves]))) for i in range(n)]
    maes = [float(np.mean([c[i][1] for c in curves])) for i in range(n)]
    return list(zip(labels, maes, strict=True))


def labels_to_reach(points: list[tuple[int, float]], target: float) -> float | None:
    """Labels at which the (linearly interpolated) curve first reaches ``target``."""
    for (n0, e0), (n1, e1) in zip(points, points[1:], strict=False):
        if e0 <= target:
            return float(n0)
        if e1 <= target:
            return n0 + (n1 - n0) * (e0 - target) / (e0 - e1)
    if points and points[-1][1] <= target:
        return float(points[-1][0])
    return None


def plot(curves: dict[str, list[tuple[int, float]]], target: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, pts in curves.items():
        ax.plot(*zip(*pts, strict=True), "o-", label=name)
    ax.axhline(target, color="grey", ls="--", lw=1, label="target")
    ax.set_xlabel("training labels (oracle calls)")
    ax.set_ylabel("validation force MAE (meV/Å)")
    ax.set_title("selection strategies, H2/Cu(111), GFN1-xTB oracle")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--per-iteration", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument(
        "--foundation", default="mini", help="all arms: 'mini', 'mini-64' or a .model path"
    )
    parser.add_argument("--committee", type=int, default=2, help="committee size K (all arms)")
    parser.add_argument(
        "--calibration-picks", type=int, default=2, help="frostline arm: random picks per batch"
    )
    parser.add_argument("--seeds", type=int, default=1, help="repeat every arm with seeds 0..N-1")
    parser.add_argument(
        "--temperatures", type=float, nargs="+", default=[300, 800], help="exploration MD (K)"
    )
    parser.add_argument("--starts", type=int, default=2, help="MD starts per temperature")
    parser.add_argument("--steps", type=int, default=120, help="MD steps (a frame every 10)")
    parser.add_argument("--engine", default="batched", choices=["ase", "batched"])
    parser.add_argument("--dtype", default="float32", choices=["float64", "float32"])
    parser.add_argument("--target", type=float, default=None, help="meV/Å (default: random's best)")
    parser.add_argument("--out", type=Path, default=Path("workflows/benchmarks/results/selection"))
    parser.add_argument(
        "--arms", nargs="+", default=["frostline", "dpgen", "random"], choices=list(ARMS)
    )
    parser.add_argument(
        "--al-arm", default="frostline", choices=list(ARMS), help="the AL side of the ratio"
    )
    args = parser.parse_args()
    logging.getLogger("jobflow").setLevel(logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    curves = {}
    for name in args.arms:
        per_seed = []
        for seed in range(args.seeds):
            folder = args.out / (name if seed == 0 else f"{name}-seed{seed}")
            if not (folder / "campaign.yaml").exists():
                print(f"running {name} (seed {seed}) ...", flush=True)
                run_campaign(parse_config(arm_config(name, args, seed), name), folder, log=False)
            per_seed.append(curve(folder))
            status = campaign_status(open_campaign_dir(folder))
            write_campaign_plots(status, folder / "plots", status.get("target_force_error"))
        curves[name] = mean_curve(per_seed)
    target = args.target
    if target is None:
        target = min(e for _, e in curves.get("random", next(iter(curves.values()))))
    print("\nvalidation force MAE (meV/Å) at n training labels")
    for name, pts in curves.items():
        print(f"{name:<10} " + "  ".join(f"{n:>3}:{e:6.1f}" for n, e in pts))
    plot(curves, target, args.out / "selection.png")
    print(f"plot: {args.out / 'selection.png'}")
    need = {name: labels_to_reach(pts, target) for name, pts in curves.items()}
    for name, n in need.items():
        print(
            f"labels to reach {target:.1f} meV/Å, {name}: " + (f"{n:.1f}" if n else "not reached")
        )
    al, rnd = need.get(args.al_arm), need.get("random")
    ratio = al / rnd if al and rnd else float("nan")
    if not np.isfinite(ratio):
        print("(a strategy did not reach the target within its iterations)")
    print(f"labels needed to reach the target force MAE, AL / random = {ratio:.2f}")


if __name__ == "__main__":
    main()
