"""Registry commands: ``frostline models list|show|export|migrate``, ``data export``,
``campaigns list``.

Each command reads one store: ``--dir DIR`` (a campaign directory, with the store it was run
with), ``--store URI`` (MongoDB) or ``$FROSTLINE_MONGODB_URI``, with ``--database``. Tables for
people, ``--json`` for programs; bad input is one red line on stderr and exit code 2.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from frostline.cli_common import console, heavy_imports
from frostline.cli_common import fail as _fail
from frostline.settings import env_var

if TYPE_CHECKING:
    from frostline.store import Records

models_app = typer.Typer(
    help="Trained models in a store: list, show, export.", no_args_is_help=True
)
data_app = typer.Typer(help="Labelled structures in a store: export.", no_args_is_help=True)
campaigns_app = typer.Typer(help="Campaigns in a store.", no_args_is_help=True)

ENV_URI = env_var("mongodb_uri")

DirOpt = Annotated[
    Path | None, typer.Option("--dir", help="campaign directory (its store)", show_default=False)
]
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store", help=f"MongoDB URI (default: ${ENV_URI})", metavar="URI", show_default=False
    ),
]
DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database",
        help="MongoDB database (default: the one the URI names, else frostline)",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON on stdout")]
ForceOpt = Annotated[bool, typer.Option("--force", help="replace an existing output file")]


def register(app: typer.Typer) -> None:
    """Add the ``models``, ``data`` and ``campaigns`` command groups to ``app``."""
    app.add_typer(models_app, name="models")
    app.add_typer(data_app, name="data")
    app.add_typer(campaigns_app, name="campaigns")


def _out(wide: bool = False) -> Console:
    return console(wide=wide)


@contextmanager
def _records(campaign_dir: Path | None, uri: str | None, database: str | None) -> Iterator[Records]:
    """Connected records; store, query and write errors become one line and exit code 2."""
    from pymongo.errors import PyMongoError

    from frostline.registry.stores import open_store
    from frostline.store import StoreError, short_error

    try:
        records = open_store(campaign_dir, uri, database)
    except StoreError as exc:
        _fail(str(exc), uri)
    try:
        yield records
    except (StoreError, ValueError, OSError, PyMongoError) as exc:
        _fail(short_error(exc), uri)
    finally:
        try:
            records.close()
        except Exception:
            pass


def _dump(obj: Any) -> None:
    print(json.dumps(obj, default=str))


def _fmt(x: Any, digits: int = 1) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _max_mae(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        _fail(f"--max-force-mae: not a number: {text!r}")
    if not math.isfinite(value) or value < 0:
        _fail(f"--max-force-mae must be a number >= 0 (meV/Å), not {text}")
    return value


@models_app.command("list")
def models_list(
    elements: Annotated[
        str | None,
        typer.Option(help="comma-separated elements, e.g. Cu,H", show_default=False),
    ] = None,
    elements_mode: Annotated[
        str,
        typer.Option(help="exact: trained on exactly these elements; subset: on at least these"),
    ] = "exact",
    kind: Annotated[
        str | None,
        typer.Option(
            help="committee-member (a campaign's fine-tuned MACE models), ace-surrogate, "
            "mace-foundation, mace-finetuned (fine-tuned models registered by hand)"
        ),
    ] = None,
    max_force_mae: Annotated[
        str | None,
        typer.Option(help="keep models with validation force MAE <= this", metavar="MEV_PER_A"),
    ] = None,
    campaign: Annotated[str | None, typer.Option(help="campaign name")] = None,
    limit: Annotated[int, typer.Option(help="at most this many models (0: all)")] = 50,
    all_models: Annotated[
        bool, typer.Option("--all", help="also models their campaign did not use (superseded)")
    ] = False,
    dir: DirOpt = None,
    store: StoreOpt = None,
    database: DatabaseOpt = None,
    as_json: JsonOpt = False,
    wide: Annotated[bool, typer.Option("--wide", help="more columns (wider than 100)")] = False,
) -> None:
    """Models matching every filter, best validation force MAE first."""
    from frostline.registry.models import CAMPAIGN_KINDS, list_models, model_filter

    mae = _max_mae(max_force_mae)
    if limit < 0:
        _fail(f"--limit must be >= 0, not {limit}")
    try:  # validate the filters before connecting to anything
        model_filter(elements, elements_mode, kind, mae, campaign)
    except ValueError as exc:
        _fail(str(exc))
    with _records(dir, store, database) as records:
        docs = list_models(
            records,
            elements,
            elements_mode,
            kind,
            mae,
            campaign,
            limit,
            include_superseded=all_models,
        )
    if as_json:
        _dump(docs)
        return
    out = _out(wide)
    out.print(_models_table(docs, wide))
    if limit and len(docs) == limit:
        out.print(f"(first {limit}; --limit 0 lists all)", style="dim")
    if not docs and kind and kind not in CAMPAIGN_KINDS:
        kinds = ", ".join(f"{k} ({v})" for k, v in CAMPAIGN_KINDS.items())
        out.print(f"campaigns record their models as: {kinds}", style="yellow")


def _models_table(docs: list[dict], wide: bool) -> Table:
    table = Table(
        title=f"{len(docs)} model(s)",
        caption="MAE: validation errors, forces in meV/Å, energies in meV/atom",
        box=box.SIMPLE_HEAD,
    )
    from frostline.distill.status import surrogate_verdict

    verdicts = [surrogate_verdict(d) for d in docs]
    status_col = any(verdicts)  # an ACE surrogate's checks: ok / target missed / failed
    columns = ["model id", "kind", "campaign", "elements", "F MAE", "E MAE"]
    if wide:
        columns += ["iter", "member", "freeze", "n train", "created"]
    for col in (*columns, *(["status"] if status_col else [])):
        numeric = col in ("F MAE", "E MAE", "iter", "member", "n train")
        table.add_column(
            col,
            justify="right" if numeric else "left",
            no_wrap=col in ("model id", "kind"),
            overflow="fold",
            min_width=5 if numeric else None,
        )
    for d, verdict in zip(docs, verdicts, strict=True):
        metrics = d.get("metrics") or {}
        row = [
            d["model_id"],
            _fmt(d.get("kind")),
            _fmt(d.get("campaign")),
            ",".join(sorted(d.get("elements") or [])),
            _fmt(metrics.get("force_mae_mev_per_a")),
            _fmt(metrics.get("energy_mae_mev_per_atom")),
        ]
        if wide:
            created = str(d.get("created") or "")[:16].replace("T", " ")
            keys = ("iteration", "member", "freeze_level", "n_train")
            row += [*(_fmt(d.get(k)) for k in keys), created or "–"]
        table.add_row(*row, *([_verdict_cell(verdict)] if status_col else []))
    return table


def _verdict_cell(verdict: str | None) -> str:
    colours = {"failed": "bold red", "target missed": "yellow", "unchecked": "yellow"}
    if verdict is None:
        return ""
    return (
        f"[{colours.get(verdict, 'green')}]{verdict.upper() if verdict == 'failed' else verdict}[/]"
    )


@models_app.command("show")
def models_show(
    model_id: Annotated[str, typer.Argument(help="model id")],
    dir: DirOpt = None,
    store: StoreOpt = None,
    database: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Everything recorded about one model."""
    from frostline.registry.models import get_model

    with _records(dir, store, database) as records:
        doc = get_model(records, model_id)
    if as_json:
        _dump(doc)
        return
    table = Table(title=f"model {model_id}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in doc.items():
        if key == "training_set_hashes":
            table.add_row("training set", f"{len(value or [])} structures")
        elif isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, dict):  # e.g. metrics.force_mae_by_element
                    cell = ", ".join(f"{a} {_fmt(b, 2)}" for a, b in v.items())
                    table.add_row(f"{key}.{k}", cell)
                elif k != "data_b64":
                    table.add_row(f"{key}.{k}", _fmt(v, 2))
        elif isinstance(value, list):
            table.add_row(key, ", ".join(map(str, value)))
        else:
            table.add_row(key, _fmt(value, 2))
    _out().print(table)


