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


ADDED_FIELDS_ATTRIBUTE = "MEMO_ADDED_FIELDS"
"""A maker dataclass lists here the fields it gained after stores were written with it, oldest
first (each entry: a field, or a tuple of fields added together)."""


ORIGINAL_DEFAULTS_ATTRIBUTE = "MEMO_ORIGINAL_DEFAULTS"
"""A maker dataclass maps here each added field whose default changed since it was added to the
default it was added with: the keys of older versions leave the field out only at that value
(at the new default the job computes something else than those versions did)."""


def _at_default(obj: Any, f: dataclasses.Field) -> bool:
    """``obj``'s field ``f`` holds the value versions before the field computed with."""
    original = getattr(type(obj), ORIGINAL_DEFAULTS_ATTRIBUTE, {})
    if f.name in original:
        return getattr(obj, f.name) == original[f.name]
    if f.default is not dataclasses.MISSING:
        default = f.default
    elif f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    else:
        return False
    return getattr(obj, f.name) == default


def _added_fields(cls: type, newest: int) -> set[str]:
    """The fields of ``cls``'s ``newest`` latest additions (all of them when it has fewer)."""
    additions = getattr(cls, ADDED_FIELDS_ATTRIBUTE, ())
    dropped = additions[len(additions) - newest :] if newest < len(additions) else additions
    return {name for entry in dropped for name in ((entry,) if isinstance(entry, str) else entry)}


def _plain(obj: Any, newest: int = 0) -> Any:
    """``obj`` as JSON-able data; ``newest`` > 0: without the fields of each dataclass's
    ``newest`` latest ``MEMO_ADDED_FIELDS`` entries while they hold their defaults (the data
    an older version keyed)."""
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        added = _added_fields(type(obj), newest) if newest else set()
        return {
            f.name: _plain(getattr(obj, f.name), newest)
            for f in dataclasses.fields(obj)
            if not (f.name in added and _at_default(obj, f))
        }
    if isinstance(obj, dict):
        return {str(k): _plain(v, newest) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v, newest) for v in obj]
    return obj


def _key(kind: str, plain_parts: dict) -> str:
    payload = json.dumps({"kind": kind, **plain_parts}, sort_keys=True, default=str)
    return f"{kind}:{hashlib.sha256(payload.encode()).hexdigest()[:40]}"


def memo_key(kind: str, **parts: Any) -> str:
    """A stable key of a job's kind and everything its result depends on."""
    return _key(kind, _plain(parts))


MAX_ADDITIONS = 64  # more MEMO_ADDED_FIELDS entries than any maker will list


def memo_keys(kind: str, **parts: Any) -> tuple[str, ...]:
    """``memo_key``, then (newest first, without repeats) the keys the same job had before
    each of its makers' ``MEMO_ADDED_FIELDS`` additions, those fields being at their defaults:
    a campaign stored by any older frostline still resumes (or is extended) without
    recomputing."""
    keys = [memo_key(kind, **parts)]
    oldest = _key(kind, _plain(parts, newest=MAX_ADDITIONS))
    newest = 1
    while keys[-1] != oldest and newest <= MAX_ADDITIONS:
        key = _key(kind, _plain(parts, newest=newest))
        if key != keys[-1]:
            keys.append(key)
        newest += 1
    return tuple(keys)


def memo_lookup(key: str | tuple[str, ...]) -> dict | None:
    """The output of a finished job with ``key`` (or any of ``memo_keys``; the latest finished)
    in the running job's store (None: none)."""
    from jobflow import CURRENT_JOB

    store = CURRENT_JOB.store
    if store is None:
        return None
    keys = [key] if isinstance(key, str) else list(key)
    doc = store.query_one(
        {f"metadata.{MEMO_FIELD}": {"$in": keys}},
        properties=["output"],
        sort={"completed_at": -1},
        load=True,  # parts kept in an additional store (``@job(data=...)``) come back inline
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
