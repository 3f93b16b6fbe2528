"""Run a campaign: validate before any work, build the flow, execute it with jobflow."""

from __future__ import annotations

import logging
from pathlib import Path

import yaml
from jobflow import run_locally

from frostline.config import CampaignConfig, ConfigError
from frostline.finetune.foundation import FoundationError, foundation_elements, resolve_foundation
from frostline.flows.active_learning import ActiveLearningMaker
from frostline.store import Records, make_job_store

CONFIG_COPY = "campaign.yaml"


def validate_campaign(config: CampaignConfig, base_dir: Path | None = None) -> str:
    """Check what can be checked before any work; return the resolved foundation."""
    try:
        foundation = resolve_foundation(config.foundation, base_dir)
    except FoundationError as exc:
        raise ConfigError(f"field 'foundation': {exc}") from None
    if Path(foundation).exists():
        known = set(foundation_elements(foundation))
        unknown = sorted(set(config.elements) - known)
        if unknown:
            raise ConfigError(
                f"field 'elements': the foundation {Path(foundation).name} does not know "
                f"{', '.join(unknown)} (it knows {', '.join(sorted(known))})"
            )
    if config.system.seeds_file is not None:
        from frostline.seeds import read_seed_file

        read_seed_file(Path(config.system.seeds_file), config.elements)
    return foundation


def write_config_copy(config: CampaignConfig, campaign_dir: Path) -> Path:
    """Keep the validated config beside the store (``status`` reads the store settings)."""
    path = campaign_dir / CONFIG_COPY
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    return path


def run_campaign(config: CampaignConfig, campaign_dir: Path, log: bool = True) -> dict:
    """Run ``config`` to the end in ``campaign_dir`` with jobflow's local manager."""
    campaign_dir = Path(campaign_dir).resolve()
    foundation = validate_campaign(config)
    campaign_dir.mkdir(parents=True, exist_ok=True)
    write_config_copy(config, campaign_dir)
    store = make_job_store(config.store, campaign_dir)
    Records(store).connect().close()
    flow = ActiveLearningMaker.from_config(config, foundation).make(config)
    if log:  # jobflow logs through its own handler; a root handler (set by imports) would echo
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
        return flow.output.resolve(store)
    finally:
        store.close()
