"""Forgetting by fine-tuning strategy: what each keeps of the foundation's knowledge.

The mini-64 foundation (CHGNet-PBE level) is fine-tuned on the two cases of the data-efficiency
benchmark (their committed labels: H2/Cu(111) by GFN1-xTB, Cu-Ni-Au alloys by CHGNet-r2SCAN)
with each strategy, on the same ``--n`` training structures, every run until mace-torch's
early stopping (``--patience``) or the epoch cap (recorded: a run at its cap is marked):

- ``frozen``: ``--freeze 6`` (frostline's default level);
- ``naive``: a full fine-tune (f0) on the target data alone;
- ``replay``: f0 with mace-torch's multihead replay of the foundation's own pretraining data
  (the shipped subset, ``frostline.finetune.replay``);
- ``lora``: mace-torch's LoRA adapters (rank 4), everything else frozen.

Per case and strategy it prints the target-domain test force MAE, the force MAE on the held-out
slice of the foundation's domain (fresh cells of its pretraining generator with only the case's
elements) after / before fine-tuning, and each pure element's bulk lattice constant error vs the
oracle (equation of state, ``frostline.finetune.forgetting``). The last line is the larger
after / before ratio of the two cases per strategy:

    foundation-domain force MAE after / before: frozen X, naive Y, replay Z

Goal: replay <= 1.1 while its target-domain error is within 10 % of the best strategy's.
With no arguments: the whole run, or a re-print from ``results/forgetting/results.json`` when
its inputs (data, settings, this script and the modules it measures) are unchanged; finished
trainings and their measurements are kept in ``results/forgetting/ledger-CASE.json`` (commit it: a
killed run, or one in a fresh checkout without the model files, resumes there).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from frostline.config import OracleConfig
from frostline.finetune.committee import committee_calculator
from frostline.finetune.forgetting import check_forgetting, force_mae
from frostline.finetune.foundation import MINI_FOUNDATIONS
from frostline.finetune.replay import HELDOUT_FILE, read_heldout, replay_path
from frostline.finetune.train import MaceTrainSettings, run_mace_training, training_outcome
from frostline.label.oracles import builtin_calculator

console = Console()
HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "forgetting"
LABELS = HERE / "results" / "data_efficiency_f64_p30"  # the data-efficiency cases' labels
STRATEGIES = ("naive", "replay", "frozen", "lora")
CASE_ELEMENTS = {"h2cu": ("H", "Cu"), "alloys": ("Cu", "Ni", "Au")}
MEASUREMENT = "vs-oracle"  # held-out frames relabelled by the case's oracle (2026-12-06)
MEASURED = ("finetune/forgetting.py", "finetune/train.py", "finetune/replay.py")


def case_data(case: str, n: int, n_val: int, n_test: int) -> tuple[list, list, list]:
    """Training, validation (checkpoint) and test structures of a data-efficiency case."""
    from ase.io import read

    frames = read(LABELS / f"{case}-labels.extxyz", ":")
    pool, val, test = frames[:300], frames[300:330], frames[330:]
    return pool[:n], val[:n_val], test[:n_test]


def settings(strategy: str, args: argparse.Namespace, foundation: str) -> MaceTrainSettings:
    """mace-torch settings of one strategy (the same everything else)."""
    extra = {"patience": str(args.patience)}
    base = MaceTrainSettings(
        name=strategy,
        seed=args.seed,
        max_num_epochs=args.epochs,
        batch_size=4,
        lr=args.lr,
        e0s="estimated",
        energy_weight=10.0,
        forces_weight=10.0,
        foundation_model=foundation,
        freeze={"frozen": 6}.get(strategy, 0),
        extra=extra,
    )
    if strategy == "replay":
        base.pt_train_file = str(replay_path(args.foundation))
        base.num_samples_pt = args.replay_samples
    if strategy == "lora":
        base.lora = True
    return base


def oracle(case: str):
    """The case's oracle as an ASE calculator (the campaigns' built-in oracle of that name)."""
    name = "xtb" if case == "h2cu" else "chgnet-r2scan"
    return builtin_calculator(OracleConfig(name=name))


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


def arm_key(case: str, strategy: str, args) -> str:
    """What one arm's training and measurement depend on (settings, case, measuring code)."""
    s = settings(strategy, args, str(MINI_FOUNDATIONS[args.foundation]))
    return hashlib.sha256(f"{case}|{s.fingerprint()}|{args.n}".encode()).hexdigest()[:16]


def save_ledger(case: str, ledger: dict) -> None:
    """Write a case's ledger (finished trainings and their measurements)."""
    (OUT / f"ledger-{case}.json").write_text(json.dumps(ledger, indent=1, default=str))


