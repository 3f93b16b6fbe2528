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
A third committee, ``validation+dirichlet``, is trained with ``checkpoint_on: validation`` and
``member_weights: dirichlet`` (Bayesian-bootstrap loss weights per member: members differ by
construction even when their data subsets coincide). For every committee the benchmark also
measures its uncertainty: the mean of the per-frame max atomic force deviation (the selection's
std) and its Spearman rank correlation with the true max atomic force error on the test set
(what selection relies on). Prints a table, writes a PNG, and last "oracle-MD test force MAE,
validation / holdout checkpointing = X" (the mean over the iterations; below 1: ``validation``
is better).

    .venv/bin/python workflows/benchmarks/checkpointing.py CAMPAIGN_DIR --test FRAMES.extxyz
        [--iterations 0 5] [--out workflows/benchmarks/results/checkpointing]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import yaml
from ase import Atoms
from ase.io import read
from jobflow import run_locally
from scipy.stats import spearmanr

from frostline.config import CampaignConfig, StoreConfig
from frostline.explore.samplers import committee_uncertainty
from frostline.finetune.committee import load_committee
from frostline.finetune.evaluate import error_metrics
from frostline.finetune.foundation import resolve_foundation
from frostline.flows.active_learning import ActiveLearningMaker
from frostline.registry.queries import open_campaign_dir
from frostline.schemas import LabelledStructure, ModelDoc
from frostline.select.calibration import max_atomic_force_error
from frostline.store import Records, make_job_store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import figure  # noqa: E402

# committee name: (finetune.checkpoint_on, finetune.member_weights)
MODES = {
    "holdout": ("holdout", "uniform"),
    "validation": ("validation", "uniform"),
    "validation+dirichlet": ("validation", "dirichlet"),
}


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
) -> tuple[Records, list[ModelDoc]]:
    """The campaign's committee for ``iteration`` trained as ``MODES[mode]`` (reused if there)."""
    store = make_job_store(StoreConfig(), folder)
    store.connect()
    records = Records(store).connect()
    query = {"campaign": config.name, "iteration": iteration, "kind": "committee-member"}
    if not records.find("model_docs", query):
        maker = ActiveLearningMaker.from_config(config, foundation).finetune
        maker.checkpoint_on, maker.member_weights = MODES[mode]
        maker.freeze_sweep = ()
        job = maker.make(foundation, train, validation, config.name, iteration, level)
        run_locally(job, store=store, root_dir=folder / "jobs", create_folders=True, log=False)
        store.connect()
        records = Records(store).connect()
    return records, [ModelDoc(**d) for d in records.find("model_docs", query)]


def committee_errors(records: Records, models: list[ModelDoc], frames: list[Atoms]) -> dict:
    """Errors of the committee mean on ``frames`` and how well its spread ranks them.

    ``force``/``energy``: MAE in meV/Å and meV/atom; ``std``: mean over frames of the max atomic
    force deviation (eV/Å); ``rank``: Spearman correlation of that deviation with the frame's
    true max atomic force error.
    """
    calc = load_committee(records, models, device="cpu")
    energies, forces, stds, worst = [], [], [], []
    for atoms in frames:
        work = atoms.copy()
        work.calc = calc
        energies.append(float(work.get_potential_energy()))
        forces.append(np.asarray(work.get_forces(), dtype=float))
        stds.append(committee_uncertainty(calc, work)[0])
        worst.append(max_atomic_force_error(forces[-1], atoms.arrays["REF_forces"]))
    ref_e = [a.info["REF_energy"] for a in frames]
    ref_f = [a.arrays["REF_forces"] for a in frames]
    m = error_metrics(ref_e, ref_f, energies, forces)
    return {
        "force": m.force_mae_mev_per_a,
        "energy": m.energy_mae_mev_per_atom,
        "std": float(np.mean(stds)),
        "rank": float(spearmanr(stds, worst).statistic),
    }


def plot(results: dict, path: Path) -> None:
    with figure(path, 2, figsize=(10, 4)) as (fig, (ax, ax_rank)):
        for mode in MODES:
            pts = sorted(
                (r["n_train"], r[mode]["test"]["force"], r[mode]["test"]["rank"])
                for r in results.values()
            )
            n, force, rank = zip(*pts, strict=True)
            ax.plot(n, force, "o-", label=mode)
            ax_rank.plot(n, rank, "o-", label=mode)
        ax.set_xlabel("training labels")
        ax.set_ylabel("test force MAE (meV/Å)")
        ax.set_title("committee checkpoint selection")
        ax.legend()
        ax_rank.set_xlabel("training labels")
        ax_rank.set_ylabel("Spearman(max force std, max force error)")
        ax_rank.set_title("does the spread rank the errors?")
        ax_rank.axhline(0, color="grey", lw=0.5)


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
        entry = results.setdefault(str(i), {})
        entry["n_train"] = len(sets[i])
        for mode in MODES:
            if isinstance(entry.get(mode, {}).get("test"), dict):
                continue  # measured by this version (older caches kept lists)
            print(f"iteration {i}: {len(sets[i])} labels, committee {mode} ...", flush=True)
            records, models = train_committee(
                config, foundation, sets[i], validation, i, levels.get(i, 0), mode,
                args.out / f"it{i}-{mode}",
            )  # fmt: skip
            entry[mode] = {
                "test": committee_errors(records, models, test),
                "validation": committee_errors(records, models, val_frames),
            }
            cache.write_text(json.dumps(results, indent=1))
    print(f"\ncommittee on test set {args.test.name}: force MAE meV/Å (energy MAE meV/atom),")
    print("mean max atomic force deviation eV/Å, its Spearman rank correlation with the true")
    print("max atomic force error; last column: force MAE on the validation set (biased when it")
    print("chose the epoch)")
    ratios = {mode: [] for mode in MODES}
    for i in args.iterations:
        r = results[str(i)]
        for mode in MODES:
            t, v = r[mode]["test"], r[mode]["validation"]
            print(
                f"{r['n_train']:>4} labels  {mode:<21} {t['force']:6.1f} ({t['energy']:5.1f})"
                f"  std {t['std']:.3f}  rank {t['rank']:+.2f}   validation {v['force']:6.1f}"
            )
            ratios[mode].append(t["force"] / r["holdout"]["test"]["force"])
    plot({str(i): results[str(i)] for i in args.iterations}, args.out / "checkpointing.png")
    print(f"plot: {args.out / 'checkpointing.png'}")
    dirichlet = float(np.mean(ratios["validation+dirichlet"]))
    print(f"oracle-MD test force MAE, validation+dirichlet / holdout = {dirichlet:.2f}")
    print(
        "oracle-MD test force MAE, validation / holdout checkpointing = "
        f"{float(np.mean(ratios['validation'])):.2f}"
    )


if __name__ == "__main__":
    main()
