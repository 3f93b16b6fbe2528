"""Alloy campaigns: structure generation, hull and elastic computations, per-system fan-out."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.calculators.emt import EMT
from conftest import tiny_campaign
from pydantic import ValidationError
from pymatgen.core import Composition
from pymatgen.io.ase import AseAtomsAdaptor
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
from typer.testing import CliRunner

from frostline.alloys.config import (
    GenerateConfig,
    PropertyValidationConfig,
    SpotCheckConfig,
    parse_alloy_config,
)
from frostline.alloys.generate import (
    GenerationError,
    check_structure,
    composition_counts,
    element_crystal,
    pair_correlation_error,
    prototype,
    solid_solution,
)
from frostline.alloys.properties import (
    at_volume,
    convex_hull,
    cubic_constants,
    cubic_elastic_constants,
    elastic_tensor,
    eos_scan,
)
from frostline.alloys.sets import seed_structures, spot_check_structures, validation_structures
from frostline.alloys.validate import property_errors, property_set
from frostline.config import ConfigError
from frostline.structures import min_distance


def _spacegroup(atoms) -> int:
    return SpacegroupAnalyzer(AseAtomsAdaptor.get_structure(atoms)).get_space_group_number()


# -- generation ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fractions", "n", "expected"),
    [((0.75, 0.25), 8, [6, 2]), ((0.5, 0.25, 0.25), 8, [4, 2, 2]), ((0.98, 0.02), 8, [7, 1])],
)
def test_composition_counts(fractions, n, expected):
    assert composition_counts(fractions, n) == expected


@pytest.mark.parametrize("lattice", ["fcc", "bcc", "hcp"])
def test_solid_solutions_have_exact_composition_and_vegard_volume(lattice):
    rng = np.random.default_rng(3)
    atoms = solid_solution(("Cu", "Au"), (0.75, 0.25), rng, lattice, n_atoms=8, sqs_trials=10)
    assert len(atoms) == 8
    assert atoms.get_chemical_symbols().count("Au") == 2
    v_cu, v_au = element_crystal("Cu").get_volume() / 4, element_crystal("Au").get_volume() / 4
    assert atoms.get_volume() / 8 == pytest.approx(0.75 * v_cu + 0.25 * v_au, rel=1e-6)


def test_sqs_like_decoration_beats_random_on_average():
    rng = np.random.default_rng(0)
    nn = 3.6 / np.sqrt(2) * 1.1
    random = [
        pair_correlation_error(solid_solution(("Cu", "Ni"), (0.5, 0.5), rng, "fcc", 16), nn)
        for _ in range(20)
    ]
    sqs = solid_solution(("Cu", "Ni"), (0.5, 0.5), rng, "fcc", 16, sqs_trials=40)
    assert pair_correlation_error(sqs, nn) <= min(random) + 1e-12
    assert pair_correlation_error(sqs, nn) < np.mean(random)


@pytest.mark.parametrize(
    ("name", "elements", "number", "formula"),
    [
        ("L1_2", ("Cu", "Au"), 221, "Cu3Au"),
        ("B2", ("Cu", "Ni"), 221, "CuNi"),
        ("L1_0", ("Cu", "Au"), 123, "CuAu"),
        ("L2_1", ("Ni", "Cu", "Au"), 225, "Ni2CuAu"),
    ],
)
def test_ordered_prototypes_have_their_space_group(name, elements, number, formula):
    atoms = prototype(name, elements)
    assert _spacegroup(atoms) == number
    assert Composition(atoms.get_chemical_formula()).reduced_composition == Composition(formula)
    assert _spacegroup(element_crystal("Ni")) == 225


def test_seeds_cover_the_system_without_overlaps_and_are_reproducible():
    options = GenerateConfig(surfaces=True, n_vacancies=2, n_strained=3)
    seeds = seed_structures(("Cu", "Ni", "Au"), options, np.random.default_rng(5))
    again = seed_structures(("Cu", "Ni", "Au"), options, np.random.default_rng(5))
    assert [a.get_chemical_formula() for a in seeds] == [a.get_chemical_formula() for a in again]
    assert np.allclose(seeds[-1].positions, again[-1].positions)
    # the pure elements first (E0s of the initial set are determined), then everything else
    assert [a.get_chemical_formula() for a in seeds[:3]] == ["Cu4", "Ni4", "Au4"]
    # then the same elements compressed and expanded (EOS curvature in the initial set)
    assert [a.info["prototype"] for a in seeds[3:9]] == ["A1-V0.94"] * 3 + ["A1-V1.06"] * 3
    for ratio, scaled in zip([0.94] * 3 + [1.06] * 3, seeds[3:9], strict=True):
        formulas = [a.get_chemical_formula() for a in seeds[:3]]
        reference = seeds[formulas.index(scaled.get_chemical_formula())]
        assert scaled.get_volume() == pytest.approx(ratio * reference.get_volume())
    cu_ni = ("Cu", "Ni")
    plain = seed_structures(cu_ni, GenerateConfig(volume_scales=[]), np.random.default_rng(0))
    scanned = seed_structures(cu_ni, GenerateConfig(), np.random.default_rng(0))
    assert len(plain) == len(scanned) - 4
    with pytest.raises(ValidationError, match="volume ratios"):
        GenerateConfig(volume_scales=[0.5])
    kinds = {a.info["prototype"] for a in seeds}
    assert {"fcc-sqs", "L1_2-perturbed", "L2_1-perturbed", "fcc-surface"} <= kinds
    assert any(k.endswith("-vacancy") for k in kinds) and any(
        k.endswith("-strained") for k in kinds
    )
    formulas = {Composition(a.get_chemical_formula()).reduced_composition for a in seeds}
    expected = {Composition(f) for f in ("CuNi", "CuAu", "NiAu", "CuNiAu2")}
    assert expected <= formulas  # binaries and the ternary
    assert min(min_distance(a) for a in seeds) >= options.min_distance
    with pytest.raises(GenerationError, match="apart"):
        check_structure(element_crystal("Cu").repeat((2, 1, 1)) + seeds[0][:1], 1.5)


def test_validation_set_marks_cubic_prototypes():
    rng = np.random.default_rng(1)
    structures = validation_structures(("Cu", "Au"), PropertyValidationConfig(), rng)
    cubic = {a.info["prototype"] for a in structures if a.info["cubic"]}
    assert cubic == {"A1", "L1_2", "B2"}
    assert all(_spacegroup(a) in (221, 225) for a in structures if a.info["cubic"])
    ternary = validation_structures(("Cu", "Ni", "Au"), PropertyValidationConfig(), rng)
    # a ternary validates the elastic constants of its elements and ternary prototypes only
    assert {a.info["prototype"] for a in ternary if a.info["cubic"]} == {"A1", "L2_1"}
    assert {a.info["prototype"] for a in ternary} == {"A1", "L1_2", "L2_1", "fcc-sqs"}
    assert all(
        len(set(a.get_chemical_symbols())) == 3 for a in ternary if "sqs" in a.info["prototype"]
    )


def test_spot_check_cells_are_the_smallest_displaced_and_strained():
    rng = np.random.default_rng(2)
    held_out = validation_structures(("Cu", "Au"), PropertyValidationConfig(), rng)
    cells = spot_check_structures(held_out, SpotCheckConfig(n=3, oracle={"name": "emt"}), rng)
    smallest = sorted(len(a) for a in held_out)[:3]
    assert sorted(len(a) for a in cells) == smallest
    assert all(min_distance(a) > 1.5 for a in cells)
    for atoms in cells:  # no longer symmetric: forces and shear stress are not zero
        atoms.calc = EMT()
        assert np.abs(atoms.get_forces()).max() > 0.05
        assert np.abs(atoms.get_stress()[3:]).max() > 1e-4
    assert spot_check_structures(held_out, SpotCheckConfig(), rng) == []  # n = 0: off
    assert SpotCheckConfig().oracle.name == "cp2k"  # the default reference is DFT


# -- config -------------------------------------------------------------------------------------
def _alloy_config(**overrides) -> dict:
    template = tiny_campaign()
    for key in ("name", "elements"):
        template.pop(key)
    template["system"] = {"n_initial": 4, "n_validation": 2}
    config = {
        "name": "alloys",
        "alloys": {"systems": ["Cu-Ni", "Cu-Au"]},
        "generate": {"compositions": [0.5], "n_strained": 1, "n_vacancies": 0, "sqs_trials": 5},
        "validation": {"compositions": [0.5], "eos_points": 5, "sqs_trials": 5},
        "campaign": template,
    }
    config.update(overrides)
    return config


def test_systems_expand_from_elements():
    cfg = parse_alloy_config(
        _alloy_config(alloys={"elements": ["Cu", "Ni", "Au"], "ternaries": True})
    )
    assert cfg.systems == [("Cu", "Ni"), ("Cu", "Au"), ("Ni", "Au"), ("Cu", "Ni", "Au")]
    sys_cfg = cfg.system_config(cfg.systems[-1], "/x/seeds.extxyz")
    assert sys_cfg.name == "alloys-Cu-Ni-Au" and sys_cfg.elements == ["Au", "Cu", "Ni"]
    assert sys_cfg.system.builder is None and str(sys_cfg.system.seeds_file) == "/x/seeds.extxyz"
    assert sys_cfg.finetune.epochs == 2  # from the template


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"alloys": {"systems": ["Cu-Xx"]}}, "field 'alloys.systems'"),
        ({"alloys": {"elements": ["Cu"], "binaries": True}}, "field 'alloys'"),
        ({"campaign": {"name": "x"}}, "field 'campaign.name': set by the alloy campaign"),
        ({"campaign": {"finetune": {"epochs": 0}}}, "field 'campaign.finetune.epochs'"),
        ({"campaign": {"system": {"builder": "h2_cu111"}}}, "field 'campaign.system.builder'"),
        ({"campaign": {"oracle": {"name": "cp2k"}}}, "field 'campaign.oracle.name'"),
        ({"generate": {"compositions": [1.5]}}, "field 'generate.compositions'"),
        (
            {"validation": {"spot_checks": {"n": 1, "systems": ["Cu-Pt"]}}},
            "field 'validation.spot_checks.systems': Cu-Pt not among",
        ),
    ],
)
def test_config_errors_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match="alloys.yaml: " + message.replace(".", r"\.")):
        parse_alloy_config(_alloy_config(**overrides), source="alloys.yaml")


# -- properties ---------------------------------------------------------------------------------
def test_hull_on_a_toy_phase_diagram():
    # A-B with A = Cu, B = Au: AB on the hull, A3B 50 meV/atom above the A–AB tie line
    comps = ["Cu", "Au", "CuAu", "Cu3Au", "CuAu3"]
    energies = [-1.0, -2.0, -1.5 - 0.4, -1.25 - 0.15, -1.75 - 0.3]
    hull = convex_hull(comps, energies, tolerance=0.005)
    ef = [h.formation_energy for h in hull]
    assert ef == pytest.approx([0.0, 0.0, -0.4, -0.15, -0.3])
    # tie lines: Cu–CuAu at x = 1/4: -0.2 -> A3B 0.05 above; CuAu–Au at x = 3/4: -0.2 -> stable
    assert [h.e_above_hull for h in hull] == pytest.approx([0.0, 0.0, 0.0, 0.05, 0.0], abs=1e-9)
    assert [h.stable for h in hull] == [True, True, True, False, True]
    with pytest.raises(ValueError, match="pure element"):
        convex_hull(["Cu", "CuAu"], [-1.0, -2.0])


@pytest.fixture(scope="module")
def emt_cu():
    cu = element_crystal("Cu")
    eos = eos_scan(cu, EMT(), points=9, volume_range=0.04)
    tensor = elastic_tensor(at_volume(cu, eos.volume_per_atom), EMT(), 0.005, steps=2)
    constants = cubic_constants(tensor)
    return cu, eos, constants


def test_cubic_two_strain_shortcut_matches_the_full_fit(emt_cu):
    cu, eos, full = emt_cu
    direct = cubic_elastic_constants(at_volume(cu, eos.volume_per_atom), EMT(), 0.005)
    for key in ("C11", "C12", "C44", "B"):
        assert direct[key] == pytest.approx(full[key], rel=0.005), key


def test_emt_cu_bulk_modulus_from_eos_and_from_elastic_constants_agree(emt_cu):
    _, eos, c = emt_cu
    assert eos.bulk_modulus_gpa == pytest.approx(c["B"], rel=0.02)
    assert eos.volume_per_atom == pytest.approx(11.57, abs=0.05)  # EMT a = 3.59 Å
    assert c["C11"] > c["C12"] > 0 and c["C44"] > 0  # mechanically stable cubic crystal


@pytest.mark.slow
def test_emt_cu_elastic_constants_agree_with_atomate2_elastic_workflow(emt_cu, tmp_path):
    """Our clamped-ion strain–stress fit vs atomate2's forcefield ElasticMaker (relaxed ions)."""
    from atomate2.forcefields.flows.elastic import ElasticMaker
    from jobflow import run_locally

    cu, _, ours = emt_cu
    with pytest.warns(UserWarning, match="symmetry"):
        maker = ElasticMaker.from_force_field_name(
            {"@module": "ase.calculators.emt", "@callable": "EMT"}
        )
    flow = maker.make(AseAtomsAdaptor.get_structure(cu))
    responses = run_locally(flow, root_dir=tmp_path, log=False, ensure_success=True)
    doc = responses[flow.output.uuid][1].output
    theirs = cubic_constants(np.asarray(doc.elastic_tensor.ieee_format))
    for key in ("C11", "C12", "C44"):
        assert ours[key] == pytest.approx(theirs[key], rel=0.03), key


