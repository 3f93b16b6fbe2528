"""Frozen fine-tuning with mace-torch: frozen weights stay bit-identical, committee differs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase.calculators.emt import EMT
from helpers.labels import emt_label, emt_labels
from jobflow import run_locally

from frostline.config import StoreConfig
from frostline.finetune.committee import committee_calculator, fetch_model_files
from frostline.finetune.freeze import apply_freeze, count_parameters, frozen_modules
from frostline.finetune.jobs import FineTuneMaker, member_loss_weights
from frostline.finetune.train import write_training_file
from frostline.schemas import FineTuneResult
from frostline.store import Records, make_job_store


@pytest.mark.parametrize("level", [0, 1, 5, 6, 7])
def test_freeze_levels_count_requires_grad(foundation, level):
    model = torch.load(foundation, map_location="cpu", weights_only=False)
    apply_freeze(model, level)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert (trainable, sum(p.numel() for p in model.parameters())) == count_parameters(model, level)
    for name, module in model.named_children():
        for p in module.parameters():
            assert p.requires_grad == (name not in frozen_modules(level))
    if level == 6:
        assert trainable == sum(p.numel() for p in model.readouts.parameters())
    if level == 7:
        assert trainable == 0


@pytest.fixture(scope="module")
def finetuned(foundation, tmp_path_factory):
    folder = tmp_path_factory.mktemp("finetune")
    store = make_job_store(StoreConfig(), folder)
    short = {"freeze": 6, "committee_size": 2, "epochs": 3, "batch_size": 2, "lr": 0.02}
    maker = FineTuneMaker(**short, keep_foundation_elements=True, checkpoint_on="validation")
    job = maker.make(foundation, emt_labels(6, 0), emt_labels(3, 1), "ft", 0)
    run_locally(job, store=store, root_dir=folder / "jobs", create_folders=True, log=False)
    store.connect()
    return FineTuneResult.model_validate(job.output.resolve(store)), store, folder


@pytest.mark.slow
def test_frozen_parameters_bit_identical(finetuned, foundation):
    result, store, folder = finetuned
    paths = fetch_model_files(Records(store).connect(), result.models, folder / "models")
    base = torch.load(foundation, map_location="cpu", weights_only=False)
    changed = False
    for path in paths:
        tuned = torch.load(path, map_location="cpu", weights_only=False)
        # all foundation elements kept, so every frozen weight is directly comparable
        for module in ("node_embedding", "interactions", "products"):
            for (name, p0), (_, p1) in zip(
                getattr(base, module).named_parameters(),
                getattr(tuned, module).named_parameters(),
                strict=True,
            ):
                assert torch.equal(p0.double(), p1.double()), f"{module}.{name} changed"
        r0 = torch.cat([p.double().ravel() for p in base.readouts.parameters()])
        r1 = torch.cat([p.double().ravel() for p in tuned.readouts.parameters()])
        changed |= not torch.allclose(r0, r1)
    assert changed, "readouts did not train"
    assert result.trainable_parameters < result.total_parameters


@pytest.mark.slow
def test_committee_has_force_variance_and_loads_in_macecalculator(finetuned):
    result, store, folder = finetuned
    assert len(result.models) == 2
    assert len({m.file.sha256 for m in result.models}) == 2
    paths = fetch_model_files(Records(store).connect(), result.models, folder / "committee")
    calc = committee_calculator(paths)
    atoms = emt_labels(3, 5)[2].to_atoms()
    atoms.calc = calc
    atoms.get_forces()
    assert np.max(calc.results["forces_var"]) > 0
    assert result.committee_metrics is not None
    assert result.committee_metrics.force_mae_mev_per_a > 0
    docs = Records(store).connect().find("model_docs", {"campaign": "ft"})
    assert {d["model_id"] for d in docs} == {m.model_id for m in result.models}
    assert all(d["freeze_level"] == 6 and d["metrics"] for d in docs)
    for d in docs:  # no patience: every member ran its 3 epochs and kept one of them
        training = d["training"]
        assert (training["epochs_run"], training["max_epochs"]) == (3, 3)
        assert training["stopped_early"] is False and 0 <= training["best_epoch"] <= 2


@pytest.mark.slow
def test_members_keep_their_best_epoch_on_the_campaign_validation_set(finetuned):
    """checkpoint_on='validation': mace-torch's valid file is the campaign validation set."""
    from ase.io import read

    _, _, folder = finetuned
    for member in ("member0", "member1"):
        (valid,) = folder.glob(f"jobs/*/{member}/valid.extxyz")
        frames = read(valid, ":")
        expected = [v.energy for v in emt_labels(3, 1)]
        assert [f.info["REF_energy"] for f in frames] == pytest.approx(expected)
        train = read(valid.parent / "train.extxyz", ":")
        assert len(train) >= 5  # the member's whole subsample of 6 (none held out)


