"""Alloy campaign configuration: chemical systems, seed generation, property validation.

An alloy campaign YAML expands into one ``CampaignConfig`` per chemical system (all binaries
and/or ternaries of ``alloys.elements``, or ``alloys.systems``); the ``campaign`` section is the
template of those configs (everything but ``name``, ``elements`` and the seed source, which the
alloy campaign sets). Errors name the file and the field, as ``frostline.config`` does.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Literal

from ase.data import chemical_symbols
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from frostline.config import (
    CampaignConfig,
    ConfigError,
    OracleConfig,
    check_elements,
    read_yaml,
)

ASE_ORACLES = ("emt", "xtb", "chgnet", "chgnet-r2scan", "ase")
"""Oracles with an ASE calculator: property validation evaluates them directly."""
_SET_BY_ALLOYS = ("name", "elements")
_SYSTEM_SOURCES = ("builder", "seeds_file", "labelled_file")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_fractions(v: list[float]) -> list[float]:
    if any(not 0.0 < x < 1.0 for x in v):
        raise ValueError("binary compositions are fractions strictly between 0 and 1")
    return sorted(set(v))


def _check_ternary(v: list[list[float]]) -> list[list[float]]:
    for comp in v:
        if len(comp) != 3 or any(x <= 0 for x in comp):
            raise ValueError(f"ternary compositions are 3 positive fractions, got {comp}")
    return v


class _Compositions(_Strict):
    """Checks of the ``compositions`` / ``ternary_compositions`` fields of a subclass."""

    @field_validator("compositions", check_fields=False)
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        return _check_fractions(v)

    @field_validator("ternary_compositions", check_fields=False)
    @classmethod
    def _ternary(cls, v: list[list[float]]) -> list[list[float]]:
        return _check_ternary(v)


class GenerateConfig(_Compositions):
    """Seed structures of each system's active-learning loop."""

    lattices: list[Literal["fcc", "bcc", "hcp"]] = Field(default_factory=lambda: ["fcc"])
    n_atoms: int = Field(8, description="atoms per solid-solution supercell (fcc 4/8/16/32)")
    compositions: list[float] = Field(
        default_factory=lambda: [0.25, 0.5, 0.75], description="binary: fraction of element 2"
    )
    ternary_compositions: list[list[float]] = Field(
        default_factory=lambda: [[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.25, 0.25, 0.5]]
    )
    per_composition: int = Field(1, ge=1, description="decorations per composition and lattice")
    sqs_trials: int = Field(20, ge=0, description="SQS-like: best of N decorations (0: random)")
    prototypes: bool = Field(True, description="ordered prototypes (L1_2, L1_0, B2, L2_1)")
    volume_scales: list[float] = Field(
        default_factory=lambda: [0.94, 1.06],
        description="the pure elements also isotropically scaled to these volume ratios, "
        "right after them in the seeds: the initial set spans compression and tension (EOS "
        "curvature, bulk modulus) whatever the oracle's equilibrium volume; [] for none",
    )
    n_strained: int = Field(2, ge=0, description="strained copies of solid solutions")
    max_strain: float = Field(0.03, ge=0, le=0.15)
    n_vacancies: int = Field(1, ge=0, description="solid solutions with one vacancy")
    surfaces: bool = Field(False, description="close-packed random-alloy slabs")
    rattle: float = Field(0.03, ge=0, le=0.3, description="Å, rattle of prototypes/strained")
    min_distance: float = Field(1.5, gt=0, description="Å: closer atoms are a generation error")

    @field_validator("volume_scales")
    @classmethod
    def _scales(cls, v: list[float]) -> list[float]:
        if any(not 0.7 <= x <= 1.3 for x in v):
            raise ValueError(f"volume ratios must lie between 0.7 and 1.3, got {v}")
        return v


