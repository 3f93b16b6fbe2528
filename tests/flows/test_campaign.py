"""One short full active-learning loop, its records, and the CLI on top of it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import tiny_campaign
from typer.testing import CliRunner

from frostline.cli import app
from frostline.config import parse_config
from frostline.flows.campaign import run_campaign
from frostline.registry.queries import campaign_status, open_campaign_dir

STATUS_KEYS = {
    "index",
    "n_labelled",
    "n_selected",
    "energy_mae_mev_per_atom",
    "force_mae_mev_per_a",
    "accurate_fraction",
    "n_calibration_picks",
    "n_contact_picks",
    "n_topped_up",
    "stratum_quota",
}


@pytest.fixture(scope="module")
def campaign(tmp_path_factory, foundation):
    folder = tmp_path_factory.mktemp("campaign")
    config = parse_config(tiny_campaign(select={"contact_picks": 1, "stratify": "exploration"}))
    result = run_campaign(config, folder, log=False)
    return folder, result


@pytest.mark.slow
def test_loop_runs_two_iterations_and_stops(campaign):
    folder, result = campaign
    assert result["iterations"] == 2
    assert result["stop_reason"] == "max iterations"
    assert result["labels_spent"] == 5 + 2  # initial set + one batch (last iteration buys none)
    assert result["final_metrics"]["force_mae_mev_per_a"] > 0


@pytest.mark.slow
def test_store_reopened_in_another_process(campaign):
    folder, _ = campaign
    code = (
        "import json; from frostline.registry.queries import campaign_status, open_campaign_dir;"
        f"print(json.dumps(campaign_status(open_campaign_dir({str(folder)!r}))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    status = json.loads(out.stdout.strip().splitlines()[-1])
    assert status["state"] == "stopped"
    assert [it["index"] for it in status["iterations"]] == [0, 1]
    assert status["iterations"][1]["n_labelled"] == 7  # 5 initial + 2 selected in iteration 0
    assert status["n_train_labels"] == 7 and status["n_validation"] == 3
    assert status["n_models"] == 4  # 2 members x 2 iterations
    assert status["zero_shot_force_mae_mev_per_a"] > 0


@pytest.mark.slow
def test_every_record_is_in_the_store(campaign):
    folder, result = campaign
    records = open_campaign_dir(folder)
    labelled = records.find("labelled", {"campaign": "tiny"})
    assert {d["provenance"]["sampler"] for d in labelled} >= {"seed", "validation", "langevin"}
    for model_id in result["final_model_ids"]:
        doc = records.find("model_docs", {"model_id": model_id})[0]
        data = records.get_model_file(model_id, doc["file"]["sha256"])
        assert len(data) == doc["file"]["size_bytes"]
    iterations = sorted(records.find("iterations", {"campaign": "tiny"}), key=lambda d: d["index"])
    for it in iterations:
        times = it["wall_time_s"]
        assert times["finetune"] > 0 and times["explore"] > 0
        assert {"select", "label", "calibrate", "orchestration", "total"} <= set(times)
        stages = sum(v for k, v in times.items() if k not in ("orchestration", "total"))
        assert stages + times["orchestration"] == pytest.approx(times["total"], rel=1e-6)
        assert sum(it["fates"].values()) == it["n_candidates"]  # every frame has one fate
        assert it["trust_window"] == [1e-9, 10.0]
    assert iterations[0]["fates"]["selected"] == 2
    assert iterations[0]["n_calibration_picks"] == 0
    assert iterations[0]["stratum_quota"] == {"langevin 300 K": 2}  # one MD temperature
    assert iterations[0]["n_topped_up"] == 0  # the window [1e-9, 10] calls nothing accurate
    if iterations[0]["n_contact_picks"]:  # then a bought frame has a contact no seed label has
        from frostline.schemas import LabelledStructure
        from frostline.select.contacts import ContactIndex, shortest_contacts

        def atoms(role: str, iteration: int) -> list:
            query = {"campaign": "tiny", "role": role, "provenance.iteration": iteration}
            return [LabelledStructure(**d).to_atoms() for d in records.find("labelled", query)]

        seeds = ContactIndex(atoms("train", -1))
        bought = [seeds.deficit(shortest_contacts(a)) for a in atoms("train", 0)]
        assert max(bought) > 0.02
    assert iterations[0]["calibration"]["n_points"] == 2  # too few to derive a window
    assert iterations[0]["calibration"]["trust_lo"] is None
    assert iterations[1]["fates"] == {"not needed": iterations[1]["n_candidates"]}


@pytest.mark.slow
def test_status_cli_table_and_json(campaign):
    folder, _ = campaign
    runner = CliRunner()
    res = runner.invoke(app, ["status", str(folder), "--json"])
    assert res.exit_code == 0, res.output
    status = json.loads(res.stdout)
    assert {"campaign", "state", "iterations", "zero_shot_force_mae_mev_per_a"} <= set(status)
    assert all(STATUS_KEYS <= set(it) for it in status["iterations"])
    assert 0 <= status["orchestration_share"] < 1
    res = runner.invoke(app, ["status", str(folder)], terminal_width=200)
    assert res.exit_code == 0 and "tiny" in res.stdout
    assert "explored frames by fate" in res.stdout and "orchestration share" in res.stdout


@pytest.mark.slow
def test_status_plots_are_written(campaign):
    """--plots writes one PNG per view the campaign has data for (json stays parseable)."""
    folder, _ = campaign
    res = CliRunner().invoke(app, ["status", str(folder), "--json", "--plots"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["campaign"] == "tiny"
    names = {"learning_curve.png", "calibration.png", "fates.png", "timing.png"}
    for name in names:
        png = folder / "plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_plots_skip_views_without_data(tmp_path):
    from frostline.report.plots import write_campaign_plots

    status = {"campaign": "empty", "iterations": []}
    assert write_campaign_plots(status, tmp_path) == []
    status["iterations"] = [
        {"index": 0, "n_labelled": 5, "force_mae_mev_per_a": 120.0, "calibration": {}}
    ]
    assert [p.name for p in write_campaign_plots(status, tmp_path)] == ["learning_curve.png"]


@pytest.mark.slow
def test_status_json_from_the_installed_command_parses(campaign):
    """stdout carries only the JSON document (mace's import notice goes to stderr)."""
    folder, _ = campaign
    exe = Path(sys.executable).parent / "frostline"
    out = subprocess.run(
        [str(exe), "status", str(folder), "--json"], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout)["campaign"] == "tiny"


def test_status_of_a_non_campaign_dir(tmp_path):
    res = CliRunner().invoke(app, ["status", str(tmp_path)])
    assert res.exit_code == 2
    assert "not a campaign directory" in res.output
    assert "Traceback" not in res.output


def test_run_cli_refuses_bad_config_before_any_work(tmp_path):
    data = tiny_campaign()
    data["select"]["trust_window"] = 3
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    res = CliRunner().invoke(app, ["run", str(path), "--dir", str(tmp_path / "c")])
    assert res.exit_code == 2
    assert "bad.yaml" in res.output and "select.trust_window" in res.output
    assert not (tmp_path / "c").exists()


@pytest.mark.slow
def test_empty_selection_ends_cleanly(tmp_path, foundation):
    """Every frame accurate and the validation errors agree (a loose target): the campaign
    converges after one fine-tune and buys no labels."""
    select = {"trust_lo": 9.0, "trust_hi": 10.0, "target_force_error": 50.0}
    config = parse_config(tiny_campaign(name="calm", select=select))
    result = run_campaign(config, tmp_path, log=False)
    assert result["stop_reason"] == "converged" and result["iterations"] == 1
    status = campaign_status(open_campaign_dir(Path(tmp_path)))
    assert status["state"] == "converged"
    assert status["iterations"][0]["n_selected"] == 0


@pytest.mark.slow
def test_agreement_alone_never_reports_converged(tmp_path, foundation):
    """Every frame 'accurate' by the uncertainty but the validation error above the target:
    the campaign stops without calling itself converged and says why (status, iteration)."""
    select = {"trust_lo": 9.0, "trust_hi": 10.0, "target_force_error": 0.001}
    config = parse_config(tiny_campaign(name="agreeing", select=select))
    result = run_campaign(config, tmp_path, log=False)
    assert result["stop_reason"] != "converged" and result["state"] != "converged"
    status = campaign_status(open_campaign_dir(Path(tmp_path)))
    assert status["state"] != "converged"
    assert "0 % of frames" in status["iterations"][-1]["convergence_note"]
    res = CliRunner().invoke(app, ["status", str(tmp_path)], terminal_width=200)
    assert "not converged" in res.output


@pytest.mark.slow
def test_single_model_campaign_selects_by_descriptor_novelty(tmp_path, foundation):
    """committee_size 1 + select.uncertainty descriptor: a whole loop without a committee."""
    config = parse_config(
        tiny_campaign(
            name="single",
            finetune={"committee_size": 1},
            select={"uncertainty": "descriptor", "trust_lo": 0.05, "max_labels_per_iteration": 2},
        )
    )
    run_campaign(config, tmp_path, log=False)
    status = campaign_status(open_campaign_dir(Path(tmp_path)))
    first = status["iterations"][0]
    assert first["n_selected"] == 2  # picked by novelty (a single model has no spread)
    assert status["iterations"][-1]["n_labelled"] == first["n_labelled"] + 2
    assert all(it["uncertainty"] == "descriptor" for it in status["iterations"])
    assert all(len(it["model_ids"]) == 1 for it in status["iterations"])
    stds = first["calibration"]["stds"]  # what selection saw: novelty, not a (zero) spread
    assert len(stds) == 2 and all(s > 0.05 for s in stds)
    from rich.console import Console

    from frostline.report.tables import fates_table

    console = Console(width=250, record=True)
    console.print(fates_table(status))
    assert "(descriptor)" in console.export_text()  # the window's unit in `frostline status`


def test_fates_table_reads_iterations_recorded_before_the_uncertainty_field():
    """Campaigns stored before ``uncertainty`` existed (the key comes back as None) still show
    their committee window in eV/Å instead of crashing ``frostline status``."""
    from rich.console import Console

    from frostline.report.tables import fates_table

    old = {"index": 0, "fates": {"selected": 8, "over budget": 36}, "trust_window": [0.05, 0.15]}
    status = {"campaign": "old", "iterations": [{**old, "uncertainty": None}, {**old, "index": 1}]}
    console = Console(width=250, record=True)
    console.print(fates_table(status))
    text = console.export_text()
    assert text.count("0.050–0.150 eV/Å") == 2
    assert "36" in text


def test_fates_table_shows_the_picks_a_stratum_quota_topped_up():
    from rich.console import Console

    from frostline.report.tables import fates_table

    row = {"index": 0, "fates": {"selected": 8, "accurate": 30}, "trust_window": [0.1, 0.4]}
    status = {"iterations": [{**row, "n_topped_up": 3}, {**row, "index": 1, "n_topped_up": 0}]}
    console = Console(width=250, record=True)
    console.print(fates_table(status))
    text = console.export_text()
    assert text.count("8 (3 topped up)") == 1 and text.count("topped up") == 1


@pytest.mark.slow
def test_a_learning_rate_chosen_by_the_first_sweep_is_kept_and_shown(tmp_path, foundation):
    """lr_sweep with sweep: first — iteration 0 tries both rates, iteration 1 trains at the
    chosen one without sweeping; status --json and the table show the rate."""
    config = parse_config(
        tiny_campaign(name="rates", finetune={"lr": 0.02, "lr_sweep": [1e-6], "sweep": "first"})
    )
    run_campaign(config, tmp_path, log=False)
    status = campaign_status(open_campaign_dir(Path(tmp_path)))
    first, second = status["iterations"]
    assert sorted(p["lr"] for p in first["freeze_sweep"]) == [1e-6, 0.02]
    chosen = next(p for p in first["freeze_sweep"] if p["chosen"])
    assert first["finetune_lr"] == chosen["lr"]
    assert second["freeze_sweep"] == [] and second["finetune_lr"] == chosen["lr"]
    from rich.console import Console

    from frostline.report.tables import status_table

    console = Console(width=250, record=True)
    console.print(status_table(status))
    text = console.export_text()
    assert "freeze, lr" in text
    assert f"f6 lr {chosen['lr']:g} (swept lr 1e-06/0.02)" in text
    assert text.count(f"f6 lr {chosen['lr']:g}") == 2


@pytest.mark.slow
def test_doubled_policy_sweeps_again_once_the_training_set_has_doubled(tmp_path, foundation):
    """sweep: doubled, 4 labels + 4 per iteration: sweeps at 4 and 8 labels, not at 12."""
    config = parse_config(
        tiny_campaign(
            name="resweep",
            system={"n_initial": 4},
            finetune={"freeze_sweep": [5, 6], "sweep": "doubled"},
            explore={"starts_per_temperature": 2},
            select={"max_labels_per_iteration": 4},
            convergence={"max_iterations": 3},
        )
    )
    run_campaign(config, tmp_path, log=False)
    status = campaign_status(open_campaign_dir(Path(tmp_path)))
    iterations = status["iterations"]
    assert [it["n_labelled"] for it in iterations] == [4, 8, 12]
    swept = [sorted(p["freeze_level"] for p in it["freeze_sweep"]) for it in iterations]
    assert swept == [[5, 6], [5, 6], []]
    # the level the second sweep chose is kept by the fine-tune that did not sweep
    level = iterations[1]["freeze_level"]
    assert iterations[2]["freeze_level"] == level
    from rich.console import Console

    from frostline.report.tables import status_table

    console = Console(width=250, record=True)
    console.print(status_table(status))
    lines = console.export_text().splitlines()
    assert sum("(swept 5/6)" in line for line in lines) == 2  # the freeze column
    # the validation force MAE split by element: the overall MAE lies between the elements'
    for it in iterations:
        by_element = it["force_mae_by_element"]
        assert set(by_element) == {"Cu", "H"}
        assert min(by_element.values()) <= it["force_mae_mev_per_a"] <= max(by_element.values())
    worst = max(iterations[-1]["force_mae_by_element"].items(), key=lambda kv: kv[1])
    assert any(f"{worst[0]} {worst[1]:.1f} · " in line for line in lines)  # worst element first
    assert any(f"f{level}" in line and "swept" not in line for line in lines)
