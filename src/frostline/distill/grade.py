"""A calibrated extrapolation grade for a linear ACE: descriptor distance to the teacher data.

pyace's MaxVol grade γ (``.asi``) needs an active set per element at least as large as the basis;
with a few hundred H environments and a few hundred basis functions per element the active set
is (nearly) square and ill-conditioned, and γ explodes for environments close to the training
ones (γ > 5 for H in all validation cells of the demo). This grade works where the basis is too
big for the data:

- every atom's B projections (the surrogate's own descriptors, ``compute_projections``) are
  standardised per element with the training environments' mean and spread;
- an atom's distance is its Euclidean distance to the nearest training environment of its
  element, divided by that element's median nearest-neighbour distance among the training
  environments (leave-one-frame-out), so ~1 is typical of the data;
- a frame's grade is its largest atomic grade; the threshold is a high quantile (``quantile``)
  of the grades of held-out teacher frames (same distribution, never in the reference set).

``GradeModel.rates`` reports the false-alarm rate (held-in frames above the threshold) and the
miss rate (clearly extrapolative frames below it). The model is saved as ``.npz`` next to the
``.yace`` (``surrogate.grade.npz``) and read by ``SurrogateCalculator(grade=...)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from frostline.distill.cells import ACEError, _pyace, ace_ready

MAX_REFERENCE = 4000
"""At most this many training environments per element are kept (evenly spaced)."""
CHUNK = 512


class Projector:
    """Each atom's element and B projections (the linear ACE's descriptors) for a basis."""

    def __init__(self, basis):
        pyace = _pyace()
        self.basis = basis
        self.evaluator = pyace.ACEBEvaluator(basis)  # kept: the calculator only points to it
        self.calc = pyace.ACECalculator(self.evaluator)
        self.names = list(basis.elements_name)

    def __call__(self, atoms: Atoms) -> tuple[list[str], list[np.ndarray]]:
        from pyace.atomicenvironment import aseatoms_to_atomicenvironment

        env = aseatoms_to_atomicenvironment(
            ace_ready(atoms, self.basis.cutoffmax),
            cutoff=self.basis.cutoffmax,
            elements_mapper_dict=self.basis.elements_to_index_map,
        )
        self.calc.compute(env, compute_projections=True)
        species = [self.names[t] for t in env.species_type[: env.n_atoms_real]]
        return species, [np.asarray(p, dtype=float) for p in self.calc.projections]


def _projector(basis) -> Projector:
    return basis if isinstance(basis, Projector) else Projector(basis)


def _by_element(basis, structures: Sequence[Atoms]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per element: projections (n_env, p) and the frame index of each environment."""
    rows: dict[str, list[np.ndarray]] = {}
    frames: dict[str, list[int]] = {}
    project = _projector(basis)
    for f, atoms in enumerate(structures):
        species, proj = project(atoms)
        for el, p in zip(species, proj, strict=True):
            rows.setdefault(el, []).append(p)
            frames.setdefault(el, []).append(f)
    return {el: (np.vstack(rows[el]), np.asarray(frames[el])) for el in rows}


def _nearest(query: np.ndarray, ref: np.ndarray, exclude=None) -> np.ndarray:
    """Distance of every query row to its nearest ``ref`` row (``exclude``: masks per query)."""
    out = np.empty(len(query))
    ref_sq = np.einsum("ij,ij->i", ref, ref)
    for start in range(0, len(query), CHUNK):
        q = query[start : start + CHUNK]
        d2 = np.einsum("ij,ij->i", q, q)[:, None] + ref_sq[None, :] - 2 * q @ ref.T
        if exclude is not None:
            d2[exclude(start, len(q))] = np.inf
        out[start : start + len(q)] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


@dataclass
class ElementGrade:
    """Standardisation, reference environments and distance scale of one element."""

    mean: np.ndarray
    scale: np.ndarray
    reference: np.ndarray
    typical: float

    def grades(self, projections: np.ndarray) -> np.ndarray:
        z = (np.atleast_2d(projections) - self.mean) / self.scale
        return _nearest(z, self.reference) / self.typical


