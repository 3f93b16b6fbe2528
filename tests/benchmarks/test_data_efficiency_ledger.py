"""The data-efficiency benchmark's bookkeeping: ledger keys and extensions that go on from a
checkpoint (no training here; the trainings themselves are mace-torch's, tested elsewhere)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from helpers.benchmarks import BENCHMARKS, load_benchmark

from frostline.finetune.foundation import MINI_FOUNDATION


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("data_efficiency")


def labelled_cells(n: int, seed: int):
    rng = np.random.default_rng(seed)
    cells = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
        atoms.arrays["REF_forces"] = rng.normal(size=(len(atoms), 3))
        atoms.info["REF_energy"] = float(rng.normal())
        cells.append(atoms)
    return cells


def args(**over) -> argparse.Namespace:
    base = dict(
        seed=0, epoch_scale=1, quick=False, lr=0.01, lr_finetune=0.005, patience=30,
        foundation=Path("foundation.model"), extend_from="checkpoint",
    )  # fmt: skip
    return argparse.Namespace(**{**base, **over})


def test_best_checkpoint_is_the_highest_epoch(bench, tmp_path):
    assert bench.best_checkpoint(tmp_path, "f0") is None
    (tmp_path / "checkpoints").mkdir()
    for epoch in (9, 99, 10):
        (tmp_path / "checkpoints" / f"f0_run-0_epoch-{epoch}.pt").write_bytes(b"x")
    (tmp_path / "checkpoints" / "f5_run-0_epoch-300.pt").write_bytes(b"x")  # another arm
    assert bench.best_checkpoint(tmp_path, "f0").name == "f0_run-0_epoch-99.pt"


def test_a_continuation_clears_another_attempt_and_resumes_its_own(bench, tmp_path):
    source = tmp_path / "short" / "checkpoints" / "f0_run-0_epoch-99.pt"
    source.parent.mkdir(parents=True)
    source.write_bytes(b"best of the shorter run")
    folder = tmp_path / "long"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "f0_run-0_epoch-10.pt").write_bytes(b"a fresh attempt")
    (folder / "logs").mkdir()
    (folder / "logs" / "f0_run-0.log").write_text("Epoch 10:")
    bench.start_training(folder, "key-A", source)
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["f0_run-0_epoch-99.pt"]
    assert not (folder / "logs").exists()
    # an interrupted continuation with the same key keeps its own later checkpoints
    (folder / "checkpoints" / "f0_run-0_epoch-150.pt").write_bytes(b"went on")
    bench.start_training(folder, "key-A", source)
    assert bench.best_checkpoint(folder, "f0").name == "f0_run-0_epoch-150.pt"
    # another key (other settings) starts again from the source
    bench.start_training(folder, "key-B", source)
    assert bench.best_checkpoint(folder, "f0").name == "f0_run-0_epoch-99.pt"


def test_a_fresh_run_never_resumes_the_checkpoint_of_other_settings(bench, tmp_path):
    folder = tmp_path / "n15" / "f6"
    (folder / "checkpoints").mkdir(parents=True)
    mine = folder / "checkpoints" / "f6_run-0_epoch-40.pt"
    mine.write_bytes(b"killed run, never finished, started before the marker existed")
    bench.start_training(folder, "key-A")
    assert mine.exists()  # resumed: an interrupted run of these settings
    (folder / "checkpoints" / "f6_run-0_epoch-60.pt").write_bytes(b"went on")
    (folder / "frostline-settings.json").write_text("key-A")  # finished
    bench.start_training(folder, "key-A")
    assert bench.best_checkpoint(folder, "f6").name == "f6_run-0_epoch-60.pt"
    bench.start_training(folder, "key-B")  # other settings (e.g. another patience)
    assert bench.best_checkpoint(folder, "f6") is None
    assert (folder / "frostline-started.json").read_text() == "key-B"
    # a finished run of other settings, from before the marker existed: cleared too
    (folder / "frostline-started.json").unlink()
    (folder / "checkpoints" / "f6_run-0_epoch-70.pt").write_bytes(b"key-B's")
    bench.start_training(folder, "key-C")
    assert bench.best_checkpoint(folder, "f6") is None


def test_patience_counts_optimizer_steps_below_the_reference_size(bench):
    steps = args(patience=30, scheduler_patience=10, patience_reference=60)
    assert [bench.in_steps(30, n, steps) for n in (15, 30, 60, 300)] == [113, 57, 30, 30]
    assert bench.in_steps(10, 15, steps) == 38
    assert bench.in_steps(30, 15, args(patience_reference=0)) == 30
    settings = bench.train_settings("f6", labelled_cells(15, 0), steps, 1)
    assert settings.extra == {"patience": "113", "scheduler_patience": "38"}


def test_continuation_keys_chain_through_stamps_and_the_ledger(bench, tmp_path):
    data, valid = labelled_cells(4, 0), labelled_cells(2, 1)
    ledger = bench.Ledger(tmp_path / "case-ledger.json", tmp_path / "case")
    first = tmp_path / "case" / "n4" / "f0"
    settings_1x = bench.train_settings("f0", data, args(), 1)
    settings_2x = bench.train_settings("f0", data, args(), 2)
    assert settings_2x.max_num_epochs == 2 * settings_1x.max_num_epochs
    fresh_1x = bench.training_key(settings_1x, data, valid, None)
    # nothing on disk or in the ledger: the key a fresh run has
    assert bench.previous_key(first, ledger, settings_1x, data, valid) == fresh_1x
    # a ledger record (a fresh checkout without model folders) names the run's own key
    ledger.records["n4/f0"] = {"key": "recorded-key", "finished": "now"}
    assert bench.previous_key(first, ledger, settings_1x, data, valid) == "recorded-key"
    # the stamp of a run on this machine wins
    first.mkdir(parents=True)
    (first / "frostline-settings.json").write_text("stamped-key")
    assert bench.previous_key(first, ledger, settings_1x, data, valid) == "stamped-key"
    continued = bench.training_key(settings_2x, data, valid, "stamped-key")
    fresh_2x = bench.training_key(settings_2x, data, valid, None)
    assert json.loads(continued)["continues"] == "stamped-key"
    assert continued != fresh_2x and "continues" not in json.loads(fresh_2x)
    # other data, another key
    assert bench.training_key(settings_2x, labelled_cells(4, 2), valid, None) != fresh_2x


def test_a_learning_rate_grid_keeps_the_records_of_its_first_rate(bench, tmp_path):
    data = labelled_cells(4, 0)
    shipped = {"foundation": MINI_FOUNDATION}  # scratch reads its architecture from it
    single, grid = args(**shipped, lr_finetune=0.005), args(**shipped, lr_finetune=[0.005, 0.002])
    # the grid's first rate trains exactly what the single rate did: same key, same folder
    for arm in ("f0", "scratch"):
        assert (
            bench.train_settings(arm, data, grid).fingerprint()
            == bench.train_settings(arm, data, single).fingerprint()
        )
    work = tmp_path / "case" / "n60"
    assert bench.rate_folder(work, 0.005, grid.lr_finetune) == work
    # another rate: its own settings and folder; scratch's rate and the grid itself untouched
    other = bench.at_rate(grid, "f0", 0.002)
    assert bench.train_settings("f0", data, other).lr == 0.002
    assert bench.train_settings("scratch", data, other).lr == 0.01
    assert bench.train_settings("f0", data, grid).lr == 0.005
    assert bench.rate_folder(work, 0.002, grid.lr_finetune) == tmp_path / "case" / "n60-lr0.002"
    scratch = bench.at_rate(args(**shipped, lr=[0.01, 0.005]), "scratch", 0.005)
    assert bench.train_settings("scratch", data, scratch).lr == 0.005
    assert bench.train_settings("f0", data, scratch).lr == 0.005  # the fine-tune's own rate


def test_a_model_file_without_its_record_is_recorded_when_reused(bench, tmp_path, monkeypatch):
    """A run killed after its training and before its ledger record: the next invocation
    reuses the model file (settings stamp matches) and records it, so a fresh checkout does not
    train it again. The model's evaluation is replaced here (no model is trained)."""
    data, valid = labelled_cells(4, 0), labelled_cells(2, 1)
    run_args = args(extend_from="fresh")
    folder = tmp_path / "case" / "n4" / "f0"
    folder.mkdir(parents=True)
    (folder / "f0.model").write_bytes(b"trained before the kill")
    key = bench.training_key(bench.train_settings("f0", data, run_args), data, valid, None)
    (folder / "frostline-settings.json").write_text(key)
    outcome = type("Outcome", (), {"stopped_early": True, "epochs_run": 61, "best_epoch": 30})
    monkeypatch.setattr(bench, "training_outcome", lambda *a: outcome)
    monkeypatch.setattr(bench, "errors", lambda model, structures: (40.0, 3.0))
    monkeypatch.setattr(bench, "run_mace_training", lambda *a, **k: pytest.fail("retrained"))
    ledger = bench.Ledger(tmp_path / "case-ledger.json", tmp_path / "case")
    reused = bench.train("f0", data, folder.parent, run_args, valid, valid, ledger)
    assert reused.source == "model" and reused.best_epoch == 30
    record = json.loads((tmp_path / "case-ledger.json").read_text())["n4/f0"]
    assert record["key"] == key and record["test"] == [40.0, 3.0]
    # a fresh checkout (no model folder) now takes it from the ledger
    (folder / "f0.model").unlink()
    fresh = bench.Ledger(tmp_path / "case-ledger.json", tmp_path / "case")
    again = bench.train("f0", data, folder.parent, run_args, valid, valid, fresh)
    assert again.source == "ledger" and again.test == (40.0, 3.0)


