"""Documents of alloy campaigns: property sets, per-system validation, campaign summary."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, field_validator

from frostline.schemas import as_structure_dict, utcnow


class StructureProperties(BaseModel):
    """Properties of one held-out structure with one calculator."""

    formula: str
    prototype: str
    structure: dict = Field(description="pymatgen dict of the ideal (unscaled) structure")
    n_atoms: int
    cubic: bool = False
    energy_per_atom: float = Field(description="eV/atom at the EOS minimum")
    volume_per_atom: float = Field(description="Å³/atom at the EOS minimum")
    bulk_modulus_gpa: float = Field(description="Birch–Murnaghan B0")
    eos_fit: str = Field("birchmurnaghan", description="or quadratic / sampled (no minimum)")
    elastic: dict[str, float] | None = Field(None, description="C11, C12, C44, B (GPa)")
    formation_energy: float | None = Field(None, description="eV/atom (hull of this set)")
    e_above_hull: float | None = Field(None, description="eV/atom")
    stable: bool | None = None

    # jobflow MSON-decodes resolved outputs: the structure may come back as a Structure
    _structure = field_validator("structure", mode="before")(as_structure_dict)


class PropertySet(BaseModel):
    """The validation set's properties with one calculator."""

    calculator: str = Field(description="'oracle', 'finetuned' or 'foundation'")
    description: str = ""
    structures: list[StructureProperties]
    wall_time_s: float = 0.0


class PropertyErrors(BaseModel):
    """Errors of a model's properties against the oracle's on the same structures."""

    n_structures: int
    formation_energy_mae_mev: float
    e_above_hull_mae_mev: float
    stability_agreement: float = Field(description="fraction with the same stable/unstable call")
    n_stable_oracle: int
    n_stable_model: int
    volume_mae_a3: float = Field(description="Å³/atom, EOS equilibrium volume")
    bulk_modulus_mae_gpa: float = Field(description="EOS bulk modulus")
    n_elastic: int = 0
    elastic_mae_gpa: dict[str, float] = Field(default_factory=dict, description="C11 C12 C44 B")


class SpotCheckResult(BaseModel):
    """Oracle, fine-tuned committee and foundation against a reference (DFT) oracle."""

    reference: str = Field(description="the reference oracle, e.g. 'cp2k'")
    n_structures: int = Field(description="structures the reference computed")
    failures: list[str] = Field(default_factory=list, description="reference failures")
    formulas: list[str] = Field(default_factory=list)
    force_mae_mev_per_a: dict[str, float] = Field(
        default_factory=dict, description="per calculator ('oracle', 'finetuned', 'foundation')"
    )
    max_force_error_mev_per_a: dict[str, float] = Field(default_factory=dict)
    stress_mae_gpa: dict[str, float] = Field(
        default_factory=dict, description="periodic structures with a reference stress"
    )
    reference_force_scale_mev_per_a: float = Field(
        0.0, description="mean |reference force|: the error of predicting zero forces"
    )
    wall_time_s: float = 0.0


class SystemValidationDoc(BaseModel):
    """Property validation of one chemical system (the ``validations`` collection)."""

    campaign: str = Field(description="alloy campaign")
    system: str
    al_campaign: str = Field(description="the system's active-learning campaign")
    oracle: str
    model_ids: list[str]
    foundation: str
    reference: PropertySet
    models: dict[str, PropertySet] = Field(description="'finetuned' and maybe 'foundation'")
    errors: dict[str, PropertyErrors]
    spot_checks: SpotCheckResult | None = None
    created: datetime = Field(default_factory=utcnow)


class SystemSummary(BaseModel):
    """One row of the campaign summary."""

    system: str
    al_campaign: str
    state: str | None = None
    stop_reason: str | None = None
    converged: bool = False
    iterations: int | None = None
    labels_spent: int | None = None
    force_mae_mev_per_a: float | None = None
    energy_mae_mev_per_atom: float | None = None
    zero_shot_force_mae_mev_per_a: float | None = None
    errors: dict[str, PropertyErrors] = Field(default_factory=dict)
    spot_checks: SpotCheckResult | None = None


class AlloySummaryDoc(BaseModel):
    """The alloy campaign's summary (the ``alloy_summaries`` collection)."""

    campaign: str
    oracle: str
    foundation: str
    systems: list[SystemSummary]
    plots: list[str] = Field(default_factory=list)
    created: datetime = Field(default_factory=utcnow)
