"""Data efficiency of frozen fine-tuning at CPU scale (the paper's learning curves, two cases).

The mini foundation (PBE level, distilled from CHGNet) is fine-tuned to a *different* target:

- ``h2cu``: H2 on Cu(111) (plus clean slabs and H2 molecules), labelled by GFN1-xTB;
- ``alloys``: Cu-Ni-Au fcc solid solutions (elements, binaries, ternaries; strained, rattled),
  labelled by CHGNet's r2SCAN model (a PBE -> r2SCAN transfer).

For each case, nested training subsets (5 / 10 / 20 / 50 / 100 % of N, stratified by
chemical system) train: a MACE from scratch (the foundation's architecture, read from its file:
channels, L, cutoff, layers, correlation), a full fine-tune (f0),
and frozen fine-tunes (f5, f6); "sweep" is the level a freeze sweep would pick at that size
(lowest error on a separate validation split). With ``--arms ... replay``, a fourth fine-tune,
f0 with mace-torch's multihead replay of the foundation's shipped pretraining subset
(``frostline.finetune.replay``, ``--replay-samples`` drawn per training), is trained at every
size and shown beside the others; it is not a sweep candidate (the ratio stays the freeze
sweep's). The full-data scratch model (the target) is trained first and, until a run ends by
early stopping (not at its cap, so the project's ``TrainingOutcome.still_improving`` is false),
again with 2x, 4x, ... the epochs up to ``--max-extension-target`` (default 16; a target still
at its cap after that is reported as not converged; ``--extend-from checkpoint``, the default:
each longer run goes on from the shorter run's best checkpoint, so 2x costs the epochs after
that, not twice the epochs; ``fresh``: starts again); a sweep-chosen fine-tune that ended at
its epoch cap is extended the same way up to ``--max-extension`` (default 4) and the run best
on validation is kept (up to the size where the seed-mean curve reaches the target; later sizes
cannot change the ratio; ``--extend-all``: every size). The fine-tunes of every size come next
(they decide the ratio, so an interrupted run knows it sooner), scratch's learning curve (and
replay's) last. Test sets are fixed and separate.

Seeds: ``--seeds 0 1 2`` (the default) trains every arm and size once per mace-torch seed, on
the same labels, splits and subsets (``--data-seed``: the point is the spread of the training,
not of the data draw). Seed 0's folders and ledger records are those of the runs before seeds
existed (``OUT/CASE/nN/ARM``); seed S's live in ``OUT/CASE/seedS/``, their keys hold the seed.
Each seed has its own target (its best full-data scratch model) and its own sweep; a point is
the mean over the seeds that have it (± sample std in the table, error bars in the PNG).
The target is the seed mean of the seeds' targets; the ratio is the smallest *trained* size
whose seed-mean sweep force MAE reaches it, divided by N (the log-interpolated crossing is
printed beside it). Prints a table per case, writes a PNG and ``OUT/CASE.json`` per case, and
last, for the cases together:

    seeds per point: K of 3
    scratch targets converged: yes            (or: no (CASE, CASE))
    data-efficiency ratio (larger of the cases, goal <= 0.2) = X

With no arguments the options are the headline run's (``--out results/data_efficiency_f64_p30``,
mini-64, ``--lr 0.01 0.005 --lr-finetune 0.005 0.002 --patience 30 --max-extension 4``) and
the script *re-prints* it from the committed ledgers: it trains nothing, and says how many seeds
each point has and which trainings are not recorded. ``--train`` trains what the ledgers lack
(resumable; ``--quick`` implies it):

    OMP_NUM_THREADS=1 .venv/bin/python workflows/benchmarks/data_efficiency.py [--train]
        [--cases h2cu alloys] [--seeds 0 1 2] [--arms scratch f0 f5 f6 replay] [--jobs 2]
        [--n 300] [--quick] [--foundation PATH] [--lr 0.01 0.005] [--lr-finetune 0.005 0.002]
        [--patience 30] [--scheduler-patience 10] [--patience-reference 60] [--epoch-scale 2]
        [--max-extension 4] [--max-extension-target 16] [--extend-from checkpoint] [--out DIR]
        [--progress]   (the trainings recorded so far in OUT/CASE-ledger.json; trains nothing)

Before 2026-12-06 a run trained by default and the defaults were those of the first run
(``results/data_efficiency``: mini, one rate); the older results folders' commands in
docs/log/freeze-levels.md now need ``--train`` and their options spelled out.

Learning-rate grids: with several ``--lr`` values the full-data scratch model is trained (and
extended) at each and the target is the best of them; with several ``--lr-finetune`` values the
freeze sweep runs at the first and the level it chooses is trained (and extended) at the others,
the sweep keeping the run with the lowest validation error. Runs at a grid's first rate keep
their folders (and ledger records), the others live in ``nN-lrX/`` (targets: ``lrX/``).

A short ``--patience`` ends trainings on noise: with 10, f0 at 60 H2/Cu structures stopped at
epoch 59 on one EMA spike while its validation error was still falling (test 65.3 meV/Å; the
same run with patience 30 and 200 epochs: 42.6), so use 30 or more. Patience counts epochs,
and an epoch of 15 structures is 4 optimizer steps where one of 300 is 75: with
``--patience-reference 60`` both patiences (early stopping, ``--scheduler-patience``) are
counted in the steps of their epochs at 60 structures (at 15: 113 and 38 epochs for 30 and 10),
so a small set is not stopped on a plateau a hundred steps long (alloys, 15 structures, f6: kept
epoch 18 of 49 with 30 epochs).

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
import math
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk
from rich.table import Table

from frostline.choices import REPLAY_FILTER, REPLAY_FILTERS, REPLAY_WEIGHT
from frostline.finetune.committee import committee_calculator
from frostline.finetune.foundation import foundation_architecture, label_with_chgnet
from frostline.finetune.replay import replay_file_for
from frostline.finetune.train import (
    MaceTrainSettings,
    best_checkpoint,
    run_mace_training,
    training_outcome,
)
from frostline.label.calculators import xtb_calculator
from frostline.schemas import TrainingOutcome
from frostline.structures import h2_cu111_structures, random_alloy, rattle, strain

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import update_json, wide_console  # noqa: E402
from training_folders import (  # noqa: E402
    finished,
    finished_key,
    mark_finished,
    restore_parked,
    start_training,
)

console = wide_console()
FRACTIONS = (0.05, 0.1, 0.2, 0.5, 1.0)
ARMS = ("scratch", "f0", "f5", "f6")
FINE_TUNE_ARMS = ("f0", "f5", "f6")  # the freeze sweep's candidates
REPLAY = "replay"  # f0 with mace-torch's multihead replay: shown beside the sweep, not in it
REPO = Path(__file__).resolve().parents[2]
HEADLINE_OUT = REPO / "workflows" / "benchmarks" / "results" / "data_efficiency_f64_p30"
HEADLINE_FOUNDATION = REPO / "src" / "frostline" / "data" / "mini-foundation-64.model"
COMPLETE = "OMP_NUM_THREADS=1 .venv/bin/python workflows/benchmarks/data_efficiency.py --train"


class NotRecorded(Exception):
    """A training the re-print needs is in neither the ledger nor a model folder."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def repo_relative(path: str | Path) -> str:
    """``path`` relative to the repository when it is inside it (ledger keys do not depend on
    where the checkout is: the committed keys name ``src/frostline/data/...``), else as given."""
    try:
        return Path(path).resolve().relative_to(REPO).as_posix()
    except ValueError:
        return str(path)


