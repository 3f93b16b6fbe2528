"""Faults of a run: failed jobs collected from jobflow's log, one line each on the console.

``jobflow.run_locally`` logs a failed job as ``"NAME failed with exception:\\nTRACEBACK"`` and
goes on with every job that does not need its output. :class:`FaultLog` is a logging handler
that keeps one :class:`Fault` per failed job (its name and the traceback's last line, with
MongoDB credentials removed), appends the full traceback to ``DIR/faults.log``, and shows the
console only the one-line form.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from frostline.reliability.errors import redact_uri

MARK = " failed with exception:"
JOBFLOW_FORMAT = "%(asctime)s %(levelname)s %(message)s"


@dataclass
class Fault:
    job: str
    error: str
    time: float = field(default_factory=time.time)

    def line(self) -> str:
        return f"{self.job} failed: {self.error}"

    def as_dict(self) -> dict:
        return asdict(self)


def parse_failure(message: str) -> Fault | None:
    """The fault in a jobflow log message (None when the message is not a job failure)."""
    if MARK not in message:
        return None
    job, _, trace = message.partition(MARK)
    lines = [x.strip() for x in trace.strip().splitlines() if x.strip()]
    return Fault(job=job.strip(), error=redact_uri(lines[-1] if lines else "unknown error"))


class _OneLine(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        fault = parse_failure(record.getMessage())
        if fault is not None:
            record.msg, record.args = fault.line() + " (traceback in faults.log)", ()
        return True


class FaultLog(logging.Handler):
    """Collect failed jobs of ``run_locally`` (use as a context manager around it)."""

    def __init__(self, log_file: Path | None = None, console: bool = True):
        super().__init__(level=logging.INFO)
        self.faults: list[Fault] = []
        self.log_file = log_file
        self.console = console
        self._logger = logging.getLogger("jobflow")
        self._saved: tuple | None = None
        self._stream: logging.Handler | None = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        fault = parse_failure(message)
        if fault is None:
            return
        self.faults.append(fault)
        if self.log_file is not None:
            try:
                with open(self.log_file, "a") as fh:
                    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
                    fh.write(f"--- {stamp} {redact_uri(message)}\n")
            except OSError:
                pass

    def __enter__(self) -> FaultLog:
        log = self._logger
        self._saved = (log.level, log.propagate, list(log.handlers))
        for h in list(log.handlers):  # jobflow's own stream handler would print tracebacks
            log.removeHandler(h)
        log.setLevel(logging.INFO)
        log.propagate = False
        log.addHandler(self)
        if self.console:
            self._stream = logging.StreamHandler(sys.stderr)
            self._stream.setFormatter(logging.Formatter(JOBFLOW_FORMAT))
            self._stream.addFilter(_OneLine())
            log.addHandler(self._stream)
        return self

    def __exit__(self, *exc) -> None:
        log = self._logger
        log.removeHandler(self)
        if self._stream is not None:
            log.removeHandler(self._stream)
        level, propagate, handlers = self._saved
        log.setLevel(level)
        log.propagate = propagate
        for h in handlers:
            log.addHandler(h)
