"""Linear ACE with pyace: basis, design matrix, weighted ridge fit, ``.yace`` / active set files.

pyace 0.4 fits non-linear ACE only through TensorFlow (``tensorpotential``); a *linear* ACE
(embedding ``F(rho) = rho``: ``FinnisSinclairShiftedScaled`` with ``fs_parameters [1, 1]`` and one
density) is linear in its basis coefficients, so it is fitted here by weighted least squares on the
B-function projections and their gradients that pyace's C++ ``ACECalculator`` computes
(``compute_projections`` / ``compute_b_grad``: the same quantities as ``pyace.linearacefit``,
computed in-process instead of in forked workers).

Per-element reference energies (E0) are fitted as extra columns and written into the ``.yace``
(its ``E0`` entry), so energies of the exported file are total energies on the teacher's scale.
The B-basis ``.yaml`` (needed with an ``.asi`` for extrapolation grades) has no field pyace or
LAMMPS apply as E0: ML-PACE's ``ACEBBasisSet::initialize_basis`` sets every E0 to zero, so a
``.yaml`` evaluated directly gives the energy *relative to* the reference energies (pacemaker's
convention for its own ``.yaml`` files), with the same forces, stress and grades. The E0s are
recorded in it twice (``metadata[frostline_E0]`` as JSON by element, ``auxdata`` ``E0`` in basis
order); :func:`reference_energies` reads them and :class:`SurrogateCalculator` adds them back.

pyace (and LAMMPS ``pair_style pace``) only handle cells that are periodic in all three directions
or in none. :func:`ace_ready` pads the non-periodic directions of a partly periodic cell (a slab)
with vacuum wider than the cutoff and makes it fully periodic; the padded cell has the same atoms,
energy and forces (images along the padded axes are farther apart than the cutoff), but no
meaningful stress along those axes, so :class:`SurrogateCalculator` drops stress for such cells.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from frostline.distill.cells import (  # noqa: F401  (re-exported: ace is where users look)
    PADDING_MARGIN,
    ACEError,
    _pyace,
    ace_ready,
    is_padded,
)

E0_METADATA_KEY = "frostline_E0"
"""Key of the per-element reference energies in the B-basis ``.yaml`` metadata (JSON)."""
E0_AUXDATA_KEY = "E0"
"""Key of the reference energies (basis element order) in the B-basis ``.yaml`` auxdata."""
CORE_WIDTH = 0.25
"""Å over which a pair's ACE terms hand over to the ZBL core below its ``r_in``."""


# -- basis ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BasisSpec:
    """A linear ACE basis: functions per element, cutoff and the body-order/degree limits."""

    elements: tuple[str, ...]
    n_functions_per_element: int
    cutoff: float
    nradmax_by_orders: tuple[int, ...] = (15, 6, 4, 3)
    lmax_by_orders: tuple[int, ...] = (0, 3, 3, 2)
    dcut: float = 0.01
    pair_cutoffs: tuple[tuple[str, float], ...] = ()
    """Element pairs (``("H-H", 2.5)``) whose radial functions end before ``cutoff`` (Å)."""
    core: tuple[tuple[str, float], ...] = ()
    """ZBL core repulsion per element pair (``("Cu-H", r_in)``): below ``r_in`` the pair's ACE
    terms are switched off smoothly (over ``CORE_WIDTH`` Å) and pyace's ZBL takes over; pairs at
    or beyond ``r_in`` are untouched (so a fit on frames without closer pairs is unchanged)."""

    def with_core(self, shortest: dict[str, float]) -> BasisSpec:
        """This spec with a ZBL core below ``shortest[pair]`` (e.g. the training contacts)."""
        return replace(self, core=tuple(sorted(shortest.items())))

    def potential_config(self) -> dict:
        """The ``potential`` section pacemaker would read (linear embedding, one density)."""
        bond = {
            "radbase": "SBessel",
            "radparameters": [5.25],
            "rcut": float(self.cutoff),
            "dcut": float(self.dcut),
            "NameOfCutoffFunction": "cos",
        }
        bonds = {"ALL": bond}
        for pair, rcut in self.pair_cutoffs:
            bonds[tuple(pair.split("-"))] = {**bond, "rcut": float(rcut)}
        return {
            "deltaSplineBins": 0.001,
            "elements": list(self.elements),
            "embeddings": {
                "ALL": {
                    "npot": "FinnisSinclairShiftedScaled",
                    "fs_parameters": [1, 1],
                    "ndensity": 1,
                }
            },
            "bonds": bonds,
            "functions": {
                "number_of_functions_per_element": int(self.n_functions_per_element),
                "ALL": {
                    "nradmax_by_orders": list(self.nradmax_by_orders),
                    "lmax_by_orders": list(self.lmax_by_orders),
                },
            },
        }


