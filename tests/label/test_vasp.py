"""The VASP oracle: atomate2's MP static maker, real input files, parsing into labels.

There is no VASP binary (nor POTCAR files) here. Inputs are written by atomate2/pymatgen with
``potcar_spec=True`` (a ``POTCAR.spec`` with the POTCAR symbols instead of the licensed files;
no fake POTCAR folder needed). The VASP run itself is the one mock: atomate2's ``run_vasp`` is
replaced by a copy of the hand-made outputs in ``tests/data/vasp_cu4`` (see
``tests/data/make_vasprun.py``), and everything after it is atomate2's real code (``TaskDoc``
parsing) and frostline's (conversion, retry, records).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from atomate2.vasp.files import write_vasp_input_set
from jobflow import run_locally
from pymatgen.io.ase import AseAtomsAdaptor
from pymatgen.io.vasp import Incar, Kpoints

from frostline.config import OracleConfig
from frostline.label.jobs import LabelMaker
from frostline.label.oracles import oracle_maker
from frostline.schemas import CandidateStructure, LabelledStructure
from frostline.store import Records

DATA = Path(__file__).resolve().parents[1] / "data" / "vasp_cu4"
sys.path.insert(0, str(DATA.parent))
from make_vasprun import cu4, emt_reference  # noqa: E402

SPEC = {"write_input_set_kwargs": {"potcar_spec": True}}  # runtime only: not in the hash


def vasp_oracle(**settings) -> OracleConfig:
    return OracleConfig(name="vasp", settings={**SPEC, **settings})


def test_vasp_inputs_are_mp_static_with_user_incar(tmp_path):
    atoms = cu4() + Atoms("H", positions=[[0.9, 0.9, 0.0]])
    structure = AseAtomsAdaptor.get_structure(atoms)
    maker = oracle_maker(vasp_oracle(incar={"ENCUT": 600, "LREAL": "Auto"}))
    assert type(maker).__name__ == "MPGGAStaticMaker"
    write_vasp_input_set(structure, maker.input_set_generator, directory=tmp_path, potcar_spec=True)
    incar = Incar.from_file(tmp_path / "INCAR")
    assert incar["ENCUT"] == 600 and incar["LREAL"] == "Auto"  # user overrides
    assert incar["NSW"] == 0 and incar["PREC"] == "Accurate" and incar["LASPH"] is True  # MP
    assert incar["ISPIN"] == 2 and "MAGMOM" in incar
    assert (tmp_path / "POTCAR.spec").read_text().split() == ["Cu_pv", "H"]  # MP POTCARs
    kpoints = Kpoints.from_file(tmp_path / "KPOINTS")
    assert kpoints.style.name == "Gamma" and all(k >= 1 for k in kpoints.kpts[0])
    assert not (tmp_path / "POTCAR").exists()

    retry = oracle_maker(vasp_oracle(incar={"ENCUT": 600}), attempt=1)
    write_vasp_input_set(
        structure, retry.input_set_generator, directory=tmp_path / "r", potcar_spec=True
    )
    incar = Incar.from_file(tmp_path / "r" / "INCAR")
    assert incar["ALGO"] == "All" and incar["NELM"] >= 200 and incar["ENCUT"] == 600


@pytest.fixture
def fake_vasp(monkeypatch):
    """Replace the VASP binary: each run copies the next prepared output set into the job dir."""
    runs: list[dict] = []
    outputs = ["vasprun.xml"]

    def run_vasp(*args, **kwargs):
        cwd = Path.cwd()
        runs.append(Incar.from_file(cwd / "INCAR"))
        name = outputs[min(len(runs), len(outputs)) - 1]
        shutil.copy(DATA / name, cwd / "vasprun.xml")
        for extra in ("OUTCAR", "CONTCAR"):
            shutil.copy(DATA / extra, cwd / extra)

    monkeypatch.setattr("atomate2.vasp.jobs.base.run_vasp", run_vasp)
    return runs, outputs


def label(store, oracle, atoms, root) -> LabelledStructure:
    cand = CandidateStructure(structure=AseAtomsAdaptor.get_structure(atoms).as_dict())
    job = LabelMaker(oracle=oracle, campaign="v").make([cand])
    run_locally(job, store=store, create_folders=True, root_dir=root, log=False)
    store.connect()
    (lab,) = [LabelledStructure.model_validate(x) for x in job.output.resolve(store)]
    return lab


def test_vasp_outputs_become_a_label(job_store, tmp_path, fake_vasp):
    runs, _ = fake_vasp
    atoms = cu4()[[3, 1, 0, 2]]  # the candidate's own atom order, not VASP's
    lab = label(job_store, vasp_oracle(), atoms, tmp_path)
    assert lab.status == "ok" and lab.oracle == "vasp" and len(runs) == 1
    energy, forces, stress_kbar = emt_reference(cu4())
    assert np.isclose(lab.energy, energy, atol=1e-6)
    assert np.allclose(lab.forces, forces[[3, 1, 0, 2]], atol=1e-6)  # back in candidate order
    ref = cu4()
    ref.calc = __import__("ase.calculators.emt", fromlist=["EMT"]).EMT()
    assert np.allclose(lab.stress, ref.get_stress(), atol=1e-7)  # kbar → eV/Å³, ASE sign
    stored = Records(job_store).connect().find("labelled", {"campaign": "v"})
    assert len(stored) == 1 and stored[0]["job_uuid"] == lab.job_uuid


def test_unconverged_vasp_is_retried_with_escalated_incar(job_store, tmp_path, fake_vasp):
    runs, outputs = fake_vasp
    outputs[:] = ["vasprun_unconverged.xml", "vasprun.xml"]
    lab = label(job_store, vasp_oracle(), cu4(), tmp_path)
    assert len(runs) == 2 and lab.status == "ok"
    assert runs[0].get("ALGO") != "All" and runs[1]["ALGO"] == "All" and runs[1]["NELM"] >= 200

    outputs[:] = ["vasprun_unconverged.xml"]  # never converges: one retry, then failed
    runs.clear()
    lab = label(job_store, vasp_oracle(incar={"ENCUT": 700}), cu4(), tmp_path)
    assert len(runs) == 2 and lab.status == "failed" and "after 2 attempts" in lab.reason