@models_app.command("export")
def models_export(
    model_id: Annotated[str, typer.Argument(help="model id")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="file (or existing directory) to write")
    ],
    dir: DirOpt = None,
    store: StoreOpt = None,
    database: DatabaseOpt = None,
    force: Annotated[bool, typer.Option("--force", help="replace existing output files")] = False,
    allow_failed: Annotated[
        bool,
        typer.Option("--allow-failed", help="ACE surrogate: export one that failed its checks"),
    ] = False,
) -> None:
    """Write a model file, after checking its sha256 against the record.

    A MACE model is rebuilt from its stored weights and architecture (nothing from the store
    is unpickled) and written as a mace-torch ``.model`` file (never over an existing file
    without ``--force``). For an ACE surrogate the B-basis ``.yaml`` and active set ``.asi``
    (extrapolation grades) are written next to the ``.yace`` (mode 644, never over existing
    files without ``--force``); a surrogate that failed its MD stability check is refused
    unless ``--allow-failed`` (then exported with a warning).
    """
    from frostline.registry.models import export_model, get_model

    with _records(dir, store, database) as records:
        if get_model(records, model_id).get("kind") == "ace-surrogate":
            heavy_imports()
            from frostline.distill.jobs import export_surrogate

            files = export_surrogate(records, model_id, output, force, allow_failed)
            path = ", ".join(str(p) for p in files.values())
        else:
            path = export_model(records, model_id, output, force=force)
    _out().print(f"{model_id} -> {path} (sha256 verified)")


