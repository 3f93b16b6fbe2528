"""Reuse of finished jobs when a killed campaign is run again.

``jobflow.run_locally`` does not resume: ``frostline run`` after a crash builds the flow anew and
runs it from the start, with new job ids. Labels are reused through the ``labelled`` collection
(``frostline.label.jobs``); the expensive deterministic stages (fine-tuning, exploration) are
reused through this memo: a job computes a key from everything its result depends on (its
maker's settings, its inputs, the campaign) and

- looks for a finished job output with that key in the job store (``metadata.frostline_memo``),
  returning it instead of recomputing (the resumed run then follows the killed one exactly);
- otherwise computes and tags its own output with the key. jobflow writes the output document
  as one document after the job returned, so a run killed before that leaves no memo and the
  job is computed again; a memo never points at half a result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from pydantic import BaseModel

MEMO_FIELD = "frostline_memo"


def _plain(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def memo_key(kind: str, **parts: Any) -> str:
    """A stable key of a job's kind and everything its result depends on."""
    payload = json.dumps({"kind": kind, **_plain(parts)}, sort_keys=True, default=str)
    return f"{kind}:{hashlib.sha256(payload.encode()).hexdigest()[:40]}"


def memo_lookup(key: str) -> dict | None:
    """The output of a finished job with ``key`` in the running job's store (None: none)."""
    from jobflow import CURRENT_JOB

    store = CURRENT_JOB.store
    if store is None:
        return None
    doc = store.docs_store.query_one(
        {f"metadata.{MEMO_FIELD}": key}, properties=["output", "uuid"], sort={"completed_at": -1}
    )
    if doc is None or doc.get("output") is None:
        return None
    output = doc["output"]
    if isinstance(output, dict):
        output = {k: v for k, v in output.items() if not k.startswith("@")}
    return output


def memo_mark(key: str) -> None:
    """Tag the running job's output document with ``key`` (written when the job returns)."""
    from jobflow import CURRENT_JOB

    if CURRENT_JOB.job is not None:
        CURRENT_JOB.job.metadata = {**(CURRENT_JOB.job.metadata or {}), MEMO_FIELD: key}