@pytest.mark.slow
def test_holdout_checkpointing_leaves_the_validation_set_out(foundation, tmp_path):
    store = make_job_store(StoreConfig(), tmp_path)
    maker = FineTuneMaker(freeze=6, committee_size=1, epochs=1)  # holdout: the default
    job = maker.make(foundation, emt_labels(5, 0), emt_labels(3, 1), "ho", 0)
    run_locally(job, store=store, root_dir=tmp_path / "jobs", create_folders=True, log=False)
    (train,) = tmp_path.glob("jobs/*/member0/train.extxyz")
    assert not (train.parent / "valid.extxyz").exists()  # mace-torch's own 10% holdout
    with pytest.raises(ValueError, match="checkpoint_on"):
        FineTuneMaker(checkpoint_on="best")


def test_dirichlet_member_weights_are_a_bayesian_bootstrap():
    assert member_loss_weights(5, "uniform", np.random.default_rng(0)) is None
    draws = [member_loss_weights(5, "dirichlet", np.random.default_rng(s)) for s in range(200)]
    assert all(len(w) == 5 and min(w) > 0 for w in draws)
    assert [sum(w) for w in draws] == pytest.approx([5.0] * 200)  # mean weight 1
    assert draws[0] != draws[1]  # a different draw per member seed
    assert np.std(np.ravel(draws)) == pytest.approx(np.sqrt(4 / 6), rel=0.1)  # Dirichlet(1)
    with pytest.raises(ValueError, match="member weights"):
        member_loss_weights(5, "bootstrap", np.random.default_rng(0))
    with pytest.raises(ValueError, match="member_weights"):
        FineTuneMaker(member_weights="bootstrap")
    with pytest.raises(ValueError, match="2 weights for 3 structures"):
        write_training_file(emt_labels(3, 0), Path("unused.extxyz"), weights=[1.0, 1.0])


@pytest.mark.slow
@pytest.mark.parametrize("member_weights", ["uniform", "dirichlet"])
def test_members_with_the_same_data_are_diversified(foundation, tmp_path, member_weights):
    """3 structures of 3 compositions: every member's subset is all of them.

    With ``checkpoint_on: validation`` and uniform weights mace-torch would train the members
    identically (no committee spread: every frame would look accurate). The second member,
    whose structures and weights equal the first's, gets Bayesian-bootstrap weights instead:
    the members differ whatever ``member_weights`` says.
    """
    from ase.io import read

    store = make_job_store(StoreConfig(), tmp_path)
    maker = FineTuneMaker(
        freeze=6,
        committee_size=2,
        epochs=2,
        batch_size=2,
        checkpoint_on="validation",
        member_weights=member_weights,
    )
    job = maker.make(foundation, emt_labels(3, 0), emt_labels(2, 1), "dw", 0)
    run_locally(job, store=store, root_dir=tmp_path / "jobs", create_folders=True, log=False)
    store.connect()
    result = FineTuneResult.model_validate(job.output.resolve(store))
    assert [m.n_train for m in result.models] == [3, 3]
    paths = fetch_model_files(Records(store).connect(), result.models, tmp_path / "committee")
    atoms = emt_labels(4, 5)[3].to_atoms()
    atoms.calc = committee_calculator(paths)
    atoms.get_forces()
    spread = float(np.max(atoms.calc.results["forces_var"]))
    weights = [
        [f.info.get("config_weight") for f in read(path, ":")]
        for path in sorted(tmp_path.glob("jobs/*/member*/train.extxyz"))
    ]
    assert spread > 1e-8
    assert weights[0] != weights[1]
    if member_weights == "uniform":  # member 0 as configured, member 1 diversified
        assert weights[0] == [None] * 3 and sum(weights[1]) == pytest.approx(3.0)
    else:
        assert all(sum(w) == pytest.approx(3.0) for w in weights)


