"""Fine-tuning strategies (frozen, multihead replay, LoRA) and the forgetting check."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.build import fcc111
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.io import read
from conftest import tiny_campaign
from typer.testing import CliRunner

from frostline.cli import app
from frostline.config import (
    ConfigError,
    FineTuneConfig,
    ForgettingConfig,
    load_config,
    parse_config,
)
from frostline.finetune.forgetting import (
    WALL,
    ForgettingCheck,
    bulk_energy,
    check_forgetting,
    cubic_reference,
    equation_of_state,
)
from frostline.finetune.jobs import FineTuneMaker
from frostline.finetune.replay import read_heldout, replay_file_for, replay_path, replay_source
from frostline.finetune.train import MaceTrainSettings, run_mace_training
from frostline.flows.campaign import check_inputs, run_campaign
from frostline.registry.queries import campaign_status, open_campaign_dir


def emt_slabs(n: int) -> list:
    """Rattled Cu(111) slabs labelled by EMT (``REF_`` keys)."""
    out = []
    for i in range(n):
        slab = fcc111("Cu", (2, 2, 3), vacuum=5.0)
        slab.pbc = True
        slab.rattle(0.05, seed=i)
        slab.calc = EMT()
        labelled = slab.copy()
        labelled.info["REF_energy"] = slab.get_potential_energy()
        labelled.arrays["REF_forces"] = slab.get_forces()
        out.append(labelled)
    return out


class StretchedEMT(Calculator):
    """EMT of a material whose lattice is ``factor`` times copper's (energies only)."""

    implemented_properties = ("energy",)

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        shrunk = atoms.copy()
        shrunk.set_cell(atoms.cell / self.factor, scale_atoms=True)
        shrunk.calc = EMT()
        self.results = {"energy": shrunk.get_potential_energy()}


def test_strategy_arguments_reach_mace_torch(tmp_path):
    """multihead-replay passes the replay file and keeps frostline's rate; lora its rank."""
    replay = MaceTrainSettings(
        foundation_model="f.model", pt_train_file="r.extxyz", e0s="estimated"
    )
    argv = replay.to_argv(Path("t.xyz"), None, tmp_path)
    assert "--multiheads_finetuning=True" in argv and "--pt_train_file=r.extxyz" in argv
    assert "--force_mh_ft_lr=True" in argv  # mace-torch would override the lr with 1e-4
    # mace-torch trains it with its universal loss whatever --loss says: the stress term explicit
    assert "--stress_weight=1.0" in argv
    heavy = MaceTrainSettings(
        foundation_model="f.model", pt_train_file="r.extxyz", e0s="estimated", stress_weight=100
    )
    assert [a for a in heavy.to_argv(Path("t"), None, tmp_path) if "stress_weight" in a][-1] == (
        "--stress_weight=100"
    )
    frozen = MaceTrainSettings(foundation_model="f.model", freeze=6)
    assert "--multiheads_finetuning=False" in frozen.to_argv(Path("t.xyz"), None, tmp_path)
    lora = MaceTrainSettings(foundation_model="f.model", lora=True, lora_rank=2)
    assert {"--lora=True", "--lora_rank=2"} <= set(lora.to_argv(Path("t.xyz"), None, tmp_path))
    with pytest.raises(ValueError, match="finetune.e0s"):
        MaceTrainSettings(foundation_model="f", pt_train_file="r", e0s="average").to_argv(
            Path("t"), None, tmp_path
        )


def test_bad_strategy_settings_are_one_line_errors(foundation):
    with pytest.raises(ValueError, match="FineTuneMaker field 'strategy'"):
        FineTuneMaker(strategy="replay-all")
    with pytest.raises(ValueError, match="e0s"):
        FineTuneMaker(strategy="multihead-replay", e0s="average")
    with pytest.raises(ValueError, match="strategy"):
        FineTuneConfig(strategy="bogus")
    with pytest.raises(ConfigError, match="finetune"):
        parse_config(tiny_campaign(finetune={"strategy": "multihead-replay", "e0s": "average"}))
    with pytest.raises(ValueError, match="finetune.replay_file"):
        replay_source("/nonexistent.extxyz", foundation)
    # what mace-torch's universal loss (every multihead fine-tune's) would silently ignore
    with pytest.raises(ConfigError, match="finetune.loss huber cannot be used with strategy"):
        parse_config(tiny_campaign(finetune={"strategy": "multihead-replay", "loss": "huber"}))
    with pytest.raises(ConfigError, match="finetune.member_weights dirichlet cannot be used"):
        parse_config(
            tiny_campaign(
                finetune={
                    "strategy_sweep": ["frozen", "multihead-replay"],
                    "member_weights": "dirichlet",
                }  # fmt: skip
            )
        )