def test_a_side_ledger_merges_without_losing_records(tmp_path):
    one = load_benchmark("one_training")
    main, side = tmp_path / "case-ledger.json", tmp_path / "side.json"
    main.write_text(json.dumps({"n15/f0": {"key": "a", "test": [1, 1]},
                                "n30/f0": {"key": "b", "test": [2, 2]}}))  # fmt: skip
    side.write_text(json.dumps({"n15/f0": {"key": "a", "test": [9, 9]},  # same run: kept
                                "n30/f0": {"key": "b2", "test": [3, 3]},  # other settings
                                "n15-lr0.002/f0": {"key": "c", "test": [4, 4]}}))  # fmt: skip
    assert one.merge(side, main) == (["n15-lr0.002/f0"], ["n30/f0"])
    records = json.loads(main.read_text())
    assert records["n15/f0"]["test"] == [1, 1] and records["n30/f0"]["key"] == "b2"
    assert set(records) == {"n15/f0", "n30/f0", "n15-lr0.002/f0"}


def test_a_continuation_record_survives_its_shorter_run_trained_again(bench, tmp_path, monkeypatch):
    """The 2x record of a chain is lost, the 2x run is trained again afresh (no checkpoint on a
    fresh checkout), so its key changes: the 4x record, continued from the lost 2x, is still
    found by its own settings and data, and not for other data or settings."""
    data, valid = labelled_cells(4, 0), labelled_cells(2, 1)
    run_args = args()
    ledger = bench.Ledger(tmp_path / "case-ledger.json", tmp_path / "case")
    settings_4x = bench.train_settings("f0", data, run_args, 4)
    lost_2x = bench.training_key(bench.train_settings("f0", data, run_args, 2), data, valid, "k1")
    outcome = bench.Trained((35.8, 1.8), (35.6, 1.5), False, 60.0, 400, 397, "trained")
    ledger.put("n4/f0-4x-epochs/f0", bench.training_key(settings_4x, data, valid, lost_2x), outcome)
    # the 2x run now in its folder: trained afresh, stamped with a fresh key
    previous = tmp_path / "case" / "n4" / "f0-2x-epochs" / "f0"
    previous.mkdir(parents=True)
    fresh_2x = bench.training_key(bench.train_settings("f0", data, run_args, 2), data, valid, None)
    (previous / "frostline-settings.json").write_text(fresh_2x)
    monkeypatch.setattr(bench, "run_mace_training", lambda *a, **k: pytest.fail("retrained"))
    work = tmp_path / "case" / "n4" / "f0-4x-epochs"
    found = bench.train("f0", data, work, run_args, valid, valid, ledger, 4, previous)
    assert found.source == "ledger" and found.test == (35.8, 1.8)
    fresh_4x = bench.training_key(settings_4x, data, valid, None)
    assert ledger.get_continuation("n4/f0-4x-epochs/f0", fresh_4x) is not None
    other_data = bench.training_key(settings_4x, labelled_cells(4, 5), valid, None)
    assert ledger.get_continuation("n4/f0-4x-epochs/f0", other_data) is None
    other_cap = bench.training_key(bench.train_settings("f0", data, run_args, 8), data, valid, None)
    assert ledger.get_continuation("n4/f0-4x-epochs/f0", other_cap) is None