@pytest.mark.slow
def test_freeze_sweep_keeps_the_level_with_lowest_validation_error(foundation, tmp_path):
    store = make_job_store(StoreConfig(), tmp_path)
    maker = FineTuneMaker(
        committee_size=2, epochs=2, batch_size=2, lr=0.02, freeze=6, freeze_sweep=(7, 0)
    )
    job = maker.make(foundation, emt_labels(5, 0), emt_labels(3, 1), "sw", 0)
    run_locally(job, store=store, root_dir=tmp_path / "jobs", create_folders=True, log=False)
    store.connect()
    result = FineTuneResult.model_validate(job.output.resolve(store))
    sweep = {p.freeze_level: p for p in result.freeze_sweep}
    assert set(sweep) == {0, 7} and sum(p.chosen for p in sweep.values()) == 1
    best = min(sweep.values(), key=lambda p: p.metrics.force_mae_mev_per_a)
    assert best.chosen and result.freeze_level == best.freeze_level
    assert sweep[7].trainable_parameters == 0 < sweep[0].trainable_parameters
    # f7 trains nothing, so it keeps the foundation's force errors; member 0 of the winner is
    # reused as committee member 0 and all members carry the chosen level
    assert all(m.freeze_level == result.freeze_level for m in result.models)
    assert result.models[0].metrics.force_mae_mev_per_a == pytest.approx(
        best.metrics.force_mae_mev_per_a
    )


@pytest.mark.slow
def test_lr_sweep_trains_the_chosen_level_at_every_rate_and_keeps_the_best(foundation, tmp_path):
    """Levels at ``lr`` first, then the best level at each other rate; lowest validation wins."""
    store = make_job_store(StoreConfig(), tmp_path)
    maker = FineTuneMaker(
        committee_size=2, epochs=2, batch_size=2, lr=0.02, freeze_sweep=(7, 6), lr_sweep=(1e-6,)
    )
    job = maker.make(foundation, emt_labels(5, 0), emt_labels(3, 1), "lrs", 0)
    run_locally(job, store=store, root_dir=tmp_path / "jobs", create_folders=True, log=False)
    store.connect()
    result = FineTuneResult.model_validate(job.output.resolve(store))
    points = result.freeze_sweep
    at_lr = [p for p in points if p.lr == 0.02]
    assert sorted(p.freeze_level for p in at_lr) == [6, 7]
    level_chosen_at_lr = min(at_lr, key=lambda p: p.metrics.force_mae_mev_per_a).freeze_level
    # the other rate ran once, at the level the level sweep chose
    assert [(p.freeze_level, p.lr) for p in points if p.lr != 0.02] == [(level_chosen_at_lr, 1e-6)]
    best = min(points, key=lambda p: p.metrics.force_mae_mev_per_a)
    assert [p.chosen for p in points].count(True) == 1 and best.chosen
    assert (result.freeze_level, result.lr) == (best.freeze_level, best.lr)
    assert all(m.freeze_level == best.freeze_level for m in result.models)
    assert result.models[0].metrics.force_mae_mev_per_a == pytest.approx(
        best.metrics.force_mae_mev_per_a
    )
    # a rate passed in (one an earlier sweep chose) skips the sweep and trains at that rate
    again = maker.make(foundation, emt_labels(5, 0), emt_labels(3, 1), "lrs", 1, 6, 0.005)
    run_locally(again, store=store, root_dir=tmp_path / "jobs2", create_folders=True, log=False)
    carried = FineTuneResult.model_validate(again.output.resolve(store))
    assert carried.freeze_sweep == [] and (carried.freeze_level, carried.lr) == (6, 0.005)


def test_lr_sweep_needs_validation(foundation):
    maker = FineTuneMaker(committee_size=1, epochs=1, lr_sweep=(0.001,))
    with pytest.raises(ValueError, match="learning-rate sweep needs validation"):
        maker.make.original(maker, foundation, emt_labels(4, 0), [], "sw", 0)