def test_the_replay_weight_reaches_mace_torchs_universal_loss(tmp_path):
    """mace-torch's --weight_pt_head reaches only the data it draws itself, as a config weight
    its universal loss ignores: frostline's replay set carries the weight as the property
    weights that loss reads. Measured with mace-torch's own parser, batching and loss."""
    import torch
    from mace.data import AtomicData
    from mace.data.utils import KeySpecification, config_from_atoms
    from mace.modules.loss import UniversalLoss
    from mace.tools import AtomicNumberTable, torch_geometric

    from frostline.finetune.train import replay_subset

    keys = KeySpecification(
        info_keys={"energy": "REF_energy", "stress": "REF_stress"},
        arrays_keys={"forces": "REF_forces"},
    )

    def loss(weight: float) -> float:
        settings = MaceTrainSettings(name="r", seed=3, pt_train_file=str(replay_path("mini")),
                                     num_samples_pt=6, weight_pt_head=weight)  # fmt: skip
        folder = tmp_path / str(weight)
        folder.mkdir()
        frames = read(replay_subset(settings, folder).pt_train_file, ":")
        configs = [config_from_atoms(a, keys, head_name="pt_head") for a in frames]
        table = AtomicNumberTable(sorted({int(z) for c in configs for z in c.atomic_numbers}))
        data = [AtomicData.from_config(c, z_table=table, cutoff=5.0) for c in configs]
        batch = next(iter(torch_geometric.dataloader.DataLoader(data, batch_size=len(data))))
        shape, dtype = batch["forces"].shape, batch["forces"].dtype
        noise = torch.as_tensor(np.random.default_rng(0).normal(0, 0.3, shape), dtype=dtype)
        pred = {"energy": batch["energy"] + 0.5, "forces": batch["forces"] + noise,
                "stress": batch["stress"] + 0.01}  # fmt: skip
        return float(UniversalLoss(energy_weight=10, forces_weight=10)(batch, pred))

    full, quarter, off = loss(1.0), loss(0.25), loss(0.0)
    assert full > 0 and off == 0.0
    assert 0.15 * full < quarter < 0.3 * full  # huber: linear in the weight for large errors


def test_the_replay_filter_draws_frames_of_the_fine_tuned_elements_only(tmp_path):
    """``replay_filter: combinations`` (mace-torch's ``--filter_type_pt``) draws only replay
    frames made of the training data's elements; a filter no frame passes stops the training
    with a line naming the field; ``none`` draws from every frame, as before."""
    from frostline.finetune.train import replay_subset

    def drawn(kind: str, elements: list[str]) -> list[set[str]]:
        settings = MaceTrainSettings(name="r", seed=1, pt_train_file=str(replay_path("mini-64")),
                                     num_samples_pt=40, filter_type_pt=kind)  # fmt: skip
        folder = tmp_path / f"{kind}-{''.join(elements)}"
        folder.mkdir()
        frames = read(replay_subset(settings, folder, elements).pt_train_file, ":")
        return [set(a.get_chemical_symbols()) for a in frames]

    combined = drawn("combinations", ["Au", "Cu", "Ni"])
    assert len(combined) == 40 and all(e <= {"Au", "Cu", "Ni"} for e in combined)
    assert {"Au", "Cu"} in combined or {"Au", "Ni"} in combined  # alloys, not just elements
    anything = drawn("none", ["Au", "Cu", "Ni"])
    assert any(not e <= {"Au", "Cu", "Ni"} for e in anything)
    with pytest.raises(ValueError, match="finetune.replay_filter: no frame .* exclusive"):
        drawn("exclusive", ["Au", "Cu", "Ni", "H", "O", "C"])


