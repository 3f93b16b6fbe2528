"""Dissociative adsorption of H2 on Cu(111): how well do a campaign's committees know the elbow?

The classic two-dimensional cut through the H2/Cu(111) potential energy surface (the "elbow"
plot of the dissociation literature): the H2 molecule parallel to the surface above a bridge
site, oriented so that its atoms move towards the neighbouring fcc and hcp hollows as the bond
stretches, on a grid of heights Z above the top layer and bond lengths r, the slab as built.
The frames are labelled by GFN1-xTB (the selection benchmark's oracle) and cached as
``h2cu-elbow.extxyz`` beside the campaign folders. Reaction barriers are the quantity the
mission names; neither the exploration MD nor the oracle-MD test set samples these
configurations on purpose, so this set shows what each selection rule bought for them.

For every iteration's committee of every folder given: force MAE over the grid, relative-energy
RMSE (energies relative to the far molecule, Z = 3 Å and r = 0.75 Å, so that E0 offsets cancel;
all frames share one composition) and the dissociation barrier: the lowest possible highest
energy of a path of grid neighbours from the far molecule to the oracle's lowest dissociated
cell (r >= 1.6 Å), at the grid's resolution, and the depth of that dissociated well. Prints a
table and, last, the barrier and well errors of each folder's last committee; writes
``h2cu_elbow.png`` (the oracle's elbow, and the lowest energy over heights per bond length for
the oracle and each folder's last committee) and ``h2cu_elbow.json``.

    .venv/bin/python workflows/benchmarks/h2cu_elbow.py FOLDER [FOLDER ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read, write
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import figure  # noqa: E402

console = Console()
HEIGHTS = (0.8, 1.0, 1.2, 1.4, 1.7, 2.0, 2.5, 3.0)
BONDS = (0.6, 0.7, 0.75, 0.85, 1.0, 1.2, 1.4, 1.6, 1.9, 2.2)


def elbow_frames() -> list[Atoms]:
    """H2 above a bridge of a 2x2x3 Cu(111) slab, every (height, bond length) of the grid."""
    from frostline.structures import cu111_slab

    slab = cu111_slab()
    z = slab.positions[:, 2]
    top = np.flatnonzero(z > z.max() - 0.5)
    a = slab.positions[top[0]]
    shifts = (0 * a, slab.cell[0], -slab.cell[0])
    b = min(
        (slab.positions[i] + shift for i in top[1:] for shift in shifts),
        key=lambda p: np.linalg.norm(p - a),
    )
    bond = (b - a) / np.linalg.norm(b - a)
    across = np.cross([0.0, 0.0, 1.0], bond)  # in plane, from the bridge towards the hollows
    bridge = 0.5 * (a + b)
    frames = []
    for height in HEIGHTS:
        for r in BONDS:
            centre = bridge + [0.0, 0.0, height]
            h2 = Atoms("H2", positions=[centre - 0.5 * r * across, centre + 0.5 * r * across])
            atoms = slab + h2
            atoms.info.update({"height": height, "bond": r})
            frames.append(atoms)
    return frames


def labelled_elbow(path: Path) -> list[Atoms]:
    """The grid labelled by GFN1-xTB (cached in ``path``)."""
    if path.exists():
        return read(path, ":")
    from data_efficiency import label_xtb  # the sibling benchmark's GFN1-xTB labelling

    out = label_xtb(elbow_frames())
    write(path, out, format="extxyz")
    return out


def energy_grid(frames: list[Atoms], energies) -> np.ndarray:
    """Energies on the (height, bond) grid, relative to the far molecule (top height, 0.75 Å)."""
    grid = np.full((len(HEIGHTS), len(BONDS)), np.nan)
    for atoms, e in zip(frames, energies, strict=True):
        grid[HEIGHTS.index(atoms.info["height"]), BONDS.index(atoms.info["bond"])] = e
    return grid - grid[-1, BONDS.index(0.75)]


def minimax_barrier(grid: np.ndarray, start: tuple[int, int], end: tuple[int, int]) -> float:
    """Lowest possible highest energy of a path of grid neighbours from ``start`` to ``end``.

    Cells are added in order of energy until the two are connected (union-find); the energy of
    the cell that connects them is the barrier at the grid's resolution.
    """
    n_rows, n_cols = grid.shape
    parent = list(range(grid.size))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    added = np.zeros(grid.shape, dtype=bool)
    target = (start[0] * n_cols + start[1], end[0] * n_cols + end[1])
    for flat in np.argsort(grid, axis=None, kind="stable"):
        r, c = divmod(int(flat), n_cols)
        added[r, c] = True
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            rr, cc = r + dr, c + dc
            if 0 <= rr < n_rows and 0 <= cc < n_cols and added[rr, cc]:
                parent[find(rr * n_cols + cc)] = find(int(flat))
        if added[start] and added[end] and find(target[0]) == find(target[1]):
            return float(grid[r, c])
    raise ValueError("start and end are not connected")


def end_points(reference: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    """The far molecule and the oracle's lowest dissociated cell (bond >= 1.6 Å)."""
    start = (len(HEIGHTS) - 1, BONDS.index(0.75))
    first = BONDS.index(1.6)
    r, c = np.unravel_index(np.nanargmin(reference[:, first:]), reference[:, first:].shape)
    return start, (int(r), int(c) + first)


