"""Does frostline's selection buy fewer labels for the same accuracy? Three campaigns side by side.

Same foundation, oracle, seed structures, held-out validation set, label budget and loop
settings; only the selection differs:

- ``frostline``: diverse picking (uncertainty per cost x novelty), novelty gate against every
  label bought, trust window calibrated each iteration (``--calibration-picks`` of each batch
  drawn at random from all plausible frames, so the calibration is not fitted on high-std
  frames only);
- ``random-single`` (only with ``--arms``): ``random`` with one fine-tuned model, the baseline
  for ``frostline-descriptor`` (``--random-arm random-single``: the ratio's random side);
- ``dpgen``: DP-GEN style, fixed trust levels (0.05 / 0.15 eV/Å), random picks in the window,
  no novelty gate;
- ``random``: random frames from the campaign's own explored pool (no committee);
- ``frostline-typical`` (only with ``--arms``): ``frostline`` with ``hi_reference: typical``
  (compare with ``--al-arm frostline-typical``);
- ``frostline-stochastic`` / ``frostline-representative`` (only with ``--arms``): ``typical``
  windows fitted on the last 3 batches, picks drawn in proportion to the score / one per centre
  of a score-weighted k-means of the window's frames;
- ``frostline-contact`` (only with ``--arms``): ``frostline-representative`` plus one pick per
  iteration for a contact shorter than any training label's (``select.contact_picks: 1``);
  ``frostline-contact-relative``: the same with ``contact_deficit: relative`` (a 2 % margin);
  ``frostline-descriptor``: ``frostline-contact`` with a single fine-tuned model instead of a
  committee (a K-th of the fine-tuning cost), frames ranked by their descriptor novelty against
  the labels (``uncertainty: descriptor``); ``frostline-descriptor-coverage``: the same with an
  unweighted k-means (``sampling_power: 0``), meant to follow how the explored frames are
  distributed instead of leaning to the most novel ones; ``frostline-last-layer``:
  ``frostline-contact`` with a single fine-tuned model scored by its last-layer (LLPR)
  variance (``uncertainty: last-layer``, the uncertainty benchmark's best method; first window
  open, then the conformal fit's), compared with ``random-single``.

Two fixed held-out test sets: the campaigns' validation set (rattled H2/Cu(111) seeds, close to
equilibrium and to the first labels) and an oracle-MD test set (GFN1-xTB's own Langevin MD at the
exploration temperatures from fresh starts, ``--md-test-starts`` per temperature; the
configurations a campaign is run to describe, independent of every arm's exploration). For each:
a table of force MAE versus labels spent, a PNG (``selection.png``, ``selection_md_test.png``)
and labels needed to reach the target, the target being the best force MAE the random campaign
reaches (or ``--target``). On the oracle-MD set the tail is printed too (95th percentile of the
frames' largest atomic force error: the configurations that break an MD run, where buying the
most uncertain frames should pay off even when the MAE does not show it), with the labels AL
and random need to reach random's best tail. The validation-set
ratio is printed, then last, on the oracle-MD
test set, "labels needed to reach the target force MAE, AL / random = X" (goal <= 0.5;
with ``--md-test-starts 0`` the validation set's). With ``--seeds N`` every
arm runs N times (campaign seed 0..N-1: seeds, committee, exploration and picks differ) and the
curves are averaged point by point before the ratio is taken; each seed's own ratios (force MAE
and tail, target: that seed's random best) are printed with their mean ± spread (sample
standard deviation; a seed that never reaches its target is shown, not averaged). With
``--elbow`` (default: the uncertainty benchmark's labelled H2/Cu(111) elbow set), each arm's
final model (iteration ``--iterations`` - 1) is scored on the elbow by ``h2cu_elbow.py``'s
barrier code and its barrier error printed per seed with mean ± spread
(``selection_elbow.py``; cached in ``OUT/FOLDER.elbow.json``). A finished campaign is archived
beside its folder (``OUT/FOLDER.campaign.json``: figures, labels, config, oracle-MD curves;
committed with the results): on a fresh checkout without the folder the archive is read, so the
tables and ratios are printed again without re-running what is finished. ``--reuse DIR``
reads a campaign OUT does not hold from ``DIR``'s archive (never writing there) when it holds
at least ``--iterations`` iterations; every campaign read or resumed must have been run with
the settings this command asks for (apart from its iteration count: longer campaigns' curves
are cut at ``--iterations``), else the benchmark stops naming the folder and the settings.
``--no-run`` runs and resumes no campaign: each is read as far as it got (a cut-off run with
at least ``--iterations`` finished iterations; its partial archive is written too).

    .venv/bin/python workflows/benchmarks/selection.py [--iterations 5] [--per-iteration 8]
        [--committee 2] [--calibration-picks 2] [--seeds 1]
        [--checkpoint-on holdout] [--member-weights uniform]   (committee training, all arms)
        [--epochs 40] [--patience 0]           (members' epoch cap and early stopping, all arms)
        [--retrain-failed 0]                   (retries of a member that kept its first epoch)
        [--loss weighted]                      (mace-torch loss of every fine-tune: weighted,
                                                huber, l1l2)
        [--lr 0.01] [--lr-sweep 0.005 0.002]   (fine-tuning rate, rates a sweep tries, all arms)
        [--engine batched] [--dtype float32]   (exploration engine and MD precision, all arms)
        [--temperatures 300 800] [--starts 2] [--steps 120] [--sample-every 10]
                                               (exploration pool: temperatures x starts x
                                                steps/sample-every frames per iteration, all arms)
        [--foundation mini-64]                 (the foundation every arm fine-tunes)
        [--freeze 0]                           (one level for all fine-tunes, no freeze sweep)
        [--out results/selection_last_layer] [--reuse results/selection_long] [--no-run]
        [--elbow results/uncertainty_quality/h2cu-elbow.extxyz]   (or none)
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from ase import Atoms

from frostline.config import DESCRIPTOR_TRUST, LAST_LAYER_TRUST, parse_config
from frostline.finetune.train import MACE_LOSSES
from frostline.flows.campaign import run_campaign
from frostline.registry.queries import open_campaign_dir
from frostline.report.plots import write_campaign_plots

sys.path.insert(0, str(Path(__file__).resolve().parent))
from campaign_record import (  # noqa: E402
    CampaignRecord,
    archive_path,
    finished_iterations,
    has_store,
)
from common import figure, oracle_md_frames  # noqa: E402
from selection_elbow import final_elbow, load_elbow_set, plot_final_elbows  # noqa: E402

DEMO = Path(__file__).resolve().parents[2] / "src" / "frostline" / "data" / "demo_h2_cu111.yaml"
RESULTS = Path("workflows/benchmarks/results")

REPRESENTATIVE = {
    "strategy": "representative",
    "trust": "calibrated",
    "hi_reference": "typical",
    "calibration_history": 3,
}
# frostline-contact with one fine-tuned model instead of a committee (ARM_COMMITTEE), frames
# ranked by descriptor novelty against the labels; the demo's first window is in eV/Å, this
# arm's in novelty units (the config default)
DESCRIPTOR = {
    **REPRESENTATIVE,
    "contact_picks": 1,
    "uncertainty": "descriptor",
    "trust_lo": DESCRIPTOR_TRUST[0],
    "trust_hi": DESCRIPTOR_TRUST[1],
}
ARMS = {
    "frostline": {"strategy": "diverse", "trust": "calibrated"},
    # the same, "too uncertain" measured against the model's current error, not the target
    "frostline-typical": {"strategy": "diverse", "trust": "calibrated", "hi_reference": "typical"},
    # picks drawn in proportion to the score; the window fitted on the last 3 labelled batches
    "frostline-stochastic": {
        "strategy": "stochastic",
        "trust": "calibrated",
        "hi_reference": "typical",
        "calibration_history": 3,
    },
    # one pick per centre of a k-means of the window's frames weighted by std x novelty
    "frostline-representative": REPRESENTATIVE,
    # the same, plus one pick per iteration for a contact shorter than any training label's
    "frostline-contact": {**REPRESENTATIVE, "contact_picks": 1},
    # the same, short contacts ranked by the fraction of the pair's labelled contact
    # (the default contact_margin 0.02 then reads as 2 %)
    "frostline-contact-relative": {
        **REPRESENTATIVE,
        "contact_picks": 1,
        "contact_deficit": "relative",
    },
    "frostline-descriptor": DESCRIPTOR,
    # frostline-contact with one fine-tuned model scored by its last-layer (LLPR) variance, the
    # uncertainty benchmark's best method; its first window is open (raw LLPR units, not the
    # demo's eV/Å): every plausible frame is a candidate until a conformal fit derives one
    "frostline-last-layer": {
        **REPRESENTATIVE,
        "contact_picks": 1,
        "uncertainty": "last-layer",
        "trust_lo": LAST_LAYER_TRUST[0],
        "trust_hi": LAST_LAYER_TRUST[1],
    },
    # the same, the k-means unweighted (sampling_power 0): meant to cover the explored frames as
    # they are distributed instead of leaning to the most novel (measured: it still leans, README)
    "frostline-descriptor-coverage": {**DESCRIPTOR, "sampling_power": 0.0},
    # the same, each batch shared among the MD temperatures in proportion to their frames
    # (a temperature whose window holds too few frames is topped up with its "accurate" ones)
    "frostline-descriptor-stratified": {**DESCRIPTOR, "stratify": "exploration"},
    "dpgen": {
        "strategy": "dpgen",
        "trust": "fixed",
        "trust_lo": 0.05,
        "trust_hi": 0.15,
        "novelty_threshold": 0.0,
    },
    "random": {"strategy": "random", "trust": "fixed", "novelty_threshold": 0.0},
    # random frames with one fine-tuned model (ARM_COMMITTEE): the baseline of the same model
    # capacity as frostline-descriptor (the committee mean of K members is a stronger model)
    "random-single": {
        "strategy": "random",
        "trust": "fixed",
        "novelty_threshold": 0.0,
        "uncertainty": "descriptor",
        "trust_lo": DESCRIPTOR_TRUST[0],
        "trust_hi": DESCRIPTOR_TRUST[1],
    },
}
ARM_COMMITTEE = {
    "frostline-descriptor": 1,
    "frostline-descriptor-coverage": 1,
    "frostline-descriptor-stratified": 1,
    "frostline-last-layer": 1,
    "random-single": 1,
}
"""Arms whose committee size is not ``--committee``."""


def arm_config(name: str, args: argparse.Namespace, seed: int = 0) -> dict:
    base = yaml.safe_load(DEMO.read_text())
    base["name"] = f"selection-{name}" + (f"-seed{seed}" if seed else "")
    base["seed"] = seed
    base["select"] = {**base.get("select", {}), **ARMS[name]}
    base["select"]["max_labels_per_iteration"] = args.per_iteration
    if name.startswith("frostline"):
        base["select"]["calibration_picks"] = args.calibration_picks
    base["finetune"]["epochs"] = args.epochs
    if args.patience:  # members train until early stopping, `--epochs` is then the cap
        base["finetune"]["patience"] = args.patience
    if args.scheduler_patience:  # mace-torch's 50 otherwise (stored campaigns keep their keys)
        base["finetune"]["scheduler_patience"] = args.scheduler_patience
    if args.retrain_failed:  # a member that kept its first epoch is trained again
        base["finetune"]["retrain_failed"] = args.retrain_failed
    if args.loss != "weighted":  # the loss also picks each member's kept epoch
        base["finetune"]["loss"] = args.loss
    if args.lr is not None:  # the demo's rate otherwise (stored campaigns keep their memo keys)
        base["finetune"]["lr"] = args.lr
    if args.lr_sweep:  # other rates tried at the chosen level whenever levels are swept
        base["finetune"]["lr_sweep"] = args.lr_sweep
    base["foundation"] = args.foundation
    if args.freeze is not None:  # one level for every fine-tune, no sweep
        base["finetune"]["freeze"] = args.freeze
        base["finetune"]["freeze_sweep"] = []
    base["finetune"]["committee_size"] = ARM_COMMITTEE.get(name, args.committee)
    base["finetune"]["checkpoint_on"] = args.checkpoint_on
    base["finetune"]["member_weights"] = args.member_weights
    base["explore"] = {
        **base["explore"],
        "engine": args.engine,
        "dtype": args.dtype,
        "temperatures": args.temperatures,
        "starts_per_temperature": args.starts,
        "steps": args.steps,
        "sample_every": args.sample_every,
    }
    base["convergence"] = {
        "accurate_fraction": 1.0,  # never stop early: compare whole curves
        "max_iterations": args.iterations,
        "label_budget": 10_000,
    }
    base["distill"] = {"enabled": False}
    return base


def oracle_md_test_set(args: argparse.Namespace, path: Path) -> list[Atoms]:
    """Frames of the oracle's own MD at the exploration temperatures, labelled (cached).

    The distribution a campaign is for: Langevin MD with GFN1-xTB itself (not a model) from
    fresh H2/Cu(111) starts (a seed no campaign uses), ``--md-test-starts`` per temperature,
    a frame every 20 steps after 40 steps. Independent of every arm's exploration.
    """
    from ase.io import read, write

    from frostline.label.calculators import xtb_calculator
    from frostline.structures import h2_cu111_structures

    if path.exists():
        return read(path, ":")
    rng = np.random.default_rng(12345)
    calc = xtb_calculator()
    frames = []
    for temperature in args.temperatures:
        for start in h2_cu111_structures(args.md_test_starts, rng, include_references=False):
            frames += oracle_md_frames(start, calc, temperature, args.steps, rng)
    write(path, frames, format="extxyz")
    return read(path, ":")


def md_test_curve(folder: Path, test: list[Atoms]) -> dict[str, list[tuple[int, float]]]:
    """Every iteration's committee (mean) on ``test``: force MAE and the tail of the errors.

    ``mae``: (training labels, force MAE meV/Å); ``p95``: (training labels, 95th percentile over
    frames of the frame's largest atomic force error, meV/Å): how wrong the model is on the
    worst configurations, the ones that break an MD run; ``by_element``: (training labels,
    {element: force MAE meV/Å}), which atoms the MAE is made of; ``by_temperature``: (training
    labels, {oracle-MD temperature K: force MAE meV/Å of its frames}).
    """
    from frostline.distill.validate import predict_atoms
    from frostline.finetune.committee import load_committee
    from frostline.finetune.evaluate import error_metrics
    from frostline.registry.queries import iteration_committees
    from frostline.select.calibration import max_atomic_force_error

    records = open_campaign_dir(folder)
    mae, p95, by_element, by_temperature = [], [], [], []
    symbols = [a.get_chemical_symbols() for a in test]
    temperatures = np.array([float(a.info.get("temperature", np.nan)) for a in test])
    for it, members in iteration_committees(records):
        calc = load_committee(records, members, device="cpu")
        energies, forces = predict_atoms(calc, test)
        reference = ([a.info["REF_energy"] for a in test], [a.arrays["REF_forces"] for a in test])
        errors = error_metrics(*reference, energies, forces, symbols=symbols)
        mae.append((it["n_labelled"], errors.force_mae_mev_per_a))
        by_element.append((it["n_labelled"], errors.force_mae_by_element))
        per_temperature = {}
        for t in np.unique(temperatures[np.isfinite(temperatures)]):
            frames = np.flatnonzero(temperatures == t)
            subset = [[part[i] for i in frames] for part in (*reference, energies, forces)]
            per_temperature[f"{t:.0f} K"] = error_metrics(*subset).force_mae_mev_per_a
        by_temperature.append((it["n_labelled"], per_temperature))
        pairs = zip(forces, reference[1], strict=True)
        worst = [1000 * max_atomic_force_error(f, ref) for f, ref in pairs]
        p95.append((it["n_labelled"], float(np.percentile(worst, 95))))
    return {"mae": mae, "p95": p95, "by_element": by_element, "by_temperature": by_temperature}


def test_set_key(test: list[Atoms]) -> str:
    """Digest of a test set (positions, reference forces): what a cached curve was measured on."""
    import hashlib

    return hashlib.sha256(
        b"".join(a.arrays["REF_forces"].tobytes() + a.positions.tobytes() for a in test)
    ).hexdigest()


MD_TEST_PARTS = ("mae", "p95", "by_element", "by_temperature")


def usable_md_test(doc: dict | None, key: str, labels: list[int]) -> bool:
    """Whether cached oracle-MD curves were measured on this test set for these iterations."""
    if not doc or doc.get("test_set") != key or not all(k in doc for k in MD_TEST_PARTS):
        return False
    return [n for n, _ in doc["mae"]] == labels


def cached_md_test_curve(
    folder: Path, test: list[Atoms], record: CampaignRecord | None = None
) -> dict[str, list[tuple[int, float]]]:
    """``md_test_curve``, remembered in ``FOLDER/md-test-curve.json``.

    The cache is keyed by the test set and by the campaign's iterations, so a campaign resumed
    with more iterations is evaluated again. A campaign known only from its archive (the folder
    is gone: no models to evaluate) gives the archive's curves, if measured on this test set.
    ``record``: the campaign, when the caller has read it already.
    """
    import json

    key = test_set_key(test)
    record = record or CampaignRecord.load(folder)
    if not has_store(folder):
        if not usable_md_test(record.md_test, key, [n for n, _ in record.curve()]):
            raise SystemExit(
                f"{archive_path(folder)}: its oracle-MD curves were measured on another test "
                "set (or none), and the campaign's models are gone: run the campaign again"
            )
        return {k: [tuple(p) for p in record.md_test[k]] for k in MD_TEST_PARTS}
    cache = folder / "md-test-curve.json"
    if cache.exists():
        doc = json.loads(cache.read_text())
        if usable_md_test(doc, key, [n for n, _ in record.curve()]):
            return {k: [tuple(p) for p in doc[k]] for k in MD_TEST_PARTS}
    curves = md_test_curve(folder, test)
    cache.write_text(json.dumps({"test_set": key, **curves}))
    return curves


def label_temperatures(folder: Path) -> dict[str, int]:
    """Training labels a campaign bought per exploration temperature ("initial": its seeds)."""
    return CampaignRecord.load(folder).label_temperatures()


def campaign_done(folder: Path, iterations: int) -> bool:
    """Whether the campaign in ``folder`` ran to its end with at least ``iterations``.

    Its ``finished`` marker holds the iterations it was run for (an empty marker, written
    before markers held them: the stored ``campaign.yaml``'s ``convergence.max_iterations``).
    Without the folder's store (a fresh checkout), its archive's iteration count decides.
    """
    if not has_store(folder):
        archive = archive_path(folder)
        return archive.exists() and CampaignRecord.from_archive(archive).iterations >= iterations
    return finished_iterations(folder) >= iterations


def curve(folder: Path) -> list[tuple[int, float]]:
    """(training labels, validation force MAE meV/Å) of every iteration's committee."""
    return CampaignRecord.load(folder).curve()


def flat_settings(config: dict) -> dict[str, object]:
    """A campaign config validated by today's schema (defaults added since filled in), as
    dotted keys (``finetune.epochs``) with their values."""
    out: dict[str, object] = {}

    def walk(node: dict, prefix: str) -> None:
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                out[f"{prefix}{k}"] = v

    walk(parse_config(config, "campaign.yaml").model_dump(mode="json"), "")
    return out


def settings_differences(stored: dict, expected: dict) -> dict[str, tuple[object, object]]:
    """Settings in which a stored campaign differs from the one this command asks for:
    {dotted key: (stored, asked)}. ``convergence.max_iterations`` is left out (a campaign run
    for more iterations went through the same first ones; its curves are cut at
    ``--iterations``)."""
    a, b = flat_settings(stored), flat_settings(expected)
    idle = inactive_settings(a) & inactive_settings(b)
    keys = sorted((a.keys() | b.keys()) - {"convergence.max_iterations"} - idle)
    return {k: (a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)}


def inactive_settings(settings: dict[str, object]) -> set[str]:
    """Dotted keys that do nothing in a campaign (flat) config: the bias's settings without a
    bias, the distillation's when it is off (so a changed default there changes no run)."""
    idle: set[str] = set()
    if settings.get("explore.bias") == "none":
        idle |= {"explore.bias_strength", "explore.bias_width"}
    if settings.get("distill.enabled") is False:
        idle |= {k for k in settings if k.startswith("distill.") and k != "distill.enabled"}
    return idle


def stored_config(folder: Path) -> dict | None:
    """The config of the campaign in ``folder`` (its store, else its archive), None if none."""
    if has_store(folder):
        return yaml.safe_load((folder / "campaign.yaml").read_text())
    if archive_path(folder).exists():
        return CampaignRecord.from_archive(archive_path(folder)).config
    return None


def check_settings(folder: Path, expected: dict) -> None:
    """Refuse (one line naming the folder and the settings) a campaign run with other settings."""
    stored = stored_config(folder)
    if stored is None:
        return
    diff = settings_differences(stored, expected)
    if diff:
        shown = ", ".join(f"{k} {a!r} (asked {b!r})" for k, (a, b) in list(diff.items())[:4])
        raise SystemExit(
            f"{folder}: its campaign was run with other settings than this command's: {shown}"
            + (f" and {len(diff) - 4} more" if len(diff) > 4 else "")
            + "; use another --out"
        )


def campaign_folder(args: argparse.Namespace, name: str, seed: int) -> Path:
    """``OUT/ARM[-seedN]``; when it holds nothing and ``--reuse DIR`` has that campaign's
    archive with at least ``--iterations`` iterations, ``DIR/ARM[-seedN]`` (read only)."""
    folder = args.out / (name if seed == 0 else f"{name}-seed{seed}")
    if has_store(folder) or archive_path(folder).exists() or args.reuse is None:
        return folder
    earlier = args.reuse / folder.name
    archive = archive_path(earlier)
    if not has_store(earlier) and archive.exists():
        if CampaignRecord.from_archive(archive).iterations >= args.iterations:
            return earlier
    return folder


def cut(points: list, iterations: int) -> list:
    """The first ``iterations`` points of a per-iteration curve (a longer campaign's)."""
    return list(points[:iterations])


def archive_campaign(
    folder: Path, md_test: dict | None, record: CampaignRecord | None = None
) -> Path:
    """Write ``OUT/FOLDER.campaign.json`` from the finished campaign in ``folder`` (committed with
    the results, so a fresh checkout keeps the campaign's figures and label sets); ``record``:
    the campaign read from its store already."""
    record = record or CampaignRecord.from_store(folder, finished_iterations(folder))
    if md_test is not None:
        record.md_test = md_test
    return record.save(archive_path(folder))


def mean_curve(curves: list[list[tuple[int, float]]]) -> list[tuple[int, float]]:
    """Point-by-point mean over seeds (iterations in common; label counts averaged too)."""
    n = min(len(c) for c in curves)
    labels = [round(float(np.mean([c[i][0] for c in curves]))) for i in range(n)]
    maes = [float(np.mean([c[i][1] for c in curves])) for i in range(n)]
    return list(zip(labels, maes, strict=True))


def mean_keyed_curves(
    seeds: list[list[tuple[int, dict[str, float]]]],
) -> dict[str, list[tuple[int, float]]]:
    """Per key (element, temperature), the point-by-point mean over seeds of (labels, MAE)."""
    keys = dict.fromkeys(k for points in seeds for _, by in points for k in by)
    return {
        k: mean_curve([[(n, by[k]) for n, by in points if k in by] for points in seeds])
        for k in keys
    }


def print_keyed_curves(title: str, curves: dict[str, dict[str, list[tuple[int, float]]]]) -> None:
    """One line per arm and key (element, temperature): the MAE at each label count."""
    print(f"\n{title}")
    width = max((len(f"{arm} {key}") for arm, by in curves.items() for key in by), default=0)
    for arm, by_key in curves.items():
        for key, pts in by_key.items():
            label = f"{arm} {key}"
            print(f"{label:<{width}} " + "  ".join(f"{n:>3}:{e:6.1f}" for n, e in pts))


def labels_to_reach(points: list[tuple[int, float]], target: float) -> float | None:
    """Labels at which the (linearly interpolated) curve first reaches ``target``."""
    for (n0, e0), (n1, e1) in zip(points, points[1:], strict=False):
        if e0 <= target:
            return float(n0)
        if e1 <= target:
            return n0 + (n1 - n0) * (e0 - target) / (e0 - e1)
    if points and points[-1][1] <= target:
        return float(points[-1][0])
    return None


def labels_ratio(
    al: list[tuple[int, float]], rnd: list[tuple[int, float]], target: float | None = None
) -> float:
    """AL / random labels to reach ``target`` (default: random's best); nan if one never does."""
    goal = target if target is not None else min(e for _, e in rnd)
    a, r = labels_to_reach(al, goal), labels_to_reach(rnd, goal)
    return a / r if a and r else float("nan")


def per_seed_ratios(
    al: list[list[tuple[int, float]]],
    rnd: list[list[tuple[int, float]]],
    target: float | None,
) -> list[float]:
    """AL / random labels-to-target of each seed on its own (target: that seed's random best)."""
    return [labels_ratio(a, r, target) for a, r in zip(al, rnd, strict=False)]


def plot(
    curves: dict[str, list[tuple[int, float]]],
    target: float,
    path: Path,
    test_set: str,
    seeds: dict[str, list[list[tuple[int, float]]]] | None = None,
) -> None:
    """The arms' seed-mean curves; with ``seeds`` (each arm's curve per seed), the range of
    the seeds shaded around each mean."""
    with figure(path, figsize=(6, 4)) as (fig, ax):
        for name, pts in curves.items():
            (line,) = ax.plot(*zip(*pts, strict=True), "o-", label=name)
            per_seed = (seeds or {}).get(name, [])
            if len(per_seed) > 1:
                rows = np.array([[e for _, e in c[: len(pts)]] for c in per_seed])
                x = [n for n, _ in pts]
                band = f"{name}: range of {len(per_seed)} seeds"
                low, high = rows.min(axis=0), rows.max(axis=0)
                ax.fill_between(x, low, high, color=line.get_color(), alpha=0.15, lw=0, label=band)
        ax.axhline(target, color="grey", ls="--", lw=1, label="target")
        ax.set_xlabel("training labels (oracle calls)")
        ax.set_ylabel(f"{test_set} force MAE (meV/Å)")
        ax.set_title("selection strategies, H2/Cu(111), GFN1-xTB oracle")
        ax.legend()


def report(
    curves: dict[str, list[tuple[int, float]]],
    target: float | None,
    test_set: str,
    al_arm: str,
    path: Path,
    random_arm: str = "random",
    seeds: dict[str, list[list[tuple[int, float]]]] | None = None,
) -> float:
    """Print the curves and labels-to-target of every arm on one test set; the AL / random ratio
    (``seeds``: each arm's curve per seed, shaded in the plot)."""
    if target is None:
        target = min(e for _, e in curves.get(random_arm, next(iter(curves.values()))))
    print(f"\n{test_set} force MAE (meV/Å) at n training labels")
    for name, pts in curves.items():
        print(f"{name:<18} " + "  ".join(f"{n:>3}:{e:6.1f}" for n, e in pts))
    plot(curves, target, path, test_set, seeds)
    print(f"plot: {path}")
    need = {name: labels_to_reach(pts, target) for name, pts in curves.items()}
    for name, n in need.items():
        print(
            f"labels to reach {target:.1f} meV/Å, {name}: " + (f"{n:.1f}" if n else "not reached")
        )
    al, rnd = need.get(al_arm), need.get(random_arm)
    ratio = al / rnd if al and rnd else float("nan")
    if not np.isfinite(ratio):
        print("(a strategy did not reach the target within its iterations)")
    return ratio


def mean_spread(values: list[float | None]) -> tuple[float, float, int]:
    """Mean and sample standard deviation of the finite ``values`` and how many there are
    (nan mean with none, nan spread with fewer than two): a seed that never reached a target
    (nan) is shown on its own line but cannot enter a mean."""
    finite = [float(v) for v in values if v is not None and np.isfinite(v)]
    if not finite:
        return float("nan"), float("nan"), 0
    spread = float(np.std(finite, ddof=1)) if len(finite) > 1 else float("nan")
    return float(np.mean(finite)), spread, len(finite)


def seed_line(values: list[float | None], fmt: str = "{:.2f}") -> str:
    """``0.63 / 1.46 / nan (mean 1.05 ± 0.58 over 2 of 3 seeds)``."""
    mean, spread, n = mean_spread(values)
    shown = " / ".join("nan" if v is None else fmt.format(v) for v in values)
    if n == 0:
        return f"{shown} (no seed reached it)"
    of = f"{n} of {len(values)}" if n < len(values) else f"{n}"
    unsigned = fmt.replace("+", "")
    return f"{shown} (mean {fmt.format(mean)} ± {unsigned.format(spread)} over {of} seeds)"


def print_per_seed(
    seed_curves: dict[str, list],
    args: argparse.Namespace,
    seed_tails: dict[str, list] | None = None,
    elbows: dict[str, list[dict]] | None = None,
) -> None:
    """Each seed's own AL / random ratios (oracle-MD force MAE else validation, and tail; the
    target: that seed's random best) and each arm's final-model elbow barrier error, with
    their mean ± spread over the seeds: the spread behind the mean curves."""
    al, rnd = args.al_arm, args.random_arm
    if al in seed_curves and rnd in seed_curves:
        ratios = per_seed_ratios(seed_curves[al], seed_curves[rnd], args.target)
        print(f"AL / random of each seed on its own: {seed_line(ratios)}")
    if seed_tails and al in seed_tails and rnd in seed_tails:
        ratios = per_seed_ratios(seed_tails[al], seed_tails[rnd], None)
        print(f"tail (random's best p95) AL / random of each seed: {seed_line(ratios)}")
    for arm, docs in (elbows or {}).items():
        errors = [d["barrier_error"] for d in docs]
        absolute = mean_spread([abs(e) for e in errors])[0]
        retrained = sum(d["source"] == "retrained" for d in docs)
        note = f"; {retrained} fine-tuned again from the archive" if retrained else ""
        print(f"elbow barrier error of {arm}'s final model (eV) of each seed: "
              f"{seed_line(errors, '{:+.2f}')}, mean |error| {absolute:.2f}{note}")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command line (every arm's options)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--per-iteration", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=40, help="fine-tuning epochs (cap)")
    parser.add_argument(
        "--patience",
        type=int,
        default=0,
        help="finetune.patience of every arm (0: members train all --epochs)",
    )
    parser.add_argument(
        "--scheduler-patience",
        type=int,
        default=0,
        help="finetune.scheduler_patience of every arm: epochs before mace-torch lowers the "
        "rate (0: its default 50, longer than a --patience of 30: the rate never decays)",
    )
    parser.add_argument(
        "--retrain-failed",
        type=int,
        default=0,
        help="finetune.retrain_failed of every arm (retries of a member that kept epoch 0)",
    )
    parser.add_argument(
        "--loss",
        choices=MACE_LOSSES,
        default="weighted",
        help="finetune.loss of every arm (mace-torch's loss, which also picks the kept epoch)",
    )
    parser.add_argument(
        "--foundation", default="mini", help="all arms: 'mini', 'mini-64' or a .model path"
    )
    parser.add_argument("--lr", type=float, default=None, help="finetune.lr of every arm")
    parser.add_argument(
        "--lr-sweep",
        type=float,
        nargs="+",
        default=[],
        help="finetune.lr_sweep of every arm (rates tried at the level a sweep chooses)",
    )
    parser.add_argument(
        "--freeze",
        type=int,
        default=None,
        help="one freeze level for every fine-tune of every arm (default: the demo's sweep of "
        "f0 and f6 at the first fine-tune, whose choice then holds for the whole campaign)",
    )
    parser.add_argument("--committee", type=int, default=2, help="committee size K (all arms)")
    parser.add_argument(
        "--checkpoint-on",
        default="holdout",
        choices=["holdout", "validation"],
        help="finetune.checkpoint_on (all arms)",
    )
    parser.add_argument(
        "--member-weights",
        default="uniform",
        choices=["uniform", "dirichlet"],
        help="finetune.member_weights (all arms)",
    )
    parser.add_argument(
        "--calibration-picks", type=int, default=2, help="frostline arm: random picks per batch"
    )
    parser.add_argument("--seeds", type=int, default=1, help="repeat every arm with seeds 0..N-1")
    parser.add_argument(
        "--temperatures", type=float, nargs="+", default=[300, 800], help="exploration MD (K)"
    )
    parser.add_argument("--starts", type=int, default=2, help="MD starts per temperature")
    parser.add_argument("--steps", type=int, default=120, help="MD steps per trajectory")
    parser.add_argument(
        "--md-test-starts",
        type=int,
        default=2,
        help="oracle-MD test set: GFN1-xTB MD starts per temperature (0: validation set only)",
    )
    parser.add_argument(
        "--sample-every",
        type=int,
        default=10,
        help="MD steps between explored frames (all arms; with --steps: frames per trajectory)",
    )
    parser.add_argument("--engine", default="batched", choices=["ase", "batched"])
    parser.add_argument("--dtype", default="float32", choices=["float64", "float32"])
    parser.add_argument("--target", type=float, default=None, help="meV/Å (default: random's best)")
    parser.add_argument("--out", type=Path, default=RESULTS / "selection_last_layer")
    parser.add_argument(
        "--reuse",
        type=Path,
        default=None,
        help="a results folder whose campaign archives are read (never written) for a campaign"
        " OUT does not hold, if run with the same settings (e.g. results/selection_long)",
    )
    parser.add_argument(
        "--no-run",
        action="store_true",
        help="run or resume no campaign: read each as far as it got (at least --iterations "
        "iterations, finished or not), e.g. after a cut-off",
    )
    parser.add_argument(
        "--elbow",
        type=Path,
        default=RESULTS / "uncertainty_quality" / "h2cu-elbow.extxyz",
        help="the labelled H2/Cu(111) elbow set (h2cu_elbow.py); 'none': no barrier",
    )
    parser.add_argument(
        "--arms", nargs="+", default=["frostline", "dpgen", "random"], choices=list(ARMS)
    )
    parser.add_argument(
        "--al-arm", default="frostline", choices=list(ARMS), help="the AL side of the ratio"
    )
    parser.add_argument(
        "--random-arm",
        default="random",
        choices=list(ARMS),
        help="the random side of the ratio and the default target (e.g. random-single)",
    )
    return parser


@dataclass
class ArmSeeds:
    """One arm's campaigns, one entry per seed: validation curve, oracle-MD curves (``mae``,
    ``p95``, ``by_element``, ``by_temperature``; cut at ``--iterations``), training labels per
    exploration temperature, final model's elbow figures (``selection_elbow.final_elbow``)."""

    curves: list = field(default_factory=list)
    md: list[dict] = field(default_factory=list)
    bought: list[dict[str, int]] = field(default_factory=list)
    elbows: list[dict] = field(default_factory=list)

    def md_part(self, part: str) -> list:
        return [m[part] for m in self.md]


def seed_campaign(name: str, seed: int, args: argparse.Namespace, md_test: list, elbow) -> tuple:
    """Run (or resume, or read) one arm's campaign for ``seed``; its curves and elbow figures.

    A killed campaign is resumed, not read half done; a finished one with fewer iterations than
    asked is given the rest (its finished iterations are reused); without its folder, a
    campaign whose archive holds the iterations is read from it (``--reuse``: an earlier
    results folder's archive). A campaign run with other settings is refused.
    """
    folder = campaign_folder(args, name, seed)
    expected = arm_config(name, args, seed)
    check_settings(folder, expected)
    if args.no_run:
        return read_as_far_as_run(folder, name, seed, args, md_test, elbow)
    if not campaign_done(folder, args.iterations):
        verb = "resuming" if has_store(folder) else "running"
        if not has_store(folder) and archive_path(folder).exists():
            verb = "running again (its archive holds fewer iterations; the store is gone)"
        print(f"{verb} {name} (seed {seed}) ...", flush=True)
        run_campaign(parse_config(expected, name), folder, log=False)
        (folder / "finished").write_text(f"{args.iterations}\n")
    record = CampaignRecord.load(folder)  # read once: store, or archive
    if has_store(folder):
        status = record.status
        write_campaign_plots(status, folder / "plots", status.get("target_force_error"))
    return seed_figures(folder, record, seed, args, md_test, elbow)


def seed_figures(
    folder: Path, record: CampaignRecord, seed: int, args: argparse.Namespace, md_test, elbow
) -> tuple:
    """A campaign's curves cut at ``--iterations``, its training labels per temperature and
    its final model's elbow figures."""
    md = cached_md_test_curve(folder, md_test, record) if md_test else None
    if has_store(folder):
        key = {"test_set": test_set_key(md_test)} if md_test else {}
        archive_campaign(folder, {**key, **md} if md else None, record)
    md = {k: cut(v, args.iterations) for k, v in md.items()} if md else None
    doc = final_elbow(folder, args.out, record, args.iterations, elbow) if elbow else None
    bought = record.label_temperatures(before=args.iterations - 1)
    return cut(record.curve(), args.iterations), md, bought, doc and {**doc, "seed": seed}


def read_as_far_as_run(
    folder: Path, name: str, seed: int, args: argparse.Namespace, md_test, elbow
) -> tuple:
    """``--no-run``: the campaign as far as it got (store, else archive), if that is at least
    ``--iterations`` iterations (else a one-line error naming it); no campaign is run or
    resumed (an archived campaign's final model may still be fine-tuned again for the elbow)."""
    if not (has_store(folder) or archive_path(folder).exists()):
        raise SystemExit(f"{folder}: no campaign (--no-run runs none)")
    record = CampaignRecord.load(folder)
    done = len(record.status["iterations"])
    if done < args.iterations:
        raise SystemExit(f"{folder}: {done} iterations finished, --iterations {args.iterations}")
    if not campaign_done(folder, args.iterations):
        print(f"{name} (seed {seed}): unfinished, read as far as it got ({done} iterations)")
    return seed_figures(folder, record, seed, args, md_test, elbow)


def run_arms(args: argparse.Namespace, md_test: list, elbow) -> dict[str, ArmSeeds]:
    """Every arm's campaigns, seeds 0..``--seeds``-1 (seed 0 of every arm first)."""
    arms = {name: ArmSeeds() for name in args.arms}
    for seed in range(args.seeds):
        for name in args.arms:
            curve_, md, bought, doc = seed_campaign(name, seed, args, md_test, elbow)
            arms[name].curves.append(curve_)
            arms[name].bought.append(bought)
            if md:
                arms[name].md.append(md)
            if doc:
                arms[name].elbows.append(doc)
    return arms


def main() -> None:
    args = build_parser().parse_args()
    logging.getLogger("jobflow").setLevel(logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    md_test = []
    if args.md_test_starts > 0:
        md_test = oracle_md_test_set(args, args.out / "oracle-md-test.extxyz")
        print(f"oracle-MD test set: {len(md_test)} frames ({args.out / 'oracle-md-test.extxyz'})")
    elbow = None
    if str(args.elbow) != "none":
        elbow = load_elbow_set(args.elbow, test_set_key)
        print(f"elbow set: {len(elbow.frames)} frames ({args.elbow}), GFN1-xTB barrier "
              f"{elbow.barrier:.2f} eV")  # fmt: skip
    arms = run_arms(args, md_test, elbow)
    curves = {name: mean_curve(arm.curves) for name, arm in arms.items()}
    # oracle-MD (else validation) curve of every seed
    seed_curves = {name: arm.md_part("mae") if arm.md else arm.curves for name, arm in arms.items()}
    seed_tails = {name: arm.md_part("p95") for name, arm in arms.items() if arm.md}
    elbows = {name: arm.elbows for name, arm in arms.items() if arm.elbows}
    if elbows:
        print(f"elbow plot: {plot_final_elbows(elbows, elbow, args.out / 'selection_elbow.png')}")
    bought = {name: arm.bought for name, arm in arms.items()}
    md_curves, tail_curves, element_curves, temperature_curves = {}, {}, {}, {}
    for name, arm in arms.items():
        if arm.md:
            md_curves[name] = mean_curve(arm.md_part("mae"))
            tail_curves[name] = mean_curve(arm.md_part("p95"))
            element_curves[name] = mean_keyed_curves(arm.md_part("by_element"))
            temperature_curves[name] = mean_keyed_curves(arm.md_part("by_temperature"))
    val_ratio = report(
        curves, args.target, "validation", args.al_arm, args.out / "selection.png", args.random_arm
    )
    if not md_curves:
        print_per_seed(seed_curves, args, elbows=elbows)
        print(f"labels needed to reach the target force MAE, AL / random = {val_ratio:.2f}")
        return
    print(f"validation set (rattled seeds): AL / random = {val_ratio:.2f}")
    print("\noracle-MD test, 95th percentile of the frames' largest atomic force error (meV/Å)")
    for name, pts in tail_curves.items():
        print(f"{name:<18} " + "  ".join(f"{n:>3}:{e:6.0f}" for n, e in pts))
    print_keyed_curves(
        "oracle-MD test force MAE per element (meV/Å; the MAE is these weighted by atom count)",
        element_curves,
    )
    print("\ntraining labels per exploration temperature, each seed")
    for name, per_seed_counts in bought.items():
        print(f"{name:<21} " + " | ".join(
            ", ".join(f"{t} {n}" for t, n in counts.items()) for counts in per_seed_counts
        ))  # fmt: skip
    print_keyed_curves(
        "oracle-MD test force MAE per MD temperature of the frames (meV/Å)", temperature_curves
    )
    if args.al_arm in element_curves and args.random_arm in element_curves:
        al_elements, random_elements = element_curves[args.al_arm], element_curves[args.random_arm]
        for element in sorted(al_elements.keys() & random_elements.keys()):
            best = min(e for _, e in random_elements[element])
            ratio = labels_ratio(al_elements[element], random_elements[element])
            print(f"labels to reach random's best force MAE on {element} atoms ({best:.1f} meV/Å), "
                  f"AL / random = {ratio:.2f}")  # fmt: skip
    if args.al_arm in tail_curves and args.random_arm in tail_curves:
        tail_target = min(e for _, e in tail_curves[args.random_arm])
        tail_ratio = labels_ratio(tail_curves[args.al_arm], tail_curves[args.random_arm])
        print(f"labels to reach random's best tail ({tail_target:.0f} meV/Å), AL / random = "
              f"{tail_ratio:.2f}")  # fmt: skip
    md_ratio = report(
        md_curves,
        args.target,
        "oracle-MD test",
        args.al_arm,
        args.out / "selection_md_test.png",
        args.random_arm,
        seed_curves,
    )
    print_per_seed(seed_curves, args, seed_tails, elbows)
    print(f"labels needed to reach the target force MAE, AL / random = {md_ratio:.2f}")


if __name__ == "__main__":
    main()