def runnable(settings: MaceTrainSettings) -> MaceTrainSettings:
    """``settings`` with its repository-relative files made absolute (mace-torch's working
    directory is not the repository's)."""
    from dataclasses import replace

    def absolute(path: str | None) -> str | None:
        return str(REPO / path) if path and not Path(path).is_absolute() else path

    return replace(
        settings,
        foundation_model=absolute(settings.foundation_model),
        pt_train_file=absolute(settings.pt_train_file),
    )


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
        # what another process on this case recorded meanwhile is kept, and read back
        written = update_json(self.path, lambda on_disk: on_disk.update({name: self.records[name]}))
        self.records.update({n: r for n, r in written.items() if n != name})


def train_settings(
    arm: str, data: list[Atoms], args: argparse.Namespace, epoch_factor: int = 1
) -> MaceTrainSettings:
    """mace-torch settings of one arm (``scratch``; ``fN``: fine-tune at freeze level N;
    ``replay``: f0 with multihead replay of the foundation's shipped pretraining subset)."""
    scratch = arm == "scratch"
    patience = in_steps(args.patience, len(data), args) or None
    scheduler_patience = in_steps(getattr(args, "scheduler_patience", 0), len(data), args)
    return MaceTrainSettings(
        name=arm,
        seed=args.seed,
        max_num_epochs=epoch_factor * args.epoch_scale * epochs_for(len(data), args.quick),
        batch_size=batch_size(len(data)),
        lr=first_rate(args.lr if scratch else args.lr_finetune),
        energy_weight=10.0,
        forces_weight=10.0,
        e0s="average" if scratch else "estimated",
        device="cpu",
        foundation_model=None if scratch else repo_relative(args.foundation),
        freeze=None if scratch else 0 if arm == REPLAY else int(arm[1:]),
        extra={
            **({"patience": str(patience)} if patience else {}),
            # set only when asked for: the ledgers' keys of runs at mace-torch's 50 stay valid
            **({"scheduler_patience": str(scheduler_patience)} if scheduler_patience else {}),
        },  # fmt: skip
        **(foundation_architecture(str(args.foundation)) if scratch else {}),
        **(replay_settings(args) if arm == REPLAY else {}),
    )


def batch_size(n: int) -> int:
    """Structures per optimizer step of a training on ``n`` structures."""
    return min(4, max(1, n - 1))


def in_steps(epochs: int, n: int, args: argparse.Namespace) -> int:
    """A patience of ``epochs`` at ``--patience-reference`` structures, in the epochs of a set
    of ``n``: the same number of optimizer steps, so a small set (fewer steps per epoch) is
    not stopped, nor its rate lowered, on a plateau a few dozen steps long. Unchanged at or
    above the reference size and without one (``--patience-reference 0``: epochs as given)."""
    reference = getattr(args, "patience_reference", 0)
    if not epochs or not reference or n >= reference:
        return epochs
    steps = math.ceil(reference / batch_size(reference)) / math.ceil(n / batch_size(n))
    return math.ceil(epochs * steps)


