"""Command-line interface: ``frostline demo | init | run | status | foundation build-mini``
(registry commands ``models | data | campaigns``: ``frostline.cli_registry``).

Nothing heavy is imported here: ``frostline --help`` answers at once, and each command imports
torch, mace or jobflow only when it needs them (``frostline.cli_common.heavy_imports``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from frostline.alloys.cli import register as register_alloy_commands
from frostline.cli_common import (
    LOG_FILE,
    heavy_imports,
    iterations_note,
    keep_quiet_in,
    quiet_third_party,
)
from frostline.cli_common import console as make_console
from frostline.cli_common import fail as _fail
from frostline.cli_registry import register as register_registry_commands
from frostline.progress import display
from frostline.submit.cli import register as register_submit_command

app = typer.Typer(help="frostline: active learning of MLIPs by frozen fine-tuning of MACE.")
foundation_app = typer.Typer(help="Foundation models.")
app.add_typer(foundation_app, name="foundation")
register_registry_commands(app)  # models | data | campaigns (frostline.cli_registry)
register_submit_command(app)  # submit to jobflow-remote / FireWorks (frostline.submit.cli)
register_alloy_commands(app)  # alloys run | summary (frostline.alloys.cli)
quiet_third_party()
console = make_console()
err = make_console(stderr=True)

PACKAGE_DATA = Path(__file__).resolve().parent / "data"
DEMO_CONFIG = PACKAGE_DATA / "demo_h2_cu111.yaml"


def _run(config_path: Path, campaign_dir: Path | None, wait_s: float = 0.0) -> dict:
    from frostline.config import ConfigError, load_config

    def named(exc: Exception) -> str:  # name the config file in every input error
        message = str(exc)
        return message if str(config_path) in message else f"{config_path}: {message}"

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        _fail(named(exc))
    campaign_dir = Path(campaign_dir or Path("campaigns") / config.name)
    note = iterations_note(config.convergence.max_iterations)
    if note:
        err.print(f"[yellow]note[/]: {note}", soft_wrap=True)  # one line, however narrow
    heavy_imports()  # its notices are held, then kept in DIR/frostline.log once the run ran
    from frostline.finetune.foundation import FoundationError
    from frostline.flows.campaign import run_campaign
    from frostline.reliability.errors import CampaignError
    from frostline.reliability.locking import CampaignLockedError
    from frostline.store import StoreError

    iterations, members = config.convergence.max_iterations, config.finetune.committee_size
    try:
        with display(iterations, members):  # live progress on a terminal (frostline.progress)
            result = run_campaign(config, campaign_dir, wait_s=wait_s)
    except (ConfigError, FoundationError) as exc:
        _fail(named(exc))
    except CampaignLockedError as exc:  # another run owns the directory: write nothing there
        _fail(str(exc))
    except (StoreError, CampaignError) as exc:
        keep_quiet_in(campaign_dir / LOG_FILE)
        _fail(str(exc))
    keep_quiet_in(campaign_dir / LOG_FILE)
    return result


def _print_status(
    campaign_dir: Path,
    as_json: bool = False,
    campaign: str | None = None,
    plots: bool = False,
    wide: bool = False,
) -> dict:
    from frostline.distill.status import surrogate_line
    from frostline.registry.queries import campaign_status, open_campaign_dir
    from frostline.report.tables import (
        fates_table,
        status_table,
        timing_table,
        training_hints,
    )
    from frostline.store import StoreError

    try:
        records = open_campaign_dir(campaign_dir)
        status = campaign_status(records, campaign)
        records.close()
    except StoreError as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps(status, default=str))
    else:
        out = make_console(wide=wide)
        out.print(status_table(status, wide))
        if any(it.get("fates") for it in status["iterations"]):
            out.print(fates_table(status, wide))
        if any("total" in (it.get("wall_time_s") or {}) for it in status["iterations"]):
            out.print(timing_table(status))
        for hint in training_hints(status):
            out.print(f"[yellow]{hint}[/]")
        for surrogate in status.get("surrogates") or []:
            out.print(surrogate_line(surrogate))
        if forgetting := status.get("forgetting"):
            from frostline.finetune.forgetting import ForgettingCheck

            check = ForgettingCheck.model_validate(forgetting)
            out.print(check.summary())
            for warning in check.warnings:
                out.print(f"[yellow]{warning}[/]")
    if plots:
        from frostline.report.plots import write_campaign_plots

        paths = write_campaign_plots(
            status, Path(campaign_dir) / "plots", status.get("target_force_error")
        )
        (err if as_json else console).print(
            "plots: " + ", ".join(str(p) for p in paths) if paths else "plots: no data yet"
        )
    return status


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="campaign YAML file")],
    dir: Annotated[Path | None, typer.Option("--dir", help="campaign directory")] = None,
    wait: Annotated[
        float, typer.Option("--wait", help="seconds to wait for another run of this directory")
    ] = 0.0,
) -> None:
    """Run a campaign to the end with jobflow's local manager (a re-run resumes it)."""
    result = _run(config, dir, wait)
    faults = result.get("faults") or []
    note = f"; {len(faults)} failed job(s) recorded, see faults.log" if faults else ""
    console.print(f"[bold green]done[/]: {result['state']} ({result['stop_reason']}){note}")


def _ask(value, flag: str, question: str, no_input: bool, default=None):
    """``value`` if given, else the answer to ``question`` (``--no-input``: an error naming
    ``flag``, unless there is a default)."""
    if value is not None:
        return value
    if no_input:
        if default is not None:
            return default
        _fail(f"{flag} is required with --no-input")
    return typer.prompt(question, default=default)