def test_freeze_sweep_needs_validation(foundation):
    maker = FineTuneMaker(committee_size=1, epochs=1, freeze_sweep=(0, 6))
    with pytest.raises(ValueError, match="freeze sweep needs validation"):
        maker.make.original(maker, foundation, emt_labels(4, 0), [], "sw", 0)


@pytest.mark.slow
def test_stress_weight_puts_the_stress_in_the_loss(foundation, tmp_path):
    """With ``stress_weight`` > 0 mace fits the stress too (molecules without stress allowed)."""
    from ase.build import bulk, molecule

    from frostline.finetune.train import MaceTrainSettings, run_mace_training

    argv = MaceTrainSettings(stress_weight=5.0).to_argv(tmp_path / "t.xyz", None, tmp_path)
    assert {"--loss=stress", "--stress_weight=5.0", "--compute_stress=True"} <= set(argv)
    plain = MaceTrainSettings().to_argv(tmp_path / "t.xyz", None, tmp_path)
    names = {a.split("=")[0] for a in plain}
    assert not names & {"--loss", "--stress_weight", "--compute_stress"}

    rng = np.random.default_rng(0)
    cells = []
    for i in range(10):  # EMT Cu under +-5 % strain: large, systematic stresses
        atoms = bulk("Cu", "fcc", a=3.61 * rng.uniform(0.95, 1.05), cubic=True)
        atoms.rattle(0.02, seed=i)
        atoms.calc = EMT()
        atoms.info["REF_energy"] = atoms.get_potential_energy()
        atoms.arrays["REF_forces"] = atoms.get_forces()
        atoms.info["REF_stress"] = atoms.get_stress()
        cells.append(atoms)
    h2 = molecule("H2", vacuum=4.0)  # no stress label
    h2.calc = EMT()
    h2.info["REF_energy"] = h2.get_potential_energy()
    h2.arrays["REF_forces"] = h2.get_forces()
    errors = {}
    for weight in (0.0, 100.0):
        settings = MaceTrainSettings(
            name=f"w{weight:g}", max_num_epochs=10, batch_size=3, lr=0.005, e0s="estimated",
            energy_weight=1.0, forces_weight=10.0, stress_weight=weight,
            foundation_model=foundation, freeze=0,
        )  # fmt: skip
        model = run_mace_training(settings, [*cells, h2], tmp_path / f"w{weight:g}")
        calc = committee_calculator([model])
        diff = []
        for atoms in cells:
            a = atoms.copy()
            a.calc = calc
            diff.append(np.abs(a.get_stress() - atoms.info["REF_stress"]))
        errors[weight] = float(np.mean(diff))
    assert errors[100.0] < 0.7 * errors[0.0], errors


def test_validation_metrics_include_stress_of_periodic_structures():
    """Energy/force/stress MAE and RMSE; molecules (no stress label) count for E and F only."""
    from ase.build import bulk, molecule
    from ase.units import GPa

    from frostline.finetune.evaluate import evaluate

    labels = []
    for a0 in (3.55, 3.6, 3.7):
        atoms = bulk("Cu", "fcc", a=a0, cubic=True)
        atoms.rattle(0.02, seed=1)
        labels.append(emt_label(atoms, stress_offset=1.0 * GPa))  # stress labels 1 GPa off
    labels.append(emt_label(molecule("H2", vacuum=4.0), stress=False))
    m = evaluate(EMT(), labels)
    assert m.n_structures == 4 and m.n_stress == 3
    assert m.energy_mae_mev_per_atom == pytest.approx(0, abs=1e-6)
    assert m.force_mae_mev_per_a == pytest.approx(0, abs=1e-6)
    assert m.stress_mae_gpa == pytest.approx(1.0) and m.stress_rmse_gpa == pytest.approx(1.0)


