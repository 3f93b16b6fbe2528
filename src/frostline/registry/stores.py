"""Open the records a registry command works on: a campaign directory or a MongoDB URI."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml
from pydantic import ValidationError

from frostline.config import CONFIG_COPY, CampaignConfig, StoreConfig
from frostline.settings import settings
from frostline.store import ENV_URI, Records, StoreError, make_job_store, redact_uri

DEFAULT_DATABASE = "frostline"
DEFAULT_TIMEOUT_MS = 2000
"""Server selection timeout of registry commands: an unreachable server fails in ~2 s."""


def open_store(
    campaign_dir: Path | str | None = None,
    uri: str | None = None,
    database: str | None = None,
    timeout_ms: int | None = DEFAULT_TIMEOUT_MS,
) -> Records:
    """Connected records of a campaign directory, a MongoDB URI, or ``$FROSTLINE_MONGODB_URI``.

    A campaign directory is opened with the store its campaign was run with (embedded by
    default, or the MongoDB of its ``store`` section). Otherwise ``uri`` (or the environment
    variable) must be a ``mongodb://`` / ``mongodb+srv://`` URI; ``database`` names the database
    (None: the one the URI's path names, else ``frostline``). A database without any frostline
    record is an error naming the databases of that server that hold some (a wrong or missing
    database name would otherwise list nothing, silently). Raises ``StoreError`` with a one-line
    message that never contains credentials.
    """
    if campaign_dir is not None and uri is not None:
        raise StoreError("give either a campaign directory or a MongoDB URI, not both")
    if campaign_dir is not None:
        return _open_campaign_dir(Path(campaign_dir), timeout_ms)
    uri = uri or settings().mongodb_uri
    if not uri:
        raise StoreError(f"no store given: pass --dir DIR or --store URI, or set {ENV_URI}")
    if not uri.startswith(("mongodb://", "mongodb+srv://")):
        raise StoreError(f"not a MongoDB URI: {redact_uri(uri)!r} (mongodb://host:port/ expected)")
    database = database if database is not None else uri_database(uri) or DEFAULT_DATABASE
    if not database:
        raise StoreError("the database name must not be empty")
    config = StoreConfig(kind="mongodb", uri=uri, database=database)
    try:
        records = Records(make_job_store(config, timeout_ms=timeout_ms)).connect()
    except StoreError as exc:
        raise StoreError(scrub(f"MongoDB at {redact_uri(uri)}: {exc}", uri)) from None
    except Exception as exc:  # pymongo rejects a malformed URI when the client is built
        raise StoreError(scrub(f"invalid MongoDB URI {redact_uri(uri)}: {exc}", uri)) from None
    if not any(records[name].count({}) for name in RECORD_COLLECTIONS):
        others = [d for d in _databases_with_records(records) if d != database]
        records.close()
        where = f"; databases there that hold some: {', '.join(others)}" if others else ""
        raise StoreError(
            f"database {database!r} at {redact_uri(uri)} holds no frostline records{where} "
            "(name the database with --database or in the URI: mongodb://host:port/NAME)"
        )
    return records


RECORD_COLLECTIONS = ("campaigns", "model_docs", "labelled")
"""Collections a store used by frostline has documents in (one suffices)."""


def uri_database(uri: str) -> str | None:
    """The database a MongoDB URI names in its path (``mongodb://host/NAME?opts``), if any."""
    path = urlsplit(uri).path.lstrip("/")
    return unquote(path) or None


def _databases_with_records(records: Records) -> list[str]:
    """Databases of the records' server holding any frostline record (best effort: [])."""
    try:
        client = records["campaigns"]._collection.database.client
        return sorted(
            name
            for name in client.list_database_names()
            if any(client[name][c].estimated_document_count() for c in RECORD_COLLECTIONS)
        )
    except Exception:  # no right to list databases, or a server without the command
        return []


def _open_campaign_dir(campaign_dir: Path, timeout_ms: int | None) -> Records:

    cfg_path = campaign_dir / CONFIG_COPY
    if not cfg_path.is_file():
        raise StoreError(f"{campaign_dir}: not a campaign directory (no {CONFIG_COPY})")
    try:
        config = CampaignConfig.model_validate(yaml.safe_load(cfg_path.read_text()))
    except (yaml.YAMLError, ValidationError, OSError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise StoreError(f"{cfg_path}: unreadable campaign configuration ({first})") from None
    uri = config.store.uri or settings().mongodb_uri or ""
    try:
        return Records(make_job_store(config.store, campaign_dir, timeout_ms=timeout_ms)).connect()
    except StoreError as exc:
        raise StoreError(scrub(str(exc), uri)) from None


def scrub(message: str, uri: str | None) -> str:
    """``message`` without the credentials of ``uri`` (however a library may have quoted them)."""
    message = redact_uri(message)
    if not uri or "@" not in uri:
        return message
    userinfo = uri.split("://", 1)[-1].rsplit("@", 1)[0]
    secrets = {userinfo}
    if ":" in userinfo:
        secrets.add(userinfo.split(":", 1)[1])
    for secret in list(secrets):
        secrets.add(unquote(secret))
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        message = message.replace(secret, "***")
    return message
