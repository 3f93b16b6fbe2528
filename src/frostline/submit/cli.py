"""``frostline submit``: add a campaign to a jobflow-remote project or a FireWorks LaunchPad."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()
err = Console(stderr=True)


class Manager(StrEnum):
    jobflow_remote = "jobflow-remote"
    fireworks = "fireworks"


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def submit(
    config: Annotated[Path, typer.Argument(help="campaign YAML file")],
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="jobflow-remote project name")
    ] = None,
    manager: Annotated[
        Manager, typer.Option("--manager", help="workflow manager")
    ] = Manager.jobflow_remote,
    launchpad: Annotated[
        Path | None, typer.Option("--launchpad", help="FireWorks launchpad YAML")
    ] = None,
    dir: Annotated[
        Path | None, typer.Option("--dir", help="campaign directory for `frostline status`")
    ] = None,
    worker_store: Annotated[
        bool,
        typer.Option(
            "--worker-store",
            help="FireWorks: jobs use the workers' jobflow JOB_STORE, not the config's store",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """Submit a campaign; each job type goes to its worker (config section ``routing``).

    jobflow-remote: start the runner afterwards (``jf -p NAME runner start``) and watch with
    ``jf -p NAME flow list`` and ``frostline status DIR``. FireWorks: ``rlaunch`` / ``qlaunch``
    with FWorkers whose ``category`` matches the routes.
    """
    from pymongo.errors import PyMongoError

    from frostline.config import ConfigError, load_config
    from frostline.finetune.foundation import FoundationError
    from frostline.store import StoreError, short_error
    from frostline.submit.remote import SubmitError

    try:
        cfg = load_config(config)
        if manager is Manager.fireworks:
            from frostline.submit.fireworks import load_launchpad, submit_fireworks

            lp = load_launchpad(launchpad)
            result = submit_fireworks(cfg, lp, dir, store_in_spec=not worker_store)
        else:
            if not project:
                _fail("--project NAME is required with --manager jobflow-remote")
            from frostline.submit.remote import submit_remote

            result = submit_remote(cfg, project, dir)
    except (ConfigError, FoundationError, StoreError, SubmitError) as exc:
        _fail(str(exc))
    except PyMongoError as exc:
        _fail(f"database error: {short_error(exc)}")
    if as_json:
        print(json.dumps(result.as_dict()))
        return
    routes = ", ".join(f"{k}→{v or 'any'}" for k, v in result.workers.items())
    console.print(
        f"[bold green]submitted[/] {cfg.name}: flow {result.flow_uuid}, {result.n_jobs} jobs "
        f"to {result.manager} ({result.project}); {routes}",
        highlight=False,
    )
    console.print(f"status: frostline status {result.campaign_dir}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``submit`` to the frostline app."""
    app.command("submit")(submit)
