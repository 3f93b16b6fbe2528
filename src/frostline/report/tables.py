"""Rich tables of campaign status."""

from __future__ import annotations

from rich.table import Table


def _fmt(x, digits: int = 1) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def status_table(status: dict) -> Table:
    """One row per iteration: labels, selection, validation errors, accurate fraction, time."""
    title = f"campaign {status['campaign']} — {status['state']}" + (
        f" ({status['stop_reason']})" if status.get("stop_reason") else ""
    )
    table = Table(title=title)
    for col in (
        "iter",
        "labelled",
        "selected",
        "new labels",
        "frames (acc/unc/fail)",
        "accurate",
        "E MAE meV/atom",
        "F MAE meV/Å",
        "wall time s",
    ):
        table.add_column(col, justify="right")
    for it in status["iterations"]:
        wall = sum((it.get("wall_time_s") or {}).values())
        table.add_row(
            str(it["index"]),
            _fmt(it["n_labelled"]),
            _fmt(it["n_selected"]),
            _fmt(it["n_new_labels"]),
            f"{it['n_accurate']}/{it['n_uncertain']}/{it['n_failed_frames']}",
            f"{100 * it['accurate_fraction']:.0f} %",
            _fmt(it["energy_mae_mev_per_atom"]),
            _fmt(it["force_mae_mev_per_a"]),
            _fmt(wall, 0),
        )
    zs = status.get("zero_shot_force_mae_mev_per_a")
    if zs is not None:
        table.caption = (
            f"foundation zero-shot on the same validation set: F MAE {zs:.1f} meV/Å, "
            f"E MAE {_fmt(status.get('zero_shot_energy_mae_mev_per_atom'))} meV/atom "
            "(per-element shift)"
        )
    return table


FATE_COLUMNS = (
    "selected",
    "accurate",
    "duplicate",
    "over budget",
    "too uncertain",
    "failed filter",
    "not needed",
)


def fates_table(status: dict) -> Table:
    """One row per iteration: the fate of every explored frame, trust window, calibration."""
    table = Table(title="explored frames by fate")
    table.add_column("iter", justify="right")
    table.add_column("trust window eV/Å", justify="right")
    for col in FATE_COLUMNS:
        table.add_column(col, justify="right")
    table.add_column("filter reasons")
    table.add_column("calibration (err = a + b·std)")
    for it in status["iterations"]:
        fates = it.get("fates") or {}
        window = it.get("trust_window")
        cal = it.get("calibration") or {}
        if cal.get("slope") is not None:
            cal_text = (
                f"a={cal['intercept']:.2f} b={cal['slope']:.2f} R²={cal['r2']:.2f} "
                f"(n={cal['n_points']})"
            )
            if cal.get("trust_lo") is not None:
                cal_text += f" → lo {cal['trust_lo']:.3f}"
        else:
            cal_text = cal.get("note") or "–"
        reasons = ", ".join(f"{k} {v}" for k, v in (it.get("filter_reasons") or {}).items())
        table.add_row(
            str(it["index"]),
            f"{window[0]:.3f}–{window[1]:.3f}" if window else "–",
            *(str(fates.get(col, 0)) for col in FATE_COLUMNS),
            reasons or "–",
            cal_text,
        )
    return table
