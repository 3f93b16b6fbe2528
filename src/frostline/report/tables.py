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
