"""Pydantic documents shared across the stages of a campaign (DESIGN.md §4)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from pydantic import BaseModel, Field, field_validator
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor


def utcnow() -> datetime:
    """Timezone-aware current time (UTC)."""
    return datetime.now(UTC)


def as_structure(structure: Structure | Atoms | dict) -> Structure:
    """A pymatgen ``Structure`` from a structure, ASE atoms or a structure dict."""
    if isinstance(structure, Structure):
        return structure
    if isinstance(structure, Atoms):
        return AseAtomsAdaptor.get_structure(structure)
    return Structure.from_dict(structure)


def as_structure_dict(structure: Structure | Atoms | dict) -> dict:
    """A structure dict (jobflow decodes stored dicts back into ``Structure`` objects)."""
    if isinstance(structure, dict):
        return structure
    return as_structure(structure).as_dict()


def structure_hash(structure: Structure | dict, decimals: int = 4) -> str:
    """Stable hash of a structure: lattice, species and positions rounded to ``decimals`` Å."""
    structure = as_structure(structure)
    payload = {
        "lattice": np.round(structure.lattice.matrix, decimals).tolist(),
        "species": [str(site.specie) for site in structure],
        "coords": np.round(structure.cart_coords, decimals).tolist(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def settings_hash(settings: dict[str, Any]) -> str:
    """Stable hash of oracle settings (used with the structure hash for idempotent labels)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]


class Provenance(BaseModel):
    """Where a structure came from."""

    iteration: int = -1
    sampler: str = "seed"
    temperature: float | None = None
    parent: str | None = None
    bias: str | None = None  # exploration MD bias the frame came from ("uncertainty"), if any


class CandidateStructure(BaseModel):
    """A structure proposed for labelling, with the committee's uncertainty on it."""

    structure: dict
    provenance: Provenance = Field(default_factory=Provenance)
    max_force_std: float | None = Field(
        None,
        description="the frame's uncertainty: max atomic committee force std (eV/Å), or the "
        "selection's uncertainty score (descriptor novelty, last-layer LLPR std)",
    )
    atom_scores: list[float] | None = Field(
        None, description="last-layer: each atom's LLPR standard deviation (exploration)"
    )
    energy_std_per_atom: float | None = Field(None, description="committee energy std, eV/atom")
    max_force: float | None = Field(None, description="largest predicted atomic force, eV/Å")

    _structure = field_validator("structure", mode="before")(as_structure_dict)

    def to_structure(self) -> Structure:
        return Structure.from_dict(self.structure)


class LabelledStructure(BaseModel):
    """A structure with oracle energy (eV), forces (eV/Å) and stress (eV/Å³, ASE sign/Voigt-6)."""

    structure: dict
    energy: float | None = None
    forces: list[list[float]] | None = None
    stress: list[float] | None = None
    oracle: str
    oracle_settings_hash: str = ""
    structure_hash: str = ""
    provenance: Provenance = Field(default_factory=Provenance)
    role: Literal["train", "validation", "spot check"] = "train"
    status: Literal["ok", "failed"] = "ok"
    reason: str | None = None
    job_uuid: str | None = None
    campaign: str | None = None

    _structure = field_validator("structure", mode="before")(as_structure_dict)

    @property
    def n_atoms(self) -> int:
        return len(self.structure["sites"])

    def to_atoms(self, prefix: str = "REF_") -> Atoms:
        """ASE atoms with labels in ``info``/``arrays`` under ``prefix`` keys (mace-torch style)."""
        atoms = AseAtomsAdaptor.get_atoms(Structure.from_dict(self.structure))
        atoms.info[f"{prefix}energy"] = self.energy
        atoms.arrays[f"{prefix}forces"] = np.asarray(self.forces, dtype=float)
        if self.stress is not None:
            atoms.info[f"{prefix}stress"] = np.asarray(self.stress, dtype=float)
        atoms.info["config_type"] = self.provenance.sampler
        return atoms

    def to_calc_atoms(self) -> Atoms:
        """ASE atoms carrying the labels in a SinglePointCalculator (for extxyz export)."""
        atoms = AseAtomsAdaptor.get_atoms(Structure.from_dict(self.structure))
        atoms.calc = SinglePointCalculator(
            atoms,
            energy=self.energy,
            forces=np.asarray(self.forces),
            **({"stress": np.asarray(self.stress)} if self.stress is not None else {}),
        )
        return atoms


