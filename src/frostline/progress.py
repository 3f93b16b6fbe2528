"""Live progress of a campaign run on a terminal (``frostline run`` / ``frostline demo``).

One rich ``Progress`` display per run, opened by the CLI with :func:`display`: a line for the
iteration (``iteration 2 of 3``) and one per running stage: the fine-tune member k of K with
its epochs (read from mace-torch's "Epoch N:" log records, ``frostline.finetune.train``), the
exploration's MD steps, the labels done of n, the distillation's own bars. It redraws in place
(no line per update) and is removed when the run ends; the one-line stage summaries
(``frostline.reliability.faults``) and the tables stay.

The stages report through the functions here, which do nothing while no display is open: off a
terminal (logs, pipes, CI), on jobflow-remote workers and in tests, whose output therefore
stays small. This module imports nothing heavy (rich only).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.console import Console
from rich.file_proxy import FileProxy
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

ITERATION = "iteration"
REFRESH_PER_SECOND = 4
_MEMBER = re.compile(r"^member(\d+)(?:-retry(\d+))?$")


@dataclass
class _Display:
    progress: Progress
    iterations: int
    members: int
    tasks: dict[str, TaskID] = field(default_factory=dict)


_display: _Display | None = None


def wanted(console: Console) -> bool:
    """Whether a live display suits ``console``: it and stdout are (non-dumb) terminals."""
    return console.is_terminal and not console.is_dumb_terminal and sys.stdout.isatty()


class _Through(FileProxy):
    """``sys.stdout`` / ``sys.stderr`` while a display is open: whole lines show above it.

    rich's own proxy names the file it wraps, so other rich consoles (the stages' own, on
    stderr) would write past it into the display; this one does not: every console's output
    goes through the display's console (which writes to the terminal itself).
    """

    @property
    def rich_proxied_file(self):
        raise AttributeError("rich_proxied_file")


@contextmanager
def display(iterations: int, members: int, console: Console | None = None) -> Iterator[bool]:
    """Open the run's display for ``iterations`` iterations of ``members``-model committees.

    Without ``console`` it goes to stderr, and only when stderr and stdout are terminals;
    a ``console`` given (tests) is used when it is a terminal. While it is open, whatever
    is written to stdout or stderr (``print``, logging, warnings, rich consoles) shows above
    it. A display already open is kept. Yields whether this call opened one.
    """
    global _display
    shown = console or Console(file=sys.stderr)  # its own file: not the proxies below
    if _display is not None or not (shown.is_terminal if console else wanted(shown)):
        yield False
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TimeElapsedColumn(),
        console=shown,
        transient=True,
        refresh_per_second=REFRESH_PER_SECOND,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Through(shown, sys.stdout), _Through(shown, sys.stderr)
    _display = _Display(progress, iterations, members)
    try:
        with progress:
            task = progress.add_task("initial labels", total=iterations, unit="iterations")
            _display.tasks[ITERATION] = task
            yield True
            sys.stdout.flush()
            sys.stderr.flush()
    finally:
        _display = None
        sys.stdout, sys.stderr = saved


def active() -> bool:
    """Whether a display is open (the stages' reports are shown)."""
    return _display is not None


def show_iteration(index: int) -> None:
    """Iteration ``index`` (0-based) started: ``iteration i of N``, earlier stages cleared."""
    d = _display
    if d is None:
        return
    for key in [k for k in d.tasks if k != ITERATION]:
        end_stage(key)
    description = f"iteration {index + 1} of {d.iterations}"
    d.progress.update(d.tasks[ITERATION], description=description, completed=index)


def show_stage(key: str, description: str, total: float, unit: str, completed: float = 0) -> None:
    """Show stage ``key`` (``explore``, ``label train``: its first word is its kind) with
    ``completed`` of ``total`` ``unit``; a stage of another kind shown before is removed."""
    d = _display
    if d is None:
        return
    kind = key.split()[0]
    for other in [k for k in d.tasks if k not in (ITERATION, key) and k.split()[0] != kind]:
        end_stage(other)
    if key in d.tasks:
        d.progress.update(
            d.tasks[key], description=description, total=total, completed=completed, unit=unit
        )
    else:
        d.tasks[key] = d.progress.add_task(description, total=total, completed=completed, unit=unit)


def advance_stage(key: str, n: float = 1) -> None:
    """``n`` more units of stage ``key`` done (nothing if it is not shown)."""
    d = _display
    if d is not None and key in d.tasks:
        d.progress.advance(d.tasks[key], n)


def end_stage(key: str) -> None:
    """Remove stage ``key`` from the display (nothing if it is not shown)."""
    d = _display
    if d is not None and key in d.tasks:
        d.progress.remove_task(d.tasks.pop(key))


def training_label(name: str, members: int) -> str:
    """How a fine-tune training is shown: ``member 2 of 4`` (training ``member1``),
    ``member 2 of 4, retry 1`` (``member1-retry1``), else its name (``sweep-f6``)."""
    match = _MEMBER.match(name)
    if match is None:
        return name
    member, retry = match.groups()
    label = f"member {int(member) + 1} of {members}"
    return f"{label}, retry {retry}" if retry else label


def training_reporter(name: str, cap: int) -> Callable[[int, int], None]:
    """Show training ``name`` at 0 of ``cap`` epochs; return its ``(epoch, cap)`` reporter
    (``epoch``: epochs done)."""
    d = _display
    if d is None:
        return lambda epoch, cap: None
    show_stage("finetune", f"fine-tune {training_label(name, d.members)}", cap, "epochs")

    def report(epoch: int, cap: int) -> None:
        if _display is not None and "finetune" in _display.tasks:
            _display.progress.update(_display.tasks["finetune"], completed=epoch, total=cap)

    return report


def nested_progress(*columns: str | ProgressColumn, console: Console) -> Progress:
    """A stage's own rich ``Progress`` (e.g. the distillation's): inside the run's display when
    one is open (removed when done), else on ``console`` as a stand-alone display."""
    if _display is not None:
        return Progress(*columns, console=_display.progress.console, transient=True)
    return Progress(*columns, console=console, transient=False)
