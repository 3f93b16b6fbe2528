"""Which epoch should a fine-tuned committee member keep? Campaign validation set vs 10% holdout.

mace-torch keeps the epoch with the lowest loss on its validation data. With
``finetune.checkpoint_on: holdout`` (the default) it holds out 10% of each member's own data for
that: one structure of a 9-structure subsample, which then never trains. With ``validation``
every member trains on all its data and the epoch is chosen on the campaign's validation
structures (20 in the demo).

This benchmark takes a finished campaign (e.g. the selection benchmark's ``random`` arm), rebuilds
its training sets at the given iterations, and trains the same committee (the campaign's fine-tune
settings, its freeze level, the same seeds and member subsets) both ways. Both are judged on an
independent test set (``--test``, e.g. the selection benchmark's oracle-MD frames) that neither
saw; the validation-set figure is printed too (biased for ``validation``, which chose on it).
Prints a table, writes a PNG, and last "oracle-MD test force MAE, validation / holdout
checkpointing = X" (the mean over the iterations; below 1: ``validation`` is better).

    .venv/bin/python workflows/benchmarks/checkpointing.py CAMPAIGN_DIR --test FRAMES.extxyz
        [--iterations 0 5] [--out workflows/benchmarks/results/checkpointing]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import yaml
from ase import Atoms
from ase.io import read
from jobflow import run_locally

from frostline.config import CampaignConfig, StoreConfig
from frostline.distill.validate import predict_atoms
from frostline.finetune.committee import load_committee
from frostline.finetune.evaluate import error_metrics
from frostline.finetune.foundation import resolve_foundation
from frostline.flows.active_learning import ActiveLearningMaker
from frostline.registry.queries import open_campaign_dir
from frostline.schemas import FineTuneResult, LabelledStructure
from frostline.store import Records, make_job_store

MODES = ("holdout", "validation")


def training_sets(folder: Path, iterations: list[int]):
    """(campaign config, {iteration: train labels}, validation labels, {iteration: freeze})."""
    records = open_campaign_dir(folder)
    config = CampaignConfig.model_validate(yaml.safe_load((folder / "campaign.yaml").read_text()))
    labels = [
        LabelledStructure.model_validate(d)
        for d in records.find("labelled", {"campaign": config.name, "status": "ok"})
    ]
    validation = [x for x in labels if x.role == "validation"]
    train = [x for x in labels if x.role == "train"]
    levels = {
        d["iteration"]: d["freeze_level"]
        for d in records.find("model_docs", {"campaign": config.name, "member": 0})
    }
    sets = {i: [x for x in train if x.provenance.iteration < i] for i in iterations}
    return config, sets, validation, levels


def train_committee(
    config: CampaignConfig,
    foundation: str,
    train: list[LabelledStructure],
    validation: list[LabelledStructure],
    iteration: int,
    level: int,
    mode: str,
    folder: Path,
) -> tuple[Records, FineTuneResult]:
    """The campaign's committee for ``iteration`` trained with ``checkpoint_on=mode``."""
    maker = ActiveLearningMaker.from_config(config, foundation).finetune
    maker.checkpoint_on, maker.freeze_sweep = mode, ()
    store = make_job_store(StoreConfig(), folder)
    job = maker.make(foundation, train, validation, config.name, iteration, level)
    run_locally(job, store=store, root_dir=folder / "jobs", create_folders=True, log=False)
    store.connect()
    return Records(store).connect(), FineTuneResult.model_validate(job.output.resolve(store))


def committee_errors(records: Records, result: FineTuneResult, frames: list[Atoms]) -> list:
    """(force MAE meV/Å, energy MAE meV/atom) of the committee mean on ``frames``."""
    calc = load_committee(records, result.models, device="cpu")
    energies, forces = predict_atoms(calc, frames)
    ref_e = [a.info["REF_energy"] for a in frames]
    ref_f = [a.arrays["REF_forces"] for a in frames]
    m = error_metrics(ref_e, ref_f, energies, forces)
    return [m.force_mae_mev_per_a, m.energy_mae_mev_per_atom]


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for mode in MODES:
        pts = sorted((r["n_train"], r[mode]["test"][0]) for r in results.values())
        ax.plot(*zip(*pts, strict=True), "o-", label=f"checkpoint on {mode}")
    ax.set_xlabel("training labels")
    ax.set_ylabel("test force MAE (meV/Å)")
    ax.set_title("committee checkpoint selection")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("campaign", type=Path, help="a finished campaign directory")
    parser.add_argument("--test", type=Path, required=True, help="extxyz with REF_ labels")
    parser.add_argument("--iterations", type=int, nargs="+", default=[0, 5])
    parser.add_argument(
        "--out", type=Path, default=Path("workflows/benchmarks/results/checkpointing")
    )
    args = parser.parse_args()
    logging.getLogger("jobflow").setLevel(logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    config, sets, validation, levels = training_sets(args.campaign, args.iterations)
    foundation = resolve_foundation(config.foundation)
    test = read(args.test, ":")
    val_frames = [v.to_atoms() for v in validation]
    cache = args.out / "checkpointing.json"
    results = json.loads(cache.read_text()) if cache.exists() else {}
    for i in args.iterations:
        key = str(i)
        if key in results and all(m in results[key] for m in MODES):
            continue
        results[key] = {"n_train": len(sets[i])}
        for mode in MODES:
            print(f"iteration {i}: {len(sets[i])} labels, checkpoint on {mode} ...", flush=True)
            records, result = train_committee(
                config, foundation, sets[i], validation, i, levels.get(i, 0), mode,
                args.out / f"it{i}-{mode}",
            )  # fmt: skip
            results[key][mode] = {
                "test": committee_errors(records, result, test),
                "validation": committee_errors(records, result, val_frames),
            }
        cache.write_text(json.dumps(results, indent=1))
    print(f"\ncommittee force MAE meV/Å (energy meV/atom); test set {args.test.name}")
    print(f"{'labels':>6}  {'holdout: test':>18}  {'validation: test':>18}  (validation set)")
    ratios = []
    for i in args.iterations:
        r = results[str(i)]
        h, v = r["holdout"], r["validation"]
        print(
            f"{r['n_train']:>6}  {h['test'][0]:8.1f} ({h['test'][1]:5.1f})  "
            f"{v['test'][0]:11.1f} ({v['test'][1]:5.1f})  "
            f"(holdout {h['validation'][0]:.1f}, validation {v['validation'][0]:.1f})"
        )
        ratios.append(v["test"][0] / h["test"][0])
    plot({str(i): results[str(i)] for i in args.iterations}, args.out / "checkpointing.png")
    print(f"plot: {args.out / 'checkpointing.png'}")
    print(
        "oracle-MD test force MAE, validation / holdout checkpointing = "
        f"{float(np.mean(ratios)):.2f}"
    )


if __name__ == "__main__":
    main()