def test_validation_metrics_split_the_force_error_by_element():
    """Labels 0.3 eV/Å off on the H atoms' x components only: H carries the whole error."""
    from frostline.finetune.evaluate import error_metrics, evaluate

    labels = emt_labels(3, 4)
    for lab in labels:
        symbols = [s["species"][0]["element"] for s in lab.structure["sites"]]
        shifted = zip(lab.forces, symbols, strict=True)
        lab.forces = [[f[0] + 0.3 * (el == "H"), f[1], f[2]] for f, el in shifted]
    m = evaluate(EMT(), labels)
    n_h = sum(s["species"][0]["element"] == "H" for lab in labels for s in lab.structure["sites"])
    n_atoms = sum(len(lab.forces) for lab in labels)
    assert m.force_mae_by_element["Cu"] == pytest.approx(0, abs=1e-9)
    assert m.force_mae_by_element["H"] == pytest.approx(100.0)  # 300 meV/Å on 1 of 3 components
    assert m.force_mae_mev_per_a == pytest.approx(100.0 * n_h / n_atoms)
    # without symbols no split; a symbol list of the wrong length names the mismatch
    forces = [np.asarray(lab.forces) for lab in labels]
    assert error_metrics([0.0] * 3, forces, [0.0] * 3, forces).force_mae_by_element == {}
    with pytest.raises(ValueError, match="symbols: 1 atoms given"):
        error_metrics([0.0] * 3, forces, [0.0] * 3, forces, symbols=[["Cu"], [], []])


def test_foundation_architecture_reads_channels_l_and_cutoff(foundation, tmp_path):
    from frostline.finetune.foundation import foundation_architecture, mace_mp_medium_sized
    from frostline.finetune.train import MaceTrainSettings

    mini = foundation_architecture(foundation)
    assert mini["num_channels"] == 32 and mini["max_L"] == 0 and mini["r_max"] == 5.0
    assert mini["num_interactions"] == 2 and mini["correlation"] == 3
    medium = tmp_path / "medium.model"
    torch.save(mace_mp_medium_sized([29, 28, 79]), medium)
    arch = foundation_architecture(str(medium))
    assert (arch["num_channels"], arch["max_L"], arch["r_max"]) == (128, 1, 6.0)
    assert arch["num_radial_basis"] == 10
    # the fields are MaceTrainSettings fields: a scratch model of the same architecture
    settings = MaceTrainSettings(**arch)
    assert "--num_channels=128" in settings.to_argv(tmp_path / "t.xyz", None, tmp_path)


def test_foundation_data_drops_frames_with_extreme_forces_or_overlaps():
    from ase.build import bulk

    from frostline.finetune.foundation import drop_unphysical

    def labelled(atoms, force):
        atoms.arrays["REF_forces"] = np.zeros((len(atoms), 3))
        atoms.arrays["REF_forces"][0, 0] = force
        return atoms

    good = labelled(bulk("Cu", cubic=True), 3.0)
    violent = labelled(bulk("Cu", cubic=True), 45.0)  # > SanityLimits.max_force (20 eV/Å)
    squeezed = bulk("Cu", cubic=True)
    squeezed.positions[1] = squeezed.positions[0] + [0.4, 0.0, 0.0]
    kept = drop_unphysical([good, violent, labelled(squeezed, 1.0)])
    assert kept == [good]


def test_shipped_foundations_resolve_by_name_and_unknown_names_fail():
    from frostline.finetune.foundation import (
        FoundationError,
        foundation_architecture,
        foundation_elements,
        resolve_foundation,
    )

    small, larger = resolve_foundation("mini"), resolve_foundation("mini-64")
    assert foundation_architecture(small)["num_channels"] == 32
    assert foundation_architecture(larger)["num_channels"] == 64
    assert {"Cu", "Ni", "Au", "H"} <= set(foundation_elements(larger))
    with pytest.raises(FoundationError, match="mini-128"):
        resolve_foundation("mini-128")


