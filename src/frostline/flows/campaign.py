"""Run a campaign: validate before any work, build the flow, execute it with jobflow."""

from __future__ import annotations

import contextlib
from pathlib import Path

import yaml
from jobflow import OnMissing, run_locally

from frostline.config import CONFIG_COPY, CampaignConfig, ConfigError
from frostline.finetune.foundation import (
    FoundationError,
    check_foundation_available,
    foundation_elements,
    resolve_foundation,
)
from frostline.flows.active_learning import ActiveLearningMaker
from frostline.store import Records, make_job_store


def validate_campaign(config: CampaignConfig, base_dir: Path | None = None) -> str:
    """Check what can be checked before any work; return the resolved foundation."""
    try:
        foundation = resolve_foundation(config.foundation, base_dir)
        check_foundation_available(foundation)
        known = set(foundation_elements(foundation)) if Path(foundation).exists() else None
    except FoundationError as exc:
        raise ConfigError(f"field 'foundation': {exc}") from None
    if known is not None:
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
    """Keep the validated config beside the store (``status`` reads the store settings).

    Written atomically (a kill never leaves half a file); readable by the owner only when its
    store URI carries credentials (it is then a config file holding a secret, like the user's).
    """
    path = campaign_dir / CONFIG_COPY
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    if config.store.uri and "@" in config.store.uri:
        tmp.chmod(0o600)
    tmp.replace(path)
    return path


def check_inputs(config: CampaignConfig) -> None:
    """Build the campaign's structures and read its labelled file now, before any store write,
    so that bad inputs stop the run with a ``ConfigError`` rather than half-way in a job."""
    from frostline.seeds import campaign_structures

    campaign_structures(config)
    check_replay_file(config)
    if config.system.labelled_file is not None:
        from frostline.label.imported import read_labelled_file

        read_labelled_file(
            config.system.labelled_file, config.elements, config.name, config.system.labelled_oracle
        )


def check_replay_file(config: CampaignConfig) -> None:
    """A multihead-replay fine-tune's replay set exists (``finetune.replay_file`` or the
    foundation's shipped one), checked before the campaign starts."""
    from frostline.finetune.replay import replay_source

    ft = config.finetune
    if "multihead-replay" not in (ft.strategy, *ft.strategy_sweep):
        return
    try:
        replay_source(ft.replay_file, resolve_foundation(config.foundation))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def without_secrets(config: CampaignConfig) -> CampaignConfig:
    """``config`` as it may go into job inputs and stored documents: no store credentials."""
    from frostline.store import redact_uri

    uri = config.store.uri
    if not uri:
        return config
    safe = redact_uri(uri).split("?", 1)[0]  # userinfo and options (TLS key passwords) cut
    return config.model_copy(update={"store": config.store.model_copy(update={"uri": safe})})


def run_campaign(
    config: CampaignConfig,
    campaign_dir: Path,
    log: bool = True,
    *,
    wait_s: float = 0.0,
    store=None,
) -> dict:
    """Run ``config`` to the end in ``campaign_dir`` with jobflow's local manager.

    A run after a crash resumes: labels, fine-tuned committees and explorations already in the
    store are reused (``frostline.reliability.memo``). One run per directory at a time
    (``frostline.reliability.locking``; ``wait_s``: how long a second run waits for the lock)
    and one per campaign and store, from whatever directory or host (the campaign's lease in
    the store, ``frostline.reliability.lease``; a ``store`` given by a test takes none).
    A failed job is recorded (campaign document ``faults``, ``DIR/faults.log``); when the
    campaign cannot finish, ``CampaignError`` says which job failed and why. ``store``: a
    ready ``JobStore`` instead of the configured one (tests).
    """
    from frostline.reliability.errors import CampaignError
    from frostline.reliability.faults import FaultLog
    from frostline.reliability.lease import LEASES, CampaignLease
    from frostline.reliability.locking import CampaignLock
    from frostline.reliability.retry import retry_budget
    from frostline.store import StoreError, short_error

    campaign_dir = Path(campaign_dir).resolve()
    foundation = validate_campaign(config)
    check_inputs(config)
    campaign_dir.mkdir(parents=True, exist_ok=True)
    with CampaignLock(campaign_dir, wait_s=wait_s), contextlib.ExitStack() as held:
        write_config_copy(config, campaign_dir)
        if store is None:  # fail fast on a wrong store; during the run, ride out outages
            lease_records = Records(make_job_store(config.store, campaign_dir, timeout_ms=5000))
            held.callback(lease_records.close)
            collection = lease_records.connect().raw_collection(LEASES)
            lease = CampaignLease(
                collection, config.name, campaign_dir, wait_s=wait_s, dir_locked=True
            )
            held.enter_context(lease)
            store = make_job_store(
                config.store, campaign_dir, timeout_ms=5000, retry_s=retry_budget()
            )
        Records(store).connect().close()
        safe = without_secrets(config)
        flow = ActiveLearningMaker.from_config(safe, foundation).make(safe)
        iterations = config.convergence.max_iterations
        faults = FaultLog(campaign_dir / "faults.log", console=log, iterations=iterations)
        with faults:
            try:
                jobs_dir = campaign_dir / "jobs"
                run_locally(flow, store=store, create_folders=True, root_dir=jobs_dir, log=False)
            except Exception as exc:  # e.g. the store went away for longer than the retries
                raise StoreError(f"campaign {config.name}: {short_error(exc)}") from None
        try:
            store.connect()
            try:
                result = flow.output.resolve(store, on_missing=OnMissing.ERROR)
            except ValueError:
                result = None
            records = Records(store).connect()
            _record_faults(records, config.name, faults.faults, failed=result is None)
        except Exception as exc:  # the store is unreachable at the end of the run
            raise StoreError(f"campaign {config.name}: store: {short_error(exc)}") from None
        finally:
            store.close()
    if result is None:
        # the last failure is the one the campaign could not go past (earlier ones, e.g. a
        # crashed oracle job, were isolated)
        last = faults.faults[-1].line() if faults.faults else "its last job did not run"
        raise CampaignError(
            f"campaign {config.name} stopped: {len(faults.faults)} job(s) failed; last: "
            f"{last}; details in {campaign_dir / 'faults.log'}"
        )
    result = dict(result)
    result["faults"] = [f.line() for f in faults.faults]
    return result


def _record_faults(records: Records, campaign: str, faults: list, failed: bool) -> None:
    """Failed jobs of this run into the campaign document (state ``failed`` if it stopped)."""
    from frostline.flows.jobs import update_campaign

    if not faults and not failed:
        return
    fields: dict = {"faults": [f.as_dict() for f in faults]}
    if failed:
        fields.update(state="failed", stop_reason=faults[-1].line() if faults else "failed")
    try:
        update_campaign(records, campaign, **fields)
    except KeyError:  # the run stopped before the campaign document was written
        pass