def pair_cutoffs(
    shortest: dict[str, float], cutoff: float, factor: float
) -> tuple[tuple[str, float], ...]:
    """Per element pair (``"A-B"`` keys of ``shortest``, Å) the cutoff ``factor`` x its shortest
    contact where that is below ``cutoff``; ``factor`` 0: none.

    With one cutoff for all pairs the few radial functions a pair gets spread over 0-``cutoff``,
    too coarse for a stiff short bond: on the H2/Cu(111) teacher data an H-H cutoff of 2.25 Å
    (factor 4) instead of 5 Å cut the surrogate's H force error against its teacher from 257 to
    109 meV/Å (held out), 250 to 117 (off the teacher data) and 669 to 326 (dissociation elbow),
    with Cu unchanged (``workflows/benchmarks/surrogate_pair_cutoffs.py``, 2026-12-07).
    """
    if factor <= 0:
        return ()
    return tuple(
        (pair, round(factor * d, 3)) for pair, d in sorted(shortest.items()) if factor * d < cutoff
    )


def build_basis(spec: BasisSpec):
    """An ``ACEBBasisSet`` (all coefficients zero) for ``spec``."""
    pyace = _pyace()
    if not spec.elements:
        raise ACEError("basis needs at least one element")
    if spec.n_functions_per_element < 1:
        raise ACEError(f"n_functions_per_element must be >= 1, not {spec.n_functions_per_element}")
    if not 1.0 < spec.cutoff <= 12.0:
        raise ACEError(f"cutoff must be in (1, 12] Å, not {spec.cutoff}")
    config = pyace.create_multispecies_basis_config(spec.potential_config())
    _set_core(config, dict(spec.core))
    return pyace.ACEBBasisSet(config)


def _set_core(config, core: dict[str, float]) -> None:
    """ZBL inner core on the pair blocks of ``config`` named in ``core`` (as pacemaker's
    ``setup_zbl_inner_core_repulsion``; the embedding's density cutoff is left off)."""
    if not core:
        return
    for block in config.funcspecs_blocks:  # pyace wants one inner cutoff type for all blocks
        names = sorted(block.block_name.split())
        pair = "-".join(names * 2 if len(names) == 1 else names)
        block.r_in = float(core.get(pair, 0.0))  # 0: no core for a pair without a limit
        block.delta_in = CORE_WIDTH
        block.inner_cutoff_type = "zbl"
        block.core_rep_parameters = [1.0, 1.0]


def _function_layout(basis) -> tuple[int, list[int]]:
    """Total number of B functions and each species' column offset."""
    offsets, total = [], 0
    for rank1, rest in zip(basis.basis_rank1, basis.basis, strict=True):
        offsets.append(total)
        total += len(rank1) + len(rest)
    return total, offsets


