"""One writer per campaign per store: a lease document in the store, renewed by a heartbeat.

The directory lock (``frostline.reliability.locking``) stops a second run in the same
directory; two runs of one campaign from two directories or hosts sharing one MongoDB would
both run to the end and buy every label twice. The lease is a document of the store's
:data:`LEASES` collection, ``_id`` the campaign name, holding the owner (user, host, pid,
directory), a random token, the last heartbeat and an expiry time. It is taken atomically:

- ``insert_one`` when there is none (the unique ``_id`` lets one of two racing runs win);
- otherwise ``update_one`` filtered on "expired, or mine" (one document, atomic on MongoDB;
  on the embedded montydb store the directory lock serialises runs as well).

A run that holds the directory lock takes over at once a lease left in the same directory
on the same host (its holder cannot be running: it would hold the directory lock), so a
campaign killed and resumed in place does not wait for the expiry. The holder renews it
every ``ttl_s / 4`` s from a daemon thread and deletes it at the end; a holder killed with
``kill -9`` elsewhere stops renewing and its lease expires after ``ttl_s`` (default
:data:`frostline.settings.DEFAULT_LEASE_S`, environment ``FROSTLINE_LEASE_S``), when a new
run takes over.
Expiry compares wall clocks of the hosts: keep them synchronised (NTP), as usual for MongoDB.
"""

from __future__ import annotations

import getpass
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from frostline.reliability.errors import CampaignError
from frostline.settings import settings

LEASES = "frostline_leases"
"""Collection of campaign leases (next to frostline's other collections)."""


class CampaignLeasedError(CampaignError):
    """Another run holds the campaign's lease in this store."""


def lease_ttl() -> float:
    """Lease lifetime in s (``$FROSTLINE_LEASE_S``, default 120 s: ``frostline.settings``)."""
    return settings().lease_s


def describe(doc: dict[str, Any], now: float | None = None) -> str:
    """The holder of a lease, for messages."""
    now = time.time() if now is None else now
    return (
        f"{doc.get('user', '?')}@{doc.get('host', '?')} pid {doc.get('pid', '?')} in "
        f"{doc.get('directory', '?')}, heartbeat {now - float(doc.get('heartbeat', now)):.0f} s "
        f"ago, expires in {max(0.0, float(doc.get('expiry', now)) - now):.0f} s"
    )


class CampaignLease:
    """The lease of ``campaign`` in ``collection`` (a pymongo or montydb collection)."""

    def __init__(
        self,
        collection: Any,
        campaign: str,
        directory: Path | str = ".",
        ttl_s: float | None = None,
        wait_s: float = 0.0,
        poll_s: float = 1.0,
        dir_locked: bool = False,
    ):
        self.collection, self.campaign = collection, campaign
        self.dir_locked = dir_locked
        self.ttl_s = lease_ttl() if ttl_s is None else ttl_s
        self.wait_s, self.poll_s = wait_s, poll_s
        self.token = uuid.uuid4().hex
        self.owner = {
            "user": getpass.getuser(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "directory": str(Path(directory).resolve()),
        }
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _fields(self) -> dict[str, Any]:
        now = time.time()
        return {**self.owner, "token": self.token, "heartbeat": now, "expiry": now + self.ttl_s}

    def try_take(self) -> dict[str, Any] | None:
        """Take the lease if free or expired: None, else the holder's document."""
        fields = {"campaign": self.campaign, **self._fields(), "acquired": time.time()}
        try:
            self.collection.insert_one({"_id": self.campaign, **fields})
            return None
        except Exception as exc:  # pymongo / montydb DuplicateKeyError: a lease exists
            if type(exc).__name__ != "DuplicateKeyError":
                raise
        free = {"$or": [{"expiry": {"$lt": time.time()}}, {"token": self.token}]}
        result = self.collection.update_one({"_id": self.campaign, **free}, {"$set": fields})
        if result.matched_count == 1:
            return None
        holder = self.collection.find_one({"_id": self.campaign}) or {}
        if self._left_by_a_dead_run_here(holder):  # take exactly that lease, atomically
            result = self.collection.update_one(
                {"_id": self.campaign, "token": holder.get("token")}, {"$set": fields}
            )
            if result.matched_count == 1:
                return None
        return holder

    def _left_by_a_dead_run_here(self, holder: dict[str, Any]) -> bool:
        """The holder ran in this directory on this host: with the directory lock held
        (``dir_locked``), it cannot be running any more (e.g. killed, then resumed here)."""
        same = all(holder.get(k) == self.owner[k] for k in ("host", "directory"))
        return self.dir_locked and same

    def acquire(self) -> CampaignLease:
        """Take the lease (waiting up to ``wait_s``) and start the heartbeat."""
        deadline = time.monotonic() + self.wait_s
        while (holder := self.try_take()) is not None:
            if time.monotonic() >= deadline:
                raise CampaignLeasedError(
                    f"campaign {self.campaign} is being run on this store by "
                    f"{describe(holder)}; one run per campaign and store: wait for it to "
                    "finish (a run that died frees the campaign when its lease expires)"
                )
            time.sleep(self.poll_s)
        self._thread = threading.Thread(target=self._beat, name="frostline-lease", daemon=True)
        self._thread.start()
        return self

    def renew(self) -> bool:
        """Extend the lease; False if it is no longer ours (it expired and was taken)."""
        now = time.time()
        result = self.collection.update_one(
            {"_id": self.campaign, "token": self.token},
            {"$set": {"heartbeat": now, "expiry": now + self.ttl_s}},
        )
        return result.matched_count == 1

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_s / 4):
            try:
                if not self.renew():
                    self.lost = True
                    return
            except Exception:  # a store outage: try again at the next beat
                pass

    def release(self) -> None:
        """Stop the heartbeat and delete the lease (if still ours)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.collection.delete_one({"_id": self.campaign, "token": self.token})
        except Exception:  # the store is gone: the lease expires by itself
            pass

    def __enter__(self) -> CampaignLease:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