def test_property_set_and_errors_on_emt():
    rng = np.random.default_rng(2)
    options = PropertyValidationConfig(compositions=[0.5], sqs_trials=5)
    structures = validation_structures(("Cu", "Ni"), options, rng)
    ref = property_set(structures, EMT(), "oracle", eos_points=5, elastic_strain=0.005)
    assert [s.formation_energy for s in ref.structures[:2]] == pytest.approx([0.0, 0.0])
    assert sum(s.elastic is not None for s in ref.structures) == 5  # Cu, Ni, 2 x L1_2, B2
    same = property_errors(ref, ref)
    assert same.formation_energy_mae_mev == 0 and same.stability_agreement == 1.0
    shifted = ref.model_copy(deep=True)
    for s in shifted.structures:
        s.formation_energy += 0.010
        s.elastic = {k: v + 2.0 for k, v in s.elastic.items()} if s.elastic else None
    errors = property_errors(shifted, ref)
    assert errors.formation_energy_mae_mev == pytest.approx(10.0)
    assert errors.elastic_mae_gpa["C44"] == pytest.approx(2.0) and errors.n_elastic == 5


# -- fan-out ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def alloy_campaign(tmp_path_factory, foundation):
    from frostline.alloys.flows import run_alloy_campaign

    folder = tmp_path_factory.mktemp("alloys")
    template = _alloy_config()["campaign"]
    template["convergence"] = {"max_iterations": 1, "label_budget": 50}
    template["finetune"] = {**template["finetune"], "epochs": 1}
    validation = {**_alloy_config()["validation"], "compare_foundation": False}
    # spot checks with the campaign's own oracle (EMT) as reference: the oracle's error must be
    # exactly zero, the fine-tuned committee's not (CP2K as the reference: tests/test_cp2k.py)
    validation["spot_checks"] = {"n": 2, "oracle": {"name": "emt"}, "systems": ["Cu-Ni"]}
    config = parse_alloy_config(_alloy_config(campaign=template, validation=validation))
    summary = run_alloy_campaign(config, folder, log=False)
    return folder, summary


