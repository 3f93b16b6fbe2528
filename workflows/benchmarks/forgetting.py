"""Forgetting by fine-tuning strategy: what each keeps of the foundation's knowledge.

The mini-64 foundation (CHGNet-PBE level) is fine-tuned on the two cases of the data-efficiency
benchmark (their committed labels: H2/Cu(111) by GFN1-xTB, Cu-Ni-Au alloys by CHGNet-r2SCAN)
with each strategy, on the same ``--n`` training structures and ``--seeds`` (three by default),
every run until mace-torch's early stopping (``--patience``, 30): a run that ends at its epoch
cap (300) still improving (the project's ``TrainingOutcome.still_improving``) goes on from its
best checkpoint with 2x, then 4x the cap (``--max-extension``); one still improving at the last
is counted as not converged and named on the ``converged:`` line:

- ``frozen``: ``--freeze 6`` (frostline's default level);
- ``naive``: a full fine-tune (f0) on the target data alone;
- ``replay``: f0 with mace-torch's multihead replay of the foundation's own pretraining data
  (the shipped subset, ``frostline.finetune.replay``);
- ``lora``: mace-torch's LoRA adapters (rank 4), everything else frozen.

``--replay-weight W`` sets the replay arm's weight of the foundation head's loss (mace-torch's
``weight_pt_head``, 1.0); ``--replay-sweep W1 W2 ...`` adds one replay arm per weight
(``replay-wW``: in the tables and the plot, each costed against the best strategy, not on the
last line), to read replay's trade-off between target error and what it keeps.

Per case and strategy it prints the target-domain test force MAE, the force MAE on the held-out
slice of the foundation's domain (fresh cells of its pretraining generator with only the case's
elements) after / before fine-tuning, and each pure element's bulk lattice constant error vs the
oracle (equation of state, ``frostline.finetune.forgetting``), as seed means ± spread, and
plots target error against both (``results/forgetting/forgetting.png``). The
last line is the larger of the two cases' seed-mean after / before ratios per strategy:

    foundation-domain force MAE after / before: frozen X, naive Y, replay Z

Goal: replay <= 1.1 while its target-domain error is within 10 % of the best strategy's.
With no arguments: the whole run, or a re-print from ``results/forgetting/results.json`` when
its inputs (data, settings, this script and the modules it measures) are unchanged; finished
trainings and their measurements are kept in ``results/forgetting/ledger-CASE.json`` (commit it: a
killed run, or one in a fresh checkout without the model files, resumes there); the trainings
run seed by seed, so a partial run holds whole seeds. Each run folder records the training
started and finished in it (``training_folders``): an interrupted run resumes its own
checkpoints, a folder of other settings is cleared first, and a finished run whose ledger
record was lost is recorded from its log, not trained again. ``--reprint`` prints what the
ledgers hold for these settings without training (with ``seeds per arm: k of 3``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from rich.table import Table

from frostline.choices import REPLAY_FILTER, REPLAY_FILTERS, REPLAY_WEIGHT
from frostline.config import OracleConfig
from frostline.finetune.committee import committee_calculator
from frostline.finetune.forgetting import LatticeCheck, check_forgetting, force_mae, wall_lost
from frostline.finetune.foundation import MINI_FOUNDATIONS
from frostline.finetune.replay import HELDOUT_FILE, read_heldout, replay_path
from frostline.finetune.train import (
    MaceTrainSettings,
    best_checkpoint,
    run_mace_training,
    training_outcome,
)
from frostline.label.oracles import builtin_calculator
from frostline.schemas import TrainingOutcome

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import figure, update_json, wide_console  # noqa: E402
from training_folders import (  # noqa: E402
    finished,
    mark_finished,
    restore_parked,
    start_training,
    started_key,
)

console = wide_console()
HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "forgetting"
LABELS = HERE / "results" / "data_efficiency_f64_p30"  # the data-efficiency cases' labels
STRATEGIES = ("naive", "replay", "frozen", "lora")
CASE_ELEMENTS = {"h2cu": ("H", "Cu"), "alloys": ("Cu", "Ni", "Au")}
# held-out frames relabelled by the case's oracle (2026-12-06, "vs-oracle"); since 2026-12-07
# the equation of state keeps only wells with a positive bulk modulus (it had fitted H2/Cu naive
# seed 0's bulk Cu at a maximum: -0.08 % with B = -29 GPa) and the check has the pair probes;
# since 2026-12-07 evening the wall probe scans the squeeze from 0.95x the well to 0.75x
MEASUREMENT = "vs-oracle-3"
MEASURED = ("finetune/forgetting.py", "finetune/train.py", "finetune/replay.py")


def case_data(case: str, n: int, n_val: int, n_test: int) -> tuple[list, list, list]:
    """Training, validation (checkpoint) and test structures of a data-efficiency case."""
    from ase.io import read

    frames = read(LABELS / f"{case}-labels.extxyz", ":")
    pool, val, test = frames[:300], frames[300:330], frames[330:]
    return pool[:n], val[:n_val], test[:n_test]


def arm_strategy(arm: str, args: argparse.Namespace) -> tuple[str, float]:
    """(strategy, replay weight) of an arm: ``replay-w0.3`` is replay at weight 0.3 (a
    ``--replay-sweep`` arm); ``replay`` is replay at ``--replay-weight``."""
    if arm.startswith("replay-w"):
        return "replay", float(arm.removeprefix("replay-w"))
    return arm, args.replay_weight


def arm_label(arm: str, args: argparse.Namespace) -> str:
    """An arm's name in tables and run folders: a replay arm at a weight other than
    mace-torch's 1.0 is ``replay-wW`` (the same folder for ``--replay-weight W`` and a sweep
    arm of W: the same settings), with a ``--replay-filter`` ``replay-FILTER[-wW]``."""
    strategy, weight = arm_strategy(arm, args)
    if strategy != "replay":
        return arm
    label = "replay" + (f"-{args.replay_filter}" if args.replay_filter != "none" else "")
    return label + (f"-w{weight:g}" if weight != 1.0 else "")


def arm_names(args: argparse.Namespace) -> list[str]:
    """The strategies, then one replay arm per ``--replay-sweep`` weight."""
    return [*args.strategies, *(f"replay-w{w:g}" for w in args.replay_sweep)]


def settings(arm: str, args: argparse.Namespace, foundation: str, seed: int) -> MaceTrainSettings:
    """mace-torch settings of one arm (the same everything else)."""
    strategy, weight = arm_strategy(arm, args)
    extra = {"patience": str(args.patience)}
    if getattr(args, "scheduler_patience", 0):  # 0: mace-torch's 50 (the keys of runs before)
        extra["scheduler_patience"] = str(args.scheduler_patience)
    base = MaceTrainSettings(
        name=strategy,  # the model and checkpoint names: replay-w0.3's are replay's
        seed=seed,
        max_num_epochs=args.epochs,
        batch_size=4,
        lr=args.lr,
        e0s="estimated",
        energy_weight=10.0,
        forces_weight=10.0,
        foundation_model=foundation,
        freeze={"frozen": 6}.get(strategy, 0),
        stress_weight=args.stress_weight,
        extra=extra,
    )
    if strategy == "replay":
        base.pt_train_file = str(replay_path(args.foundation))
        base.num_samples_pt = args.replay_samples
        base.weight_pt_head = weight
        base.filter_type_pt = args.replay_filter
    if strategy == "lora":
        base.lora = True
    return base


def oracle(case: str) -> Calculator:
    """The case's oracle as an ASE calculator (the campaigns' built-in oracle of that name),
    remembering what it computed: every model of a case is checked on the same held-out frames
    and bulk cells."""
    name = "xtb" if case == "h2cu" else "chgnet-r2scan"
    return Remembering(builtin_calculator(OracleConfig(name=name)))


class Remembering(Calculator):
    """``inner``'s energy and forces, computed once per structure (numbers, positions, cell);
    a structure ``inner`` fails on fails again without being tried again."""

    implemented_properties = ("energy", "forces")

    def __init__(self, inner: Calculator) -> None:
        super().__init__()
        self.inner, self.memo = inner, {}

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        key = hashlib.sha256(
            b"".join(np.ascontiguousarray(x, dtype=float).tobytes()
                     for x in (atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc))
        ).hexdigest()  # fmt: skip
        if key not in self.memo:
            copy = atoms.copy()
            copy.calc = self.inner
            try:
                self.memo[key] = {"energy": copy.get_potential_energy(),
                                  "forces": copy.get_forces()}  # fmt: skip
            except Exception as error:  # e.g. an SCF that does not converge
                self.memo[key] = error
        if isinstance(self.memo[key], Exception):
            raise self.memo[key]
        self.results = dict(self.memo[key])


def fingerprint(args: argparse.Namespace) -> str:
    """Inputs of the whole result: data, held-out set, replay set, settings, code measured."""
    src = Path(__file__).resolve().parents[2] / "src" / "frostline"
    h = hashlib.sha256()
    for path in [LABELS / f"{c}-labels.extxyz" for c in args.cases]:
        h.update(path.read_bytes())
    for path in [HELDOUT_FILE, replay_path(args.foundation), Path(__file__)]:
        h.update(path.read_bytes())
    for name in MEASURED:
        h.update((src / name).read_bytes())
    h.update(json.dumps(vars(args), sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def arm_key(case: str, strategy: str, args, seed: int) -> str:
    """What one arm's training and measurement depend on (settings with the seed, case); the
    foundation and replay files named relative to the checkout, so that a ledger's keys hold
    in any clone."""
    s = settings(strategy, args, str(MINI_FOUNDATIONS[args.foundation]), seed)
    here = Path(__file__).resolve().parents[2]
    for field in ("foundation_model", "pt_train_file"):
        if value := getattr(s, field):
            setattr(s, field, str(Path(value).relative_to(here)))
    return hashlib.sha256(f"{case}|{s.fingerprint()}|{args.n}".encode()).hexdigest()[:16]


def save_ledger(case: str, ledger: dict) -> None:
    """Write a case's ledger (finished trainings and their measurements), merged with what other
    processes on the same case wrote since it was read (their records come into ``ledger``)."""

    def merge(on_disk: dict) -> None:
        for part, records in ledger.items():
            on_disk.setdefault(part, {}).update(records)

    written = update_json(OUT / f"ledger-{case}.json", merge, sort_keys=False)  # the order before
    for part, records in written.items():
        ledger.setdefault(part, {}).update(records)


def run_name(arm: str, args: argparse.Namespace, seed: int) -> str:
    """A training's folder under ``runs/CASE``: one per protocol, so a run with another
    scheduler patience, stress weight or replay weight never goes on from another's mace-torch
    checkpoint."""
    protocol = f"-sp{args.scheduler_patience}" if getattr(args, "scheduler_patience", 0) else ""
    if stress := args.stress_weight:
        protocol += f"-sw{stress:g}"
    return f"{arm_label(arm, args)}-seed{seed}{protocol}"


def chain_key(key: str, factor: int) -> str:
    """The ledger key of a run with ``factor`` x the epoch cap (1: the run itself)."""
    return key if factor == 1 else f"{key}-x{factor}"


def final_key(case: str, strategy: str, args, seed: int, ledger: dict) -> str:
    """The key of the last run of an arm's chain the ledger holds: the run, then each longer
    run while the one before ended at its cap still improving (``--max-extension``)."""
    key, factor, trainings = arm_key(case, strategy, args, seed), 1, ledger.get("trainings", {})
    while (
        chain_key(key, 2 * factor) in trainings
        and still_improving(trainings[chain_key(key, factor)])
        and 2 * factor <= args.max_extension
    ):
        factor *= 2
    return chain_key(key, factor)


def train_arm(case: str, strategy: str, args, data, ledger: dict, seed: int) -> tuple[str, dict]:
    """One strategy's fine-tune on one case, and while it ends at its cap still improving,
    again with 2x, 4x, ... the cap (up to ``--max-extension``), each going on from the last
    run's best checkpoint; finished runs come from the ledger. Returns the last run's key and
    record."""
    key, factor, previous = arm_key(case, strategy, args, seed), 1, None
    while True:
        record = train_run(case, strategy, args, data, ledger, seed, factor, previous)
        if not still_improving(record) or 2 * factor > args.max_extension:
            return chain_key(key, factor), record
        previous, factor = OUT / Path(record["model"]).parent, 2 * factor


def train_run(
    case: str,
    strategy: str,
    args,
    data,
    ledger: dict,
    seed: int,
    factor: int,
    previous: Path | None,
) -> dict:
    """One run of an arm's chain: ``factor`` x the epoch cap, going on from the best checkpoint
    in ``previous`` (the shorter run's folder; None: a fresh run)."""
    s = settings(strategy, args, str(MINI_FOUNDATIONS[args.foundation]), seed)
    s.max_num_epochs *= factor
    key = chain_key(arm_key(case, strategy, args, seed), factor)
    folder = run_folder(case, strategy, args, seed, factor)
    model = folder / f"{s.name}.model"
    if key in ledger.get("trainings", {}) and (
        model.exists() or extended(case, strategy, args, seed, factor)
    ):
        return ledger["trainings"][key]  # a parked longer run goes on from its own checkpoint
    train, val, _ = data
    start = time.perf_counter()
    if not finished(folder, model, key):  # else: finished, its record lost (killed in between)
        console.print(f"[bold]{case}[/] {arm_label(strategy, args)} seed {seed}: "
                      f"{s.max_num_epochs} epochs at most on {len(train)} structures")  # fmt: skip
        if previous is None:
            start_training(folder, key)
        else:
            go_on_from(previous, folder, s.name, key)
        run_mace_training(s, train, folder, valid=val)
        mark_finished(folder, key)
    outcome = training_outcome(folder, s.name, s.max_num_epochs)
    record = {"model": str(model.relative_to(OUT)), "training": outcome.model_dump() if outcome
              else None, "wall_s": round(time.perf_counter() - start)}  # fmt: skip
    ledger.setdefault("trainings", {})[key] = record
    save_ledger(case, ledger)
    return record


def run_folder(case: str, strategy: str, args, seed: int, factor: int) -> Path:
    """The folder of the run of an arm's chain at ``factor`` x the epoch cap."""
    return OUT / "runs" / case / (run_name(strategy, args, seed) + chain_key("", factor))


def extended(case: str, strategy: str, args, seed: int, factor: int) -> bool:
    """The run with twice ``factor`` x the cap of this arm has started (restored from the
    parked trainings in a fresh checkout): the shorter run's model is not needed again."""
    longer = run_folder(case, strategy, args, seed, 2 * factor)
    return started_key(longer) == chain_key(arm_key(case, strategy, args, seed), 2 * factor)


def go_on_from(previous: Path, folder: Path, name: str, key: str) -> None:
    """Start ``folder`` as the training ``key`` from the best checkpoint of the run in
    ``previous`` (mace-torch's restart_latest resumes there); a folder already started as
    ``key`` (an interrupted longer run) resumes from its own checkpoints."""
    if started_key(folder) == key:
        return
    if (found := best_checkpoint(previous, name)) is None:
        raise SystemExit(f"{previous}: no checkpoint to go on from (train that run again)")
    start_training(folder, key, found)


STRATEGY_NAMES = {
    "naive": "frozen", "frozen": "frozen", "replay": "multihead-replay", "lora": "lora"
}  # fmt: skip
"""The benchmark's strategies as ``finetune.strategy`` values (naive: frozen at level 0)."""


def measure(
    case: str, record: dict, data, heldout, oracle_calc, foundation_name: str, strategy: str
) -> dict:
    """Target-domain error and the forgetting check of one trained model (``strategy``: the
    benchmark's, for the check's advice)."""
    model = committee_calculator([OUT / record["model"]], device="cpu", dtype="float64")
    foundation = committee_calculator(
        [MINI_FOUNDATIONS[foundation_name]], device="cpu", dtype="float64"
    )
    check = check_forgetting(
        model, foundation, CASE_ELEMENTS[case], heldout, oracle_calc,
        strategy=STRATEGY_NAMES[strategy],
    )  # fmt: skip
    return {
        "target_force_mae": force_mae(model, data[2]),
        "foundation_target_force_mae": force_mae(foundation, data[2]),
        "check": check.model_dump(),
        "ratio": check.force_mae_ratio,
        "lattice_error_percent": {c.element: c.error_percent("model") for c in check.lattice},
        "foundation_lattice_error_percent": {
            c.element: c.error_percent("foundation") for c in check.lattice
        },
        "training": record["training"],
    }


def load_ledger(case: str) -> dict:
    """A case's ledger (empty before its first training)."""
    path = OUT / f"ledger-{case}.json"  # one per case: cases can run side by side
    return json.loads(path.read_text()) if path.exists() else {}


def run(args: argparse.Namespace, mode: str = "train") -> dict:
    """Every seed, case and strategy, seed by seed (trainings and measurements from the case's
    ledger where finished). ``mode``: ``train`` trains and measures what is missing,
    ``measure`` measures the finished trainings the ledgers hold (after a change to the check;
    trains nothing), ``collect`` only collects what the ledgers hold.
    Returns {case: {strategy: [measurement per seed]}}."""
    heldout = read_heldout() if mode != "collect" else None
    results: dict = {case: {s: [] for s in arm_names(args)} for case in args.cases}
    if mode == "train":
        for case in args.cases:  # the trainings an earlier session parked resume
            restore_parked(OUT / "runs" / case, OUT / "parked" / case)
    for seed in args.seeds:
        for case in args.cases:
            data = case_data(case, args.n, args.n_val, args.n_test) if mode != "collect" else None
            ledger, oracle_calc = load_ledger(case), None
            measured = ledger.setdefault("measured", {})
            for strategy in arm_names(args):
                key = f"{final_key(case, strategy, args, seed, ledger)}-{MEASUREMENT}"
                if key not in measured and mode != "collect":  # kept: no model files needed
                    if found := trained(case, strategy, args, data, ledger, seed, mode):
                        last, record = found
                        oracle_calc = oracle_calc or oracle(case)
                        key = f"{last}-{MEASUREMENT}"
                        measured[key] = measure(
                            case, record, data, heldout, oracle_calc, args.foundation,
                            arm_strategy(strategy, args)[0],
                        )  # fmt: skip
                        save_ledger(case, ledger)
                if key in measured:
                    results[case][strategy].append(measured[key])
    return results


def trained(case: str, strategy: str, args, data, ledger: dict, seed: int, mode: str):
    """An arm's last run (key, record): trained now (``mode`` train), or the ledger's finished
    one whose model file is there (``measure``; None when there is none)."""
    if mode == "train":
        return train_arm(case, strategy, args, data, ledger, seed)
    last = final_key(case, strategy, args, seed, ledger)
    record = ledger.get("trainings", {}).get(last)
    return (last, record) if record and (OUT / record["model"]).exists() else None


def mean_spread(values: list[float]) -> tuple[float, float]:
    """Mean and spread (half the range) over seeds."""
    return float(np.mean(values)), float((max(values) - min(values)) / 2)


def fmt(values: list[float], digits: int = 1) -> str:
    """``mean ± spread`` over seeds (the value alone for one seed)."""
    m, s = mean_spread(values)
    return f"{m:.{digits}f}" if len(values) == 1 else f"{m:.{digits}f} ± {s:.{digits}f}"


def still_improving(r: dict) -> bool:
    """The run ended at its cap still improving (the project's rule)."""
    return bool(r["training"]) and TrainingOutcome(**r["training"]).still_improving


def lattice_cell(runs: list[dict], key: str) -> str:
    """Seed-mean lattice constant error vs the oracle per element (%); ``no minimum (k of n)``
    when k models had no bulk energy minimum in the check's scans."""
    which = "foundation" if key.startswith("foundation") else "model"
    cells = []
    for el in sorted({el for r in runs for el in r[key]}):
        values = [r[key].get(el) for r in runs]
        found = [v for v in values if v is not None and np.isfinite(v)]
        lost = sum(lattice_lost(r, el, which) for r in runs)
        if len(found) == len(values):
            cells.append(f"{el} {np.mean(found):+.2f}")
        elif lost:
            cells.append(f"{el} no minimum ({lost} of {len(runs)})")
    return ", ".join(cells)


def modulus_cell(runs: list[dict], who: str) -> str:
    """Seed-mean bulk modulus error vs the oracle per element (%), from the checks' fits."""
    errors: dict[str, list[float]] = {}
    for r in runs:
        for c in r["check"]["lattice"]:
            error = LatticeCheck.model_validate(c).change_percent("bulk_modulus", who, "oracle")
            if error is not None:
                errors.setdefault(c["element"], []).append(error)
    return ", ".join(f"{el} {np.mean(v):+.0f}" for el, v in sorted(errors.items()))


def walls_cell(runs: list[dict]) -> str:
    """The bulks and pairs whose repulsive wall fine-tuning removed (the check's rule), with in
    how many seeds; ``–``: none."""
    lost: dict[str, int] = {}
    for r in runs:
        probes = [(c["element"], c) for c in r["check"]["lattice"]]
        probes += [(p["pair"], p) for p in r["check"].get("pairs", [])]
        for name, probe in probes:
            if wall_lost(probe.get("wall_model"), probe.get("wall_foundation")):
                lost[name] = lost.get(name, 0) + 1
    return ", ".join(f"{name} ({k} of {len(runs)})" for name, k in sorted(lost.items())) or "–"


def lattice_lost(run: dict, element: str, which: str) -> bool:
    """True when the run's forgetting check found no bulk minimum of ``element`` for ``which``."""
    for c in run["check"]["lattice"]:
        if c["element"] == element:
            a = c[f"a_{which}"]
            return a is None or not np.isfinite(a)
    return False


def case_table(case: str, arms: dict[str, list[dict]], args: argparse.Namespace) -> Table:
    """One case: the foundation, then every strategy as seed means ± spread."""
    table = Table(title=f"{case}: {args.n} training structures, foundation {args.foundation}")
    for col in ("strategy", "seeds", "target F MAE", "domain F MAE after / before", "epochs",
                "lattice error vs oracle %", "bulk modulus error %", "walls lost"):  # fmt: skip
        table.add_column(col)
    first = next(runs for runs in arms.values() if runs)
    table.add_row("foundation", "–", f"{first[0]['foundation_target_force_mae']:.1f}",
                  f"{first[0]['check']['force_mae_before']:.1f}", "–",
                  lattice_cell(first, "foundation_lattice_error_percent"),
                  modulus_cell(first, "foundation"), "–")  # fmt: skip
    for strategy, runs in arms.items():
        if not runs:
            continue
        epochs = [
            f"{(r['training'] or {}).get('epochs_run', '?')}" + (" (cap)" * still_improving(r))
            for r in runs
        ]
        table.add_row(
            arm_label(strategy, args), str(len(runs)), fmt([r["target_force_mae"] for r in runs]),
            f"{fmt([r['check']['force_mae_after'] for r in runs])} / "
            f"{runs[0]['check']['force_mae_before']:.1f} = {fmt([r['ratio'] for r in runs], 2)}",
            " ".join(epochs), lattice_cell(runs, "lattice_error_percent"),
            modulus_cell(runs, "model"), walls_cell(runs),
        )  # fmt: skip
    return table


def replay_costs(arms: dict[str, list[dict]], args: argparse.Namespace) -> dict[str, float]:
    """Each replay arm's seed-mean target-domain error above the best of ``--strategies``
    (%), by arm label."""
    means = {s: np.mean([r["target_force_mae"] for r in runs]) for s, runs in arms.items() if runs}
    best = min((m for s, m in means.items() if s in args.strategies), default=None)
    return {
        arm_label(s, args): 100 * (m / best - 1)
        for s, m in means.items()
        if best and arm_strategy(s, args)[0] == "replay"
    }


def worst_lattice_error(run: dict) -> float:
    """The largest |lattice constant error| vs the oracle over the pure elements (%; NaN when
    an element had no bulk minimum)."""
    values = list(run["lattice_error_percent"].values())
    if any(v is None or not np.isfinite(v) for v in values):
        return float("nan")
    return max(abs(v) for v in values)


def plot(results: dict, args: argparse.Namespace, path: Path) -> None:
    """Per case: target-domain force MAE against the foundation-domain after / before ratio
    (top) and against the worst pure-element lattice constant error (bottom); small markers
    seeds, large ones seed means."""
    cases = [c for c, arms in results.items() if any(arms.values())]
    if not cases:
        return
    with figure(path, ncols=len(cases), nrows=2, figsize=(5.5 * len(cases), 8)) as (_, axes):
        for col, case in enumerate(cases):
            top, bottom = axes[0, col], axes[1, col]
            for i, (arm, runs) in enumerate(r for r in results[case].items() if r[1]):
                y = [r["target_force_mae"] for r in runs]
                for ax, x in ((top, [r["ratio"] for r in runs]),
                              (bottom, [worst_lattice_error(r) for r in runs])):  # fmt: skip
                    ax.scatter(x, y, s=14, alpha=0.5, color=f"C{i}")
                    ax.scatter(np.nanmean(x) if np.isfinite(x).any() else np.nan, np.mean(y),
                               s=70, color=f"C{i}", label=arm_label(arm, args))  # fmt: skip
            first = next(runs for runs in results[case].values() if runs)[0]
            bottom.axvline(worst_lattice_error(
                {"lattice_error_percent": first["foundation_lattice_error_percent"]}),
                color="grey", ls="--", label="foundation")  # fmt: skip
            top.axvline(1.1, color="grey", ls=":", label="goal 1.1")
            top.set(title=f"{case}: {args.n} structures", xlabel="foundation-domain force MAE "
                    "after / before", ylabel="target-domain force MAE (meV/Å)")  # fmt: skip
            bottom.set(xlabel="worst pure-element lattice constant error vs oracle (%)",
                       ylabel="target-domain force MAE (meV/Å)")  # fmt: skip
            top.legend(fontsize=8)
            bottom.legend(fontsize=8)


def report(results: dict, args: argparse.Namespace) -> None:
    """A table per case, the replay and convergence lines, then the last line; the plot."""
    for case, arms in results.items():
        if any(arms.values()):
            console.print(case_table(case, arms, args))
    plot(results, args, OUT / "forgetting.png")
    counts = [len(runs) for arms in results.values() for runs in arms.values()]
    print(f"seeds per arm: {min(counts)} of {len(args.seeds)}")
    for case, arms in results.items():
        for arm, within in replay_costs(arms, args).items():
            print(f"{case}: {arm} target-domain error {within:+.1f} % vs the best strategy's")
    capped = sorted(
        {
            f"{case} {s}"
            for case, arms in results.items()
            for s, runs in arms.items()
            for r in runs
            if still_improving(r)
        }  # fmt: skip
    )
    if not any(counts):
        print("converged: no (nothing trained with these settings yet)")
    else:
        print("converged: " + ("yes" if not capped else f"no ({', '.join(capped)} at the cap)"))
    worst = {
        s: max(np.mean([r["ratio"] for r in results[c][s]]) for c in results)
        for s in ("frozen", "naive", "replay")
        if all(results[c].get(s) for c in results)
    }
    print(
        "foundation-domain force MAE after / before: "
        + ", ".join(f"{s} {worst[s]:.2f}" for s in worst)
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's options (``argv``: the command line's when None)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=["h2cu", "alloys"])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--foundation", default="mini-64", choices=sorted(MINI_FOUNDATIONS))
    parser.add_argument("--n", type=int, default=40, help="training structures per case")
    parser.add_argument("--n-val", type=int, default=30)
    parser.add_argument("--n-test", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=300, help="epoch cap")
    parser.add_argument(
        "--max-extension",
        type=int,
        default=4,
        help="a run at its cap still improving goes on with 2x, 4x, ... the cap up to this factor",
    )
    parser.add_argument("--patience", type=int, default=30)
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument(
        "--scheduler-patience",
        type=int,
        default=0,
        help="epochs before mace-torch lowers the rate (0: its default 50, which patience 30 "
        "never reaches: the rate then stays constant)",
    )
    parser.add_argument(
        "--stress-weight",
        type=float,
        default=0.0,
        help="> 0: mace-torch trains on the stress too (cases whose labels have it: alloys)",
    )
    parser.add_argument("--replay-samples", type=int, default=80)
    parser.add_argument(
        "--replay-weight",
        type=float,
        default=REPLAY_WEIGHT,
        help="the replay arm's weight of the foundation head's loss (mace-torch weight_pt_head; "
        "default: finetune.replay_weight's; 1: mace-torch's, the runs before 2026-12-07)",
    )
    parser.add_argument(
        "--replay-filter",
        choices=REPLAY_FILTERS,
        default=REPLAY_FILTER,
        help="replay frames drawn from those of the case's elements (mace-torch filter_type_pt; "
        "default: finetune.replay_filter's; none: any frame, the runs before 2026-12-07)",
    )
    parser.add_argument(
        "--replay-sweep",
        nargs="*",
        type=float,
        default=[],
        help="more replay arms, one per weight (table and plot; not on the last line)",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--reprint", action="store_true", help="print what the ledgers hold; train nothing"
    )
    parser.add_argument(
        "--measure-only",
        action="store_true",
        help="measure the finished trainings the ledgers hold with the current check (after a "
        "change to it; needs their run folders); train nothing",
    )
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.reprint or args.measure_only:
        report(run(args, "measure" if args.measure_only else "collect"), args)
        return
    inputs = {k: v for k, v in vars(args).items() if k not in ("reprint", "measure_only")}
    key = fingerprint(argparse.Namespace(**inputs))
    saved = OUT / "results.json"
    if saved.exists() and (old := json.loads(saved.read_text())).get("fingerprint") == key:
        console.print(f"inputs unchanged: re-printing {saved}")
        report(old["results"], args)
        return
    results = run(args)
    saved.write_text(json.dumps({"fingerprint": key, "args": vars(args), "results": results},
                                indent=1, default=str))  # fmt: skip
    report(results, args)


if __name__ == "__main__":
    main()
