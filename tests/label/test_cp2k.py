"""Real CP2K (Debian's cp2k package) through atomate2's CP2K StaticMaker, as a frostline oracle.

No mocks: CP2K runs on two tiny boxes (a Cu2 dimer, an H2 molecule). The labels are compared
with a direct CP2K run of the same input file whose output is read here with a few regular
expressions and ``ase.units`` (independent of pymatgen's parser and of frostline's unit
conversion).
"""

from __future__ import annotations

import gzip
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.stress import full_3x3_to_voigt_6_stress
from ase.units import Bohr, GPa, Hartree
from jobflow import run_locally
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from frostline.config import OracleConfig
from frostline.label.cp2k import cp2k_command
from frostline.label.jobs import LabelMaker
from frostline.schemas import CandidateStructure, LabelledStructure
from frostline.store import Records

CU_DZVP = "1cb667d46246a7d4e7979aba3afbfc33"  # DZVP-MOLOPT-PBE-GTH-q11 (BASIS_MOLOPT_UZH)
H_DZVP = "f2e3c830e22f84e22467ecf51331d835"  # DZVP-MOLOPT-PBE-GTH-q1 (BASIS_MOLOPT_UZH)


def cheap_cp2k(**input_overrides) -> OracleConfig:
    """PBE, 500 Ry, Gamma point, DZVP basis: cheap enough for a test on two cores."""
    return OracleConfig(
        name="cp2k",
        settings={
            "input": {
                "cutoff": 500,
                "rel_cutoff": 50,
                "eps_default": 1e-10,
                "ot": False,
                "basis_and_potential": {"Cu": {"basis": CU_DZVP}, "H": {"basis": H_DZVP}},
                **input_overrides,
            },
            "kpoints": "gamma",
            "omp_threads": 2,
        },
    )


def cu2() -> CandidateStructure:
    atoms = Atoms("Cu2", positions=[[0, 0, 0], [2.25, 0.1, 0.05]], cell=[6, 5.5, 5.5], pbc=True)
    atoms.center()
    return CandidateStructure(structure=AseAtomsAdaptor.get_structure(atoms).as_dict())


def h2() -> CandidateStructure:
    atoms = Atoms("H2", positions=[[0, 0, 0], [0.70, 0.03, 0.05]], cell=[5, 5, 5], pbc=True)
    atoms.center()
    return CandidateStructure(structure=AseAtomsAdaptor.get_structure(atoms).as_dict())


def read_text(path: Path) -> str:
    if path.suffix == ".gz":
        with gzip.open(path, "rt") as fh:
            return fh.read()
    return path.read_text()


def job_files(root: Path, name: str) -> list[Path]:
    return sorted([*root.glob(f"*/{name}"), *root.glob(f"*/{name}.gz")])


def parse_cp2k_out(text: str) -> tuple[float, np.ndarray, np.ndarray]:
    """Energy (eV), forces (eV/Å), ASE Voigt stress (eV/Å³) straight from CP2K's text output."""
    energy = float(
        re.findall(r"ENERGY\| Total FORCE_EVAL \( QS \) energy \[a\.u\.\]:\s+(\S+)", text)[-1]
    )
    block = text.split("ATOMIC FORCES in [a.u.]")[-1].split("SUM OF ATOMIC FORCES")[0]
    forces = [
        [float(x) for x in line.split()[3:6]]
        for line in block.splitlines()
        if re.match(r"\s+\d+\s+\d+\s+[A-Z][a-z]?\s", line)
    ]
    tensor = text.split("STRESS| Analytical stress tensor [GPa]")[-1]
    rows = re.findall(r"STRESS\|[ ]+([xyz])[ ]+(\S+)[ ]+(\S+)[ ]+(\S+)\n", tensor)[:3]
    stress = np.array([[float(v) for v in row[1:]] for row in rows])  # GPa, CP2K's sign
    return (
        energy * Hartree,
        np.array(forces) * Hartree / Bohr,
        full_3x3_to_voigt_6_stress(-stress * GPa),
    )