def replay_settings(args: argparse.Namespace) -> dict:
    """The replay arm's multihead fields: the shipped replay set of the mini foundation used."""
    path = replay_file_for(str(args.foundation))
    if path is None:
        raise SystemExit(f"--arms replay: no shipped replay set for --foundation {args.foundation}")
    return {"pt_train_file": repo_relative(path), "num_samples_pt": args.replay_samples,
            "filter_type_pt": args.replay_filter, "weight_pt_head": args.replay_weight}  # fmt: skip


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
        if checkpoint is not None or finished_key(folder) == continued:
            key = continued
    t0 = time.perf_counter()
    model = folder / f"{arm}.model"
    if finished(folder, model, key):
        source = "model"  # same settings and data: a re-run reuses the model
    else:
        if getattr(args, "reprint", False):
            raise NotRecorded(name)
        source = "trained"
        start_training(folder, key, checkpoint)
        if checkpoint is not None:
            console.print(f"{name}: going on from {checkpoint.relative_to(ledger.root)}")
        model = run_mace_training(runnable(settings), data, folder, valid=valid)
        mark_finished(folder, key)
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
    if (stamped := finished_key(folder)) is not None:
        return stamped
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


def target_converged(trained: Trained, max_epochs: int) -> bool:
    """A full-data scratch run counts as converged when it ended by early stopping: not at its
    cap, so the project's ``TrainingOutcome.still_improving`` is false. A capped run whose kept
    epoch is not among its last tenth is ``still_improving`` false too, but is not taken as
    converged: alloys at lr 0.005 kept epoch 18 of 25 (patience 30 cannot stop a 25-epoch run),
    and its 2x and 4x runs went from 46.7 to 35.2 and 32.7 meV/Å."""
    outcome = TrainingOutcome(
        epochs_run=trained.epochs_run or max_epochs,
        max_epochs=max_epochs,
        best_epoch=trained.best_epoch,
        stopped_early=trained.stopped_early,
    )
    return trained.stopped_early and not outcome.still_improving


def seed_root(case_root: Path, seed: int) -> Path:
    """The folders of one mace-torch seed: ``OUT/CASE`` for seed 0 (the records made before
    seeds existed keep their names and keys), ``OUT/CASE/seedS`` for the others."""
    return case_root if seed == 0 else case_root / f"seed{seed}"


def seed_stats(values: list[float]) -> tuple[float, float, int]:
    """(mean, sample standard deviation (0 for one value), count) of one point's seeds."""
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0, len(a)


def aggregate(per_seed: list[dict[str, dict[int, tuple[float, float]]]]) -> dict:
    """Seed statistics of every curve and size: ``{label: {n: (mean force, mean energy,
    force std, seeds)}}`` over the seeds that have the point (a missing seed is left out)."""
    labels = {label for results in per_seed for label in results}
    stats: dict[str, dict[int, tuple[float, float, float, int]]] = {}
    for label in sorted(labels):
        sizes = sorted({n for results in per_seed for n in results.get(label, {})})
        stats[label] = {}
        for n in sizes:
            points = [r[label][n] for r in per_seed if n in r.get(label, {})]
            force, spread, count = seed_stats([f for f, _ in points])
            stats[label][n] = (force, float(np.mean([e for _, e in points])), spread, count)
    return stats


def smallest_reaching(sizes: list[int], means: dict[int, float], target: float) -> int | None:
    """The smallest trained size whose seed-mean force MAE is at or below ``target``."""
    return next((n for n in sizes if n in means and means[n] <= target), None)


def converged_line(unconverged: list[str]) -> str:
    """The line that says whether every case's from-scratch target stopped improving."""
    if not unconverged:
        return "scratch targets converged: yes"
    return f"scratch targets converged: no ({', '.join(unconverged)})"


def seeds_line(counts: list[int], total: int, args: argparse.Namespace | None = None) -> str:
    """How many seeds the points have (fewest-most of ``total``) and how to complete them
    (the command with ``args``' non-default options)."""
    low, high = (min(counts), max(counts)) if counts else (0, 0)
    have = f"{low}" if low == high else f"{low}-{high}"
    line = f"seeds per point: {have} of {total}"
    if low < total:
        line += f" (run `{complete_command(args)} --jobs 2` to complete; resumes from the ledgers)"
    return line


@dataclass
class CaseData:
    """A case's labelled splits, nested training subsets and ledger."""

    name: str
    by_size: dict[int, list[Atoms]]
    val: list[Atoms]
    test: list[Atoms]
    ledger: Ledger

    @property
    def sizes(self) -> list[int]:
        return sorted(self.by_size)


@dataclass
class SeedRun:
    """One mace-torch seed's trainings of a case (same data, splits and subsets as the others)."""

    seed: int
    args: argparse.Namespace  # the case's options with ``seed`` set to this seed
    root: Path  # :func:`seed_root`
    results: dict = field(default_factory=lambda: defaultdict(dict))  # label -> n -> (F, E)
    val_force: dict = field(default_factory=lambda: defaultdict(dict))  # arm -> n -> F
    fine_tunes: dict = field(default_factory=dict)  # (arm, n) -> Trained
    chosen: dict[int, str] = field(default_factory=dict)  # n -> the freeze sweep's level
    choice: dict[int, str] = field(default_factory=dict)  # n -> what the sweep kept, shown
    target: float | None = None  # best full-data scratch test force MAE (rates, budgets)
    converged: bool = True  # every rate's full-data scratch chain ended not improving
    missing: list[str] = field(default_factory=list)  # re-print: trainings not recorded

    def not_recorded(self, missing: NotRecorded) -> None:
        self.missing.append(missing.name)


