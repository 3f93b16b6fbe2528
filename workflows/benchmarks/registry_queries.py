"""Latency of registry queries on a MongoDB server (SecantusDB), with and without indexes.

Starts a SecantusDB server in a temporary folder, inserts 10,000 model documents and 100,000
labelled-structure documents (small synthetic structures, batched inserts) times ``--scale``,
then times the queries behind the CLI (``models list`` filtered by elements + max force MAE, by
campaign, ``models show``, labelled count per campaign) through frostline's registry API:
first with the indexes frostline creates, then after dropping them. Prints a table and, last,
``median filtered-list latency: X ms`` (with indexes; goal <= 50 ms).

    .venv/bin/python workflows/benchmarks/registry_queries.py [--scale 0.05] [--repeats 25]
        [--repeats-unindexed 5]
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from rich.console import Console
from rich.table import Table

from frostline.registry.models import get_model, list_models
from frostline.registry.stores import open_store
from frostline.schemas import as_structure_dict
from frostline.store import Records

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_ms  # noqa: E402

ELEMENT_SETS = [
    ["Cu", "H"],
    ["Cu", "H", "O"],
    ["Cu"],
    ["H", "Pt"],
    ["H", "O", "Pt"],
    ["Ni", "O"],
    ["Au", "C", "O"],
    ["Ag", "H"],
    ["Al", "Cu"],
    ["C", "H", "O", "Pd"],
    ["Cu", "H", "Ni"],
    ["H", "O"],
]
KINDS = ["committee-member"] * 4 + ["mace-finetuned", "mace-foundation"]
BATCH = 2000


def _hash(*parts: Any) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def model_docs(n: int, n_campaigns: int, rng: np.random.Generator) -> list[dict]:
    """Synthetic model documents shaped like ``ModelDoc.model_dump(mode="json")``."""
    docs = []
    for i in range(n):
        c = int(rng.integers(n_campaigns))
        kind = KINDS[int(rng.integers(len(KINDS)))]
        mae = float(rng.uniform(5, 150))
        sha = _hash("model", i) * 2
        docs.append(
            {
                "model_id": f"c{c:04d}-m{i:06d}-{sha[:8]}",
                "kind": kind,
                "campaign": None if kind == "mace-foundation" else f"c{c:04d}",
                "iteration": int(rng.integers(10)),
                "member": int(rng.integers(4)),
                "elements": ELEMENT_SETS[int(rng.integers(len(ELEMENT_SETS)))],
                "foundation": "mini-foundation.model",
                "freeze_level": 6,
                "trainable_parameters": 12_000,
                "total_parameters": 150_000,
                "n_train": 40,
                "training_set_hashes": [_hash("s", i, k) for k in range(40)],
                "metrics": {
                    "n_structures": 20,
                    "energy_mae_mev_per_atom": mae / 10,
                    "energy_rmse_mev_per_atom": mae / 8,
                    "force_mae_mev_per_a": mae,
                    "force_rmse_mev_per_a": mae * 1.3,
                },
                "file": {"filename": "member0.model", "sha256": sha, "size_bytes": 500_000},
                "created": "2025-01-01T00:00:00Z",
            }
        )
    return docs


def labelled_docs(start: int, n: int, n_campaigns: int, rng: np.random.Generator) -> list[dict]:
    """Synthetic labelled-structure documents (3-4 atoms, labels, provenance)."""
    templates = [
        as_structure_dict(Atoms(s, positions=rng.uniform(0, 6, (3, 3)), cell=[6.0] * 3, pbc=True))
        for s in ("Cu2H", "CuHO", "PtH2")
    ]
    docs = []
    for i in range(start, start + n):
        structure = copy.deepcopy(templates[i % len(templates)])
        coords = rng.uniform(0, 6, (len(structure["sites"]), 3)).round(4)
        for site, xyz in zip(structure["sites"], coords, strict=True):
            site["xyz"] = xyz.tolist()
            site["abc"] = (xyz / 6).tolist()
        ok = rng.random() > 0.03
        docs.append(
            {
                "structure": structure,
                "energy": float(rng.normal(-10, 1)) if ok else None,
                "forces": rng.normal(size=(len(coords), 3)).round(5).tolist() if ok else None,
                "stress": rng.normal(size=6).round(5).tolist() if ok else None,
                "oracle": "emt",
                "oracle_settings_hash": "0123456789abcdef",
                "structure_hash": _hash("label", i),
                "provenance": {"iteration": i % 10, "sampler": "langevin", "temperature": 300.0},
                "role": "validation" if rng.random() < 0.1 else "train",
                "status": "ok" if ok else "failed",
                "reason": None if ok else "oracle job failed",
                "campaign": f"c{int(rng.integers(n_campaigns)):04d}",
            }
        )
    return docs


def insert(records: Records, collection: str, docs: list[dict]) -> None:
    coll = records[collection]._collection  # the pymongo collection behind the maggma store
    for i in range(0, len(docs), BATCH):
        coll.insert_many(docs[i : i + BATCH], ordered=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of 10k/100k docs")
    parser.add_argument("--repeats", type=int, default=25, help="timed calls per query")
    parser.add_argument(
        "--repeats-unindexed", type=int, default=5, help="timed calls per query without indexes"
    )
    args = parser.parse_args()
    from secantus import SecantusDBServer

    n_models = max(10, int(10_000 * args.scale))
    n_labelled = max(100, int(100_000 * args.scale))
    n_campaigns = max(2, int(200 * args.scale))
    rng = np.random.default_rng(7)
    console = Console(highlight=False)
    with tempfile.TemporaryDirectory(prefix="secantus-bench-") as folder:
        server = SecantusDBServer(storage_path=folder, port=0)
        server.start()
        try:
            records = open_store(uri=server.uri, database="bench")  # as the CLI: with indexes
            start = time.perf_counter()
            models = model_docs(n_models, n_campaigns, rng)
            insert(records, "model_docs", models)
            for s in range(0, n_labelled, 10 * BATCH):
                insert(
                    records,
                    "labelled",
                    labelled_docs(s, min(10 * BATCH, n_labelled - s), n_campaigns, rng),
                )
            console.print(
                f"inserted {n_models:,} model docs and {n_labelled:,} labelled structures "
                f"({n_campaigns} campaigns) in {time.perf_counter() - start:.1f} s"
            )
            ids = [m["model_id"] for m in models]
            camps = [f"c{i:04d}" for i in range(n_campaigns)]

            queries: dict[str, Callable[[int], Any]] = {
                "models list --elements Cu,H --max-force-mae 30": lambda i: list_models(
                    records, elements=ELEMENT_SETS[i % 2], max_force_mae=30.0 + i % 5, limit=50
                ),
                "models list --elements H --elements-mode subset": lambda i: list_models(
                    records, elements=["H"], elements_mode="subset", limit=50
                ),
                "models list --campaign C": lambda i: list_models(
                    records, campaign=camps[(7 * i) % n_campaigns], limit=50
                ),
                "models show ID": lambda i: get_model(records, ids[(7919 * i) % n_models]),
                "labelled count (campaign, train, ok)": lambda i: records["labelled"].count(
                    {"campaign": camps[(13 * i) % n_campaigns], "role": "train", "status": "ok"}
                ),
            }
            results: dict[str, dict[str, tuple[float, Any]]] = {}
            for label in ("with indexes", "without indexes"):
                if label == "without indexes":
                    for name in ("model_docs", "labelled"):
                        records[name]._collection.drop_indexes()
                n = args.repeats if label == "with indexes" else args.repeats_unindexed
                results[label] = {q: median_ms(fn, n) for q, fn in queries.items()}
            records.close()
        finally:
            server.stop()

    table = Table(
        title=f"registry queries on SecantusDB: {n_models:,} models, {n_labelled:,} labels",
        caption=f"median ms of {args.repeats} calls ({args.repeats_unindexed} without indexes)",
    )
    for col in ("query", "results", "with indexes", "without indexes"):
        table.add_column(col, justify="left" if col == "query" else "right")
    for q in queries:
        res = results["with indexes"][q][1]
        n = len(res) if isinstance(res, list) else (1 if isinstance(res, dict) else res)
        table.add_row(
            q,
            str(n),
            f"{results['with indexes'][q][0]:.1f}",
            f"{results['without indexes'][q][0]:.1f}",
        )
    console.print(table)
    filtered = results["with indexes"]["models list --elements Cu,H --max-force-mae 30"][0]
    print(f"median filtered-list latency: {filtered:.1f} ms")


if __name__ == "__main__":
    main()
