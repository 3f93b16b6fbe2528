"""Replay the contact rule on a finished campaign's stored pools: absolute versus relative.

For every iteration of the campaign in ``FOLDER``, takes the explored frames that the selection
could have bought (below that iteration's ``trust_hi``, through the campaign's sanity filters),
the training labels bought before it, and prints the frame each ``contact_deficit`` mode would
have picked first (``plan_batch`` itself, one pick): its element pair, that pair's shortest
contact against the labelled one, and the committee's max force std there (``--margin``: the
``contact_margin`` of both modes). Only the first pick of each iteration is replayed; later
iterations' pools are the campaign's own, so this shows where the two rules part, not where a
campaign run with the other rule would have gone::

    .venv/bin/python workflows/benchmarks/contact_replay.py \\
        workflows/benchmarks/results/selection_v4/frostline-contact
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pymatgen.io.ase import AseAtomsAdaptor
from rich.console import Console
from rich.table import Table

from frostline.config import load_config
from frostline.finetune.foundation import resolve_foundation
from frostline.flows.active_learning import ActiveLearningMaker
from frostline.flows.campaign import CONFIG_COPY
from frostline.registry.queries import open_campaign_dir
from frostline.schemas import CandidateStructure, as_structure
from frostline.select.batch import Fate, plan_batch
from frostline.select.contacts import CUTOFF, DEFICITS, ContactIndex, shortest_contacts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a finished campaign directory")
    parser.add_argument(
        "--margin", type=float, default=0.02, help="contact_margin (Å, or a fraction)"
    )
    args = parser.parse_args()
    config = load_config(args.folder / CONFIG_COPY)
    maker = ActiveLearningMaker.from_config(config, resolve_foundation(config.foundation))
    limits = maker.select.limits
    records = open_campaign_dir(args.folder)
    campaign = records.find("campaigns")[0]["campaign"]
    job_store = records.job_store
    table = Table(title=f"first contact pick per iteration, {args.folder.name}")
    for column in ("iteration", "trust_hi", "frames", "train labels", *DEFICITS):
        table.add_column(column, justify="right")
    iteration = 0
    while True:
        # load=True: the frames may sit in the job store's ``data`` store (a blob reference)
        explored = job_store.query_one({"name": f"explore {iteration}"}, ["output"], load=True)
        selected = job_store.query_one({"name": f"select {iteration}"}, ["output"])
        if explored is None or selected is None:
            break
        lo, hi = selected["output"]["trust_lo"], selected["output"]["trust_hi"]
        frames = [CandidateStructure.model_validate(c) for c in explored["output"]["candidates"]]
        labelled = records.find(
            "labelled",
            {
                "campaign": campaign,
                "status": "ok",
                "role": "train",
                "provenance.iteration": {"$lt": iteration},
            },
        )
        trained = [AseAtomsAdaptor.get_atoms(as_structure(d["structure"])) for d in labelled]
        index = ContactIndex(trained)
        cells, eligible = [], 0
        for mode in DEFICITS:
            plan = plan_batch(
                frames, lo, hi, limits, cap=1, trained=trained, contact_picks=1,
                contact_margin=args.margin, contact_deficit=mode,
            )  # fmt: skip
            eligible = sum(f not in (Fate.FAILED_FILTER, Fate.TOO_UNCERTAIN) for f in plan.fates)
            if not plan.contact:
                cells.append("none")
                continue
            frame = frames[plan.contact[0]]
            contacts = shortest_contacts(AseAtomsAdaptor.get_atoms(as_structure(frame.structure)))
            pair = max(contacts, key=lambda p: index.deficit({p: contacts[p]}, mode))
            cells.append(
                f"{'-'.join(pair)} {contacts[pair]:.2f} vs {index.shortest.get(pair, CUTOFF):.2f}"
                f" Å (std {frame.max_force_std:.2f})"
            )
        table.add_row(str(iteration), f"{hi:.2f}", str(eligible), str(len(labelled)), *cells)
        iteration += 1
    Console().print(table)


if __name__ == "__main__":
    main()