# -- design matrix -------------------------------------------------------------------------------
@dataclass
class Design:
    """Linear-ACE design rows of a set of structures.

    ``energy[s]`` holds the per-structure sums of the B projections (energy = row · c + E0s),
    ``forces[s]`` the (3 n_atoms, n_functions) force rows (atom-major, xyz), and ``counts[s]``
    the number of atoms of each basis element.
    """

    energy: np.ndarray
    forces: list[np.ndarray]
    counts: np.ndarray
    n_functions: int

    def subset(self, index: Sequence[int]) -> Design:
        idx = list(index)
        return Design(
            self.energy[idx], [self.forces[i] for i in idx], self.counts[idx], self.n_functions
        )


def design_matrix(
    basis, structures: Sequence[Atoms], progress: Callable[[int], None] | None = None
) -> Design:
    """B projections and their gradients for every structure (padded with :func:`ace_ready`)."""
    pyace = _pyace()
    from pyace.atomicenvironment import aseatoms_to_atomicenvironment

    evaluator = pyace.ACEBEvaluator(basis)
    calc = pyace.ACECalculator(evaluator)
    n_functions, offsets = _function_layout(basis)
    mapper = basis.elements_to_index_map
    elements = list(basis.elements_name)
    energy = np.zeros((len(structures), n_functions))
    counts = np.zeros((len(structures), len(elements)))
    forces: list[np.ndarray] = []
    for s, atoms in enumerate(structures):
        unknown = sorted(set(atoms.get_chemical_symbols()) - set(elements))
        if unknown:
            raise ACEError(f"structure {s} has elements {unknown} outside the basis {elements}")
        env = aseatoms_to_atomicenvironment(
            ace_ready(atoms, basis.cutoffmax), cutoff=basis.cutoffmax, elements_mapper_dict=mapper
        )
        calc.compute(env, compute_projections=True, compute_b_grad=True)
        n = env.n_atoms_real
        for species, proj in zip(env.species_type[:n], calc.projections, strict=True):
            energy[s, offsets[species] : offsets[species] + len(proj)] += proj
            counts[s, species] += 1
        grad = np.asarray(calc.forces_bfuncs)  # (n_atoms, n_functions, 3)
        forces.append(grad.transpose(0, 2, 1).reshape(3 * n, n_functions))
        if progress is not None:
            progress(1)
    return Design(energy, forces, counts, n_functions)


# -- fit -----------------------------------------------------------------------------------------
@dataclass
class LinearACEFit:
    """Fitted coefficients of a linear ACE and per-element reference energies (eV)."""

    spec: BasisSpec
    coefficients: np.ndarray
    e0: np.ndarray
    basis: object

    def predict(self, design: Design) -> tuple[np.ndarray, list[np.ndarray]]:
        """Total energies (eV) and (n_atoms, 3) forces (eV/Å) from design rows."""
        energies = design.energy @ self.coefficients + design.counts @ self.e0
        forces = [(f @ self.coefficients).reshape(-1, 3) for f in design.forces]
        return energies, forces


def fit_linear_ace(
    spec: BasisSpec,
    design: Design,
    energies: Sequence[float],
    forces: Sequence[np.ndarray],
    energy_weight: float = 10.0,
    ridge: float = 1e-6,
    basis=None,
) -> LinearACEFit:
    """Weighted ridge least squares of energies per atom and force components.

    The loss is ``sum_s (w_E (E_s - Ê_s) / N_s)^2 + sum_{i,α} (F_iα - F̂_iα)^2 + λ |D c|^2``
    with ``w_E = energy_weight`` and ``D`` the column norms (a scale-free ridge ``λ = ridge``).
    """
    if energy_weight < 0:
        raise ACEError(f"energy_weight must be >= 0, not {energy_weight}")
    if ridge < 0:
        raise ACEError(f"ridge must be >= 0, not {ridge}")
    if len(energies) != len(design.forces) or len(forces) != len(design.forces):
        raise ACEError("energies, forces and design rows differ in number of structures")
    if not len(energies):
        raise ACEError("no structures to fit")
    n_atoms = design.counts.sum(axis=1)
    n_el = design.counts.shape[1]
    energy_rows = np.hstack([design.energy, design.counts]) / n_atoms[:, None] * energy_weight
    force_rows = np.vstack([np.hstack([f, np.zeros((len(f), n_el))]) for f in design.forces])
    a = np.vstack([energy_rows, force_rows])
    y = np.concatenate(
        [
            np.asarray(energies, dtype=float) / n_atoms * energy_weight,
            np.concatenate([np.asarray(f, dtype=float).ravel() for f in forces]),
        ]
    )
    if not np.all(np.isfinite(a)) or not np.all(np.isfinite(y)):
        raise ACEError("non-finite values in the training data (teacher labels or projections)")
    scale = np.sqrt(np.mean(a**2, axis=0))
    scale[scale == 0] = 1.0
    a_s = a / scale
    normal = a_s.T @ a_s + ridge * len(a_s) * np.eye(a_s.shape[1])
    solution = np.linalg.lstsq(normal, a_s.T @ y, rcond=None)[0] / scale
    if basis is None:
        basis = build_basis(spec)
    return LinearACEFit(spec, solution[: design.n_functions], solution[design.n_functions :], basis)


