"""``frostline submit``: add a campaign to a jobflow-remote project or a FireWorks LaunchPad."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from frostline.cli_common import LOG_FILE, heavy_imports, iterations_note, keep_quiet_in
from frostline.cli_common import console as make_console
from frostline.cli_common import fail as _fail

console = make_console()


class Manager(StrEnum):
    jobflow_remote = "jobflow-remote"
    fireworks = "fireworks"


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
    heavy_imports()  # its notices are held, then kept in DIR/frostline.log
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
    keep_quiet_in(Path(result.campaign_dir) / LOG_FILE)
    if as_json:
        print(json.dumps(result.as_dict()))
        return
    for line in submitted_lines(cfg.name, result, cfg.convergence.max_iterations):
        console.print(line, highlight=False)


def submitted_lines(name: str, result, max_iterations: int) -> list[str]:
    """What ``frostline submit`` prints: the flow, the jobs it starts with and that it grows."""
    routes = ", ".join(f"{k}→{v or 'any'}" for k, v in result.workers.items())
    note = iterations_note(max_iterations)
    return [
        f"[bold green]submitted[/] {name}: flow {result.flow_uuid} to {result.manager} "
        f"({result.project}); {routes}",
        f"{result.n_jobs} jobs to start with: the flow grows as it runs (each iteration adds its "
        f"fine-tuning, exploration, selection and one labelling job per structure; up to "
        f"{max_iterations} iterations), so `jf flow list` / `jf job list` will show more",
        f"status: frostline status {result.campaign_dir}",
        *([f"[yellow]note[/]: {note}"] if note else []),
    ]


def register(app: typer.Typer) -> None:
    """Add ``submit`` to the frostline app."""
    app.command("submit")(submit)
