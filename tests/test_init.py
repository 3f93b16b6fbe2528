"""``frostline init``: a commented campaign YAML that validates, written without questions."""

from __future__ import annotations

import pytest
from ase.build import bulk
from ase.io import write
from typer.testing import CliRunner

from frostline.cli import app
from frostline.config import load_config


def invoke(args: list[str], input: str | None = None):
    return CliRunner().invoke(app, ["init", *args], input=input, env={"COLUMNS": "200"})


def test_init_non_interactive_writes_a_valid_commented_config(tmp_path):
    seeds = tmp_path / "seeds" / "cu.extxyz"
    seeds.parent.mkdir()
    write(seeds, [bulk("Cu", cubic=True), bulk("Cu", cubic=True) * (2, 1, 1)])
    out = tmp_path / "cfg" / "mine.yaml"
    args = ["--name", "cu-bulk", "--elements", "Cu", "--structure", str(seeds)]
    res = invoke([str(out), *args, "--oracle", "emt", "--budget", "40", "--no-input"])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "# " in text and "frostline run" in text  # commented
    config = load_config(out)  # what `frostline run` does first
    assert config.name == "cu-bulk" and config.elements == ["Cu"]
    assert config.system.seeds_file.resolve() == seeds.resolve()  # relative to cfg/
    assert config.system.builder is None
    assert config.oracle.name == "emt" and config.convergence.label_budget == 40
    assert config.system.n_initial + config.select.max_labels_per_iteration <= 40


def test_init_asks_for_what_the_options_omit(tmp_path):
    out = tmp_path / "asked.yaml"
    res = invoke([str(out)], input="demo\nCu,H\nh2_cu111\nxtb\n50\n")
    assert res.exit_code == 0, res.output
    config = load_config(out)
    assert (config.name, config.elements, config.system.builder) == (
        "demo",
        ["Cu", "H"],
        "h2_cu111",
    )
    assert config.oracle.name == "xtb" and config.convergence.label_budget == 50


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--elements", "Cu,Xx", "--builder", "h2_cu111"], "--elements: unknown element(s): Xx"),
        (["--elements", "Cu,H", "--builder", "h2_cu111", "--oracle", "dft"], "--oracle: unknown"),
        (["--elements", "Cu,H", "--builder", "h2_cu111", "--budget", "3"], "--budget: "),
        (["--elements", "Cu,H", "--builder", "h2_cu111", "--name", "a b"], "--name: "),
        (["--elements", "Cu,H", "--builder", "slab"], "--builder: unknown builder"),
        (["--elements", "Cu,H", "--structure", "missing.xyz"], "--structure: "),
        (["--builder", "h2_cu111"], "--elements is required"),
    ],
)
def test_init_bad_input_is_one_line_naming_the_option(tmp_path, args, message):
    out = tmp_path / "bad.yaml"
    res = invoke([str(out), *args, "--no-input"])
    assert res.exit_code == 2, res.output
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "Traceback" not in res.output
    assert not out.exists()


def test_init_structure_with_other_elements_and_existing_file(tmp_path):
    seeds = tmp_path / "ni.extxyz"
    write(seeds, bulk("Ni", cubic=True))
    out = tmp_path / "c.yaml"
    res = invoke([str(out), "--elements", "Cu", "--structure", str(seeds), "--no-input"])
    assert res.exit_code == 2 and "not listed in 'elements'" in res.stderr
    out.write_text("keep me\n")
    res = invoke([str(out), "--elements", "Cu,H", "--builder", "h2_cu111", "--no-input"])
    assert res.exit_code == 2 and "exists (--force overwrites it)" in res.stderr
    assert out.read_text() == "keep me\n"
    res = invoke([str(out), "--elements", "Cu,H", "--builder", "h2_cu111", "--no-input", "--force"])
    assert res.exit_code == 0 and load_config(out).elements == ["Cu", "H"]


@pytest.mark.parametrize("budget", [8, 12, 30, 200])
def test_init_configs_have_md_starts_and_a_batch_to_label(tmp_path, budget):
    """The smallest budgets still give the builder's seeds beyond its two references (clean
    slab, H2 molecule) as MD starts, and at least two iterations (the last labels nothing)."""
    from frostline.seeds import campaign_structures

    out = tmp_path / "b.yaml"
    args = ["--elements", "Cu,H", "--builder", "h2_cu111", "--budget", str(budget)]
    assert invoke([str(out), *args, "--no-input"]).exit_code == 0
    config = load_config(out)
    assert campaign_structures(config).starts
    assert config.convergence.max_iterations >= 2
    assert config.system.n_initial + config.select.max_labels_per_iteration <= budget