# -- files ---------------------------------------------------------------------------------------
_E0_LINE = re.compile(r"^E0: \[[^\]\n]*\]$", re.MULTILINE)


def write_yace(fit: LinearACEFit, path: Path | str) -> Path:
    """Write the fitted potential as ``.yace`` (pyace / LAMMPS ``pair_style pace``) with E0s."""
    path = Path(path)
    basis = fit.basis
    basis.basis_coeffs = [float(c) for c in fit.coefficients]
    basis.to_ACECTildeBasisSet().save_yaml(str(path))
    text = path.read_text()
    e0 = ", ".join(repr(float(v)) for v in fit.e0)
    text, n = _E0_LINE.subn(f"E0: [{e0}]", text, count=1)
    if n != 1:
        raise ACEError(f"{path}: no 'E0' entry to write the reference energies into")
    path.write_text(text)
    return path


def write_bbasis_yaml(fit: LinearACEFit, path: Path | str) -> Path:
    """The B-basis ``.yaml`` (needed with an ``.asi`` for extrapolation grades).

    Its E0s go into ``metadata`` (JSON by element) and ``auxdata`` (``E0``, basis element order):
    pyace does not apply them (see the module docstring); :func:`reference_energies` reads them.
    """
    path = Path(path)
    basis = fit.basis
    basis.basis_coeffs = [float(c) for c in fit.coefficients]
    config = basis.to_BBasisConfiguration()
    by_element = dict(zip(fit.spec.elements, map(float, fit.e0), strict=True))
    meta = config.metadata
    meta[E0_METADATA_KEY] = json.dumps(by_element)
    config.metadata = meta
    aux = config.auxdata
    arrays = dict(aux.double_arr_data)
    arrays[E0_AUXDATA_KEY] = [by_element[e] for e in basis.elements_name]
    aux.double_arr_data = arrays
    config.auxdata = aux
    config.save(str(path))
    return path


def reference_energies(bbasis: Path | str) -> dict[str, float]:
    """Per-element reference energies (eV) recorded in a frostline B-basis ``.yaml``.

    ``ACEError`` naming the file when it has none (not written by :func:`write_bbasis_yaml`).
    """
    pyace = _pyace()
    config = pyace.BBasisConfiguration(str(bbasis))
    meta = dict(config.metadata)
    if E0_METADATA_KEY in meta:
        return {k: float(v) for k, v in json.loads(meta[E0_METADATA_KEY]).items()}
    values = dict(config.auxdata.double_arr_data).get(E0_AUXDATA_KEY)
    if values is None:
        raise ACEError(f"{bbasis}: no reference energies (metadata '{E0_METADATA_KEY}')")
    elements = list(pyace.ACEBBasisSet(config).elements_name)
    return dict(zip(elements, map(float, values), strict=True))


