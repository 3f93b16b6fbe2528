"""Data efficiency of frozen fine-tuning at CPU scale (the paper's learning curves, two cases).

The mini foundation (PBE level, distilled from CHGNet) is fine-tuned to a *different* target:

- ``h2cu``: H2 on Cu(111) (plus clean slabs and H2 molecules), labelled by GFN1-xTB;
- ``alloys``: Cu-Ni-Au fcc solid solutions (elements, binaries, ternaries; strained, rattled),
  labelled by CHGNet's r2SCAN model (a PBE -> r2SCAN transfer).

For each case, nested training subsets (5 / 10 / 20 / 50 / 100 % of N, stratified by
chemical system) train: a MACE from scratch (the foundation's architecture, read from its file:
channels, L, cutoff, layers, correlation), a full fine-tune (f0),
and frozen fine-tunes (f5, f6); "sweep" is the level a freeze sweep would pick at that size
(lowest error on a separate validation split). The full-data scratch model is trained first and,
while it ends at its epoch cap, again with 2x, 4x, ... the epochs up to ``--max-extension``
(default 2; the target must not come from an under-trained model; ``--extend-from
checkpoint``, the default: each longer run goes on from the shorter run's best checkpoint, so 2x
costs the epochs after that, not twice the epochs; ``fresh``: starts again); for the same reason a
sweep-chosen fine-tune that ended at its epoch cap, not by early stopping, is extended the same
way and the run best on validation is kept (up to the size where the curve reaches the target;
later sizes cannot change the ratio; ``--extend-all``: every size). The fine-tunes of every
size come next (they decide the ratio, so an interrupted run knows it sooner), scratch's
learning curve last. Test sets are fixed and separate. Prints a table per case, writes a PNG
per case, the ratio "training points the sweep-chosen fine-tune needs to reach the from-scratch
full-data force MAE, divided by N" per case, and last the larger ratio:

    .venv/bin/python workflows/benchmarks/data_efficiency.py [--n 300] [--quick] [--jobs 2]
        [--foundation PATH] [--lr 0.01 0.005] [--lr-finetune 0.005 0.002] [--patience 30]
        [--epoch-scale 2] [--max-extension 4] [--extend-from checkpoint]
        [--progress]   (the trainings recorded so far in OUT/CASE-ledger.json; trains nothing)

Learning-rate grids: with several ``--lr`` values the full-data scratch model is trained (and
extended) at each and the target is the best of them; with several ``--lr-finetune`` values the
freeze sweep runs at the first and the level it chooses is trained (and extended) at the others,
the sweep keeping the run with the lowest validation error. Runs at a grid's first rate keep
their folders (and ledger records), the others live in ``nN-lrX/`` (targets: ``lrX/``).

A short ``--patience`` ends trainings on noise: with 10, f0 at 60 H2/Cu structures stopped at
epoch 59 on one EMA spike while its validation error was still falling (test 65.3 meV/Å; the
same run with patience 30 and 200 epochs: 42.6), so use 30 or more.

Run it alone on the machine (training speed depends strongly on other load). ``--jobs 2`` runs
the two cases side by side, one torch thread each. A re-run reuses every model whose settings
and training data are unchanged (``OUT/CASE/n*/ARM/frostline-settings.json``), and every
finished training recorded in ``OUT/CASE-ledger.json`` with the same settings and data (test and
validation errors, early stop; commit the ledger and ``OUT/CASE-labels.extxyz`` and a run that
spans sessions resumes on a fresh checkout, without the model files).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk
from rich.console import Console
from rich.table import Table

from frostline.finetune.committee import committee_calculator
from frostline.finetune.foundation import (
    MINI_FOUNDATION,
    foundation_architecture,
    label_with_chgnet,
)
from frostline.finetune.train import MaceTrainSettings, run_mace_training, training_outcome
from frostline.label.calculators import xtb_calculator
from frostline.structures import h2_cu111_structures, random_alloy, rattle, strain

console = Console()
FRACTIONS = (0.05, 0.1, 0.2, 0.5, 1.0)
ARMS = ("scratch", "f0", "f5", "f6")
FINE_TUNE_ARMS = ("f0", "f5", "f6")  # the freeze sweep's candidates


def label_xtb(structures: list[Atoms]) -> list[Atoms]:
    calc = xtb_calculator(method="GFN1-xTB", electronic_temperature=1000.0)
    out = []
    for atoms in structures:
        a = atoms.copy()
        a.calc = calc
        lab = atoms.copy()
        lab.info["REF_energy"] = float(a.get_potential_energy())
        lab.arrays["REF_forces"] = np.asarray(a.get_forces(), dtype=float)
        out.append(lab)
    return out


def h2cu_structures(n: int, rng: np.random.Generator) -> list[Atoms]:
    """H2/Cu(111) with ~10 % clean slabs and ~5 % H2 molecules (E0s need varied compositions)."""
    out = []
    for _ in range(n):
        u = rng.random()
        if u < 0.1:
            out.append(h2_cu111_structures(1, rng, include_references=True)[0])
        elif u < 0.15:
            box = h2_cu111_structures(2, rng, include_references=True)[1]
            box.positions[1] += (box.positions[1] - box.positions[0]) * rng.uniform(-0.15, 0.3)
            out.append(box)
        else:
            out.append(h2_cu111_structures(1, rng, include_references=False)[0])
    return out


def alloy_structures(n: int, rng: np.random.Generator) -> list[Atoms]:
    """Cu-Ni-Au: elements, binaries and ternaries in 4-8 atom fcc cells, strained and rattled."""
    systems = [("Cu",), ("Ni",), ("Au",), ("Cu", "Ni"), ("Cu", "Au"), ("Ni", "Au")]
    systems += [("Cu", "Ni", "Au")] * 3
    out = []
    for _ in range(n):
        elements = systems[rng.integers(len(systems))]
        if len(elements) == 1:
            cell = bulk(elements[0], "fcc", cubic=True).repeat(rng.choice([(1, 1, 1), (2, 1, 1)]))
        else:
            cell = random_alloy(elements, rng)
        out.append(rattle(strain(cell, rng, 0.04), rng, rng.uniform(0.02, 0.1)))
    return out


def chemical_system(atoms: Atoms) -> str:
    """Element set such as "Au-Cu" (every subset must contain every element set for the E0s)."""
    return "-".join(sorted(set(atoms.get_chemical_symbols())))


def nested_subsets(train: list[Atoms], rng: np.random.Generator) -> dict[float, list[Atoms]]:
    """Nested subsets stratified by chemical system (each element set in every subset)."""
    order = rng.permutation(len(train))
    first_of = {}
    for i in order:  # one structure of every element set comes first
        first_of.setdefault(chemical_system(train[i]), i)
    head = list(first_of.values())
    order = head + [i for i in order if i not in set(head)]
    return {
        f: [train[i] for i in order[: max(len(head), round(f * len(train)))]] for f in FRACTIONS
    }


def epochs_for(n: int, quick: bool) -> int:
    """Roughly constant number of structure passes per run (small sets get more epochs)."""
    if quick:
        return 3
    return int(np.clip(6000 / max(n, 1), 25, 200))


@dataclass
class Trained:
    """What the benchmark needs of one training: errors on the test and validation splits."""

    test: tuple[float, float]  # (force MAE meV/Å, energy MAE meV/atom)
    validation: tuple[float, float]
    stopped_early: bool  # ended by early stopping, not at its epoch cap
    seconds: float  # wall time of the training and its evaluation
    epochs_run: int | None = None  # from mace-torch's log (None: recorded before it was kept)
    best_epoch: int | None = None  # the epoch whose checkpoint the model is
    source: str = "trained"  # "trained", "model" (file reused) or "ledger" (record reused)


class Ledger:
    """Finished trainings of one case, ``OUT/CASE-ledger.json``, kept in the repository.

    Each record holds the settings-and-data key of the training it measured, so a re-run on a
    fresh checkout (no model files) reuses exactly the trainings whose settings and data are
    unchanged and trains the rest; a long benchmark then spans sessions without losing work.
    """

    def __init__(self, path: Path, root: Path) -> None:
        self.path, self.root = path, root  # records are named by their folder under ``root``
        self.records: dict[str, dict] = json.loads(path.read_text()) if path.exists() else {}

    def get(self, name: str, key: str) -> Trained | None:
        record = self.records.get(name)
        if record is None or record["key"] != key:
            return None
        fields = {k: v for k, v in record.items() if k not in ("key", "finished")}
        fields["test"], fields["validation"] = tuple(fields["test"]), tuple(fields["validation"])
        return Trained(**fields, source="ledger")

    def get_continuation(self, name: str, key: str) -> Trained | None:
        """The record of ``name`` if it is a continuation whose own settings, data and
        validation set are ``key``'s (a fresh run's key), whichever run it went on from.

        When the record of a shorter run in a chain is lost and that run is trained again
        afresh (a fresh checkout has no checkpoint to go on from), its key changes, and so would
        the key of every longer run continued from it: this finds the longer run's record, as a
        record of a fresh run of the same settings is found for a continued one."""
        record = self.records.get(name)
        if record is None:
            return None
        own = json.loads(record["key"])
        if "continues" not in own:
            return None
        del own["continues"]
        return self.get(name, record["key"]) if own == json.loads(key) else None

    def put(self, name: str, key: str, trained: Trained) -> None:
        record = asdict(trained)
        del record["source"]
        self.records[name] = {"key": key, **record, "finished": time.strftime("%Y-%m-%d %H:%M")}
        partial = self.path.with_suffix(".json.partial")
        partial.write_text(json.dumps(self.records, indent=1, sort_keys=True))
        partial.replace(self.path)  # never a half-written ledger


def train_settings(
    arm: str, data: list[Atoms], args: argparse.Namespace, epoch_factor: int = 1
) -> MaceTrainSettings:
    """mace-torch settings of one arm (``scratch``, or ``fN``: fine-tune at freeze level N)."""
    scratch = arm == "scratch"
    # patience is about noise in the validation curve, not the budget: it does not scale
    patience = args.patience or None
    return MaceTrainSettings(
        name=arm,
        seed=args.seed,
        max_num_epochs=epoch_factor * args.epoch_scale * epochs_for(len(data), args.quick),
        batch_size=min(4, max(1, len(data) - 1)),
        lr=first_rate(args.lr if scratch else args.lr_finetune),
        energy_weight=10.0,
        forces_weight=10.0,
        e0s="average" if scratch else "estimated",
        device="cpu",
        foundation_model=None if scratch else str(args.foundation),
        freeze=None if scratch else int(arm[1:]),
        extra={
            **({"patience": str(patience)} if patience else {}),
            # set only when asked for: the ledgers' keys of runs at mace-torch's 50 stay valid
            **(
                {"scheduler_patience": str(args.scheduler_patience)}
                if getattr(args, "scheduler_patience", 0)
                else {}
            ),
        },  # fmt: skip
        **(foundation_architecture(str(args.foundation)) if scratch else {}),
    )


def first_rate(rates: float | list[float]) -> float:
    """The rate a run uses: the first of a grid (``--lr`` and ``--lr-finetune`` take several)."""
    return rates[0] if isinstance(rates, list) else rates


def at_rate(args: argparse.Namespace, arm: str, lr: float) -> argparse.Namespace:
    """``args`` with ``arm``'s rate set to ``lr`` (scratch: ``--lr``, else ``--lr-finetune``)."""
    field = "lr" if arm == "scratch" else "lr_finetune"
    return argparse.Namespace(**{**vars(args), field: [lr]})


