"""ASE calculators that misbehave, used as oracles in failure-path tests (importable by path)."""

from __future__ import annotations

import numpy as np
from ase.calculators.emt import EMT


class CountingEMT(EMT):
    """EMT that appends one line to a file per calculation (counts oracle calls)."""

    def __init__(self, counter: str, **kwargs):
        super().__init__(**kwargs)
        self.counter = counter

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        with open(self.counter, "a") as f:
            f.write("call\n")
        super().calculate(atoms, properties, system_changes)


class FailOnHydrogenEMT(EMT):
    """Raises for any structure containing H (a crashed DFT run)."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        if "H" in atoms.get_chemical_symbols():
            raise RuntimeError("SCF did not converge")
        super().calculate(atoms, properties, system_changes)


class NaNForcesEMT(EMT):
    """Returns NaN forces."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        super().calculate(atoms, properties, system_changes)
        self.results["forces"] = np.full((len(self.atoms), 3), np.nan)


class KillSwitchEMT(EMT):
    """EMT that logs each new structure to ``counter`` and SIGKILLs its own process when it
    starts structure number ``kill_at`` (1-based) while the file ``switch`` exists.

    The switch file is removed before the kill, so a re-run with the same settings (same oracle
    hash) labels normally: a labelling batch killed midway, then resumed.
    """

    def __init__(self, counter: str, switch: str, kill_at: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.counter, self.switch, self.kill_at = counter, switch, int(kill_at)

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        import hashlib
        import os
        import signal

        key = hashlib.sha1(np.round(atoms.positions, 4).tobytes()).hexdigest()[:12]
        seen = open(self.counter).read().split() if os.path.exists(self.counter) else []
        if key not in seen:
            if os.path.exists(self.switch) and len(set(seen)) + 1 >= self.kill_at:
                os.remove(self.switch)
                os.kill(os.getpid(), signal.SIGKILL)
            with open(self.counter, "a") as f:
                f.write(key + "\n")
        super().calculate(atoms, properties, system_changes)


class NetForceEMT(EMT):
    """EMT plus the same 0.5 eV/Å push on every atom: forces that do not sum to zero, as a
    numerically broken DFT calculation (too small a basis or grid) returns them."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        super().calculate(atoms, properties, system_changes)
        self.results["forces"] = self.results["forces"] + np.array([0.5, 0.0, 0.0])
