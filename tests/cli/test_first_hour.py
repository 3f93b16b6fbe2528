"""A new user's first hour (issue 43): a CLI that starts at once and the defects they met.

Registry: elements in any stored order, the kinds campaigns write, the database a URI names,
an empty database, exported file modes; submit says its flow grows; the jobflow-remote example
project has no dangling placeholder; the learning-curve plot shows both zero-shot errors with
its legend off the points.
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from pathlib import Path
from types import SimpleNamespace

import yaml
from helpers.cli import store_member
from helpers.registry import invoke, make_backend

from frostline.registry.models import list_models

ROOT = Path(__file__).resolve().parents[2]


# -- registry defects ----------------------------------------------------------------------------
def test_exact_elements_match_models_stored_in_any_order(embedded):
    store_member(embedded.records, "demo-it000-m0", ["H", "Cu"])
    assert "demo-it000-m0" in [d["model_id"] for d in list_models(embedded.records, "Cu,H")]
    res = invoke(["models", "list", *embedded.args, "--elements", "Cu,H", "--json"])
    assert "demo-it000-m0" in [d["model_id"] for d in json.loads(res.stdout)]
    res = invoke(["models", "list", *embedded.args, "--elements", "Cu,H,O", "--json"])
    assert "demo-it000-m0" not in [d["model_id"] for d in json.loads(res.stdout)]


def test_kind_filter_and_docs_agree_on_the_kinds_campaigns_write(tmp_path):
    backend = make_backend("embedded", tmp_path, None)
    store_member(backend.records, "demo-it000-m0", ["Cu", "H"])
    res = invoke(["models", "list", *backend.args, "--kind", "mace-finetuned"])
    assert res.exit_code == 0 and "0 model(s)" in res.stdout
    assert "committee-member" in res.stdout  # says which kind a campaign's models have
    res = invoke(["models", "list", *backend.args, "--kind", "committee-member", "--json"])
    assert [d["model_id"] for d in json.loads(res.stdout)] == ["demo-it000-m0"]
    backend.records.close()
    for page in (ROOT / "README.md", ROOT / "docs/user/registry.md"):
        assert "--kind mace-finetuned" not in page.read_text(), page


def test_database_named_in_the_uri_is_used_and_an_empty_one_is_not_silent(secantus_server):
    from frostline.config import StoreConfig
    from frostline.store import Records, make_job_store

    database = f"t{uuid.uuid4().hex}"
    config = StoreConfig(kind="mongodb", uri=secantus_server.uri, database=database)
    records = Records(make_job_store(config)).connect()
    store_member(records, "db-m0", ["Cu", "H"])
    records.close()
    base = secantus_server.uri.rstrip("/")
    env = {"FROSTLINE_MONGODB_URI": ""}
    res = invoke(["models", "list", "--store", f"{base}/{database}", "--json"], **env)
    assert res.exit_code == 0, res.output
    assert [d["model_id"] for d in json.loads(res.stdout)] == ["db-m0"]
    empty = f"t{uuid.uuid4().hex}"
    res = invoke(["models", "list", "--store", f"{base}/{empty}"], **env)
    assert res.exit_code == 2 and f"database '{empty}'" in res.stderr, res.output
    assert "holds no frostline records" in res.stderr and database in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = invoke(["models", "list", "--store", f"{base}/{empty}", "--database", database])
    assert res.exit_code == 0 and "db-m0" in res.stdout  # --database wins over the URI's


def test_exported_files_have_the_users_usual_mode(embedded, tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "alpha.model"
        res = invoke(["models", "export", "alpha-final", *embedded.args, "-o", str(out)])
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


# -- submit, cluster examples, plots -------------------------------------------------------------
def test_submit_says_the_flow_grows():
    from frostline.submit.cli import submitted_lines

    result = SimpleNamespace(
        flow_uuid="f1", manager="jobflow-remote", project="p", n_jobs=5,
        workers={"control": "cpu"}, campaign_dir="campaigns/x",
    )  # fmt: skip
    text = "\n".join(submitted_lines("x", result, max_iterations=3))
    assert "5 jobs to start with" in text and "grows" in text and "3 iterations" in text
    assert "max_iterations" not in text
    once = submitted_lines("x", result, max_iterations=1)
    assert "max_iterations: 1 fine-tunes once" in once[-1]


def test_local_project_example_validates_once_its_placeholders_are_filled(tmp_path):
    from jobflow_remote.config.base import Project

    text = (ROOT / "configs/jobflow-remote/local.yaml").read_text()
    assert "/tmp/" not in text and "MONGODB_URI" not in text
    header = [line for line in text.splitlines() if line.startswith("#")]
    for placeholder in ("/path/to/frostline-jobs", "/path/to/venv"):
        assert any(placeholder in line for line in header) and placeholder in text.split("\n", 9)[9]
    assert "admin reset --yes" in "\n".join(header)
    filled = text.replace("/path/to/frostline-jobs", str(tmp_path / "jobs"))
    Project.model_validate(yaml.safe_load(filled.replace("/path/to/venv", str(tmp_path))))
    for doc in (ROOT / "docs/user/clusters.md", ROOT / "configs/jobflow-remote/slurm.yaml"):
        lines = [x for x in doc.read_text().splitlines() if "admin reset" in x]
        assert lines and all("--yes" in x for x in lines), doc


def test_learning_curve_shows_energy_zero_shot_and_keeps_the_legend_off_the_points():
    from frostline.report.plots import learning_curve_figure

    status = {
        "campaign": "demo",
        "zero_shot_force_mae_mev_per_a": 275.9,
        "zero_shot_energy_mae_mev_per_atom": 29.4,
        "iterations": [
            {"n_labelled": n, "force_mae_mev_per_a": f, "energy_mae_mev_per_atom": e}
            for n, f, e in ((10, 213.6, 64.4), (20, 170.2, 11.5), (30, 164.9, 29.0))
        ],
    }
    fig = learning_curve_figure(status)
    legend = fig.legends[0] if fig.legends else fig.axes[0].get_legend()
    texts = [t.get_text() for t in legend.get_texts()]
    assert "energy, foundation zero-shot" in texts and "energy" in texts
    fig.canvas.draw()
    box = legend.get_window_extent()
    for ax in fig.axes:
        for line in ax.get_lines():
            points = ax.transData.transform(line.get_xydata())
            inside = [box.contains(x, y) for x, y in points]
            assert not any(inside), f"legend covers a point of {line.get_label()}"