HEADLINE = BENCHMARKS / "results" / "data_efficiency_f64_p30"


def test_seed_means_and_the_ratio_from_trained_sizes(bench):
    per_seed = [
        {"sweep": {15: (60.0, 5.0), 30: (40.0, 3.0)}},
        {"sweep": {15: (50.0, 3.0), 30: (34.0, 1.0)}},
        {"sweep": {15: (55.0, 4.0)}},  # a seed not trained at 30 yet: left out there
    ]
    stats = bench.aggregate(per_seed)
    mean, energy, spread, count = stats["sweep"][15]
    assert (mean, energy, count) == (55.0, 4.0, 3) and spread == pytest.approx(5.0)
    assert stats["sweep"][30][0] == 37.0 and stats["sweep"][30][3] == 2
    assert bench.seed_stats([36.7]) == (36.7, 0.0, 1)
    means = {n: s[0] for n, s in stats["sweep"].items()}
    # the ratio reads the smallest trained size whose mean reaches the target; the
    # interpolated figure (between 15 and 30) is printed beside it
    assert bench.smallest_reaching([15, 30], means, 38.0) == 30
    assert bench.smallest_reaching([15, 30], means, 36.0) is None
    assert 15 < bench.points_to_reach([15, 30], [55.0, 37.0], 38.0) < 30


