"""The selection benchmark's campaign bookkeeping (no campaign is run here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers.benchmarks import load_benchmark


def load_selection():
    """The selection benchmark as a fresh module."""
    return load_benchmark("selection")


def test_a_finished_campaign_is_given_more_iterations_when_asked(tmp_path):
    bench = load_selection()
    folder = tmp_path / "random-single"
    folder.mkdir()
    (folder / "campaign.yaml").write_text(yaml.safe_dump({"convergence": {"max_iterations": 6}}))
    assert not bench.campaign_done(folder, 6)  # never run, or killed: resumed
    (folder / "finished").write_text("6\n")
    assert bench.campaign_done(folder, 6) and bench.campaign_done(folder, 4)
    assert not bench.campaign_done(folder, 12)  # asked for more: the rest is run
    # a marker from before markers held the count: the stored config's max_iterations
    (folder / "finished").write_text("")
    assert bench.campaign_done(folder, 6) and not bench.campaign_done(folder, 7)


def test_label_set_ledger_keys_do_not_depend_on_where_the_checkout_is(tmp_path, monkeypatch):
    label_sets = load_benchmark("label_sets", "label_sets_bench")
    monkeypatch.chdir(tmp_path)
    inside = tmp_path / "src" / "frostline" / "data" / "mini-foundation-64.model"
    assert label_sets.portable(inside) == Path("src/frostline/data/mini-foundation-64.model")
    outside = Path("/opt/models/mace-mp-small.model")
    assert label_sets.portable(outside) == outside


@pytest.fixture(scope="module")
def finished_campaign(tmp_path_factory, foundation):
    """A tiny finished campaign in OUT/random-single, as selection.py leaves it."""
    from conftest import tiny_campaign

    from frostline.config import parse_config
    from frostline.flows.campaign import run_campaign

    folder = tmp_path_factory.mktemp("out") / "random-single"
    run_campaign(parse_config(tiny_campaign("archived")), folder, log=False)
    (folder / "finished").write_text("2\n")
    return folder


def oracle_frames(structures: list, shift: float = 0.0) -> list:
    """A small 'oracle-MD' test set from labelled atoms (REF_ labels, as the benchmark's)."""
    frames = []
    for atoms in structures[:2]:
        frame = atoms.copy()
        frame.arrays["REF_forces"] = atoms.arrays["REF_forces"] + shift
        frame.info["temperature"] = 300.0
        frames.append(frame)
    return frames


@pytest.mark.slow
def test_a_campaign_whose_folder_is_gone_is_read_from_its_archive(finished_campaign):
    """selection.py archives a finished campaign beside its folder; on a fresh checkout (folder
    gone) the curves, oracle-MD figures and label sets come from the archive, bit for bit."""
    import shutil

    bench = load_selection()
    label_sets = load_benchmark("label_sets", "label_sets_bench2")
    import data_efficiency as de

    folder = finished_campaign
    foundation, sets, valid = label_sets.label_sets(folder)
    test = oracle_frames(valid)
    curve, md = bench.curve(folder), bench.cached_md_test_curve(folder, test)
    temperatures = bench.label_temperatures(folder)
    archive = bench.archive_campaign(folder, {"test_set": bench.test_set_key(test), **md})
    assert archive == folder.with_name("random-single.campaign.json")

    shutil.rmtree(folder)  # what a fresh checkout has: the archive only
    assert bench.campaign_done(folder, 2) and not bench.campaign_done(folder, 3)
    assert bench.curve(folder) == curve and len(curve) == 2
    assert bench.cached_md_test_curve(folder, test) == md
    assert bench.label_temperatures(folder) == temperatures
    assert label_sets.seed_folders(folder.parent, "random-single", 1) == [folder]
    foundation2, sets2, valid2 = label_sets.label_sets(folder)
    assert foundation2 == foundation and [n for n, _ in sets2] == [n for n, _ in sets] == [5, 7]
    for (_, before), (_, after) in zip(sets, sets2, strict=True):
        assert de.data_digest(after) == de.data_digest(before)  # the ledger keys still match
    assert de.data_digest(valid2) == de.data_digest(valid)
    # another test set: the models that would measure it are gone, so say so
    with pytest.raises(SystemExit, match="random-single.campaign.json"):
        bench.cached_md_test_curve(folder, oracle_frames(valid2, shift=0.1))
    with pytest.raises(SystemExit, match=r"no campaign \(or archive\)"):
        label_sets.seed_folders(folder.parent, "random-single", 2)


def test_an_unreadable_archive_is_named(tmp_path):
    load_selection()
    from campaign_record import CampaignRecord

    (tmp_path / "random.campaign.json").write_text('{"version": 99}')
    with pytest.raises(SystemExit, match=r"random\.campaign\.json.*version 99"):
        CampaignRecord.load(tmp_path / "random")
    with pytest.raises(SystemExit, match="no campaign in"):
        CampaignRecord.load(tmp_path / "dpgen")


@pytest.mark.parametrize(
    ("arm", "setting", "value"),
    [
        ("frostline-descriptor-coverage", "sampling_power", 0.0),
        ("frostline-descriptor-stratified", "stratify", "exploration"),
    ],
)
def test_descriptor_variants_differ_from_the_descriptor_arm_in_one_setting(arm, setting, value):
    from frostline.config import parse_config

    bench = load_selection()
    args = bench.build_parser().parse_args(["--foundation", "mini-64", "--freeze", "0"])
    variant = parse_config(bench.arm_config(arm, args))
    novelty = parse_config(bench.arm_config("frostline-descriptor", args))
    assert getattr(variant.select, setting) == value != getattr(novelty.select, setting)
    assert variant.select.uncertainty == novelty.select.uncertainty == "descriptor"
    assert variant.finetune.committee_size == novelty.finetune.committee_size == 1
    same = {setting}
    assert variant.select.model_dump(exclude=same) == novelty.select.model_dump(exclude=same)


def test_the_last_layer_arm_is_the_descriptor_arm_scored_by_its_last_layer():
    from frostline.config import LAST_LAYER_TRUST, parse_config

    bench = load_selection()
    args = bench.build_parser().parse_args(["--foundation", "mini-64", "--freeze", "0"])
    last = parse_config(bench.arm_config("frostline-last-layer", args))
    novelty = parse_config(bench.arm_config("frostline-descriptor", args))
    assert last.select.uncertainty == "last-layer" and last.finetune.committee_size == 1
    assert (last.select.trust_lo, last.select.trust_hi) == LAST_LAYER_TRUST
    window = {"uncertainty", "trust_lo", "trust_hi"}
    assert last.select.model_dump(exclude=window) == novelty.select.model_dump(exclude=window)
    assert last.finetune == novelty.finetune


def test_seed_spread_leaves_out_the_seeds_that_never_reached_the_target():
    bench = load_selection()
    mean, spread, n = bench.mean_spread([0.5, 1.5, float("nan"), None])
    assert (mean, n) == (1.0, 2) and spread == pytest.approx(2**0.5 / 2)
    assert bench.mean_spread([0.7])[1] != bench.mean_spread([0.7])[1]  # one seed: no spread
    assert bench.mean_spread([float("nan")])[2] == 0
    assert bench.seed_line([0.5, 1.5, float("nan")]) == (
        "0.50 / 1.50 / nan (mean 1.00 ± 0.71 over 2 of 3 seeds)"
    )
    assert bench.seed_line([float("nan")]) == "nan (no seed reached it)"


def test_per_seed_summary_prints_each_seed_and_the_mean(capsys):
    bench = load_selection()
    args = bench.build_parser().parse_args(
        ["--al-arm", "frostline-last-layer", "--random-arm", "random-single"]
    )
    rnd = [[(10, 300.0), (18, 200.0), (26, 100.0)], [(10, 300.0), (18, 120.0), (26, 150.0)]]
    al = [[(10, 300.0), (18, 100.0), (26, 90.0)], [(10, 300.0), (18, 200.0), (26, 200.0)]]
    curves = {"frostline-last-layer": al, "random-single": rnd}
    tails = {"frostline-last-layer": rnd, "random-single": rnd}
    elbows = {
        "frostline-last-layer": [
            {"barrier_error": 0.1, "source": "store"},
            {"barrier_error": -0.3, "source": "store"},
        ],
        "random-single": [{"barrier_error": 0.2, "source": "retrained"}],
    }
    capsys.readouterr()  # what importing the benchmark printed
    bench.print_per_seed(curves, args, tails, elbows)
    out = capsys.readouterr().out.splitlines()
    # seed 0: AL reaches random's best (100) at 18 labels, random at 26; seed 1: AL never does
    assert out[0] == (
        "AL / random of each seed on its own: 0.69 / nan (mean 0.69 ± nan over 1 of 2 seeds)"
    )
    assert out[1].endswith("1.00 / 1.00 (mean 1.00 ± 0.00 over 2 seeds)")
    assert "+0.10 / -0.30 (mean -0.10 ± 0.28 over 2 seeds), mean |error| 0.20" in out[2]
    assert out[3].endswith("mean |error| 0.20; 1 fine-tuned again from the archive")


def archived(folder: Path, config: dict, iterations: int) -> Path:
    """An archive of a campaign run with ``config`` (no labels), as selection.py writes it."""
    load_selection()
    from campaign_record import CampaignRecord, archive_path

    folder.parent.mkdir(parents=True, exist_ok=True)
    status = {
        "iterations": [
            {"index": i, "n_labelled": 10 + 8 * i, "force_mae_mev_per_a": 200.0 - i}
            for i in range(iterations)
        ]
    }
    return CampaignRecord(iterations, status, [], config).save(archive_path(folder))


def test_a_reused_campaign_must_have_been_run_with_the_same_settings(tmp_path):
    bench = load_selection()
    earlier, out = tmp_path / "selection_long", tmp_path / "new"
    argv = ["--foundation", "mini-64", "--epochs", "200", "--iterations", "6", "--out", str(out)]
    args = bench.build_parser().parse_args([*argv, "--reuse", str(earlier)])
    asked = bench.arm_config("random-single", args)
    longer = {**asked, "convergence": {**asked["convergence"], "max_iterations": 12}}
    archived(earlier / "random-single", longer, 12)
    folder = bench.campaign_folder(args, "random-single", 0)
    assert folder == earlier / "random-single"
    bench.check_settings(folder, asked)  # only the iteration count differs: its curves are cut
    # a default changed since, of a setting that does nothing in this campaign: the same run
    explore = asked.get("explore", {})
    idle = {**longer, "explore": {**explore, "bias": "none", "bias_strength": 1.0}}
    idle["distill"] = {"enabled": False, "pair_cutoff_factor": 4.5}
    archived(earlier / "random-single", idle, 12)
    bench.check_settings(folder, {**asked, "distill": {"enabled": False}})
    with pytest.raises(SystemExit, match=r"distill\.pair_cutoff_factor 4\.5 \(asked 4\.0"):
        bench.check_settings(folder, {**asked, "distill": {"enabled": True}})
    archived(earlier / "random-single", longer, 12)
    assert bench.cut([1, 2, 3, 4, 5, 6, 7, 8], 6) == [1, 2, 3, 4, 5, 6]
    # fewer iterations than asked: run afresh in OUT, the earlier folder is never written
    archived(earlier / "random-single-seed1", bench.arm_config("random-single", args, 1), 4)
    assert bench.campaign_folder(args, "random-single", 1) == out / "random-single-seed1"
    other = {**asked, "finetune": {**asked["finetune"], "epochs": 40}}
    archived(earlier / "random-single-seed2", other, 6)
    folder = bench.campaign_folder(args, "random-single", 2)
    with pytest.raises(SystemExit, match=r"random-single-seed2: .*finetune\.epochs 40 \(asked 200"):
        bench.check_settings(folder, bench.arm_config("random-single", args, 2))
    no_reuse = bench.build_parser().parse_args(argv)
    assert bench.campaign_folder(no_reuse, "random-single", 0) == out / "random-single"


def test_label_temperatures_can_stop_before_an_iteration():
    load_selection()
    from campaign_record import CampaignRecord

    def label(iteration: int, temperature: float | None) -> dict:
        provenance = {"iteration": iteration, "temperature": temperature}
        return {"role": "train", "status": "ok", "provenance": provenance}

    labelled = [label(-1, None), label(0, 300.0), label(1, 800.0), label(2, 800.0)]
    labelled.append({"role": "validation", "status": "ok", "provenance": {"iteration": -1}})
    record = CampaignRecord(3, {"iterations": []}, labelled, {})
    assert record.label_temperatures() == {"300 K": 1, "800 K": 2, "initial": 1}
    assert record.label_temperatures(before=2) == {"300 K": 1, "800 K": 1, "initial": 1}


def test_a_cached_elbow_result_is_read_for_its_set_and_iteration_only(tmp_path):
    load_selection()
    import numpy as np
    from selection_elbow import ElbowSet, elbow_cache_path, final_elbow, usable_elbow

    elbow = ElbowSet([], np.zeros((1, 1)), 0.5, -1.0, "digest")
    folder = tmp_path / "random-single"  # no store, no archive: only the cache can answer
    cached = {"elbow_set": "digest", "iteration": 5, "barrier_error": 0.1, "source": "store"}
    elbow_cache_path(tmp_path, folder).write_text(json.dumps(cached))
    assert final_elbow(folder, tmp_path, None, 6, elbow) == cached
    assert usable_elbow(cached, "digest", 5)
    assert not usable_elbow(cached, "digest", 4) and not usable_elbow(cached, "other", 5)
    assert not usable_elbow(None, "digest", 5)


def test_the_final_elbows_are_drawn_per_arm_and_seed(tmp_path):
    load_selection()
    import numpy as np
    from h2cu_elbow import BONDS, HEIGHTS
    from selection_elbow import ElbowSet, plot_final_elbows

    reference = np.linspace(-1, 2, len(HEIGHTS) * len(BONDS)).reshape(len(HEIGHTS), len(BONDS))
    elbow = ElbowSet([], reference, 1.0, -1.0, "digest")
    doc = {"labels": 50, "grid": (reference + 0.1).tolist()}
    path = plot_final_elbows({"a": [doc, doc], "b": [doc]}, elbow, tmp_path / "elbow.png")
    assert path.stat().st_size > 10_000


def test_no_run_reads_a_campaign_as_far_as_it_got_and_trains_nothing(tmp_path, capsys):
    bench = load_selection()
    out = tmp_path / "out"
    argv = ["--foundation", "mini-64", "--out", str(out), "--md-test-starts", "0"]
    args = bench.build_parser().parse_args([*argv, "--iterations", "3", "--no-run"])
    archived(out / "frostline-last-layer", bench.arm_config("frostline-last-layer", args), 0)
    record_file = out / "frostline-last-layer.campaign.json"
    doc = json.loads(record_file.read_text())  # a killed campaign: 4 iterations, not finished
    doc["status"]["iterations"] = [
        {"index": i, "n_labelled": 10 + 8 * i, "force_mae_mev_per_a": 200.0 - i} for i in range(4)
    ]
    record_file.write_text(json.dumps(doc))
    curve, md, bought, elbow = bench.seed_campaign("frostline-last-layer", 0, args, [], None)
    assert curve == [(10, 200.0), (18, 199.0), (26, 198.0)] and md is None and elbow is None
    assert "unfinished, read as far as it got (4 iterations)" in capsys.readouterr().out
    args.iterations = 5
    with pytest.raises(SystemExit, match=r"frostline-last-layer: 4 iterations finished"):
        bench.seed_campaign("frostline-last-layer", 0, args, [], None)
    with pytest.raises(SystemExit, match=r"random-single: no campaign \(--no-run"):
        bench.seed_campaign("random-single", 0, args, [], None)


def test_a_model_on_the_elbow_scores_zero_error_against_its_own_labels():
    """``h2cu_elbow.elbow_row``, which the selection benchmark scores final models with: a
    model that is the oracle (EMT labels, EMT model) has no force, energy or barrier error."""
    from ase.calculators.emt import EMT

    load_selection()
    from h2cu_elbow import elbow_frames, elbow_row, end_points, energy_grid, minimax_barrier

    frames = elbow_frames()
    for atoms in frames:
        atoms.calc = EMT()
        atoms.info["REF_energy"] = atoms.get_potential_energy()
        atoms.arrays["REF_forces"] = atoms.get_forces()
    reference = energy_grid(frames, [a.info["REF_energy"] for a in frames])
    row = elbow_row(EMT(), frames, reference)
    assert row["force_mae"] == pytest.approx(0, abs=1e-9) and row["energy_rmse"] < 1e-6
    assert row["barrier"] == pytest.approx(minimax_barrier(reference, *end_points(reference)))
    shifted = elbow_row(EMT(), frames, reference - 0.1)  # a reference 0.1 eV lower everywhere
    assert shifted["energy_rmse"] == pytest.approx(100.0)
