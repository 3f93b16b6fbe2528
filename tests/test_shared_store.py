"""One campaign on a shared store: order-free resume keys, superseded models, the lease."""

from __future__ import annotations

import json

import numpy as np
from conftest import tiny_campaign
from typer.testing import CliRunner

from frostline.cli import app
from frostline.config import parse_config
from frostline.finetune.foundation import sha256_file
from frostline.finetune.jobs import FineTuneMaker
from frostline.flows.campaign import write_config_copy
from frostline.registry.models import list_models, mark_superseded
from frostline.reliability.memo import memo_keys
from frostline.schemas import LabelledStructure, ModelDoc, ModelFile
from frostline.store import Records


def fake_labels(n: int) -> list[LabelledStructure]:
    structure = {"lattice": {"matrix": np.eye(3).tolist()}, "sites": []}
    return [
        LabelledStructure(
            structure=structure, oracle="emt", structure_hash=f"{i:040x}", oracle_settings_hash="s"
        )
        for i in range(n)
    ]


def test_finetune_resume_key_is_the_same_whatever_order_the_labels_come_in(foundation):
    maker = FineTuneMaker(committee_size=2)
    train, valid = fake_labels(6), fake_labels(3)
    keys = maker._memo_keys(foundation, train, valid, "c", 1, None, None)
    shuffled = [train[i] for i in (4, 1, 5, 0, 3, 2)]
    again = maker._memo_keys(foundation, shuffled, valid[::-1], "c", 1, None, None)
    assert keys[0] == again[0]
    # the key frostline computed before (labels in the order given) is still looked up
    ids = [(x.structure_hash, x.oracle_settings_hash, x.status) for x in shuffled]
    old = memo_keys(
        "finetune",
        maker=maker,
        foundation=sha256_file(foundation),
        train=ids,
        validation=[(x.structure_hash, x.oracle_settings_hash, x.status) for x in valid[::-1]],
        campaign="c",
        iteration=1,
        freeze=None,
    )
    assert set(old) <= set(again) and old[0] not in keys
    assert maker._memo_keys(foundation, train[:5], valid, "c", 1, None, None)[0] != keys[0]


def test_models_a_campaign_did_not_use_are_superseded_and_listed_only_with_all(job_store, tmp_path):
    records = Records(job_store).connect()
    for member, tag in ((0, "a"), (1, "a"), (0, "b"), (1, "b")):
        doc = ModelDoc(
            model_id=f"c-it000-m{member}-{tag}",
            kind="committee-member",
            campaign="c",
            iteration=0,
            member=member,
            elements=["Cu", "H"],
            file=ModelFile(filename="m.model", sha256="0" * 64, size_bytes=1),
        )
        records.upsert("model_docs", [doc.model_dump(mode="json")], ["model_id"])
    used = ["c-it000-m0-b", "c-it000-m1-b"]
    assert mark_superseded(records, "c", 0, used) == 2
    assert sorted(d["model_id"] for d in list_models(records, campaign="c")) == used
    assert len(list_models(records, campaign="c", include_superseded=True)) == 4
    assert mark_superseded(records, "c", 0, used) == 2  # idempotent
    write_config_copy(parse_config(tiny_campaign(name="c")), tmp_path)  # the store's directory
    args = ["models", "list", "--dir", str(tmp_path), "--json"]
    listed = CliRunner().invoke(app, args)
    assert [d["model_id"] for d in json.loads(listed.stdout)] == used
    assert len(json.loads(CliRunner().invoke(app, [*args, "--all"]).stdout)) == 4
