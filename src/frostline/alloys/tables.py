"""Rich tables and markdown of an alloy campaign summary."""

from __future__ import annotations

from rich.table import Table

from frostline.alloys.schemas import AlloySummaryDoc, SystemSummary

COLUMNS = (
    "system",
    "state",
    "iter",
    "labels",
    "F MAE meV/Å (zero-shot → fine-tuned)",
    "E_f MAE meV/atom (found. → ft)",
    "E_hull MAE meV/atom (found. → ft)",
    "stable agree (found. → ft)",
    "C11/C12/C44 MAE GPa (ft)",
    "C MAE GPa (found.)",
)


def _f(x, digits: int = 1) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _arrow(row: SystemSummary, key: str, digits: int = 1, scale: float = 1.0) -> str:
    found = row.errors.get("foundation")
    ft = row.errors.get("finetuned")
    a = getattr(found, key) * scale if found else None
    b = getattr(ft, key) * scale if ft else None
    return f"{_f(a, digits)} → {_f(b, digits)}" if found else _f(b, digits)


def _elastic(row: SystemSummary, model: str) -> str:
    err = row.errors.get(model)
    if not err or not err.elastic_mae_gpa:
        return "–"
    return "/".join(f"{err.elastic_mae_gpa[k]:.0f}" for k in ("C11", "C12", "C44"))


def summary_rows(summary: AlloySummaryDoc) -> list[list[str]]:
    """Table cells, one row per system (``COLUMNS`` order)."""
    rows = []
    for row in summary.systems:
        rows.append(
            [
                row.system,
                f"{row.state} ({row.stop_reason})" if row.stop_reason else str(row.state),
                str(row.iterations),
                str(row.labels_spent),
                f"{_f(row.zero_shot_force_mae_mev_per_a, 0)} → {_f(row.force_mae_mev_per_a, 0)}",
                _arrow(row, "formation_energy_mae_mev"),
                _arrow(row, "e_above_hull_mae_mev"),
                _arrow(row, "stability_agreement", 2),
                _elastic(row, "finetuned"),
                _elastic(row, "foundation"),
            ]
        )
    return rows


def summary_table(summary: AlloySummaryDoc) -> Table:
    """Rich table: per system labels, iterations, force and property errors, converged."""
    table = Table(title=f"alloy campaign {summary.campaign} — oracle {summary.oracle}")
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("system", "state") else "right")
    for cells in summary_rows(summary):
        table.add_row(*cells)
    if summary.plots:
        table.caption = "plots: " + ", ".join(summary.plots)
    return table


SPOT_COLUMNS = ("system", "reference", "n", "|F| meV/Å")
CALCULATORS = ("oracle", "finetuned", "foundation")


def spot_check_rows(summary: AlloySummaryDoc) -> list[list[str]]:
    """Spot checks per system: force MAE (meV/Å) and stress MAE (GPa) against the reference,
    for the campaign oracle, the fine-tuned committee and the foundation."""
    rows = []
    for row in summary.systems:
        spot = row.spot_checks
        if spot is None:
            continue
        cells = [row.system, spot.reference, str(spot.n_structures)]
        cells.append(_f(spot.reference_force_scale_mev_per_a, 0))
        cells += [_f(spot.force_mae_mev_per_a.get(c), 0) for c in CALCULATORS]
        cells += [_f(spot.stress_mae_gpa.get(c), 2) for c in CALCULATORS]
        if spot.failures:
            cells[2] += f" ({len(spot.failures)} failed)"
        rows.append(cells)
    return rows


def spot_check_table(summary: AlloySummaryDoc) -> Table | None:
    """Rich table of the spot checks (None when the campaign ran none)."""
    rows = spot_check_rows(summary)
    if not rows:
        return None
    table = Table(title="spot checks against the reference oracle")
    columns = [*SPOT_COLUMNS]
    columns += [f"F MAE {c}" for c in CALCULATORS] + [f"σ MAE GPa {c}" for c in CALCULATORS]
    for col in columns:
        table.add_column(col, justify="left" if col in ("system", "reference") else "right")
    for cells in rows:
        table.add_row(*cells)
    return table


def summary_markdown(summary: AlloySummaryDoc) -> str:
    """The same table as markdown (for the README)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells) + " |" for cells in summary_rows(summary)]
    return "\n".join(lines)
