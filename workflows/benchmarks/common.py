"""Helpers shared by the benchmark scripts: timing, figures and the console.

A script imports it next to itself (the folder is not a package)::

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import figure, timed  # noqa: E402

``campaign_record`` (same folder) holds the campaign records (labels per iteration, archives).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DPI = 120


def update_json(path: Path, update: Callable[[dict], None], sort_keys: bool = True) -> dict:
    """Apply ``update`` to the JSON object in ``path`` (empty when missing) and write it whole,
    under an exclusive lock (``PATH.lock``): benchmark processes sharing a ledger each add
    their records to what the others wrote, and a reader never sees half a file. Returns the
    object written."""
    import fcntl
    import json

    with Path(f"{path}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(path.read_text()) if path.exists() else {}
        update(data)
        partial = Path(f"{path}.partial")
        partial.write_text(json.dumps(data, indent=1, sort_keys=sort_keys, default=str))
        partial.replace(path)
    return data


def wide_console():
    """A rich console as wide as the terminal, or 160 columns into a log file (rich's 80 wraps
    every table cell)."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 160)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """``(seconds, result)`` of one call of ``fn`` (wall clock, ``time.perf_counter``)."""
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def median_ms(fn: Callable[[int], Any], repeats: int, warmup: int = 2) -> tuple[float, Any]:
    """Median latency (ms) of ``fn(i)`` over ``repeats`` calls after ``warmup`` calls, and the
    last result."""
    for i in range(warmup):
        fn(i)
    times, result = [], None
    for i in range(repeats):
        seconds, result = timed(lambda i=i: fn(i))
        times.append(1000 * seconds)
    return statistics.median(times), result


@contextmanager
def figure(
    path: Path, ncols: int = 1, figsize: tuple[float, float] = (6, 4), nrows: int = 1
) -> Iterator[tuple[Any, Any]]:
    """``(fig, axes)`` of a new matplotlib figure (Agg backend), written to ``path`` (PNG,
    :data:`DPI`) after a tight layout when the block ends without an error; closed either way.
    ``axes``: one row as matplotlib gives it (an axis, or an array of ``ncols``); with
    ``nrows`` > 1 always a 2-d array (row, column)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=nrows == 1)
    try:
        yield fig, axes
        fig.tight_layout()
        fig.savefig(path, dpi=DPI)
    finally:
        plt.close(fig)


def oracle_md_frames(atoms, calc, temperature: float, steps: int, rng, first: int = 40,
                     every: int = 20) -> list:  # fmt: skip
    """Langevin MD (1 fs, friction 0.02/fs) of ``atoms`` with the oracle ``calc`` itself; a
    labelled frame (``REF_energy``, ``REF_forces``, ``temperature``) after ``first`` steps, then
    every ``every`` steps up to ``steps``: test frames no model chose."""
    import numpy as np
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    atoms = atoms.copy()
    atoms.calc = calc
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    dyn = Langevin(atoms, 1.0 * units.fs, temperature_K=temperature, friction=0.02, rng=rng)
    frames = []
    for step in range(first, steps + 1, every):
        dyn.run(first if step == first else every)
        frame = atoms.copy()
        frame.calc = None
        frame.info["REF_energy"] = float(atoms.get_potential_energy())
        frame.arrays["REF_forces"] = np.asarray(atoms.get_forces(), dtype=float)
        frame.info["temperature"] = temperature
        frames.append(frame)
    return frames
