"""Bad input never gives a traceback or a half-written store (hypothesis over configs and
structure files; ``frostline.reliability.fuzz`` states the property). The number of cases tried
is counted and checked at the end."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings

from frostline.reliability.fuzz import check_config_case, check_structure_case, strategies

pytestmark = pytest.mark.slow  # the whole module (see pyproject.toml, tool.pytest)

CONFIG_CASE, STRUCTURES = strategies()
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


def test_cases_were_tried_and_most_refused():
    total = sum(COUNTS.values())
    print("bad-input cases tried:", total, dict(COUNTS))
    if total == 0:
        pytest.fail("run with the fuzz tests above (they fill the counts)")
    assert total >= 100
    for kind in ("config", "seeds", "labelled"):
        assert COUNTS[f"{kind} refused"] >= 10, COUNTS
