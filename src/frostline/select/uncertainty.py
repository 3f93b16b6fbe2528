"""Classification of explored frames by committee force deviation (DP-GEN's trust window)."""

from __future__ import annotations

from enum import StrEnum

import numpy as np
from pymatgen.core import Structure

from frostline.schemas import CandidateStructure


class Fate(StrEnum):
    ACCURATE = "accurate"
    UNCERTAIN = "uncertain"
    FAILED = "failed"


def structure_min_distance(structure: dict) -> float:
    s = Structure.from_dict(structure)
    if len(s) < 2:
        return float("inf")
    d = s.distance_matrix
    return float(d[np.triu_indices(len(s), 1)].min())


def classify(
    candidate: CandidateStructure, trust_lo: float, trust_hi: float, min_distance: float
) -> Fate:
    """accurate (< lo), uncertain ([lo, hi)), failed (>= hi, non-finite, or atoms too close)."""
    std = candidate.max_force_std
    if std is None or not np.isfinite(std) or std >= trust_hi:
        return Fate.FAILED
    if structure_min_distance(candidate.structure) < min_distance:
        return Fate.FAILED
    return Fate.ACCURATE if std < trust_lo else Fate.UNCERTAIN