class SpotCheckConfig(_Strict):
    """A few validation structures per system also computed by a reference (DFT) oracle.

    The campaign's oracle is itself a model of the truth (e.g. CHGNet's r2SCAN model); spot
    checks show how far oracle, fine-tuned committee and foundation are from real DFT on the
    same structures. The smallest validation cells are used (DFT cost), displaced and strained
    so that forces and stress are not zero by symmetry. They run through frostline's labelling
    (atomate2 makers: CP2K, VASP, any ASE oracle), stored in ``labelled`` with role
    ``spot check`` under the campaign ``<alloy campaign>/<system>/spot-checks``.
    """

    n: int = Field(0, ge=0, le=20, description="structures per system (0: no spot checks)")
    oracle: OracleConfig = Field(
        default_factory=lambda: OracleConfig(name="cp2k"), description="the reference oracle"
    )
    rattle: float = Field(0.05, ge=0, le=0.3, description="Å: random atomic displacements")
    strain: float = Field(0.01, ge=0, le=0.05, description="random strain components up to this")
    systems: list[str] = Field(
        default_factory=list,
        description="only these systems, e.g. ['Cu-Ni'] (empty: every system); DFT is costly",
    )

    def applies_to(self, system: str) -> bool:
        """Whether ``system`` (e.g. ``'Cu-Ni'``) gets spot checks."""
        return self.n > 0 and (not self.systems or system in self.systems)


class PropertyValidationConfig(_Compositions):
    """Held-out property validation of the fine-tuned model against the oracle."""

    enabled: bool = True
    n_atoms: int = Field(8, description="atoms per SQS-like validation cell")
    compositions: list[float] = Field(default_factory=lambda: [0.25, 0.5, 0.75])
    ternary_compositions: list[list[float]] = Field(
        default_factory=lambda: [[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.25, 0.25, 0.5]]
    )
    sqs_trials: int = Field(50, ge=0)
    eos_points: int = Field(7, ge=5, le=21, description="volumes of the EOS scan")
    eos_range: float = Field(0.06, gt=0, le=0.3, description="± fractional volume of the scan")
    elastic: bool = Field(True, description="C11, C12, C44 of the cubic prototypes")
    elastic_strain: float = Field(0.01, gt=0, le=0.05, description="± strain of the fit")
    elastic_fit: Literal["cubic", "full"] = Field(
        "cubic",
        description="cubic: C11/C12/C44 from two strains (4 calculations); full: 6x6 fit of "
        "six strains (pymatgen ElasticTensor, 12 x elastic_steps calculations)",
    )
    elastic_steps: int = Field(1, ge=1, le=4, description="full fit: strains ± k/steps x strain")
    hull_tolerance: float = Field(
        5.0, ge=0, description="meV/atom: energy above hull counted as stable"
    )
    compare_foundation: bool = Field(True, description="also validate the foundation zero-shot")
    seed_offset: int = Field(1000, description="validation RNG seed = seed + seed_offset")
    spot_checks: SpotCheckConfig = Field(default_factory=SpotCheckConfig)


class AlloySpec(_Strict):
    """Which chemical systems: binaries/ternaries of ``elements``, or an explicit list."""

    elements: list[str] = Field(default_factory=list)
    binaries: bool = True
    ternaries: bool = False
    systems: list[str] = Field(
        default_factory=list, description="explicit systems, e.g. ['Cu-Ni', 'Cu-Ni-Au']"
    )

    @field_validator("elements")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(check_elements(v)))

    @field_validator("systems")
    @classmethod
    def _systems(cls, v: list[str]) -> list[str]:
        for s in v:
            parts = s.split("-")
            bad = [e for e in parts if e not in chemical_symbols[1:]]
            if bad or len(set(parts)) != len(parts) or not 2 <= len(parts) <= 3:
                raise ValueError(f"{s!r} is not a system of 2 or 3 distinct elements like 'Cu-Ni'")
        return v

    @model_validator(mode="after")
    def _some_system(self) -> AlloySpec:
        if not chemical_systems(self):
            raise ValueError(
                "no chemical system: give 'systems', or 'elements' with binaries/ternaries on"
            )
        return self


