"""When a campaign stops."""

from __future__ import annotations

from frostline.config import ConvergenceConfig


def stop_reason(
    convergence: ConvergenceConfig,
    iteration: int,
    accurate_fraction: float,
    n_labels_spent: int,
    n_selectable: int,
) -> str | None:
    """Why the campaign stops after exploring with the models of ``iteration`` (None: go on).

    Checked in order: converged (accurate fraction reached), label budget spent, maximum number
    of fine-tunes reached, nothing left to label.
    """
    if accurate_fraction >= convergence.accurate_fraction:
        return "converged"
    if n_labels_spent >= convergence.label_budget:
        return "label budget spent"
    if iteration + 1 >= convergence.max_iterations:
        return "max iterations"
    if n_selectable == 0:
        return "no candidates to label"
    return None