def test_the_converged_and_seeds_lines(bench):
    assert bench.converged_line([]) == "scratch targets converged: yes"
    assert (
        bench.converged_line(["h2cu", "alloys"]) == "scratch targets converged: no (h2cu, alloys)"
    )
    assert bench.seeds_line([3, 3], 3) == "seeds per point: 3 of 3"
    partial = bench.seeds_line([1, 3], 3)
    assert partial.startswith("seeds per point: 1-3 of 3 (run `") and "--train" in partial
    summaries = [
        {"seeds_per_point": [1, 1], "target_converged": False, "ratio": 0.2},
        {"seeds_per_point": [1, 1], "target_converged": True, "ratio": None},  # never reached
    ]
    lines = bench.final_lines(["h2cu", "alloys"], summaries, 3)
    assert lines[1] == "scratch targets converged: no (h2cu)"
    assert lines[-1] == "data-efficiency ratio (larger of the cases, goal <= 0.2) = inf"


def test_the_completing_command_repeats_a_non_headline_run(bench):
    """The hint of a run with its own folder and protocol names them (else it would complete
    the headline run's folder); the headline's own hint stays the bare command."""
    assert bench.complete_command(bench.parse_args([])) == bench.COMPLETE
    args = bench.parse_args(
        ["--train", "--seeds", "0", "--out", "results/x", "--scheduler-patience", "10"]
    )
    tokens = bench.complete_command(args).removeprefix(bench.COMPLETE).split()
    assert tokens == ["--seeds", "0", "--out", "results/x", "--scheduler-patience", "10"]
    assert "--scheduler-patience 10 --jobs 2` to complete" in bench.seeds_line([1, 1], 3, args)


def test_a_target_converges_only_when_it_stopped_early(bench):
    def run(stopped_early, epochs_run, best_epoch):
        return bench.Trained((1.0, 1.0), (1.0, 1.0), stopped_early, 1.0, epochs_run, best_epoch)

    assert bench.target_converged(run(True, 61, 30), 100)
    # at its cap: not converged, whether its kept epoch is recent (still_improving), early
    # (alloys at lr 0.005: kept 18 of 25, and 2x / 4x the epochs then went 46.7 -> 32.7) or
    # not recorded (records before 2026-12-01)
    assert not bench.target_converged(run(False, 100, 98), 100)
    assert not bench.target_converged(run(False, 25, 18), 25)
    assert not bench.target_converged(run(False, None, None), 100)


def test_seeds_keep_the_committed_seed_0_records_and_key_the_others(bench, tmp_path):
    """The no-argument options are the headline run's, so its committed seed-0 records are
    found by the keys the benchmark computes; another seed gets its own folders and keys."""
    args = bench.parse_args([])
    assert args.reprint and args.seeds == [0, 1, 2] and args.out == HEADLINE
    assert bench.parse_args(["--quick"]).train
    case = bench.load_case("alloys", args, HEADLINE)
    records = json.loads((HEADLINE / "alloys-ledger.json").read_text())
    seed_0 = argparse.Namespace(**{**vars(args), "seed": 0})
    for name, arm, n, lr in (("n60/f5", "f5", 60, None), ("n60-lr0.002/f0", "f0", 60, 0.002)):
        run_args = bench.at_rate(seed_0, arm, lr) if lr else seed_0
        settings = bench.train_settings(arm, case.by_size[n], run_args)
        key = bench.training_key(settings, case.by_size[n], case.val, None)
        assert records[name]["key"] == key
    seed_1 = argparse.Namespace(**{**vars(args), "seed": 1})
    other = bench.train_settings("f5", case.by_size[60], seed_1)
    other_key = bench.training_key(other, case.by_size[60], case.val, None)
    assert other.seed == 1 and other_key != records["n60/f5"]["key"]
    assert bench.seed_root(tmp_path / "alloys", 0) == tmp_path / "alloys"
    assert bench.seed_root(tmp_path / "alloys", 1) == tmp_path / "alloys" / "seed1"