@pytest.mark.slow
def test_patience_stops_a_serial_mace_training_early(tmp_path):
    """mace-torch's --patience alone never stops a non-distributed run (ACEsuit/mace#1384)."""
    import mace.tools
    from ase.build import bulk

    from frostline.finetune.train import MaceTrainSettings, run_mace_training

    rng = np.random.default_rng(1)
    cells = []
    for i in range(4):
        atoms = bulk("Cu", "fcc", a=rng.uniform(3.5, 3.7), cubic=True)
        atoms.rattle(0.05, seed=i)
        atoms.calc = EMT()
        atoms.info["REF_energy"] = atoms.get_potential_energy()
        atoms.arrays["REF_forces"] = atoms.get_forces()
        cells.append(atoms)
    anti = []  # validation labels opposite to the training labels: fitting one worsens the other
    for atoms in cells[:4]:
        a = atoms.copy()
        a.info["REF_energy"] = -atoms.info["REF_energy"]
        a.arrays["REF_forces"] = -atoms.arrays["REF_forces"]
        anti.append(a)
    settings = MaceTrainSettings(
        name="patient", max_num_epochs=60, batch_size=2, lr=0.01, num_channels=8,
        extra={"patience": "2"},
    )  # fmt: skip
    original = mace.tools.train
    model = run_mace_training(settings, cells[:4], tmp_path / "run", valid=anti)
    assert mace.tools.train is original  # the wrapper is removed again
    log = (tmp_path / "run" / "logs" / "patient_run-0.log").read_text()
    epochs = [line for line in log.splitlines() if " INFO: Epoch " in line]
    assert "Stopping optimization after 2 epochs without improvement" in log
    assert len(epochs) < 10, len(epochs)
    assert model.exists() and committee_calculator([model]) is not None


@pytest.mark.slow
def test_a_float32_foundation_fine_tunes_in_float64(foundation, tmp_path):
    """mace-torch alone fails on a foundation file of another dtype ("same dtype")."""
    from frostline.finetune.train import MaceTrainSettings, run_mace_training

    single = tmp_path / "single.model"
    torch.save(torch.load(foundation, map_location="cpu", weights_only=False).float(), single)
    cells = [label.to_atoms() for label in emt_labels(6, seed=3)]
    for atoms, label in zip(cells, emt_labels(6, seed=3), strict=True):
        atoms.info["REF_energy"] = label.energy
        atoms.arrays["REF_forces"] = np.array(label.forces)
    settings = MaceTrainSettings(
        name="ft64", max_num_epochs=2, batch_size=2, e0s="estimated", foundation_model=str(single),
        freeze=6, keep_foundation_elements=True,
    )  # fmt: skip
    model = run_mace_training(settings, cells[:4], tmp_path / "run", valid=cells[4:])
    assert settings.foundation_model == str(single)  # the caller's settings are unchanged
    tuned = torch.load(model, map_location="cpu", weights_only=False)
    assert next(tuned.parameters()).dtype == torch.float64
    assert (tmp_path / "run" / "foundation-float64.model").exists()


def _mace_log(folder: Path, name: str, lines: list[str], run: int = 0) -> None:
    logs = folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stamp = "2026-12-01 10:00:00.000 INFO: "
    (logs / f"{name}_run-{run}.log").write_text("".join(stamp + line + "\n" for line in lines))
    (logs / f"{name}_run-{run}_debug.log").write_text(stamp + "Epoch 999: debug copy\n")


