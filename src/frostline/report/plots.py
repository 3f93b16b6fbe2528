"""PNG plots of a campaign from its status document (``frostline status DIR --plots``).

- ``learning_curve.png``: validation force and energy MAE against training labels, with the
  foundation's zero-shot error on the same validation set;
- ``calibration.png``: committee max force std against the true max atomic force error of every
  freshly labelled structure, the fitted line per iteration, the target error and trust windows
  (``uncertainty: last-layer``: the element-scaled LLPR frame score and the conformal bound);
- ``fates.png``: what happened to every explored frame, per iteration;
- ``timing.png``: wall time per stage, per iteration.

Every function takes the ``campaign_status`` dict (the ``status --json`` document), so plots can
be redrawn from a saved JSON without the store.
"""

from __future__ import annotations

from pathlib import Path

from frostline.report.tables import FATE_COLUMNS, STAGES


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curve(status: dict, path: Path) -> Path | None:
    """Validation errors against training labels; None when no iteration has errors yet."""
    fig = learning_curve_figure(status)
    if fig is None:
        return None
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


def learning_curve_figure(status: dict):
    """The learning-curve figure: force (left axis) and energy (right axis) MAE with the
    foundation's zero-shot errors as dashed lines; the legend below the axes, off the points."""
    its = [it for it in status["iterations"] if it.get("force_mae_mev_per_a") is not None]
    if not its:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.6))
    n = [it["n_labelled"] for it in its]
    ax.plot(n, [it["force_mae_mev_per_a"] for it in its], "o-", color="C0", label="force")
    zero = status.get("zero_shot_force_mae_mev_per_a")
    if zero is not None:
        ax.axhline(zero, color="C0", ls="--", lw=1, label="force, foundation zero-shot")
    ax.set_xlabel("training labels")
    ax.set_ylabel("validation force MAE (meV/Å)", color="C0")
    handles, labels = ax.get_legend_handles_labels()
    energies = [it.get("energy_mae_mev_per_atom") for it in its]
    zero_e = status.get("zero_shot_energy_mae_mev_per_atom")
    if any(e is not None for e in energies) or zero_e is not None:
        ax2 = ax.twinx()
        ax2.plot(n, energies, "s-", color="C1", label="energy")
        if zero_e is not None:
            ax2.axhline(zero_e, color="C1", ls=":", lw=1, label="energy, foundation zero-shot")
        ax2.set_ylabel("validation energy MAE (meV/atom)", color="C1")
        more = ax2.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    ax.set_title(f"{status['campaign']}: learning curve")
    fig.tight_layout(rect=(0, 0.14, 1, 1))  # room below the axes for the legend
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    return fig


def calibration_title(campaign: str, cals: list[dict]) -> str:
    """What the calibration plot draws: shaded windows only where a window was derived, and why
    none was otherwise (e.g. error not growing with the std: a downward fit)."""
    derived = sum(c.get("trust_lo") is not None for c in cals)
    if any(c.get("conformal") for c in cals):  # last-layer: conformal bounds, not lines
        nominal = 100 * max((c.get("conformal") or {}).get("coverage", 0.9) for c in cals)
        if derived:
            return (
                f"{campaign}: last-layer calibration (lines: {nominal:.0f} % conformal bound; "
                f"shaded: trust window of {derived} fits)"
            )
        notes = sorted({c.get("note") or "no fit" for c in cals})
        return f"{campaign}: last-layer calibration (no bound: {'; '.join(notes)})"
    if derived:
        return f"{campaign}: committee calibration (shaded: trust window of {derived} fits)"
    notes = sorted({c.get("note") or "no fit" for c in cals})
    return f"{campaign}: committee calibration (no trust window: {'; '.join(notes)})"


def calibration_plot(status: dict, path: Path, target_error: float | None = None) -> Path | None:
    """Committee std vs true error with the fitted lines; None when nothing was calibrated."""
    cals = [(it["index"], it.get("calibration") or {}) for it in status["iterations"]]
    cals = [(i, c) for i, c in cals if c.get("stds")]
    if not cals:
        return None
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    top = max(max(c["stds"]) for _, c in cals)
    for k, (index, cal) in enumerate(cals):
        color = f"C{k % 10}"
        label = f"iteration {index}"
        if cal.get("r2") is not None:
            label += f" (R² {cal['r2']:.2f})"
        elif cal.get("coverage_observed") is not None:
            label += f" (covers {100 * cal['coverage_observed']:.0f} %)"
        ax.scatter(cal["stds"], cal["errors"], s=18, color=color, label=label)
        x = np.linspace(0.0, top * 1.05, 20)
        if cal.get("slope") is not None:
            ax.plot(x, cal["intercept"] + cal["slope"] * x, color=color, lw=1)
        elif (cal.get("conformal") or {}).get("quantile") is not None:
            ax.plot(x, cal["conformal"]["quantile"] * x, color=color, lw=1)  # bound q·u
        if cal.get("trust_lo") is not None:
            ax.axvspan(cal["trust_lo"], cal["trust_hi"], color=color, alpha=0.08)
    if target_error is not None:
        ax.axhline(target_error, color="k", ls="--", lw=1, label="target error")
    last_layer = any(c.get("conformal") for _, c in cals)
    ax.set_xlabel(
        "last-layer score max_i a_z σ_i (element-scaled, eV/Å)"
        if last_layer
        else "committee max atomic force std (eV/Å)"
    )
    ax.set_ylabel("true max atomic force error (eV/Å)")
    ax.set_title(calibration_title(status["campaign"], [c for _, c in cals]), fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _stacked_bars(its: list[dict], series: dict[str, list[float]], ylabel: str, title: str,
                  path: Path) -> Path:  # fmt: skip
    """One stacked bar per iteration, one colour per non-zero series; saved to ``path``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    x = [str(it["index"]) for it in its]
    bottom = [0.0] * len(its)
    for k, (name, values) in enumerate(series.items()):
        if any(values):
            ax.bar(x, values, bottom=bottom, label=name, color=f"C{k}")
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def fates_plot(status: dict, path: Path) -> Path | None:
    """Stacked bars: the fate of every explored frame per iteration."""
    its = [it for it in status["iterations"] if it.get("fates")]
    if not its:
        return None
    series = {f: [float(it["fates"].get(f, 0)) for it in its] for f in FATE_COLUMNS}
    title = f"{status['campaign']}: fate of explored frames"
    return _stacked_bars(its, series, "explored frames", title, path)


def timing_plot(status: dict, path: Path) -> Path | None:
    """Stacked bars: wall time per stage per iteration."""
    its = [it for it in status["iterations"] if (it.get("wall_time_s") or {}).get("total")]
    if not its:
        return None
    series = {st: [float(it["wall_time_s"].get(st, 0.0)) for it in its] for st in STAGES}
    title = f"{status['campaign']}: wall time per stage"
    return _stacked_bars(its, series, "wall time (s)", title, path)


def write_campaign_plots(
    status: dict, out_dir: Path, target_error: float | None = None
) -> list[Path]:
    """Write every plot the campaign has data for into ``out_dir``; return the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [
        learning_curve(status, out_dir / "learning_curve.png"),
        calibration_plot(status, out_dir / "calibration.png", target_error),
        fates_plot(status, out_dir / "fates.png"),
        timing_plot(status, out_dir / "timing.png"),
    ]
    return [p for p in written if p is not None]