def rate_folder(work: Path, lr: float, grid: float | list[float]) -> Path:
    """Where a run at ``lr`` lives: ``work`` for the grid's first rate (the folders and ledger
    names of runs recorded before the grid existed), ``work-lrX`` for the others."""
    return work if lr == first_rate(grid) else work.with_name(f"{work.name}-lr{lr:g}")


def training_key(
    settings: MaceTrainSettings, data: list[Atoms], valid: list[Atoms], continues: str | None
) -> str:
    """What a training's result depends on: settings, data and (``continues``) the key of the
    run whose best checkpoint it went on from."""
    parts = {
        "settings": settings.fingerprint(),
        "data": data_digest(data),
        "valid": data_digest(valid),
    }
    if continues is not None:
        parts["continues"] = continues
    return json.dumps(parts, sort_keys=True)


def best_checkpoint(folder: Path, arm: str) -> Path | None:
    """The checkpoint mace-torch kept in ``folder`` (its best epoch; None: none there)."""
    found = sorted(
        (folder / "checkpoints").glob(f"{arm}_run-*_epoch-*.pt"),
        key=lambda p: int(p.stem.rsplit("-", 1)[1]),
    )
    return found[-1] if found else None


def start_continuation(folder: Path, checkpoint: Path, key: str) -> None:
    """Make ``folder`` a training that mace-torch resumes from ``checkpoint`` (restart_latest).

    A folder already started with ``key`` (an interrupted continuation) is left to resume from
    its own latest checkpoint; anything else in it (another attempt) is cleared first.
    """
    import shutil

    started = folder / "frostline-started.json"
    if started.exists() and started.read_text() == key:
        return
    for sub in ("checkpoints", "logs", "results"):
        shutil.rmtree(folder / sub, ignore_errors=True)
    (folder / "checkpoints").mkdir(parents=True)
    shutil.copy2(checkpoint, folder / "checkpoints" / checkpoint.name)
    started.write_text(key)


