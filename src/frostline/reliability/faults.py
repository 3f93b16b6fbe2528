"""Faults of a run: failed jobs collected from jobflow's log, one line each on the console.

``jobflow.run_locally`` logs a failed job as ``"NAME failed with exception:\\nTRACEBACK"`` and
goes on with every job that does not need its output. :class:`FaultLog` is a logging handler
that keeps one :class:`Fault` per failed job (its name and the traceback's last line, with
MongoDB credentials removed), appends the full traceback to ``DIR/faults.log``, and shows the
console only the one-line form.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from frostline.reliability.errors import redact_uri
from frostline.settings import settings

MARK = " failed with exception:"
PROGRESS_FORMAT = "%(asctime)s %(message)s"


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


# jobs worth a progress line (the per-structure oracle and bookkeeping jobs are not)
STAGE_JOB = re.compile(
    r"^(setup_campaign|zero_shot_baseline|(finetune|explore|select|calibrate|advance) \d+|"
    r"distill)$"
)
RECORD_JOB = "record label"  # one per labelled structure, right after its oracle job
_JOB = re.compile(r"^(Starting|Finished) job - (.+?) \(([0-9a-f-]+)")


class _Progress(logging.Filter):
    """Console lines of ``run_locally``: failures in one line, one line per finished stage
    (``iteration 2/3: finetune done in 73 s``) and per batch of labels (``10 labels stored
    in 19 s``, shown when the next stage starts); other jobs' start and end are dropped."""

    def __init__(self, iterations: int | None = None) -> None:
        super().__init__()
        self._started: dict[str, float] = {}
        self.iterations = iterations  # "iteration 2/3: finetune done in 73 s" when known
        self._labels: list[float] = []  # when each label of the current batch was stored

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if MARK in message:
            return True
        match = _JOB.match(message)
        if match is None:
            return False
        what, name, uuid = match.groups()
        if name.startswith(RECORD_JOB):
            self._started.setdefault("labels", record.created)
            if what == "Finished":
                self._labels.append(record.created)
            return False
        if not STAGE_JOB.match(name):
            return False
        if what == "Starting":
            self._started[uuid] = record.created
            return self._label_batch(record)
        took = record.created - self._started.pop(uuid, record.created)
        stage, _, index = name.rpartition(" ")
        if self.iterations and stage and index.isdigit():
            name = f"iteration {int(index) + 1}/{self.iterations}: {stage}"
        record.msg, record.args = f"{name} done in {took:.0f} s", ()
        return True

    def _label_batch(self, record: logging.LogRecord) -> bool:
        """Turn a stage's start into the line of the labels stored before it (if any)."""
        if not self._labels:
            return False
        took = self._labels[-1] - self._started.pop("labels", self._labels[0])
        record.msg, record.args = f"{len(self._labels)} labels stored in {took:.0f} s", ()
        self._labels = []
        return True


class FaultLog(logging.Handler):
    """Collect failed jobs of ``run_locally`` (use as a context manager around it)."""

    def __init__(
        self, log_file: Path | None = None, console: bool = True, iterations: int | None = None
    ):
        super().__init__(level=logging.INFO)
        self.iterations = iterations
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
            self._stream.setFormatter(logging.Formatter(PROGRESS_FORMAT, "%H:%M:%S"))
            if not settings().job_log:  # FROSTLINE_JOB_LOG=1: every job line, unfiltered
                self._stream.addFilter(_Progress(self.iterations))
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
