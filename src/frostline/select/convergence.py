"""When a campaign stops."""

from __future__ import annotations

from frostline.config import ConvergenceConfig


def stop_reason(
    convergence: ConvergenceConfig,
    iteration: int,
    accurate_fraction: float,
    n_labels_spent: int,
    n_selectable: int,
    validation_force_mae: float | None = None,
) -> str | None:
    """Why the campaign stops after exploring with the models of ``iteration`` (None: go on).

    Checked in order: converged (accurate fraction reached and, with
    ``convergence.max_validation_force_mae``, the committee's validation force MAE in meV/Å
    at or below it; an unknown validation error does not converge), label budget spent,
    maximum number of fine-tunes reached, nothing left to label.
    """
    limit = convergence.max_validation_force_mae
    accurate_enough = limit is None or (
        validation_force_mae is not None and validation_force_mae <= limit
    )
    if accurate_fraction >= convergence.accurate_fraction and accurate_enough:
        return "converged"
    if n_labels_spent >= convergence.label_budget:
        return "label budget spent"
    if iteration + 1 >= convergence.max_iterations:
        return "max iterations"
    if n_selectable == 0:
        return "no candidates to label"
    return None
