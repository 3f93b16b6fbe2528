"""The selection benchmark's campaign bookkeeping (no campaign is run here)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

BENCHMARK = Path(__file__).resolve().parents[2] / "workflows" / "benchmarks" / "selection.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("selection_bench", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_a_finished_campaign_is_given_more_iterations_when_asked(tmp_path):
    bench = load_benchmark()
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
    spec = importlib.util.spec_from_file_location(
        "label_sets_bench", BENCHMARK.with_name("label_sets.py")
    )
    label_sets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(label_sets)
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

    bench = load_benchmark()
    label_sets = importlib.util.module_from_spec(
        spec := importlib.util.spec_from_file_location(
            "label_sets_bench2", BENCHMARK.with_name("label_sets.py")
        )
    )
    spec.loader.exec_module(label_sets)
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
    load_benchmark()
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

    bench = load_benchmark()
    args = bench.build_parser().parse_args(["--foundation", "mini-64", "--freeze", "0"])
    variant = parse_config(bench.arm_config(arm, args))
    novelty = parse_config(bench.arm_config("frostline-descriptor", args))
    assert getattr(variant.select, setting) == value != getattr(novelty.select, setting)
    assert variant.select.uncertainty == novelty.select.uncertainty == "descriptor"
    assert variant.finetune.committee_size == novelty.finetune.committee_size == 1
    same = {setting}
    assert variant.select.model_dump(exclude=same) == novelty.select.model_dump(exclude=same)