def dissociated_energy(grid: np.ndarray) -> float:
    """Lowest energy with the H atoms apart (r >= 1.6 Å), relative to the far molecule."""
    return float(np.nanmin(grid[:, BONDS.index(1.6) :]))


def elbow_row(calc, frames: list[Atoms], reference: np.ndarray) -> dict:
    """One model (calculator) on the labelled elbow ``frames``: force MAE (meV/Å), relative-
    energy RMSE (meV), barrier and dissociated well (eV, far molecule = 0), its energy grid."""
    from frostline.distill.validate import predict_atoms

    ref_forces = np.concatenate([a.arrays["REF_forces"] for a in frames])
    start, end = end_points(reference)
    energies, forces = predict_atoms(calc, frames)
    grid = energy_grid(frames, energies)
    return {
        "force_mae": 1000 * float(np.mean(np.abs(np.concatenate(forces) - ref_forces))),
        "energy_rmse": 1000 * float(np.sqrt(np.mean((grid - reference) ** 2))),
        "barrier": minimax_barrier(grid, start, end),
        "dissociated": dissociated_energy(grid),
        "grid": grid.tolist(),
    }


def evaluate_folder(folder: Path, frames: list[Atoms], reference: np.ndarray) -> list[dict]:
    """Force MAE, relative-energy RMSE and barrier of every iteration's committee."""
    from frostline.finetune.committee import load_committee
    from frostline.registry.queries import iteration_committees, open_campaign_dir

    records = open_campaign_dir(folder)
    rows = []
    for it, members in iteration_committees(records):
        calc = load_committee(records, members, device="cpu")
        row = elbow_row(calc, frames, reference)
        rows.append({"arm": folder.name, "labels": it["n_labelled"], **row})
    return rows


def plot(rows: list[dict], reference: np.ndarray, path: Path) -> None:
    """Oracle elbow (contours) and each folder's last committee: lowest energy per bond length."""
    with figure(path, 2, figsize=(11, 4.5)) as (fig, (ax1, ax2)):
        levels = np.arange(-1.0, 3.01, 0.25)
        cs = ax1.contourf(BONDS, HEIGHTS, reference, levels=levels, cmap="viridis", extend="both")
        fig.colorbar(cs, ax=ax1, label="GFN1-xTB energy (eV, far molecule = 0)")
        ax1.set_xlabel("H–H distance r (Å)")
        ax1.set_ylabel("height Z above the top layer (Å)")
        ax1.set_title("oracle elbow, H2 over a bridge of Cu(111)")
        ax2.plot(BONDS, np.nanmin(reference, axis=0), "k-o", label="GFN1-xTB")
        for arm in dict.fromkeys(r["arm"] for r in rows):
            last = [r for r in rows if r["arm"] == arm][-1]
            grid = np.asarray(last["grid"])
            ax2.plot(BONDS, grid.min(axis=0), "--.", label=f"{arm} ({last['labels']} labels)")
        ax2.set_xlabel("H–H distance r (Å)")
        ax2.set_ylabel("lowest energy over heights (eV)")
        ax2.legend(fontsize=7)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+", help="campaign directories")
    args = parser.parse_args()
    out = args.folders[0].parent
    frames = labelled_elbow(out / "h2cu-elbow.extxyz")
    reference = energy_grid(frames, [a.info["REF_energy"] for a in frames])
    start, end = end_points(reference)
    ref_barrier = minimax_barrier(reference, start, end)
    console.print(
        f"elbow: {len(frames)} frames; GFN1-xTB barrier {ref_barrier:.2f} eV from the far "
        f"molecule to Z = {HEIGHTS[end[0]]} Å, r = {BONDS[end[1]]} Å "
        f"({reference[end]:.2f} eV: the dissociated well)"
    )
    rows = [r for folder in args.folders for r in evaluate_folder(folder, frames, reference)]
    table = Table(title="H2/Cu(111) elbow: committee against GFN1-xTB")
    ref_well = dissociated_energy(reference)
    columns = (
        "arm",
        "labels",
        "F MAE meV/Å",
        "E RMSE meV",
        "barrier eV",
        "error",
        "well eV",
        "error",
    )
    for column in columns:
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(
            r["arm"],
            str(r["labels"]),
            f"{r['force_mae']:.0f}",
            f"{r['energy_rmse']:.0f}",
            f"{r['barrier']:.2f}",
            f"{r['barrier'] - ref_barrier:+.2f}",
            f"{r['dissociated']:.2f}",
            f"{r['dissociated'] - ref_well:+.2f}",
        )
    console.print(table)
    plot(rows, reference, out / "h2cu_elbow.png")
    (out / "h2cu_elbow.json").write_text(
        json.dumps({"reference_barrier": ref_barrier, "reference_well": ref_well, "rows": rows})
    )
    last = {r["arm"]: r for r in rows}  # each folder's last committee
    print(
        f"last committees, barrier / dissociated-well error (oracle {ref_barrier:.2f} / "
        f"{ref_well:.2f} eV): "
        + ", ".join(
            f"{a} {r['barrier'] - ref_barrier:+.2f} / {r['dissociated'] - ref_well:+.2f} eV"
            for a, r in last.items()
        )
    )


if __name__ == "__main__":
    main()