def load_case(case: str, args: argparse.Namespace, out: Path) -> CaseData:
    """The case's labels (cached in ``OUT/CASE-labels.extxyz``), splits and subsets."""
    from ase.io import read, write

    n_total = args.n + args.n_val + args.n_test
    cache = out / f"{case}-labels.extxyz"
    if not cache.exists():
        if args.reprint:
            raise SystemExit(f"{cache}: no labels to re-print from (--train labels and trains)")
        build = h2cu_structures if case == "h2cu" else alloy_structures
        raw = build(n_total, np.random.default_rng(args.data_seed))
        t0 = time.perf_counter()
        structures = label_xtb(raw) if case == "h2cu" else label_with_chgnet(raw, "r2scan")
        console.print(f"{case}: {len(structures)} labels in {time.perf_counter() - t0:.0f} s")
        for a in structures:
            a.calc = None
        write(cache, structures, format="extxyz")
    structures = read(cache, ":")  # first run and re-runs train on identical (rounded) data
    train_pool = structures[: args.n]
    val = structures[args.n : args.n + args.n_val]
    test = structures[args.n + args.n_val : n_total]
    subsets = nested_subsets(train_pool, np.random.default_rng([args.data_seed, 1]))
    by_size = {len(data): data for data in subsets.values()}
    return CaseData(case, by_size, val, test, Ledger(out / f"{case}-ledger.json", out / case))


def report(case: str, run: SeedRun, label: str, n: int, trained: Trained, note: str = "") -> None:
    console.print(
        f"{case} seed {run.seed} {label} n={n:4d}: test F MAE {trained.test[0]:7.1f} meV/Å"
        f"{note} ({trained.seconds:.0f} s, {trained.source})"
    )


def extend_target(
    cd: CaseData, run: SeedRun, args: argparse.Namespace, first: Trained, work: Path, folder: Path
) -> tuple[list[tuple[int, Trained]], bool]:
    """Retrain the full-data scratch model (``first``, in ``folder``) with 2x, 4x, ... the
    epochs, each going on from the last, until a run is converged (:func:`target_converged`),
    up to ``--max-extension-target``. Returns (factor, run) per extension and whether the last
    run is converged."""
    data = cd.by_size[cd.sizes[-1]]
    runs: list[tuple[int, Trained]] = []
    last, factor = first, 1
    while not target_converged(last, train_settings("scratch", data, args, factor).max_num_epochs):
        if 2 * factor > args.max_extension_target:
            console.print(
                f"{cd.name} seed {run.seed}: full-data scratch at lr {first_rate(args.lr):g} still "
                f"at its epoch cap after {factor}x epochs (--max-extension-target "
                f"{args.max_extension_target}): not converged"
            )
            return runs, False
        factor *= 2
        extended = work / f"scratch-{factor}x-epochs"
        try:
            last = train("scratch", data, extended, args, cd.val, cd.test, cd.ledger, factor,
                         folder)  # fmt: skip
        except NotRecorded as missing:
            run.not_recorded(missing)
            return runs, False
        runs.append((factor, last))
        folder = extended / "scratch"
    return runs, True


def train_target(cd: CaseData, run: SeedRun) -> None:
    """The target of one seed: the full-data scratch model at every rate of ``--lr``, each
    trained longer while still improving; the target is the best of them on the test split,
    so a fine-tune with a tuned rate is not compared with an untuned or unconverged scratch."""
    args, n_all = run.args, cd.sizes[-1]
    for lr in args.lr:
        rate_args = at_rate(args, "scratch", lr)
        work = rate_folder(run.root / f"n{n_all}", lr, args.lr)
        label = "scratch" if lr == args.lr[0] else f"scratch lr{lr:g}"
        try:
            full = train("scratch", cd.by_size[n_all], work, rate_args, cd.val, cd.test,
                         cd.ledger)  # fmt: skip
        except NotRecorded as missing:
            run.not_recorded(missing)
            run.converged = False
            continue
        report(cd.name, run, label, n_all, full)
        run.results[label][n_all] = full.test
        longer = run.root / (f"lr{lr:g}" if lr != args.lr[0] else "")
        runs, converged = extend_target(cd, run, rate_args, full, longer, work / "scratch")
        run.converged &= converged
        for factor, trained in runs:
            report(cd.name, run, f"{label} {factor}x epochs", n_all, trained)
            run.results[f"{label} {factor}x epochs"][n_all] = trained.test
        candidates = [full.test[0], *(trained.test[0] for _, trained in runs)]
        run.target = min(run.target if run.target is not None else np.inf, *candidates)


def train_at(cd: CaseData, run: SeedRun, arm: str, n: int) -> Trained | None:
    """``arm`` on the subset of size ``n`` (its first rate and budget), its test errors kept in
    ``run.results``; None when a re-print finds it not recorded."""
    try:
        trained = train(arm, cd.by_size[n], run.root / f"n{n}", run.args, cd.val, cd.test,
                        cd.ledger)  # fmt: skip
    except NotRecorded as missing:
        run.not_recorded(missing)
        return None
    run.results[arm][n] = trained.test
    report(cd.name, run, f"{arm:>7}", n, trained)
    return trained


def train_fine_tunes(cd: CaseData, run: SeedRun, n: int) -> None:
    """The freeze sweep's candidates at size ``n`` and what it picks on the validation split."""
    for arm in FINE_TUNE_ARMS:
        if (trained := train_at(cd, run, arm, n)) is not None:
            run.val_force[arm][n], run.fine_tunes[arm, n] = trained.validation[0], trained
    if all((arm, n) in run.fine_tunes for arm in FINE_TUNE_ARMS):
        best = min(FINE_TUNE_ARMS, key=lambda a: run.val_force[a][n])
        run.results["sweep"][n], run.chosen[n], run.choice[n] = run.results[best][n], best, best