def write_active_set(fit: LinearACEFit, structures: Sequence[Atoms], path: Path | str) -> Path:
    """Compute the MaxVol active set of the training environments and write it as ``.asi``.

    ``ACEError`` when some element has fewer atomic environments than basis functions.
    """
    from pyace.activelearning import (
        compute_A_active_inverse,
        compute_active_set,
        compute_B_projections,
        save_active_inverse_set,
    )

    cutoff = fit.basis.cutoffmax
    padded = [ace_ready(a, cutoff) for a in structures]
    projections = compute_B_projections(fit.basis, padded)
    for species, proj in projections.items():
        if proj.shape[0] < proj.shape[1]:
            raise ACEError(
                f"active set: {proj.shape[0]} environments of {fit.spec.elements[species]} for "
                f"{proj.shape[1]} basis functions (need at least as many)"
            )
    active = compute_active_set(projections, tol=1.001, max_iters=300)
    inverse = compute_A_active_inverse(active)
    path = Path(path)
    save_active_inverse_set(str(path), inverse, elements_name=list(fit.basis.elements_name))
    return path


# -- calculator ----------------------------------------------------------------------------------
class SurrogateCalculator(Calculator):
    """ASE calculator for a frostline ``.yace`` that also accepts slabs (partly periodic cells).

    With ``active_set`` (an ``.asi``) and ``bbasis`` (the B-basis ``.yaml``), ``results["gamma"]``
    holds each atom's extrapolation grade (pyace's MaxVol criterion: > 1 extrapolates, > ~5 is
    unreliable); energies then come from the B-basis plus its recorded E0s. With ``grade`` (a
    ``.grade.npz``, :mod:`frostline.distill.grade`) and ``bbasis``, ``results["grade"]`` holds
    each atom's calibrated descriptor-distance grade; the frame extrapolates when its largest
    exceeds ``grade_threshold``.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]

    def __init__(
        self,
        potential: Path | str,
        active_set: Path | str | None = None,
        bbasis: Path | str | None = None,
        grade: Path | str | None = None,
        **kwargs,
    ):
        pyace = _pyace()
        super().__init__(**kwargs)
        self.potential = Path(potential)
        if not self.potential.is_file():
            raise ACEError(f"{self.potential}: no such potential file")
        self._e0: dict[str, float] = {}
        if active_set is not None:
            if bbasis is None:
                raise ACEError("an active set needs the B-basis .yaml (argument 'bbasis')")
            self._ace = pyace.PyACECalculator(str(bbasis))
            self._ace.set_active_set(str(active_set))
            self._e0 = reference_energies(bbasis)
            self.implemented_properties = [*self.implemented_properties, "gamma"]
        else:
            self._ace = pyace.PyACECalculator(str(self.potential))
        self.cutoff = float(self._ace.cutoff)
        self._grade = None
        self.grade_threshold = float("inf")
        if grade is not None:
            from frostline.distill.grade import GradeModel, Projector

            if bbasis is None:
                raise ACEError("a grade model needs the B-basis .yaml (argument 'bbasis')")
            self._grade = GradeModel.load(grade)
            self._grade_basis = Projector(pyace.ACEBBasisSet(str(bbasis)))
            self.grade_threshold = self._grade.threshold
            self.implemented_properties = [*self.implemented_properties, "grade"]

    def calculate(self, atoms=None, properties=("energy", "forces"), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        padded = ace_ready(self.atoms, self.cutoff)
        self._ace.calculate(padded, properties, all_changes)
        results = dict(self._ace.results)
        if self._e0:
            shift = sum(self._e0.get(s, 0.0) for s in self.atoms.get_chemical_symbols())
            results["energy"] = results["free_energy"] = results["energy"] + shift
        if padded is not self.atoms:  # stress of a padded cell is not the slab's
            results.pop("stress", None)
        if self._grade is not None:
            results["grade"] = self._grade.atom_grades(self._grade_basis, self.atoms)
        self.results = results
