"""Import of labelled extxyz files as the initial training set (system.labelled_file)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from jobflow import run_locally

from frostline.config import ConfigError, OracleConfig, load_config
from frostline.label.imported import read_labelled_file
from frostline.label.jobs import LabelMaker, store_labels
from frostline.registry.data import export_labelled
from frostline.schemas import CandidateStructure, LabelledStructure
from frostline.store import Records


def emt_frames(n: int = 3):
    frames = []
    for seed in range(n):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.rattle(0.05, seed=seed)
        atoms.calc = EMT()
        atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
        frames.append(atoms)
    h2 = molecule("H2", vacuum=3.0)
    h2.calc = EMT()
    h2.get_potential_energy(), h2.get_forces()
    return [*frames, h2]


def test_single_point_extxyz_is_imported(tmp_path):
    frames = emt_frames()
    path = tmp_path / "labels.extxyz"
    write(path, frames)
    labels = read_labelled_file(path, ["Cu", "H"], campaign="c")
    assert len(labels) == 4
    for lab, atoms in zip(labels, frames, strict=True):
        assert lab.status == "ok" and lab.oracle == "imported"
        assert lab.provenance.sampler == "import" and lab.role == "train"
        assert np.isclose(lab.energy, atoms.get_potential_energy())
        assert np.allclose(lab.forces, atoms.get_forces())
        assert lab.structure_hash
    assert np.allclose(labels[0].stress, frames[0].get_stress())


def test_ref_keys_are_imported(tmp_path):
    atoms = emt_frames(1)[0]
    plain = atoms.copy()
    plain.info["REF_energy"] = atoms.get_potential_energy()
    plain.arrays["REF_forces"] = atoms.get_forces()
    path = tmp_path / "ref.extxyz"
    write(path, plain)
    (lab,) = read_labelled_file(path, ["Cu"], oracle="vasp-pbe")
    assert lab.oracle == "vasp-pbe"
    assert np.isclose(lab.energy, atoms.get_potential_energy())
    assert np.allclose(lab.forces, atoms.get_forces())


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no forces", "has no forces"),
        ("no energy", "has no energy"),
        ("nan", "NaN"),
        ("element", "Au not listed"),
        ("shape", "forces have shape"),
    ],
)
def test_bad_files_name_the_file(tmp_path, case, message):
    atoms = emt_frames(1)[0]
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    bad = atoms.copy()
    if case == "no forces":
        bad.calc = SinglePointCalculator(bad, energy=energy)
    elif case == "no energy":
        bad.calc = SinglePointCalculator(bad, forces=forces)
    elif case == "nan":
        forces = forces.copy()
        forces[1, 2] = np.nan
        bad.calc = SinglePointCalculator(bad, energy=energy, forces=forces)
    elif case == "element":
        bad[0].symbol = "Au"
        bad.calc = SinglePointCalculator(bad, energy=energy, forces=forces)
    elif case == "shape":
        bad.info["REF_energy"] = energy
        bad.info["REF_forces"] = forces.ravel().tolist()  # not per atom
    path = tmp_path / f"bad {case}.extxyz"
    write(path, [atoms, bad])
    with pytest.raises(ConfigError, match=message) as err:
        read_labelled_file(path, ["Cu", "H"])
    assert str(path) in str(err.value) and "structure 1" in str(err.value)


def test_missing_file_names_the_field(tmp_path):
    with pytest.raises(ConfigError, match="system.labelled_file"):
        read_labelled_file(tmp_path / "nope.extxyz", ["Cu"])


def test_labelled_file_resolved_like_seeds_file(tmp_path):
    (tmp_path / "cfg").mkdir()
    cfg = tmp_path / "cfg" / "c.yaml"
    cfg.write_text("name: c\nelements: [Cu, H]\nsystem:\n  labelled_file: data/labels.extxyz\n")
    config = load_config(cfg)
    assert config.system.labelled_file == tmp_path / "cfg" / "data" / "labels.extxyz"


def test_export_import_round_trip_and_never_sent_to_oracle(job_store, tmp_path):
    """import → store → `frostline data export` → import again gives the same labels; imported
    labels pass through LabelMaker as training data without any oracle job."""
    path = tmp_path / "in.extxyz"
    write(path, emt_frames())
    imported = read_labelled_file(path, ["Cu", "H"], campaign="c")
    records = Records(job_store).connect()
    store_labels(records, imported)
    out = tmp_path / "out.extxyz"
    assert export_labelled(records, out, campaign="c") == 4
    again = read_labelled_file(out, ["Cu", "H"], campaign="c")
    for a, b in zip(imported, again, strict=True):
        assert a.structure_hash == b.structure_hash
        assert np.isclose(a.energy, b.energy)
        assert np.allclose(a.forces, b.forces)
        assert (a.stress is None and b.stress is None) or np.allclose(a.stress, b.stress)
    records.close()

    new = CandidateStructure(structure=imported[0].structure)  # also sent as a candidate
    job = LabelMaker(oracle=OracleConfig(name="emt"), campaign="c").make(
        [new], imported=[x.model_dump(mode="json") for x in imported]
    )
    responses = run_locally(job, store=job_store, create_folders=True, root_dir=tmp_path, log=False)
    job_store.connect()
    labels = [LabelledStructure.model_validate(x) for x in job.output.resolve(job_store)]
    assert len(labels) == 5  # one EMT label (imported labels have their own settings hash) + 4
    assert sum(lab.oracle == "imported" for lab in labels) == 4
    names = [r.output for uuid in responses for r in responses[uuid].values()]
    assert sum(type(o).__name__ == "ForceFieldTaskDocument" for o in names) == 1


def test_campaign_setup_imports_the_labelled_file(job_store, tmp_path):
    from frostline.config import parse_config
    from frostline.flows.jobs import setup_campaign

    path = tmp_path / "labels.extxyz"
    write(path, emt_frames())
    config = parse_config(
        {
            "name": "imp",
            "elements": ["Cu", "H"],
            "system": {
                "builder": None,
                "labelled_file": str(path),
                "n_initial": 6,
                "n_validation": 2,
            },
        }
    )
    job = setup_campaign(config.model_dump(mode="json"), "mini", "emt")
    run_locally(job, store=job_store, create_folders=True, root_dir=tmp_path, log=False)
    job_store.connect()
    out = job.output.resolve(job_store)
    assert len(out["imported"]) == 4 and len(out["initial"]) == 2  # 6 wanted, 4 imported
    assert len(out["starts"]) == 4  # no builder, no seeds file: the imported structures
    stored = Records(job_store).connect().find("labelled", {"campaign": "imp"})
    assert len(stored) == 4 and {d["provenance"]["sampler"] for d in stored} == {"import"}
    assert {d["oracle"] for d in stored} == {"imported"}
