"""Route each job of a campaign to its worker: jobflow-remote and FireWorks manager configs.

Every job frostline creates is tagged with its type (``job.metadata["frostline_job"]``) and,
when the campaign has a routing table, gets its own ``manager_config`` at creation time::

    {"worker": "gpu", "exec_config": "gpu_env", "resources": {...}, "_category": "gpu"}

jobflow-remote reads ``worker``, ``exec_config`` and ``resources`` from each job's
``config.manager_config`` (also for jobs added by ``Response(replace=...)``); jobflow's FireWorks
manager copies the dictionary into the Firework spec, where ``_category`` selects the FWorkers
that may run it. Routed jobs set ``pass_manager_config=False``: jobflow would otherwise overwrite
the manager config of every job a ``Response`` creates with its parent's, sending e.g. the
oracle jobs of a label batch to the worker of the bookkeeping job that created them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from jobflow import Flow, Job

from frostline.config import JobRoute, RoutingConfig

JOB_TYPES = ("finetune", "explore", "select", "label", "distill", "control")
"""Job types a routing table names (see ``RoutingConfig``)."""
TYPE_KEY = "frostline_job"
"""Metadata key holding a job's type (also in jobflow-remote's JobDoc and the Firework spec)."""

Routes = dict[str, dict[str, Any]]
"""Manager config per job type, as stored in makers and job arguments (plain JSON)."""


def manager_config(route: JobRoute) -> dict[str, Any]:
    """The ``manager_config`` of one route (keys left out when unset)."""
    out: dict[str, Any] = {}
    if route.worker is not None:
        out["worker"] = route.worker
    if route.exec_config is not None:
        out["exec_config"] = route.exec_config
    if route.resources is not None:
        out["resources"] = dict(route.resources)
    category = route.category or route.worker
    if category is not None:
        out["_category"] = category
    return out


def routing_table(routing: RoutingConfig | None) -> Routes | None:
    """Manager config per job type, each type's fields falling back to ``default``'s.

    ``None`` (no routing section): jobs are tagged with their type but keep jobflow's
    defaults, so ``run_locally`` and existing flows behave exactly as before.
    """
    if routing is None:
        return None
    base = routing.default.model_dump(exclude_none=True)
    table: Routes = {}
    for kind in JOB_TYPES:
        own = getattr(routing, kind)
        merged = {**base, **(own.model_dump(exclude_none=True) if own else {})}
        table[kind] = manager_config(JobRoute(**merged))
    return table


def _jobs(obj: Job | Flow | list) -> list[Job]:
    if isinstance(obj, Job):
        return [obj]
    if isinstance(obj, Flow):
        return [j for j, _ in obj.iterflow()]
    return [j for item in obj for j in _jobs(item)]


def route(obj: Job | Flow | list, kind: str, routes: Routes | None) -> Job | Flow | list:
    """Tag every job in ``obj`` with ``kind`` and give it that type's manager config.

    Jobs share ``JobConfig`` instances (e.g. a decorator's ``config=``), so the config is
    copied, never changed in place. Returns ``obj``.
    """
    if kind not in JOB_TYPES:
        raise ValueError(f"unknown job type {kind!r} (one of {', '.join(JOB_TYPES)})")
    for j in _jobs(obj):
        j.metadata[TYPE_KEY] = kind
        if routes is None:
            continue
        config = dict(routes.get(kind, {}))
        j.config = replace(j.config, manager_config=config, pass_manager_config=False)
        if "_category" in config:
            # jobflow's FireWorks manager copies metadata into the spec too; the job jobflow
            # adds to store a replaced job's output inherits its parent's metadata (not its
            # manager config), so it keeps the parent's category this way
            j.metadata["_category"] = config["_category"]
    return obj


def job_type(job: Job) -> str | None:
    """The type ``route`` gave ``job`` (None: not a routed frostline job)."""
    return (job.metadata or {}).get(TYPE_KEY)
