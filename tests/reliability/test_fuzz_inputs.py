"""Bad input never gives a traceback or a half-written store (hypothesis over configs and
structure files; ``frostline.testing.fuzz`` states the property). The number of cases tried
is counted and checked at the end."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings

from frostline.testing.fuzz import (
    check_config_case,
    check_model_file_case,
    check_name_case,
    check_structure_case,
    file_and_name_strategies,
    strategies,
)

pytestmark = pytest.mark.slow  # the whole module (see pyproject.toml, tool.pytest)

CONFIG_CASE, STRUCTURES = strategies()
MODEL_FILES, NAMES = file_and_name_strategies()
COUNTS: Counter = Counter()
FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(case=CONFIG_CASE)
def test_campaign_configs(tmp_path_factory, foundation, case):
    check_config_case(case, tmp_path_factory.mktemp("cfg"), COUNTS)


@FUZZ
@given(case=STRUCTURES)
def test_seed_structure_files(tmp_path_factory, foundation, case):
    check_structure_case(case, tmp_path_factory.mktemp("seeds"), COUNTS, labelled=False)


@settings(FUZZ, max_examples=25)
@given(case=STRUCTURES)
def test_labelled_structure_files(tmp_path_factory, foundation, case):
    check_structure_case(case, tmp_path_factory.mktemp("lab"), COUNTS, labelled=True)


@settings(FUZZ, max_examples=10)
@given(case=MODEL_FILES)
def test_foundation_files_that_are_not_models(tmp_path_factory, foundation, case):
    check_model_file_case(case, tmp_path_factory.mktemp("model"), COUNTS)


@settings(FUZZ, max_examples=10)
@given(name=NAMES)
def test_campaign_names_too_long_or_naming_a_path(tmp_path_factory, foundation, name):
    check_name_case(name, tmp_path_factory.mktemp("name"), COUNTS)


def test_cases_were_tried_and_most_refused():
    total = sum(COUNTS.values())
    print("bad-input cases tried:", total, dict(COUNTS))
    if total == 0:
        pytest.fail("run with the fuzz tests above (they fill the counts)")
    assert total >= 100
    for kind in ("config", "seeds", "labelled"):
        assert COUNTS[f"{kind} refused"] >= 10, COUNTS
    for kind in ("model file", "name"):  # none of these may be accepted
        assert COUNTS[f"{kind} refused"] >= 5 and not COUNTS[f"{kind} accepted"], COUNTS
