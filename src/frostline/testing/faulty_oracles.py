"""ASE calculators that misbehave on purpose (fault injection; importable by path as an
``ase`` oracle: ``settings.calculator: frostline.testing.faulty_oracles.NAME``)."""

from __future__ import annotations

import time

import numpy as np
from ase.calculators.emt import EMT


class RaisingEMT(EMT):
    """Raises for every structure containing ``element`` (a crashed DFT run)."""

    def __init__(self, element: str = "H", **kwargs):
        super().__init__(**kwargs)
        self.element = element

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        if self.element in atoms.get_chemical_symbols():
            raise RuntimeError("injected fault: SCF did not converge")
        super().calculate(atoms, properties, system_changes)


class NaNEMT(EMT):
    """Returns NaN forces."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        super().calculate(atoms, properties, system_changes)
        self.results["forces"] = np.full((len(self.atoms), 3), np.nan)


class WrongCountEMT(EMT):
    """Returns forces for one atom fewer than the structure has."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        super().calculate(atoms, properties, system_changes)
        self.results["forces"] = self.results["forces"][:-1]


class HangingEMT(EMT):
    """Hangs (sleeps ``hang_s``) on structures with more than ``max_atoms`` atoms."""

    def __init__(self, hang_s: float = 3600.0, max_atoms: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.hang_s, self.max_atoms = float(hang_s), int(max_atoms)

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        if len(atoms) > self.max_atoms:
            time.sleep(self.hang_s)
        super().calculate(atoms, properties, system_changes)
