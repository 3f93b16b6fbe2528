"""Rich tables of campaign status."""

from __future__ import annotations

from rich import box
from rich.table import Table

from frostline.schemas import LOSS_OVERRULE_FACTOR


def _fmt(x, digits: int = 1) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


# columns of the status table shown without --wide (100 columns), with their two-line headers
COMPACT_STATUS = {
    "iter": "iter",
    "labelled": "labelled",
    "selected": "selected",
    "frames (acc/unc/fail)": "frames\nacc/unc/fail",
    "accurate": "accurate",
    "E MAE meV/atom": "E MAE\nmeV/atom",
    "F MAE meV/Å": "F MAE\nmeV/Å",
    "freeze": "freeze",
    "freeze, lr": "freeze, lr",
    "wall time s": "wall\ntime s",
}


def status_table(status: dict, wide: bool = True) -> Table:
    """One row per iteration: labels, selection, validation errors, accurate fraction, time.

    ``wide=False``: the columns of ``COMPACT_STATUS`` only (fits 100 columns of a log or pipe).
    """
    title = f"campaign {status['campaign']} — {status['state']}" + (
        f" ({status['stop_reason']})" if status.get("stop_reason") else ""
    )
    by_element = any(len(it.get("force_mae_by_element") or {}) > 1 for it in status["iterations"])
    rates = any(len(_swept_rates(it)) > 1 for it in status["iterations"])  # a rate sweep ran
    columns = {}
    for it in status["iterations"]:
        times = it.get("wall_time_s") or {}
        row = {
            "iter": str(it["index"]),
            "labelled": _fmt(it["n_labelled"]),
            "selected": _fmt(it["n_selected"]),
            "new labels": _fmt(it["n_new_labels"]),
            "frames (acc/unc/fail)": f"{it['n_accurate']}/{it['n_uncertain']}/"
            f"{it['n_failed_frames']}",
            "accurate": f"{100 * it['accurate_fraction']:.0f} %",
            "E MAE meV/atom": _fmt(it["energy_mae_mev_per_atom"]),
            "F MAE meV/Å": _fmt(it["force_mae_mev_per_a"]),
            **(
                {"F MAE by element": element_cell(it.get("force_mae_by_element"))}
                if by_element
                else {}
            ),
            ("freeze, lr" if rates else "freeze"): _freeze_cell(it, rates),
            "improving at cap": _training_cell(it.get("training")),
            "wall time s": _fmt(times.get("total", sum(times.values())), 0),
        }
        for key, cell in row.items():
            columns.setdefault(key, []).append(cell)
    if not columns:  # no iteration yet: the headers only
        columns = dict.fromkeys(COMPACT_STATUS if not wide else _STATUS_HEADERS, [])
    return _table(title, columns, wide, COMPACT_STATUS, _status_caption(status))


_STATUS_HEADERS = (
    "iter", "labelled", "selected", "new labels", "frames (acc/unc/fail)", "accurate",
    "E MAE meV/atom", "F MAE meV/Å", "freeze", "improving at cap", "wall time s",
)  # fmt: skip


TEXT_COLUMNS = ("F MAE by element", "filter reasons", "calibration (err = a + b·std)")


def _table(
    title: str, columns: dict[str, list[str]], wide: bool, compact: dict, caption: str | None
) -> Table:
    """A right-aligned table of ``columns``; not ``wide``: only those in ``compact``, renamed."""
    table = Table(title=title, caption=caption, box=box.HEAVY_HEAD if wide else box.SIMPLE_HEAD)
    keys = [k for k in columns if wide or k in compact]
    for key in keys:
        justify = "left" if key in TEXT_COLUMNS else "right"
        table.add_column(key if wide else compact[key], justify=justify, overflow="fold")
    n_rows = max((len(v) for v in columns.values()), default=0)
    for i in range(n_rows):
        table.add_row(*(columns[k][i] for k in keys))
    return table


def _status_caption(status: dict) -> str | None:
    """The zero-shot line, and why the campaign is not converged when its uncertainty calls
    the frames accurate but the validation errors do not agree."""
    lines = [_zero_shot_caption(status), _conformal_caption(status)]
    note = status["iterations"][-1].get("convergence_note") if status["iterations"] else None
    if note:
        lines.append(f"not converged: {note}")
    return "\n".join(x for x in lines if x) or None


def _zero_shot_caption(status: dict) -> str | None:
    zs = status.get("zero_shot_force_mae_mev_per_a")
    if zs is None:
        return None
    return (
        f"foundation zero-shot on the same validation set: F MAE {zs:.1f} meV/Å, "
        f"E MAE {_fmt(status.get('zero_shot_energy_mae_mev_per_atom'))} meV/atom "
        "(per-element shift)"
    )


