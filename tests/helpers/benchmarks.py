"""The benchmark scripts of ``workflows/benchmarks/`` loaded as modules, for their tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[2] / "workflows" / "benchmarks"


def load_benchmark(name: str, alias: str | None = None) -> ModuleType:
    """``workflows/benchmarks/NAME.py`` as a fresh module ``ALIAS`` (default ``NAME_bench``),
    registered in ``sys.modules`` (its dataclasses need it)."""
    spec = importlib.util.spec_from_file_location(
        alias or f"{name}_bench", BENCHMARKS / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
