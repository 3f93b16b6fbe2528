"""Live progress of a run (issue 43): one display that redraws in place on a terminal, nothing
off a terminal; ``max_iterations: 1`` says in one line that it labels nothing more."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
from conftest import tiny_campaign
from helpers.cli import run_off_a_terminal
from rich.console import Console

from frostline import progress
from frostline.cli_common import iterations_note

CONTROL = "\x1b"  # every rich cursor move, erase and colour starts with ESC


def _shown(buffer: io.StringIO) -> str:
    """What the display shows now (a forced redraw), ANSI codes and all."""
    progress._display.progress.refresh()
    return buffer.getvalue()


def test_one_display_redraws_in_place_and_is_gone_at_the_end():
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    with progress.display(3, 2, console=console) as shown:
        assert shown
        progress.show_stage("label train", "label train", 10, "labels", completed=2)
        progress.show_stage("label validation", "label validation", 5, "labels")
        for _ in range(8):
            progress.advance_stage("label train")
        assert "10/10" in _shown(buffer) and "0/5" in _shown(buffer)  # both batches shown
        progress.show_iteration(1)
        report = progress.training_reporter("member1", 40)
        for epoch in range(1, 41):
            report(epoch, 40)
        text = _shown(buffer)
        assert "iteration 2 of 3" in text and "fine-tune member 2 of 2" in text
        assert "40/40" in text and "label train" not in text.rpartition("iteration 2")[2]
        progress.show_stage("explore", "explore (ase MD)", 480, "steps")
        for _ in range(480):  # one update per MD step: no line each
            progress.advance_stage("explore")
        assert "480/480" in _shown(buffer) and "member 2" not in _shown(buffer)[-400:]
        # output of the stages shows above the display: print, logging, their own consoles
        print("a stage summary line", file=sys.stderr)
        Console(stderr=True).print("[bold]fine-tune[/] member 1/2: 9 structures")
        assert sys.stderr.isatty() == sys.__stderr__.isatty()
    out = buffer.getvalue()
    assert out.count("\n") < 60  # redraws, not a line per update
    # the display is removed at the end: only the printed lines stay on the screen
    assert out.count("\n") - out.count("\x1b[1A") == 2
    assert "a stage summary line" in out and "member 1/2: 9 structures" in out
    assert not progress.active()


def test_nothing_is_shown_off_a_terminal(capsys):
    with progress.display(3, 2) as shown:  # pytest's stdout is no terminal
        assert not shown and not progress.active()
        progress.show_iteration(0)
        progress.show_stage("explore", "explore", 10, "steps")
        progress.advance_stage("explore", 5)
        progress.training_reporter("member0", 2)(1, 2)
        progress.end_stage("explore")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_trainings_are_shown_as_members_of_the_committee():
    assert progress.training_label("member1", 4) == "member 2 of 4"
    assert progress.training_label("member0-retry2", 4) == "member 1 of 4, retry 2"
    assert progress.training_label("sweep-f6", 4) == "sweep-f6"


def test_one_iteration_notes_that_it_labels_nothing_more():
    note = iterations_note(1)
    assert "max_iterations: 1" in note and "labels nothing" in note and "\n" not in note
    assert iterations_note(2) is None


@pytest.mark.slow
def test_one_iteration_run_off_a_terminal_is_short_plain_and_labels_nothing_more(tmp_path):
    """``frostline run`` with stdout and stderr in pipes (CI, logs, jobflow-remote): no rich
    control characters, a few lines; ``max_iterations: 1`` fine-tunes and explores, labels no
    batch, and says so in one line before any work."""
    data = tiny_campaign(name="once", convergence={"max_iterations": 1})
    res, folder = run_off_a_terminal(data, tmp_path)
    assert res.returncode == 0, res.stderr
    console = res.stdout + res.stderr
    assert CONTROL not in console, console
    assert len(console.splitlines()) <= 20 and "Epoch" not in console, console
    assert "To copy construct from a tensor" not in console  # mace's notice: DIR/frostline.log
    assert "note: convergence.max_iterations: 1" in res.stderr.splitlines()[0]
    assert "done: stopped (max iterations)" in res.stdout
    status = subprocess.run(
        [sys.executable, "-m", "frostline.cli", "status", str(folder), "--json"],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    iterations = json.loads(status.stdout)["iterations"]
    assert len(iterations) == 1 and iterations[0]["n_new_labels"] == 0
    assert iterations[0]["n_labelled"] == data["system"]["n_initial"]
