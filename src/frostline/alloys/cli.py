"""``frostline alloys run | summary`` and the alloy demo (``frostline demo --alloys``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from frostline.cli_common import LOG_FILE, heavy_imports, keep_quiet_in
from frostline.cli_common import console as make_console
from frostline.cli_common import fail as _fail

PACKAGE_DATA = Path(__file__).resolve().parent.parent / "data"
ALLOY_DEMO_CONFIG = PACKAGE_DATA / "alloys_cu_ni_au.yaml"
DEMO_DIR = Path("campaigns/demo-alloys-cu-ni-au")

alloys_app = typer.Typer(help="High-throughput alloy campaigns (many chemical systems).")
console = make_console()


def run_alloys(config_path: Path, campaign_dir: Path | None) -> dict:
    """Load, run and return the summary document of an alloy campaign (errors: exit 2)."""
    heavy_imports()  # its notices are held, then kept in DIR/frostline.log after the run
    from frostline.alloys.config import load_alloy_config
    from frostline.alloys.flows import run_alloy_campaign
    from frostline.alloys.generate import GenerationError
    from frostline.config import ConfigError
    from frostline.finetune.foundation import FoundationError
    from frostline.store import StoreError

    try:
        config = load_alloy_config(config_path)
        campaign_dir = campaign_dir or Path("campaigns") / config.name
        summary = run_alloy_campaign(config, campaign_dir)
        keep_quiet_in(Path(campaign_dir) / LOG_FILE)
        return summary
    except (ConfigError, FoundationError, StoreError, GenerationError) as exc:
        _fail(str(exc))
    raise AssertionError("unreachable")


def load_summary(campaign_dir: Path, campaign: str | None = None) -> dict:
    """The stored summary document of the alloy campaign in ``campaign_dir``."""
    from frostline.alloys.jobs import SUMMARIES
    from frostline.registry.queries import open_campaign_dir
    from frostline.store import StoreError

    records = open_campaign_dir(campaign_dir)
    try:
        docs = records.find(SUMMARIES, {"campaign": campaign} if campaign else {})
    finally:
        records.close()
    if not docs:
        raise StoreError(f"{campaign_dir}: no alloy campaign summary in this store")
    if len(docs) > 1:
        names = ", ".join(sorted(d["campaign"] for d in docs))
        raise StoreError(f"several alloy campaigns in this store ({names}): name one")
    return docs[0]


def print_summary(campaign_dir: Path, as_json: bool = False, campaign: str | None = None):
    """Print the per-system table (or one JSON object)."""
    from frostline.alloys.schemas import AlloySummaryDoc
    from frostline.alloys.tables import spot_check_table, summary_table
    from frostline.store import StoreError

    try:
        doc = load_summary(campaign_dir, campaign)
    except StoreError as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps(doc, default=str))
    else:
        summary = AlloySummaryDoc.model_validate(doc)
        console.print(summary_table(summary))
        spot = spot_check_table(summary)
        if spot is not None:
            console.print(spot)
    return doc


@alloys_app.command("run")
def run(
    config: Annotated[Path, typer.Argument(help="alloy campaign YAML file")],
    dir: Annotated[Path | None, typer.Option("--dir", help="campaign directory")] = None,
) -> None:
    """Run every chemical system's active-learning loop, validate, summarise."""
    summary = run_alloys(config, dir)
    console.print(f"[bold green]done[/]: {len(summary['systems'])} systems")


@alloys_app.command("summary")
def summary(
    dir: Annotated[Path, typer.Argument(help="alloy campaign directory")],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
    campaign: Annotated[str | None, typer.Option(help="campaign name if several")] = None,
) -> None:
    """Per-system table: labels spent, iterations, force and property errors, converged."""
    print_summary(dir, as_json, campaign)


def alloy_demo(campaign_dir: Path | None) -> None:
    """Cu–Ni–Au binaries and ternary, labelled by CHGNet's r2SCAN model (~20 min on 2 cores)."""
    start = time.perf_counter()
    campaign_dir = campaign_dir or DEMO_DIR
    run_alloys(ALLOY_DEMO_CONFIG, campaign_dir)
    print_summary(campaign_dir)
    console.print(f"alloy demo finished in {time.perf_counter() - start:.0f} s")


def register(app: typer.Typer) -> None:
    """Add ``alloys`` to the main CLI."""
    app.add_typer(alloys_app, name="alloys")
