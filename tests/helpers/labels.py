"""Labelled structures for tests: EMT labels of H2/Cu(111) frames, candidates run through the
real atomate2 labelling job."""

from __future__ import annotations

import tempfile

import numpy as np
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from atomate2.forcefields.schemas import ForceFieldTaskDocument
from jobflow import run_locally
from pymatgen.io.ase import AseAtomsAdaptor

from frostline.config import OracleConfig
from frostline.label.jobs import LabelMaker
from frostline.schemas import CandidateStructure, LabelledStructure
from frostline.structures import cu111_slab, h2_cu111_structures


def emt_label(atoms, stress: bool = True, stress_offset: float = 0.0) -> LabelledStructure:
    """``atoms`` labelled by EMT (stress in eV/Å³ shifted by ``stress_offset`` if asked)."""
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms.calc = EMT()
    return LabelledStructure(
        structure=AseAtomsAdaptor.get_structure(atoms).as_dict(),
        energy=atoms.get_potential_energy(),
        forces=atoms.get_forces().tolist(),
        stress=(atoms.get_stress() + stress_offset).tolist() if stress else None,
        oracle="emt",
    )


def emt_cu_cells(n: int) -> list:
    """``n`` rattled fcc Cu cubes with EMT labels as mace-torch reads them (``REF_energy``,
    ``REF_forces``): the input of a tiny real training."""
    cells = []
    for i in range(n):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.rattle(0.05, seed=i)
        atoms.calc = EMT()
        atoms.info["REF_energy"] = atoms.get_potential_energy()
        atoms.arrays["REF_forces"] = atoms.get_forces()
        cells.append(atoms)
    return cells


def emt_labels(n: int, seed: int) -> list[LabelledStructure]:
    return [emt_label(a) for a in h2_cu111_structures(n, np.random.default_rng(seed))]


def candidates() -> list[CandidateStructure]:
    cu = bulk("Cu", "fcc", cubic=True)
    cu.rattle(0.05, seed=1)
    h2 = molecule("H2", vacuum=4.0)
    h2.pbc = True
    return [
        CandidateStructure(structure=AseAtomsAdaptor.get_structure(a).as_dict())
        for a in (cu, cu111_slab(), h2)
    ]


def run_label(store, oracle: OracleConfig, cands, campaign: str = "c"):
    job = LabelMaker(oracle=oracle, campaign=campaign).make(cands)
    # atomate2 writes files into the job folder: keep them out of the checkout
    root = tempfile.mkdtemp(prefix="frostline-label-")
    responses = run_locally(job, store=store, create_folders=True, root_dir=root, log=False)
    store.connect()
    labels = [LabelledStructure.model_validate(x) for x in job.output.resolve(store)]
    n_oracle_jobs = sum(
        1
        for uuid in responses
        for r in responses[uuid].values()
        if isinstance(r.output, ForceFieldTaskDocument)
    )
    return labels, n_oracle_jobs
