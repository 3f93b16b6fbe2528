"""Campaign configuration: pydantic schema and YAML loading with errors naming file and field."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from ase.data import chemical_symbols
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from frostline.choices import (
    REPLAY_FILTER,
    REPLAY_WEIGHT,
    Bias,
    CheckpointOn,
    ContactDeficit,
    Dtype,
    Engine,
    FineTuneStrategy,
    Loss,
    MemberWeights,
    ReplayFilter,
    Strategy,
    Stratify,
    Uncertainty,
)

CONFIG_COPY = "campaign.yaml"  # the copy of its config a campaign directory holds
MACE_SCHEDULER_PATIENCE = 50  # mace-torch's --scheduler_patience default (ReduceLROnPlateau)


class ConfigError(ValueError):
    """A campaign configuration is invalid; the message names the file and the field."""


CALCULATOR_BASES = (
    "ase.calculators.calculator.Calculator",
    "ase.calculators.calculator.BaseCalculator",
)
"""An ``ase`` oracle's ``settings.calculator`` must name a subclass of one of these."""
MAKER_BASES = ("jobflow.core.maker.Maker",)
"""A ``maker`` oracle's ``settings.maker`` must name a subclass of this (atomate2 makers are)."""


def check_elements(symbols: list[str]) -> list[str]:
    """``symbols`` unchanged if every one is a chemical symbol (case-sensitive: Cu, not cu);
    else ``ValueError`` naming the unknown ones."""
    bad = [e for e in symbols if e not in chemical_symbols[1:]]
    if bad:
        raise ValueError(f"unknown element(s): {', '.join(bad)}")
    return symbols


