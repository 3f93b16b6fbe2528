"""When a campaign stops, and why it may not call itself converged.

"Converged" is never decided on agreement alone: the explored frames must be accurate by the
(calibrated) uncertainty *and* the validation set must agree, measured with true errors: at
least ``accurate_fraction`` of the validation frames have their largest atomic force error
at or below the target (``select.target_force_error``), and, with
``convergence.max_validation_force_mae``, the force MAE is at or below that too. A committee
whose members agree while wrong (the known failure of committee uncertainty near a foundation
model) therefore keeps labelling, and when it stops for another reason the blocker is said.
"""

from __future__ import annotations

import numpy as np

from frostline.config import ConvergenceConfig
from frostline.schemas import ValidationMetrics


def validation_blocker(
    convergence: ConvergenceConfig,
    validation: ValidationMetrics | None,
    target_force_error: float,
) -> str | None:
    """Why the validation errors do not confirm convergence (None: they do)."""
    if validation is None or not validation.frame_max_force_errors:
        return "no validation errors to confirm the uncertainty (n_validation: 0?)"
    errors = np.asarray(validation.frame_max_force_errors, dtype=float)
    within = float(np.mean(errors <= target_force_error))
    if within < convergence.accurate_fraction:
        return (
            f"validation: {100 * within:.0f} % of frames have a max atomic force error within "
            f"{target_force_error:g} eV/Å (needs {100 * convergence.accurate_fraction:.0f} %)"
        )
    limit = convergence.max_validation_force_mae
    if limit is not None and validation.force_mae_mev_per_a > limit:
        return f"validation force MAE {validation.force_mae_mev_per_a:.1f} > {limit:g} meV/Å"
    return None


def stop_reason(
    convergence: ConvergenceConfig,
    iteration: int,
    accurate_fraction: float,
    n_labels_spent: int,
    n_selectable: int,
    blocker: str | None = None,
) -> str | None:
    """Why the campaign stops after exploring with the models of ``iteration`` (None: go on).

    Checked in order: converged (accurate fraction reached and no ``blocker``, see
    ``validation_blocker``), label budget spent, maximum number of fine-tunes reached, nothing
    left to label.
    """
    if accurate_fraction >= convergence.accurate_fraction and blocker is None:
        return "converged"
    if n_labels_spent >= convergence.label_budget:
        return "label budget spent"
    if iteration + 1 >= convergence.max_iterations:
        return "max iterations"
    if n_selectable == 0:
        return "no candidates to label"
    return None
