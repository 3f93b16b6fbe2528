"""Surrogate distillation: linear ACE fits to a MACE teacher, slabs, store round trip, flow."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_campaign

from frostline.config import ConfigError, DistillConfig, parse_config
from frostline.distill.ace import (
    ACEError,
    BasisSpec,
    SurrogateCalculator,
    ace_ready,
    build_basis,
    design_matrix,
    fit_linear_ace,
)
from frostline.distill.jobs import (
    DistillMaker,
    build_surrogate,
    export_surrogate,
    store_surrogate,
)
from frostline.distill.teacher import generate_teacher_data, split_by_group
from frostline.distill.validate import md_stability, teacher_errors
from frostline.finetune.committee import committee_calculator
from frostline.structures import cu111_slab, h2_cu111_structures, h2_on_slab

TINY = DistillConfig(
    n_teacher_structures=36,
    md_steps=20,
    sample_every=4,
    basis_sizes=[12, 30],
    cutoffs=[5.0],
    target_force_mae_mev_per_a=1.0,  # unreachable: the sweep tries every size
    stability_steps=20,
)


def slab_with_h2(seed: int = 0, vacuum: float = 6.0):
    """Cu(111) 2x2x3 with H2, periodic in x and y only."""
    from ase.build import fcc111

    slab = fcc111("Cu", size=(2, 2, 3), vacuum=vacuum)
    assert list(slab.pbc) == [True, True, False]
    return h2_on_slab(slab, np.random.default_rng(seed))


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One torch thread: MACE on 14-atom cells is ~10x slower with 2 threads on a busy machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def teacher(foundation):
    return committee_calculator([foundation], device="cpu")


@pytest.fixture(scope="module")
def built(teacher, tmp_path_factory):
    """A tiny surrogate of the mini foundation on H2/Cu(111) data (some slabs non-periodic)."""
    rng = np.random.default_rng(1)
    seeds = h2_cu111_structures(6, rng)
    seeds.append(slab_with_h2(3))
    return build_surrogate(
        teacher,
        seeds,
        ["Cu", "H"],
        tmp_path_factory.mktemp("surrogate"),
        TINY,
        temperatures=[300.0, 800.0],
    )


def test_tiny_fit_reproduces_teacher_forces(built):
    """Held-out teacher data: force MAE far below the forces' own size; sweep grows with size."""
    holdout = built.holdout_samples()
    assert holdout and len(built.train) > len(holdout)
    assert {s.source for s in built.samples} == {"seed", "strain", "defect", "md"}
    calc = SurrogateCalculator(built.files["yace"])
    m = teacher_errors(calc, holdout)
    scale = np.mean(np.abs(np.concatenate([s.forces.ravel() for s in holdout]))) * 1000
    assert m.force_mae_mev_per_a < 150.0, m
    assert m.force_mae_mev_per_a < 0.25 * scale, (m, scale)
    assert m.energy_mae_mev_per_atom < 25.0, m
    sizes = [p.n_functions_per_element for p in built.sweep]
    assert sizes == [12, 30]  # target unreachable: every size tried, best kept
    assert built.sweep[1].force_mae_mev_per_a < built.sweep[0].force_mae_mev_per_a
    assert built.chosen.n_functions_per_element == 30
    # the calculator on the exported file agrees with the fitted coefficients
    assert m.force_mae_mev_per_a == pytest.approx(built.chosen.force_mae_mev_per_a, rel=1e-6)


def test_yace_loads_in_pyace_calculator(built):
    from pyace import PyACECalculator

    atoms = built.samples[built.train[0]].atoms.copy()
    atoms = ace_ready(atoms, 5.0)
    atoms.calc = PyACECalculator(str(built.files["yace"]))
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    assert np.isfinite(energy) and forces.shape == (len(atoms), 3)
    # E0s are in the file: total energies are on the teacher's scale, not near zero
    teacher_e = built.samples[built.train[0]].energy
    assert abs(energy - teacher_e) / len(atoms) < 0.05


