"""The forgetting benchmark's bookkeeping: committed ledgers stay valid, one folder per
protocol (no training here; the trainings are mace-torch's, tested elsewhere)."""

from __future__ import annotations

import json

import pytest
from helpers.benchmarks import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("forgetting")


@pytest.mark.parametrize("case", ["h2cu", "alloys"])
def test_the_committed_ledgers_hold_seed_0_of_every_strategy_at_the_defaults(bench, case):
    """A change to the settings' keys would silently retrain hours of committed runs."""
    ledger = json.loads((bench.OUT / f"ledger-{case}.json").read_text())
    args = bench.parse_args([])
    for strategy in args.strategies:
        key = f"{bench.arm_key(case, strategy, args, 0)}-{bench.MEASUREMENT}"
        assert key in ledger["measured"], (case, strategy)


def test_another_scheduler_patience_is_another_run_folder_and_key(bench):
    default, decaying = bench.parse_args([]), bench.parse_args(["--scheduler-patience", "10"])
    assert bench.run_name("naive", default, 1) == "naive-seed1"
    assert bench.run_name("naive", decaying, 1) == "naive-seed1-sp10"
    keys = {bench.arm_key("h2cu", "naive", a, 1) for a in (default, decaying)}
    assert len(keys) == 2
