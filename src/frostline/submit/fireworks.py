"""FireWorks: a campaign flow as a Workflow on a LaunchPad, routed by ``_category``.

jobflow's ``flow_to_workflow`` copies each job's ``manager_config`` into its Firework's spec, so
a routed job (``frostline.submit.routing``) carries ``_category`` = its route's ``category`` (or
``worker``): only FWorkers of that category (``my_fworker.yaml``: ``category: gpu``) pull it; an
FWorker without a category pulls anything. Jobs created later by ``Response(replace=...)`` become
Fireworks through the same function, with their own routes. The jobflow-remote keys
(``worker``, ``exec_config``, ``resources``) are in the spec too and FireWorks ignores them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from frostline.config import CampaignConfig
from frostline.store import make_job_store, short_error
from frostline.submit.remote import CHECK_TIMEOUT_MS, Submission, SubmitError, check_store
from frostline.submit.routing import JOB_TYPES, routing_table


def load_launchpad(path: str | Path | None = None, timeout_ms: int = CHECK_TIMEOUT_MS):
    """A connected ``LaunchPad`` from a launchpad YAML (default: FireWorks' own lookup).

    The server is pinged with a bounded wait: an unreachable one is a ``SubmitError``.
    """
    from fireworks import LaunchPad

    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise SubmitError(f"{path}: no such launchpad file")
        try:
            spec = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise SubmitError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(spec, dict):
            raise SubmitError(f"{path}: expected a mapping (host, port, name, ...)")
        spec = {**spec, "mongoclient_kwargs": dict(spec.get("mongoclient_kwargs") or {})}
        spec["mongoclient_kwargs"].setdefault("serverSelectionTimeoutMS", timeout_ms)
        spec.setdefault("host", "localhost")
        try:
            lp = LaunchPad.from_dict(spec)
        except Exception as exc:
            raise SubmitError(f"{path}: invalid launchpad: {short_error(exc)}") from None
    else:
        lp = LaunchPad.auto_load()
    try:
        lp.connection.admin.command("ping")
    except Exception as exc:
        raise SubmitError(f"cannot reach the LaunchPad database: {short_error(exc)}") from None
    return lp


def categories(config: CampaignConfig) -> dict[str, str]:
    """FireWorks category per job type ('' where none: any FWorker may run it)."""
    table = routing_table(config.routing) or {}
    return {kind: table.get(kind, {}).get("_category", "") for kind in JOB_TYPES}


def _job_store(config: CampaignConfig, store_in_spec: bool):
    if not store_in_spec:
        return None  # the workers' jobflow settings (JOB_STORE) hold the store
    if config.store.kind != "mongodb":
        raise SubmitError(
            "field 'store.kind': FireWorks workers need a MongoDB store (kind: mongodb); "
            "or give --worker-store to use the workers' jobflow JOB_STORE"
        )
    check_store(config.store)
    uri = config.store.uri or ""
    if "@" in uri.split("//", 1)[-1].split("/", 1)[0]:
        raise SubmitError(
            "field 'store.uri' has credentials, which would be written into every Firework: "
            "set JOB_STORE in the workers' jobflow config and give --worker-store"
        )
    return make_job_store(config.store)


def submit_fireworks(
    config: CampaignConfig,
    launchpad,
    campaign_dir: str | Path | None = None,
    store_in_spec: bool = True,
) -> Submission:
    """Convert ``config``'s campaign flow with ``flow_to_workflow`` and add it to ``launchpad``.

    ``store_in_spec``: the campaign's MongoDB store (``config.store``, no credentials in its
    URI) travels in each Firework; otherwise the workers use jobflow's ``JOB_STORE`` setting,
    which must include frostline's additional stores (``frostline.submit.remote.jobstore_spec``).
    """
    from jobflow.managers.fireworks import flow_to_workflow

    from frostline.flows.active_learning import ActiveLearningMaker
    from frostline.flows.campaign import validate_campaign, write_config_copy

    store = _job_store(config, store_in_spec)
    foundation = validate_campaign(config)
    flow = ActiveLearningMaker.from_config(config, foundation).make(config)
    wf = flow_to_workflow(flow, store=store, name=flow.name)
    mapping: dict[Any, Any] = launchpad.add_wf(wf)
    campaign_dir = Path(campaign_dir or Path("campaigns") / config.name).resolve()
    campaign_dir.mkdir(parents=True, exist_ok=True)
    write_config_copy(config, campaign_dir)
    return Submission(
        manager="fireworks",
        project=launchpad.name,
        flow_uuid=flow.uuid,
        n_jobs=len(mapping),
        workers=categories(config),
        campaign_dir=str(campaign_dir),
    )
