"""Per element pair cutoffs of the linear ACE surrogate: what a short H-H cutoff does to H forces.

One cutoff (5 Å) for every pair spreads the few radial functions a pair gets over 0-5 Å, too
coarse for the stiff H-H bond at 0.74 Å. ``distill.pair_cutoff_factor`` gives a pair whose
shortest teacher contact times the factor is below the cutoff that shorter cutoff
(:func:`frostline.distill.ace.pair_cutoffs`). This study fits the same teacher data with
factors 0 (off: every pair at 5 Å) to 5.5 and compares, per element, the force MAE against the
teacher on three sets the fit never saw:

- ``held out``: the distillation's own held-out teacher trajectories (what the sweep reads);
- ``beyond``: ``surrogate_speed.py``'s frames outside the teacher data (Cu(100)+H2, 5-8 %
  strain, other H coverages, 1,500 K MD), labelled by the teacher;
- ``elbow``: the H2/Cu(111) dissociation elbow of ``uncertainty_quality.py`` (H-H 0.6-2.2 Å),
  labelled by the teacher: the pair cutoff must not break the reaction path.

Each fit also runs the distillation's MD stability check. Teacher = the shipped mini
foundation; teacher data = ``surrogate_speed.py``'s settings with the pair cutoffs off (300
structures, 100 functions/element, 3 rounds of active learning), cached in
``results/surrogate_pair_cutoffs/cache/`` (git-ignored); figures in ``results.json`` and
``report.txt`` there.

    OMP_NUM_THREADS=2 .venv/bin/python workflows/benchmarks/surrogate_pair_cutoffs.py
    .venv/bin/python workflows/benchmarks/surrogate_pair_cutoffs.py --reprint   # committed

Last line: ``H force MAE vs teacher, pair_cutoff_factor 4 / off: held out A / B, beyond C / D,
elbow E / F meV/Å``.
"""

from __future__ import annotations

import io
import json
import pickle
import sys
from pathlib import Path

import mace  # noqa: F401  (before e3nn)
import numpy as np
import torch
from ase.io import read
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from surrogate_speed import held_out_frames  # noqa: E402

from frostline.config import DistillConfig  # noqa: E402
from frostline.distill.ace import (  # noqa: E402
    BasisSpec,
    SurrogateCalculator,
    build_basis,
    design_matrix,
    fit_linear_ace,
    pair_cutoffs,
    write_yace,
)
from frostline.distill.jobs import build_surrogate  # noqa: E402
from frostline.distill.teacher import TeacherSample, label  # noqa: E402
from frostline.distill.validate import shortest_contacts  # noqa: E402
from frostline.finetune.committee import committee_calculator  # noqa: E402
from frostline.finetune.evaluate import error_metrics  # noqa: E402
from frostline.finetune.foundation import MINI_FOUNDATION  # noqa: E402
from frostline.structures import h2_cu111_structures  # noqa: E402

OUT = HERE / "results" / "surrogate_pair_cutoffs"
ELBOW = HERE / "results" / "uncertainty_quality" / "h2cu-elbow.extxyz"
FACTORS = [0.0, 3.2, 3.6, 4.0, 4.5, 5.0, 5.5]
DEFAULT = 4.0
console = Console()


def teacher_data(teacher, cache: Path):
    """Samples, train/holdout indices and stability check of a factor-0 distillation (cached)."""
    path = cache / "build.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    settings = DistillConfig(
        n_teacher_structures=300,
        basis_sizes=[100],
        cutoffs=[5.0],
        target_force_mae_mev_per_a=40.0,
        pair_cutoff_factor=0.0,
    )
    seeds = h2_cu111_structures(12, np.random.default_rng(1), rattle_stdev=0.05)
    b = build_surrogate(teacher, seeds, ["Cu", "H"], cache / "build", settings, [300.0, 800.0])
    data = (b.samples, b.train, b.holdout, b.check)
    path.write_bytes(pickle.dumps(data))
    return data


def labelled(teacher, frames: list, cache: Path, name: str) -> list[TeacherSample]:
    """``frames`` with the teacher's energies and forces (cached)."""
    path = cache / f"{name}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    out = []
    for i, atoms in enumerate(frames):
        atoms = atoms.copy()
        atoms.calc = None
        energy, forces = label(teacher, atoms)
        out.append(TeacherSample(atoms, energy, forces, name, i))
    path.write_bytes(pickle.dumps(out))
    return out


