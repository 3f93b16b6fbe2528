"""What every ``frostline`` command shares: the consoles, the one-line error, quiet start-up.

Kept free of heavy imports (no torch, mace, jobflow, pymatgen): ``frostline --help`` and the
table commands must answer at once; each command imports what it needs inside its body.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import re
import sys
import warnings
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console

LOG_FILE = "frostline.log"
"""A campaign directory's log file: the third-party notices kept off the console."""
WIDTH = 100
"""Columns of tables when the output is not a terminal (logs, pipes): rich's default is 80."""


def console(stderr: bool = False, wide: bool = False) -> Console:
    """A console on stdout (or stderr): off a terminal (logs, pipes) ``$COLUMNS`` or 100 columns
    wide instead of rich's 80; ``wide``: 250 columns, for tables with every column."""
    if wide:
        return Console(stderr=stderr, width=250, highlight=False)
    if Console(stderr=stderr).is_terminal:
        return Console(stderr=stderr, highlight=False)
    columns = os.environ.get("COLUMNS", "")
    width = int(columns) if columns.isdigit() and int(columns) > 0 else WIDTH
    return Console(stderr=stderr, width=width, highlight=False)


def fail(message: str, uri: str | None = None) -> NoReturn:
    """Print ``error: MESSAGE`` in red on one line of stderr (credentials of ``uri`` and of
    ``$FROSTLINE_MONGODB_URI`` scrubbed) and exit with code 2."""
    from frostline.settings import settings

    uri = uri or settings().mongodb_uri
    if uri or "://" in str(message):
        from frostline.registry.stores import scrub

        message = scrub(message, uri)
    message = " ".join(str(message).split())
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def iterations_note(max_iterations: int) -> str | None:
    """A one-line note when ``convergence.max_iterations`` buys no label after the initial set.

    Every iteration but the last fine-tunes, explores, selects and labels; the last one's
    exploration only measures its committee (a batch labelled then would train no model), so
    ``max_iterations: 1`` fine-tunes once on the initial set and labels nothing more.
    """
    if max_iterations > 1:
        return None
    return (
        "convergence.max_iterations: 1 fine-tunes once on the initial set and labels nothing "
        "more (the last iteration's exploration only measures the committee); 2 or more to learn"
    )


# Third-party notices that say nothing to a frostline user (all harmless here); they are kept
# in the campaign's log file (``DIR/frostline.log``) when a command has one, off the console.
QUIET = re.compile(
    "|".join(
        (
            # mace sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD on import; frostline loads model files
            # with weights_only=False explicitly, after a sha256 check for stored ones
            r"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD",
            r"[Cc]uequivariance",
            r"shadows an attribute in parent",  # pydantic, on atomate2's and emmet's documents
            r"cd is deprecated",  # jobflow's run_locally uses monty's cd
            r"'pin_memory' argument is set as true",  # torch's DataLoader in mace-torch, on CPU
            r"TorchScript type system doesn't support",  # torch.jit on mace's modules
            r"implementation of `fixcm=True` in `Langevin`",  # ASE >= 3.28 on its own default
            r"To copy construct from a tensor",  # mace's MACE.__init__ on stored models rebuilt
        )
    )
)
_held: list[str] = []
_log_file: Path | None = None
_show_warning = warnings.showwarning


def _keep(text: str) -> None:
    """Hold a quiet message for the log file (written once its folder exists)."""
    _held.append(text if text.endswith("\n") else text + "\n")
    flush_quiet()


def flush_quiet() -> None:
    """Append the held quiet messages to the log file, if there is one and its folder exists."""
    if _log_file is None or not _log_file.parent.is_dir() or not _held:
        return
    with open(_log_file, "a") as f:
        f.writelines(_held)
    _held.clear()


def _showwarning(message, category, filename, lineno, file=None, line=None) -> None:
    if QUIET.search(str(message)):
        _keep(warnings.formatwarning(message, category, filename, lineno, line))
    else:
        _show_warning(message, category, filename, lineno, file, line)


def quiet_third_party() -> None:
    """Route known third-party warnings to the log file instead of the console."""
    if warnings.showwarning is not _showwarning:
        warnings.showwarning = _showwarning
        atexit.register(flush_quiet)


def keep_quiet_in(log_file: os.PathLike) -> None:
    """From now on the quiet notices go to ``log_file`` (those held so far too)."""
    global _log_file
    _log_file = Path(log_file)
    flush_quiet()


def heavy_imports(log_file: os.PathLike | None = None) -> None:
    """Import mace (and with it torch and e3nn) quietly, for commands that run models.

    ``log_file``: the campaign's log file, where the quiet notices go (else they are held
    until ``keep_quiet_in`` names one). mace prints its cuequivariance notice on stdout when
    imported (stdout is for results: ``--json`` must parse); other output of the import goes
    to stderr. Off a terminal, ``$COLUMNS`` defaults to 100 for the stages' own consoles.
    """
    quiet_third_party()
    if log_file is not None:
        keep_quiet_in(log_file)
    if not sys.stderr.isatty():  # the stages' own progress lines: 100 columns, not rich's 80
        os.environ.setdefault("COLUMNS", str(WIDTH))
    if "mace.tools.cg" in sys.modules:
        return
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        import mace.tools.cg  # noqa: F401
    for text in buffer.getvalue().splitlines():
        if QUIET.search(text):
            _keep(text)
        else:
            print(text, file=sys.stderr)
