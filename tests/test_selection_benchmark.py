"""The selection benchmark's campaign bookkeeping (no campaign is run here)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import yaml

BENCHMARK = Path(__file__).resolve().parents[1] / "workflows" / "benchmarks" / "selection.py"


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
    assert not bench.campaign_done(folder, 6)  # never run, or killed: resumed
    (folder / "finished").write_text("6\n")
    assert bench.campaign_done(folder, 6) and bench.campaign_done(folder, 4)
    assert not bench.campaign_done(folder, 12)  # asked for more: the rest is run
    # a marker from before markers held the count: the stored config's max_iterations
    (folder / "finished").write_text("")
    (folder / "campaign.yaml").write_text(yaml.safe_dump({"convergence": {"max_iterations": 6}}))
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
