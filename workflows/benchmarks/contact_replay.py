"""Replay the contact rule on a finished campaign's stored pools: absolute versus relative.

For every iteration of the campaign in ``FOLDER``, takes the explored frames that the selection
could have bought (below that iteration's ``trust_hi``, through the default sanity filters),
the training labels bought before it, and prints the frame each ``contact_deficit`` mode would
have picked first: its element pair, that pair's shortest contact against the labelled one, and
the committee's max force std there (``--margin``: the ``contact_margin`` of both modes). Only
the first pick of each iteration is replayed; later iterations' pools are the campaign's own,
so this shows where the two rules part, not where a campaign run with the other rule would
have gone::

    .venv/bin/python workflows/benchmarks/contact_replay.py \\
        workflows/benchmarks/results/selection_v4/frostline-contact
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pymatgen.io.ase import AseAtomsAdaptor
from rich.console import Console
from rich.table import Table

from frostline.registry.queries import open_campaign_dir
from frostline.schemas import CandidateStructure, as_structure
from frostline.select.contacts import CUTOFF, DEFICITS, ContactIndex, Pair, shortest_contacts
from frostline.select.filters import SanityLimits, candidate_sanity


def first_pick(
    index: ContactIndex, contacts: list[dict[Pair, float]], mode: str, margin: float
) -> tuple[int, Pair, float] | None:
    """(frame, pair, deficit) of the largest contact deficit in ``mode`` (None: none > margin)."""
    best = max(range(len(contacts)), key=lambda i: index.deficit(contacts[i], mode), default=None)
    if best is None or index.deficit(contacts[best], mode) <= margin:
        return None
    single = {p: index.deficit({p: d}, mode) for p, d in contacts[best].items()}
    pair = max(single, key=single.get)
    return best, pair, single[pair]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a finished campaign directory")
    parser.add_argument(
        "--margin", type=float, default=0.02, help="contact_margin (Å, or a fraction)"
    )
    args = parser.parse_args()
    records = open_campaign_dir(args.folder)
    campaign = records.find("campaigns")[0]["campaign"]
    docs = records.job_store.docs_store
    table = Table(title=f"first contact pick per iteration, {args.folder.name}")
    for column in ("iteration", "trust_hi", "frames", "train labels", *DEFICITS):
        table.add_column(column, justify="right")
    iteration = 0
    while True:
        explored = docs.query_one({"name": f"explore {iteration}"}, ["output"])
        selected = docs.query_one({"name": f"select {iteration}"}, ["output"])
        if explored is None or selected is None:
            break
        hi = selected["output"]["trust_hi"]
        frames = [CandidateStructure.model_validate(c) for c in explored["output"]["candidates"]]
        frames = [
            c
            for c in frames
            if c.max_force_std < hi and candidate_sanity(c, SanityLimits()) is None
        ]
        labelled = records.find(
            "labelled",
            {
                "campaign": campaign,
                "status": "ok",
                "role": "train",
                "provenance.iteration": {"$lt": iteration},
            },
        )
        index = ContactIndex(
            AseAtomsAdaptor.get_atoms(as_structure(d["structure"])) for d in labelled
        )
        atoms = [AseAtomsAdaptor.get_atoms(as_structure(c.structure)) for c in frames]
        contacts = [shortest_contacts(a, index.cutoff) for a in atoms]
        cells = []
        for mode in DEFICITS:
            pick = first_pick(index, contacts, mode, args.margin)
            if pick is None:
                cells.append("none")
                continue
            i, pair, _ = pick
            labelled_contact = index.shortest.get(pair, CUTOFF)
            cells.append(
                f"{'-'.join(pair)} {contacts[i][pair]:.2f} vs {labelled_contact:.2f} Å "
                f"(std {frames[i].max_force_std:.2f})"
            )
        table.add_row(str(iteration), f"{hi:.2f}", str(len(frames)), str(len(labelled)), *cells)
        iteration += 1
    Console().print(table)


if __name__ == "__main__":
    main()
