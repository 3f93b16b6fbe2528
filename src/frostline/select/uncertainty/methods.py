"""Uncertainty methods behind one interface: forces and per-atom scores in one model call.

Every method wraps the ASE calculator whose forces it qualifies and returns, per frame, those
forces and a ``FrameScores`` (one non-negative score per atom, larger = less trustworthy):

- ``committee``: the members' force deviation per atom (norm of the per-component standard
  deviation, DP-GEN's measure) around the committee mean; costs K models;
- ``descriptor``: the atom's distance to the nearest training environment of its element in a
  fixed descriptor space (the foundation's invariant features); one model plus the descriptor
  model;
- ``last-layer``: the atom's last-layer (LLPR) standard deviation of one model, read from the
  same forward pass that gives the forces (``frostline.select.uncertainty.last_layer``).

Scores are in each method's own units; ``calibration.fit_conformal`` maps any of them to an
error bound in eV/Å.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from ase import Atoms

from frostline.finetune.evaluate import atom_force_errors  # noqa: F401  (re-exported)
from frostline.select.uncertainty.calibration import FrameScores
from frostline.select.uncertainty.last_layer import LLPR, LastLayerFeatures, calculator_features

METHODS = ("committee", "descriptor", "last-layer")


@dataclass
class Prediction:
    """A frame's predicted forces (eV/Å) and its uncertainty scores."""

    forces: np.ndarray
    scores: FrameScores


class UncertaintyMethod(Protocol):
    """What selection, calibration and the benchmarks need from an uncertainty method."""

    name: str

    def predict(self, frames: Sequence[Atoms]) -> list[Prediction]: ...


def _forces(calc, atoms: Atoms) -> np.ndarray:
    """``calc``'s forces on ``atoms``, always from a new model call (an ASE calculator returns
    cached results for the same atoms, which would leave the uncertainty hooks empty)."""
    work = atoms.copy()
    calc.reset()
    work.calc = calc
    return np.asarray(work.get_forces(), dtype=float)


@dataclass
class CommitteeUncertainty:
    """Committee force deviation around the committee-mean forces (``MACECalculator`` over
    several model files)."""

    calc: object
    name: str = "committee"

    def predict(self, frames: Sequence[Atoms]) -> list[Prediction]:
        out = []
        for atoms in frames:
            forces = _forces(self.calc, atoms)
            var = np.asarray(self.calc.results.get("forces_var", np.zeros_like(forces)))
            deviation = np.sqrt(np.clip(var, 0, None).sum(axis=1))
            out.append(Prediction(forces, _scores(deviation, atoms)))
        return out


@dataclass
class DescriptorUncertainty:
    """Novelty of each atom against the training environments (``NoveltyIndex``)."""

    calc: object
    describe: Callable[[Atoms], np.ndarray]
    index: object  # frostline.select.novelty.NoveltyIndex of the training structures
    name: str = "descriptor"

    @classmethod
    def fit(cls, calc, describe, training: Sequence[Atoms]) -> DescriptorUncertainty:
        from frostline.select.novelty import NoveltyIndex

        index = NoveltyIndex()
        for atoms in training:
            index.add(describe(atoms), atoms.get_chemical_symbols())
        return cls(calc, describe, index)

    def predict(self, frames: Sequence[Atoms]) -> list[Prediction]:
        out = []
        for atoms in frames:
            distances = self.index.atom_distances(
                self.describe(atoms), atoms.get_chemical_symbols()
            )
            out.append(Prediction(_forces(self.calc, atoms), _scores(distances, atoms)))
        return out


@dataclass
class LastLayerUncertainty:
    """LLPR standard deviation per atom of one model, from its forces' own forward pass."""

    calc: object
    llpr: LLPR
    name: str = "last-layer"

    @classmethod
    def fit(
        cls,
        calc,
        training: Sequence[Atoms],
        covariance: str = "structures",
        regularizer: float = 1e-4,
    ) -> LastLayerUncertainty:
        """The inverse covariance of ``calc``'s last-layer features on ``training``."""
        features = calculator_features(calc, training)
        symbols = [a.get_chemical_symbols() for a in training]
        return cls(calc, LLPR(covariance, regularizer).fit(features, symbols))

    def predict(self, frames: Sequence[Atoms]) -> list[Prediction]:
        hooks = LastLayerFeatures(self.calc.models[0])
        try:
            out = []
            for atoms in frames:
                forces = _forces(self.calc, atoms)
                variance = self.llpr.atom_variances(hooks.take(), atoms.get_chemical_symbols())
                out.append(Prediction(forces, _scores(np.sqrt(variance), atoms)))
            return out
        finally:
            hooks.remove()


def _scores(per_atom: np.ndarray, atoms: Atoms) -> FrameScores:
    return FrameScores(
        atom=[float(x) for x in per_atom], symbols=list(atoms.get_chemical_symbols())
    )
