"""Stores: jobflow ``JobStore`` factory (embedded montydb or MongoDB) and frostline's records.

frostline's own collections (campaigns, iterations, labelled structures, models, model files) are
``additional_stores`` of the jobflow ``JobStore``, so one store configuration (also in a
jobflow-remote project) describes everything, and jobs reach them through ``CURRENT_JOB.store``.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

from jobflow import JobConfig, JobStore
from maggma.core import Store
from maggma.stores import MongoStore, MontyStore
from maggma.stores.gridfs import GridFSStore

from frostline.config import StoreConfig

# store errors are defined in reliability.errors (retry raises them; no store <-> retry cycle)
from frostline.reliability.errors import StoreError, short_error
from frostline.reliability.errors import redact_uri as redact_uri  # re-exported
from frostline.settings import env_var, settings

COLLECTIONS = {
    "campaigns": ["campaign"],
    "iterations": ["campaign", "index"],
    "labelled": ["campaign", "structure_hash", "oracle_settings_hash", "role", "status"],
    "model_docs": ["model_id", "campaign", "kind", "elements", "metrics.force_mae_mev_per_a"],
    "validations": ["campaign", "system"],  # alloy property validation (frostline.alloys)
    "alloy_summaries": ["campaign"],
}
"""Fields indexed in each frostline collection (what the registry queries filter and sort by)."""
OUTPUT_INDEXES = ("uuid", "name", "metadata.frostline_memo")
"""Fields indexed in jobflow's ``outputs`` collection on MongoDB: reference resolution (uuid),
lookups by job name, resume lookups (``frostline.reliability.memo.MEMO_FIELD``)."""
COMPOUND_INDEXES = {
    "labelled": [("campaign", "role", "status")],
    "model_docs": [
        ("elements", "metrics.force_mae_mev_per_a"),
        ("campaign", "metrics.force_mae_mev_per_a"),
    ],
}
"""Compound indexes on MongoDB (registry filters + sort by force MAE; label counts)."""
BLOB_STORE = "model_files"
DATA_STORE = "data"  # atomate2 jobs put trajectories here (``@job(data=...)``)
ENV_URI = env_var("mongodb_uri")
EXPOSE_STORE = JobConfig(expose_store=True)
"""Job config for jobs that write frostline records (``CURRENT_JOB.store`` is set)."""


class EmbeddedStore(MontyStore):
    """maggma's ``MontyStore``, safe when several processes open the same store.

    ``MontyStore.connect`` calls montydb's ``set_storage`` every time, which truncates and
    rewrites the repository's ``.monty.storage`` and ``monty.storage.cfg``; a process connecting
    at that instant (``frostline status`` while a campaign runs, two benchmark processes over
    one campaign folder) reads an empty engine name and fails with "Empty module name" (about
    one connect in five with two processes connecting in a loop). Here the storage files are
    written only when missing, and every connect holds an exclusive lock on the repository
    (``.frostline-connect.lock``) while it checks, creates and reads them.
    """

    def connect(self, force_reset: bool = False) -> None:
        if self._coll and not force_reset:
            return
        if self.database_path == ":memory:":
            super().connect(force_reset=force_reset)
            return
        import fcntl

        from montydb import MontyClient, set_storage

        repository = Path(self.database_path)
        repository.mkdir(parents=True, exist_ok=True)
        with open(repository / ".frostline-connect.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            written = [repository / ".monty.storage", repository / "monty.storage.cfg"]
            if not all(p.is_file() and p.stat().st_size for p in written):
                set_storage(self.database_path, storage=self.storage, **self.storage_kwargs)
            client = MontyClient(self.database_path, **self.client_kwargs)
            self._coll = client[self.database_name][self.collection_name]


def _embedded_store(path: Path, collection: str) -> MontyStore:
    return EmbeddedStore(
        collection_name=collection,
        database_path=str(path),
        database_name="frostline",
        storage="sqlite",
        key="uuid" if collection == "outputs" else "_id",
    )


def make_job_store(
    config: StoreConfig,
    campaign_dir: Path | None = None,
    *,
    timeout_ms: int | None = None,
    retry_s: float | None = None,
) -> JobStore:
    """Build the ``JobStore`` (docs + frostline collections + model-file blobs).

    ``timeout_ms`` bounds MongoDB server selection (pymongo's default is 30 s) unless the URI
    sets ``serverSelectionTimeoutMS`` itself; it is ignored for the embedded store.
    ``retry_s``: MongoDB operations are retried with backoff through an outage of up to this
    many seconds (``frostline.reliability.retry``; campaign runs); None: no retries.
    """
    kind = config.kind
    uri = config.uri or (settings().mongodb_uri if kind == "mongodb" else None)
    if kind == "mongodb":
        if not uri:
            raise StoreError(f"store.kind is mongodb but neither store.uri nor {ENV_URI} is set")
        client: dict[str, Any] = {}
        if timeout_ms is not None and "serverselectiontimeoutms" not in uri.lower():
            client["serverSelectionTimeoutMS"] = timeout_ms
        db = config.database
        docs_cls, blobs_cls, extra = MongoStore, GridFSStore, {}
        if retry_s is not None:
            from frostline.reliability.retry import RetryingGridFSStore, RetryingMongoStore

            docs_cls, blobs_cls = RetryingMongoStore, RetryingGridFSStore
            extra = {"retry_s": retry_s}

        def make(collection: str) -> Store:
            return docs_cls.from_uri(uri, collection, db, mongoclient_kwargs=client, **extra)

        blobs: Store = blobs_cls.from_uri(uri, BLOB_STORE, db, mongoclient_kwargs=client, **extra)
        data: Store = blobs_cls.from_uri(uri, DATA_STORE, db, mongoclient_kwargs=client, **extra)
        docs = docs_cls.from_uri(uri, "outputs", db, key="uuid", mongoclient_kwargs=client, **extra)
    else:
        path = Path(config.path or (Path(campaign_dir or ".") / "store")).resolve()
        path.mkdir(parents=True, exist_ok=True)

        def make(collection: str) -> Store:
            return _embedded_store(path, collection)

        blobs = make(BLOB_STORE)
        data = make(DATA_STORE)
        docs = _embedded_store(path, "outputs")
    additional = {name: make(name) for name in COLLECTIONS}
    additional[BLOB_STORE] = blobs
    additional[DATA_STORE] = data
    return JobStore(docs_store=docs, additional_stores=additional)


class Records:
    """frostline's documents in a ``JobStore`` (DESIGN.md §4)."""

    def __init__(self, store: JobStore):
        self.job_store = store
        missing = [n for n in [*COLLECTIONS, BLOB_STORE] if n not in store.additional_stores]
        if missing:
            raise StoreError(f"job store lacks frostline collections: {', '.join(missing)}")
        self._connected = False

    def connect(self) -> Records:
        """Connect every store, check the server answers, and ensure the indexes."""
        if not self._connected:
            try:
                self.job_store.connect()
                # pymongo connects lazily: one cheap read tells an unreachable server (or bad
                # credentials) now, in one error, rather than at every later call
                self.job_store.additional_stores["campaigns"].count({"campaign": ""})
            except Exception as exc:  # pymongo/montydb errors: one clear line
                try:
                    self.job_store.close()
                except Exception:
                    pass
                raise StoreError(f"cannot connect to the store: {short_error(exc)}") from None
            self.ensure_indexes()
            self._connected = True
        return self

    def ensure_indexes(self) -> None:
        """Create the indexes of ``COLLECTIONS`` and, on MongoDB, ``COMPOUND_INDEXES`` and
        ``OUTPUT_INDEXES``."""
        docs = self.job_store.docs_store
        if isinstance(docs, MongoStore) and not isinstance(docs, MontyStore):
            for k in OUTPUT_INDEXES:
                try:
                    docs.ensure_index(k)
                except Exception:  # e.g. a read-only user: queries still work, only slower
                    pass
        for name, keys in COLLECTIONS.items():
            store = self.job_store.additional_stores[name]
            for k in keys:
                try:
                    store.ensure_index(k)
                except Exception:  # montydb indexes are best-effort
                    pass
            if isinstance(store, MontyStore) or not isinstance(store, MongoStore):
                continue
            for fields in COMPOUND_INDEXES.get(name, []):
                try:
                    store._collection.create_index([(f, 1) for f in fields])
                except Exception:  # e.g. a read-only user: queries still work, only slower
                    pass

    def close(self) -> None:
        if self._connected:
            self.job_store.close()
            self._connected = False

    def raw_collection(self, name: str) -> Any:
        """Collection ``name`` of the documents' database (pymongo or montydb), for atomic
        operations maggma does not offer (``frostline.reliability.lease``)."""
        return self["campaigns"]._collection.database[name]

    def __getitem__(self, name: str) -> Store:
        self.connect()
        return self.job_store.additional_stores[name]

    # -- writes ------------------------------------------------------------------------------
    def upsert(self, collection: str, docs: list[dict[str, Any]], key: list[str]) -> None:
        if docs:
            self[collection].update(docs, key=key)

    def put_model_file(self, model_id: str, data: bytes, migrated_from: str | None = None) -> str:
        """Store model bytes as a blob; return their sha256.

        ``migrated_from``: the sha256 of the blob these bytes convert (``frostline models
        migrate``), still accepted as the expected checksum of documents written before.
        """
        sha = hashlib.sha256(data).hexdigest()
        doc = {"model_id": model_id, "sha256": sha, "data_b64": base64.b64encode(data).decode()}
        if migrated_from:
            doc["migrated_from_sha256"] = migrated_from
        self[BLOB_STORE].update([doc], key="model_id")
        return sha

    def get_model_file(self, model_id: str, expected_sha256: str | None = None) -> bytes:
        """Model bytes for ``model_id``; the sha256 is verified before they are returned.

        The checksum catches corruption, not a swap (it is stored next to the bytes): model
        blobs are read without unpickling (``frostline.finetune.safe_model``).
        """
        doc = self[BLOB_STORE].query_one({"model_id": model_id})
        if doc is None:
            raise StoreError(f"no model file stored for model id {model_id}")
        data = base64.b64decode(doc["data_b64"])
        sha = hashlib.sha256(data).hexdigest()
        expected = expected_sha256 or doc["sha256"]
        if expected == doc.get("migrated_from_sha256"):
            expected = doc["sha256"]
        if sha != expected or sha != doc["sha256"]:
            raise StoreError(f"model file {model_id}: sha256 mismatch (stored file is corrupted)")
        return data

    # -- reads -------------------------------------------------------------------------------
    def find(self, collection: str, criteria: dict | None = None, sort: dict | None = None):
        return [
            {k: v for k, v in d.items() if k != "_id"}
            for d in self[collection].query(criteria or {}, sort=sort)
        ]

    def campaign(self, name: str) -> dict | None:
        docs = self.find("campaigns", {"campaign": name})
        return docs[0] if docs else None


ENV_JOB_STORE = env_var("job_store")
"""JSON ``StoreConfig`` of the records on jobflow-remote workers (``frostline.submit.remote``)."""


def _is_transfer_store(store: JobStore) -> bool:
    """jobflow-remote hands jobs a file store in their run folder, uploaded after the job
    (its own classes, or ``frostline.submit.transfer.TransferJSONStore`` derived from them)."""
    return any(c.__module__.startswith("jobflow_remote") for c in type(store.docs_store).__mro__)


def current_records() -> Records:
    """The records of the store the running job was given (jobs need ``expose_store=True``).

    On a jobflow-remote worker the job's store is a local file store that the runner uploads
    afterwards; frostline's records must be shared at once (label reuse, model files), so they
    go to the MongoDB store named by ``$FROSTLINE_JOB_STORE`` (set by the worker's ``pre_run``).
    """
    from jobflow import CURRENT_JOB

    if CURRENT_JOB.store is None:
        raise StoreError("no store exposed to this job (decorate it with expose_store=True)")
    if _is_transfer_store(CURRENT_JOB.store):
        spec = settings().job_store
        if not spec:
            raise StoreError(
                f"running under jobflow-remote without {ENV_JOB_STORE}: export it in the "
                "worker's pre_run (see frostline.submit.remote.local_worker)"
            )
        return Records(make_job_store(StoreConfig.model_validate_json(spec))).connect()
    return Records(CURRENT_JOB.store).connect()