@pytest.mark.slow
def test_fan_out_runs_one_loop_per_system_and_validates(alloy_campaign):
    from frostline.registry.queries import campaign_status, open_campaign_dir

    folder, summary = alloy_campaign
    rows = {r["system"]: r for r in summary["systems"]}
    assert set(rows) == {"Cu-Ni", "Cu-Au"}
    records = open_campaign_dir(folder)
    for system, row in rows.items():
        assert row["al_campaign"] == f"alloys-{system}"
        assert row["iterations"] == 1 and row["labels_spent"] == 4
        status = campaign_status(records, row["al_campaign"])
        assert status["n_train_labels"] == 4
        assert set(status["elements"]) == set(system.split("-"))  # each loop its own elements
        ft = row["errors"]["finetuned"]
        assert ft["n_structures"] == 7 and ft["n_elastic"] == 5
        assert 0 <= ft["stability_agreement"] <= 1 and ft["formation_energy_mae_mev"] >= 0
        assert set(row["errors"]) == {"finetuned"}  # compare_foundation off
        labels = records.find("labelled", {"campaign": f"alloys/{system}/spot-checks"})
        spot = row["spot_checks"]
        if system != "Cu-Ni":  # spot checks restricted to Cu-Ni: nothing bought for Cu-Au
            assert spot is None and labels == []
            continue
        assert spot["reference"] == "emt" and spot["n_structures"] == 2 and not spot["failures"]
        assert spot["force_mae_mev_per_a"]["oracle"] == pytest.approx(0.0, abs=1e-9)
        assert spot["stress_mae_gpa"]["oracle"] == pytest.approx(0.0, abs=1e-9)
        assert spot["force_mae_mev_per_a"]["finetuned"] > 0.1
        assert spot["reference_force_scale_mev_per_a"] > 10  # displaced: real forces
        assert len(labels) == 2 and {d["role"] for d in labels} == {"spot check"}
    docs = records.find("validations", {"campaign": "alloys"})
    assert {d["system"] for d in docs} == {"Cu-Ni", "Cu-Au"}
    for d in docs:  # the fine-tuned committee of that system's loop was validated
        models = records.find("model_docs", {"model_id": {"$in": d["model_ids"]}})
        assert {m["campaign"] for m in models} == {f"alloys-{d['system']}"}
    assert len(records.find("alloy_summaries")) == 1
    records.close()
    assert sorted(p.rsplit("/", 1)[-1] for p in summary["plots"]) == [
        "elastic_parity.png",
        "formation_energy_parity.png",
        "hulls.png",
    ]
    for p in summary["plots"]:
        assert (folder / "plots" / p.rsplit("/", 1)[-1]).stat().st_size > 10_000