def test_the_campaigns_replay_filter_reaches_the_training_settings(foundation):
    """``finetune.replay_filter`` goes from the campaign file through the maker to the
    settings the replay set is drawn with (and to mace-torch for its own replay data)."""
    from frostline.config import FineTuneConfig
    from frostline.finetune.train import replay_subset
    from frostline.flows.active_learning import section_fields

    config = FineTuneConfig(strategy="multihead-replay", freeze=0, replay_filter="combinations")
    maker = FineTuneMaker(**section_fields(config, FineTuneMaker, seed=0))
    fields = maker._strategy_settings(foundation, "multihead-replay")
    assert fields["filter_type_pt"] == "combinations"
    mp = replay_subset(MaceTrainSettings(pt_train_file="mp", filter_type_pt="combinations"), ".")
    assert mp.extra["filter_type_pt"] == "combinations"  # mace-torch filters its own data


def test_replay_file_resolved_against_the_config_and_checked_before_the_run(tmp_path):
    """A relative ``finetune.replay_file`` is read beside the campaign file (like the seeds
    file); a missing one stops the campaign before any store write, naming the field."""
    config_file = tmp_path / "c.yaml"
    finetune = {"strategy": "multihead-replay", "replay_file": "pretraining.extxyz"}
    config_file.write_text(yaml.safe_dump(tiny_campaign(finetune=finetune)))
    config = load_config(config_file)
    assert config.finetune.replay_file == str(tmp_path / "pretraining.extxyz")
    with pytest.raises(ConfigError, match="finetune.replay_file: .*pretraining.extxyz"):
        check_inputs(config)
    shutil.copy(replay_path("mini"), tmp_path / "pretraining.extxyz")
    check_inputs(config)  # present now: accepted
    config.finetune.replay_file = None  # the shipped subset of the mini foundation
    check_inputs(config)


def test_shipped_replay_sets_are_the_foundations_pretraining_data(foundation):
    """The replay subset is labelled like the pretraining data: the foundation fits it about as
    well as the held-out slice of its domain, far better than it fits another target."""
    assert replay_file_for(foundation) == replay_path("mini")
    assert replay_file_for("/elsewhere/other.model") is None
    from frostline.finetune.committee import committee_calculator
    from frostline.finetune.forgetting import force_mae

    calc = committee_calculator([foundation], device="cpu")
    replay = read(replay_path("mini"), ":40")
    assert all("REF_energy" in a.info and "REF_forces" in a.arrays for a in replay)
    assert force_mae(calc, replay) < 300.0  # the mini foundation's pretraining level (~200)
    assert len(read_heldout()) > 300


@pytest.mark.slow
def test_multihead_replay_passes_the_replay_set_and_keeps_the_foundation_head(tmp_path, foundation):
    data = emt_slabs(8)
    settings = MaceTrainSettings(
        name="mh", max_num_epochs=1, foundation_model=foundation, e0s="estimated", lr=0.001,
        pt_train_file=str(replay_path("mini")), num_samples_pt=12, batch_size=4,
    )  # fmt: skip
    model_file = run_mace_training(settings, data[:6], tmp_path, valid=data[6:])
    drawn = read(tmp_path / "replay.extxyz", ":")
    assert len(drawn) == 12  # the replay set mace-torch trained its pt_head on
    log = next(tmp_path.glob("logs/mh_run-*.log")).read_text()
    assert "Using heads: ['Default', 'pt_head']" in log
    from frostline.finetune.safe_model import load_user_model_file

    both = load_user_model_file(tmp_path / "mh-multihead.model")
    assert list(both.heads) == ["pt_head", "Default"]  # the foundation head survives
    kept = load_user_model_file(model_file)
    assert list(kept.heads) == ["Default"]  # what frostline evaluates, explores and exports
    from mace.calculators import MACECalculator

    from frostline.finetune.forgetting import force_mae

    pt_head = MACECalculator(models=[both], head="pt_head", device="cpu", default_dtype="float64")
    original = MACECalculator(model_paths=foundation, device="cpu", default_dtype="float64")
    replayed = drawn[:6]
    assert force_mae(pt_head, replayed) < 1.5 * force_mae(original, replayed)
    from frostline.finetune.safe_model import model_file_to_blob, model_from_blob

    rebuilt = MACECalculator(  # stored as weights + architecture, rebuilt without unpickling
        models=[model_from_blob(model_file_to_blob(model_file), "mh")], device="cpu",
        default_dtype="float64",
    )  # fmt: skip
    kept_calc = MACECalculator(model_paths=str(model_file), device="cpu", default_dtype="float64")
    assert force_mae(rebuilt, replayed) == pytest.approx(force_mae(kept_calc, replayed))


