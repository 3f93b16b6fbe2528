"""Oracle for the submission tests, importable by jobflow-remote workers (tests/ on sys.path)."""

from __future__ import annotations

import hashlib
import os

import numpy as np
from ase.calculators.emt import EMT


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