def test_active_set_gives_extrapolation_grades(built):
    assert built.files["asi"].exists()
    calc = SurrogateCalculator(
        built.files["yace"], active_set=built.files["asi"], bbasis=built.files["yaml"]
    )
    plain = SurrogateCalculator(built.files["yace"])
    inside = built.samples[built.train[0]].atoms.copy()
    inside.calc = calc
    gamma_in = inside.calc.get_property("gamma", inside)
    e_with_asi = inside.get_potential_energy()
    inside.calc = plain
    assert e_with_asi == pytest.approx(inside.get_potential_energy(), abs=1e-6)
    far = built.samples[built.train[0]].atoms.copy()
    far.set_cell(far.cell * 0.8, scale_atoms=True)  # compressed by 20 %: unseen environments
    far.calc = calc
    far.get_potential_energy()
    assert gamma_in.max() <= 1.5
    assert calc.results["gamma"].max() > 2 * gamma_in.max()


def test_slab_padding_keeps_energy_and_forces(built):
    """A slab periodic in x, y only: padded cell ≡ the same slab in a wide periodic box."""
    from pyace import PyACECalculator

    assert built.padded
    slab = slab_with_h2(5)
    with pytest.raises(ValueError, match="periodic"):  # why padding is needed
        probe = slab.copy()
        probe.calc = PyACECalculator(str(built.files["yace"]))
        probe.get_potential_energy()
    padded = ace_ready(slab, 5.0)
    assert padded.pbc.all() and np.allclose(padded.positions, slab.positions)
    assert np.allclose(padded.cell[:2], slab.cell[:2])
    z = slab.positions[:, 2]
    assert padded.cell[2, 2] >= z.max() - z.min() + 5.0
    boxed = slab.copy()
    boxed.center(vacuum=8.0, axis=2)
    boxed.pbc = True
    shift = boxed.positions - slab.positions
    slab.calc = SurrogateCalculator(built.files["yace"])
    boxed.calc = SurrogateCalculator(built.files["yace"])
    assert slab.get_potential_energy() == pytest.approx(boxed.get_potential_energy(), abs=1e-8)
    assert np.allclose(slab.get_forces(), boxed.get_forces(), atol=1e-8)
    assert np.allclose(shift, shift[0])
    assert "stress" not in slab.calc.results  # no stress for a padded cell
    # periodic cells and molecules are left alone
    bulk_like = cu111_slab()
    assert ace_ready(bulk_like, 5.0) is bulk_like


def test_md_stability_check(built):
    calc = SurrogateCalculator(built.files["yace"])
    atoms = cu111_slab()
    report = md_stability(calc, atoms, 300.0, steps=20)
    assert report.stable, report
    assert report.min_distance_a > 1.5 and abs(report.nve_drift_mev_per_atom) < 10


def test_store_round_trip_and_registry_export(built, job_store, tmp_path):
    from frostline.registry.models import export_model, get_model, list_models
    from frostline.store import Records

    records = Records(job_store).connect()
    doc, companions = store_surrogate(
        records,
        "t",
        built.files,
        doc_fields={"elements": ["Cu", "H"], "n_train": len(built.train)},
        extra={"parent_model_ids": ["t-it001-m0-abc"], "cutoff": 5.0},
    )
    assert doc.kind == "ace-surrogate" and doc.file.filename.endswith(".yace")
    stored = get_model(records, doc.model_id)
    assert stored["parent_model_ids"] == ["t-it001-m0-abc"]
    assert set(stored["surrogate"]["companions"]) == {"yaml", "asi"}
    assert [m["model_id"] for m in list_models(records, kind="ace-surrogate")] == [doc.model_id]
    out = export_model(records, doc.model_id, tmp_path)
    assert out.suffix == ".yace" and out.read_bytes() == built.files["yace"].read_bytes()
    (tmp_path / "all").mkdir()  # the .yace above stays: exports never overwrite a file
    files = export_surrogate(records, doc.model_id, tmp_path / "all")
    assert set(files) == {"yace", "yaml", "asi"}
    atoms = built.samples[0].atoms.copy()
    atoms.calc = SurrogateCalculator(files["yace"], active_set=files["asi"], bbasis=files["yaml"])
    assert np.isfinite(atoms.get_potential_energy())


