"""The forgetting benchmark's bookkeeping: committed ledgers stay valid, one folder per
protocol (no training here; the trainings are mace-torch's, tested elsewhere)."""

from __future__ import annotations

import json

import pytest
from helpers.benchmarks import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("forgetting")


@pytest.mark.parametrize("case", ["h2cu", "alloys"])
def test_the_committed_ledgers_hold_seed_0_of_every_strategy_at_the_defaults(bench, case):
    """A change to the settings' keys would silently retrain hours of committed runs."""
    ledger = json.loads((bench.OUT / f"ledger-{case}.json").read_text())
    args = bench.parse_args([])
    for strategy in args.strategies:
        assert bench.arm_key(case, strategy, args, 0) in ledger["trainings"], (case, strategy)


def test_another_scheduler_patience_or_stress_weight_is_another_run_folder_and_key(bench):
    default, decaying = bench.parse_args([]), bench.parse_args(["--scheduler-patience", "10"])
    assert bench.run_name("naive", default, 1) == "naive-seed1"
    assert bench.run_name("naive", decaying, 1) == "naive-seed1-sp10"
    keys = {bench.arm_key("h2cu", "naive", a, 1) for a in (default, decaying)}
    assert len(keys) == 2
    stress = bench.parse_args(["--stress-weight", "100"])
    assert bench.run_name("naive", stress, 1) == "naive-seed1-sw100"
    assert bench.settings("naive", stress, "f.model", 1).stress_weight == 100
    assert bench.arm_key("alloys", "naive", stress, 1) != bench.arm_key(
        "alloys", "naive", default, 1
    )


def test_a_capped_run_is_followed_by_its_longer_runs_in_the_ledger(bench):
    args = bench.parse_args(["--max-extension", "4"])
    base = bench.arm_key("alloys", "frozen", args, 0)
    capped = {"training": {"epochs_run": 300, "max_epochs": 300, "best_epoch": 297,
                           "stopped_early": False}}  # fmt: skip
    stopped = {"training": {"epochs_run": 420, "max_epochs": 600, "best_epoch": 389,
                            "stopped_early": True}}  # fmt: skip
    ledger = {"trainings": {base: capped}}
    assert bench.final_key("alloys", "frozen", args, 0, ledger) == base
    ledger["trainings"][f"{base}-x2"] = stopped
    assert bench.final_key("alloys", "frozen", args, 0, ledger) == f"{base}-x2"
    ledger["trainings"][f"{base}-x4"] = capped  # never reached: x2 stopped early
    assert bench.final_key("alloys", "frozen", args, 0, ledger) == f"{base}-x2"
    ledger["trainings"][base] = {**stopped, "training": {**stopped["training"], "max_epochs": 300}}
    assert bench.final_key("alloys", "frozen", args, 0, ledger) == base
    no_extension = bench.parse_args(["--max-extension", "1"])
    ledger["trainings"][base] = capped
    assert bench.final_key("alloys", "frozen", no_extension, 0, ledger) == base


def test_a_longer_run_starts_from_the_best_checkpoint_and_resumes_its_own(bench, tmp_path):
    previous, folder = tmp_path / "frozen-seed0", tmp_path / "frozen-seed0-x2"
    (previous / "checkpoints").mkdir(parents=True)
    for epoch in (99, 297, 150):
        (previous / "checkpoints" / f"frozen_run-0_epoch-{epoch}.pt").write_bytes(b"x")
    bench.go_on_from(previous, folder, "frozen", "K-x2")
    assert [p.name for p in (folder / "checkpoints").iterdir()] == ["frozen_run-0_epoch-297.pt"]
    (folder / "checkpoints" / "frozen_run-0_epoch-297.pt").unlink()
    (folder / "checkpoints" / "frozen_run-0_epoch-410.pt").write_bytes(b"its own")
    bench.go_on_from(previous, folder, "frozen", "K-x2")  # interrupted: resumes its own
    assert [p.name for p in (folder / "checkpoints").iterdir()] == ["frozen_run-0_epoch-410.pt"]
    bench.go_on_from(previous, folder, "frozen", "other-x2")  # other settings: never resumed
    assert [p.name for p in (folder / "checkpoints").iterdir()] == ["frozen_run-0_epoch-297.pt"]
    with pytest.raises(SystemExit, match="no checkpoint"):
        bench.go_on_from(tmp_path / "nothing", tmp_path / "other", "frozen", "K-x2")