class ModelFile(BaseModel):
    """A trained model file; ``data_b64`` holds the bytes (goes to the blob store)."""

    filename: str
    sha256: str
    size_bytes: int
    data_b64: str | None = None


class ValidationMetrics(BaseModel):
    """Errors of a model against oracle labels."""

    n_structures: int
    energy_mae_mev_per_atom: float
    energy_rmse_mev_per_atom: float
    force_mae_mev_per_a: float
    force_rmse_mev_per_a: float
    force_mae_by_element: dict[str, float] = Field(
        default_factory=dict, description="force MAE (meV/Å) over each element's atoms"
    )
    frame_max_force_errors: list[float] = Field(
        default_factory=list,
        description="per structure, the largest atomic force error (eV/Å): what convergence "
        "compares with select.target_force_error",
    )
    n_stress: int = Field(0, description="periodic structures with a stress label")
    stress_mae_gpa: float | None = Field(None, description="Voigt components, GPa")
    stress_rmse_gpa: float | None = None


LOSS_OVERRULE_FACTOR = 1.25  # kept epoch's force MAE / the lowest of any epoch, flagged above


class TrainingOutcome(BaseModel):
    """How a mace-torch training ended, read from its log."""

    epochs_run: int = Field(description="epochs trained (resumed runs counted once)")
    max_epochs: int
    best_epoch: int | None = Field(None, description="epoch whose checkpoint the model is")
    stopped_early: bool = Field(description="ended by patience, not at the epoch cap")
    retrained: int = Field(
        0, description="earlier attempts that never improved (finetune.retrain_failed)"
    )
    kept_force_mae: float | None = Field(
        None, description="force MAE (meV/Å) of the kept epoch on the structures that chose it"
    )
    lowest_force_mae: float | None = Field(
        None, description="lowest force MAE (meV/Å) any epoch reached on those structures"
    )

    @property
    def still_improving(self) -> bool:
        """Capped with its best epoch among the last few: more epochs would likely help."""
        return (
            not self.stopped_early
            and self.best_epoch is not None
            and self.best_epoch >= self.max_epochs - max(2, self.max_epochs // 10)
            and not self.never_improved  # a short run that kept epoch 0 failed, not improving
        )

    @property
    def never_improved(self) -> bool:
        """Kept its first epoch of several: its checkpoint loss never improved; a poor model."""
        return self.best_epoch == 0 and self.epochs_run > 1

    @property
    def loss_overruled_forces(self) -> bool:
        """The epoch kept (lowest loss) has a force MAE on the same structures more than
        ``LOSS_OVERRULE_FACTOR`` times the lowest any epoch reached: a squared loss ruled by a
        few high-force structures chose a model whose forces are poor for the rest. A member
        that kept its first epoch is counted as ``never_improved`` instead."""
        if self.kept_force_mae is None or not self.lowest_force_mae or self.never_improved:
            return False
        return self.kept_force_mae > LOSS_OVERRULE_FACTOR * self.lowest_force_mae


class ModelDoc(BaseModel):
    """A trained model as recorded in the store (DESIGN.md §4, ``model`` collection)."""

    model_id: str
    kind: Literal["mace-finetuned", "committee-member", "mace-foundation", "ace-surrogate"]
    campaign: str | None = None
    iteration: int | None = None
    member: int | None = None
    elements: list[str]
    foundation: str | None = None
    freeze_level: int | None = None
    strategy: str = Field(
        "frozen", description="fine-tuning strategy: frozen, multihead-replay or lora"
    )
    trainable_parameters: int | None = None
    total_parameters: int | None = None
    n_train: int = 0
    training_set_hashes: list[str] = Field(default_factory=list)
    parent_model_ids: list[str] = Field(
        default_factory=list, description="models this one was derived from (e.g. a teacher)"
    )
    metrics: ValidationMetrics | None = None
    training: TrainingOutcome | None = None
    file: ModelFile
    created: datetime = Field(default_factory=utcnow)
    superseded: bool = Field(
        False, description="trained but not used by its campaign (a run redone after a kill)"
    )


class FreezeSweepPoint(BaseModel):
    """One freeze level (and learning rate) tried by a sweep, with member 0's validation errors."""

    freeze_level: int
    trainable_parameters: int
    metrics: ValidationMetrics
    chosen: bool = False
    lr: float | None = Field(None, description="learning rate of this point (None: before lr)")
    strategy: str = "frozen"


class FineTuneResult(BaseModel):
    """Output of a fine-tuning job: the committee and its validation metrics."""

    models: list[ModelDoc]
    committee_metrics: ValidationMetrics | None = None
    freeze_level: int
    freeze_sweep: list[FreezeSweepPoint] = Field(default_factory=list)
    lr: float | None = Field(None, description="learning rate the committee trained at")
    strategy: str = Field("frozen", description="fine-tuning strategy the committee trained with")
    trainable_parameters: int
    total_parameters: int
    wall_time_s: float


class ExploreResult(BaseModel):
    """Candidate frames from exploration, each with the committee's uncertainty."""

    candidates: list[CandidateStructure]
    n_trajectories: int
    n_steps_total: int
    n_aborted: int = 0
    abort_reasons: dict[str, int] = Field(
        default_factory=dict,
        description="trajectories stopped early, by reason (not_finite, min_distance, "
        "force_std, error_bound)",
    )
    wall_time_s: float


class SelectionResult(BaseModel):
    """The batch chosen for labelling and the fate of every candidate."""

    selected: list[CandidateStructure]
    n_candidates: int
    n_accurate: int
    n_uncertain: int
    n_failed: int
    n_over_budget: int
    n_duplicates: int = 0
    n_calibration_picks: int = Field(0, description="selected at random for calibration")
    n_contact_picks: int = Field(
        0, description="selected for a contact shorter than any training label's (contact_picks)"
    )
    n_topped_up: int = Field(
        0,
        description="selected from a stratum's 'accurate' frames because its trust window held"
        " fewer frames than its quota (stratify)",
    )
    stratum_quota: dict[str, int] = Field(
        default_factory=dict, description="picks allotted per exploration condition (stratify)"
    )
    fates: dict[str, int] = Field(default_factory=dict, description="candidates per fate")
    filter_reasons: dict[str, int] = Field(default_factory=dict, description="sanity rejections")
    trust_lo: float | None = None
    trust_hi: float | None = None
    uncertainty: str = Field(
        "committee",
        description="what the trust window applies to: 'committee' (max atomic force std, eV/Å;"
        " the candidates' max_force_std), 'descriptor' (novelty against the labelled set,"
        " stored in the selected candidates' max_force_std) or 'last-layer' (LLPR std per atom;"
        " max_force_std: the frame score in the calibrated window's units)",
    )
    accurate_fraction: float
    stop_reason: str | None = None
    convergence_note: str | None = Field(
        None,
        description="why the campaign is not converged although its frames are accurate by the "
        "uncertainty (the validation errors disagree)",
    )
    wall_time_s: float = 0.0
    finished_at: float | None = Field(None, description="epoch seconds when selection ended")


class IterationDoc(BaseModel):
    """One active-learning iteration (DESIGN.md §4, ``iteration`` collection)."""

    campaign: str
    index: int
    n_labelled: int
    n_selected: int
    n_new_labels: int
    n_failed_labels: int = 0
    n_candidates: int
    n_accurate: int
    n_uncertain: int
    n_failed_frames: int
    n_calibration_picks: int = Field(0, description="of n_selected: drawn for calibration")
    n_contact_picks: int = Field(0, description="of n_selected: bought for a short contact")
    n_topped_up: int = Field(
        0, description="of n_selected: a stratum's 'accurate' frames bought to fill its quota"
    )
    stratum_quota: dict[str, int] = Field(
        default_factory=dict, description="picks allotted per exploration condition (stratify)"
    )
    accurate_fraction: float
    energy_mae_mev_per_atom: float | None = None
    force_mae_mev_per_a: float | None = None
    energy_rmse_mev_per_atom: float | None = None
    force_rmse_mev_per_a: float | None = None
    force_mae_by_element: dict[str, float] = Field(
        default_factory=dict, description="validation force MAE (meV/Å) per element"
    )
    freeze_level: int | None = None
    freeze_sweep: list[dict[str, Any]] = Field(
        default_factory=list, description="levels (and rates) tried and their validation errors"
    )
    finetune_lr: float | None = Field(None, description="learning rate the committee trained at")
    finetune_strategy: str = Field("frozen", description="fine-tuning strategy of the committee")
    model_ids: list[str] = Field(default_factory=list)
    stop_reason: str | None = None
    convergence_note: str | None = Field(
        None, description="why not converged although the uncertainty calls the frames accurate"
    )
    fates: dict[str, int] = Field(default_factory=dict, description="candidates per fate")
    filter_reasons: dict[str, int] = Field(default_factory=dict)
    trust_window: list[float] | None = Field(
        None,
        description="[lo, hi] used to select (eV/Å; descriptor units with 'descriptor'; with "
        "'last-layer' raw LLPR units, then the units of the conformal fit that derived it)",
    )
    uncertainty: str = Field(
        "committee", description="'committee', 'descriptor' or 'last-layer' (selection)"
    )
    calibration: dict[str, Any] | None = Field(
        None,
        description="score → true force error fit on this iteration's labels (last-layer: "
        "the conformal quantile, per-element scales and observed coverage under 'conformal')",
    )
    wall_time_s: dict[str, float] = Field(default_factory=dict)
    created: datetime = Field(default_factory=utcnow)


class CampaignDoc(BaseModel):
    """A campaign (DESIGN.md §4, ``campaign`` collection)."""

    campaign: str
    config: dict
    foundation: str
    oracle: str
    elements: list[str]
    state: Literal["running", "converged", "stopped", "failed"] = "running"
    stop_reason: str | None = None
    zero_shot: ValidationMetrics | None = None
    n_validation: int = 0
    final_model_ids: list[str] = Field(default_factory=list)
    created: datetime = Field(default_factory=utcnow)
    updated: datetime = Field(default_factory=utcnow)


class CampaignSetup(BaseModel):
    """Output of ``setup_campaign`` (returned as a dict of these fields)."""

    initial: list[CandidateStructure]
    imported: list[dict] = Field(default_factory=list, description="LabelledStructure dicts")
    validation: list[CandidateStructure]
    starts: list[dict] = Field(description="pymatgen Structure dicts the exploration starts from")


class CampaignSummary(BaseModel):
    """Output of a campaign flow (its last ``advance`` job; returned as a dict of these fields)."""

    campaign: str
    state: Literal["converged", "stopped"]
    stop_reason: str
    iterations: int
    labels_spent: int
    final_model_ids: list[str]
    final_metrics: dict | None = None
    forgetting: dict | None = Field(
        None, description="ForgettingCheck of the final committee (added by ForgettingCheckMaker)"
    )
    surrogate: dict | None = Field(None, description="DistillResult (added by DistillMaker)")