@dataclass
class GradeModel:
    """Per-element descriptor-distance grades, a frame threshold and its measured rates."""

    elements: dict[str, ElementGrade]
    threshold: float = float("inf")
    quantile: float = 0.99
    calibration: dict[str, float] = field(default_factory=dict)

    @classmethod
    def fit(cls, basis, structures: Sequence[Atoms], quantile: float = 0.99) -> GradeModel:
        """Reference environments from ``structures`` (the surrogate's training frames)."""
        if not structures:
            raise ACEError("grade: no training structures")
        elements = {}
        for el, (x, frames) in _by_element(basis, structures).items():
            mean = x.mean(axis=0)
            std = x.std(axis=0)
            scale = std + 1e-3 * (std.mean() or 1.0)
            z = (x - mean) / scale
            keep = np.unique(np.linspace(0, len(z) - 1, min(len(z), MAX_REFERENCE)).astype(int))
            z, frames = z[keep], frames[keep]
            if len(np.unique(frames)) < 2:
                raise ACEError(f"grade: {el} appears in fewer than two training frames")

            def same_frame(start, n, frames=frames):
                return frames[start : start + n, None] == frames[None, :]

            nn = _nearest(z, z, exclude=same_frame)
            typical = float(np.median(nn[np.isfinite(nn)])) or 1.0
            elements[el] = ElementGrade(mean, scale, z, typical)
        return cls(elements, quantile=quantile)

    def atom_grades(self, basis, atoms: Atoms) -> np.ndarray:
        """Every atom's grade (inf for an element the reference never saw)."""
        species, proj = _projector(basis)(atoms)
        out = np.full(len(species), np.inf)
        for el, model in self.elements.items():
            idx = [i for i, s in enumerate(species) if s == el]
            if idx:
                out[idx] = model.grades(np.vstack([proj[i] for i in idx]))
        return out

    def frame_grades(self, basis, structures: Sequence[Atoms]) -> np.ndarray:
        """Each frame's grade: the largest of its atoms'."""
        project = _projector(basis)
        return np.array([self.atom_grades(project, a).max() for a in structures])

    def calibrate(
        self,
        basis,
        held_out: Sequence[Atoms],
        held_in: Sequence[Atoms] = (),
        extrapolative: Sequence[Atoms] = (),
    ) -> dict[str, float]:
        """Threshold = the ``quantile`` of held-out frames' grades; rates on the others.

        ``false_alarm_rate``: held-in frames above the threshold (each held-out frame against the
        threshold of the other held-out frames, leave-one-out; ``held_in`` frames against the
        threshold); ``miss_rate``: ``extrapolative`` frames at or below it (nan: none given).
        """
        if len(held_out) < 2:
            raise ACEError("grade: calibration needs at least two held-out frames")
        g_out = self.frame_grades(basis, held_out)
        self.threshold = float(np.quantile(g_out, self.quantile, method="higher"))
        loo = [  # each held-out frame against the threshold of the others (honest rate)
            g > np.quantile(np.delete(g_out, i), self.quantile, method="higher")
            for i, g in enumerate(g_out)
        ]
        g_in = self.frame_grades(basis, held_in)
        alarms = np.concatenate([loo, g_in > self.threshold])
        g_ex = self.frame_grades(basis, extrapolative)
        self.calibration = {
            "threshold": self.threshold,
            "quantile": self.quantile,
            "n_held_in": int(len(alarms)),
            "n_extrapolative": int(len(g_ex)),
            "false_alarm_rate": float(np.mean(alarms)),
            "miss_rate": float(np.mean(g_ex <= self.threshold)) if len(g_ex) else float("nan"),
            "held_in_median": float(np.median(np.concatenate([g_out, g_in]))),
            "extrapolative_median": float(np.median(g_ex)) if len(g_ex) else float("nan"),
        }
        return self.calibration

    def save(self, path: Path | str) -> Path:
        """Write the model as ``.npz`` (arrays per element, threshold, calibration)."""
        path = Path(path)
        arrays: dict[str, np.ndarray] = {
            "elements": np.array(list(self.elements)),
            "threshold": np.array(self.threshold),
            "quantile": np.array(self.quantile),
            "calibration_keys": np.array(list(self.calibration)),
            "calibration_values": np.array(list(self.calibration.values()), dtype=float),
        }
        for el, m in self.elements.items():
            arrays.update(
                {
                    f"{el}_mean": m.mean,
                    f"{el}_scale": m.scale,
                    f"{el}_reference": m.reference,
                    f"{el}_typical": np.array(m.typical),
                }
            )
        with path.open("wb") as fh:
            np.savez_compressed(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: Path | str) -> GradeModel:
        """Read a model written by :meth:`save` (``ACEError`` naming the file if it is not)."""
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                elements = {
                    str(el): ElementGrade(
                        data[f"{el}_mean"],
                        data[f"{el}_scale"],
                        data[f"{el}_reference"],
                        float(data[f"{el}_typical"]),
                    )
                    for el in data["elements"]
                }
                calibration = dict(
                    zip(
                        map(str, data["calibration_keys"]),
                        map(float, data["calibration_values"]),
                        strict=True,
                    )
                )
                return cls(elements, float(data["threshold"]), float(data["quantile"]), calibration)
        except (OSError, KeyError, ValueError) as exc:
            raise ACEError(f"{path}: not a frostline grade model ({exc})") from None