def conformal_line(cal: dict) -> str:
    """One line of a last-layer calibration: conformal multiplier, per-element scales and the
    observed coverage of the bound on the fitted frames (or why nothing was fitted)."""
    conformal = cal.get("conformal") or {}
    if conformal.get("quantile") is None:
        return f"no bound: {conformal.get('note') or cal.get('note') or 'not fitted'}"
    scales = " · ".join(f"{z} {a:.3g}" for z, a in sorted(conformal["element_scales"].items()))
    nominal = 100 * conformal.get("coverage", 0.9)
    observed = cal.get("coverage_observed")
    covered = "–" if observed is None else f"{100 * observed:.0f} %"
    text = (
        f"q {conformal['quantile']:.3g}, scales {scales} eV/Å, {nominal:.0f} % bound covers "
        f"{covered} of {conformal.get('n_frames', cal.get('n_points'))} frames"
    )
    if cal.get("coverage_previous_fit") is not None:
        text += f" (previous fit: {100 * cal['coverage_previous_fit']:.0f} % of this batch)"
    return text


def _conformal_caption(status: dict) -> str | None:
    """The latest last-layer calibration in one line: the latest fitted one, else the latest
    attempted on labelled frames (None: the campaign has none)."""
    cals = [(it["index"], it.get("calibration") or {}) for it in status["iterations"]]
    cals = [(i, c) for i, c in cals if (c.get("conformal") or {}).get("n_frames")]
    fitted = [(i, c) for i, c in cals if c["conformal"].get("quantile") is not None]
    for index, cal in (fitted or cals)[-1:]:
        return f"last-layer calibration (iteration {index}): {conformal_line(cal)}"
    return None


def element_cell(by_element: dict[str, float] | None) -> str:
    """ "Cu 139.8 · H 201.1": force MAE per element, worst first ("–": not recorded)."""
    if not by_element:
        return "–"
    ranked = sorted(by_element.items(), key=lambda kv: -kv[1])
    return " · ".join(f"{el} {mae:.1f}" for el, mae in ranked)


def _swept_rates(iteration: dict) -> list[float]:
    """The learning rates this iteration's sweep tried (none recorded before rates were)."""
    return sorted({p["lr"] for p in iteration.get("freeze_sweep") or [] if p.get("lr")})


def _freeze_cell(iteration: dict, rates: bool = False) -> str:
    """ "f0": the level this iteration fine-tuned at; "f0 (swept 0/5/6)": chosen by a sweep here;
    ``rates`` (the campaign swept learning rates): "f0 lr 0.002 (swept 0/5/6, lr 0.002/0.01)"."""
    level = iteration.get("freeze_level")
    if level is None:
        return "–"
    swept = sorted({p["freeze_level"] for p in iteration.get("freeze_sweep") or []})
    cell = f"f{level}"
    strategy = iteration.get("finetune_strategy") or "frozen"
    if strategy != "frozen":
        cell = "lora" if strategy == "lora" else f"f{level} replay"
    if rates and iteration.get("finetune_lr") is not None:
        cell += f" lr {iteration['finetune_lr']:g}"
    parts = ["/".join(map(str, swept))] if len(swept) > 1 or (swept and not rates) else []
    if rates and len(tried := _swept_rates(iteration)) > 1:
        parts.append("lr " + "/".join(f"{r:g}" for r in tried))
    return cell + (f" (swept {', '.join(parts)})" if parts else "")


def _training_cell(training: dict | None) -> str:
    """ "2/4 (cap 40)": members that ended at the epoch cap still improving, of the committee."""
    if not training:
        return "–"
    return f"{training['still_improving']}/{training['members']} (cap {training['max_epochs']})"


def training_hints(status: dict) -> list[str]:
    """Advice from how the last committee's trainings ended (capped still improving, failed)."""
    last = next(
        (it["training"] for it in reversed(status["iterations"]) if it.get("training")), None
    )
    hints = []
    if last and last["still_improving"]:
        hints.append(
            f"{last['still_improving']} of {last['members']} members of the last committee ended "
            f"at the epoch cap ({last['max_epochs']}) still improving: raise finetune.epochs, or "
            "set finetune.patience (e.g. 30) with a higher cap, so members train to convergence"
        )
    if last and last.get("never_improved"):
        retried = last.get("retrained", 0)
        advice = (
            "even after retries with other seeds and lower lr: check the newest labels"
            if retried
            else "check the newest labels, and set finetune.retrain_failed (e.g. 2) to retrain "
            "such members with another seed and a lower lr"
        )
        hints.append(
            f"{last['never_improved']} of {last['members']} members of the last committee kept "
            "their first epoch (their checkpoint loss never improved on it: a diverged training, "
            "or a holdout ruled by a few high-force structures); their predictions "
            f"are poor, {advice}"
        )
    if last and last.get("loss_overruled_forces"):
        hints.append(
            f"{last['loss_overruled_forces']} of {last['members']} members of the last committee "
            f"kept an epoch whose force MAE on its checkpoint structures was over "
            f"{LOSS_OVERRULE_FACTOR:g}x the lowest an epoch reached (the loss that chose it was "
            "ruled by a few high-force structures): consider finetune.loss: l1l2, or "
            "checkpoint_on: validation (more structures choose the epoch)"
        )
    return hints


