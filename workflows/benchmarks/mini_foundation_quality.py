"""How well does the mini foundation know H2/Cu(111)? Force/energy errors against its teacher
(CHGNet, PBE level) and against GFN1-xTB (the demo's oracle), next to a zero-force baseline.

    .venv/bin/python workflows/benchmarks/mini_foundation_quality.py [--n 30] [--model PATH]
"""

from __future__ import annotations

import argparse

import numpy as np
from ase.calculators.calculator import Calculator
from rich.console import Console
from rich.table import Table

from frostline.finetune.committee import committee_calculator
from frostline.finetune.foundation import MINI_FOUNDATION
from frostline.label.calculators import chgnet_calculator, xtb_calculator
from frostline.structures import h2_cu111_structures


def labels(structures, calc: Calculator) -> tuple[np.ndarray, list[np.ndarray]]:
    energies, forces = [], []
    for atoms in structures:
        a = atoms.copy()
        a.calc = calc
        energies.append(a.get_potential_energy() / len(a))
        forces.append(a.get_forces())
    return np.asarray(energies), forces


def errors(ref, pred) -> tuple[float, float]:
    """(force MAE meV/Å, energy-per-atom MAE meV after removing the mean offset)."""
    f = np.mean(
        np.abs(np.concatenate([(a - b).ravel() for a, b in zip(ref[1], pred[1], strict=True)]))
    )
    de = ref[0] - pred[0]
    return 1000 * f, 1000 * np.mean(np.abs(de - de.mean()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--model", default=str(MINI_FOUNDATION))
    args = parser.parse_args()
    rng = np.random.default_rng(123)
    structures = h2_cu111_structures(args.n, rng, rattle_stdev=0.1, include_references=False)
    model = labels(structures, committee_calculator([args.model]))
    teacher = labels(structures, chgnet_calculator())
    oracle = labels(structures, xtb_calculator())
    zero = (np.zeros(len(structures)), [np.zeros_like(f) for f in model[1]])
    table = Table(title=f"mini foundation on {args.n} H2/Cu(111) structures")
    for col in ("reference", "model", "F MAE meV/Å", "E MAE meV/atom (offset removed)"):
        table.add_column(col)
    for ref_name, ref in (("CHGNet (teacher)", teacher), ("GFN1-xTB (oracle)", oracle)):
        for name, pred in (("mini foundation", model), ("zero forces", zero)):
            f, e = errors(ref, pred)
            table.add_row(ref_name, name, f"{f:.1f}", f"{e:.1f}" if name != "zero forces" else "–")
    f, e = errors(oracle, teacher)
    table.add_row("GFN1-xTB (oracle)", "CHGNet", f"{f:.1f}", f"{e:.1f}")
    Console().print(table)
    f_teacher, _ = errors(teacher, model)
    f_oracle, _ = errors(oracle, model)
    print(
        f"mini foundation force MAE: vs teacher {f_teacher:.1f} meV/Å, "
        f"vs oracle {f_oracle:.1f} meV/Å"
    )


if __name__ == "__main__":
    main()
