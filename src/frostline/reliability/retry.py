"""MongoDB stores that ride out a store outage: every operation retried with backoff.

A campaign runs for days; the database may restart or the network blip in between. With
:class:`RetryingMongoStore` / :class:`RetryingGridFSStore` (what ``make_job_store`` builds for a
campaign run on MongoDB) an operation that fails with a connection error (pymongo's
``AutoReconnect`` family, ``ServerSelectionTimeoutError`` included) is tried again after 0.5, 1,
2, 4, 8, 8, ... s until ``retry_s`` seconds have passed since the first failure; then
:class:`StoreUnavailableError` says so in one line (no credentials).

Retrying is safe because every write is idempotent and single-document atomic: maggma's
``update`` is a ``ReplaceOne(upsert=True)`` per document (a retry after a write that did reach
the server rewrites the same document), and a GridFS file is visible only once its ``files``
document is written after all chunks, older versions being deleted afterwards. A reader
therefore never sees a partial document; model files are also sha256-checked on every read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from maggma.stores import MongoStore
from maggma.stores.gridfs import GridFSStore
from pymongo.errors import AutoReconnect, ConnectionFailure

from frostline.reliability.errors import StoreError, short_error
from frostline.settings import DEFAULT_RETRY_S, env_var, settings

T = TypeVar("T")
RETRYABLE = (AutoReconnect, ConnectionFailure)
"""pymongo's connection errors (``ServerSelectionTimeoutError``, ``NetworkTimeout`` and
``NotPrimaryError`` are ``AutoReconnect``s); anything else (bad query, auth) is not retried."""
ENV_RETRY = env_var("store_retry_s")
BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0)


class StoreUnavailableError(StoreError):
    """The store stayed unreachable for longer than the retry budget."""


def retry_budget() -> float:
    """Seconds a run rides out a store outage (``FROSTLINE_STORE_RETRY_S``, default 600)."""
    return settings().store_retry_s


def with_retry(call: Callable[[], T], what: str, retry_s: float, on_retry=None) -> T:
    """``call()``, retried on connection errors with backoff for up to ``retry_s`` seconds."""
    first_failure: float | None = None
    attempt = 0
    while True:
        try:
            return call()
        except RETRYABLE as exc:
            now = time.monotonic()
            first_failure = now if first_failure is None else first_failure
            if now - first_failure >= retry_s:
                raise StoreUnavailableError(
                    f"store unreachable for {now - first_failure:.0f} s (retry budget "
                    f"{retry_s:g} s, {ENV_RETRY}) during {what}: {short_error(exc)}"
                ) from None
            if on_retry is not None:
                on_retry(exc)
            pause = BACKOFF[min(attempt, len(BACKOFF) - 1)]
            time.sleep(min(pause, max(0.05, retry_s - (now - first_failure))))
            attempt += 1


class _Retrying:
    """Mixin: maggma store operations through :func:`with_retry`."""

    retry_s: float
    n_retries: int

    def _retry(self, call: Callable[[], T], what: str) -> T:
        def count(_exc) -> None:
            self.n_retries = getattr(self, "n_retries", 0) + 1

        name = f"{what} on {getattr(self, 'collection_name', '?')}"
        return with_retry(call, name, self.retry_s, on_retry=count)

    def update(self, docs, key=None):
        parent = super().update  # type: ignore[misc]
        return self._retry(lambda: parent(docs, key=key), "update")

    def query(self, criteria=None, properties=None, sort=None, skip=0, limit=0) -> Iterator:
        parent = super().query  # type: ignore[misc]

        def run() -> list:
            return list(parent(criteria, properties=properties, sort=sort, skip=skip, limit=limit))

        docs = self._retry(run, "query")
        yield from docs

    def query_one(self, criteria=None, properties=None, sort=None):
        parent = super().query_one  # type: ignore[misc]
        return self._retry(lambda: parent(criteria, properties=properties, sort=sort), "query")

    def count(self, criteria=None, **kwargs) -> int:
        parent = super().count  # type: ignore[misc]
        return self._retry(lambda: parent(criteria, **kwargs), "count")

    def distinct(self, field, criteria=None, all_exist=False) -> list:
        parent = super().distinct  # type: ignore[misc]
        return self._retry(
            lambda: parent(field, criteria=criteria, all_exist=all_exist), "distinct"
        )

    def remove_docs(self, criteria) -> None:
        parent = super().remove_docs  # type: ignore[misc]
        return self._retry(lambda: parent(criteria), "remove")

    def ensure_index(self, key, unique=False) -> bool:
        parent = super().ensure_index  # type: ignore[misc]
        return self._retry(lambda: parent(key, unique=unique), "ensure_index")


class RetryingMongoStore(_Retrying, MongoStore):
    """``MongoStore`` whose operations retry through outages for ``retry_s`` seconds."""

    def __init__(
        self,
        database: str | None,
        collection_name: str,
        uri: str | None = None,
        mongoclient_kwargs: dict | None = None,
        key: str | None = None,
        retry_s: float = DEFAULT_RETRY_S,
        **kwargs: Any,
    ):
        self.retry_s, self.n_retries = retry_s, 0
        if key is not None:
            kwargs["key"] = key
        super().__init__(
            database, collection_name, uri=uri, mongoclient_kwargs=mongoclient_kwargs, **kwargs
        )


class RetryingGridFSStore(_Retrying, GridFSStore):
    """``GridFSStore`` whose operations retry through outages for ``retry_s`` seconds."""

    def __init__(
        self,
        database: str | None,
        collection_name: str,
        uri: str | None = None,
        mongoclient_kwargs: dict | None = None,
        retry_s: float = DEFAULT_RETRY_S,
        **kwargs: Any,
    ):
        self.retry_s, self.n_retries = retry_s, 0
        super().__init__(
            database, collection_name, uri=uri, mongoclient_kwargs=mongoclient_kwargs, **kwargs
        )
