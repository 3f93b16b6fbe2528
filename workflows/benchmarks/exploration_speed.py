"""Exploration speed: committee cost and batched MD throughput, side by side in one run.

    .venv/bin/python workflows/benchmarks/exploration_speed.py [--steps 30] [--replicas 32]
                                                               [--medium] [--device cpu]

Committee members are copies of the mini foundation (32x0e, 2 layers) whose readouts and E0s are
perturbed (what ``--freeze 6`` fine-tuning changes); ``--medium`` adds a randomly initialised MACE
of MACE-MP-0 medium width (128x0e+128x1o) with the same treatment. Systems: 14-atom H2/Cu(111)
slabs. Rows (MD steps per second of one 14-atom system; batched rows count replica-steps):

- single model: ASE Langevin with mace's ``MACECalculator`` (one model);
- (a) K independent members: ASE Langevin with ``MACECalculator(model_paths=[K paths])``;
- (b) shared trunk: ASE Langevin with ``SharedCommitteeCalculator`` (mean forces every step,
  member forces on the frames sampled every ``--sample-every`` steps, as exploration does), and
  the same with member forces on every step; the same calculator with K=1 is the single-model
  reference of the committee cost line;
- (c) ``--replicas`` replicas in one batch (``BatchedLangevin``, K-member shared-trunk committee)
  against the same integrator and committee with one replica at a time (both float64), and the
  batch in float32 (``explore.dtype: float32``), compared in the summary with what
  ``engine: ase`` runs (K independent members in float64, one replica at a time).

Ends with ``batched / sequential throughput = Y`` and, last, ``committee cost K=4 / single model
= X`` (per-step time of (b) as exploration runs it over that of the K=1 committee).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import mace  # noqa: F401  (import mace before e3nn)
import numpy as np
import torch
from mace.calculators import MACECalculator

from frostline.explore.batched import BatchedLangevin
from frostline.explore.samplers import langevin_frames
from frostline.explore.shared_committee import (
    SharedCommittee,
    SharedCommitteeCalculator,
    load_mace_model,
    perturbed_member,
)
from frostline.finetune.foundation import MINI_FOUNDATION, mace_mp_medium_sized
from frostline.structures import cu111_slab, h2_on_slab

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import timed  # noqa: E402


def medium_model() -> torch.nn.Module:
    """A randomly initialised MACE with MACE-MP-0 medium's widths (H, Cu)."""
    return mace_mp_medium_sized([1, 29])


def write_members(base: torch.nn.Module, k: int, folder: Path, tag: str) -> list[str]:
    paths = []
    for i in range(k):
        path = folder / f"{tag}-{i}.model"
        torch.save(perturbed_member(base, seed=i, scale=0.05), path)
        paths.append(str(path))
    return paths


def step_rate(fn: Callable[[], int]) -> float:
    """Steps per second of ``fn`` (which returns how many steps it made)."""
    seconds, n = timed(fn)
    return n / seconds


def ase_rate(calc, start, steps: int, sample_every: int) -> float:
    list(langevin_frames(start, calc, 600.0, 2, 1, seed=99))  # warm-up
    return step_rate(
        lambda: (
            list(langevin_frames(start, calc, 600.0, steps, sample_every, abort_force_std=1e9)),
            steps,
        )[1]
    )


def batched_rate(committee, starts, steps: int, sample_every: int) -> float:
    n = len(starts)
    md = BatchedLangevin(committee, starts, [600.0] * n, list(range(n)))
    md.run(2, 1, abort_force_std=1e9)  # warm-up (and one sampled step)
    md = BatchedLangevin(committee, starts, [600.0] * n, list(range(n)))
    return step_rate(lambda: (md.run(steps, sample_every, abort_force_std=1e9), steps * n)[1])