def test_cli_exports_surrogate(built, tmp_path):
    from typer.testing import CliRunner

    from frostline.cli import app
    from frostline.config import StoreConfig
    from frostline.flows.campaign import write_config_copy
    from frostline.store import Records, make_job_store

    write_config_copy(parse_config(tiny_campaign()), tmp_path)
    records = Records(make_job_store(StoreConfig(), tmp_path)).connect()
    doc, _ = store_surrogate(records, "cli", built.files, {"elements": ["Cu", "H"]}, {})
    records.close()
    out = tmp_path / "exported.yace"
    res = CliRunner().invoke(
        app, ["models", "export", doc.model_id, "-o", str(out), "--dir", str(tmp_path)]
    )
    assert res.exit_code == 0, res.output
    assert out.read_bytes() == built.files["yace"].read_bytes()
    for key in ("yaml", "asi"):  # the companions land next to it
        if key in built.files:
            written = tmp_path / f"{doc.model_id}.{key}"
            assert written.read_bytes() == built.files[key].read_bytes()


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("basis_sizes", [2], "basis_sizes"),
        ("cutoffs", [30.0], "cutoffs"),
        ("n_teacher_structures", 3, "n_teacher_structures"),
        ("holdout_fraction", 1.5, "holdout_fraction"),
        ("temperatures", [-5.0], "temperatures"),
    ],
)
def test_bad_settings_name_the_field(field, value, match):
    with pytest.raises(ConfigError, match=rf"distill\.{match}"):
        parse_config(tiny_campaign(distill={field: value}))
    with pytest.raises(ValueError, match=rf"DistillMaker field '{match}"):
        DistillMaker(**{field: value})


def test_fit_errors_are_clear(teacher):
    spec = BasisSpec(("Cu",), 10, 5.0)
    with pytest.raises(ACEError, match="cutoff"):
        build_basis(BasisSpec(("Cu",), 10, 40.0))
    basis = build_basis(spec)
    atoms = h2_cu111_structures(3, np.random.default_rng(0))[2]  # has H, basis is Cu only
    with pytest.raises(ACEError, match="outside the basis"):
        design_matrix(basis, [atoms])
    design = design_matrix(basis, [cu111_slab()])
    with pytest.raises(ACEError, match="energy_weight"):
        fit_linear_ace(spec, design, [0.0], [np.zeros((12, 3))], energy_weight=-1)
    with pytest.raises(ValueError, match="n_teacher_structures"):
        generate_teacher_data([cu111_slab()], teacher, 2, [300.0])
    with pytest.raises(ValueError, match="holdout_fraction"):
        split_by_group([], 0.0)


def test_campaign_with_distillation_stores_surrogate(tmp_path, foundation):
    """End to end: a one-iteration campaign, then distillation; the surrogate is in the store."""
    from frostline.flows.campaign import run_campaign
    from frostline.registry.queries import open_campaign_dir

    distill = {
        "enabled": True,
        "n_teacher_structures": 24,
        "md_steps": 12,
        "sample_every": 4,
        "basis_sizes": [16],
        "stability_steps": 10,
        "speed_atoms": 50,
    }
    config = parse_config(
        tiny_campaign(
            name="dist",
            select={"trust_lo": 9.0, "trust_hi": 10.0},  # converges after one fine-tune
            distill=distill,
        )
    )
    result = run_campaign(config, tmp_path, log=False)
    assert result["iterations"] == 1 and result["final_model_ids"]  # summary keys kept
    surrogate = result["surrogate"]
    assert surrogate["parent_model_ids"] == result["final_model_ids"]
    assert surrogate["vs_oracle_validation"]["force_mae_mev_per_a"] > 0
    assert surrogate["speed_us_per_atom_step"] > 0
    records = open_campaign_dir(tmp_path)
    docs = records.find("model_docs", {"kind": "ace-surrogate"})
    assert [d["model_id"] for d in docs] == [surrogate["model_id"]]
    assert docs[0]["campaign"] == "dist" and docs[0]["metrics"]["force_mae_mev_per_a"] > 0
    data = records.get_model_file(docs[0]["model_id"], docs[0]["file"]["sha256"])
    assert data.startswith(b"elements:")
