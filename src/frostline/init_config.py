"""``frostline init``: a commented campaign YAML from a few answers, validated before it is written.

The answers (elements, a structure file or a built-in builder, an oracle, a label budget) fill a
template that holds the sections a user is most likely to change, each with a comment; every other
field keeps its default (the configuration reference lists them all). The text is validated with
the same loader ``frostline run`` uses, so a written file always runs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from frostline.config import ConfigError, parse_config

ORACLES = {
    "emt": "EMT (ASE): instant, for trying the loop; only Al, Cu, Ag, Au, Ni, Pd, Pt, H, C, N, O",
    "xtb": "GFN1-xTB (tblite): seconds per cell, molecules and surfaces",
    "chgnet": "CHGNet (PBE level, a universal ML potential)",
    "chgnet-r2scan": "CHGNet's r2SCAN model",
    "cp2k": "CP2K DFT (PBE) through atomate2",
    "vasp": "VASP DFT (Materials Project static settings) through atomate2",
}
BUILDERS = ("h2_cu111",)
FLAGS = {  # config field -> the init option that sets it (errors name the option)
    "name": "--name",
    "elements": "--elements",
    "system.seeds_file": "--structure",
    "system.builder": "--builder",
    "oracle.name": "--oracle",
    "convergence.label_budget": "--budget",
    "foundation": "--foundation",
}

ORACLE_SETTINGS = {
    "cp2k": "  settings:                      # atomate2/pymatgen DftSet keywords\n"
    "    input: {cutoff: 500, rel_cutoff: 50}\n"
    "    kpoints: gamma                 # or {grid: [n, n, n]} / {reciprocal_density: x}\n"
    "    omp_threads: 2\n",
    "vasp": "  settings:\n    incar: {}                      # overrides of MP's INCAR\n",
}


@dataclass(frozen=True)
class InitAnswers:
    """What ``frostline init`` asks for."""

    name: str
    elements: list[str]
    oracle: str
    budget: int
    structure: Path | None = None
    builder: str | None = None
    foundation: str = "mini"


@dataclass(frozen=True)
class BudgetPlan:
    """How a label budget is spent: initial set, validation set, labels per iteration."""

    n_initial: int
    n_validation: int
    per_iteration: int
    max_iterations: int


def plan_budget(budget: int) -> BudgetPlan:
    """Split ``budget`` (labels incl. the initial set; the validation set comes on top) into a
    campaign's sizes."""
    if budget < 8:
        raise ConfigError(f"--budget: at least 8 labels (initial set, two batches), not {budget}")
    n_initial = max(4, min(10, budget // 6))  # the h2_cu111 builder's first two are references
    n_validation = max(4, min(20, budget // 5))
    per_iteration = max(2, min(10, budget // 8))
    rest = budget - n_initial
    return BudgetPlan(
        n_initial, n_validation, per_iteration, max(2, min(10, rest // per_iteration))
    )


def _seeds_line(answers: InitAnswers, config_path: Path) -> str:
    if answers.structure is None:
        return f"  builder: {answers.builder}          # built-in seed generator\n"
    structure = Path(answers.structure).resolve()
    try:  # relative to the config file's folder, as load_config resolves it
        shown = os.path.relpath(structure, config_path.resolve().parent)
    except ValueError:  # another drive
        shown = str(structure)
    return (
        f"  builder: null\n  seeds_file: {json.dumps(shown)}   # any ASE-readable file "
        "(relative to this file)\n"
    )


def campaign_yaml(answers: InitAnswers, config_path: Path) -> str:
    """The commented campaign YAML for ``answers`` (not yet validated)."""
    plan = plan_budget(answers.budget)
    q = json.dumps
    return (
        f"# Campaign written by `frostline init`. Run it: frostline run {config_path.name}\n"
        "# Every field and its default: the configuration reference in the docs\n"
        "# (docs/reference/configuration.md, generated from src/frostline/config.py).\n"
        f"name: {q(answers.name)}             # names the records and campaigns/NAME\n"
        f"elements: {q(answers.elements)}\n"
        f"foundation: {q(answers.foundation)}          # 'mini' / 'mini-64' (shipped), a .model "
        "path, or a MACE-MP name\n"
        "system:\n"
        f"{_seeds_line(answers, config_path)}"
        f"  n_initial: {plan.n_initial}                  # labelled before the first fine-tune\n"
        f"  n_validation: {plan.n_validation}              # held out: validation errors\n"
        "  rattle: 0.05                  # Å, Gaussian rattle of the seeds\n"
        "finetune:\n"
        "  freeze: 0                     # mace-torch --freeze level; 0: all layers (best with "
        "the small mini foundation)\n"
        "  committee_size: 2             # the committee's spread drives the selection\n"
        "  epochs: 40\n"
        "explore:\n"
        "  temperatures: [300, 800]      # K, Langevin MD with the committee\n"
        "  steps: 120\n"
        "  sample_every: 10\n"
        "select:\n"
        f"  max_labels_per_iteration: {plan.per_iteration}\n"
        "oracle:\n"
        f"  name: {answers.oracle}                     # {ORACLES[answers.oracle]}\n"
        f"{ORACLE_SETTINGS.get(answers.oracle, '')}"
        "convergence:\n"
        "  accurate_fraction: 0.9        # converged when 90 % of explored frames are accurate\n"
        f"  max_iterations: {plan.max_iterations}\n"
        f"  label_budget: {answers.budget}             # labels in all, incl. the initial set "
        "(the validation set is extra)\n"
        "store:\n"
        "  kind: embedded                # montydb files under campaigns/NAME/store; or mongodb "
        "(uri, database)\n"
        "seed: 0\n"
    )


def _flag_error(exc: ConfigError) -> ConfigError:
    """A config error rewritten to name the init option, one line."""
    first = str(exc).splitlines()[0]
    for field, flag in FLAGS.items():
        marker = f"field '{field}': "
        if marker in first:
            reason = first.split(marker, 1)[1].removeprefix("Value error, ")
            return ConfigError(f"{flag}: {reason}")
    return ConfigError(first)


def check_answers(answers: InitAnswers) -> None:
    """``ConfigError`` (one line, naming the option) for answers no campaign can run with."""
    if answers.oracle not in ORACLES:
        raise ConfigError(
            f"--oracle: unknown oracle {answers.oracle!r} (one of {', '.join(ORACLES)})"
        )
    if (answers.structure is None) == (answers.builder is None):
        raise ConfigError("--structure: give a structure file or --builder, one of them")
    if answers.builder is not None and answers.builder not in BUILDERS:
        raise ConfigError(f"--builder: unknown builder {answers.builder!r} (one of {BUILDERS})")
    plan_budget(answers.budget)


def write_campaign(answers: InitAnswers, config_path: Path, force: bool = False) -> Path:
    """Validate ``answers``, write the campaign YAML to ``config_path`` and return it.

    The text is parsed back and validated (as ``frostline run`` will) before anything is
    written; the structure file is read and checked against the elements. An existing file is
    kept unless ``force``.
    """
    from frostline.seeds import read_seed_file

    config_path = Path(config_path)
    if config_path.exists() and not force:
        raise ConfigError(f"{config_path}: exists (--force overwrites it)")
    check_answers(answers)
    text = campaign_yaml(answers, config_path)
    try:
        config = parse_config(yaml.safe_load(text), source=str(config_path))
    except ConfigError as exc:
        raise _flag_error(exc) from None
    if answers.structure is not None:
        try:
            read_seed_file(Path(answers.structure), config.elements)
        except ConfigError as exc:
            raise ConfigError(f"--structure: {exc}") from None
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(text)
    return config_path
