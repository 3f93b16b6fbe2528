"""Alloy campaigns as one jobflow Flow: one active-learning flow per chemical system, property
validation of each system's fine-tuned committee against the oracle, and a summary.

::

    system Cu-Ni: active learning ──► properties (fine-tuned) ─┐
                  properties (oracle) ─────────────────────────┼─► compare ─┐
                  properties (foundation) ─────────────────────┘            │
    system Cu-Au: ...                                                       ├─► summary
    system Cu-Ni-Au: ...                                                    ┘

The systems' flows are independent, so jobflow-remote / FireWorks run them in parallel;
``run_locally`` runs them one after the other. All of them share the foundation file and the
store (every record carries its system's campaign name).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from jobflow import Flow, Maker, run_locally
from pymatgen.io.ase import AseAtomsAdaptor

from frostline.alloys.config import AlloyCampaignConfig, system_name
from frostline.alloys.jobs import (
    PropertiesMaker,
    compare_properties,
    compare_spot_checks,
    structures_to_dicts,
    summarise_alloys,
)
from frostline.alloys.schemas import AlloySummaryDoc
from frostline.alloys.sets import (
    seed_structures,
    spot_check_structures,
    validation_structures,
    write_seeds,
)
from frostline.config import CampaignConfig, ConfigError
from frostline.flows.active_learning import ActiveLearningMaker
from frostline.flows.campaign import validate_campaign, write_config_copy
from frostline.label.jobs import LabelMaker
from frostline.schemas import CandidateStructure, Provenance
from frostline.store import Records, make_job_store

ALLOY_CONFIG_COPY = "alloys.yaml"
SEEDS_DIR = "seeds"
PLOTS_DIR = "plots"


def system_seed(config: AlloyCampaignConfig, index: int) -> int:
    """RNG seed of system ``index`` (seeds); validation sets add ``validation.seed_offset``."""
    return config.seed + 7919 * index


def system_configs(
    config: AlloyCampaignConfig, campaign_dir: Path, write: bool = True
) -> list[CampaignConfig]:
    """Per-system campaign configs; ``write`` generates their seeds into ``DIR/seeds``."""
    out = []
    for i, system in enumerate(config.systems):
        path = Path(campaign_dir).resolve() / SEEDS_DIR / f"{system_name(system)}.extxyz"
        if write:
            rng = np.random.default_rng(system_seed(config, i))
            write_seeds(seed_structures(system, config.generate, rng), path)
        out.append(config.system_config(system, path))
    return out


@dataclass
class AlloyCampaignMaker(Maker):
    """Fan an alloy campaign out into per-system active-learning flows plus validation."""

    name: str = "alloy campaign"
    properties: PropertiesMaker = field(default_factory=PropertiesMaker)
    plot_dir: str | None = None

    @classmethod
    def from_config(cls, config: AlloyCampaignConfig, plot_dir: Path | None = None):
        v = config.validation
        device = (config.campaign.get("finetune") or {}).get("device", "auto")
        return cls(
            name=f"alloy campaign {config.name}",
            properties=PropertiesMaker(
                eos_points=v.eos_points,
                eos_range=v.eos_range,
                elastic=v.elastic,
                elastic_strain=v.elastic_strain,
                elastic_steps=v.elastic_steps,
                elastic_fit=v.elastic_fit,
                hull_tolerance_mev=v.hull_tolerance,
                device=device,
            ),
            plot_dir=str(plot_dir) if plot_dir is not None else None,
        )

    def make(
        self, config: AlloyCampaignConfig, systems: list[CampaignConfig], foundation: str
    ) -> Flow:
        """The campaign's Flow; ``systems`` from ``system_configs`` (seeds already written)."""
        jobs, results, validations, names = [], [], [], []
        oracle = systems[0].oracle
        oracle_label = oracle.name
        for i, (system, sys_cfg) in enumerate(zip(config.systems, systems, strict=True)):
            name = system_name(system)
            al = ActiveLearningMaker.from_config(sys_cfg, foundation).make(sys_cfg)
            jobs.append(al)
            results.append(al.output)
            names.append(name)
            if not config.validation.enabled:
                validations.append(None)
                continue
            rng = np.random.default_rng(system_seed(config, i) + config.validation.seed_offset)
            held_out = validation_structures(system, config.validation, rng)
            structures = structures_to_dicts(held_out)
            ref = self.properties.make(structures, {"oracle": oracle.model_dump()}, "oracle")
            ft = self.properties.make(
                structures, {"model_ids": al.output["final_model_ids"]}, "finetuned"
            )
            ref.name, ft.name = f"properties oracle {name}", f"properties finetuned {name}"
            models, prop_jobs = {"finetuned": ft.output}, [ref, ft]
            if config.validation.compare_foundation:
                fd = self.properties.make(structures, {"model_file": foundation}, "foundation")
                fd.name = f"properties foundation {name}"
                models["foundation"] = fd.output
                prop_jobs.append(fd)
            spot = self._spot_checks(config, name, held_out, rng, oracle, al, foundation)
            prop_jobs += spot
            cmp = compare_properties(
                config.name,
                name,
                al.output,
                oracle_label,
                foundation,
                ref.output,
                models,
                spot[-1].output if spot else None,
            )
            cmp.name = f"compare properties {name}"
            jobs += [*prop_jobs, cmp]
            validations.append(cmp.output)
        summary = summarise_alloys(
            config.name, oracle_label, foundation, names, results, validations, self.plot_dir
        )
        summary.name = "alloy summary"
        return Flow([*jobs, summary], output=summary.output, name=self.name)

    def _spot_checks(self, config, name, held_out, rng, oracle, al, foundation) -> list:
        """Label jobs of the reference oracle and the comparison job (empty when n = 0)."""
        spot = config.validation.spot_checks
        if not spot.applies_to(name):
            return []
        cells = spot_check_structures(held_out, spot, rng)
        candidates = [
            CandidateStructure(
                structure=AseAtomsAdaptor.get_structure(a).as_dict(),
                provenance=Provenance(sampler=f"spot check {a.info.get('prototype', '')}".strip()),
            )
            for a in cells
        ]
        label = LabelMaker(oracle=spot.oracle, campaign=f"{config.name}/{name}/spot-checks")
        labels = label.make(candidates, role="spot check")
        labels.name = f"spot checks {spot.oracle.name} {name}"
        calculators = {
            "oracle": {"oracle": oracle.model_dump()},
            "finetuned": {"model_ids": al.output["final_model_ids"]},
        }
        if config.validation.compare_foundation:
            calculators["foundation"] = {"model_file": foundation}
        compare = compare_spot_checks(
            labels.output, spot.oracle.name, calculators, device=self.properties.device
        )
        compare.name = f"compare spot checks {name}"
        return [labels, compare]