MACE_LOG = """2026-12-07 11:00:00.000 INFO: Epoch 40: head: Default, MAE_F=   61.00 meV / A
2026-12-07 11:00:01.000 INFO: Epoch 41: head: Default, MAE_F=   60.50 meV / A
2026-12-07 11:00:02.000 INFO: Stopping optimization after 30 epochs without improvement
2026-12-07 11:00:03.000 INFO: Loaded Stage one model from epoch 11
"""


def test_a_finished_run_whose_record_was_lost_is_not_trained_again(bench, tmp_path, monkeypatch):
    """Started again, mace-torch would go on past the early stop (its patience starts afresh)
    and make another model: a finished run (its folder's stamp) is recorded from its log."""
    monkeypatch.setattr(bench, "OUT", tmp_path)
    monkeypatch.setattr(bench, "run_mace_training", lambda *a, **k: pytest.fail("trained"))
    args = bench.parse_args([])
    key = bench.arm_key("h2cu", "naive", args, 0)
    folder = tmp_path / "runs" / "h2cu" / "naive-seed0"
    (folder / "logs").mkdir(parents=True)
    (folder / "logs" / "naive_run-0.log").write_text(MACE_LOG)
    (folder / "naive.model").write_bytes(b"model")
    (folder / "frostline-settings.json").write_text(key)
    ledger: dict = {}
    record = bench.train_run("h2cu", "naive", args, ([], [], []), ledger, 0, 1, None)
    assert record["training"]["best_epoch"] == 11 and record["training"]["stopped_early"]
    assert ledger["trainings"][key] == record  # recorded (and saved) this time
    assert key in json.loads((tmp_path / "ledger-h2cu.json").read_text())["trainings"]
    # the same folder stamped by other settings is trained again
    (folder / "frostline-settings.json").write_text("other settings")
    with pytest.raises(pytest.fail.Exception, match="trained"):
        bench.train_run("h2cu", "naive", args, ([], [], []), {}, 0, 1, None)


def test_a_replay_weight_is_its_own_arm_key_and_folder(bench):
    anyframe = ["--replay-filter", "none"]
    full = bench.parse_args([*anyframe, "--replay-weight", "1"])  # mace-torch's weight
    lighter = bench.parse_args([*anyframe, "--replay-weight", "0.3"])
    swept = bench.parse_args([*anyframe, "--replay-weight", "1", "--replay-sweep", "0.3", "0.1"])
    assert bench.arm_names(swept) == [*full.strategies, "replay-w0.3", "replay-w0.1"]
    assert bench.run_name("replay", full, 2) == "replay-seed2"
    # the same settings, the same run: --replay-weight 0.3 and the sweep arm of 0.3
    assert bench.run_name("replay", lighter, 2) == bench.run_name("replay-w0.3", swept, 2)
    assert bench.run_name("replay-w0.3", swept, 2) == "replay-w0.3-seed2"
    assert bench.arm_key("h2cu", "replay", lighter, 2) == bench.arm_key(
        "h2cu", "replay-w0.3", swept, 2
    )
    assert bench.arm_key("h2cu", "replay", full, 2) != bench.arm_key(
        "h2cu", "replay-w0.3", swept, 2
    )
    s = bench.settings("replay-w0.1", swept, "foundation.model", 0)
    assert (s.name, s.weight_pt_head) == ("replay", 0.1)  # mace-torch files keep replay's names
    assert bench.arm_key("h2cu", "naive", lighter, 0) == bench.arm_key("h2cu", "naive", full, 0)


def _run(target: float, ratio: float, lattice: dict) -> dict:
    return {"target_force_mae": target, "ratio": ratio, "lattice_error_percent": lattice,
            "foundation_lattice_error_percent": {"Cu": 9.0}, "training": None}  # fmt: skip


