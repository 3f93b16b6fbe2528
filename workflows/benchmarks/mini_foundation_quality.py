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


def errors(ref, pred, compositions: np.ndarray) -> tuple[float, float]:
    """(force MAE meV/Å, energy-per-atom MAE meV after a per-element energy shift).

    Two levels of theory differ by a reference energy per element; the shift is the
    least-squares fit of the per-structure energy difference on the atom counts.
    """
    f = np.mean(
        np.abs(np.concatenate([(a - b).ravel() for a, b in zip(ref[1], pred[1], strict=True)]))
    )
    n_atoms = compositions.sum(axis=1)
    de = (ref[0] - pred[0]) * n_atoms
    shift, *_ = np.linalg.lstsq(compositions, de, rcond=None)
    return 1000 * f, 1000 * np.mean(np.abs((de - compositions @ shift) / n_atoms))


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
    elements = sorted({s for atoms in structures for s in atoms.get_chemical_symbols()})
    compositions = np.array(
        [[atoms.get_chemical_symbols().count(e) for e in elements] for atoms in structures], float
    )

    def label(m: str) -> str:
        return "mini foundation" if Path(m).resolve() == MINI_FOUNDATION.resolve() else Path(m).name

    models = {label(m): labels(structures, committee_calculator([m])) for m in args.model}
    teacher = labels(structures, chgnet_calculator())
    target = labels(structures, target_calc)
    zero = (np.zeros(len(structures)), [np.zeros_like(f) for f in teacher[1]])
    table = Table(title=f"zero-shot on {args.n} {args.case} structures")
    for col in ("reference", "model", "F MAE meV/Å", "E MAE meV/atom (per-element shift removed)"):
        table.add_column(col)
    for ref_name, ref in (("CHGNet-PBE (teacher)", teacher), (target_name, target)):
        for name, pred in (*models.items(), ("zero forces", zero)):
            f, e = errors(ref, pred, compositions)
            table.add_row(ref_name, name, f"{f:.1f}", f"{e:.1f}" if name != "zero forces" else "–")
    f, e = errors(target, teacher, compositions)
    table.add_row(target_name, "CHGNet-PBE", f"{f:.1f}", f"{e:.1f}")
    Console().print(table)
    for name, pred in models.items():
        print(
            f"{name} force MAE: vs teacher {errors(teacher, pred, compositions)[0]:.1f} meV/Å, "
            f"vs oracle {errors(target, pred, compositions)[0]:.1f} meV/Å"
        )


if __name__ == "__main__":
    main()