def prepare_alloy_campaign(
    config: AlloyCampaignConfig, campaign_dir: Path
) -> tuple[list[CampaignConfig], str]:
    """Write seeds, check every system, keep config copies; return (configs, foundation).

    ``DIR/campaign.yaml`` is the first system's config (``frostline status DIR --campaign``
    reads the store settings from it); ``DIR/alloys.yaml`` the alloy config as validated.
    """
    campaign_dir = Path(campaign_dir).resolve()
    campaign_dir.mkdir(parents=True, exist_ok=True)
    systems = system_configs(config, campaign_dir)
    foundation = ""
    for sys_cfg in systems:
        try:
            foundation = validate_campaign(sys_cfg)
        except ConfigError as exc:
            raise ConfigError(f"system {'-'.join(sys_cfg.elements)}: {exc}") from None
    write_config_copy(systems[0], campaign_dir)
    (campaign_dir / ALLOY_CONFIG_COPY).write_text(
        yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    )
    return systems, foundation


def run_alloy_campaign(config: AlloyCampaignConfig, campaign_dir: Path, log: bool = True) -> dict:
    """Run an alloy campaign to the end with jobflow's local manager; return the summary
    (``AlloySummaryDoc`` as a JSON-able dict)."""
    campaign_dir = Path(campaign_dir).resolve()
    systems, foundation = prepare_alloy_campaign(config, campaign_dir)
    store = make_job_store(systems[0].store, campaign_dir)
    Records(store).connect().close()
    maker = AlloyCampaignMaker.from_config(config, plot_dir=campaign_dir / PLOTS_DIR)
    flow = maker.make(config, systems, foundation)
    if log:
        logging.getLogger("jobflow").propagate = False
    run_locally(
        flow,
        store=store,
        create_folders=True,
        root_dir=campaign_dir / "jobs",
        log=log,
        ensure_success=True,
    )
    store.connect()
    try:
        summary = AlloySummaryDoc.model_validate(flow.output.resolve(store))
        return summary.model_dump(mode="json")
    finally:
        store.close()
