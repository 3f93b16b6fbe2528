"""Bookkeeping jobs of a campaign: set-up, zero-shot baseline, iteration records, the final
forgetting check."""

from __future__ import annotations

from dataclasses import dataclass, field

from jobflow import Maker
from pymatgen.io.ase import AseAtomsAdaptor
from rich.console import Console

from frostline.config import CampaignConfig, ForgettingConfig, OracleConfig
from frostline.finetune.committee import committee_calculator, load_committee
from frostline.finetune.evaluate import evaluate_zero_shot
from frostline.jobs import frostline_job
from frostline.schemas import (
    CampaignDoc,
    CampaignSetup,
    CampaignSummary,
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


@dataclass
class ForgettingCheckMaker(Maker):
    """The final committee against its foundation on the foundation's own domain.

    Run after the last iteration (``frostline.finetune.forgetting.check_forgetting``): the
    held-out slice of a shipped mini foundation's domain (other foundations: lattice constants
    only), each fcc/bcc element's bulk lattice constant and modulus vs the foundation's and,
    for a built-in ASE-calculator oracle, the oracle's. Recorded in the campaign document
    (``forgetting``; ``frostline status`` shows it, with a warning beyond the limits) and
    added to the campaign summary.
    """

    name: str = "forgetting check"
    campaign: str = "campaign"
    foundation: str = ""
    elements: tuple[str, ...] = ()
    oracle: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    device: str = "auto"

    @classmethod
    def from_config(cls, config: CampaignConfig, foundation: str) -> ForgettingCheckMaker:
        """The check of a campaign's config (``forgetting`` section, oracle, elements)."""
        return cls(
            campaign=config.name,
            foundation=foundation,
            elements=tuple(config.elements),
            oracle=config.oracle.model_dump(),
            settings=config.forgetting.model_dump(),
            device=config.finetune.device,
        )

    @frostline_job(CampaignSummary, enforce=False)  # a dict
    def make(self, summary: dict) -> dict:
        """Check the models of ``summary["final_model_ids"]``; the summary with ``forgetting``."""
        from frostline.finetune.forgetting import check_forgetting
        from frostline.finetune.foundation import load_foundation_model
        from frostline.finetune.replay import read_heldout, shipped_foundation_name
        from frostline.label.oracles import builtin_calculator
        from frostline.registry.models import stored_models

        limits = ForgettingConfig.model_validate(self.settings)
        records = current_records()
        docs = stored_models(records, summary.get("final_model_ids") or [], "forgetting check")
        model = load_committee(records, docs, device=self.device)
        foundation = committee_calculator([load_foundation_model(self.foundation)], self.device)
        heldout = read_heldout() if shipped_foundation_name(self.foundation) else []
        oracle = OracleConfig.model_validate(self.oracle) if limits.oracle_eos else None
        oracle_calc = builtin_calculator(oracle) if oracle else None
        strategy = docs[0].strategy if docs else None
        check = check_forgetting(
            model, foundation, self.elements, heldout, oracle_calc, limits, strategy
        )
        console = Console(stderr=True)
        console.print(check.summary())
        for warning in check.warnings:
            console.print(f"[yellow]{warning}[/]")
        update_campaign(records, self.campaign, forgetting=check.model_dump())
        return {**summary, "forgetting": check.model_dump()}