def run(store, oracle, cands, root: Path) -> list[LabelledStructure]:
    job = LabelMaker(oracle=oracle, campaign="cp2k").make(cands)
    run_locally(job, store=store, create_folders=True, root_dir=root, log=False)
    store.connect()
    return [LabelledStructure.model_validate(x) for x in job.output.resolve(store)]


@pytest.fixture
def no_custodian(monkeypatch):
    """Fail if custodian's Cp2kJob (whose terminate() runs `killall cp2k.psmp`) is ever used."""
    from custodian.cp2k.jobs import Cp2kJob

    def forbidden(*args, **kwargs):
        raise AssertionError("custodian Cp2kJob used (killall-based termination)")

    monkeypatch.setattr(Cp2kJob, "run", forbidden)
    monkeypatch.setattr(Cp2kJob, "terminate", forbidden)


@pytest.mark.slow
def test_cp2k_labels_match_a_direct_cp2k_run(job_store, tmp_path, no_custodian):
    root = tmp_path / "jobs"
    root.mkdir()
    labels = run(job_store, cheap_cp2k(), [cu2(), h2()], root)
    assert [lab.status for lab in labels] == ["ok", "ok"], [lab.reason for lab in labels]
    stored = Records(job_store).connect().find("labelled", {"campaign": "cp2k", "status": "ok"})
    assert len(stored) == 2 and {d["oracle"] for d in stored} == {"cp2k"}
    assert all(d["job_uuid"] and d["oracle_settings_hash"] for d in stored)

    outputs = {}
    for out in job_files(root, "cp2k.out"):
        text = read_text(out)
        outputs["Cu" if " Cu " in text.split("ATOMIC FORCES in [a.u.]")[-1] else "H"] = out
    assert set(outputs) == {"Cu", "H"}
    by_element = {lab.to_atoms().get_chemical_symbols()[0]: lab for lab in labels}

    # H2: the same input file run directly by CP2K, parsed independently
    job_dir = outputs["H"].parent
    direct = tmp_path / "direct"
    direct.mkdir()
    for name in ("BASIS", "POTENTIAL", "cp2k.inp"):  # atomate2 may have gzipped them
        (direct / name).write_text(read_text(next(job_dir.glob(f"{name}*"))))
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    with open(direct / "cp2k.out", "w") as fh:
        subprocess.run(
            [cp2k_command(), "-i", "cp2k.inp"], cwd=direct, stdout=fh, env=env, check=True
        )
    energy, forces, stress = parse_cp2k_out((direct / "cp2k.out").read_text())
    lab = by_element["H"]
    assert abs(lab.energy - energy) < 1e-5  # eV
    assert np.abs(np.array(lab.forces) - forces).max() < 1e-4  # eV/Å
    assert np.abs(np.array(lab.stress) - stress).max() < 1e-6  # eV/Å³
    assert np.abs(forces).max() > 0.05  # a stretched bond: forces are not trivially zero

    # Cu2 (500 Ry): the label equals CP2K's own printed numbers, converted from Ha and Ha/Bohr
    energy, forces, stress = parse_cp2k_out(read_text(outputs["Cu"]))
    lab = by_element["Cu"]
    # pymatgen converts Hartree with CODATA 2018, ase.units with CODATA 2014: 8e-9 relative
    assert abs(lab.energy - energy) < 2e-8 * abs(energy)
    assert np.abs(np.array(lab.forces) - forces).max() < 1e-6
    assert np.abs(np.array(lab.stress) - stress).max() < 1e-9
    assert "CUTOFF 500" in read_text(next(outputs["Cu"].parent.glob("cp2k.inp*")))
    assert np.allclose(np.array(lab.forces).sum(axis=0), 0.0, atol=1e-3)  # Newton's third law