def extend_sweep(cd: CaseData, run: SeedRun, n: int) -> None:
    """A sweep-chosen fine-tune that ended at its epoch cap is trained longer, and at the other
    rates of ``--lr-finetune`` (each extended the same way); the sweep keeps the run with the
    lowest validation error."""
    if n not in run.chosen:
        return
    args, best = run.args, run.chosen[n]
    best_validation = run.val_force[best][n]
    for lr in args.lr_finetune:
        rate_args = at_rate(args, best, lr)
        work = rate_folder(run.root / f"n{n}", lr, args.lr_finetune)
        label = best if lr == args.lr_finetune[0] else f"{best} lr{lr:g}"
        try:
            if lr == args.lr_finetune[0]:
                first = run.fine_tunes[best, n]
            else:
                first = train(best, cd.by_size[n], work, rate_args, cd.val, cd.test, cd.ledger)
                run.results[label][n] = first.test
                note = f", validation {first.validation[0]:.1f}"
                report(cd.name, run, f"{label} 1x epochs", n, first, note)
            runs = extend_while_capped(
                best, cd.by_size[n], first, work, cd.ledger, rate_args, cd.val, cd.test
            )
        except NotRecorded as missing:
            run.not_recorded(missing)
            continue
        for factor, trained in runs:
            run.results[f"{label} {factor}x epochs"][n] = trained.test
            note = f", validation {trained.validation[0]:.1f} (1x: {first.validation[0]:.1f})"
            report(cd.name, run, f"{label} {factor}x epochs", n, trained, note)
        for factor, trained in [(1, first), *runs]:
            if trained.validation[0] < best_validation:
                best_validation = trained.validation[0]
                run.results["sweep"][n] = trained.test
                run.choice[n] = best + (f" {factor}x" if factor > 1 else "")
                run.choice[n] += f" lr{lr:g}" if lr != first_rate(args.lr_finetune) else ""


def train_curve(cd: CaseData, run: SeedRun, arm: str) -> None:
    """``arm`` (scratch's learning curve, or the replay arm) at every size."""
    for n in cd.sizes:
        train_at(cd, run, arm, n)


def mean_target(runs: list[SeedRun]) -> float | None:
    """The target: the seed mean of each seed's best full-data scratch model."""
    targets = [run.target for run in runs if run.target is not None]
    return seed_stats(targets)[0] if targets else None


def sweep_mean(runs: list[SeedRun], n: int) -> float | None:
    """The seed mean of what the sweep keeps at ``n`` (over the seeds that have it)."""
    values = [run.results["sweep"][n][0] for run in runs if n in run.results["sweep"]]
    return seed_stats(values)[0] if values else None


@contextmanager
def ledger_only(runs: list[SeedRun], skip: bool) -> Iterator[None]:
    """With ``skip``: the runs' trainings come from the ledger only (none trained), as in a
    re-print; a size ``--sizes`` leaves out this session."""
    before = [run.args.reprint for run in runs]
    for run in runs:
        run.args.reprint = run.args.reprint or skip
    try:
        yield
    finally:
        for run, reprint in zip(runs, before, strict=True):
            run.args.reprint = reprint


def run_case(case: str, args: argparse.Namespace, out: Path) -> dict:
    """Every seed's trainings of one case (ledger records where finished), in the order that
    decides the ratio soonest: targets, then the fine-tunes size by size, then the curves."""
    cd = load_case(case, args, out)
    if not getattr(args, "reprint", False):  # the trainings an earlier session parked resume
        restore_parked(out / case, out / "parked" / case)
    runs = [
        SeedRun(
            seed, argparse.Namespace(**{**vars(args), "seed": seed}), seed_root(out / case, seed)
        )
        for seed in args.seeds
    ]
    for run in runs:
        train_target(cd, run)
    target = mean_target(runs)
    if target is not None:
        console.print(f"{case}: target (seed mean of the best full-data scratch) {target:.1f}")
    for n in cd.sizes:
        means = [sweep_mean(runs, m) for m in cd.sizes if m < n]
        reached = target is not None and any(m is not None and m <= target for m in means)
        if reached and args.ratio_only:
            break
        with ledger_only(runs, bool(args.sizes) and n not in args.sizes):
            for run in runs:
                train_fine_tunes(cd, run, n)
            if reached and not args.extend_all:
                continue  # sizes after the curve reached the target cannot change the ratio
            for run in runs:
                extend_sweep(cd, run, n)
    curves = () if args.ratio_only else ("scratch", *((REPLAY,) if REPLAY in args.arms else ()))
    for arm in curves:
        for run in runs:
            train_curve(cd, run, arm)
    return summarise(cd, runs, args, out)


