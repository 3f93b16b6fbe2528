"""A benchmark's mace-torch training folder, owned by the settings it was started with.

mace-torch (``--restart_latest``) resumes from the latest checkpoint in its folder, whatever
settings wrote it, and a finished run started again goes on past its early stop (the patience
counter starts afresh), so a folder records which training it holds:

- ``frostline-started.json``: the key (settings and data) of the training started in it;
- ``frostline-settings.json``: the key of the training that finished in it (its model file is
  that training's).

A script imports it next to itself (the folder is not a package)::

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from training_folders import finished, mark_finished, start_training  # noqa: E402

Each rule here is used by ``data_efficiency.py`` and ``forgetting.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

STARTED = "frostline-started.json"
STAMP = "frostline-settings.json"


def start_training(folder: Path, key: str, checkpoint: Path | None = None) -> None:
    """Make ``folder`` the training ``key``, which mace-torch (restart_latest) resumes from the
    latest checkpoint there: ``checkpoint`` (a continuation), else none (a fresh run).

    A folder already started with ``key`` (an interrupted run) is left to resume from its own
    latest checkpoint, as is one started before the marker existed and never finished; anything
    else in it (another attempt, or a finished run of other settings) is cleared first, so a run
    never goes on from the checkpoint of other settings.
    """
    started = folder / STARTED
    if started.exists():
        if started.read_text() == key:
            return
    elif checkpoint is None and finished_key(folder) in (None, key):
        started.parent.mkdir(parents=True, exist_ok=True)
        started.write_text(key)
        return
    for sub in ("checkpoints", "logs", "results"):
        shutil.rmtree(folder / sub, ignore_errors=True)
    (folder / "checkpoints").mkdir(parents=True)
    if checkpoint is not None:
        shutil.copy2(checkpoint, folder / "checkpoints" / checkpoint.name)
    started.write_text(key)


def started_key(folder: Path) -> str | None:
    """The key of the training started in ``folder`` (None: none recorded)."""
    started = folder / STARTED
    return started.read_text() if started.exists() else None


def mark_finished(folder: Path, key: str) -> None:
    """Record that the training ``key`` finished in ``folder`` (its model file is that run's)."""
    (folder / STAMP).write_text(key)


def finished_key(folder: Path) -> str | None:
    """The key of the training that finished in ``folder`` (None: none recorded)."""
    stamp = folder / STAMP
    return stamp.read_text() if stamp.exists() else None


def finished(folder: Path, model: Path, key: str) -> bool:
    """``model`` exists and is the training ``key``'s (a re-run reuses it)."""
    return model.exists() and finished_key(folder) == key
