"""The campaign configuration reference, generated from the pydantic models of ``config.py``.

``frostline.config_reference.render_markdown()`` writes the page the docs site shows
(``docs/hooks.py`` calls it at every ``mkdocs build``), so the reference can never drift from the
models: every field, with its YAML path, type, default and description.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from frostline.config import CampaignConfig


@dataclass(frozen=True)
class FieldRow:
    """One configuration field: its YAML path (``select.trust_lo``) and what the page shows."""

    path: str
    type: str
    default: str
    description: str


def _model_in(annotation: object) -> type[BaseModel] | None:
    """The pydantic model inside ``annotation`` (``X``, ``X | None``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def type_name(annotation: object) -> str:
    """A short, YAML-minded name of a type (``"a" | "b"``, ``list[int]``, ``float | None``)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(type_name(a) for a in args)}]" if args else name
    if annotation is type(None):
        return "None"
    if annotation is Path:
        return "path"
    if isinstance(annotation, type):
        return "section" if issubclass(annotation, BaseModel) else annotation.__name__
    return str(annotation)


def _default(field) -> str:
    if field.is_required():
        return "required"
    value = field.default
    if value is PydanticUndefined and field.default_factory is not None:
        value = field.default_factory()
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, Path):
        value = str(value)
    return json.dumps(value, default=str)


# Descriptions of the fields and sections ``config.py`` leaves without one, keyed
# ``ModelClass.field`` (a field's own ``description`` or a section's docstring wins; a test checks
# that every key here names a field still without one, so this list cannot go stale).
FALLBACK: dict[str, str] = {
    "CampaignConfig.elements": "chemical symbols of the system (sorted, deduplicated)",
    "CampaignConfig.seed": "random seed of seeds, splits, MD and selection",
    "CampaignConfig.finetune": "Committee fine-tuning of the foundation with mace-torch.",
    "CampaignConfig.explore": "Langevin MD with the committee: where candidate frames come from.",
    "CampaignConfig.convergence": "When the loop stops.",
    "CampaignConfig.store": "Where records live: embedded (montydb under DIR/store) or MongoDB.",
    "FineTuneConfig.committee_size": "committee members (K), each on its own subsample and seed",
    "FineTuneConfig.lr": "mace-torch learning rate",
    "FineTuneConfig.batch_size": "mace-torch batch size",
    "FineTuneConfig.e0s": "per-element reference energies: estimated from the labels by least "
    "squares, taken from the foundation, or averaged",
    "FineTuneConfig.energy_weight": "energy weight of mace-torch's loss",
    "FineTuneConfig.forces_weight": "forces weight of mace-torch's loss",
    "FineTuneConfig.default_dtype": "training precision",
    "FineTuneConfig.device": "training device (`auto`: CUDA if present)",
    "ExploreConfig.temperatures": "K, one set of Langevin trajectories per temperature",
    "ExploreConfig.steps": "MD steps per trajectory",
    "ExploreConfig.timestep_fs": "fs, MD time step",
    "ExploreConfig.sample_every": "keep every n-th frame as a candidate",
    "ExploreConfig.starts_per_temperature": "trajectories per temperature (different starts)",
    "SelectConfig.min_calibration_points": "labelled frames needed before the trust window is "
    "calibrated (committee std to true force error)",
    "SelectConfig.max_labels_per_iteration": "labels bought per iteration at most",
    "OracleConfig.name": "the labelling oracle (see Oracles and DFT)",
    "OracleConfig.settings": "oracle settings: calculator kwargs, DFT input overrides, "
    "`calculator` / `maker` import paths (see Oracles and DFT)",
    "ConvergenceConfig.accurate_fraction": "converged when this fraction of explored frames is "
    "'accurate' (committee spread below the trust window)",
    "ConvergenceConfig.max_iterations": "fine-tunes at most; each iteration but the last "
    "fine-tunes, explores, selects and labels; the last one's exploration only measures the "
    "committee (its worthwhile frames are counted 'not needed', nothing is labelled): "
    "`max_iterations: 1` labels only the initial set",
    "DistillConfig.sample_every": "keep every n-th teacher MD frame",
    "DistillConfig.max_strain": "largest strain component of the strained teacher cells",
    "StoreConfig.kind": "`embedded` (montydb files) or `mongodb`",
    "StoreConfig.database": "MongoDB database",
    "JobRoute.worker": "jobflow-remote worker (FireWorks: the default category)",
    "JobRoute.exec_config": "jobflow-remote exec_config name, or an inline one",
    "JobRoute.resources": "queue resources (qtoolkit keys: nodes, processes, time_limit, "
    "gpus_per_job, ...)",
    "JobRoute.category": "FireWorks `_category` (default: `worker`)",
}


def _description(model: type[BaseModel], name: str) -> str:
    field = model.model_fields[name]
    text = field.description or ""
    sub = _model_in(field.annotation)
    if not text and sub is not None and sub.__doc__:
        text = sub.__doc__.strip().split("\n\n")[0]
    text = text or FALLBACK.get(f"{model.__name__}.{name}", "")
    return " ".join(text.split())


def config_fields(model: type[BaseModel] = CampaignConfig, prefix: str = "") -> Iterator[FieldRow]:
    """Every field of ``model`` and of its sections, depth first, in declaration order."""
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        sub = _model_in(field.annotation)
        kind = type_name(field.annotation)
        yield FieldRow(path, kind, _default(field), _description(model, name))
        if sub is not None:
            yield from config_fields(sub, f"{path}.")


def _cell(text: str) -> str:
    return text.replace("|", "\\|") or " "


def _table(rows: list[FieldRow]) -> list[str]:
    out = ["| field | type | default | description |", "| --- | --- | --- | --- |"]
    for row in rows:
        cells = (f"`{row.path}`", f"`{row.type}`", f"`{row.default}`", row.description)
        out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return out


def render_markdown() -> str:
    """The configuration reference page (Markdown): one table row per field, per section."""
    rows = list(config_fields())
    sections = [r for r in rows if "." not in r.path and r.type.split(" | ")[0] == "section"]
    names = {s.path for s in sections}
    out = [
        "# Configuration reference",
        "",
        "Generated from the pydantic models in `src/frostline/config.py` at every docs build "
        "(`frostline.config_reference`). A campaign YAML is validated by "
        "`frostline.config.load_config`: an unknown or invalid field fails before any work with "
        "`FILE: field 'section.key': reason`. [`frostline init`](../user/own-system.md) writes a "
        "commented starting point; `configs/demo_h2_cu111.yaml` is the demo's.",
        "",
        "## Top level",
        "",
        *_table([r for r in rows if "." not in r.path and r.path not in names]),
    ]
    for section in sections:
        out += ["", f"## `{section.path}`", "", section.description, ""]
        out += _table([r for r in rows if r.path.startswith(section.path + ".")])
    return "\n".join(out) + "\n"
