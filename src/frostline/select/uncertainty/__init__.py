"""Uncertainty: methods that score frames, and the calibration that turns scores into bounds.

``methods``: ``committee``, ``descriptor``, ``last-layer`` behind one ``predict`` interface
(forces and per-atom scores in one call); ``calibration``: split-conformal bounds per element
and the quality figures (Spearman, AUROC, coverage, miscalibration area); ``last_layer``: the
LLPR features and covariance of one MACE model.
"""

from frostline.select.uncertainty.calibration import (
    ConformalCalibration,
    FrameScores,
    auroc,
    coverage_of,
    fit_conformal,
    miscalibration_area,
    spearman,
)
from frostline.select.uncertainty.methods import (
    METHODS,
    CommitteeUncertainty,
    DescriptorUncertainty,
    LastLayerUncertainty,
    Prediction,
    UncertaintyMethod,
    atom_force_errors,
)

__all__ = [
    "METHODS",
    "CommitteeUncertainty",
    "ConformalCalibration",
    "DescriptorUncertainty",
    "FrameScores",
    "LastLayerUncertainty",
    "Prediction",
    "UncertaintyMethod",
    "atom_force_errors",
    "auroc",
    "coverage_of",
    "fit_conformal",
    "miscalibration_area",
    "spearman",
]
