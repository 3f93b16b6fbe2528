"""Model registry: find trained models by elements, kind, campaign and accuracy; export files.

Every query is a plain MongoDB filter with sort and limit (no aggregation), so the same code runs
on the embedded montydb store and on a MongoDB server; the fields filtered and sorted on are
indexed (``frostline.store.COLLECTIONS``).
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args

from ase.data import chemical_symbols

from frostline.schemas import ModelDoc
from frostline.store import Records, StoreError

FORCE_MAE = "metrics.force_mae_mev_per_a"
CAMPAIGN_KINDS = {
    "committee-member": "a fine-tuned MACE member of a campaign's committee",
    "ace-surrogate": "the linear ACE surrogate distilled at a campaign's end",
}
"""The kinds campaigns record (the other kinds, ``mace-finetuned`` and ``mace-foundation``, are
for models registered otherwise)."""


def model_kinds() -> tuple[str, ...]:
    """Every model kind a ``ModelDoc`` may have (imports the schemas: call when needed)."""
    from frostline.schemas import ModelDoc

    return get_args(ModelDoc.model_fields["kind"].annotation)


ELEMENT_MODES = ("exact", "subset")
LIST_EXCLUDE = {"_id": 0, "training_set_hashes": 0}
"""Fields left out of listings (a training-set hash list can hold thousands of entries)."""

ElementsMode = Literal["exact", "subset"]


def parse_elements(elements: str | list[str] | tuple[str, ...]) -> list[str]:
    """Sorted unique chemical symbols from ``"Cu,H"`` or a list; ``ValueError`` if any is unknown.

    Symbols are matched case-insensitively (``cu`` is Cu), as the store keeps them sorted.
    """
    items = elements.split(",") if isinstance(elements, str) else list(elements)
    symbols = [str(s).strip() for s in items if str(s).strip()]
    if not symbols:
        raise ValueError("no elements given (expected e.g. Cu,H)")
    known = {s.lower(): s for s in chemical_symbols[1:]}
    bad = [s for s in symbols if s.lower() not in known]
    if bad:
        raise ValueError(f"unknown element(s): {', '.join(bad)}")
    return sorted({known[s.lower()] for s in symbols})


def model_filter(
    elements: str | list[str] | None = None,
    elements_mode: str = "exact",
    kind: str | None = None,
    max_force_mae: float | None = None,
    campaign: str | None = None,
) -> dict[str, Any]:
    """The MongoDB filter of ``list_models`` (validated; ``ValueError`` on a malformed one)."""
    criteria: dict[str, Any] = {}
    if elements is not None:
        symbols = parse_elements(elements)
        if elements_mode == "exact":  # trained on exactly these, in any stored order
            criteria["elements"] = {"$all": symbols, "$size": len(symbols)}
        elif elements_mode == "subset":  # trained on (at least) these elements
            criteria["elements"] = {"$all": symbols}
        else:
            raise ValueError(f"elements mode must be exact or subset, not {elements_mode!r}")
    if kind is not None:
        if kind not in (kinds := model_kinds()):
            raise ValueError(f"unknown model kind {kind!r} (one of {', '.join(kinds)})")
        criteria["kind"] = kind
    if max_force_mae is not None:
        if not math.isfinite(max_force_mae) or max_force_mae < 0:
            raise ValueError(f"max force MAE must be a number >= 0 meV/Å, not {max_force_mae}")
        criteria[FORCE_MAE] = {"$lte": float(max_force_mae)}
    if campaign is not None:
        if not campaign:
            raise ValueError("campaign name must not be empty")
        criteria["campaign"] = campaign
    return criteria


def list_models(
    records: Records,
    elements: str | list[str] | None = None,
    elements_mode: ElementsMode = "exact",
    kind: str | None = None,
    max_force_mae: float | None = None,
    campaign: str | None = None,
    limit: int | None = None,
    include_superseded: bool = False,
) -> list[dict[str, Any]]:
    """Model documents matching every filter given, best validation force MAE first.

    ``elements`` with ``elements_mode="exact"`` keeps models trained on exactly these elements
    (in whatever order the model's record lists them),
    ``"subset"`` those trained on at least these. ``max_force_mae`` (meV/Å) is inclusive and
    drops models without metrics; otherwise those come last. ``limit`` (None or 0: all) caps the
    number returned. Documents are returned as stored, without ``training_set_hashes``.
    Models their campaign did not use (``superseded``) are left out unless
    ``include_superseded``.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, not {limit}")
    criteria = model_filter(elements, elements_mode, kind, max_force_mae, campaign)
    if not include_superseded:
        criteria["superseded"] = {"$ne": True}
    store = records["model_docs"]
    limit = limit or 0
    sort = {FORCE_MAE: 1}  # one key: the (elements | campaign, force MAE) indexes serve it
    scored = {**criteria, FORCE_MAE: criteria.get(FORCE_MAE, {"$gte": 0})}
    docs = list(store.query(scored, properties=LIST_EXCLUDE, sort=sort, limit=limit))
    if max_force_mae is None and (not limit or len(docs) < limit):
        unscored = {**criteria, FORCE_MAE: None}  # null or missing: models without metrics
        rest = limit - len(docs) if limit else 0
        docs += store.query(unscored, properties=LIST_EXCLUDE, sort={"model_id": 1}, limit=rest)
    return docs


def get_model(records: Records, model_id: str) -> dict[str, Any]:
    """The full model document of ``model_id``; ``StoreError`` if there is none."""
    doc = records["model_docs"].query_one({"model_id": model_id})
    if doc is None:
        raise StoreError(f"no model with id {model_id!r} in this store")
    doc.pop("_id", None)
    return doc


def export_model(records: Records, model_id: str, path: Path | str, force: bool = False) -> Path:
    """Write the file of ``model_id`` to ``path`` (a file, or a directory to put it in).

    The bytes are checked against the sha256 and size recorded in the model document before
    anything is written; a corrupted or missing blob raises ``StoreError`` and leaves no file.
    A MACE model is rebuilt from its stored weights and architecture (nothing unpickled) and
    written as a mace-torch ``.model`` file; an ACE surrogate's ``.yace`` is written as stored.
    An existing file is kept unless ``force``. Returns the path written.
    """
    doc = get_model(records, model_id)
    file = doc.get("file") or {}
    data = records.get_model_file(model_id, expected_sha256=file.get("sha256"))
    if file.get("size_bytes") is not None and len(data) != file["size_bytes"]:
        raise StoreError(
            f"model file {model_id}: {len(data)} bytes stored, {file['size_bytes']} recorded"
        )
    path = Path(path)
    if path.is_dir():
        path = path / f"{model_id}{Path(file.get('filename') or 'x.model').suffix}"
    refuse_overwrite(path, force)
    if doc.get("kind") != "ace-surrogate":
        data = model_file_bytes(data, model_id)
    atomic_write(path, data)
    return path


def model_file_bytes(blob: bytes, model_id: str) -> bytes:
    """A mace-torch ``.model`` file's bytes, from a stored weights blob (rebuilt, not unpickled)."""
    import io

    import torch

    from frostline.finetune.safe_model import ModelFormatError, model_from_blob

    try:
        model = model_from_blob(blob, model_id)
    except ModelFormatError as exc:
        raise StoreError(str(exc)) from None
    buf = io.BytesIO()
    torch.save(model, buf)
    return buf.getvalue()


def refuse_overwrite(path: Path | str, force: bool = False) -> None:
    """``StoreError`` if ``path`` exists (a file a user may own) and ``force`` is not given."""
    path = Path(path)
    if path.is_dir() or (path.exists() and not force):
        kind = "a directory" if path.is_dir() else "exists"
        raise StoreError(f"{path} {kind}: not overwritten (use --force to replace a file)")


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, so no partial file is ever left."""
    path = Path(path)
    if not path.parent.is_dir():
        raise StoreError(f"cannot write {path}: directory {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600: give the user's usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def legacy_models(records: Records, campaign: str | None = None) -> list[dict[str, Any]]:
    """MACE model documents whose stored file is a pickled ``.model`` (written before frostline
    stored weights plus architecture); their files are checked, never unpickled."""
    from frostline.finetune.safe_model import ModelFormatError, read_blob

    criteria: dict[str, Any] = {"kind": {"$ne": "ace-surrogate"}}
    if campaign is not None:
        criteria["campaign"] = campaign
    out = []
    for doc in records.find("model_docs", criteria, sort={"model_id": 1}):
        data = records.get_model_file(doc["model_id"], (doc.get("file") or {}).get("sha256"))
        try:
            read_blob(data, doc["model_id"])
        except ModelFormatError:
            out.append(doc)
    return out


def migrate_models(records: Records, docs: list[dict[str, Any]]) -> list[str]:
    """Convert pickled model files to weights plus architecture (``frostline models migrate``).

    This unpickles each file once: only for a store whose writers the user trusts. The new
    blob keeps the model id; its document's sha256 and size are updated and the old sha256
    stays accepted (``Records.get_model_file``), so finished work recorded before still
    resumes. Returns the ids converted.
    """
    import io

    import torch

    from frostline.finetune.safe_model import model_to_blob

    done = []
    for doc in docs:
        model_id, file = doc["model_id"], dict(doc.get("file") or {})
        data = records.get_model_file(model_id, file.get("sha256"))
        model = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
        blob = model_to_blob(model)
        old_sha = hashlib.sha256(data).hexdigest()
        file.update(sha256=records.put_model_file(model_id, blob, old_sha), size_bytes=len(blob))
        records["model_docs"].update([{**doc, "file": file}], key=["model_id"])
        done.append(model_id)
    return done


def mark_superseded(records: Records, campaign: str, iteration: int, used: list[str]) -> int:
    """Mark the committee members of ``campaign``'s ``iteration`` other than ``used`` as
    superseded (trained by a run that was killed and redone; ``used`` are unmarked). Returns
    the number of models marked."""
    changed, marked = [], 0
    for doc in records.find(
        "model_docs", {"campaign": campaign, "iteration": iteration, "kind": "committee-member"}
    ):
        superseded = doc["model_id"] not in used
        marked += superseded
        if bool(doc.get("superseded")) != superseded:
            changed.append({**doc, "superseded": superseded})
    records.upsert("model_docs", changed, key=["model_id"])
    return marked


def stored_models(records: Records, ids: Sequence[str], what: str = "models") -> list[ModelDoc]:
    """The model documents of ``ids`` (in that order); a missing one is an error naming it
    (``what``: the caller, named in the error)."""
    found = {d["model_id"]: d for d in records.find("model_docs", {"model_id": {"$in": ids}})}
    missing = [i for i in ids if i not in found]
    if missing:
        raise ValueError(f"{what}: model ids not in the store: {', '.join(missing)}")
    return [ModelDoc.model_validate(found[i]) for i in ids]