@pytest.mark.slow
def test_unconverged_cp2k_is_retried_escalated_then_recorded_failed(
    job_store, tmp_path, no_custodian
):
    root = tmp_path / "jobs"
    root.mkdir()
    two_steps = {"FORCE_EVAL": {"DFT": {"SCF": {"MAX_SCF": 2}}}}  # cannot converge
    (lab,) = run(job_store, cheap_cp2k(override_default_params=two_steps), [h2()], root)
    assert lab.status == "failed" and lab.energy is None
    assert "SCF" in lab.reason and "after 2 attempts" in lab.reason
    inputs = [read_text(p) for p in job_files(root, "cp2k.inp")]
    assert len(inputs) == 2  # first try + one escalated retry, no more
    retry = next(t for t in inputs if "MAX_SCF 4" in t)  # twice the SCF steps
    assert re.search(r"ALPHA 0\.02", retry)  # gentler mixing
    failed = Records(job_store).connect().find("labelled", {"status": "failed"})
    assert len(failed) == 1 and failed[0]["reason"] == lab.reason


def test_kpoint_grids_use_cp2ks_own_monkhorst_pack_scheme(tmp_path):
    """A symmetric cell's grid is not reduced by its space group into a GENERAL list.

    CP2K runs with SYMMETRY off and would use such a list without symmetrising the density,
    forces or stress; its own MONKHORST-PACK scheme reduces by time reversal only.
    """
    from ase.build import bulk

    from frostline.label.cp2k import cp2k_environment, cp2k_maker

    b2 = AseAtomsAdaptor.get_structure(bulk("CuNi", "cesiumchloride", a=2.82))  # Pm-3m
    settings = {"input": {"cutoff": 300}, "kpoints": {"grid": [4, 4, 4]}}
    generator = cp2k_maker(settings).input_set_generator
    with cp2k_environment():
        generator.get_input_set(b2).write_input(tmp_path)
    text = (tmp_path / "cp2k.inp").read_text()
    assert re.search(r"SCHEME\s+MONKHORST-PACK\s+4\s+4\s+4", text)
    assert "GENERAL" not in text and not re.search(r"^\s*KPOINT\s", text, re.M)
    with pytest.raises(ValueError, match="kpoints.grid"):
        cp2k_maker({"kpoints": {"grid": [4, 0, 4]}})


@pytest.fixture
def pristine_pymatgen(monkeypatch):
    """No CP2K settings of pymatgen in the environment or in ``pymatgen.core.SETTINGS``."""
    from pymatgen.core import SETTINGS

    for key in ("PMG_CP2K_DATA_DIR", "PMG_DEFAULT_CP2K_FUNCTIONAL"):
        monkeypatch.delenv(key, raising=False)
        monkeypatch.delitem(SETTINGS, key, raising=False)
    return SETTINGS


def test_cp2k_job_writes_its_input_and_leaves_the_environment_as_it_was(
    tmp_path, pristine_pymatgen, no_custodian
):
    """The CP2K set-up lives for the job only: pymatgen's settings are gone after it."""
    from frostline.label.cp2k import Cp2kStaticLabelMaker, cp2k_environment, cp2k_maker

    settings = pristine_pymatgen
    env_before, settings_before = dict(os.environ), dict(settings)
    with cp2k_environment() as data_dir:
        assert os.environ["PMG_CP2K_DATA_DIR"] == settings["PMG_CP2K_DATA_DIR"] == str(data_dir)
        assert settings["PMG_DEFAULT_CP2K_FUNCTIONAL"] == "PBE"
    assert dict(os.environ) == env_before and dict(settings) == settings_before
    with pytest.raises(RuntimeError, match="inside"), cp2k_environment():
        raise RuntimeError("inside")  # restored on an error too
    assert dict(os.environ) == env_before and dict(settings) == settings_before

    # a real job: input written, `true` instead of CP2K (empty output), the failure returned
    maker = cp2k_maker({**cheap_cp2k().settings, "command": "true"})
    assert isinstance(maker, Cp2kStaticLabelMaker)
    job = maker.make(Structure.from_dict(h2().structure))
    responses = run_locally(job, create_folders=True, root_dir=tmp_path, log=False)
    output = responses[job.uuid][1].output
    assert output["failed"] and "did not finish" in output["reason"]
    assert "DZVP-MOLOPT" in read_text(next(tmp_path.glob("*/cp2k.inp*")))
    assert dict(os.environ) == env_before and dict(settings) == settings_before
