"""Oracle and small jobs for the submission tests, importable by jobflow-remote workers (tests/ on
sys.path)."""

from __future__ import annotations

import hashlib
import os
import time

import numpy as np
from ase.calculators.emt import EMT
from jobflow import job


class LoggingEMT(EMT):
    """EMT that appends ``structure-key pid exec-tag`` to ``log`` once per new structure.

    ``exec-tag`` is ``$FROSTLINE_TEST_EXEC`` (set by the worker's exec_config), so a test can
    tell which process ran each label and under which execution config.
    """

    def __init__(self, log: str, **kwargs):
        super().__init__(**kwargs)
        self.log = log

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        key = hashlib.sha1(np.round(atoms.positions, 4).tobytes()).hexdigest()[:12]
        tag = os.environ.get("FROSTLINE_TEST_EXEC", "-")
        line = f"{key} {os.getpid()} {tag}"
        seen = open(self.log).read().splitlines() if os.path.exists(self.log) else []
        if line not in seen:  # one line per structure and process
            with open(self.log, "a") as f:
                f.write(line + "\n")
        super().calculate(atoms, properties, system_changes)


@job(data="trajectory")
def frames(n: int, seconds: float = 0.0) -> dict:
    """A job whose output keeps ``trajectory`` in the ``data`` store (as atomate2's ASE jobs).

    Each run appends its pid to ``executions.log`` in the working directory (the run folder),
    then takes ``seconds``.
    """
    with open("executions.log", "a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    return {"n": n, "trajectory": [[float(i)] * 3 for i in range(n)]}


@job
def count_frames(doc: dict) -> int:
    """A job reading ``frames``' output, blob included (resolved when the runner uploads it)."""
    return len(doc["trajectory"])