@pytest.mark.slow
def test_alloys_summary_cli(alloy_campaign):
    from frostline.cli import app

    folder, summary = alloy_campaign
    out = CliRunner().invoke(app, ["alloys", "summary", str(folder), "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert [r["system"] for r in doc["systems"]] == [r["system"] for r in summary["systems"]]
    table = CliRunner().invoke(app, ["alloys", "summary", str(folder)])
    assert table.exit_code == 0 and "Cu-Au" in table.stdout
    assert "spot checks against the reference oracle" in table.stdout
    status = CliRunner().invoke(app, ["status", str(folder), "--campaign", "alloys-Cu-Ni"])
    assert status.exit_code == 0, status.output


def test_eos_scan_is_centred_on_the_calculators_own_minimum():
    """A scan started 12 % off the equilibrium volume ends where one started there ends."""
    cu = element_crystal("Cu")
    at_minimum = eos_scan(cu, EMT(), points=5, volume_range=0.06)
    for start in (0.88, 1.12):
        off = eos_scan(at_volume(cu, start * at_minimum.volume_per_atom), EMT(), 5, 0.06)
        assert off.fit == "birchmurnaghan"
        assert off.volume_per_atom == pytest.approx(at_minimum.volume_per_atom, rel=2e-3)
        assert off.bulk_modulus_gpa == pytest.approx(at_minimum.bulk_modulus_gpa, rel=0.03)
        # the final scan brackets the minimum in its middle half
        low, high = min(off.volumes) / 4, max(off.volumes) / 4
        assert low + 0.25 * (high - low) <= off.volume_per_atom <= high - 0.25 * (high - low)
    # without recentring the off-centre scan extrapolates a different modulus
    stuck = eos_scan(at_volume(cu, 1.12 * at_minimum.volume_per_atom), EMT(), 5, 0.06, recenter=0)
    assert abs(stuck.bulk_modulus_gpa - at_minimum.bulk_modulus_gpa) > 5


def test_eos_without_a_minimum_falls_back_instead_of_failing():
    from ase.calculators.calculator import Calculator, all_changes

    class Expanding(Calculator):  # E decreases with volume: no minimum anywhere
        implemented_properties = ["energy"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            self.results["energy"] = -atoms.get_volume()

    cu = element_crystal("Cu")
    eos = eos_scan(cu, Expanding(), points=5, volume_range=0.05)
    assert eos.fit == "sampled"
    assert eos.volume_per_atom == pytest.approx(max(eos.volumes) / 4)
    assert eos_scan(cu, EMT(), points=5).fit == "birchmurnaghan"


def test_shipped_alloy_config_parses_and_matches_the_package_copy():
    from pathlib import Path

    from frostline.config import read_yaml

    root = Path(__file__).resolve().parents[2]
    shipped = root / "configs" / "alloys_cu_ni_au.yaml"
    packaged = root / "src" / "frostline" / "data" / "alloys_cu_ni_au.yaml"
    assert shipped.read_text() == packaged.read_text()  # `frostline demo --alloys` runs the copy
    config = parse_alloy_config(read_yaml(shipped), source=str(shipped))
    spot = config.validation.spot_checks
    assert spot.applies_to("Cu-Ni") and not spot.applies_to("Cu-Au")
    assert spot.oracle.name == "cp2k"
