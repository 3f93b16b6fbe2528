"""A surrogate's verdict from its stored document: ``ok``, ``target missed`` or ``failed``.

A surrogate whose MD stability check failed (or whose check recorded failures) is ``failed``:
``frostline status`` and ``frostline models list`` show it, and ``models export`` refuses it
unless ``--allow-failed`` is given. One that missed its accuracy target is usable but flagged
(``target missed``, a warning on export). Older documents without the new fields are judged
by what they have (``stability.stable``, ``target_met``).
"""

from __future__ import annotations

from typing import Any

OK, TARGET_MISSED, FAILED, UNCHECKED = "ok", "target missed", "failed", "unchecked"


class SurrogateRejected(ValueError):
    """A failed surrogate was about to be exported as if it were good."""


def surrogate_failures(doc: dict[str, Any]) -> list[str]:
    """Why a stored surrogate failed its checks (empty: it passed or was not checked)."""
    section = doc.get("surrogate") or {}
    stability = section.get("stability") or {}
    failures = list(stability.get("failures") or [])
    if stability and not stability.get("stable", True) and not failures:
        failures.append("MD stability check failed")
    return failures


def surrogate_verdict(doc: dict[str, Any]) -> str | None:
    """``failed`` / ``target missed`` / ``unchecked`` / ``ok`` for a surrogate, else ``None``."""
    if doc.get("kind") != "ace-surrogate":
        return None
    section = doc.get("surrogate") or {}
    if surrogate_failures(doc):
        return FAILED
    if section.get("target_met") is False:
        return TARGET_MISSED
    if not section.get("stability"):
        return UNCHECKED
    return OK


def surrogate_summary(doc: dict[str, Any]) -> dict[str, Any]:
    """The figures ``frostline status`` prints for one surrogate."""
    section = doc.get("surrogate") or {}
    stability = section.get("stability") or {}
    vs_teacher = section.get("vs_teacher") or {}
    return {
        "model_id": doc.get("model_id"),
        "verdict": surrogate_verdict(doc),
        "failures": surrogate_failures(doc),
        "target_met": section.get("target_met"),
        "force_mae_vs_teacher_mev_per_a": vs_teacher.get("force_mae_mev_per_a"),
        "force_mae_beyond_teacher_data_mev_per_a": (section.get("vs_teacher_beyond") or {}).get(
            "force_mae_mev_per_a"
        ),
        "force_mae_vs_oracle_mev_per_a": (doc.get("metrics") or {}).get("force_mae_mev_per_a"),
        "mean_temperature_k": stability.get("mean_temperature_k"),
        "target_temperature_k": stability.get("temperature_k"),
        "min_distance_a": stability.get("min_distance_a"),
        "speedup_vs_teacher": section.get("speedup_vs_teacher"),
        "grade": section.get("grade"),
    }


def surrogate_line(summary: dict[str, Any]) -> str:
    """One line for people: verdict, reasons and the main figures (rich markup)."""
    verdict = summary["verdict"]
    colour = {FAILED: "red", TARGET_MISSED: "yellow", UNCHECKED: "yellow"}.get(verdict, "green")
    parts = [f"surrogate {summary['model_id']}: [bold {colour}]{verdict}[/]"]
    if summary["failures"]:
        parts.append("(" + "; ".join(summary["failures"]) + ")")
    figures = []
    if summary.get("force_mae_vs_oracle_mev_per_a") is not None:
        figures.append(f"validation F MAE {summary['force_mae_vs_oracle_mev_per_a']:.1f} meV/Å")
    if summary.get("force_mae_vs_teacher_mev_per_a") is not None:
        figures.append(f"F MAE vs teacher {summary['force_mae_vs_teacher_mev_per_a']:.1f} meV/Å")
    if summary.get("force_mae_beyond_teacher_data_mev_per_a") is not None:
        beyond = summary["force_mae_beyond_teacher_data_mev_per_a"]
        figures.append(f"{beyond:.1f} beyond the teacher data")
    if summary.get("mean_temperature_k") is not None:
        figures.append(
            f"MD {summary['mean_temperature_k']:.0f} K at {summary['target_temperature_k']:.0f} K"
            f" target, closest {summary['min_distance_a']:.2f} Å"
        )
    grade = summary.get("grade") or {}
    if grade.get("threshold") is not None:
        figures.append(
            f"grade threshold {grade['threshold']:.1f} (false alarms "
            f"{100 * grade['false_alarm_rate']:.0f} %, misses {100 * grade['miss_rate']:.0f} %)"
        )
    if summary.get("speedup_vs_teacher"):
        figures.append(f"{summary['speedup_vs_teacher']:.0f}x the teacher")
    return " ".join(parts) + (" — " + ", ".join(figures) if figures else "")


def check_exportable(doc: dict[str, Any], allow_failed: bool = False) -> str | None:
    """Raise ``SurrogateRejected`` for a failed surrogate (unless ``allow_failed``); return a
    warning for one exported anyway or one that missed its target, else ``None``.
    """
    verdict = surrogate_verdict(doc)
    if verdict == FAILED:
        reasons = "; ".join(surrogate_failures(doc))
        if not allow_failed:
            raise SurrogateRejected(
                f"surrogate {doc.get('model_id')} failed its checks ({reasons}); "
                "pass --allow-failed to export it anyway"
            )
        return f"exporting FAILED surrogate {doc.get('model_id')} ({reasons})"
    if verdict == TARGET_MISSED:
        section = doc.get("surrogate") or {}
        return (
            f"surrogate {doc.get('model_id')} missed its accuracy target "
            f"({section.get('target_force_mae_mev_per_a')} meV/Å vs the teacher)"
        )
    return None
