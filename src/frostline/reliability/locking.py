"""One ``frostline run`` per campaign directory.

``fcntl.flock`` on ``DIR/.lock`` (exclusive, non-blocking): the kernel releases the lock when
the holder exits in any way, ``kill -9`` included, so a crashed run never leaves a stale lock.
A second run on the same directory refuses at once with a message naming the holder, or waits
(``wait_s``) for the first to finish. The lock file itself stays (its content is informative
only: pid, host and start time of the last holder).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from frostline.reliability.errors import CampaignError

LOCK_NAME = ".lock"


class CampaignLockedError(CampaignError):
    """Another ``frostline run`` holds the campaign directory."""


class CampaignLock:
    """Exclusive lock of a campaign directory (a context manager)."""

    def __init__(self, campaign_dir: Path | str, wait_s: float = 0.0, poll_s: float = 0.5):
        self.path = Path(campaign_dir) / LOCK_NAME
        self.wait_s, self.poll_s = wait_s, poll_s
        self._fd: int | None = None

    def holder(self) -> str:
        """Who holds (or last held) the lock, for messages."""
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return "another process"
        return f"pid {info.get('pid', '?')} on {info.get('host', '?')}"

    def acquire(self) -> CampaignLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise CampaignLockedError(
                        f"{self.path.parent}: campaign directory is in use by another "
                        f"frostline run ({self.holder()}); wait for it to finish"
                    ) from None
                time.sleep(self.poll_s)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> CampaignLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
