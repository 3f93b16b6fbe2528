"""frostline's environment variables (``FROSTLINE_*``), read in one place.

| variable | field | what |
| --- | --- | --- |
| ``FROSTLINE_MONGODB_URI`` | ``mongodb_uri`` | MongoDB URI when ``store.uri`` is not set |
| ``FROSTLINE_JOB_STORE`` | ``job_store`` | JSON ``StoreConfig`` on jobflow-remote workers |
| ``FROSTLINE_STORE_RETRY_S`` | ``store_retry_s`` | how long a run rides out a store outage |
| ``FROSTLINE_LEASE_S`` | ``lease_s`` | lifetime of a campaign's lease in its store |
| ``FROSTLINE_WARM_SOCKET`` | ``warm_socket`` | socket of the warm worker server |
| ``FROSTLINE_CACHE`` | ``cache`` | cache folder (CP2K data built by pymatgen) |
| ``FROSTLINE_CP2K_DATA`` | ``cp2k_data`` | CP2K's basis-set and potential files |

:func:`settings` reads the environment at each call (a test or a worker may change it).
This module imports nothing of frostline, so every layer (``reliability`` too) may use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "FROSTLINE_"
DEFAULT_RETRY_S = 600.0
"""How long a campaign run waits for its MongoDB to come back (``FROSTLINE_STORE_RETRY_S``)."""
DEFAULT_LEASE_S = 120.0
"""Lifetime of a campaign's lease, renewed by the run holding it (``FROSTLINE_LEASE_S``)."""


SECONDS = {"store_retry_s": (DEFAULT_RETRY_S, 0.0), "lease_s": (DEFAULT_LEASE_S, 1.0)}
"""Duration fields: (default, minimum) in s."""


class FrostlineSettings(BaseSettings):
    """Settings from ``FROSTLINE_*`` environment variables (field name upper-cased)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    mongodb_uri: str | None = None
    job_store: str | None = None
    store_retry_s: float = DEFAULT_RETRY_S
    lease_s: float = DEFAULT_LEASE_S
    warm_socket: str | None = None
    cache: Path = Field(default_factory=lambda: Path.home() / ".cache" / "frostline")
    cp2k_data: Path = Path("/usr/share/cp2k")
    job_log: bool = Field(
        False,
        description="every job's start and end on the console as jobflow logs them, instead of "
        "one progress line per stage (for debugging; the chaos harness counts these lines)",
    )

    @field_validator("store_retry_s", "lease_s", mode="before")
    @classmethod
    def _seconds(cls, value: Any, info: ValidationInfo) -> float:
        """A duration in s: not a number gives the default; clipped at the field's minimum
        (store retry: 0, no retries; lease: 1 s)."""
        default, least = SECONDS[info.field_name]
        try:
            return max(least, float(value))
        except (TypeError, ValueError):
            return default


def settings() -> FrostlineSettings:
    """The current ``FROSTLINE_*`` settings (read from the environment now)."""
    return FrostlineSettings()


def env_var(field: str) -> str:
    """The variable of a settings field (``mongodb_uri`` -> ``FROSTLINE_MONGODB_URI``)."""
    if field not in FrostlineSettings.model_fields:
        raise KeyError(field)
    return ENV_PREFIX + field.upper()
