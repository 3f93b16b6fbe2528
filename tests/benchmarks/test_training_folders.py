"""Parking the trainings in progress: a session's run folders are gone in the next session's
fresh checkout; what is parked beside the ledgers resumes there (no training here: mace-torch's
resume from a checkpoint is tested with the benchmarks' own folders)."""

from __future__ import annotations

import re

import pytest
from helpers.benchmarks import load_benchmark


@pytest.fixture(scope="module")
def folders():
    return load_benchmark("training_folders")


def training(folders, root, name, key, epochs=(), finished=False):
    folder = root / name
    folders.start_training(folder, key)
    for epoch in epochs:
        (folder / "checkpoints" / f"arm_run-0_epoch-{epoch}.pt").parent.mkdir(exist_ok=True)
        (folder / "checkpoints" / f"arm_run-0_epoch-{epoch}.pt").write_bytes(bytes([epoch]) * 9)
    (folder / "logs").mkdir(exist_ok=True)
    (folder / "logs" / "arm_run-0.log").write_text(f"{name} epochs {epochs}\n")
    (folder / "logs" / "arm_run-0_debug.log").write_text("debug\n")
    if finished:
        folders.mark_finished(folder, key)
    return folder


def test_only_trainings_in_progress_with_a_checkpoint_are_parked(folders, tmp_path):
    runs, parked = tmp_path / "runs", tmp_path / "parked"
    going = training(folders, runs, "h2cu/naive-seed1", "key-1", epochs=(3, 12))
    training(folders, runs, "h2cu/frozen-seed1", "key-2", epochs=(5,), finished=True)
    training(folders, runs, "alloys/lora-seed1", "key-3")  # no checkpoint yet: starts afresh
    assert folders.park(runs, parked) == [going]
    files = sorted(p.relative_to(parked).as_posix() for p in parked.rglob("*.gz"))
    assert files == [
        "h2cu/naive-seed1/checkpoints/arm_run-0_epoch-12.pt.gz",  # the latest only
        "h2cu/naive-seed1/frostline-started.json.gz",
        "h2cu/naive-seed1/logs/arm_run-0.log.gz",  # not the debug copy
    ]
    assert not (tmp_path / "parked.partial").exists()


def test_a_parked_training_is_restored_in_a_fresh_checkout_and_resumes(folders, tmp_path):
    runs, parked = tmp_path / "runs", tmp_path / "parked"
    training(folders, runs, "h2cu/naive-seed1", "key-1", epochs=(3, 12))
    folders.park(runs, parked)
    fresh = tmp_path / "fresh" / "h2cu"
    assert folders.restore_parked(fresh, parked / "h2cu") == [fresh / "naive-seed1"]
    restored = fresh / "naive-seed1"
    checkpoint = restored / "checkpoints" / "arm_run-0_epoch-12.pt"
    assert checkpoint.read_bytes() == bytes([12]) * 9
    assert folders.started_key(restored) == "key-1"
    assert not list(restored.rglob("*.partial"))
    folders.start_training(restored, "key-1")  # the same training: resumes, nothing cleared
    assert checkpoint.exists()
    folders.start_training(restored, "key-other")  # other settings never go on from it
    assert not checkpoint.exists()


def test_restoring_never_overwrites_a_folder_that_holds_a_training(folders, tmp_path):
    runs, parked = tmp_path / "runs", tmp_path / "parked"
    training(folders, runs, "h2cu/naive-seed1", "key-1", epochs=(3,))
    folders.park(runs, parked)
    here = tmp_path / "here"
    newer = training(folders, here, "h2cu/naive-seed1", "key-1", epochs=(3, 40))
    assert folders.restore_parked(here / "h2cu", parked / "h2cu") == []
    assert (newer / "checkpoints" / "arm_run-0_epoch-40.pt").exists()
    assert (newer / "logs" / "arm_run-0.log").read_text() == "h2cu/naive-seed1 epochs (3, 40)\n"


def test_parking_again_replaces_what_was_parked(folders, tmp_path):
    runs, parked = tmp_path / "runs", tmp_path / "parked"
    folder = training(folders, runs, "alloys/naive-seed2", "key-1", epochs=(3,))
    folders.park(runs, parked)
    folders.mark_finished(folder, "key-1")  # it finished since: nothing left to park
    assert folders.park(runs, parked) == []
    assert not parked.exists()


@pytest.mark.slow
def test_mace_torch_resumes_a_parked_training_in_a_fresh_checkout(folders, tmp_path):
    """A real (tiny) mace-torch training stopped after 3 epochs, parked, restored elsewhere and
    started again with a higher cap goes on from its checkpoint: the epochs before count."""
    from helpers.labels import emt_cu_cells

    from frostline.finetune.train import MaceTrainSettings, run_mace_training, training_outcome

    cells = emt_cu_cells(4)

    def settings(epochs: int) -> MaceTrainSettings:
        return MaceTrainSettings(name="arm", max_num_epochs=epochs, batch_size=2, num_channels=8)

    first = tmp_path / "session1" / "runs" / "alloys" / "arm-seed0"
    folders.start_training(first, "key")
    run_mace_training(settings(3), cells[:3], first, valid=cells[3:])  # killed: never stamped
    parked = tmp_path / "session1" / "parked"
    assert folders.park(tmp_path / "session1" / "runs", parked) == [first]

    fresh = tmp_path / "session2" / "runs" / "alloys"
    (folder,) = folders.restore_parked(fresh, parked / "alloys")
    folders.start_training(folder, "key")  # the benchmark's own call: resumes, clears nothing
    run_mace_training(settings(5), cells[:3], folder, valid=cells[3:])
    log = (folder / "logs" / "arm_run-0.log").read_text()  # restored, then appended to
    resumed = log[log.index(f"Loading checkpoint: {folder}") :]
    epochs = [int(m) for m in re.findall(r" INFO: Epoch (\d+):", resumed)]
    assert epochs[0] == 2 and epochs[-1] == 4  # from the parked best epoch, not from 0
    assert training_outcome(folder, "arm", 5).epochs_run == 5  # the parked epochs count
