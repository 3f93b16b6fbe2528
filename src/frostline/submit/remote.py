"""jobflow-remote: project files whose JobStore holds frostline's collections, and submission.

A frostline campaign writes its records (campaigns, iterations, labels, models, model files) to
``additional_stores`` of the jobflow ``JobStore`` (``frostline.store``). Under jobflow-remote that
JobStore is the project's ``jobstore``, so the project must define the same stores on the same
MongoDB as ``frostline status`` reads: ``jobstore_spec`` builds that section from a frostline
``StoreConfig``, ``project_dict`` / ``write_project`` a whole project, and
``store_config_from_project`` goes the other way (what ``status`` opens after a submission).
"""

from __future__ import annotations

import copy
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import yaml

from frostline.config import CampaignConfig, StoreConfig
from frostline.settings import settings
from frostline.store import (
    BLOB_STORE,
    COLLECTIONS,
    DATA_STORE,
    ENV_JOB_STORE,
    ENV_URI,
    Records,
    StoreError,
    make_job_store,
    redact_uri,
)
from frostline.submit.routing import JOB_TYPES, routing_table

QUEUE_COLLECTION = "jobs"
"""Collection of jobflow-remote's job queue (its flows and auxiliary collections sit beside)."""
CHECK_TIMEOUT_MS = 3000
"""Server selection timeout when ``submit`` checks the database: unreachable fails in ~3 s."""


class SubmitError(RuntimeError):
    """A campaign cannot be submitted (project, workers, database); one clear line."""


@dataclass
class Submission:
    """What ``submit`` did: the flow, its jobs, where they went and where status looks."""

    manager: str
    project: str
    flow_uuid: str
    n_jobs: int
    workers: dict[str, str]
    campaign_dir: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _uri(store: StoreConfig) -> str:
    if store.kind != "mongodb":
        raise SubmitError(
            "field 'store.kind': jobflow-remote needs a MongoDB store (kind: mongodb), "
            "the embedded store is local to one machine"
        )
    uri = store.uri or settings().mongodb_uri
    if not uri:
        raise SubmitError(f"field 'store.uri': not set and {ENV_URI} is not set")
    return uri


def _mongo(uri: str, database: str, collection: str) -> dict[str, Any]:
    return {"type": "MongoStore", "uri": uri, "database": database, "collection_name": collection}


def jobstore_spec(store: StoreConfig) -> dict[str, Any]:
    """The jobflow ``JobStore`` spec (``JobStore.from_dict_spec``) of a MongoDB frostline store.

    The same collections as ``frostline.store.make_job_store``: job outputs in ``outputs``,
    frostline's documents in their collections, model files and data in GridFS.
    """
    uri, db = _uri(store), store.database
    docs = _mongo(uri, db, "outputs")
    docs["key"] = "uuid"
    additional: dict[str, Any] = {name: _mongo(uri, db, name) for name in COLLECTIONS}
    for name in (BLOB_STORE, DATA_STORE):
        additional[name] = {
            "type": "GridFSStore",
            "uri": uri,
            "database": db,
            "collection_name": name,
        }
    return {"docs_store": docs, "additional_stores": additional}


def local_worker(
    work_dir: str | Path, pre_run: str | None = None, warm: bool = False, **options
) -> dict[str, Any]:
    """A jobflow-remote local shell worker running jobs in ``work_dir``.

    ``pre_run`` defaults to activating the Python environment running this function, so the
    worker can import frostline and ``jf``. ``warm``: run jobs through the fork server of
    ``frostline.submit.warm`` (imports once instead of once per job).
    """
    if pre_run is None:
        pre_run = f"source {Path(sys.prefix) / 'bin' / 'activate'}"
    worker = {
        "type": "local",
        "scheduler_type": "shell",
        "work_dir": str(work_dir),
        "pre_run": pre_run,
        **options,
    }
    if warm:
        from frostline.submit.warm import EXECUTION_CMD

        worker.setdefault("execution_cmd", EXECUTION_CMD)
    return worker