def import_class(
    path: Any, field: str, bases: tuple[str, ...], importable: bool = True
) -> type | None:
    """The class at import path ``path`` if it derives from one of ``bases`` (import paths).

    A campaign configuration names code it runs (oracle calculators and makers, their
    arguments): treat a configuration like code. Only classes of the kinds an oracle needs
    are accepted, so a path such as ``subprocess.getoutput`` is refused (``ValueError``
    naming ``field``) before it is called. ``importable=False``: a path that cannot be
    imported here passes (None; a config read on a host other than the workers that run the
    oracle); it is checked again where it is used.
    """
    import importlib

    if not isinstance(path, str) or "." not in path:
        raise ValueError(f"{field} must be an import path 'package.module.Class', got {path!r}")
    module, _, name = path.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        if not importable and isinstance(exc, ModuleNotFoundError):
            return None
        raise ValueError(f"{field}: cannot import {path!r} ({exc})") from None
    wanted = []
    for base in bases:
        base_module, _, base_name = base.rpartition(".")
        wanted.append(getattr(importlib.import_module(base_module), base_name))
    if not (isinstance(obj, type) and issubclass(obj, tuple(wanted))):
        names = " or ".join(b.rpartition(".")[2] for b in bases)
        raise ValueError(
            f"{field}: {path!r} is not a class deriving from {names} ({bases[0].rsplit('.', 2)[0]})"
        )
    return obj


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # monty protocol: settings held by makers survive jobflow's FireWorks serialisation
    # (``jsanitize`` without ``strict`` turns other objects into their ``str``)
    def as_dict(self) -> dict[str, Any]:
        return {
            "@module": type(self).__module__,
            "@class": type(self).__name__,
            **self.model_dump(mode="json"),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        return cls.model_validate({k: v for k, v in d.items() if not k.startswith("@")})


class SystemConfig(_Strict):
    """Chemical system and where seed structures come from."""

    builder: Literal["h2_cu111"] | None = Field(
        "h2_cu111", description="built-in seed generator (None when `seeds_file` is given)"
    )
    seeds_file: Path | None = Field(None, description="extxyz/any ASE-readable file of seeds")
    labelled_file: Path | None = Field(
        None, description="extxyz with energies/forces(/stress): imported as initial training set"
    )
    labelled_oracle: str = Field("imported", description="oracle name recorded for imports")
    n_initial: int = Field(8, ge=2, description="structures labelled before the first fine-tune")
    n_validation: int = Field(16, ge=1, description="held-out structures for validation errors")
    rattle: float = Field(0.05, ge=0.0, le=0.5, description="Å, Gaussian rattle of seeds")

    @model_validator(mode="after")
    def _one_source(self) -> SystemConfig:
        if self.builder is None and self.seeds_file is None and self.labelled_file is None:
            raise ValueError("give `builder`, `seeds_file` or `labelled_file`")
        return self


class FineTuneConfig(_Strict):
    freeze: int = Field(6, ge=0, le=7, description="mace-torch --freeze level (f0 ... f7)")
    freeze_sweep: list[int] = Field(
        default_factory=list,
        description="levels to try (lowest validation force MAE wins; empty: use `freeze`)",
    )
    sweep: Literal["first", "every", "doubled"] = Field(
        "first",
        description="sweep at the first fine-tune only, at every iteration, or again whenever "
        "the training set has doubled since the last sweep",
    )
    committee_size: int = Field(2, ge=1, le=16)
    epochs: int = Field(20, ge=1, description="epoch cap of every member's training")
    patience: int = Field(
        0,
        ge=0,
        description="stop a member after this many epochs without improvement on its checkpoint "
        "set (0: train all `epochs`); with it, `epochs` is a cap (e.g. 200 with patience 30): "
        "a member that ends at the cap with its best epoch among the last is recorded as still "
        "improving",
    )
    scheduler_patience: int = Field(
        0,
        ge=0,
        description="epochs without improvement on the checkpoint set before mace-torch's "
        "ReduceLROnPlateau lowers the rate by 0.8 (0: mace-torch's default, 50); with "
        "`patience`, set it below `patience` (e.g. 10 with patience 30) or the rate never decays",
    )
    retrain_failed: int = Field(
        0,
        ge=0,
        le=5,
        description="retrain a member that kept its first epoch (its checkpoint loss never "
        "improved on it) up to this many times, each with another seed (another holdout split) "
        "and half the previous lr; "
        "0: keep it (status warns)",
    )
    lr: float = Field(0.01, gt=0)
    lr_sweep: list[float] = Field(
        default_factory=list,
        description="other learning rates to try (member 0 at the level the freeze sweep chose, "
        "or at `freeze`; lowest validation force MAE wins; swept when `sweep` says, like levels)",
    )
    batch_size: int = Field(4, ge=1)
    subsample: float = Field(0.85, gt=0, le=1.0, description="data fraction per member (>=1 ref.)")
    e0s: Literal["estimated", "foundation", "average"] = "estimated"
    energy_weight: float = Field(10.0, ge=0)
    forces_weight: float = Field(10.0, ge=0)
    stress_weight: float = Field(
        0.0,
        ge=0,
        description="> 0 adds the stress to the loss (mace 'stress' loss; structures without a "
        "stress label, e.g. molecules, count with weight 0): elastic constants and EOS need it",
    )
    loss: Loss = Field(
        "weighted",
        description="mace-torch loss: weighted (squared errors; 'stress' with stress_weight), "
        "huber (squared below huber_delta, absolute above) or l1l2 (absolute energy error per "
        "atom + length of each atom's force error): with huber or l1l2 a few high-force "
        "structures no longer rule the training nor the checkpoint loss that picks the kept "
        "epoch; neither takes per-structure weights (member_weights) nor stress_weight",
    )
    huber_delta: float = Field(
        0.01, gt=0, description="eV/Å and eV/atom where the huber loss turns linear"
    )
    checkpoint_on: CheckpointOn = Field(
        "holdout",
        description="holdout: mace-torch holds out 10% of each member's data to pick the epoch it "
        "keeps (a different part per member: also a source of committee spread); validation: "
        "every member trains on all its data and the epoch is picked on the campaign's "
        "validation structures (5% lower test force error measured; members whose data subsets "
        "coincide then train identically and the committee shows no spread)",
    )
    member_weights: MemberWeights = Field(
        "uniform",
        description="per-structure loss weights of each member: uniform (all 1) or dirichlet "
        "(Bayesian bootstrap: n x Dirichlet(1,...,1), a different draw per member, so members "
        "differ by construction even when their data subsets coincide)",
    )
    default_dtype: Dtype = "float64"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    strategy: FineTuneStrategy = Field(
        "frozen",
        description="frozen: train the layers above `freeze`; multihead-replay: mace-torch's "
        "multihead fine-tuning, a second head trained on the foundation's own pretraining data "
        "(replay_file) beside yours so the shared layers keep what the foundation knew "
        "(the stored model is your head alone; use with freeze: 0); lora: mace-torch's LoRA "
        "adapters of rank lora_rank, everything else frozen",
    )
    strategy_sweep: list[FineTuneStrategy] = Field(
        default_factory=list,
        description="strategies to try after the freeze/lr sweeps (member 0; lowest validation "
        "force MAE wins; swept when `sweep` says)",
    )
    replay_file: str | None = Field(
        None,
        description="extxyz of the foundation's pretraining data (REF_energy, REF_forces) for "
        "multihead-replay; empty: the shipped subset for the mini foundations, mace-torch's own "
        "Materials Project replay for mace_mp names; a relative path is read beside the "
        "campaign file; checked before the campaign starts",
    )
    replay_samples: int = Field(
        200, ge=1, description="replay structures drawn (by seed) per multihead fine-tune"
    )
    replay_weight: float = Field(
        REPLAY_WEIGHT,
        gt=0,
        description="loss weight of the replay head's structures (their energy, force and stress "
        "terms in mace-torch's universal loss, which trains every multihead fine-tune)",
    )
    replay_filter: ReplayFilter = Field(
        REPLAY_FILTER,
        description="which replay frames are drawn, by the elements of your data (mace-torch's "
        "--filter_type_pt): none (any), combinations (frames made only of your elements), "
        "inclusive (holding all of them), exclusive (exactly them)",
    )
    lora_rank: int = Field(4, ge=1, description="rank of the LoRA adapters (strategy: lora)")
    lora_alpha: float = Field(1.0, gt=0, description="LoRA scaling alpha (strategy: lora)")

    @field_validator("freeze_sweep")
    @classmethod
    def _levels(cls, v: list[int]) -> list[int]:
        bad = [x for x in v if not 0 <= x <= 7]
        if bad:
            raise ValueError(f"freeze levels must be 0-7, got {bad}")
        return sorted(set(v))

    @field_validator("lr_sweep")
    @classmethod
    def _rates(cls, v: list[float]) -> list[float]:
        bad = [x for x in v if not x > 0]
        if bad:
            raise ValueError(f"learning rates must be > 0, got {bad}")
        return sorted(set(v), reverse=True)

    @model_validator(mode="after")
    def _replay_needs_its_own_e0s(self) -> FineTuneConfig:
        replay = "multihead-replay" in (self.strategy, *self.strategy_sweep)
        if replay and self.e0s == "average":
            raise ValueError(
                "finetune.e0s 'average' cannot be used with strategy multihead-replay "
                "(mace-torch needs per-element E0s for the heads): use estimated"
            )
        # mace-torch trains every multihead fine-tune with its universal loss, which reads
        # neither another loss nor per-structure weights: say so rather than ignore them
        if replay and self.loss != "weighted":
            raise ValueError(
                f"finetune.loss {self.loss} cannot be used with strategy multihead-replay "
                "(mace-torch trains it with its universal loss, a huber loss on energy, forces "
                "and stress): remove loss"
            )
        if replay and self.member_weights != "uniform":
            raise ValueError(
                f"finetune.member_weights {self.member_weights} cannot be used with strategy "
                "multihead-replay (mace-torch's universal loss ignores per-structure weights): "
                "use member_weights: uniform"
            )
        return self

    @model_validator(mode="after")
    def _loss_takes_no_weights(self) -> FineTuneConfig:
        if self.loss != "weighted" and self.stress_weight > 0:
            raise ValueError(
                f"finetune.loss {self.loss} cannot fit stresses (mace-torch's {self.loss} loss "
                "has no stress term with per-structure weights): use loss: weighted"
            )
        scheduler_patience = self.scheduler_patience or MACE_SCHEDULER_PATIENCE
        if self.patience and scheduler_patience >= self.patience:
            warnings.warn(
                f"finetune.scheduler_patience {scheduler_patience} >= finetune.patience "
                f"{self.patience}: training stops before mace-torch ever lowers the learning "
                "rate; set scheduler_patience below patience (e.g. a third of it)",
                UserWarning,
                stacklevel=2,
            )
        if self.loss != "weighted" and self.member_weights != "uniform":
            raise ValueError(
                f"finetune.loss {self.loss} ignores per-structure weights: "
                "use member_weights: uniform or loss: weighted"
            )
        return self


class ExploreConfig(_Strict):
    temperatures: list[float] = Field(default_factory=lambda: [300.0, 800.0], min_length=1)
    steps: int = Field(150, ge=1)
    timestep_fs: float = Field(1.0, gt=0, le=10)
    sample_every: int = Field(10, ge=1)
    starts_per_temperature: int = Field(2, ge=1)
    friction: float = Field(0.02, gt=0, description="Langevin friction, 1/fs")
    abort_force_std: float = Field(
        1.0,
        gt=0,
        description="eV/Å: stop a trajectory when the committee force std exceeds this (not "
        "applied with select.uncertainty: last-layer, whose raw scores have no eV/Å scale: "
        "see abort_error_factor)",
    )
    abort_error_factor: float = Field(
        10.0,
        gt=1,
        description="once a calibration derived the trust window: stop a trajectory when a "
        "frame's calibrated predicted error (last-layer: the conformal 90 % bound; committee: "
        "the linear std → error fit) exceeds this x select.target_force_error (the abort "
        "reason 'error_bound'; applies to both uncertainties, and to last-layer, which has no "
        "raw abort)",
    )
    bias: Bias = Field(
        "none",
        description="uncertainty: uncertainty-driven dynamics, a bias energy A [exp(-σ²/(N B²)) "
        "- 1] added to the model's (σ²: the calibrated last-layer variance summed over the N "
        "atoms) pushes the MD towards configurations the model is unsure of; needs "
        "select.uncertainty: last-layer and applies once a calibration exists (thermal MD "
        "before); frames record it in their provenance",
    )
    bias_strength: float = Field(
        3.0,
        gt=0,
        description="bias: uncertainty: A, the depth of the bias energy, eV (H2/Cu(111): 1 eV "
        "did not stretch the H-H bond, 3 eV dissociated H2 in 4 of 4 starts without the "
        "calibrated stop)",
    )
    bias_width: float = Field(
        0.3,
        gt=0,
        description="bias: uncertainty: B, eV/Å: the root-mean-square calibrated atomic error at "
        "which the bias has deepened to 63 % of A (the force pulling up the uncertainty is "
        "largest below it)",
    )
    max_strain: float = Field(
        0.0,
        ge=0,
        lt=0.5,
        description="start every trajectory from a randomly strained cell (symmetric strain, "
        "components uniform in ±max_strain): samples EOS and elastic configurations",
    )
    engine: Engine = Field(
        "ase",
        description="'ase': one ASE Langevin run at a time with MACECalculator; 'batched': all "
        "trajectories together in one batch per step with the shared-trunk committee",
    )
    dtype: Dtype = Field(
        "float64",
        description="precision of the committee during MD; float32 is about twice as fast on "
        "CPU (mace's own default for MD), float64 reproduces training-precision forces",
    )

    @field_validator("temperatures")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(t <= 0 for t in v):
            raise ValueError("temperatures must be > 0 K")
        return v


DESCRIPTOR_TRUST = (0.1, 5.0)
"""First trust window with ``uncertainty: descriptor`` (novelty units: a 0.01 Å rattle of a
labelled H2/Cu frame is ~0.3, another adsorption geometry 0.7-2)."""
LAST_LAYER_TRUST = (1e-6, 1e6)
"""First trust window with ``uncertainty: last-layer`` (raw LLPR standard deviations have no
scale before calibration, and differ by element: measured 0.3-1.4 for Cu and 6-14 for H atoms
of the same H2/Cu frames): every plausible frame is a candidate, ranked by its score; later
windows come from the conformal fit, in its normalised units."""


class SelectConfig(_Strict):
    """Which explored frames are labelled (see ``frostline.select.batch`` for the fates)."""

    strategy: Strategy = Field(
        "diverse",
        description="diverse: the best uncertainty per cost x novelty; stochastic: picks drawn"
        " with probability ~ that score^sampling_power; representative: the frames nearest the"
        " centres of a k-means of the window's frames (descriptors) weighted by that score;"
        " dpgen: random in the trust window; random: any frame (baseline)",
    )
    sampling_power: float = Field(
        1.0,
        ge=0,
        description="stochastic: pick probability ~ score^power (0: uniform in the trust window;"
        " large: the diverse strategy's top picks); representative: k-means weights ~"
        " score^power (0: plain k-means, pure coverage)",
    )
    stratify: Stratify = Field(
        "none",
        description="exploration: share each batch among the exploration conditions (sampler, MD"
        " temperature) in proportion to their plausible frames, the strategy ranking within each;"
        " a condition whose trust window holds too few frames is topped up with its own"
        " 'accurate' ones (one window for all conditions calls calm frames accurate although"
        " their errors are not small); none: rank all frames together",
    )
    trust: Literal["calibrated", "fixed"] = Field(
        "calibrated", description="derive the trust window from target_force_error each iteration"
    )
    uncertainty: Uncertainty = Field(
        "committee",
        description="committee: max atomic force std of the committee (eV/Å); descriptor: one "
        "model is enough, a frame's novelty against every label bought (foundation descriptors;"
        " trust_lo/trust_hi then in descriptor units, calibration maps them to force errors); "
        "last-layer: member 0's last-layer (LLPR) variance per atom, read in the force call "
        "(MD costs about one model; committee_size 1 suffices), calibrated per element by a "
        "conformal bound after every labelled batch (trust_lo/trust_hi: the first window, in "
        "LLPR standard deviation units)",
    )
    trust_lo: float = Field(0.05, gt=0, description="eV/Å: below is 'accurate' (first window)")
    trust_hi: float = Field(0.5, gt=0, description="eV/Å: at or above is 'too uncertain'")
    target_force_error: float = Field(
        0.3, gt=0, description="eV/Å: max atomic force error counted as accurate (calibrated)"
    )
    hi_factor: float = Field(
        3.0, gt=1, description="calibrated trust_hi: std where error reaches hi_factor x target"
    )
    hi_reference: Literal["target", "typical"] = Field(
        "target",
        description="calibrated trust_hi: hi_factor x the target error, or x the larger of the "
        "target and the batch's median true error (typical: a poor model does not call most "
        "ordinary frames too uncertain)",
    )
    min_calibration_points: int = Field(5, ge=2)
    calibration_history: int = Field(
        1,
        ge=1,
        description="fit the calibration on the labelled batches of the last N iterations (this "
        "one included; each pair measured with its own iteration's committee): a steadier window "
        "than one batch of max_labels_per_iteration points",
    )
    novelty_threshold: float = Field(
        0.02, ge=0, description="descriptor distance below which a frame is a duplicate (0: off)"
    )
    cost_exponent: float = Field(1.0, ge=0, description="label cost ~ n_atoms^x in ranking")
    max_labels_per_iteration: int = Field(8, ge=1)
    calibration_picks: int = Field(
        0,
        ge=0,
        description="of the per-iteration cap, frames picked at random among all plausible ones"
        " (any std below trust_hi), so calibration is not fitted on high-std frames only",
    )
    contact_picks: int = Field(
        0,
        ge=0,
        description="of the per-iteration cap, frames (any std below trust_hi) bought because a "
        "contact of some element pair is shorter than in every training label (the short-range "
        "wall the committee members share and their spread misses), largest deficit first",
    )
    contact_margin: float = Field(
        0.02,
        ge=0,
        description="a contact counts as shorter than the labels' beyond this (Å, or a fraction"
        " of the labelled contact with contact_deficit: relative)",
    )
    contact_deficit: ContactDeficit = Field(
        "absolute",
        description="rank short contacts by Å (absolute) or by the fraction of the labelled "
        "shortest contact of their element pair (relative: an H-H contact 15 % short before a "
        "Cu-Cu contact 12 % short, though the latter is longer in Å)",
    )
    min_distance: float = Field(0.6, ge=0, description="Å: closer atoms fail the sanity filter")
    min_distance_ratio: float = Field(
        0.5, ge=0, le=1, description="fail if d < ratio x sum of covalent radii"
    )
    max_neighbour_distance: float = Field(
        5.0, ge=0, description="Å: an atom with no neighbour this close means 'exploded' (0: off)"
    )
    min_volume_per_atom: float = Field(2.0, ge=0, description="Å³: smaller periodic cells fail")
    max_force: float = Field(20.0, gt=0, description="eV/Å: larger predicted forces fail")

    @model_validator(mode="after")
    def _window(self) -> SelectConfig:
        first = {"descriptor": DESCRIPTOR_TRUST, "last-layer": LAST_LAYER_TRUST}
        if self.uncertainty in first:  # the eV/Å defaults mean nothing in these units
            if "trust_lo" not in self.model_fields_set:
                self.trust_lo = first[self.uncertainty][0]
            if "trust_hi" not in self.model_fields_set:
                self.trust_hi = first[self.uncertainty][1]
        if self.trust_hi <= self.trust_lo:
            raise ValueError("trust_hi must be larger than trust_lo")
        return self


class OracleConfig(_Strict):
    """The labelling oracle.

    ``ase``: any ASE calculator, ``settings.calculator`` being the import path of its class
    (deriving from ASE's ``Calculator`` or ``BaseCalculator``). ``cp2k`` / ``vasp``: atomate2's
    CP2K / MP VASP static makers (``settings`` override the input; see README "Oracles and
    DFT"). ``maker``: any atomate2 maker, ``settings.maker`` being the import path of its class
    (a jobflow ``Maker``) and ``settings.kwargs`` its keyword arguments. These settings name
    code that the campaign runs: treat a campaign configuration like code (:func:`import_class`).
    """

    name: Literal["emt", "xtb", "chgnet", "chgnet-r2scan", "ase", "cp2k", "vasp", "maker"] = "emt"
    settings: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float | None = Field(
        None,
        gt=0,
        description="s: an ASE-calculator oracle calculation taking longer fails (its label is "
        "recorded as failed, the rest proceed); not part of the settings hash. DFT oracles: use "
        "the scheduler's wall time (frostline.reliability.timeouts)",
    )

    @model_validator(mode="after")
    def _ase_needs_path(self) -> OracleConfig:
        if self.name in ("ase", "maker"):  # checked again before use (``oracle_maker``)
            key = "calculator" if self.name == "ase" else "maker"
            bases = CALCULATOR_BASES if self.name == "ase" else MAKER_BASES
            import_class(self.settings.get(key), f"settings.{key}", bases, importable=False)
        if self.name == "maker" and not isinstance(self.settings.get("kwargs", {}), dict):
            raise ValueError("oracle 'maker': settings.kwargs must be a mapping")
        if self.timeout_s is not None and self.name in ("cp2k", "vasp", "maker"):
            raise ValueError(
                f"timeout_s applies to ASE-calculator oracles; bound {self.name} jobs with the "
                "scheduler's wall time"
            )
        return self


class ConvergenceConfig(_Strict):
    accurate_fraction: float = Field(0.9, gt=0, le=1.0)
    max_iterations: int = Field(3, ge=1)
    label_budget: int = Field(200, ge=1, description="total labels incl. the initial set")
    max_validation_force_mae: float | None = Field(
        None,
        gt=0,
        description="meV/Å: 'converged' also needs the committee's force MAE on the campaign's "
        "validation set at or below this (a small committee can agree and still be wrong); "
        "None: the accurate fraction alone decides",
    )


class ForgettingConfig(_Strict):
    """The forgetting check at the end of a campaign (``frostline.finetune.forgetting``): the
    final committee against its foundation on a held-out slice of the foundation's domain and
    on the bulk lattice constant of each fcc/bcc element of the campaign."""

    enabled: bool = Field(
        True, description="run the check after the last iteration (a few seconds on CPU)"
    )
    max_force_mae_ratio: float = Field(
        1.5,
        gt=0,
        description="warn when the foundation-domain force MAE vs the oracle grew beyond this "
        "factor of the foundation's",
    )
    max_lattice_shift_percent: float = Field(
        1.0,
        gt=0,
        description="warn when a bulk lattice constant's error vs the oracle grew by more than "
        "this (percentage points) over the foundation's; without an oracle value, when it moved "
        "more than this from the foundation's (%)",
    )
    max_bulk_modulus_shift_percent: float = Field(
        25.0,
        gt=0,
        description="warn when a bulk modulus's error vs the oracle grew by more than this "
        "(percentage points) over the foundation's; without an oracle value, when it moved more "
        "than this from the foundation's (%; moduli of ±3 % fits scatter by ~10 %)",
    )
    oracle_eos: bool = Field(
        True,
        description="also fit the oracle's own lattice constants when it is a built-in ASE "
        "calculator (emt, xtb, chgnet, chgnet-r2scan; ~20 single points per element); DFT "
        "oracles are never run for it",
    )


class DistillConfig(_Strict):
    """Distil the final fine-tuned MACE into a linear ACE surrogate (``frostline.distill``)."""

    enabled: bool = Field(True, description="run distillation after the last iteration")
    n_teacher_structures: int = Field(160, ge=8, description="teacher-labelled structures")
    temperatures: list[float] | None = Field(
        None, min_length=1, description="K, teacher MD (default: explore.temperatures)"
    )
    md_steps: int = Field(100, ge=1, description="steps per teacher MD trajectory")
    sample_every: int = Field(5, ge=1)
    rattle: float = Field(0.05, ge=0, le=0.5, description="Å, rattle of strained/defected cells")
    max_strain: float = Field(0.03, ge=0, le=0.2)
    holdout_fraction: float = Field(0.2, gt=0, lt=0.9, description="teacher data held out")
    basis_sizes: list[int] = Field(
        default_factory=lambda: [50, 100, 200], min_length=1, description="functions per element"
    )
    cutoffs: list[float] = Field(default_factory=lambda: [5.0], min_length=1, description="Å")
    pair_cutoff_factor: float = Field(
        4.0,
        description="per element pair: cutoff min(cutoffs, factor x the pair's shortest teacher "
        "contact), so a short bond (H-H) gets its radial functions where it lives; 0: off",
    )
    target_force_mae_mev_per_a: float = Field(
        50.0, gt=0, description="meV/Å vs teacher (held out): smallest basis meeting it wins"
    )
    require_target: bool = Field(False, description="fail when no basis meets the target")
    energy_weight: float = Field(10.0, ge=0, description="per-atom energy vs force residuals")
    ridge: float = Field(1e-6, ge=0, description="scale-free ridge regularisation")
    stability_steps: int = Field(200, ge=0, description="MD steps of the stability check (0: off)")
    active_set: bool = Field(True, description="write an .asi active set (extrapolation grade)")
    speed_atoms: int = Field(500, ge=1, description="atoms in the speed-test supercell")
    active_rounds: int = Field(
        3,
        ge=0,
        description="rounds of teacher-labelled active learning of the surrogate per basis size "
        "(while the MD check fails, the next larger of basis_sizes is tried)",
    )
    active_frames: int = Field(60, ge=1, description="frames added per active-learning round")
    active_steps: int = Field(200, ge=10, description="surrogate MD steps per exploration run")
    core_repulsion: bool = Field(
        False,
        description="ZBL core below the stability check's contact limits (H2/Cu: harmful, off)",
    )

    @field_validator("temperatures")
    @classmethod
    def _positive_temperatures(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and any(t <= 0 for t in v):
            raise ValueError("temperatures must be > 0 K")
        return v

    @field_validator("basis_sizes")
    @classmethod
    def _sizes(cls, v: list[int]) -> list[int]:
        if any(n < 4 for n in v):
            raise ValueError("basis sizes (functions per element) must be >= 4")
        return sorted(set(v))

    @field_validator("pair_cutoff_factor")
    @classmethod
    def _pair_factor(cls, v: float) -> float:
        if v != 0 and not 2.0 <= v <= 20.0:
            raise ValueError("pair_cutoff_factor must be 0 (off) or between 2 and 20")
        return v

    @field_validator("cutoffs")
    @classmethod
    def _cutoffs(cls, v: list[float]) -> list[float]:
        if any(not 2.0 <= c <= 12.0 for c in v):
            raise ValueError("cutoffs must be between 2 and 12 Å")
        return sorted(set(v))


class StoreConfig(_Strict):
    kind: Literal["embedded", "mongodb"] = "embedded"
    path: Path | None = Field(None, description="embedded store folder (default DIR/store)")
    uri: str | None = Field(None, description="MongoDB URI (or env FROSTLINE_MONGODB_URI)")
    database: str = "frostline"


class JobRoute(_Strict):
    """Where one type of job runs under jobflow-remote / FireWorks (None: the default's value).

    ``worker`` and ``exec_config`` name entries of the jobflow-remote project (``exec_config``
    may also be inline: modules, export, pre_run, post_run); ``resources`` go to the queue
    (qtoolkit keys, e.g. ``nodes``, ``processes``, ``time_limit``, ``gpus_per_job``);
    ``category`` is the FireWorks ``_category`` (default: ``worker``).
    """

    worker: str | None = Field(None, min_length=1)
    exec_config: str | dict[str, Any] | None = None
    resources: dict[str, Any] | None = None
    category: str | None = Field(None, min_length=1)


class RoutingConfig(_Strict):
    """Per-job-type routing (``frostline submit``); ignored by ``frostline run``.

    Job types: ``finetune``, ``explore``, ``select`` (selection and committee calibration),
    ``label`` (the oracle calculations), ``distill``, and ``control`` (set-up, zero-shot
    baseline, iteration bookkeeping, label dispatch and recording). A type without an entry,
    and every field an entry leaves out, takes the value of ``default``.
    """

    default: JobRoute = Field(default_factory=JobRoute)
    finetune: JobRoute | None = None
    explore: JobRoute | None = None
    select: JobRoute | None = None
    label: JobRoute | None = None
    distill: JobRoute | None = None
    control: JobRoute | None = None


MAX_NAME_LENGTH = 64
"""Longest campaign name (it names directories, files and model ids)."""


class CampaignConfig(_Strict):
    name: str = Field(
        ...,
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        pattern=r"^[A-Za-z0-9_.\-]+$",
        description="letters, digits, '_', '.', '-' (not only dots), at most 64 characters",
    )
    elements: list[str] = Field(..., min_length=1)
    system: SystemConfig = Field(default_factory=SystemConfig)
    foundation: str = Field(
        "mini", description="'mini' or 'mini-64' (shipped), a .model path, or a mace_mp name"
    )
    finetune: FineTuneConfig = Field(default_factory=FineTuneConfig)
    explore: ExploreConfig = Field(default_factory=ExploreConfig)
    select: SelectConfig = Field(default_factory=SelectConfig)
    oracle: OracleConfig = Field(default_factory=OracleConfig)
    convergence: ConvergenceConfig = Field(default_factory=ConvergenceConfig)
    forgetting: ForgettingConfig = Field(default_factory=ForgettingConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    routing: RoutingConfig | None = Field(None, description="workers per job type (submit)")
    seed: int = 0

    @field_validator("name")
    @classmethod
    def _not_a_path(cls, name: str) -> str:
        if set(name) == {"."}:
            raise ValueError(f"{name!r} is not a campaign name (it names a directory)")
        return name

    @field_validator("elements")
    @classmethod
    def _known_elements(cls, v: list[str]) -> list[str]:
        return sorted(set(check_elements(v)))

    @model_validator(mode="after")
    def _bias_needs_last_layer(self) -> CampaignConfig:
        check_bias_uncertainty(self.explore.bias, self.select.uncertainty)
        return self

    @model_validator(mode="after")
    def _uncertainty_needs_a_committee(self) -> CampaignConfig:
        if self.finetune.committee_size == 1 and self.select.uncertainty == "committee":
            raise ValueError(
                "finetune.committee_size 1 has no committee spread (every frame would look "
                "accurate): use select.uncertainty: last-layer or descriptor, or "
                "committee_size >= 2"
            )
        return self


def check_bias_uncertainty(bias: str, uncertainty: str) -> None:
    """The rule tying ``explore.bias`` to ``select.uncertainty`` (``ValueError``): the
    uncertainty bias differentiates the last-layer variance, so it needs that uncertainty."""
    if bias == "uncertainty" and uncertainty != "last-layer":
        raise ValueError(
            "explore.bias: uncertainty needs select.uncertainty: last-layer (the bias "
            f"differentiates the last-layer variance), not {uncertainty!r}"
        )


SectionT = TypeVar("SectionT", bound=BaseModel)


def maker_settings(maker: Any, section: type[SectionT]) -> SectionT:
    """Config ``section`` validated from the fields dataclass ``maker`` shares with it by name.

    A maker built in code obeys the same rules as one built from a campaign file (each rule
    is defined once, on the config model): a bad value raises ``ValueError`` naming the maker
    and the field, one line per field.
    """
    shared = [f.name for f in dataclasses.fields(maker) if f.name in section.model_fields]
    try:
        return section.model_validate({name: getattr(maker, name) for name in shared})
    except ValidationError as exc:
        where = type(maker).__name__
        lines = [
            f"{where} field '{_field_path(e['loc'])}': {e['msg']}"
            if e["loc"]
            else f"{where}: {e['msg']}"
            for e in exc.errors()
        ]
        raise ValueError("\n".join(lines)) from None


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


def merge_sections(config: dict, overrides: dict) -> dict:
    """``config`` with ``overrides`` applied: a dict merges into a section, anything else
    replaces the value (one level deep, as campaign YAML sections are)."""
    merged = dict(config)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def read_yaml(path: Path) -> Any:
    """The data of a YAML file (safe loader); a ``ConfigError`` naming the file otherwise."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None


def load_config(path: str | Path) -> CampaignConfig:
    """Read a campaign YAML file (safe loader) and validate it.

    Relative paths inside (seeds, labelled and replay files, foundation file) are resolved
    against the file's folder.
    """
    path = Path(path)
    data = read_yaml(path)
    config = parse_config(data, source=str(path))
    base = path.parent.resolve()
    if config.system.seeds_file is not None and not config.system.seeds_file.is_absolute():
        config.system.seeds_file = base / config.system.seeds_file
    labelled = config.system.labelled_file
    if labelled is not None and not labelled.is_absolute():
        config.system.labelled_file = base / labelled
    replay = config.finetune.replay_file
    if replay is not None and not Path(replay).is_absolute():
        config.finetune.replay_file = str(base / replay)
    if config.foundation != "mini" and not Path(config.foundation).is_absolute():
        candidate = base / config.foundation
        if candidate.exists():
            config.foundation = str(candidate)
    return config
