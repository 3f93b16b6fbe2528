"""Selection stage: which explored frames are worth an oracle call."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from jobflow import Maker, job

from frostline.config import ConvergenceConfig
from frostline.schemas import ExploreResult, SelectionResult
from frostline.select.convergence import stop_reason
from frostline.select.uncertainty import Fate, classify


@dataclass
class SelectMaker(Maker):
    """Committee trust-window selection, capped per iteration and by the label budget."""

    name: str = "select"
    trust_lo: float = 0.05
    trust_hi: float = 0.5
    max_labels_per_iteration: int = 8
    min_distance: float = 0.6
    convergence: ConvergenceConfig = field(default_factory=ConvergenceConfig)
    seed: int = 0

    @job
    def make(
        self, explored: ExploreResult, n_labels_spent: int, iteration: int = 0
    ) -> SelectionResult:
        """Classify every frame, decide whether to stop, and pick the batch to label."""
        t0 = time.perf_counter()
        explored = ExploreResult.model_validate(explored)
        fates = [
            classify(c, self.trust_lo, self.trust_hi, self.min_distance)
            for c in explored.candidates
        ]
        uncertain = [
            c for c, f in zip(explored.candidates, fates, strict=True) if f == Fate.UNCERTAIN
        ]
        n = len(fates)
        n_acc = fates.count(Fate.ACCURATE)
        accurate_fraction = n_acc / n if n else 0.0
        reason = stop_reason(
            self.convergence, iteration, accurate_fraction, n_labels_spent, len(uncertain)
        )
        selected = []
        if reason is None:
            cap = min(self.max_labels_per_iteration, self.convergence.label_budget - n_labels_spent)
            rng = np.random.default_rng(self.seed + iteration)
            order = rng.permutation(len(uncertain))[:cap]
            selected = [uncertain[i] for i in sorted(order)]
        return SelectionResult(
            selected=selected,
            n_candidates=n,
            n_accurate=n_acc,
            n_uncertain=len(uncertain),
            n_failed=fates.count(Fate.FAILED),
            n_over_budget=len(uncertain) - len(selected) if reason is None else 0,
            accurate_fraction=accurate_fraction,
            stop_reason=reason,
            wall_time_s=time.perf_counter() - t0,
        )
