"""Every frostline job goes through ``frostline.jobs.frostline_job`` and declares its schema."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

import frostline
from frostline.jobs import OUTPUT_SCHEMA_ATTRIBUTE, frostline_job

SOURCE = Path(frostline.__file__).parent


def test_no_job_is_decorated_with_jobflows_job_directly():
    bare = [
        f"{path.relative_to(SOURCE)}:{n}"
        for path in SOURCE.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.match(r"\s*@job\b", line)
    ]
    assert bare == []


def test_jobs_declare_schemas_and_keep_their_store_routing():
    from frostline.alloys.jobs import summarise_alloys
    from frostline.alloys.schemas import AlloySummaryDoc
    from frostline.explore.jobs import ExploreMaker
    from frostline.flows.active_learning import ActiveLearningMaker
    from frostline.label.jobs import LabelMaker, collect_labels, label_structure, record_label
    from frostline.schemas import ExploreResult
    from frostline.select.jobs import SelectMaker, calibrate_committee

    functions = [summarise_alloys, collect_labels, label_structure, record_label]
    functions += [calibrate_committee, ExploreMaker.make, SelectMaker.make, LabelMaker.make]
    functions += [ActiveLearningMaker.iteration, ActiveLearningMaker.advance]
    for function in functions:
        assert getattr(function, OUTPUT_SCHEMA_ATTRIBUTE) is not None, function

    explore = ExploreMaker().make(None, [], 0)
    assert explore.output_schema is ExploreResult and explore.config.expose_store
    assert explore._kwargs == {"data": "candidates"}  # frames go to the data store
    summary = summarise_alloys("c", "emt", "mini", [], [], [])
    assert summary.output_schema is AlloySummaryDoc and summary._kwargs == {}
    with pytest.raises(AttributeError, match="does not have attribute 'nonsense'"):
        explore.output.nonsense  # noqa: B018 (jobflow checks access against the schema)
    labels = LabelMaker().make([])
    assert labels.output_schema is None and labels.config.expose_store  # a list: declared only
    assert not label_structure(None, None, "c", "train").config.expose_store


def test_enforced_schemas_must_be_pydantic_models():
    with pytest.raises(TypeError, match="pydantic model class"):
        frostline_job(list[BaseModel])
    assert frostline_job(list[BaseModel], enforce=False) is not None
