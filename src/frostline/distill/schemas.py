"""Documents of the distillation stage."""

from __future__ import annotations

from pydantic import BaseModel, Field

from frostline.schemas import ValidationMetrics


class SweepPoint(BaseModel):
    """One basis tried in the sweep, scored on held-out teacher data."""

    n_functions_per_element: int
    cutoff: float
    pair_cutoffs: dict[str, float] = Field(
        default_factory=dict, description="Å: element pairs whose cutoff is shorter"
    )
    n_functions: int = Field(description="B functions over all elements")
    energy_mae_mev_per_atom: float
    force_mae_mev_per_a: float
    meets_target: bool
    fit_time_s: float


class StabilityReport(BaseModel):
    """Short MD with the surrogate: Langevin at the highest temperature, then NVE.

    ``stable`` is False when any of ``failures`` (temperature not held, a contact below
    ``contact_fraction`` of the shortest labelled one for its element pair, NVE drift above its
    bound, non-finite energies) occurred.
    """

    temperature_k: float
    steps: int
    timestep_fs: float
    n_atoms: int
    mean_temperature_k: float
    max_temperature_k: float
    max_temperature_bound_k: float | None = None
    temperature_tolerance: float | None = None
    min_distance_a: float
    min_contacts_a: dict[str, float] = Field(default_factory=dict)
    reference_contacts_a: dict[str, float] = Field(default_factory=dict)
    contact_fraction: float | None = None
    nve_drift_mev_per_atom: float
    nve_drift_mev_per_atom_per_ps: float | None = None
    max_drift_mev_per_atom_per_ps: float | None = None
    stable: bool
    failures: list[str] = Field(default_factory=list)


class ActiveRound(BaseModel):
    """One round of teacher-labelled active learning of the surrogate (``distill.active``).

    Disagreement = the surrogate's force MAE against the teacher (meV/Å) on a frame; ``before``
    with the surrogate that explored, ``after`` with the refit (the added frames are then
    training data). The stability fields are the check of the surrogate *before* this round.
    """

    round: int
    n_functions_per_element: int | None = None
    n_trajectories: int
    n_ended_early: int = Field(description="surrogate MD runs stopped by a close contact")
    n_candidates: int
    n_added: int
    candidate_median_mev_per_a: float
    added_before_mev_per_a: float
    added_after_mev_per_a: float
    holdout_force_mae_mev_per_a: float | None = Field(
        default=None, description="refit vs teacher on the held-out teacher data"
    )
    stable_before: bool | None = Field(description="None: no stability check (0 steps)")
    failures_before: list[str] = Field(default_factory=list)
    mean_temperature_before_k: float | None = None


class CompanionFile(BaseModel):
    """An extra file of a surrogate, stored as a blob under ``blob_id``."""

    blob_id: str
    filename: str
    sha256: str
    size_bytes: int


class DistillResult(BaseModel):
    """What a distillation produced: the surrogate's id, how it was chosen and how good it is."""

    model_id: str
    parent_model_ids: list[str]
    elements: list[str]
    cutoff: float
    pair_cutoffs: dict[str, float] = Field(
        default_factory=dict, description="Å: element pairs whose cutoff is shorter"
    )
    n_functions_per_element: int
    n_functions: int
    n_teacher_train: int
    n_teacher_holdout: int
    teacher_sources: dict[str, int]
    sweep: list[SweepPoint]
    target_force_mae_mev_per_a: float
    target_met: bool
    vs_teacher: ValidationMetrics = Field(description="surrogate vs teacher, held-out teacher data")
    vs_teacher_beyond: ValidationMetrics | None = Field(
        default=None,
        description="surrogate vs teacher on frames outside the teacher data (stronger strains, "
        "hotter MD; force MAE per element)",
    )
    vs_oracle_validation: ValidationMetrics | None = None
    vs_oracle_train: ValidationMetrics | None = None
    teacher_vs_oracle_validation: ValidationMetrics | None = None
    stability: StabilityReport | None = None
    grade: dict[str, float] | None = Field(
        default=None,
        description="extrapolation grade: threshold, false-alarm and miss rates (distill.grade)",
    )
    speed_us_per_atom_step: float
    teacher_speed_us_per_atom_step: float | None = None
    speed_n_atoms: int
    padded_cells: bool = Field(description="some cells were partly periodic and got vacuum")
    active_rounds: list[ActiveRound] = Field(default_factory=list)
    core_repulsion: dict[str, float] = Field(
        default_factory=dict, description="Å: ZBL core below this distance per element pair"
    )
    companions: dict[str, CompanionFile] = Field(default_factory=dict)
    wall_time_s: float