def run(label: str, base: torch.nn.Module, args, folder: Path, device: str) -> dict[str, float]:
    k = args.members
    paths = write_members(base, k, folder, label)
    rng = np.random.default_rng(1)
    starts = [h2_on_slab(cu111_slab(), rng) for _ in range(args.replicas)]
    start = starts[0]
    steps, every = args.steps, args.sample_every
    rows: dict[str, float] = {}
    mc = dict(device=device, default_dtype="float64")
    rows["single model, MACECalculator (ASE)"] = ase_rate(
        MACECalculator(model_paths=paths[0], **mc), start, steps, every
    )
    rows[f"(a) K={k} independent, MACECalculator (ASE)"] = ase_rate(
        MACECalculator(model_paths=paths, **mc), start, steps, every
    )
    shared = SharedCommittee.from_paths(paths, device=device)
    assert shared.shared_trunk, "members were built to share their trunk"
    one = SharedCommittee.from_paths(paths[:1], device=device)
    rows["single model, SharedCommitteeCalculator K=1 (ASE)"] = ase_rate(
        SharedCommitteeCalculator(one), start, steps, every
    )
    rows[f"(b) K={k} shared trunk, member forces every {every} (ASE)"] = ase_rate(
        SharedCommitteeCalculator(shared), start, steps, every
    )
    rows[f"(b) K={k} shared trunk, member forces every step (ASE)"] = ase_rate(
        SharedCommitteeCalculator(shared, member_forces="always"), start, steps, every
    )
    independent = SharedCommittee.from_paths(paths, device=device, share=False)
    rows[f"    K={k} no sharing (fallback path) (ASE)"] = ase_rate(
        SharedCommitteeCalculator(independent), start, steps, every
    )
    n_seq = max(1, min(args.sequential, len(starts)))
    seq = [batched_rate(shared, [s], steps, every) for s in starts[:n_seq]]
    rows[f"(c) batched MD, 1 replica at a time (K={k} shared)"] = float(np.mean(seq))
    rows[f"(c) batched MD, {len(starts)} replicas in one batch (K={k} shared)"] = batched_rate(
        shared, starts, steps, every
    )
    shared32 = SharedCommittee.from_paths(paths, device=device, dtype="float32")
    rows[f"(c) batched MD, {len(starts)} replicas in one batch (K={k} shared), float32"] = (
        batched_rate(shared32, starts, steps, every)
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="timed MD steps per measurement")
    parser.add_argument("--sample-every", type=int, default=10)
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--replicas", type=int, default=32)
    parser.add_argument("--sequential", type=int, default=4, help="replicas timed one at a time")
    parser.add_argument("--medium", action="store_true", help="also a 128x0e+128x1o MACE")
    parser.add_argument("--medium-steps", type=int, default=10, help="timed steps, medium model")
    parser.add_argument("--medium-replicas", type=int, default=8, help="batch, medium model")
    parser.add_argument("--device", default="auto", help="auto = cpu, plus cuda when present")
    args = parser.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if args.device != "auto":
        devices = [args.device]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; K={args.members}, "
        f"{args.steps} steps per row, member forces every {args.sample_every} steps, float64"
    )
    models = [("mini 32x0e", load_mace_model(MINI_FOUNDATION), args)]
    if args.medium:
        medium_args = argparse.Namespace(
            **{**vars(args), "steps": args.medium_steps, "replicas": args.medium_replicas}
        )
        models.append(("medium-like 128x0e+128x1o", medium_model(), medium_args))
    results: dict[tuple[str, str], dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for device in devices:
            for label, base, margs in models:
                tag = f"{label.split()[0]}-{device}"
                results[(label, device)] = run(tag, base, margs, Path(tmp), device)
                results[(label, device)]["_replicas"] = margs.replicas
    width = max(len(r) for rows in results.values() for r in rows if not r.startswith("_"))
    replicas = {key: int(rows.pop("_replicas")) for key, rows in results.items()}
    for (label, device), rows in results.items():
        print(f"\n{label} on {device}")
        print(f"{'run':<{width}}  steps/s   ms/step")
        for name, rate in rows.items():
            print(f"{name:<{width}}  {rate:7.2f}  {1000 / rate:8.1f}")
    k = args.members
    summary = []
    for (label, device), rows in results.items():
        n = replicas[(label, device)]
        batched = rows[f"(c) batched MD, {n} replicas in one batch (K={k} shared)"]
        sequential = rows[f"(c) batched MD, 1 replica at a time (K={k} shared)"]
        cost = (
            rows["single model, SharedCommitteeCalculator K=1 (ASE)"]
            / rows[f"(b) K={k} shared trunk, member forces every {args.sample_every} (ASE)"]
        )
        independent = (
            rows["single model, MACECalculator (ASE)"]
            / rows[f"(a) K={k} independent, MACECalculator (ASE)"]
        )
        engines = (
            rows[f"(c) batched MD, {n} replicas in one batch (K={k} shared), float32"]
            / rows[f"(a) K={k} independent, MACECalculator (ASE)"]
        )
        summary.append((label, device, batched / sequential, cost, independent, engines))
    print()
    for label, device, y, x, ind, eng in summary:
        print(
            f"{label} on {device}: batched / sequential = {y:.2f}, committee cost shared = "
            f"{x:.2f}, independent (MACECalculator) = {ind:.2f}; engine batched float32 / "
            f"engine ase float64 (K independent) = {eng:.2f}"
        )
    label, device, y, x, _, _ = summary[0]
    print(f"batched / sequential throughput = {y:.2f}")
    print(f"committee cost K={k} / single model = {x:.2f}")


if __name__ == "__main__":
    main()
