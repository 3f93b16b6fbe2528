"""Novelty of structures against everything already labelled, in a MACE descriptor space.

Each atom is described by the invariant node features of a fixed MACE model (the campaign's
foundation, so distances mean the same in every iteration). A structure's *novelty* is the
largest, over its atoms, of the distance to the nearest labelled environment of the same element:
a structure all of whose local environments are already covered is a duplicate, whatever its
size or cell. Distances are root-mean-square over features, divided by the RMS magnitude of the
reference environments of that element (so a threshold is dimensionless). Measured on H2/Cu(111)
with the mini foundation: a Gaussian rattle of 0.0005 / 0.002 / 0.01 / 0.1 Å gives about
0.014 / 0.06 / 0.28 / 1.7 (H atoms respond most: the H-H bond length is a strong feature), another
adsorption geometry 0.7-2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms


class DescriptorModel:
    """Per-atom invariant MACE descriptors from one model file (``MACECalculator``)."""

    def __init__(self, model_path: str, device: str = "cpu", dtype: str = "float64"):
        import mace  # noqa: F401  (import mace before e3nn)
        from mace.calculators import MACECalculator

        from frostline.finetune.committee import resolve_device

        self.calc = MACECalculator(
            model_paths=model_path, device=resolve_device(device), default_dtype=dtype
        )

    def __call__(self, atoms: Atoms) -> np.ndarray:
        """(n_atoms, n_features) invariant descriptors."""
        return np.asarray(self.calc.get_descriptors(atoms, invariants_only=True), dtype=float)


def memoized(descriptor: DescriptorModel):
    """``descriptor`` remembering its results by species, positions and cell (a frame scored
    for uncertainty and then gated for novelty is described once)."""
    cache: dict[tuple[bytes, bytes, bytes], np.ndarray] = {}

    def describe(atoms: Atoms) -> np.ndarray:
        key = (atoms.numbers.tobytes(), atoms.positions.tobytes(), atoms.cell.array.tobytes())
        if key not in cache:
            cache[key] = descriptor(atoms)
        return cache[key]

    return describe


def _rms_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """RMS (over features) distance matrix between rows of ``x`` and ``y``."""
    d2 = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return np.sqrt(np.clip(d2, 0.0, None) / x.shape[1])


@dataclass
class NoveltyIndex:
    """Labelled local environments, grouped by element, with nearest-neighbour queries."""

    environments: dict[str, list[np.ndarray]] = field(default_factory=dict)
    _scale: dict[str, float] = field(default_factory=dict)

    def add(self, descriptors: np.ndarray, symbols: Sequence[str]) -> None:
        """Add a structure's atoms (descriptors row-aligned with ``symbols``)."""
        symbols = np.asarray(symbols)
        for sym in np.unique(symbols):
            self.environments.setdefault(str(sym), []).append(descriptors[symbols == sym])

    def _reference(self, sym: str) -> np.ndarray | None:
        envs = self.environments.get(sym)
        if not envs:
            return None
        if len(envs) > 1:  # consolidate lazily
            envs[:] = [np.concatenate(envs)]
        return envs[0]

    def scale(self, sym: str) -> float:
        """RMS magnitude of the reference environments of ``sym`` (distance unit).

        Fixed at first use, so that adding environments later keeps distances comparable.
        """
        if sym not in self._scale:
            ref = self._reference(sym)
            if ref is None:
                return 1.0  # nothing to compare with yet: distances are inf anyway
            value = float(np.sqrt(np.mean(ref * ref)))
            self._scale[sym] = value if value > 0 else 1.0
        return self._scale[sym]

    def nearest_in(
        self, descriptors: np.ndarray, symbols: Sequence[str], other: np.ndarray, other_symbols
    ) -> np.ndarray:
        """Per atom: scaled distance to the nearest same-element atom of another structure.

        Uses this index's distance unit (the scale of its reference environments, or of
        ``other`` for an element the index has not seen).
        """
        symbols, other_symbols = np.asarray(symbols), np.asarray(other_symbols)
        out = np.full(len(symbols), np.inf)
        for sym in np.unique(symbols):
            ref = other[other_symbols == sym]
            if not len(ref):
                continue
            mask = symbols == sym
            scale = self.scale(str(sym)) if str(sym) in self.environments else None
            if scale is None:
                scale = float(np.sqrt(np.mean(ref * ref))) or 1.0
            out[mask] = _rms_distances(descriptors[mask], ref).min(1) / scale
        return out

    def atom_distances(self, descriptors: np.ndarray, symbols: Sequence[str]) -> np.ndarray:
        """Per atom: scaled distance to the nearest reference environment (inf if none)."""
        symbols = np.asarray(symbols)
        out = np.full(len(symbols), np.inf)
        for sym in np.unique(symbols):
            ref = self._reference(str(sym))
            if ref is None:
                continue
            mask = symbols == sym
            d = _rms_distances(descriptors[mask], ref).min(1)
            out[mask] = d / self.scale(str(sym))
        return out

    def novelty(self, descriptors: np.ndarray, symbols: Sequence[str]) -> float:
        """Largest per-atom distance to the labelled environments (0: an exact duplicate)."""
        return float(self.atom_distances(descriptors, symbols).max(initial=0.0))


def descriptor_uncertainty(
    structures: Sequence[Atoms],
    labelled: Sequence[Atoms],
    descriptor: Callable[[Atoms], np.ndarray],
) -> list[float]:
    """Single-model uncertainty: each structure's novelty against ``labelled``.

    The largest distance of any atom's descriptor to the nearest labelled environment of its
    element (inf for an element nothing labelled contains). Needs no committee; calibration
    against the true errors of labelled frames turns it into a force-error estimate.
    """
    index = NoveltyIndex()
    for atoms in labelled:
        index.add(descriptor(atoms), atoms.get_chemical_symbols())
    return [index.novelty(descriptor(a), a.get_chemical_symbols()) for a in structures]