def train(
    arm: str,
    data: list[Atoms],
    work: Path,
    args: argparse.Namespace,
    valid: list[Atoms],
    test: list[Atoms],
    ledger: Ledger,
    epoch_factor: int = 1,
    previous: Path | None = None,
) -> Trained:
    """Train one arm (``scratch``, or ``fN`` = fine-tune the foundation at freeze level N).

    mace-torch keeps the checkpoint with the lowest loss on ``valid`` (the benchmark's fixed
    validation split, the same for every arm and size); with ``args.patience`` it stops after that
    many epochs without improvement, so every arm is trained to convergence within its budget.
    A training whose settings and data match a model file in ``work`` or a ledger record is not
    repeated. ``previous``: the folder of the same arm's shorter run (an extension); with
    ``--extend-from checkpoint`` the run goes on from that run's best checkpoint to the higher
    epoch cap instead of starting again (the 2x run then costs the epochs after the 1x run's
    best, not 2x); trained afresh when that checkpoint is not there (a fresh checkout).
    """
    settings = train_settings(arm, data, args, epoch_factor)
    folder = work / arm
    name = folder.relative_to(ledger.root).as_posix()
    stamp = folder / "frostline-settings.json"
    key = training_key(settings, data, valid, None)
    if (recorded := ledger.get(name, key)) is not None:
        return recorded  # its errors were measured when it finished: nothing to evaluate again
    checkpoint = None
    if previous is not None and args.extend_from == "checkpoint":
        previous_settings = train_settings(arm, data, args, epoch_factor // 2)
        before = previous_key(previous, ledger, previous_settings, data, valid)
        continued = training_key(settings, data, valid, before)
        if (recorded := ledger.get(name, continued)) is not None:
            return recorded
        if (recorded := ledger.get_continuation(name, key)) is not None:
            console.print(f"{name}: recorded as a continuation of an earlier run of its chain")
            return recorded
        checkpoint = best_checkpoint(previous, arm)
        if checkpoint is not None or (stamp.exists() and stamp.read_text() == continued):
            key = continued
    t0 = time.perf_counter()
    model = folder / f"{arm}.model"
    if model.exists() and stamp.exists() and stamp.read_text() == key:
        source = "model"  # same settings and data: a re-run reuses the model
    else:
        source = "trained"
        if checkpoint is not None:
            start_continuation(folder, checkpoint, key)
            console.print(f"{name}: going on from {checkpoint.relative_to(ledger.root)}")
        model = run_mace_training(settings, data, folder, valid=valid)
        stamp.write_text(key)
    outcome = training_outcome(folder, arm, settings.max_num_epochs)
    if outcome is None:
        raise RuntimeError(f"{folder}: no mace-torch log of the training {arm}")
    trained = Trained(
        errors(model, test), errors(model, valid), outcome.stopped_early,
        time.perf_counter() - t0, outcome.epochs_run, outcome.best_epoch, source,
    )  # fmt: skip
    if source == "trained" or ledger.get(name, key) is None:
        # a reused model file is recorded too when its record is missing (a run killed between
        # its training and its record); its seconds are then the evaluation's only
        ledger.put(name, key, trained)
    return trained


def previous_key(
    folder: Path,
    ledger: Ledger,
    settings: MaceTrainSettings,
    data: list[Atoms],
    valid: list[Atoms],
) -> str:
    """The key of the run in ``folder`` (it may itself be a continuation): its stamp, else its
    ledger record's (a fresh checkout has no model folders), else a fresh run's with
    ``settings``."""
    stamp = folder / "frostline-settings.json"
    if stamp.exists():
        return stamp.read_text()
    record = ledger.records.get(folder.relative_to(ledger.root).as_posix())
    return record["key"] if record else training_key(settings, data, valid, None)


def extend_while_capped(
    arm: str,
    data: list[Atoms],
    first: Trained,
    work: Path,
    ledger: Ledger,
    args: argparse.Namespace,
    valid: list[Atoms],
    test: list[Atoms],
    first_folder: Path | None = None,
) -> list[tuple[int, Trained]]:
    """Retrain ``arm`` on ``data`` with 2x, 4x, ... the epochs (same patience) while the last run
    (``first``: the 1x run, in ``first_folder``, default ``work / arm``) ended at its epoch cap
    still improving, up to ``args.max_extension``. Returns (factor, run) per extension."""
    runs: list[tuple[int, Trained]] = []
    last, factor, previous = first, 2, first_folder or work / arm
    while not last.stopped_early and factor <= args.max_extension:
        extended = work / f"{arm}-{factor}x-epochs"
        last = train(arm, data, extended, args, valid, test, ledger, factor, previous)
        runs.append((factor, last))
        factor, previous = factor * 2, extended / arm
    return runs


def data_digest(data: list[Atoms]) -> str:
    """sha256 of positions, cells, numbers and labels (what a training run depends on)."""
    import hashlib

    h = hashlib.sha256()
    for atoms in data:
        for array in (atoms.numbers, atoms.positions, atoms.cell.array, atoms.arrays["REF_forces"]):
            h.update(np.ascontiguousarray(array, dtype=float).tobytes())
        h.update(np.float64(atoms.info["REF_energy"]).tobytes())
    return h.hexdigest()


def errors(model: Path, test: list[Atoms]) -> tuple[float, float]:
    """(force MAE meV/Å, energy MAE meV/atom) of a model on labelled structures."""
    calc = committee_calculator([model])
    df, de = [], []
    for atoms in test:
        a = atoms.copy()
        a.calc = calc
        df.append(np.abs(a.get_forces() - atoms.arrays["REF_forces"]).ravel())
        de.append(abs(a.get_potential_energy() - atoms.info["REF_energy"]) / len(a))
    return 1000 * float(np.concatenate(df).mean()), 1000 * float(np.mean(de))


def points_to_reach(sizes: list[int], maes: list[float], target: float) -> float | None:
    """Training points at which the (log-interpolated) curve first reaches ``target``."""
    for (n0, e0), (n1, e1) in zip(
        zip(sizes, maes, strict=True), zip(sizes[1:], maes[1:], strict=True), strict=False
    ):
        if e0 <= target:
            return float(n0)
        if e1 <= target:
            t = (e0 - target) / (e0 - e1)
            return float(np.exp(np.log(n0) + t * (np.log(n1) - np.log(n0))))
    return float(sizes[0]) if maes and maes[0] <= target else None


def run_case(case: str, args: argparse.Namespace, out: Path) -> float:
    rng = np.random.default_rng(args.seed)
    n_total = args.n + args.n_val + args.n_test
    build = h2cu_structures if case == "h2cu" else alloy_structures
    from ase.io import read, write

    cache = out / f"{case}-labels.extxyz"
    if not cache.exists():
        raw = build(n_total, rng)
        t0 = time.perf_counter()
        structures = label_xtb(raw) if case == "h2cu" else label_with_chgnet(raw, "r2scan")
        console.print(f"{case}: {len(structures)} labels in {time.perf_counter() - t0:.0f} s")
        for a in structures:
            a.calc = None
        write(cache, structures, format="extxyz")
    structures = read(cache, ":")  # first run and re-runs train on identical (rounded) data
    train_pool = structures[: args.n]
    val = structures[args.n : args.n + args.n_val]
    test = structures[args.n + args.n_val :]
    subsets = nested_subsets(train_pool, np.random.default_rng([args.seed, 1]))
    subsets_by_size = {len(data): data for data in subsets.values()}
    sizes = sorted(subsets_by_size)
    ledger = Ledger(out / f"{case}-ledger.json", out / case)
    results: dict[str, dict[int, tuple[float, float]]] = defaultdict(dict)
    val_force: dict[str, dict[int, float]] = defaultdict(dict)

    def report(label: str, n: int, trained: Trained, note: str = "") -> None:
        console.print(
            f"{case} {label} n={n:4d}: test F MAE {trained.test[0]:7.1f} meV/Å{note} "
            f"({trained.seconds:.0f} s, {trained.source})"
        )

    # the target first (so a partial run already knows it): the full-data scratch model, and
    # since the target must not come from an under-trained model, the same trained longer while
    # it ends at its epoch cap (2x, 4x, ... up to --max-extension)
    # every rate of the --lr grid trains its own target run (and its extensions): the target is
    # the best of them, so a fine-tune with a tuned rate is not compared with an untuned scratch
    target = float("inf")
    for lr in args.lr:
        rate_args = at_rate(args, "scratch", lr)
        work = rate_folder(out / case / f"n{sizes[-1]}", lr, args.lr)
        label = "scratch" if lr == args.lr[0] else f"scratch lr{lr:g}"
        full = train("scratch", subsets[1.0], work, rate_args, val, test, ledger)
        report(label, sizes[-1], full)
        if lr != args.lr[0]:
            results[label][sizes[-1]] = full.test
        target = min(target, full.test[0])
        longer = out / case / (f"lr{lr:g}" if lr != args.lr[0] else "")
        runs = extend_while_capped(
            "scratch", subsets[1.0], full, longer, ledger, rate_args, val, test, work / "scratch"
        )
        for factor, trained in runs:
            report(f"{label} {factor}x epochs", sizes[-1], trained)
            results[f"{label} {factor}x epochs"][sizes[-1]] = trained.test
            target = min(target, trained.test[0])
    console.print(f"{case}: target (best full-data scratch test force MAE) {target:.1f} meV/Å")
    # the fine-tunes of every size first (they decide the ratio), then scratch's learning curve
    for n in sizes:
        trained_at_n = {}
        for arm in FINE_TUNE_ARMS:
            trained = train(arm, subsets_by_size[n], out / case / f"n{n}", args, val, test, ledger)
            results[arm][n], val_force[arm][n] = trained.test, trained.validation[0]
            trained_at_n[arm] = trained
            report(f"{arm:>7}", n, trained)
        # what a freeze sweep on the validation split keeps
        best = min(FINE_TUNE_ARMS, key=lambda a: val_force[a][n])
        results["sweep"][n] = results[best][n]
        results["sweep level"][n] = (float(best[1:]), 1.0, first_rate(args.lr_finetune))
        reached = any(results["sweep"][m][0] <= target for m in sizes if m < n)
        if reached and not args.extend_all:
            continue  # sizes after the curve reached the target cannot change the ratio
        # the target comes from a scratch model trained as long as it kept improving; a fine-tune
        # that ended at its epoch cap still improving gets the same treatment, and the sweep keeps
        # the run with the lowest validation error; the chosen level is then trained at the other
        # rates of the --lr-finetune grid (each extended the same way), the sweep keeps the best
        best_validation = val_force[best][n]
        for lr in args.lr_finetune:
            rate_args = at_rate(args, best, lr)
            work = rate_folder(out / case / f"n{n}", lr, args.lr_finetune)
            if lr == args.lr_finetune[0]:
                label, first = best, trained_at_n[best]
            else:
                label = f"{best} lr{lr:g}"
                first = train(best, subsets_by_size[n], work, rate_args, val, test, ledger)
                results[label][n] = first.test
                report(f"{label} 1x epochs", n, first, f", validation {first.validation[0]:.1f}")
            runs = extend_while_capped(
                best, subsets_by_size[n], first, work, ledger, rate_args, val, test
            )
            for factor, trained in runs:
                results[f"{label} {factor}x epochs"][n] = trained.test
                note = f", validation {trained.validation[0]:.1f} (1x: {first.validation[0]:.1f})"
                report(f"{label} {factor}x epochs", n, trained, note)
            for factor, trained in [(1, first), *runs]:
                if trained.validation[0] < best_validation:
                    best_validation = trained.validation[0]
                    results["sweep"][n] = trained.test
                    results["sweep level"][n] = (float(best[1:]), float(factor), lr)
    for n in sizes:
        trained = train("scratch", subsets_by_size[n], out / case / f"n{n}", args, val, test,
                        ledger)  # fmt: skip
        results["scratch"][n] = trained.test
        report(f"{'scratch':>7}", n, trained)
    table = Table(title=f"{case}: test force MAE meV/Å (energy MAE meV/atom)")
    table.add_column("n train", justify="right")
    for arm in (*ARMS, "sweep"):
        table.add_column(arm, justify="right")
    for n in sizes:
        row = [f"{results[a][n][0]:.1f} ({results[a][n][1]:.1f})" for a in (*ARMS, "sweep")]
        level, extended, lr = results["sweep level"][n]
        row[-1] += f" f{int(level)}" + (f" {int(extended)}x" if extended > 1 else "")
        row[-1] += f" lr{lr:g}" if lr != first_rate(args.lr_finetune) else ""
        table.add_row(str(n), *row)
    console.print(table)
    plot(case, sizes, results, out / f"data_efficiency_{case}.png")
    need = points_to_reach(sizes, [results["sweep"][n][0] for n in sizes], target)
    ratio = need / sizes[-1] if need is not None else float("inf")
    document = {a: {str(n): v for n, v in r.items()} for a, r in results.items()}
    document["ratio"] = ratio if np.isfinite(ratio) else None
    (out / f"{case}.json").write_text(json.dumps(document, indent=1))
    print(
        f"{case}: fine-tuned (sweep) reaches the best from-scratch full-data force MAE "
        f"{target:.1f} meV/Å with "
        + (f"{need:.0f}" if need else "more than all")
        + f" of {sizes[-1]} points: ratio {ratio:.2f}"
    )
    return ratio


def plot(case: str, sizes: list[int], results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for arm in (*ARMS, "sweep"):
        ax.plot(sizes, [results[arm][n][0] for n in sizes], "o-" if arm != "sweep" else "k--",
                label=arm)  # fmt: skip
    for i, arm in enumerate(ARMS):
        for factor, marker in ((2, "*"), (4, "P"), (8, "X")):
            longer = results.get(f"{arm} {factor}x epochs", {})
            if longer:
                ax.plot(list(longer), [f for f, _ in longer.values()], marker, color=f"C{i}",
                        ms=12, label=f"{arm}, {factor}x epochs")  # fmt: skip
        # runs at the other rates of a learning-rate grid: open markers, one per run (1x, 2x, ...)
        rates = sorted({k.split()[1] for k in results if k.startswith(f"{arm} lr")})
        for rate, marker in zip(rates, "Dsv^", strict=False):
            runs = [r for k, r in results.items() if k.split()[:2] == [arm, rate]]
            points = [(n, r[n][0]) for r in runs for n in r]
            ax.plot(*zip(*points, strict=True), marker, mfc="none", color=f"C{i}", ms=9,
                    label=f"{arm}, {rate.replace('lr', 'lr ')} (all epoch budgets)")  # fmt: skip
    # the target: the best full-data scratch model over rates and epoch budgets
    n_all = sizes[-1]
    full = [r[n_all][0] for k, r in results.items() if k.startswith("scratch") and n_all in r]
    if full:
        ax.axhline(min(full), color="grey", ls=":", label=f"target {min(full):.1f} meV/Å")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training structures")
    ax.set_ylabel("test force MAE (meV/Å)")
    ax.set_title(f"data efficiency: {case}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_progress(case: str, out: Path) -> None:
    """The trainings a case has recorded so far (``OUT/CASE-ledger.json``), in finishing order."""
    path = out / f"{case}-ledger.json"
    if not path.exists():
        console.print(f"{case}: nothing recorded yet ({path})")
        return
    records = json.loads(path.read_text())
    table = Table(title=f"{case}: trainings recorded in {path.name}")
    for column in ("run", "test F (E)", "validation F", "epochs", "kept", "ended", "finished"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for name, r in sorted(records.items(), key=lambda kv: kv[1]["finished"]):
        ended = "early stop" if r["stopped_early"] else "epoch cap"
        if "continues" in json.loads(r["key"]):
            ended += ", continued"
        table.add_row(
            name,
            f"{r['test'][0]:.1f} ({r['test'][1]:.1f})",
            f"{r['validation'][0]:.1f}",
            "–" if r.get("epochs_run") is None else str(r["epochs_run"]),
            "–" if r.get("best_epoch") is None else str(r["best_epoch"]),
            ended,
            r["finished"],
        )
    console.print(table)


def replot(case: str, out: Path) -> None:
    """Redraw a case's PNG from ``OUT/CASE.json`` (no training)."""
    doc = json.loads((out / f"{case}.json").read_text())
    results = {
        arm: {int(n): tuple(v) for n, v in per_size.items()}
        for arm, per_size in doc.items()
        if isinstance(per_size, dict)
    }
    plot(case, sorted(results["scratch"]), results, out / f"data_efficiency_{case}.png")


def run_cases_in_parallel(args: argparse.Namespace) -> list[float]:
    """Run each case in its own process with one torch thread; logs go to ``OUT/CASE.log``."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    passed = ["--n", str(args.n), "--n-val", str(args.n_val), "--n-test", str(args.n_test)]
    passed += ["--seed", str(args.seed), "--out", str(args.out)]
    passed += ["--quick"] if args.quick else []
    passed += ["--foundation", str(args.foundation), "--lr", *map(str, args.lr)]
    passed += ["--lr-finetune", *map(str, args.lr_finetune), "--patience", str(args.patience)]
    passed += ["--epoch-scale", str(args.epoch_scale)]
    passed += ["--extend-all"] if args.extend_all else []
    passed += ["--max-extension", str(args.max_extension), "--extend-from", args.extend_from]
    processes = {}
    for i, case in enumerate(args.cases):
        if i >= args.jobs:  # wait for a free slot
            next(iter(processes.values())).wait()
        cmd = [sys.executable, __file__, *passed, "--cases", case, "--jobs", "1"]
        log = open(args.out / f"{case}.log", "w")  # noqa: SIM115 - closed by the child's exit
        processes[case] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        console.print(f"{case}: running in process {processes[case].pid}, log {log.name}")
    ratios = []
    for case, process in processes.items():
        if process.wait() != 0:
            raise SystemExit(f"case {case} failed (exit {process.returncode}); see its log")
        log_text = (args.out / f"{case}.log").read_text()
        summary = log_text[log_text.rfind(f"{case}: test force MAE") :]
        console.print(summary[: summary.find("total time")], end="")
        ratio = json.loads((args.out / f"{case}.json").read_text())["ratio"]
        ratios.append(float("inf") if ratio is None else ratio)
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="training pool size N")
    parser.add_argument("--n-val", type=int, default=30)
    parser.add_argument("--n-test", type=int, default=50)
    parser.add_argument("--cases", nargs="+", default=["h2cu", "alloys"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--extend-all",
        action="store_true",
        help="longer retrain of every capped sweep fine-tune, also after the target is reached",
    )
    parser.add_argument(
        "--max-extension",
        type=int,
        default=2,
        help="retrain a capped target or sweep model with 2x, 4x, ... epochs up to this factor",
    )
    parser.add_argument(
        "--extend-from",
        choices=["checkpoint", "fresh"],
        default="checkpoint",
        help="an extension goes on from the shorter run's best checkpoint, or starts again",
    )
    parser.add_argument("--quick", action="store_true", help="3 epochs: a smoke run")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="run the cases in this many processes at once (one torch thread each)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("workflows/benchmarks/results/data_efficiency")
    )
    parser.add_argument(
        "--foundation", type=Path, default=MINI_FOUNDATION, help="foundation .model to fine-tune"
    )
    parser.add_argument(
        "--lr",
        type=float,
        nargs="+",
        default=[0.01],
        help="learning rate(s) from scratch: the curve uses the first, the target is the best "
        "full-data model over all of them",
    )
    parser.add_argument(
        "--lr-finetune",
        type=float,
        nargs="+",
        default=[0.01],
        help="fine-tuning rate(s): the freeze sweep runs at the first, the chosen level is then "
        "trained at the others and the sweep keeps the best on validation",
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=0,
        help="early stopping: epochs without validation improvement (0: run all epochs)",
    )
    parser.add_argument(
        "--scheduler-patience",
        type=int,
        default=0,
        help="epochs before mace-torch lowers the rate (0: its default 50; with --patience 30 "
        "the rate then never decays)",
    )
    parser.add_argument(
        "--epoch-scale", type=int, default=1, help="multiply the epoch budget (with --patience)"
    )
    parser.add_argument("--plot-only", action="store_true", help="redraw PNGs from OUT/CASE.json")
    parser.add_argument(
        "--progress", action="store_true", help="print the trainings recorded so far, train none"
    )
    args = parser.parse_args()
    if args.progress:
        for case in args.cases:
            print_progress(case, args.out)
        return
    if args.plot_only:
        for case in args.cases:
            replot(case, args.out)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if args.jobs > 1 and len(args.cases) > 1:
        ratios = run_cases_in_parallel(args)
    else:
        ratios = [run_case(case, args, args.out) for case in args.cases]
    print(f"total time {(time.perf_counter() - t0) / 60:.1f} min")
    print(f"data-efficiency ratio (larger of the cases, goal <= 0.2) = {max(ratios):.2f}")


if __name__ == "__main__":
    main()