@pytest.mark.slow
def test_lora_fine_tune_changes_only_the_adapter_weights(tmp_path, foundation):
    """Everything mace-torch's LoRA does not wrap is unchanged; a wrapped linear layer changed
    by a matrix of rank <= lora_rank (the merged adapters)."""
    data = emt_slabs(6)
    settings = MaceTrainSettings(
        name="lora", max_num_epochs=2, foundation_model=foundation, e0s="estimated", lr=0.01,
        lora=True, lora_rank=2, keep_foundation_elements=True, batch_size=2,
    )  # fmt: skip
    model_file = run_mace_training(settings, data[:4], tmp_path, valid=data[4:])
    from frostline.finetune.safe_model import load_user_model_file

    before = dict(load_user_model_file(foundation).named_parameters())
    after = dict(load_user_model_file(model_file).named_parameters())
    assert set(before) <= set(after)  # (mace-torch may rebuild a buffer as a parameter)
    untouched = [k for k in before if "symmetric_contractions" in k or "skip_tp" in k]
    assert untouched and all(torch_equal(before[k], after[k]) for k in untouched)
    linear = "interactions.0.linear_up.weight"  # an o3.Linear 32x0e -> 32x0e: LoRA-wrapped
    delta = (after[linear] - before[linear]).detach().numpy().reshape(32, 32)
    assert np.abs(delta).max() > 0  # the adapters trained
    assert np.linalg.matrix_rank(delta, tol=1e-6 * np.abs(delta).max()) <= 2


def torch_equal(a, b) -> bool:
    return bool((a == b).all())


def test_forgetting_check_flags_a_moved_lattice_constant():
    """A model whose copper is 3 % larger than its foundation's is flagged; an unchanged one
    is not; the oracle's own lattice constant is reported beside them."""
    a_emt, bulk_modulus = equation_of_state(EMT(), "Cu")
    assert a_emt == pytest.approx(3.59, abs=0.01) and 100 < bulk_modulus < 170
    moved = check_forgetting(StretchedEMT(1.03), EMT(), ["Cu", "H"], oracle=EMT())
    (cu,) = moved.lattice  # H has no cubic reference state
    assert cu.a_model == pytest.approx(1.03 * a_emt, rel=1e-3)
    assert cu.shift_percent == pytest.approx(3.0, abs=0.1)
    assert cu.a_oracle == pytest.approx(a_emt, rel=1e-6)
    assert any("lattice constant" in w and "Cu" in w for w in moved.warnings)
    kept = check_forgetting(StretchedEMT(1.002), EMT(), ["Cu"])
    assert kept.warnings == [] and kept.lattice[0].a_oracle is None
    assert kept.lattice[0].wall_model > 0.05  # EMT copper squeezed 5-25 %: lowest at 5 %, above
    strict = check_forgetting(
        StretchedEMT(1.002), EMT(), ["Cu"], limits=ForgettingConfig(max_lattice_shift_percent=0.1)
    )
    assert len(strict.warnings) == 1


class CollapsingEMT(StretchedEMT):
    """``StretchedEMT`` plus an energy hole under strong compression (no repulsive wall): the
    LoRA fine-tune of the forgetting benchmark had one (-638 eV/atom at 0.7x copper's a)."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        volume = atoms.get_volume() / len(atoms)
        self.results["energy"] -= len(atoms) * 50.0 * max(0.0, 8.0 - volume)


class Expanding(Calculator):
    """Energy falls as the cell grows: a bulk with no minimum anywhere."""

    implemented_properties = ("energy",)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results = {"energy": -atoms.get_volume()}


def test_forgetting_check_finds_a_far_well_and_flags_a_lost_bulk():
    """A lattice 25 % larger (outside the first ±12 % scan) is found by the wider scan, also
    beside a collapse under compression; a bulk with no minimum is flagged as lost, never NaN."""
    a_emt, _ = equation_of_state(EMT(), "Cu")
    far = check_forgetting(CollapsingEMT(1.25), EMT(), ["Cu"], oracle=EMT())
    (cu,) = far.lattice
    assert cu.a_model == pytest.approx(1.25 * a_emt, rel=2e-3)
    assert cu.error_percent() == pytest.approx(25.0, abs=0.3)
    assert any("away from the oracle's" in w for w in far.warnings)
    assert cu.wall_model < 0 < cu.wall_foundation  # the hole under compression is caught
    assert any("removed bulk Cu's repulsive wall" in w for w in far.warnings)
    lost = check_forgetting(Expanding(), EMT(), ["Cu"], oracle=EMT())
    (cu,) = lost.lattice
    assert cu.a_model is None and cu.shift_percent is None and cu.error_percent() is None
    assert any(w.startswith("fine-tuning lost bulk Cu: no energy minimum") for w in lost.warnings)
    assert "no bulk minimum" in lost.summary() and "nan" not in lost.summary()
    stored = ForgettingCheck.model_validate_json(lost.model_dump_json())  # a store round trip
    assert stored.lattice[0].a_model is None


class PocketEMT(EMT):
    """EMT plus an energy pocket around 0.8x copper's lattice constant, with EMT's wall below
    and above it: a fine-tuned alloy model's gold had one (-4.3 eV/atom at 0.8x, +6 at 0.75x)."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, ["energy"], system_changes)
        volume = atoms.get_volume() / len(atoms)  # copper: 6.0 Å³ at 0.8x, 4.9 at 0.75x
        pocket = 30.0 * np.exp(-(((volume - 6.0) / 0.3) ** 2))
        self.results = {"energy": self.results["energy"] - len(atoms) * pocket}


