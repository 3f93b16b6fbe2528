"""How well does a mini foundation know a fine-tuning target's structures, zero-shot?

Force/energy errors of one or more foundation models against their teacher (CHGNet, PBE level)
and against the fine-tuning target, next to a zero-force baseline:

- ``--case h2cu``: H2/Cu(111), target GFN1-xTB (the demo's oracle);
- ``--case alloys``: Cu-Ni-Au cells as in ``data_efficiency.py``, target CHGNet's r2SCAN model.

    .venv/bin/python workflows/benchmarks/mini_foundation_quality.py [--case h2cu] [--n 30]
        [--model PATH [PATH ...]]
"""

from __future__ import annotations

import argparse
from pathlib import Path

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
    parser.add_argument("--case", choices=["h2cu", "alloys"], default="h2cu")
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--model", nargs="+", default=[str(MINI_FOUNDATION)])
    args = parser.parse_args()
    rng = np.random.default_rng(123)
    if args.case == "h2cu":
        structures = h2_cu111_structures(args.n, rng, rattle_stdev=0.1, include_references=False)
        target_name, target_calc = "GFN1-xTB (target)", xtb_calculator()
    else:
        from data_efficiency import alloy_structures  # this folder is on sys.path as a script

        structures = alloy_structures(args.n, rng)
        target_name, target_calc = "CHGNet-r2SCAN (target)", chgnet_calculator("r2scan")
    models = {
        "mini foundation" if Path(m) == MINI_FOUNDATION else Path(m).name: labels(
            structures, committee_calculator([m])
        )
        for m in args.model
    }
    teacher = labels(structures, chgnet_calculator())
    target = labels(structures, target_calc)
    zero = (np.zeros(len(structures)), [np.zeros_like(f) for f in teacher[1]])
    table = Table(title=f"zero-shot on {args.n} {args.case} structures")
    for col in ("reference", "model", "F MAE meV/Å", "E MAE meV/atom (offset removed)"):
        table.add_column(col)
    for ref_name, ref in (("CHGNet-PBE (teacher)", teacher), (target_name, target)):
        for name, pred in (*models.items(), ("zero forces", zero)):
            f, e = errors(ref, pred)
            table.add_row(ref_name, name, f"{f:.1f}", f"{e:.1f}" if name != "zero forces" else "–")
    f, e = errors(target, teacher)
    table.add_row(target_name, "CHGNet-PBE", f"{f:.1f}", f"{e:.1f}")
    Console().print(table)
    for name, pred in models.items():
        print(
            f"{name} force MAE: vs teacher {errors(teacher, pred)[0]:.1f} meV/Å, "
            f"vs oracle {errors(target, pred)[0]:.1f} meV/Å"
        )


if __name__ == "__main__":
    main()
