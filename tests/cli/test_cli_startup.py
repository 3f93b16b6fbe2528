"""A CLI that answers at once and quietly (issue 43): lazy imports, 100-column tables, the
surrogate in ``status``, one error helper, third-party notices in the campaign's log file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers.cli import run_off_a_terminal, store_member
from helpers.registry import invoke

from frostline.schemas import ModelDoc, ModelFile

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "mace", "jobflow")
PROBE = f"""
import json, sys
from typer.testing import CliRunner
from frostline.cli import app
res = CliRunner().invoke(app, sys.argv[1:], env={{"COLUMNS": "200"}})
print(json.dumps({{"code": res.exit_code, "out": res.output,
                  "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def _probe(*args: str) -> dict:
    """Run the CLI in a fresh interpreter; its exit code, output and heavy modules imported."""
    res = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


# -- a CLI that answers at once ------------------------------------------------------------------
def test_help_imports_no_torch_mace_or_jobflow():
    result = _probe("--help")
    assert result["code"] == 0
    assert all(f" {c} " in result["out"] for c in ("init", "run", "demo", "status", "models"))
    assert result["heavy"] == []


def test_models_list_and_status_import_no_torch_or_mace(embedded):
    store_member(embedded.records, "demo-it000-m0", ["H", "Cu"], campaign="alpha")
    result = _probe("models", "list", *embedded.args, "--json")
    assert result["code"] == 0 and "demo-it000-m0" in result["out"]
    assert "torch" not in result["heavy"] and "mace" not in result["heavy"]
    result = _probe("status", embedded.args[1], "--campaign", "alpha")
    assert result["code"] == 0, result["out"]
    assert "torch" not in result["heavy"] and "mace" not in result["heavy"]


def test_status_table_fits_100_columns_and_wide_shows_every_column(embedded):
    res = invoke(["status", embedded.args[1], "--campaign", "alpha"], COLUMNS="")
    assert res.exit_code == 0, res.output
    assert max(len(line) for line in res.stdout.splitlines()) <= 100
    assert "…" not in res.stdout and "improving at cap" not in res.stdout
    res = invoke(["status", embedded.args[1], "--campaign", "alpha", "--wide"])
    assert res.exit_code == 0 and "improving at cap" in res.stdout


def test_status_shows_the_surrogate(embedded):
    doc = ModelDoc(
        model_id="alpha-ace-1234", kind="ace-surrogate", campaign="alpha", elements=["Cu", "H"],
        metrics=dict(n_structures=3, energy_mae_mev_per_atom=19.6, energy_rmse_mev_per_atom=20.0,
                     force_mae_mev_per_a=187.6, force_rmse_mev_per_a=200.0),
        file=ModelFile(filename="s.yace", sha256="0" * 64, size_bytes=1),
    ).model_dump(mode="json")  # fmt: skip
    doc["surrogate"] = {"vs_teacher": {"force_mae_mev_per_a": 66.8}, "speedup_vs_teacher": 32.0}
    embedded.records.upsert("model_docs", [doc], ["model_id"])
    res = invoke(["status", embedded.args[1], "--campaign", "alpha"])
    assert res.exit_code == 0, res.output
    assert "surrogate alpha-ace-1234" in res.stdout and "187.6" in res.stdout
    res = invoke(["status", embedded.args[1], "--campaign", "alpha", "--json"])
    assert json.loads(res.stdout)["surrogates"][0]["speedup_vs_teacher"] == 32.0


def test_one_error_helper_for_every_cli_module():
    sources = [ROOT / "src/frostline" / p for p in ("cli.py", "cli_registry.py")]
    sources += [ROOT / "src/frostline/submit/cli.py", ROOT / "src/frostline/alloys/cli.py"]
    assert not [p.name for p in sources if "def _fail(" in p.read_text()]


def test_third_party_notices_go_to_the_campaign_log_not_the_console(tmp_path):
    """A fresh ``frostline run`` (a campaign that fails fast): no mace/torch/pydantic notice on
    the console, all of them in DIR/frostline.log."""
    from conftest import tiny_campaign

    faulty = "frostline.testing.faulty_oracles.RaisingEMT"
    data = tiny_campaign(
        name="doomed", oracle={"name": "ase", "settings": {"calculator": faulty, "element": "Cu"}}
    )
    res, folder = run_off_a_terminal(data, tmp_path)
    assert res.returncode == 2 and "error: campaign doomed stopped" in res.stderr
    console = res.stdout + res.stderr
    log = (folder / "frostline.log").read_text()
    for notice in ("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "cuequivariance", "shadows an attribute"):
        assert notice not in console and notice in log, notice
    assert "Starting job" not in console and "setup_campaign done in" in console


def test_progress_shows_one_line_per_finished_stage_and_every_failure():
    import logging

    from frostline.reliability.faults import _OneLine, _Progress

    progress, one_line = _Progress(iterations=3), _OneLine()

    def shown(message: str, created: float) -> str | None:
        record = logging.LogRecord("jobflow", logging.INFO, "", 0, message, (), None)
        record.created = created
        keep = progress.filter(record) and one_line.filter(record)
        return record.getMessage() if keep else None

    lines = [
        shown("Started executing jobs locally", 0.0),
        shown("Starting job - finetune 1 (0a1b-2c)", 10.0),
        shown("Starting job - label xtb train 3 (77aa)", 11.0),
        shown("Finished job - label xtb train 3 (77aa)", 12.0),
        shown("Finished job - finetune 1 (0a1b-2c)", 83.0),
        shown("explore 1 failed with exception:\nTraceback ...\nValueError: boom", 90.0),
        shown("Starting job - record label 5e5e (88bb)", 91.0),
        shown("Finished job - record label 5e5e (88bb)", 92.0),
        shown("Starting job - record label 6f6f (99cc)", 100.0),
        shown("Finished job - record label 6f6f (99cc)", 101.0),
        shown("Starting job - calibrate 1 (aa11)", 102.0),
        shown("Finished job - calibrate 1 (aa11)", 104.0),
        shown("Finished job - setup_campaign (9f9f)", 105.0),
    ]
    assert [x for x in lines if x] == [
        "iteration 2/3: finetune done in 73 s",
        "explore 1 failed: ValueError: boom (traceback in faults.log)",
        "2 labels stored in 10 s",
        "iteration 2/3: calibrate done in 2 s",
        "setup_campaign done in 0 s",
    ]


def test_mace_training_log_goes_to_the_members_log_file_not_the_console(tmp_path, capfd):
    from helpers.labels import emt_cu_cells

    from frostline.finetune.train import MaceTrainSettings, run_mace_training

    cells = emt_cu_cells(4)
    settings = MaceTrainSettings(name="quiet", max_num_epochs=2, batch_size=2, num_channels=8)
    epochs = []  # the progress display's epoch counter reads mace-torch's "Epoch N:" records
    on_epoch = lambda done, cap: epochs.append((done, cap))  # noqa: E731
    assert run_mace_training(settings, cells, tmp_path / "run", on_epoch=on_epoch).exists()
    captured = capfd.readouterr()
    log = (tmp_path / "run" / "logs" / "quiet_run-0.log").read_text()
    assert " INFO: Epoch " in log and "Epoch" not in captured.out + captured.err
    assert epochs == [(1, 2), (2, 2)]