def test_training_outcome_read_from_the_mace_log(tmp_path):
    from frostline.finetune.train import training_outcome

    assert training_outcome(tmp_path, "member0", 40) is None  # no log: nothing claimed
    epoch = "Epoch {}: head: Default, loss=0.1, MAE_E_per_atom= 5.0 meV, MAE_F= 50.0 meV / A"
    capped = [epoch.format(i) for i in range(40)] + ["Loaded Stage one model from epoch 38"]
    _mace_log(tmp_path / "capped", "member0", capped)
    outcome = training_outcome(tmp_path / "capped", "member0", 40)
    assert (outcome.epochs_run, outcome.best_epoch, outcome.stopped_early) == (40, 38, False)
    assert outcome.still_improving  # best epoch among the last at the cap
    stopped = [epoch.format(i) for i in range(25)]
    stopped += ["Stopping optimization after 10 epochs without improvement"]
    stopped += ["Loaded Stage one model from epoch 14"]
    _mace_log(tmp_path / "stopped", "member1", stopped)
    outcome = training_outcome(tmp_path / "stopped", "member1", 200)
    assert (outcome.epochs_run, outcome.best_epoch, outcome.stopped_early) == (25, 14, True)
    assert not outcome.still_improving
    # a run resumed from its checkpoint writes a second log; epochs are counted once
    _mace_log(tmp_path / "resumed", "m", [epoch.format(i) for i in range(12)])
    _mace_log(tmp_path / "resumed", "m", [epoch.format(i) for i in range(10, 20)], run=1)
    assert training_outcome(tmp_path / "resumed", "m", 20).epochs_run == 20
    # the kept epoch's force MAE against the lowest of any epoch (the loss may disagree)
    forces = [
        "Epoch {}: head: Default, loss={}, MAE_E_per_atom= 5.0 meV, MAE_F= {} meV / A".format(*e)
        for e in [(0, 0.9, 238.1), (1, 0.68, 208.0), (2, 0.76, 142.5), (3, 0.8, 150.0)]
    ] + ["Loaded Stage one model from epoch 1"]
    _mace_log(tmp_path / "overruled", "m", forces)
    outcome = training_outcome(tmp_path / "overruled", "m", 4)
    assert (outcome.kept_force_mae, outcome.lowest_force_mae) == (208.0, 142.5)
    assert outcome.loss_overruled_forces  # 208.0 > 1.25 x 142.5
    assert not training_outcome(tmp_path / "capped", "member0", 40).loss_overruled_forces
    forces[-1] = "Loaded Stage one model from epoch 3"  # 150.0 < 1.25 x 142.5
    _mace_log(tmp_path / "close", "m", forces)
    assert not training_outcome(tmp_path / "close", "m", 4).loss_overruled_forces


@pytest.mark.slow
def test_patience_reaches_mace_and_is_recorded(foundation, tmp_path):
    store = make_job_store(StoreConfig(), tmp_path)
    maker = FineTuneMaker(
        freeze=6, committee_size=1, epochs=6, batch_size=2, patience=1, scheduler_patience=2
    )
    job = maker.make(foundation, emt_labels(5, 0), emt_labels(3, 1), "pt", 0)
    run_locally(job, store=store, root_dir=tmp_path / "jobs", create_folders=True, log=False)
    store.connect()
    (member,) = FineTuneResult.model_validate(job.output.resolve(store)).models
    (debug,) = tmp_path.glob("jobs/*/member0/logs/member0_run-*_debug.log")
    assert " patience=1," in debug.read_text()  # mace-torch's own argument, not its default
    assert "scheduler_patience=2," in debug.read_text()
    (checkpoint,) = tmp_path.glob("jobs/*/member0/checkpoints/member0_run-*_epoch-*.pt")
    scheduler = torch.load(checkpoint, weights_only=False)["lr_scheduler"]
    assert scheduler["patience"] == 2  # mace-torch's ReduceLROnPlateau was built with it
    training = member.training
    assert training.max_epochs == 6 and 1 <= training.epochs_run <= 6
    # with patience 1 a run stops at the first epoch that does not improve, else it is capped
    assert training.stopped_early == (training.epochs_run < 6)
    # the kept epoch's force error on its holdout, from mace-torch's own epoch lines
    assert 0 < training.lowest_force_mae <= training.kept_force_mae


def test_retries_of_a_failed_training_change_seed_and_halve_the_lr():
    from frostline.finetune.jobs import RETRY_SEED_STRIDE, retry_settings

    assert retry_settings(3, 0.01, 1) == (3 + RETRY_SEED_STRIDE, 0.005)
    assert retry_settings(3, 0.01, 2) == (3 + 2 * RETRY_SEED_STRIDE, 0.0025)
    # a retry's seed never equals another member's or iteration's (seed + 1000 * it + member,
    # committees of up to 16, finetune.retrain_failed up to 5)
    for member in range(16):
        for attempt in range(1, 6):
            assert (member + retry_settings(0, 0.01, attempt)[0]) % 1000 >= 16


