"""The docs: the configuration reference lists every field of the campaign config; README size."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from pydantic import BaseModel

from frostline.config import CampaignConfig
from frostline.config_reference import FALLBACK, config_fields, render_markdown

ROOT = Path(__file__).resolve().parent.parent


def _submodel(annotation) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if (found := _submodel(arg)) is not None:
            return found
    return None


def _paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        out.append(prefix + name)
        if (sub := _submodel(field.annotation)) is not None:
            out += _paths(sub, f"{prefix}{name}.")
    return out


def test_reference_lists_every_field_with_type_default_and_description():
    page = render_markdown()
    rows = {
        m.group(1): m.group(0)
        for m in re.finditer(r"^\| `([a-z_.0-9]+)` \| `[^`]+` \| `[^`]*` \| .+\|$", page, re.M)
    }
    paths = _paths(CampaignConfig)
    assert {"distill.target_force_mae_mev_per_a", "routing.label.resources"} <= set(paths)
    sections = {
        p
        for p in paths
        if "." not in p and _submodel(CampaignConfig.model_fields[p].annotation) is not None
    }
    missing = [p for p in paths if p not in rows and p not in sections]
    assert not missing, f"fields missing from the configuration reference: {missing}"
    for section in sections:
        assert f"## `{section}`" in page
    undocumented = [r.path for r in config_fields() if not r.description]
    assert not undocumented, f"fields without a description: {undocumented}"


def test_fallback_descriptions_name_real_undocumented_fields():
    models = {}

    def collect(model):
        models[model.__name__] = model
        for field in model.model_fields.values():
            if (sub := _submodel(field.annotation)) is not None:
                collect(sub)

    collect(CampaignConfig)
    for key in FALLBACK:
        cls, name = key.split(".")
        assert name in models[cls].model_fields, key
        field = models[cls].model_fields[name]
        sub = _submodel(field.annotation)
        assert not field.description and not (sub and sub.__doc__), f"{key}: has its own now"


def test_readme_is_short_and_its_doc_links_exist():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert '.venv/bin/pip install torch==2.13.0 -e ".[test]" && .venv/bin/frostline demo' in readme
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert links and all((ROOT / link).is_file() for link in links), links


def test_nav_pages_exist():
    nav = re.findall(r":\s+(\S+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M)
    generated = {"reference/configuration.md"}
    assert len(nav) > 20
    assert all((ROOT / "docs" / p).is_file() for p in nav if p not in generated)