@models_app.command("migrate")
def models_migrate(
    campaign: Annotated[str | None, typer.Option(help="campaign name (default: all)")] = None,
    trust: Annotated[
        bool, typer.Option("--trust", help="unpickle the old files: you trust this store")
    ] = False,
    dir: DirOpt = None,
    store: StoreOpt = None,
    database: DatabaseOpt = None,
) -> None:
    """Convert model files stored as pickled ``.model`` (before frostline stored weights plus
    architecture) so that campaigns written before resume.

    Unpickling a file runs any code it names: without ``--trust`` the command only lists the
    models it would convert.
    """
    from frostline.registry.models import legacy_models, migrate_models

    with _records(dir, store, database) as records:
        docs = legacy_models(records, campaign)
        ids = ", ".join(d["model_id"] for d in docs)
        if docs and not trust:
            _fail(
                f"{len(docs)} model(s) stored as pickled .model files ({ids}): converting "
                "them unpickles them, which runs any code they name; if you trust everyone "
                "who can write to this store, run again with --trust"
            )
        done = migrate_models(records, docs)
    if done:
        _out().print(f"migrated {len(done)} model(s) to weights + architecture: {', '.join(done)}")
    else:
        _out().print("nothing to migrate: every model is stored as weights + architecture")


@data_app.command("export")
def data_export(
    output: Annotated[Path, typer.Option("--output", "-o", help="extxyz file to write")],
    campaign: Annotated[str | None, typer.Option(help="campaign name (default: all)")] = None,
    role: Annotated[str, typer.Option(help="train, validation or all")] = "train",
    dir: DirOpt = None,
    store: StoreOpt = None,
    database: DatabaseOpt = None,
    force: ForceOpt = False,
) -> None:
    """Successfully labelled structures as extxyz (energy, forces, stress; provenance in info)."""
    from frostline.registry.data import export_labelled, labelled_filter

    try:
        labelled_filter(campaign, role)
    except ValueError as exc:
        _fail(str(exc))
    with _records(dir, store, database) as records:
        n = export_labelled(records, output, campaign, role, force=force)
    _out().print(f"{n} labelled structure(s) -> {output}")


@campaigns_app.command("list")
def campaigns_list(
    dir: DirOpt = None,
    store: StoreOpt = None,
    database: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Campaigns: state, iterations, labels, final validation force MAE."""
    from frostline.registry.campaigns import list_campaigns

    with _records(dir, store, database) as records:
        rows = list_campaigns(records)
    if as_json:
        _dump(rows)
        return
    table = Table(
        title=f"{len(rows)} campaign(s)",
        caption="train / valid.: successful labels; F MAE: last validation force MAE, meV/Å",
        box=box.SIMPLE_HEAD,
    )
    for col in ("campaign", "state", "stop reason", "iters", "train", "valid.", "F MAE"):
        text = col in ("campaign", "state", "stop reason")
        table.add_column(col, justify="left" if text else "right", overflow="fold")
    for r in rows:
        table.add_row(
            r["campaign"],
            _fmt(r["state"]),
            _fmt(r["stop_reason"]),
            _fmt(r["n_iterations"]),
            _fmt(r["n_train_labels"]),
            _fmt(r["n_validation"]),
            _fmt(r["final_force_mae_mev_per_a"]),
        )
    _out().print(table)
