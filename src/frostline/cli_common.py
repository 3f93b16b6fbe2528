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

WIDTH = 100
"""Columns of tables when the output is not a terminal (logs, pipes): rich's default is 80."""


def console(stderr: bool = False, wide: bool = False) -> Console:
    """A console on stdout (or stderr) that is 100 columns wide off a terminal (``wide``: 250)."""
    probe = Console(stderr=stderr)
    width = None if probe.is_terminal and not wide else (250 if wide else WIDTH)
    return Console(stderr=stderr, width=width, highlight=False)


def fail(message: str, uri: str | None = None) -> NoReturn:
    """Print ``error: MESSAGE`` in red on one line of stderr (credentials of ``uri`` and of
    ``$FROSTLINE_MONGODB_URI`` scrubbed) and exit with code 2."""
    uri = uri or os.environ.get("FROSTLINE_MONGODB_URI")
    if uri:
        from frostline.registry.stores import scrub

        message = scrub(message, uri)
    message = " ".join(str(message).split())
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


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


def heavy_imports(log_file: os.PathLike | None = None) -> None:
    """Import mace (and with it torch and e3nn) quietly, for commands that run models.

    ``log_file``: the campaign's log file, where the quiet notices go. mace prints its
    cuequivariance notice on stdout when imported (stdout is for results: ``--json`` must
    parse); other output of the import goes to stderr.
    """
    global _log_file
    quiet_third_party()
    if log_file is not None:
        _log_file = Path(log_file)
        flush_quiet()
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
