"""Rich tables of campaign status."""

from __future__ import annotations

from rich.table import Table

from frostline.schemas import LOSS_OVERRULE_FACTOR


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
    by_element = any(len(it.get("force_mae_by_element") or {}) > 1 for it in status["iterations"])
    rates = any(len(_swept_rates(it)) > 1 for it in status["iterations"])  # a rate sweep ran
    for col in (
        "iter",
        "labelled",
        "selected",
        "new labels",
        "frames (acc/unc/fail)",
        "accurate",
        "E MAE meV/atom",
        "F MAE meV/Å",
        *(["F MAE by element"] if by_element else []),
        "freeze, lr" if rates else "freeze",
        "improving at cap",
        "wall time s",
    ):
        table.add_column(col, justify="right")
    for it in status["iterations"]:
        times = it.get("wall_time_s") or {}
        wall = times.get("total", sum(times.values()))
        table.add_row(
            str(it["index"]),
            _fmt(it["n_labelled"]),
            _fmt(it["n_selected"]),
            _fmt(it["n_new_labels"]),
            f"{it['n_accurate']}/{it['n_uncertain']}/{it['n_failed_frames']}",
            f"{100 * it['accurate_fraction']:.0f} %",
            _fmt(it["energy_mae_mev_per_atom"]),
            _fmt(it["force_mae_mev_per_a"]),
            *([element_cell(it.get("force_mae_by_element"))] if by_element else []),
            _freeze_cell(it, rates),
            _training_cell(it.get("training")),
            _fmt(wall, 0),
        )
    zs = status.get("zero_shot_force_mae_mev_per_a")
    if zs is not None:
        table.caption = (
            f"foundation zero-shot on the same validation set: F MAE {zs:.1f} meV/Å, "
            f"E MAE {_fmt(status.get('zero_shot_energy_mae_mev_per_atom'))} meV/atom "
            "(per-element shift)"
        )
    note = status["iterations"][-1].get("convergence_note") if status["iterations"] else None
    if note:  # the uncertainty calls the frames accurate, the validation errors do not agree
        warning = f"not converged: {note}"
        table.caption = f"{table.caption}\n{warning}" if table.caption else warning
    return table


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


_WINDOW_UNIT = {"committee": "eV/Å", "descriptor": "(descriptor)"}

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
    table.add_column("trust window", justify="right")
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
        unit = _WINDOW_UNIT[it.get("uncertainty") or "committee"]  # None: recorded before the key
        cells = {col: str(fates.get(col, 0)) for col in FATE_COLUMNS}
        if it.get("n_topped_up"):  # stratify: a quota filled from its stratum's accurate frames
            cells["selected"] += f" ({it['n_topped_up']} topped up)"
        table.add_row(
            str(it["index"]),
            f"{window[0]:.3f}–{window[1]:.3f} {unit}" if window else "–",
            *cells.values(),
            reasons or "–",
            cal_text,
        )
    return table


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