def summarise(cd: CaseData, runs: list[SeedRun], args: argparse.Namespace, out: Path) -> dict:
    """Table, plot, ``OUT/CASE.json`` and the case's ratio from trained sizes and seed means."""
    case, sizes = cd.name, cd.sizes
    stats = aggregate([run.results for run in runs])
    target = mean_target(runs)
    targets = [run.target for run in runs if run.target is not None]
    converged = bool(targets) and all(run.converged for run in runs if run.target is not None)
    print_table(case, sizes, stats, runs, args)
    plot(case, sizes, stats, target, out / f"data_efficiency_{case}.png")
    sweep = {n: v[0] for n, v in stats.get("sweep", {}).items()}
    n_reached = smallest_reaching(sizes, sweep, target) if target is not None else None
    curve = [n for n in sizes if n in sweep]
    need = points_to_reach(curve, [sweep[n] for n in curve], target) if target else None
    ratio = n_reached / sizes[-1] if n_reached is not None else None
    counts = [v[3] for label in ("sweep", *ARMS) for v in stats.get(label, {}).values()]
    missing = [name for run in runs for name in run.missing]
    summary = {
        "target": target,
        "target_per_seed": {str(run.seed): run.target for run in runs},
        "target_converged": converged,
        "n_reached": n_reached,
        "ratio": ratio,
        "ratio_interpolated": need / sizes[-1] if need is not None else None,
        "seeds": list(args.seeds),
        "seeds_per_point": [min(counts), max(counts)] if counts else [0, 0],
        "missing": missing,
    }
    document = {
        **summary,
        "stats": {a: {str(n): list(v) for n, v in r.items()} for a, r in stats.items()},
        "per_seed": {
            str(run.seed): {a: {str(n): list(v) for n, v in r.items()} for a, r in per.items()}
            for run in runs
            for per in [run.results]
        },
        "sweep_choice": {str(run.seed): {str(n): c for n, c in run.choice.items()} for run in runs},
    }
    (out / f"{case}.json").write_text(json.dumps(document, indent=1))
    print_case_summary(case, sizes[-1], summary, len(targets), args)
    return summary


def print_case_summary(
    case: str, n_all: int, summary: dict, n_targets: int, args: argparse.Namespace | None = None
) -> None:
    """The case's ratio line (trained size, interpolated beside it) and what is missing."""
    target, n_reached = summary["target"], summary["n_reached"]
    if summary["missing"]:
        console.print(
            f"{case}: {len(summary['missing'])} trainings not recorded (re-print: not trained; "
            f"`{complete_command(args)} --cases {case}` trains them), e.g. {summary['missing'][0]}"
        )
    if target is None:
        print(f"{case}: no full-data scratch target recorded: ratio unknown")
        return
    interpolated = summary["ratio_interpolated"]
    print(
        f"{case}: fine-tuned (sweep, seed mean) reaches the target {target:.1f} meV/Å (seed mean "
        f"of {n_targets} best full-data scratch models; converged: "
        f"{'yes' if summary['target_converged'] else 'no'}) at trained n = "
        + (f"{n_reached} of {n_all}: ratio {summary['ratio']:.2f}" if n_reached else "none")
        + (
            f" (interpolated {interpolated * n_all:.0f} points: {interpolated:.2f})"
            if interpolated is not None
            else ""
        )
    )


def cell(stat: tuple[float, float, float, int] | None, total: int) -> str:
    """A table cell: seed-mean force MAE ± std (mean energy MAE), [seeds] when fewer than all."""
    if stat is None:
        return "–"
    force, energy, spread, count = stat
    text = f"{force:.1f}" + (f" ± {spread:.1f}" if count > 1 else "") + f" ({energy:.1f})"
    return text + (f" [{count}]" if count < total else "")


def print_table(
    case: str, sizes: list[int], stats: dict, runs: list[SeedRun], args: argparse.Namespace
) -> None:
    """Seed means ± std per arm and size; the sweep's choice per seed (level, epochs, rate)."""
    arms = (*ARMS, *((REPLAY,) if REPLAY in args.arms else ()), "sweep")
    table = Table(
        title=f"{case}: test force MAE meV/Å, seed mean ± std (energy MAE meV/atom) "
        f"[seeds, when fewer than {len(args.seeds)}]"
    )
    for column in ("n train", *arms, "sweep keeps (per seed)"):
        table.add_column(column, justify="right")
    for n in sizes:
        choices = " / ".join(run.choice.get(n, "–") for run in runs)
        row = [cell(stats.get(a, {}).get(n), len(args.seeds)) for a in arms]
        table.add_row(str(n), *row, choices)
    console.print(table)


