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