@pytest.mark.slow
def test_a_member_that_never_improved_is_retrained_and_recorded(foundation, tmp_path):
    """lr 0: every epoch's validation loss equals the first, so mace-torch keeps epoch 0."""
    import re

    from frostline.registry.queries import training_summary
    from frostline.report.tables import training_hints

    store = make_job_store(StoreConfig(), tmp_path)
    maker = FineTuneMaker(
        freeze=6,
        committee_size=1,
        epochs=2,
        batch_size=2,
        retrain_failed=2,
        checkpoint_on="validation",
    )
    maker.lr = 0.0  # a training that cannot improve (no campaign file may set it: lr must be > 0)
    job = maker.make(foundation, emt_labels(4, 0), emt_labels(2, 1), "rf", 0)
    run_locally(job, store=store, root_dir=tmp_path / "jobs", create_folders=True, log=False)
    store.connect()
    (member,) = FineTuneResult.model_validate(job.output.resolve(store)).models
    seeds = []
    for name in ("member0", "member0-retry1", "member0-retry2"):  # each attempt in its folder
        (debug,) = tmp_path.glob(f"jobs/*/{name}/logs/{name}_run-*_debug.log")
        seeds.append(int(re.search(r"seed=(\d+),", debug.read_text()).group(1)))
    assert seeds == [0, 7919, 2 * 7919]
    assert not list(tmp_path.glob("jobs/*/member0-retry3"))  # retrain_failed caps the attempts
    assert member.file.filename == "member0-retry2.model"  # every attempt failed: the last kept
    assert member.training.never_improved and member.training.retrained == 2
    doc = Records(store).connect().find("model_docs", {"campaign": "rf"})[0]
    summary = training_summary([doc])
    assert (summary["never_improved"], summary["retrained"]) == (1, 1)
    (hint,) = training_hints({"iterations": [{"training": summary}]})
    assert "kept their first epoch" in hint and "after retries" in hint


@pytest.mark.slow
@pytest.mark.parametrize(
    ("loss", "mace_loss"),
    [
        ("huber", "WeightedHuberEnergyForcesStressLoss(energy_weight=10.000, "
         "forces_weight=10.000, stress_weight=0.000)"),
        ("l1l2", "WeightedEnergyForcesL1L2Loss(energy_weight=10.000, forces_weight=10.000)"),
    ],
)  # fmt: skip
def test_robust_losses_reach_mace(foundation, tmp_path, loss, mace_loss):
    """finetune.loss huber / l1l2 train with mace-torch's own loss (huber without stress term)."""
    store = make_job_store(StoreConfig(), tmp_path)
    maker = FineTuneMaker(freeze=6, committee_size=1, epochs=2, batch_size=2, loss=loss)
    job = maker.make(foundation, emt_labels(5, 0), emt_labels(3, 1), "loss", 0)
    run_locally(job, store=store, root_dir=tmp_path / "jobs", create_folders=True, log=False)
    store.connect()
    (member,) = FineTuneResult.model_validate(job.output.resolve(store)).models
    (log,) = tmp_path.glob("jobs/*/member0/logs/member0_run-*[0-9].log")
    assert mace_loss in log.read_text()  # mace's default stress_weight (1.0) would show here
    assert member.metrics.force_mae_mev_per_a > 0 and member.training.epochs_run == 2


def test_unknown_loss_is_refused_by_name(tmp_path):
    from frostline.finetune.train import MaceTrainSettings

    with pytest.raises(ValueError, match="FineTuneMaker field 'loss'"):
        FineTuneMaker(loss="mse")
    with pytest.raises(ValueError, match="finetune.loss: unknown loss 'mse'"):
        MaceTrainSettings(loss="mse").to_argv(tmp_path / "t.xyz", None, tmp_path)


def test_settings_fingerprint_keeps_old_ledger_keys():
    """Added fields at their defaults leave the key as it was; set, they change it."""
    from dataclasses import fields, replace

    from frostline.finetune.train import ADDED_FIELDS, MaceTrainSettings

    settings = MaceTrainSettings(name="f0", freeze=0, extra={"patience": "30"})
    old = [f"{f.name}={getattr(settings, f.name)!r}" for f in fields(settings)]
    old = [p for p in old if p.split("=")[0] not in ADDED_FIELDS]
    assert settings.fingerprint() == f"MaceTrainSettings({', '.join(old)})"
    assert replace(settings, loss="l1l2").fingerprint() != settings.fingerprint()
    assert "huber_delta=0.02" in replace(settings, huber_delta=0.02).fingerprint()