def plot(case: str, sizes: list[int], stats: dict, target: float | None, path: Path) -> None:
    """Seed means with std error bars per arm; longer runs and other rates as markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for arm in (*ARMS, REPLAY, "sweep"):
        points = [(n, stats[arm][n]) for n in sizes if n in stats.get(arm, {})]
        if points:
            ax.errorbar([n for n, _ in points], [s[0] for _, s in points],
                        yerr=[s[2] for _, s in points], fmt="o-" if arm != "sweep" else "k--",
                        capsize=3, label=arm)  # fmt: skip
    for i, arm in enumerate(ARMS):
        for factor, marker in ((2, "*"), (4, "P"), (8, "X"), (16, "d")):
            longer = stats.get(f"{arm} {factor}x epochs", {})
            if longer:
                ax.plot(list(longer), [s[0] for s in longer.values()], marker, color=f"C{i}",
                        ms=12, label=f"{arm}, {factor}x epochs")  # fmt: skip
        # runs at the other rates of a learning-rate grid: open markers, one per run (1x, 2x, ...)
        rates = sorted({k.split()[1] for k in stats if k.startswith(f"{arm} lr")})
        for rate, marker in zip(rates, "Dsv^", strict=False):
            runs = [r for k, r in stats.items() if k.split()[:2] == [arm, rate]]
            points = [(n, r[n][0]) for r in runs for n in r]
            ax.plot(*zip(*points, strict=True), marker, mfc="none", color=f"C{i}", ms=9,
                    label=f"{arm}, {rate.replace('lr', 'lr ')} (all epoch budgets)")  # fmt: skip
    if target is not None:  # the seed mean of the best full-data scratch models
        ax.axhline(target, color="grey", ls=":", label=f"target {target:.1f} meV/Å")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training structures")
    ax.set_ylabel("test force MAE (meV/Å), seed mean ± std")
    counts = sorted({s[3] for s in stats.get("sweep", {}).values()})
    seeds = "-".join(str(c) for c in (counts[0], counts[-1])[: len(set(counts))]) if counts else "0"
    ax.set_title(f"data efficiency: {case} (seeds per point: {seeds})")
    ax.legend(fontsize=7)
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
    """Redraw a case's PNG from ``OUT/CASE.json`` (no training; files written before seeds,
    one result per point, are read as one seed)."""
    doc = json.loads((out / f"{case}.json").read_text())
    if "stats" in doc:
        stats = {a: {int(n): tuple(v) for n, v in r.items()} for a, r in doc["stats"].items()}
        target = doc["target"]
    else:
        stats = {
            arm: {int(n): (v[0], v[1], 0.0, 1) for n, v in per_size.items()}
            for arm, per_size in doc.items()
            if isinstance(per_size, dict) and arm != "sweep level"
        }
        full = [r[n][0] for k, r in stats.items() if k.startswith("scratch") for n in r]
        target = min(full) if full else None  # as plotted before: the best full-data scratch
    plot(case, sorted(stats["scratch"]), stats, target, out / f"data_efficiency_{case}.png")


def option_chunks(args: argparse.Namespace) -> list[list[str]]:
    """The options a case's own process gets (all but ``--cases`` and ``--jobs``), one list
    per option."""
    chunks = [["--n", str(args.n)], ["--n-val", str(args.n_val)], ["--n-test", str(args.n_test)]]
    chunks += [["--data-seed", str(args.data_seed)], ["--seeds", *map(str, args.seeds)]]
    chunks += [["--arms", *args.arms], ["--replay-samples", str(args.replay_samples)]]
    chunks += [
        ["--replay-filter", args.replay_filter],
        ["--replay-weight", str(args.replay_weight)],
    ]
    chunks += [["--out", str(args.out)], ["--foundation", str(args.foundation)]]
    chunks += [["--lr", *map(str, args.lr)], ["--lr-finetune", *map(str, args.lr_finetune)]]
    chunks += [["--patience", str(args.patience)], ["--epoch-scale", str(args.epoch_scale)]]
    chunks += [["--scheduler-patience", str(args.scheduler_patience)]]
    chunks += [["--patience-reference", str(args.patience_reference)]]
    chunks += [["--max-extension", str(args.max_extension)], ["--extend-from", args.extend_from]]
    chunks += [["--max-extension-target", str(args.max_extension_target)]]
    for flag in ("quick", "extend_all", "ratio_only", "train"):
        chunks += [[f"--{flag.replace('_', '-')}"]] if getattr(args, flag) else []
    chunks += [["--sizes", *map(str, args.sizes)]] if args.sizes else []
    return chunks


def forwarded(args: argparse.Namespace) -> list[str]:
    """The options a case's own process gets (all but ``--cases`` and ``--jobs``)."""
    return [token for chunk in option_chunks(args) for token in chunk]


def complete_command(args: argparse.Namespace | None) -> str:
    """``COMPLETE`` with the options of ``args`` that differ from the headline run's (without
    them, a run with another ``--out`` or protocol would be completed in the headline's
    folder)."""
    if args is None:
        return COMPLETE
    headline = option_chunks(parse_args([]))
    modes = (["--train"], ["--ratio-only"])  # how far a run goes, not what it trains
    changed = [
        c for c in option_chunks(args) if c not in headline and c not in modes and c[0] != "--sizes"
    ]
    return " ".join([COMPLETE, *(token for chunk in changed for token in chunk)])


def run_cases_in_parallel(args: argparse.Namespace) -> list[dict]:
    """Run each case in its own process with one torch thread; logs go to ``OUT/CASE.log``."""
    import os
    import subprocess

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    processes = {}
    for i, case in enumerate(args.cases):
        if i >= args.jobs:  # wait for a free slot
            next(iter(processes.values())).wait()
        cmd = [sys.executable, __file__, *forwarded(args), "--cases", case, "--jobs", "1"]
        log = open(args.out / f"{case}.log", "w")  # noqa: SIM115 - closed by the child's exit
        processes[case] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        console.print(f"{case}: running in process {processes[case].pid}, log {log.name}")
    summaries = []
    for case, process in processes.items():
        if process.wait() != 0:
            raise SystemExit(f"case {case} failed (exit {process.returncode}); see its log")
        log_text = (args.out / f"{case}.log").read_text()
        summary = log_text[log_text.rfind(f"{case}: test force MAE") :]
        console.print(summary[: summary.find("total time")], end="")
        summaries.append(json.loads((args.out / f"{case}.json").read_text()))
    return summaries