def test_replay_arms_are_costed_against_the_best_strategy_and_plotted(bench, tmp_path):
    args = bench.parse_args(["--replay-weight", "1", "--replay-sweep", "0.3", "--cases", "h2cu"])
    arms = {"naive": [_run(50, 0.4, {"Cu": 15.0})], "replay": [_run(60, 0.4, {"Cu": 3.0})],
            "frozen": [], "lora": [], "replay-w0.3": [_run(40, 0.5, {"Cu": None})]}  # fmt: skip
    costs = bench.replay_costs(arms, args)
    # the sweep arm is not a strategy: the best is naive's 50 even though the sweep arm is lower
    assert costs == pytest.approx({"replay-combinations": 20.0, "replay-combinations-w0.3": -20.0})
    assert bench.worst_lattice_error(arms["naive"][0]) == 15.0
    assert bench.worst_lattice_error(arms["replay-w0.3"][0]) != bench.worst_lattice_error(
        arms["replay-w0.3"][0]
    )  # NaN: an element without a bulk minimum
    bench.plot({"h2cu": arms}, args, tmp_path / "forgetting.png")
    assert (tmp_path / "forgetting.png").stat().st_size > 10_000


def test_the_oracle_computes_each_structure_once_for_all_models_of_a_case(bench):
    """Every model of a case is checked on the same frames and cells: the oracle's second look
    at one is remembered (a failure too), a moved atom is computed anew."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    class Counting(EMT):
        calls = 0

        def calculate(self, atoms=None, properties=("energy",), system_changes=()):
            Counting.calls += 1
            if len(atoms) == 1:
                raise RuntimeError("SCF did not converge")
            super().calculate(atoms, properties, system_changes)

    oracle = bench.Remembering(Counting())
    cell = bulk("Cu", cubic=True)
    energies = []
    for _ in range(2):
        atoms = cell.copy()
        atoms.calc = oracle
        energies.append(atoms.get_potential_energy())
        assert atoms.get_forces().shape == (4, 3)
    assert Counting.calls == 1 and energies[0] == energies[1]
    moved = cell.copy()
    moved.positions[0, 0] += 0.05
    moved.calc = oracle
    assert moved.get_potential_energy() != energies[0] and Counting.calls == 2
    for _ in range(2):
        single = bulk("Cu")
        single.calc = oracle
        with pytest.raises(RuntimeError, match="SCF"):
            single.get_potential_energy()
    assert Counting.calls == 3


def test_measure_only_measures_finished_runs_and_never_trains(bench, tmp_path, monkeypatch):
    """After a change to the check, ``--measure-only`` re-measures the ledger's finished runs
    whose model files are there, and skips (never trains) an arm without one."""
    monkeypatch.setattr(bench, "OUT", tmp_path)
    monkeypatch.setattr(bench, "train_arm", lambda *a: pytest.fail("measure-only trained"))
    args = bench.parse_args(["--measure-only"])
    key = bench.arm_key("alloys", "naive", args, 0)
    record = {"model": "runs/alloys/naive-seed0/naive.model", "training": None}
    ledger = {"trainings": {key: record}}
    assert bench.trained("alloys", "naive", args, None, ledger, 0, "measure") is None
    (tmp_path / record["model"]).parent.mkdir(parents=True)
    (tmp_path / record["model"]).write_bytes(b"model")
    assert bench.trained("alloys", "naive", args, None, ledger, 0, "measure") == (key, record)
    assert bench.trained("alloys", "lora", args, None, ledger, 0, "measure") is None


def test_the_table_names_the_walls_fine_tuning_removed(bench):
    def run(cu_wall: float, pair_wall: float) -> dict:
        lattice = [{"element": "Cu", "wall_model": cu_wall, "wall_foundation": 0.13}]
        pairs = [{"pair": "Cu-H", "wall_model": pair_wall, "wall_foundation": 4.2}]
        return {"check": {"lattice": lattice, "pairs": pairs}}

    assert bench.walls_cell([run(0.1, 3.0), run(0.2, 2.0)]) == "–"
    assert bench.walls_cell([run(-31.8, 3.0), run(0.2, -1.0)]) == "Cu (1 of 2), Cu-H (1 of 2)"
    assert bench.walls_cell([{"check": {"lattice": [{"element": "Cu"}]}}]) == "–"  # before probes


def test_a_replay_filter_is_its_own_run_folder_and_key(bench):
    default = bench.parse_args([])  # the product's replay: the case's elements, weight 0.3
    assert bench.run_name("replay", default, 0) == "replay-combinations-w0.3-seed0"
    anyframe = bench.parse_args(["--replay-filter", "none", "--replay-weight", "1"])
    filtered = bench.parse_args(["--replay-weight", "1", "--replay-sweep", "0.3"])
    assert bench.run_name("replay", anyframe, 0) == "replay-seed0"
    assert bench.run_name("replay", filtered, 0) == "replay-combinations-seed0"
    assert bench.run_name("replay-w0.3", filtered, 0) == "replay-combinations-w0.3-seed0"
    assert bench.run_name("naive", filtered, 0) == "naive-seed0"  # other arms: the same runs
    assert bench.settings("replay", filtered, "f.model", 0).filter_type_pt == "combinations"
    keys = {arm: [bench.arm_key("h2cu", arm, a, 0) for a in (filtered, anyframe)]
            for arm in ("replay", "naive")}  # fmt: skip
    assert keys["replay"][0] != keys["replay"][1] and keys["naive"][0] == keys["naive"][1]


def test_two_processes_on_one_case_keep_each_others_records(bench, tmp_path, monkeypatch):
    """Seeds or arms of one case trained side by side in one checkout share its ledger: each
    save adds to what the other saved since, and reads it back."""
    monkeypatch.setattr(bench, "OUT", tmp_path)
    bench.save_ledger("h2cu", {"trainings": {"a": {"wall_s": 1}}})
    first, second = bench.load_ledger("h2cu"), bench.load_ledger("h2cu")
    first["trainings"]["b"] = {"wall_s": 2}
    bench.save_ledger("h2cu", first)
    second.setdefault("measured", {})["a-vs-oracle-3"] = {"ratio": 0.5}
    bench.save_ledger("h2cu", second)  # loaded before "b" was saved: "b" stays
    on_disk = json.loads((tmp_path / "ledger-h2cu.json").read_text())
    assert set(on_disk["trainings"]) == {"a", "b"} and "a-vs-oracle-3" in on_disk["measured"]
    assert "b" in second["trainings"]


def test_a_parked_longer_run_needs_no_model_of_the_shorter_one(bench, tmp_path, monkeypatch):
    """In a fresh checkout the shorter run of a chain has its ledger record but no model file;
    once its longer run is restored from the parked trainings (started with its key), the
    shorter one is taken from the ledger instead of being trained again."""
    monkeypatch.setattr(bench, "OUT", tmp_path)
    args = bench.parse_args(["--cases", "h2cu", "--strategies", "frozen", "--seeds", "2"])
    assert not bench.extended("h2cu", "frozen", args, 2, 1)
    longer = tmp_path / "runs" / "h2cu" / f"{bench.run_name('frozen', args, 2)}-x2"
    key = bench.chain_key(bench.arm_key("h2cu", "frozen", args, 2), 2)
    bench.start_training(longer, "another run's key")
    assert not bench.extended("h2cu", "frozen", args, 2, 1)
    bench.start_training(longer, key)
    assert bench.extended("h2cu", "frozen", args, 2, 1)
    assert not bench.extended("h2cu", "frozen", args, 2, 2)  # the x4 run has not started
    record = {"model": "runs/h2cu/x/frozen.model", "training": None}
    ledger = {"trainings": {bench.chain_key(bench.arm_key("h2cu", "frozen", args, 2), 1): record}}
    assert bench.train_run("h2cu", "frozen", args, None, ledger, 2, 1, None) is record
