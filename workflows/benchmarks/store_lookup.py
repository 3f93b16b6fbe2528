"""Job-output lookups on the embedded campaign store: frames inline vs. in the ``data`` store.

The embedded store (maggma ``MontyStore``, montydb on sqlite) has no indexes: every query
decodes every document of its collection. A campaign's ``outputs`` collection is dominated by
the exploration frames (H2/Cu(111), 12 iterations: 23 of its 25.7 MB, 240 frames of 14 atoms,
about 1.2 MB, per ``explore`` output), so each reference jobflow resolves and each memo
lookup paid for decoding them all (a replay of that campaign from its store: 294 of 387 s in
montydb's BSON decoding). ``ExploreMaker.make`` now keeps the
frames in the job store's ``data`` store (``@job(data="candidates")``).

This builds two embedded stores in a temporary folder, side by side, holding the same job
outputs shaped like that campaign's (per iteration one ``explore`` output of ``--frames``
frames and ``--small`` small outputs: labels, records, selection, ...), one with the frames
inline and one with them in the ``data`` store (written through ``JobStore.update`` with the
``save`` argument jobflow passes; the time to write them is shown, the inline store first),
then times, alternating the layouts: resolving a small output by uuid (what every job does for
its inputs), and loading one exploration's frames whole. Prints a table and, last,
``small-output lookup, frames inline / in the data store: X``.

    .venv/bin/python workflows/benchmarks/store_lookup.py [--iterations 12] [--frames 240]
        [--small 60] [--repeats 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid as uuidlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from ase.build import add_adsorbate, fcc111, molecule
from jobflow import JobStore
from monty.json import jsanitize
from rich.console import Console
from rich.progress import track
from rich.table import Table

from frostline.config import StoreConfig
from frostline.schemas import CandidateStructure, Provenance, as_structure_dict
from frostline.store import DATA_STORE, make_job_store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import timed  # noqa: E402

LAYOUTS = {"frames inline": {}, "frames in data store": {DATA_STORE: "candidates"}}


def slab_frames(n: int, rng: np.random.Generator) -> list[dict]:
    """``n`` rattled H2/Cu(111) frames (14 atoms) as stored candidate documents."""
    slab = fcc111("Cu", size=(2, 2, 3), vacuum=6.0)
    add_adsorbate(slab, molecule("H2"), 2.0, "ontop")
    frames = []
    for i in range(n):
        atoms = slab.copy()
        atoms.rattle(0.05, seed=int(rng.integers(1 << 31)))
        frames.append(
            jsanitize(
                CandidateStructure(
                    structure=as_structure_dict(atoms),
                    provenance=Provenance(iteration=i // 20, sampler="langevin", temperature=300.0),
                    max_force_std=float(rng.random()),
                    energy_std_per_atom=float(rng.random()) * 0.01,
                    max_force=float(rng.random()) * 3,
                ).model_dump(),
                strict=True,  # as jobflow stores it (numpy arrays of ``adsorbate_info``)
            )
        )
    return frames


def job_doc(name: str, output: dict) -> dict:
    """A job-output document as ``jobflow.Job.run`` writes it."""
    return {
        "uuid": str(uuidlib.uuid4()),
        "index": 1,
        "output": output,
        "completed_at": datetime.now(UTC).isoformat(),
        "metadata": {},
        "hosts": [str(uuidlib.uuid4())],
        "name": name,
    }


def fill(store: JobStore, save: dict, args: argparse.Namespace, seed: int) -> tuple[list, list]:
    """Write the campaign-shaped outputs; returns the small and the explore outputs' uuids."""
    rng = np.random.default_rng(seed)
    small, explore = [], []
    for it in track(range(args.iterations), description=f"filling ({save or 'inline'})"):
        doc = job_doc(
            f"explore {it}",
            {
                "candidates": slab_frames(args.frames, rng),
                "n_trajectories": 12,
                "n_steps_total": 2400,
                "n_aborted": 0,
                "wall_time_s": 30.0,
            },
        )
        store.update(doc, key=["uuid", "index"], save=save)
        explore.append(doc["uuid"])
        for k in range(args.small):
            out = {"energy": float(rng.normal()), "forces": rng.normal(size=(14, 3)).tolist()}
            doc = job_doc(f"label {it}.{k}", out)
            store.update(doc, key=["uuid", "index"])
            small.append(doc["uuid"])
    return small, explore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--frames", type=int, default=240, help="frames per explore output")
    parser.add_argument("--small", type=int, default=60, help="small outputs per iteration")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    console = Console(width=120)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="frostline-store-lookup-") as tmp:
        stores, ids, sizes, fill_s = {}, {}, {}, {}
        for layout, save in LAYOUTS.items():
            folder = Path(tmp) / layout.replace(" ", "-")
            store = make_job_store(StoreConfig(kind="embedded"), folder)
            store.connect()
            stores[layout] = store
            t0 = time.perf_counter()
            ids[layout] = fill(store, save, args, seed=0)
            fill_s[layout] = time.perf_counter() - t0
            sizes[layout] = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        times = {layout: {"small": [], "frames": []} for layout in LAYOUTS}
        for _ in track(range(args.repeats), description="timing lookups"):
            for layout, store in stores.items():  # alternate: same machine load for both
                small, explore = ids[layout]
                target = small[int(rng.integers(len(small)))]
                times[layout]["small"].append(timed(lambda s=store, u=target: s.get_output(u))[0])
                frames = explore[int(rng.integers(len(explore)))]
                times[layout]["frames"].append(
                    timed(lambda s=store, u=frames: s.get_output(u, load=True)["candidates"])[0]
                )
        for layout, store in stores.items():  # both layouts give the same frames back
            one = store.get_output(ids[layout][1][0], load=True)
            assert len(one["candidates"]) == args.frames, layout
            store.close()

    table = Table(
        title=(
            f"embedded store, {args.iterations} iterations x ({args.frames} frames + "
            f"{args.small} small outputs), median of {args.repeats}"
        )
    )
    columns = ("layout", "store MB", "writing (s)", "small output (ms)", "one exploration (ms)")
    for column in columns:
        table.add_column(column, justify="right")
    medians = {
        layout: {k: 1000 * statistics.median(v) for k, v in by.items()}
        for layout, by in times.items()
    }
    for layout in LAYOUTS:
        table.add_row(
            layout,
            f"{sizes[layout] / 1e6:.1f}",
            f"{fill_s[layout]:.1f}",
            f"{medians[layout]['small']:.1f}",
            f"{medians[layout]['frames']:.1f}",
        )
    console.print(table)
    inline, data = (medians[layout] for layout in LAYOUTS)
    print(f"frames lookup, inline / in the data store: {inline['frames'] / data['frames']:.2f}")
    print(f"small-output lookup, frames inline / in the data store: "
          f"{inline['small'] / data['small']:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