def final_lines(
    cases: list[str], summaries: list[dict], n_seeds: int, args: argparse.Namespace | None = None
) -> list[str]:
    """The run's last lines: seeds per point, whether the targets converged, the ratio (the
    larger of the cases, from trained sizes and seed means; inf when a case never reaches)."""
    counts = [c for s in summaries for c in s["seeds_per_point"]]
    unconverged = [case for case, s in zip(cases, summaries, strict=True)
                   if not s["target_converged"]]  # fmt: skip
    ratios = [s["ratio"] if s["ratio"] is not None else float("inf") for s in summaries]
    return [
        seeds_line(counts, n_seeds, args),
        converged_line(unconverged),
        f"data-efficiency ratio (larger of the cases, goal <= 0.2) = {max(ratios):.2f}",
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options; their defaults are the headline run (re-printed with no arguments)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--n", type=int, default=300, help="training pool size N")
    add("--n-val", type=int, default=30)
    add("--n-test", type=int, default=50)
    add("--cases", nargs="+", default=["h2cu", "alloys"])
    add("--data-seed", type=int, default=0, help="labels' structures and the nested subsets")
    add(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2],
        help="mace-torch seeds: each trains every arm and size on the same data",
    )
    add(
        "--arms",
        nargs="+",
        default=list(ARMS),
        choices=[*ARMS, REPLAY],
        help="scratch f0 f5 f6 (always), and replay: f0 with multihead replay",
    )
    add("--replay-samples", type=int, default=80, help="replay structures drawn per training")
    add(
        "--replay-filter",
        choices=REPLAY_FILTERS,
        default=REPLAY_FILTER,
        help="replay frames of the case's elements only (mace-torch filter_type_pt; default: "
        "finetune.replay_filter's)",
    )
    add(
        "--replay-weight",
        type=float,
        default=REPLAY_WEIGHT,
        help="the replay head's loss weight (mace-torch weight_pt_head; default: "
        "finetune.replay_weight's)",
    )
    add_training_options(parser)
    args = parser.parse_args(argv)
    if not set(ARMS) <= set(args.arms):
        parser.error("--arms: scratch, f0, f5 and f6 are always trained (target and sweep)")
    args.train = args.train or args.quick
    args.reprint = not args.train
    return args


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """How long, at which rates and where the trainings run (and what to do instead)."""
    add = parser.add_argument
    add(
        "--train",
        action="store_true",
        help="train what the ledgers lack (without it: re-print from the ledgers, train none)",
    )
    add(
        "--ratio-only",
        action="store_true",
        help="train only what decides the ratio: the targets, then the fine-tunes size by size "
        "up to the first size whose seed mean reaches the target (curves and later sizes: a run "
        "without it)",
    )
    add(
        "--sizes",
        type=int,
        nargs="+",
        default=[],
        help="train the fine-tunes of these training-set sizes only (the targets always; the "
        "other sizes come from the ledgers): a session spends its hours on the sizes that "
        "decide the ratio, the curves are completed later",
    )
    add(
        "--extend-all",
        action="store_true",
        help="longer retrain of every capped sweep fine-tune, also after the target is reached",
    )
    add(
        "--max-extension",
        type=int,
        default=4,
        help="retrain a capped sweep fine-tune with 2x, 4x, ... epochs up to this factor",
    )
    add(
        "--max-extension-target",
        type=int,
        default=16,
        help="retrain the full-data scratch model while still improving, up to this factor",
    )
    add(
        "--extend-from",
        choices=["checkpoint", "fresh"],
        default="checkpoint",
        help="an extension goes on from the shorter run's best checkpoint, or starts again",
    )
    add("--quick", action="store_true", help="3 epochs: a smoke run (implies --train)")
    add(
        "--jobs",
        type=int,
        default=1,
        help="run the cases in this many processes at once (one torch thread each)",
    )
    add("--out", type=Path, default=HEADLINE_OUT)
    add("--foundation", type=Path, default=HEADLINE_FOUNDATION, help="foundation to fine-tune")
    add(
        "--lr",
        type=float,
        nargs="+",
        default=[0.01, 0.005],
        help="learning rate(s) from scratch: the curve uses the first, the target is the best "
        "full-data model over all of them",
    )
    add(
        "--lr-finetune",
        type=float,
        nargs="+",
        default=[0.005, 0.002],
        help="fine-tuning rate(s): the freeze sweep runs at the first, the chosen level is then "
        "trained at the others and the sweep keeps the best on validation",
    )
    add(
        "--patience",
        type=int,
        default=30,
        help="early stopping: epochs without validation improvement (0: run all epochs)",
    )
    add(
        "--scheduler-patience",
        type=int,
        default=0,
        help="epochs before mace-torch lowers the rate (0: its default 50; with --patience 30 "
        "the rate then never decays)",
    )
    add("--epoch-scale", type=int, default=1, help="multiply the epoch budget (with --patience)")
    add(
        "--patience-reference",
        type=int,
        default=0,
        help="count both patiences in optimizer steps: their epochs at this many structures "
        "(smaller sets get proportionally more epochs; 0: epochs at every size)",
    )
    add("--plot-only", action="store_true", help="redraw PNGs from OUT/CASE.json")
    add("--progress", action="store_true", help="print the trainings recorded so far, train none")


def main() -> None:
    args = parse_args()
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
        summaries = run_cases_in_parallel(args)
    else:
        summaries = [run_case(case, args, args.out) for case in args.cases]
    print(f"total time {(time.perf_counter() - t0) / 60:.1f} min")
    for line in final_lines(args.cases, summaries, len(args.seeds), args):
        print(line)


if __name__ == "__main__":
    main()
