"""Campaign configuration: pydantic schema and YAML loading with errors naming file and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from ase.data import chemical_symbols
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A campaign configuration is invalid; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SystemConfig(_Strict):
    """Chemical system and where seed structures come from."""

    builder: Literal["h2_cu111"] | None = Field(
        "h2_cu111", description="built-in seed generator (None when `seeds_file` is given)"
    )
    seeds_file: Path | None = Field(None, description="extxyz/any ASE-readable file of seeds")
    n_initial: int = Field(8, ge=2, description="structures labelled before the first fine-tune")
    n_validation: int = Field(16, ge=1, description="held-out structures for validation errors")
    rattle: float = Field(0.05, ge=0.0, le=0.5, description="Å, Gaussian rattle of seeds")

    @model_validator(mode="after")
    def _one_source(self) -> SystemConfig:
        if self.builder is None and self.seeds_file is None:
            raise ValueError("give `builder` or `seeds_file`")
        return self


class FineTuneConfig(_Strict):
    freeze: int = Field(6, ge=0, le=7, description="mace-torch --freeze level (f0 ... f7)")
    committee_size: int = Field(2, ge=1, le=16)
    epochs: int = Field(20, ge=1)
    lr: float = Field(0.01, gt=0)
    batch_size: int = Field(4, ge=1)
    subsample: float = Field(0.85, gt=0, le=1.0, description="data fraction per member (>=1 ref.)")
    e0s: Literal["estimated", "foundation", "average"] = "estimated"
    energy_weight: float = Field(10.0, ge=0)
    forces_weight: float = Field(10.0, ge=0)
    default_dtype: Literal["float64", "float32"] = "float64"
    device: Literal["auto", "cpu", "cuda"] = "auto"


class ExploreConfig(_Strict):
    temperatures: list[float] = Field(default_factory=lambda: [300.0, 800.0], min_length=1)
    steps: int = Field(150, ge=1)
    timestep_fs: float = Field(1.0, gt=0, le=10)
    sample_every: int = Field(10, ge=1)
    starts_per_temperature: int = Field(2, ge=1)
    friction: float = Field(0.02, gt=0, description="Langevin friction, 1/fs")
    abort_force_std: float = Field(1.0, gt=0, description="eV/Å: stop a trajectory beyond this")

    @field_validator("temperatures")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(t <= 0 for t in v):
            raise ValueError("temperatures must be > 0 K")
        return v


class SelectConfig(_Strict):
    trust_lo: float = Field(0.05, gt=0, description="eV/Å: below is 'accurate'")
    trust_hi: float = Field(0.5, gt=0, description="eV/Å: above is 'failed'")
    max_labels_per_iteration: int = Field(8, ge=1)
    min_distance: float = Field(0.6, ge=0, description="Å: frames with closer atoms are 'failed'")

    @model_validator(mode="after")
    def _window(self) -> SelectConfig:
        if self.trust_hi <= self.trust_lo:
            raise ValueError("trust_hi must be larger than trust_lo")
        return self


class OracleConfig(_Strict):
    """The labelling oracle.

    ``ase``: any ASE calculator, ``settings.calculator`` being its import path.
    """

    name: Literal["emt", "xtb", "chgnet", "chgnet-r2scan", "ase"] = "emt"
    settings: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ase_needs_path(self) -> OracleConfig:
        path = self.settings.get("calculator")
        if self.name == "ase" and (not isinstance(path, str) or "." not in path):
            raise ValueError("oracle 'ase' needs settings.calculator = 'package.module.Callable'")
        return self


class ConvergenceConfig(_Strict):
    accurate_fraction: float = Field(0.9, gt=0, le=1.0)
    max_iterations: int = Field(3, ge=1)
    label_budget: int = Field(200, ge=1, description="total labels incl. the initial set")


class StoreConfig(_Strict):
    kind: Literal["embedded", "mongodb"] = "embedded"
    path: Path | None = Field(None, description="embedded store folder (default DIR/store)")
    uri: str | None = Field(None, description="MongoDB URI (or env FROSTLINE_MONGODB_URI)")
    database: str = "frostline"


class CampaignConfig(_Strict):
    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    elements: list[str] = Field(..., min_length=1)
    system: SystemConfig = Field(default_factory=SystemConfig)
    foundation: str = Field("mini", description="'mini', a .model path, or a mace_mp name")
    finetune: FineTuneConfig = Field(default_factory=FineTuneConfig)
    explore: ExploreConfig = Field(default_factory=ExploreConfig)
    select: SelectConfig = Field(default_factory=SelectConfig)
    oracle: OracleConfig = Field(default_factory=OracleConfig)
    convergence: ConvergenceConfig = Field(default_factory=ConvergenceConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    seed: int = 0

    @field_validator("elements")
    @classmethod
    def _known_elements(cls, v: list[str]) -> list[str]:
        bad = [e for e in v if e not in chemical_symbols[1:]]
        if bad:
            raise ValueError(f"unknown element(s): {', '.join(bad)}")
        return sorted(set(v))


def _field_path(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def parse_config(data: Any, source: str = "<config>") -> CampaignConfig:
    """Validate a mapping; errors name ``source`` and the offending field."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: expected a mapping of campaign settings, got {type(data).__name__}"
        )
    try:
        return CampaignConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = _field_path(err["loc"])
            msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"{source}: field '{field}': {msg}")
        raise ConfigError("\n".join(lines)) from None


def load_config(path: str | Path) -> CampaignConfig:
    """Read a campaign YAML file (safe loader) and validate it.

    Relative paths inside (seeds file, foundation file) are resolved against the file's folder.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None
    config = parse_config(data, source=str(path))
    base = path.parent.resolve()
    if config.system.seeds_file is not None and not config.system.seeds_file.is_absolute():
        config.system.seeds_file = base / config.system.seeds_file
    if config.foundation != "mini" and not Path(config.foundation).is_absolute():
        candidate = base / config.foundation
        if candidate.exists():
            config.foundation = str(candidate)
    return config
