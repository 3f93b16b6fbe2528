"""Errors that end a campaign run with one clear line (the CLI prints them, no traceback)."""

from __future__ import annotations


class CampaignError(RuntimeError):
    """A campaign cannot start (e.g. its directory is in use) or stopped on a fault."""
