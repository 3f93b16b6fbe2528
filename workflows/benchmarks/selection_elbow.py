"""The H2/Cu(111) elbow barrier of a selection campaign's final model (``selection.py``).

The final model is the committee of the last iteration the comparison reads (``--iterations``
N: iteration index N - 1, trained on the labels bought before it), scored on the elbow set of
``h2cu_elbow.py`` (its barrier code, its cached GFN1-xTB labels). It is read from the
campaign's store when the folder is there. A campaign known only from its archive (the folder
is gone with its models, e.g. a random campaign reused from an earlier results folder) is
fine-tuned again: the campaign's own ``FineTuneMaker`` (its stored config and seed) on the
same training labels in their stored order, at the same iteration index (hence the same member
seeds and subsets), in a temporary store. Its validation force MAE is kept beside the one the
campaign recorded for that iteration: equal, the retrained model is the campaign's; otherwise
the difference says how far it is from it.

Each result is cached in ``OUT/FOLDER.elbow.json`` (committed with the results), keyed by the
elbow set's digest and the iteration, so re-printing the benchmark trains and predicts nothing.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
from ase import Atoms

sys.path.insert(0, str(Path(__file__).resolve().parent))
from campaign_record import CampaignRecord, has_store  # noqa: E402
from h2cu_elbow import (  # noqa: E402
    dissociated_energy,
    elbow_row,
    end_points,
    energy_grid,
    labelled_elbow,
    minimax_barrier,
)
from h2cu_elbow import plot as plot_elbow  # noqa: E402

ELBOW_SUFFIX = ".elbow.json"


class ElbowSet(NamedTuple):
    """The labelled elbow frames, the oracle's energy grid, barrier and dissociated well (eV)."""

    frames: list[Atoms]
    reference: np.ndarray
    barrier: float
    well: float
    key: str


def load_elbow_set(path: Path, key_of) -> ElbowSet:
    """The elbow set cached in ``path`` (labelled by GFN1-xTB if missing); ``key_of``: the
    digest of a labelled test set (``selection.test_set_key``)."""
    frames = labelled_elbow(path)
    reference = energy_grid(frames, [a.info["REF_energy"] for a in frames])
    start, end = end_points(reference)
    barrier = minimax_barrier(reference, start, end)
    return ElbowSet(frames, reference, barrier, dissociated_energy(reference), key_of(frames))


def elbow_cache_path(out: Path, folder: Path) -> Path:
    """``OUT/FOLDER.elbow.json``: the final model's elbow figures of the campaign ``FOLDER``."""
    return out / (folder.name + ELBOW_SUFFIX)


def usable_elbow(doc: dict | None, key: str, index: int) -> bool:
    """Whether a cached elbow result was measured on this elbow set for iteration ``index``."""
    return bool(doc) and doc.get("elbow_set") == key and doc.get("iteration") == index


def stored_final_calculator(folder: Path, index: int):
    """The committee that iteration ``index`` of the campaign in ``folder`` trained."""
    from frostline.finetune.committee import load_committee
    from frostline.registry.queries import iteration_committees, open_campaign_dir

    records = open_campaign_dir(folder)
    for it, members in iteration_committees(records):
        if it["index"] == index:
            return load_committee(records, members, device="cpu")
    raise SystemExit(f"{folder}: no committee stored for iteration {index}")


def retrained_final_row(record: CampaignRecord, index: int, elbow: ElbowSet) -> dict:
    """Fine-tune iteration ``index``'s committee of an archived campaign again and score it.

    Returns the elbow row plus ``validation_force_mae`` (the retrained committee's) and
    ``recorded_validation_force_mae`` (the campaign's own for that iteration).
    """
    from jobflow import run_locally

    from frostline.config import StoreConfig, parse_config
    from frostline.finetune.committee import load_committee
    from frostline.finetune.foundation import resolve_foundation
    from frostline.finetune.jobs import FineTuneMaker
    from frostline.flows.active_learning import section_fields
    from frostline.schemas import FineTuneResult
    from frostline.store import Records, make_job_store

    config = parse_config(record.config, "archived campaign.yaml")
    it = record.status["iterations"][index]
    train = [s for s in record.structures("train") if s.provenance.iteration < index]
    if len(train) != it["n_labelled"]:
        raise SystemExit(f"iteration {index} trained on {it['n_labelled']} labels, the archive "
                         f"holds {len(train)} bought before it")  # fmt: skip
    maker = FineTuneMaker(**section_fields(config.finetune, FineTuneMaker, seed=config.seed))
    foundation = resolve_foundation(config.foundation)
    with tempfile.TemporaryDirectory(prefix="selection-elbow-") as tmp:
        store = make_job_store(StoreConfig(), Path(tmp))
        job = maker.make(foundation, train, record.structures("validation"), config.name, index,
                         it["freeze_level"], it["finetune_lr"])  # fmt: skip
        run_locally(job, store=store, root_dir=Path(tmp) / "jobs", create_folders=True, log=False)
        store.connect()
        result = FineTuneResult.model_validate(job.output.resolve(store))
        calc = load_committee(Records(store).connect(), result.models, device="cpu")
        row = elbow_row(calc, elbow.frames, elbow.reference)
    metrics = result.committee_metrics
    return {
        **row,
        "validation_force_mae": metrics.force_mae_mev_per_a if metrics else None,
        "recorded_validation_force_mae": it["force_mae_mev_per_a"],
    }


def final_elbow(
    folder: Path, out: Path, record: CampaignRecord, iterations: int, elbow: ElbowSet
) -> dict:
    """The elbow figures of the campaign's model at iteration ``iterations - 1`` (cached).

    ``source``: ``store`` (the campaign's own model) or ``retrained`` (its archive's labels
    fine-tuned again, see the module docstring); ``barrier_error`` / ``well_error``: eV,
    model minus oracle.
    """
    cache = elbow_cache_path(out, folder)
    index = iterations - 1
    if cache.exists():
        doc = json.loads(cache.read_text())
        if usable_elbow(doc, elbow.key, index):
            return doc
    if has_store(folder):
        calc = stored_final_calculator(folder, index)
        row = {**elbow_row(calc, elbow.frames, elbow.reference), "source": "store"}
    else:
        print(f"fine-tuning {folder.name}'s iteration {index} again for the elbow ...", flush=True)
        row = {**retrained_final_row(record, index, elbow), "source": "retrained"}
    doc = {
        "elbow_set": elbow.key,
        "iteration": index,
        "labels": record.status["iterations"][index]["n_labelled"],
        **row,
        "barrier_error": row["barrier"] - elbow.barrier,
        "well_error": row["dissociated"] - elbow.well,
    }
    cache.write_text(json.dumps(doc))
    return doc


def plot_final_elbows(elbows: dict[str, list[dict]], elbow: ElbowSet, path: Path) -> Path:
    """``h2cu_elbow.py``'s figure for every arm's and seed's final model (the oracle's elbow;
    the lowest energy over heights per bond length, oracle and models)."""
    rows = [
        {**doc, "arm": f"{arm} seed {doc.get('seed', 0)}"}
        for arm, docs in elbows.items()
        for doc in docs
    ]
    plot_elbow(rows, elbow.reference, path)
    return path