def chemical_systems(spec: AlloySpec) -> list[tuple[str, ...]]:
    """The systems of a spec, each a tuple of elements in the order given, binaries first."""
    if spec.systems:
        return list(dict.fromkeys(tuple(s.split("-")) for s in spec.systems))
    out: list[tuple[str, ...]] = []
    if spec.binaries:
        out += list(itertools.combinations(spec.elements, 2))
    if spec.ternaries:
        out += list(itertools.combinations(spec.elements, 3))
    return out


def system_name(system: tuple[str, ...]) -> str:
    """``('Cu', 'Ni')`` -> ``'Cu-Ni'``."""
    return "-".join(system)


class AlloyCampaignConfig(_Strict):
    """A high-throughput alloy campaign (see the module docstring)."""

    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    alloys: AlloySpec
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    validation: PropertyValidationConfig = Field(default_factory=PropertyValidationConfig)
    campaign: dict[str, Any] = Field(
        default_factory=dict, description="template of every system's campaign config"
    )
    seed: int = 0

    @property
    def systems(self) -> list[tuple[str, ...]]:
        return chemical_systems(self.alloys)

    def system_config(self, system: tuple[str, ...], seeds_file: Path | str) -> CampaignConfig:
        """The active-learning campaign of one system (its seeds read from ``seeds_file``)."""
        data = dict(self.campaign)
        data["system"] = {**data.get("system", {}), "builder": None, "seeds_file": str(seeds_file)}
        data.update(name=f"{self.name}-{system_name(system)}", elements=list(system))
        data.setdefault("seed", self.seed)
        return CampaignConfig.model_validate(data)

    @model_validator(mode="after")
    def _template(self) -> AlloyCampaignConfig:
        for key in _SET_BY_ALLOYS:
            if key in self.campaign:
                raise _TemplateError(f"campaign.{key}", "set by the alloy campaign per system")
        for key in _SYSTEM_SOURCES:
            if key in (self.campaign.get("system") or {}):
                raise _TemplateError(
                    f"campaign.system.{key}", "seeds are generated (see 'generate')"
                )
        try:
            config = self.system_config(self.systems[0], "seeds.extxyz")
        except ValidationError as exc:
            err = exc.errors()[0]
            raise _TemplateError(
                "campaign." + _field_path(err["loc"]),
                "unknown field" if err["type"] == "extra_forbidden" else err["msg"],
            ) from None
        names = {system_name(s) for s in self.systems}
        unknown = [s for s in self.validation.spot_checks.systems if s not in names]
        if unknown:
            raise _TemplateError(
                "validation.spot_checks.systems",
                f"{', '.join(unknown)} not among the campaign's systems "
                f"({', '.join(sorted(names))})",
            )
        if self.validation.enabled and config.oracle.name not in ASE_ORACLES:
            raise _TemplateError(
                "campaign.oracle.name",
                f"property validation evaluates the oracle directly and needs an ASE-calculator "
                f"oracle ({', '.join(ASE_ORACLES)}), not {config.oracle.name!r}; "
                "set validation.enabled: false",
            )
        return self


class _TemplateError(ValueError):
    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}\x00{reason}")


def _field_path(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def parse_alloy_config(data: Any, source: str = "<config>") -> AlloyCampaignConfig:
    """Validate a mapping; errors read ``SOURCE: field 'a.b': reason``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of alloy campaign settings")
    try:
        return AlloyCampaignConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
            field = _field_path(err["loc"])
            if "\x00" in msg:  # a template error names its own field
                field, msg = msg.removeprefix("Value error, ").split("\x00", 1)
            lines.append(f"{source}: field '{field}': {msg}")
        raise ConfigError("\n".join(lines)) from None


def load_alloy_config(path: str | Path) -> AlloyCampaignConfig:
    """Read an alloy campaign YAML (safe loader); a relative foundation path is resolved."""
    path = Path(path)
    config = parse_alloy_config(read_yaml(path), source=str(path))
    foundation = config.campaign.get("foundation")
    if foundation and foundation != "mini" and not Path(foundation).is_absolute():
        candidate = path.parent.resolve() / foundation
        if candidate.exists():
            config.campaign["foundation"] = str(candidate)
    return config