_WINDOW_UNIT = {"committee": "eV/Å", "descriptor": "(descriptor)", "last-layer": "(LLPR)"}

FATE_COLUMNS = (
    "selected",
    "accurate",
    "duplicate",
    "over budget",
    "too uncertain",
    "failed filter",
    "not needed",
)


COMPACT_FATES = {
    "iter": "iter",
    "trust window": "trust window",
    "selected": "sel.",
    "accurate": "accur.",
    "duplicate": "dupl.",
    "over budget": "over\nbudget",
    "too uncertain": "too\nuncert.",
    "failed filter": "failed\nfilter",
    "not needed": "not\nneeded",
}


def fates_table(status: dict, wide: bool = True) -> Table:
    """One row per iteration: the fate of every explored frame, trust window, calibration.

    ``wide=False``: the fates and the window only (filter reasons and the calibration fit are in
    ``--wide`` and ``--json``).
    """
    columns: dict[str, list[str]] = {}
    for it in status["iterations"]:
        fates = it.get("fates") or {}
        window = it.get("trust_window")
        unit = _WINDOW_UNIT[it.get("uncertainty") or "committee"]  # None: recorded before the key
        cells = {col: str(fates.get(col, 0)) for col in FATE_COLUMNS}
        if it.get("n_topped_up"):  # stratify: a quota filled from its stratum's accurate frames
            cells["selected"] += f" ({it['n_topped_up']} topped up)"
        reasons = ", ".join(f"{k} {v}" for k, v in (it.get("filter_reasons") or {}).items())
        row = {
            "iter": str(it["index"]),
            "trust window": f"{window[0]:.3f}–{window[1]:.3f} {unit}" if window else "–",
            **cells,
            "filter reasons": reasons or "–",
            "calibration (err = a + b·std)": _calibration_cell(it.get("calibration") or {}),
        }
        for key, cell in row.items():
            columns.setdefault(key, []).append(cell)
    return _table("explored frames by fate", columns, wide, COMPACT_FATES, None)


def _calibration_cell(cal: dict) -> str:
    if cal.get("conformal"):
        return conformal_line(cal)
    if cal.get("slope") is None:
        return cal.get("note") or "–"
    text = f"a={cal['intercept']:.2f} b={cal['slope']:.2f} R²={cal['r2']:.2f} (n={cal['n_points']})"
    if cal.get("trust_lo") is not None:
        text += f" → lo {cal['trust_lo']:.3f}"
    return text


STAGES = ("finetune", "explore", "select", "label", "calibrate", "orchestration")


def orchestration_share(status: dict) -> float | None:
    """Fraction of the iterations' wall time spent outside the stages (jobflow + store)."""
    total = sum((it.get("wall_time_s") or {}).get("total", 0.0) for it in status["iterations"])
    orch = sum(
        (it.get("wall_time_s") or {}).get("orchestration", 0.0) for it in status["iterations"]
    )
    return orch / total if total > 0 else None


def timing_table(status: dict) -> Table:
    """One row per iteration: wall time of each stage and the orchestration rest."""
    table = Table(title="wall time per stage (s)")
    table.add_column("iter", justify="right")
    for col in (*STAGES, "total"):
        table.add_column(col, justify="right")
    sums = dict.fromkeys((*STAGES, "total"), 0.0)
    for it in status["iterations"]:
        times = it.get("wall_time_s") or {}
        for key in sums:
            sums[key] += times.get(key, 0.0)
        table.add_row(str(it["index"]), *(_fmt(times.get(k), 1) for k in (*STAGES, "total")))
    table.add_row("all", *(_fmt(sums[k], 1) for k in (*STAGES, "total")), style="bold")
    share = orchestration_share(status)
    if share is not None:
        table.caption = (
            f"orchestration share (jobflow + store outside the stages): {100 * share:.1f} %"
        )
    return table