def test_the_reprint_trains_nothing_and_names_what_is_missing(bench, tmp_path, monkeypatch):
    data, valid = labelled_cells(4, 0), labelled_cells(2, 1)
    monkeypatch.setattr(bench, "run_mace_training", lambda *a, **k: pytest.fail("trained"))
    ledger = bench.Ledger(tmp_path / "case-ledger.json", tmp_path / "case")
    work = tmp_path / "case" / "seed1" / "n4"
    with pytest.raises(bench.NotRecorded) as missing:
        bench.train("f0", data, work, args(seed=1, reprint=True), valid, valid, ledger)
    assert missing.value.name == "seed1/n4/f0"
    assert not (tmp_path / "case-ledger.json").exists()  # nothing written


def test_the_replay_arm_fine_tunes_with_the_foundations_shipped_replay_set(bench):
    data = labelled_cells(4, 0)
    parsed = bench.parse_args(["--arms", *bench.ARMS, "replay"])
    replay = bench.train_settings("replay", data, argparse.Namespace(**vars(parsed), seed=0))
    assert replay.freeze == 0 and replay.num_samples_pt == 80
    assert replay.pt_train_file == "src/frostline/data/replay/mini-64-replay.extxyz.gz"
    assert replay.foundation_model == "src/frostline/data/mini-foundation-64.model"
    assert Path(bench.runnable(replay).pt_train_file).is_file()  # made absolute for mace-torch
    # the product's defaults (frostline.choices): the case's elements, weight 0.3
    assert (replay.filter_type_pt, replay.weight_pt_head) == ("combinations", 0.3)
    anyframe = bench.parse_args(["--arms", *bench.ARMS, "replay", "--replay-filter=none"])
    settings = bench.train_settings("replay", data, argparse.Namespace(**vars(anyframe), seed=0))
    assert settings.filter_type_pt == "none"
    with pytest.raises(SystemExit, match="--arms replay: no shipped replay set"):
        bench.train_settings("replay", data, args(replay_samples=80))


def test_no_arguments_reprint_the_headline_from_its_ledgers(bench, tmp_path, monkeypatch):
    """One case of the committed headline, re-printed from a copy of its ledger and labels:
    nothing trained, seed-0 points only, the ratio from trained sizes (60 of 300)."""
    import shutil

    for name in ("alloys-ledger.json", "alloys-labels.extxyz"):
        shutil.copy(HEADLINE / name, tmp_path / name)
    monkeypatch.setattr(bench, "run_mace_training", lambda *a, **k: pytest.fail("trained"))
    args = bench.parse_args(["--cases", "alloys", "--out", str(tmp_path)])
    summary = bench.run_case("alloys", args, tmp_path)
    assert summary["n_reached"] == 60 and summary["ratio"] == 0.2
    assert 0.17 < summary["ratio_interpolated"] < 0.2
    assert summary["seeds_per_point"] == [1, 1] and not summary["target_converged"]
    assert "seed1/n300/scratch" in summary["missing"]
    assert (tmp_path / "data_efficiency_alloys.png").is_file()
    assert (tmp_path / "alloys-ledger.json").read_text() == (
        HEADLINE / "alloys-ledger.json"
    ).read_text()