def extrapolative_probes(seeds: Sequence[Atoms], squeeze: float = 0.6) -> list[Atoms]:
    """Frames clearly outside teacher data built around ``seeds`` (seeds of three or more atoms):
    each compressed by 20 % and stretched by 25 % (cell and positions), and one with the first
    atom of its rarest element moved to ``squeeze`` x the shortest distance of that element pair
    in ``seeds`` from its nearest atom of another element.

    Not probes: a molecule in a box (scaling the box only changes a bond, often within the
    labelled range) and a lone atom (the teacher data's ``defect`` source makes those).
    """
    from frostline.distill.validate import shortest_contacts

    shortest = shortest_contacts(seeds)
    out = []
    for atoms in (a for a in seeds if len(a) > 2):
        for factor in (0.8, 1.25):
            probe = atoms.copy()
            probe.set_cell(probe.cell * factor, scale_atoms=True)
            out.append(probe)
        symbols = np.array(atoms.get_chemical_symbols())
        kinds, counts = np.unique(symbols, return_counts=True)
        if len(kinds) < 2:
            continue
        i = int(np.flatnonzero(symbols == kinds[np.argmin(counts)])[0])
        others = np.flatnonzero(symbols != symbols[i])
        vectors = atoms.get_distances(i, others, mic=True, vector=True)
        k = int(np.argmin(np.linalg.norm(vectors, axis=1)))
        pair = "-".join(sorted((symbols[i], symbols[others[k]])))
        target = squeeze * shortest.get(pair, float(np.linalg.norm(vectors[k])))
        probe = atoms.copy()
        unit = vectors[k] / np.linalg.norm(vectors[k])
        probe.positions[i] = atoms.positions[others[k]] - target * unit
        out.append(probe)
    return out


def fit_grade(
    basis,
    train: Sequence[Atoms],
    held_out: Sequence[Atoms],
    seeds: Sequence[Atoms],
    quantile: float = 0.99,
) -> GradeModel:
    """A grade model of ``train``, calibrated on ``held_out`` and probes around ``seeds``."""
    project = Projector(basis)
    model = GradeModel.fit(project, train, quantile)
    model.calibrate(project, held_out, extrapolative=extrapolative_probes(seeds))
    return model