@app.command()
def init(
    config: Annotated[Path, typer.Argument(help="campaign YAML file to write")],
    name: Annotated[str | None, typer.Option(help="campaign name")] = None,
    elements: Annotated[
        str | None, typer.Option(help="comma-separated elements, e.g. Cu,H")
    ] = None,
    structure: Annotated[
        Path | None, typer.Option(help="seed structures: any ASE-readable file")
    ] = None,
    builder: Annotated[
        str | None, typer.Option(help="built-in seed builder instead of --structure: h2_cu111")
    ] = None,
    oracle: Annotated[
        str | None, typer.Option(help="emt, xtb, chgnet, chgnet-r2scan, cp2k or vasp")
    ] = None,
    budget: Annotated[int | None, typer.Option(help="labels in all (oracle calls)")] = None,
    foundation: Annotated[str, typer.Option(help="mini, mini-64, a .model path")] = "mini",
    force: Annotated[bool, typer.Option("--force", help="overwrite CONFIG")] = False,
    no_input: Annotated[
        bool, typer.Option("--no-input", help="ask nothing: every answer from the options")
    ] = False,
) -> None:
    """Write a commented campaign YAML for your own system (asks for what the options omit)."""
    from frostline.config import ConfigError
    from frostline.init_config import ORACLES, InitAnswers, write_campaign

    name = _ask(name, "--name", "campaign name", no_input, default=config.stem)
    elements = _ask(elements, "--elements", "elements (comma-separated, e.g. Cu,H)", no_input)
    if structure is None and builder is None:
        source = _ask(None, "--structure", "seed structure file (or builder h2_cu111)", no_input)
        builder, structure = (source, None) if source == "h2_cu111" else (None, Path(source))
    oracle = _ask(oracle, "--oracle", f"oracle ({', '.join(ORACLES)})", no_input, default="xtb")
    budget = _ask(budget, "--budget", "label budget (oracle calls in all)", no_input, default=60)
    answers = InitAnswers(
        name=name,
        elements=[e.strip() for e in str(elements).split(",") if e.strip()],
        oracle=oracle,
        budget=int(budget),
        structure=structure,
        builder=builder,
        foundation=foundation,
    )
    try:
        path = write_campaign(answers, config, force=force)
    except ConfigError as exc:
        _fail(str(exc))
    console.print(f"wrote {path}; run it with: frostline run {path}")


@app.command()
def demo(
    dir: Annotated[Path, typer.Option("--dir", help="campaign directory")] = Path(
        "campaigns/demo-h2-cu111"
    ),
    alloys: Annotated[
        bool, typer.Option("--alloys", help="alloy campaign demo: Cu-Ni-Au, CHGNet-r2SCAN labels")
    ] = False,
) -> None:
    """H2 on Cu(111): fine-tune the mini foundation to GFN1-xTB labels by active learning."""
    if alloys:  # frostline.alloys.cli: its own default directory unless --dir is given
        from frostline.alloys.cli import alloy_demo

        return alloy_demo(None if dir == Path("campaigns/demo-h2-cu111") else dir)
    start = time.perf_counter()
    result = _run(DEMO_CONFIG, dir)
    status = _print_status(dir, plots=True)
    final = (result.get("final_metrics") or {}).get("force_mae_mev_per_a")
    zero = status.get("zero_shot_force_mae_mev_per_a")
    console.print(
        f"validation force MAE: foundation zero-shot {zero:.1f} meV/Å -> fine-tuned "
        f"{final:.1f} meV/Å after {result['iterations']} iterations and "
        f"{result['labels_spent']} labels ({time.perf_counter() - start:.0f} s)"
    )


@app.command()
def status(
    dir: Annotated[Path, typer.Argument(help="campaign directory")],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
    campaign: Annotated[str | None, typer.Option(help="campaign name if several")] = None,
    plots: Annotated[
        bool, typer.Option("--plots", help="also write PNG plots to DIR/plots")
    ] = False,
    wide: Annotated[bool, typer.Option("--wide", help="every column (wider than 100)")] = False,
) -> None:
    """Per-iteration table of a campaign (labels, selection, errors, accurate fraction, time)."""
    _print_status(dir, as_json, campaign, plots, wide)


@foundation_app.command("build-mini")
def build_mini(
    out: Annotated[Path | None, typer.Option(help="output .model path")] = None,
    n_per_group: Annotated[int, typer.Option(help="structures per group")] = 25,
    epochs: Annotated[int, typer.Option(help="training epochs")] = 40,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    channels: Annotated[int, typer.Option(help="MACE channels")] = 32,
    max_l: Annotated[int, typer.Option("--max-l", help="MACE max_L (0: invariant)")] = 0,
    batch_size: Annotated[int, typer.Option(help="training batch size")] = 8,
    dtype: Annotated[str, typer.Option(help="float64 or float32")] = "float64",
    patience: Annotated[
        int | None, typer.Option(help="stop after this many epochs without improvement")
    ] = None,
) -> None:
    """Pretrain the mini MACE foundation on CHGNet-labelled broad data (about 20 min on 2 cores)."""
    heavy_imports()
    from frostline.choices import DTYPES
    from frostline.finetune.foundation import MINI_FOUNDATION, build_mini_foundation

    if dtype not in DTYPES:
        raise typer.BadParameter("--dtype must be float64 or float32", param_hint="--dtype")
    path = build_mini_foundation(
        out or MINI_FOUNDATION,
        n_per_group,
        epochs,
        seed,
        num_channels=channels,
        max_L=max_l,
        batch_size=batch_size,
        dtype=dtype,
        patience=patience,
    )
    console.print(f"mini foundation written to {path}")


if __name__ == "__main__":
    app()