def train_arm(case: str, strategy: str, args, data, ledger: dict) -> dict:
    """One strategy's fine-tune on one case (from the ledger when it finished before)."""
    s = settings(strategy, args, str(MINI_FOUNDATIONS[args.foundation]))
    key = arm_key(case, strategy, args)
    folder = OUT / "runs" / case / strategy
    model = folder / f"{strategy}.model"
    if key in ledger.get("trainings", {}) and model.exists():
        return ledger["trainings"][key]
    train, val, _ = data
    console.print(f"[bold]{case}[/] {strategy}: training on {len(train)} structures")
    run_mace_training(s, train, folder, valid=val)
    outcome = training_outcome(folder, strategy, args.epochs)
    record = {"model": str(model.relative_to(OUT)), "training": outcome.model_dump() if outcome
              else None}  # fmt: skip
    ledger.setdefault("trainings", {})[key] = record
    save_ledger(case, ledger)
    return record


def measure(case: str, record: dict, data, heldout, oracle_calc, foundation_name: str) -> dict:
    """Target-domain error and the forgetting check of one trained model."""
    model = committee_calculator([OUT / record["model"]], device="cpu", dtype="float64")
    foundation = committee_calculator(
        [MINI_FOUNDATIONS[foundation_name]], device="cpu", dtype="float64"
    )
    check = check_forgetting(model, foundation, CASE_ELEMENTS[case], heldout, oracle_calc)
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


def run(args: argparse.Namespace) -> dict:
    """Every case and strategy (trainings from the case's ledger where finished)."""
    heldout = read_heldout()
    results: dict = {}
    for case in args.cases:
        data = case_data(case, args.n, args.n_val, args.n_test)
        ledger_path = OUT / f"ledger-{case}.json"  # one per case: cases can run side by side
        ledger = json.loads(ledger_path.read_text()) if ledger_path.exists() else {}
        oracle_calc = oracle(case)
        for strategy in args.strategies:
            key = f"{arm_key(case, strategy, args)}-{MEASUREMENT}"
            measured = ledger.setdefault("measured", {})
            if key not in measured:  # the ledger keeps measurements: no model files needed
                record = train_arm(case, strategy, args, data, ledger)
                measured[key] = measure(case, record, data, heldout, oracle_calc, args.foundation)
                save_ledger(case, ledger)
            results.setdefault(case, {})[strategy] = measured[key]
    return results


def report(results: dict, args: argparse.Namespace) -> None:
    """A table per case, then the last line."""
    for case, arms in results.items():
        table = Table(title=f"{case}: {args.n} training structures, foundation {args.foundation}")
        for col in ("strategy", "target F MAE", "domain F MAE after / before", "epochs",
                    "lattice error vs oracle %"):  # fmt: skip
            table.add_column(col)
        first = next(iter(arms.values()))
        lattice0 = ", ".join(
            f"{el} {v:+.2f}"
            for el, v in first["foundation_lattice_error_percent"].items()
            if v is not None
        )
        table.add_row("foundation", f"{first['foundation_target_force_mae']:.1f}",
                      f"{first['check']['force_mae_before']:.1f}", "–", lattice0)  # fmt: skip
        for strategy, r in arms.items():
            c = r["check"]
            t = r["training"] or {}
            capped = " (cap)" if t.get("epochs_run") == t.get("max_epochs") else ""
            table.add_row(
                strategy,
                f"{r['target_force_mae']:.1f}",
                f"{c['force_mae_after']:.1f} / {c['force_mae_before']:.1f} = {r['ratio']:.2f}",
                f"{t.get('epochs_run', '?')}{capped}",
                ", ".join(
                    f"{el} {v:+.2f}"
                    for el, v in r["lattice_error_percent"].items()
                    if v is not None
                ),  # fmt: skip
            )
        console.print(table)
    worst = {
        s: max(results[c][s]["ratio"] for c in results)
        for s in ("frozen", "naive", "replay")
        if all(s in results[c] for c in results)
    }
    for case, arms in results.items():
        best = min(r["target_force_mae"] for r in arms.values())
        if "replay" in arms:
            within = 100 * (arms["replay"]["target_force_mae"] / best - 1)
            print(f"{case}: replay target-domain error {within:+.1f} % vs the best strategy's")
    print(
        "foundation-domain force MAE after / before: "
        + ", ".join(f"{s} {worst[s]:.2f}" for s in worst)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=["h2cu", "alloys"])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--foundation", default="mini-64", choices=sorted(MINI_FOUNDATIONS))
    parser.add_argument("--n", type=int, default=40, help="training structures per case")
    parser.add_argument("--n-val", type=int, default=30)
    parser.add_argument("--n-test", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=80, help="epoch cap")
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument("--replay-samples", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    key = fingerprint(args)
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