@pytest.mark.parametrize("ratio_only", [True, False])
def test_ratio_only_stops_at_the_size_whose_seed_mean_reaches_the_target(
    bench, tmp_path, monkeypatch, ratio_only
):
    """``--ratio-only`` trains the targets and the fine-tunes up to the first size whose seed
    mean reaches the target, nothing after it (no later sizes, no curves); without it, every
    size and the curves follow."""
    trained: list = []
    error_at = {15: 40.0, 30: 29.0, 60: 25.0, 300: 20.0}  # target 30: reached at n = 30

    def target(cd, run):
        run.target = 30.0
        trained.append(("target", run.seed))

    def fine_tunes(cd, run, n):
        run.results["sweep"][n] = (error_at[n] + run.seed, 0.0)
        trained.append(("fine-tunes", n, run.seed))

    monkeypatch.setattr(bench, "load_case", lambda *a: argparse.Namespace(sizes=[15, 30, 60, 300]))
    monkeypatch.setattr(bench, "train_target", target)
    monkeypatch.setattr(bench, "train_fine_tunes", fine_tunes)
    monkeypatch.setattr(bench, "extend_sweep", lambda cd, run, n: trained.append(("extend", n)))
    monkeypatch.setattr(bench, "train_curve", lambda cd, run, arm: trained.append((arm, run.seed)))
    monkeypatch.setattr(bench, "summarise", lambda *a: {})
    flags = ["--ratio-only"] if ratio_only else []
    bench.run_case("h2cu", bench.parse_args(["--seeds", "0", "1", *flags]), tmp_path)
    sizes = sorted({step[1] for step in trained if step[0] == "fine-tunes"})
    assert sizes == ([15, 30] if ratio_only else [15, 30, 60, 300])
    assert trained[:2] == [("target", 0), ("target", 1)]
    assert (("scratch", 0) in trained) is not ratio_only
    assert ("extend", 30) in trained and ("extend", 60) not in trained  # 30 reached: no more


def test_sizes_trains_those_sizes_and_reads_the_others_from_the_ledger(
    bench, tmp_path, monkeypatch
):
    """``--sizes 30 60``: the fine-tunes of 30 and 60 structures train; those of 15 come from
    the ledger only (as in a re-print: nothing trained); the targets train whatever it says;
    the completing command does not carry it (it would leave sizes out), a case's own process
    does."""
    calls: list = []

    def target(cd, run):
        calls.append(("target", run.args.reprint))

    def fine_tunes(cd, run, n):
        calls.append(("fine-tunes", n, run.args.reprint))

    monkeypatch.setattr(bench, "load_case", lambda *a: argparse.Namespace(sizes=[15, 30, 60, 300]))
    monkeypatch.setattr(bench, "train_target", target)
    monkeypatch.setattr(bench, "train_fine_tunes", fine_tunes)
    monkeypatch.setattr(bench, "extend_sweep", lambda cd, run, n: calls.append(("extend", n)))
    monkeypatch.setattr(bench, "summarise", lambda *a: {})
    args = bench.parse_args(["--train", "--ratio-only", "--seeds", "0", "--sizes", "30", "60"])
    bench.run_case("h2cu", args, tmp_path)
    assert calls[0] == ("target", False)
    ledger_only = {n for step, n, reprint in (c for c in calls if c[0] == "fine-tunes") if reprint}
    trained = {n for step, n, reprint in (c for c in calls if c[0] == "fine-tunes") if not reprint}
    assert (ledger_only, trained) == ({15, 300}, {30, 60})
    assert args.reprint is False  # restored after each size
    assert "--sizes" not in bench.complete_command(args)
    assert bench.forwarded(args)[-3:] == ["--sizes", "30", "60"]


def test_two_processes_on_one_case_ledger_keep_each_others_records(bench, tmp_path):
    """Seeds of one case trained side by side share its ledger: each write adds to what the
    other wrote since (no record lost), and each process reads the other's records back."""
    path, root = tmp_path / "case-ledger.json", tmp_path / "case"
    path.write_text(json.dumps({"n15/f0": {"key": "a", "finished": "x"}}))
    first, second = bench.Ledger(path, root), bench.Ledger(path, root)
    result = bench.Trained((30.0, 2.0), (29.0, 2.0), True, 60.0, 100, 70, "trained")
    first.put("seed1/n300/scratch", "k1", result)
    second.put("seed2/n300/scratch", "k2", result)  # loaded before the first one's record
    on_disk = json.loads(path.read_text())
    assert set(on_disk) == {"n15/f0", "seed1/n300/scratch", "seed2/n300/scratch"}
    assert "seed1/n300/scratch" in second.records
    first.put("seed1/n15/f0", "k3", result)  # the second's record is not written away
    assert "seed2/n300/scratch" in json.loads(path.read_text())
    assert not list(tmp_path.glob("*.partial"))