def by_element(fit, samples: list[TeacherSample]) -> dict[str, float]:
    """Force MAE (meV/Å) of ``fit`` against the teacher, per element and over all atoms."""
    energies, forces = fit.predict(design_matrix(fit.basis, [s.atoms for s in samples]))
    m = error_metrics(
        [s.energy for s in samples],
        [s.forces for s in samples],
        energies,
        forces,
        [s.atoms.get_chemical_symbols() for s in samples],
    )
    return {**m.force_mae_by_element, "all": m.force_mae_mev_per_a}


def variant(factor: float, samples, train, sets: dict, check, cache: Path) -> dict:
    """Fit 100 functions/element with ``factor``; errors on ``sets`` and the MD check."""
    contacts = shortest_contacts([samples[i].atoms for i in train])
    spec = BasisSpec(("Cu", "H"), 100, 5.0, pair_cutoffs=pair_cutoffs(contacts, 5.0, factor))
    basis = build_basis(spec)
    tr = [samples[i] for i in train]
    design = design_matrix(basis, [s.atoms for s in tr])
    fit = fit_linear_ace(spec, design, [s.energy for s in tr], [s.forces for s in tr], basis=basis)
    report = check.check(SurrogateCalculator(write_yace(fit, cache / f"f{factor:g}.yace")))
    row = {"factor": factor, "pair_cutoffs": dict(spec.pair_cutoffs), "stable": report.stable}
    row["md"] = f"{report.mean_temperature_k:.0f} K, closest {report.min_distance_a:.2f} Å"
    row.update({name: by_element(fit, s) for name, s in sets.items()})
    return row


def print_report(rows: list[dict], out: Console) -> None:
    """The table and the closing line."""
    table = Table(title="force MAE vs teacher (meV/Å), 100 functions/element, rc 5 Å")
    for col in ["factor", "pair cutoffs", "held out Cu / H", "beyond Cu / H", "elbow Cu / H"]:
        table.add_column(col)
    table.add_column("MD check")
    for r in rows:
        pairs = ", ".join(f"{p} {c:.2f}" for p, c in r["pair_cutoffs"].items()) or "all 5 Å"
        cells = [f"{r[s]['Cu']:.1f} / {r[s]['H']:.1f}" for s in ("held out", "beyond", "elbow")]
        md = ("stable, " if r["stable"] else "FAILS, ") + r["md"]
        table.add_row(f"{r['factor']:g}", pairs, *cells, md)
    out.print(table)
    on = next(r for r in rows if r["factor"] == DEFAULT)
    off = next(r for r in rows if r["factor"] == 0.0)
    out.print(
        f"H force MAE vs teacher, pair_cutoff_factor {DEFAULT:g} / off: held out "
        f"{on['held out']['H']:.0f} / {off['held out']['H']:.0f}, beyond "
        f"{on['beyond']['H']:.0f} / {off['beyond']['H']:.0f}, elbow "
        f"{on['elbow']['H']:.0f} / {off['elbow']['H']:.0f} meV/Å",
        soft_wrap=True,
    )


def write_report(rows: list[dict]) -> None:
    """``report.txt`` (as printed) and the table on screen."""
    text = Console(record=True, width=110, file=io.StringIO())
    print_report(rows, text)
    (OUT / "report.txt").write_text(text.export_text())
    print_report(rows, Console(width=110))


def main() -> None:
    if sys.argv[1:] == ["--reprint"]:  # the committed figures, nothing fitted
        write_report(json.loads((OUT / "results.json").read_text()))
        return
    cache = OUT / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    teacher = committee_calculator([MINI_FOUNDATION], device="cpu", dtype="float64")
    samples, train, holdout, check = teacher_data(teacher, cache)
    beyond = [a for group in held_out_frames(teacher, False).values() for a in group]
    sets = {
        "held out": [samples[i] for i in holdout],
        "beyond": labelled(teacher, beyond, cache, "beyond"),
        "elbow": labelled(teacher, read(ELBOW, ":"), cache, "elbow"),
    }
    rows = []
    for factor in FACTORS:
        rows.append(variant(factor, samples, train, sets, check, cache))
        console.print(f"factor {factor:g}: H held out {rows[-1]['held out']['H']:.1f} meV/Å")
    (OUT / "results.json").write_text(json.dumps(rows, indent=2))
    write_report(rows)


if __name__ == "__main__":
    main()