def test_the_wall_probe_finds_a_hole_between_the_well_and_its_deepest_squeeze():
    """The wall probe scans the squeezed bulk, not just its deepest point: a pocket at 0.8x is
    flagged although the bulk at 0.75x (where the probe once looked alone) lies above the well."""
    a_emt, _ = equation_of_state(EMT(), "Cu")
    a_ref = cubic_reference("Cu")[1]
    pocket = PocketEMT()
    assert bulk_energy(pocket, "Cu", WALL * a_ref) > bulk_energy(pocket, "Cu", a_emt)
    check = check_forgetting(pocket, EMT(), ["Cu"])
    (cu,) = check.lattice
    assert cu.a_model == pytest.approx(a_emt, rel=1e-3)  # the well itself is untouched
    assert cu.wall_model < -20 < 0 < cu.wall_foundation
    assert [w.split(":")[0] for w in check.warnings] == [
        "fine-tuning removed bulk Cu's repulsive wall"
    ]


class FusingEMT(EMT):
    """EMT plus an energy hole for H atoms closer than 0.45 Å: a model that lost the H-H
    repulsion while every pure bulk (and Cu-H) stays as it was."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, ["energy"], system_changes)
        h = atoms[[s == "H" for s in atoms.get_chemical_symbols()]]
        d = h.get_all_distances()[np.triu_indices(len(h), 1)] if len(h) > 1 else np.zeros(0)
        self.results = {
            "energy": self.results["energy"] - 400.0 * np.sum(np.clip(0.45 - d, 0, None))
        }


def test_forgetting_check_flags_a_lost_pair_repulsion():
    """The isolated-dimer probe sees a lost H-H repulsion that no bulk and no other pair shows."""
    check = check_forgetting(FusingEMT(), EMT(), ["H", "Cu"])
    walls = {p.pair: (p.wall_model, p.wall_foundation) for p in check.pairs}
    assert sorted(walls) == ["Cu-Cu", "Cu-H", "H-H"]
    assert walls["H-H"][0] < 0 < walls["H-H"][1]
    assert walls["Cu-H"][0] == pytest.approx(walls["Cu-H"][1]) and walls["Cu-H"][0] > 0
    assert [w.split(":")[0] for w in check.warnings] == ["fine-tuning removed the H-H repulsion"]
    stored = ForgettingCheck.model_validate_json(check.model_dump_json())  # a store round trip
    assert stored.pairs == check.pairs
    assert check_forgetting(EMT(), EMT(), ["H", "Cu"]).warnings == []


def test_forgetting_advice_fits_the_strategy_that_forgot():
    """Replay is advised to a frozen fine-tune whose bulk moved, never to a replay fine-tune;
    a lost wall is advised labels that squeeze it, whatever the strategy (the forgetting
    benchmark's alloys replay models lost walls at several replay weights)."""
    moved = {"oracle": EMT(), "elements": ["Cu"]}
    frozen = check_forgetting(StretchedEMT(1.03), EMT(), strategy="frozen", **moved)
    replay = check_forgetting(StretchedEMT(1.03), EMT(), strategy="multihead-replay", **moved)
    assert frozen.warnings[0].endswith("try finetune.strategy: multihead-replay")
    assert "replay did not keep it" in replay.warnings[0]
    assert "strategy: multihead-replay" not in replay.warnings[0]
    assert ForgettingCheck.model_validate_json(replay.model_dump_json()).strategy == (
        "multihead-replay"
    )
    for strategy in ("frozen", "multihead-replay"):
        (fused,) = check_forgetting(FusingEMT(), EMT(), ["H"], strategy=strategy).warnings
        assert fused.endswith("contacts shorter than the labels')")
        assert "finetune.strategy" not in fused
    for strategy in ("frozen", "multihead-replay"):  # no strategy kept a bulk modulus
        soft = check_forgetting(SoftEMT(), EMT(), ["Cu"], oracle=EMT(), strategy=strategy)
        (soft,) = soft.warnings
        assert soft.startswith("fine-tuning moved bulk Cu's bulk modulus")
        assert soft.endswith("train on stress (finetune.stress_weight)")


class SoftEMT(EMT):
    """EMT at half the energy scale: the same lattice constant, half the bulk modulus."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results = {k: 0.5 * v for k, v in self.results.items()}


def test_forgetting_check_on_the_heldout_domain(foundation):
    """The foundation against itself: ratio 1 on the H/Cu frames of the held-out slice."""
    from frostline.finetune.committee import committee_calculator

    calc = committee_calculator([foundation], device="cpu")
    frames = read_heldout()[:60]
    check = check_forgetting(calc, calc, ["Cu", "H"], frames)
    assert 0 < check.n_frames < len(frames)  # only the frames of the campaign's elements
    assert check.force_mae_ratio == pytest.approx(1.0)
    assert check.warnings == []
    assert "foundation-domain force MAE" in check.summary()
    assert check.reference == "foundation data"  # no oracle: the pretraining labels
    vs_oracle = check_forgetting(calc, calc, ["Cu", "H"], frames, oracle=EMT())
    assert vs_oracle.reference == "oracle" and vs_oracle.n_frames == check.n_frames
    assert vs_oracle.force_mae_before != pytest.approx(check.force_mae_before)  # relabelled


@pytest.mark.slow
def test_campaign_records_strategy_and_forgetting(tmp_path, foundation):
    """A LoRA campaign: every model document and iteration says lora; the final forgetting
    check is in the campaign document and in ``frostline status``."""
    config = parse_config(
        tiny_campaign(
            name="lora",
            finetune={"strategy": "lora", "lora_rank": 2},
            convergence={"max_iterations": 1},
            forgetting={"enabled": True},
        )
    )
    result = run_campaign(config, tmp_path, log=False)
    assert result["forgetting"]["n_frames"] > 0
    records = open_campaign_dir(Path(tmp_path))
    docs = list(records.find("model_docs", {"campaign": "lora"}))
    assert docs and all(d["strategy"] == "lora" for d in docs)
    status = campaign_status(records)
    assert status["iterations"][0]["finetune_strategy"] == "lora"
    (cu,) = status["forgetting"]["lattice"]
    assert cu["a_oracle"] == pytest.approx(3.59, abs=0.01)  # EMT, the campaign's oracle
    res = CliRunner().invoke(app, ["status", str(tmp_path)], terminal_width=200)
    assert "forgetting:" in res.output and "lora" in res.output


class SofterEMT(EMT):
    """EMT with every energy halved: the same lattice constant, half the bulk modulus."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results = {k: 0.5 * v for k, v in self.results.items()}


def test_forgetting_check_flags_a_softened_bulk_modulus():
    """A model whose copper kept its lattice constant but lost half its stiffness is flagged on
    the bulk modulus alone, against the oracle and, without one, against the foundation."""
    soft = check_forgetting(SofterEMT(), EMT(), ["Cu"], oracle=EMT())
    (cu,) = soft.lattice
    assert cu.shift_percent == pytest.approx(0.0, abs=0.05)
    assert cu.change_percent("bulk_modulus", "model", "oracle") == pytest.approx(-50.0, abs=1.0)
    assert [w.split(":")[0] for w in soft.warnings] == [
        "fine-tuning moved bulk Cu's bulk modulus away from the oracle's"
    ]
    assert "B " in cu.text() and "GPa" in cu.text()
    alone = check_forgetting(SofterEMT(), EMT(), ["Cu"])
    assert "no oracle value" in alone.warnings[0] and "bulk modulus by -50" in alone.warnings[0]
    lenient = ForgettingConfig(max_bulk_modulus_shift_percent=60)
    assert check_forgetting(SofterEMT(), EMT(), ["Cu"], oracle=EMT(), limits=lenient).warnings == []
