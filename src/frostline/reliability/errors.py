"""Errors that end a campaign run with one clear line (the CLI prints them, no traceback).

Store errors live here (not in ``frostline.store``) so that ``reliability.retry`` can raise them
without importing the store module that builds its retrying stores; ``frostline.store`` re-exports
them.
"""

from __future__ import annotations

import re


class CampaignError(RuntimeError):
    """A campaign cannot start (e.g. its directory is in use) or stopped on a fault."""


class StoreError(RuntimeError):
    """The store cannot be opened or a record is inconsistent."""


def redact_uri(uri: str) -> str:
    """Remove credentials from a MongoDB URI (or a message quoting one)."""
    return re.sub(r"//[^/?#\s]*@", "//***@", uri)


def short_error(exc: BaseException) -> str:
    """One line for a store error: pymongo's topology and server-reply details cut, no secrets."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    for cut in (", full error:", " (configured timeouts", ", Timeout:", ", Topology Description:"):
        text = text.split(cut)[0]
    return redact_uri(text)
