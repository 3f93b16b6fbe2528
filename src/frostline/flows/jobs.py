"""Bookkeeping jobs of a campaign: set-up, zero-shot baseline, iteration records."""

from __future__ import annotations

from pymatgen.io.ase import AseAtomsAdaptor

from frostline.config import CampaignConfig
from frostline.finetune.committee import committee_calculator
from frostline.finetune.evaluate import evaluate_zero_shot
from frostline.jobs import frostline_job
from frostline.schemas import (
    CampaignDoc,
    CampaignSetup,
    CandidateStructure,
    LabelledStructure,
    Provenance,
    ValidationMetrics,
    utcnow,
)
from frostline.seeds import campaign_structures
from frostline.store import Records, current_records


def update_campaign(records: Records, name: str, **fields) -> dict:
    """Merge ``fields`` into the campaign document (read-modify-write on one document)."""
    doc = records.campaign(name)
    if doc is None:
        raise KeyError(f"campaign {name} not in store")
    doc.update(fields, updated=utcnow().isoformat())
    records.upsert("campaigns", [doc], key=["campaign"])
    return doc


def _candidates(atoms_list, sampler: str) -> list[CandidateStructure]:
    return [
        CandidateStructure(
            structure=AseAtomsAdaptor.get_structure(a).as_dict(),
            provenance=Provenance(iteration=-1, sampler=sampler),
        )
        for a in atoms_list
    ]


@frostline_job(CampaignSetup, enforce=False)  # a dict
def setup_campaign(config: dict, foundation: str, oracle: str) -> dict:
    """Record the campaign and build its initial, validation and starting structures."""
    cfg = CampaignConfig.model_validate(config)
    records = current_records()
    existing = records.campaign(cfg.name)
    doc = CampaignDoc(
        campaign=cfg.name,
        config=config,
        foundation=foundation,
        oracle=oracle,
        elements=cfg.elements,
        n_validation=cfg.system.n_validation,
    ).model_dump(mode="json")
    if existing:  # a re-run keeps the creation time
        doc["created"] = existing.get("created", doc["created"])
    records.upsert("campaigns", [doc], key=["campaign"])
    structures = campaign_structures(cfg)
    imported = []
    initial = _candidates(structures.initial, "seed")
    if cfg.system.labelled_file is not None:  # initial training set bought earlier
        from frostline.label.imported import read_labelled_file
        from frostline.label.jobs import store_labels

        imported = read_labelled_file(
            cfg.system.labelled_file, cfg.elements, cfg.name, cfg.system.labelled_oracle
        )
        store_labels(records, imported)
        initial = initial[: max(0, cfg.system.n_initial - len(imported))]
    return {
        "initial": initial,
        "imported": [x.model_dump(mode="json") for x in imported],
        "validation": _candidates(structures.validation, "validation"),
        "starts": [AseAtomsAdaptor.get_structure(a).as_dict() for a in structures.starts],
    }


@frostline_job(ValidationMetrics, enforce=False)  # a dict
def zero_shot_baseline(
    campaign: str,
    foundation: str,
    reference: list[LabelledStructure],
    validation: list[LabelledStructure],
    elements: list[str],
) -> dict:
    """Errors of the foundation itself on the validation set (energies shifted per element)."""
    reference = [LabelledStructure.model_validate(r) for r in reference]
    validation = [LabelledStructure.model_validate(v) for v in validation]
    calc = committee_calculator([foundation])
    metrics = evaluate_zero_shot(calc, reference, validation, elements)
    update_campaign(current_records(), campaign, zero_shot=metrics.model_dump())
    return metrics.model_dump()