def project_dict(
    name: str,
    store: StoreConfig,
    workers: dict[str, dict[str, Any]],
    exec_config: dict[str, dict[str, Any]] | None = None,
    runner: dict[str, Any] | None = None,
    base_dir: str | Path | None = None,
) -> dict[str, Any]:
    """A jobflow-remote project: queue and frostline JobStore on ``store``'s MongoDB.

    Each worker's ``pre_run`` gets ``export FROSTLINE_JOB_STORE=...`` prepended, so jobs reach
    frostline's records directly (``frostline.store.current_records``). Jobs hand their outputs
    to the runner through ``frostline.submit.transfer`` files (``remote_jobstore``), which a
    runner killed while completing a job cannot truncate.
    """
    from frostline.submit.transfer import REMOTE_JOBSTORE

    uri = _uri(store)
    export = worker_export(store)
    workers = {
        name: {**w, "pre_run": f"{export}\n{w['pre_run']}" if w.get("pre_run") else export}
        for name, w in workers.items()
    }
    project: dict[str, Any] = {
        "name": name,
        "workers": workers,
        "queue": {
            "store": {
                "type": "MongoStore",
                "uri": uri,
                "database": store.database,
                "collection_name": QUEUE_COLLECTION,
            }
        },
        "exec_config": exec_config or {},
        "jobstore": jobstore_spec(store),
        "remote_jobstore": copy.deepcopy(REMOTE_JOBSTORE),
    }
    if runner:
        project["runner"] = runner
    if base_dir is not None:
        project["base_dir"] = str(base_dir)
    return project


def worker_export(store: StoreConfig) -> str:
    """The shell line a worker's ``pre_run`` needs so jobs write frostline's records."""
    spec = StoreConfig(kind="mongodb", uri=_uri(store), database=store.database)
    return f"export {ENV_JOB_STORE}={shlex.quote(spec.model_dump_json(exclude={'path'}))}"


def projects_folder() -> Path:
    """The folder jobflow-remote reads projects from (``$JFREMOTE_PROJECTS_FOLDER`` at import)."""
    from jobflow_remote import SETTINGS

    return Path(SETTINGS.projects_folder)


def write_project(project: dict[str, Any], folder: str | Path | None = None) -> Path:
    """Write ``project`` as ``FOLDER/NAME.yaml`` (default: jobflow-remote's projects folder).

    The project is validated by jobflow-remote's own schema first.
    """
    from jobflow_remote.config.base import Project

    Project.model_validate(project)
    folder = Path(folder) if folder is not None else projects_folder()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{project['name']}.yaml"
    path.write_text(yaml.safe_dump(project, sort_keys=False))
    return path


def _store_uri(spec: dict[str, Any]) -> str | None:
    if spec.get("uri"):
        return spec["uri"]
    if spec.get("host", "").startswith(("mongodb://", "mongodb+srv://")):
        return spec["host"]
    host, port = spec.get("host", "localhost"), spec.get("port", 27017)
    user, password = spec.get("username"), spec.get("password")
    auth = f"{quote_plus(user)}:{quote_plus(password or '')}@" if user else ""
    return f"mongodb://{auth}{host}:{port}/"


def store_config_from_project(project) -> StoreConfig:
    """The frostline ``StoreConfig`` of a jobflow-remote project's ``jobstore``.

    Raises ``SubmitError`` when the jobstore is not MongoDB or lacks frostline's stores.
    """
    spec = project.jobstore or {}
    if spec.get("@class") == "JobStore":  # monty-serialised form: take its spec-like parts
        spec = {
            "docs_store": spec["docs_store"],
            "additional_stores": spec.get("additional_stores", {}),
        }
    docs = spec.get("docs_store") or {}
    kind = docs.get("type") or docs.get("@class")
    if kind not in ("MongoStore", "MongoURIStore"):
        raise SubmitError(
            f"project '{project.name}': jobstore.docs_store is {kind or 'missing'}, "
            "frostline needs a MongoStore (see configs/jobflow-remote/)"
        )
    wanted = [*COLLECTIONS, BLOB_STORE, DATA_STORE]
    missing = [n for n in wanted if n not in (spec.get("additional_stores") or {})]
    if missing:
        raise SubmitError(
            f"project '{project.name}': jobstore lacks frostline's additional stores "
            f"{', '.join(missing)} (write the project with frostline.submit.remote.project_dict "
            "or copy them from configs/jobflow-remote/)"
        )
    return StoreConfig(kind="mongodb", uri=_store_uri(docs), database=docs.get("database"))


def load_project(name: str):
    """jobflow-remote's ``Project`` named ``name``; ``SubmitError`` names the folder if absent."""
    from jobflow_remote.config.base import ConfigError as JfrConfigError
    from jobflow_remote.config.base import Project
    from jobflow_remote.config.manager import ConfigManager

    folder = projects_folder()
    try:
        return ConfigManager().get_project(name)
    except JfrConfigError:
        pass
    files = [folder / f"{name}.{ext}" for ext in ("yaml", "yml", "json", "toml")]
    path = next((f for f in files if f.is_file()), None)
    if path is None:
        raise SubmitError(f"no jobflow-remote project '{name}' in {folder}") from None
    try:
        return Project.model_validate(yaml.safe_load(path.read_text()))
    except Exception as exc:
        first = " ".join(str(exc).split())[:300]
        raise SubmitError(f"project file {path} is invalid: {first}") from None


