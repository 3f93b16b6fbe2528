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

A machine's run folders do not outlive its session, so the trainings in progress can be
*parked*: their latest checkpoint (mace-torch keeps its best so far), their mace-torch logs and
their start marker copied, gzipped, into a ``parked/`` folder committed beside the ledgers, and
restored into a fresh checkout, where mace-torch resumes them (``python training_folders.py
park RUNS PARKED`` before a session ends, with the benchmark stopped or paused: mace-torch
replaces its checkpoint whenever an epoch improves; each benchmark restores what is parked when
it starts training).

Each rule here is used by ``data_efficiency.py`` and ``forgetting.py``.
"""

from __future__ import annotations

import gzip
import shutil
import sys
from pathlib import Path

from frostline.finetune.train import best_checkpoint, training_logs

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


def in_progress(runs: Path) -> list[Path]:
    """The training folders under ``runs`` started and not finished (a finished folder's stamp
    is the key it was started with)."""
    return sorted(
        started.parent
        for started in Path(runs).rglob(STARTED)
        if finished_key(started.parent) != started.read_text()
    )


def _parked_files(folder: Path) -> list[Path]:
    """What a resumed training needs of its folder: its start marker, its latest checkpoint
    and mace-torch's logs (the epochs before the interruption count)."""
    checkpoint = best_checkpoint(folder, "*")  # whatever the training's name
    return [folder / STARTED, *([checkpoint] if checkpoint else []), *training_logs(folder, "*")]


def park(runs: Path, parked: Path) -> list[Path]:
    """Replace ``parked`` with the trainings in progress under ``runs`` (gzipped, the same
    relative paths); returns their folders. A folder without a checkpoint yet is skipped (it
    would start afresh anyway)."""
    runs, parked = Path(runs), Path(parked)
    staged = parked.with_name(parked.name + ".partial")
    shutil.rmtree(staged, ignore_errors=True)
    folders = []
    for folder in in_progress(runs):
        files = _parked_files(folder)
        if not any(f.suffix == ".pt" for f in files):
            continue
        for f in files:
            target = staged / f.relative_to(runs)
            target.parent.mkdir(parents=True, exist_ok=True)
            with f.open("rb") as src, gzip.open(f"{target}.gz", "wb") as dst:
                shutil.copyfileobj(src, dst)
        folders.append(folder)
    shutil.rmtree(parked, ignore_errors=True)
    if folders:
        staged.replace(parked)  # never half a parked set
    else:
        shutil.rmtree(staged, ignore_errors=True)
    return folders


def restore_parked(runs: Path, parked: Path) -> list[Path]:
    """Restore each training parked in ``parked`` into ``runs`` where its folder holds no
    training yet (no start marker, no stamp): mace-torch then resumes it from its checkpoint
    when the benchmark starts that training again. Returns the folders restored."""
    runs, parked = Path(runs), Path(parked)
    restored = []
    for marker in sorted(parked.rglob(f"{STARTED}.gz")):
        source = marker.parent
        folder = runs / source.relative_to(parked)
        if (folder / STARTED).exists() or (folder / STAMP).exists():
            continue
        # the start marker last, each file whole: an interrupted restore starts afresh
        for f in sorted(source.rglob("*.gz"), key=lambda f: f == marker):
            target = folder / f.relative_to(source).with_suffix("")
            partial = target.with_name(target.name + ".partial")
            target.parent.mkdir(parents=True, exist_ok=True)
            with gzip.open(f, "rb") as src, partial.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            partial.replace(target)
        restored.append(folder)
    return restored


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "park":
        raise SystemExit("usage: python training_folders.py park RUNS PARKED")
    for parked_folder in park(Path(sys.argv[2]), Path(sys.argv[3])):
        print(f"parked {parked_folder}")
