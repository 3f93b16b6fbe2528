"""The files that carry a jobflow-remote job's outputs from its run folder to the runner.

A job run by jobflow-remote writes its output document and its blobs (``@job(data=...)``,
``@job(models=...)``) to JSON files in its run folder: ``remote_job_data.json`` and one
``additional_store_<name>.json`` per additional store. The runner reads them when it completes
the job and copies them to the project's ``JobStore`` (``jobflow_remote.remote.data.update_store``:
the blobs first, then the document).

jobflow-remote's default store for these files (``StdJSONStore``, a writable maggma
``JSONStore``) rewrites its file in place (truncate, then write) on every update **and on every
connect**, so the runner rewrites each finished job's files while reading them. A runner killed
inside that rewrite leaves the file empty. The next runner's read skips an unreadable file as if
it held nothing (maggma only logs it): with ``additional_store_data.json`` empty it copies the
output document without its blobs, the job is COMPLETED, and every job reading its output fails
in its upload with ``KeyError: <blob_uuid>`` (``JobStore.query``), for good; with
``remote_job_data.json`` empty the job itself fails ("exactly one document, but it contains 0").

``TransferJSONStore`` is that store without the hazard: reading never writes, every write goes
to a temporary file in the same folder that then replaces the file (``os.replace``, atomic), and a
file that cannot be parsed is an error, not an empty store. ``REMOTE_JOBSTORE`` is the project
setting (``remote_jobstore``) that selects it; ``frostline.submit.remote.project_dict`` writes it.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
from jobflow_remote.remote.data import StdJSONStore
from maggma.stores import MemoryStore

REMOTE_JOBSTORE: dict[str, Any] = {
    "store": {"@module": "frostline.submit.transfer", "@class": "TransferJSONStore"},
    "extension": "json",
}
"""A jobflow-remote project's ``remote_jobstore``: run-folder files in ``TransferJSONStore``."""


class TransferJSONStore(StdJSONStore):
    """A JSON file store for jobflow-remote's transfer files that a kill cannot truncate.

    Same content and format as jobflow-remote's ``StdJSONStore`` (jobflow-remote builds it
    from the project's ``remote_jobstore`` with the file's ``path``), but

    - ``connect`` reads the file and never writes it (it creates ``[]`` if absent);
    - every write is atomic: a temporary file in the same folder, then ``os.replace``
      (gzip-compressed if the name ends with ``.gz``);
    - a file that is not valid JSON raises (``orjson.JSONDecodeError``, a ``ValueError``)
      instead of being skipped as empty.
    """

    def __init__(self, path: str | Path, **kwargs) -> None:
        """``path``: the JSON file (one per store, in the job's run folder)."""
        self.path = str(path)
        super().__init__(self.path, **kwargs)

    def connect(self, force_reset: bool = False) -> None:
        """Load the file into memory (created as ``[]`` if absent); the file is not written."""
        if self._coll is not None and not force_reset:
            return
        exists = Path(self.path).exists()
        docs = self.read_json_file(self.path) if exists else []  # raises if unreadable
        MemoryStore.connect(self, force_reset=True)  # a fresh in-memory collection
        if docs:
            MemoryStore.update(self, docs)  # into memory only, unlike JSONStore.update
        if not exists:
            self._write([])

    def update_json_file(self) -> None:
        """Write the documents in memory to the file, atomically."""
        docs = [{k: v for k, v in d.items() if k != "_id"} for d in self.query()]
        self._write(docs)

    def _write(self, docs: list[dict]) -> None:
        from frostline.registry.models import atomic_write

        data = orjson.dumps(
            docs, option=self.serialization_option, default=self.serialization_default
        )
        if self.path.endswith(".gz"):  # remote_jobstore with zip: true
            data = gzip.compress(data)
        atomic_write(Path(self.path), data)