def check_routing(config: CampaignConfig, project) -> dict[str, str]:
    """Worker per job type; every worker and named exec_config must exist in ``project``."""
    table = routing_table(config.routing)
    if not project.workers:
        raise SubmitError(f"project '{project.name}' defines no workers")
    default_worker = next(iter(project.workers))
    workers = {}
    for kind in JOB_TYPES:
        mc = (table or {}).get(kind, {})
        worker = mc.get("worker", default_worker)
        own = config.routing is not None and getattr(config.routing, kind) is not None
        field = f"routing.{kind}" if own else "routing.default"
        if worker not in project.workers:
            raise SubmitError(
                f"field '{field}.worker': no worker '{worker}' in project '{project.name}' "
                f"(it has {', '.join(project.workers)})"
            )
        ec = mc.get("exec_config")
        if isinstance(ec, str) and ec not in (project.exec_config or {}):
            raise SubmitError(
                f"field '{field}.exec_config': no exec_config '{ec}' in project "
                f"'{project.name}' (it has {', '.join(project.exec_config or {}) or 'none'})"
            )
        workers[kind] = worker
    exec_text = " ".join(str(ec) for ec in (project.exec_config or {}).values())
    for worker in set(workers.values()):
        if ENV_JOB_STORE not in (project.workers[worker].pre_run or "") + exec_text:
            raise SubmitError(
                f"worker '{worker}' of project '{project.name}' does not export "
                f"{ENV_JOB_STORE} in its pre_run (jobs could not reach frostline's records; "
                "see configs/jobflow-remote/)"
            )
    return workers


def check_store(store: StoreConfig) -> None:
    """Connect to ``store`` (bounded wait) and ensure frostline's indexes, or ``SubmitError``."""
    try:
        records = Records(make_job_store(store, timeout_ms=CHECK_TIMEOUT_MS)).connect()
    except StoreError as exc:
        raise SubmitError(f"MongoDB of the project: {exc}") from None
    except Exception as exc:  # pymongo rejects a malformed URI when the client is built
        raise SubmitError(f"MongoDB of the project: {redact_uri(str(exc))}") from None
    records.close()


def check_transfer_store(project) -> None:
    """The project's jobs hand their outputs over in ``frostline.submit.transfer`` files:
    jobflow-remote's own stores rewrite them while the runner reads them, and a runner killed
    then loses the job's outputs for good. ``SubmitError`` names the setting to add."""
    from frostline.submit.transfer import REMOTE_JOBSTORE

    store = (project.remote_jobstore or {}).get("store")
    if store != REMOTE_JOBSTORE["store"]:
        raise SubmitError(
            f"project '{project.name}': field 'remote_jobstore' is {store or 'not set'}; add "
            "remote_jobstore: {store: {'@module': frostline.submit.transfer, '@class': "
            "TransferJSONStore}, extension: json} (as configs/jobflow-remote/local.yaml), or a "
            "runner killed while completing a job can lose its outputs"
        )


def _check_queue(project) -> None:
    jc = project.get_job_controller()
    if jc.auxiliary.find_one({"next_id": {"$exists": True}}) is None:
        raise SubmitError(
            f"the queue of project '{project.name}' is not initialised: run "
            f"`jf -p {project.name} admin reset --yes` once (it deletes that project's jobs)"
        )


def submit_remote(
    config: CampaignConfig, project_name: str, campaign_dir: str | Path | None = None
) -> Submission:
    """Build ``config``'s campaign flow and add it to jobflow-remote project ``project_name``.

    Each job carries its type's worker, exec_config and resources (``config.routing``; jobs
    without a route run on the project's first worker). ``campaign_dir`` (default
    ``campaigns/NAME``) gets the config copy ``frostline status`` reads, with the project's
    MongoDB as store. Nothing runs here: start the runner (``jf runner start``).
    """
    from jobflow_remote import submit_flow

    from frostline.flows.active_learning import ActiveLearningMaker
    from frostline.flows.campaign import validate_campaign, write_config_copy

    project = load_project(project_name)
    store = store_config_from_project(project)
    check_transfer_store(project)
    workers = check_routing(config, project)
    foundation = validate_campaign(config)
    check_store(store)
    _check_queue(project)
    flow = ActiveLearningMaker.from_config(config, foundation).make(config)
    ids = submit_flow(flow, worker=workers["control"], project=project.name)
    campaign_dir = Path(campaign_dir or Path("campaigns") / config.name).resolve()
    campaign_dir.mkdir(parents=True, exist_ok=True)
    write_config_copy(config.model_copy(update={"store": store}), campaign_dir)
    return Submission(
        manager="jobflow-remote",
        project=project.name,
        flow_uuid=flow.uuid,
        n_jobs=len(ids),
        workers=workers,
        campaign_dir=str(campaign_dir),
    )
