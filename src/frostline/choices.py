"""Allowed values of frostline's settings, each defined once.

The campaign configuration (``frostline.config``) types its fields with these ``Literal``\\ s;
the makers check their fields against the matching tuples (``get_args`` of the type), and
``frostline.select.strategies`` registers one class per selection strategy name.
"""

from __future__ import annotations

from typing import Literal, get_args

Strategy = Literal["diverse", "stochastic", "representative", "dpgen", "random"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)
"""Selection strategies (``select.strategy``; classes in ``frostline.select.strategies``)."""
Stratify = Literal["none", "exploration"]
STRATIFY: tuple[str, ...] = get_args(Stratify)
Uncertainty = Literal["committee", "descriptor", "last-layer"]
UNCERTAINTIES: tuple[str, ...] = get_args(Uncertainty)
ContactDeficit = Literal["absolute", "relative"]
CONTACT_DEFICITS: tuple[str, ...] = get_args(ContactDeficit)

CheckpointOn = Literal["holdout", "validation"]
CHECKPOINT_ON: tuple[str, ...] = get_args(CheckpointOn)
MemberWeights = Literal["uniform", "dirichlet"]
MEMBER_WEIGHTS: tuple[str, ...] = get_args(MemberWeights)
Engine = Literal["ase", "batched"]
"""How exploration runs its trajectories (``explore.engine``)."""
Bias = Literal["none", "uncertainty"]
"""Exploration bias (``explore.bias``)."""
Dtype = Literal["float64", "float32"]
"""Floating-point precision of MACE models (training, exploration)."""
DTYPES: tuple[str, ...] = get_args(Dtype)
FineTuneStrategy = Literal["frozen", "multihead-replay", "lora"]
FINETUNE_STRATEGIES: tuple[str, ...] = get_args(FineTuneStrategy)
"""How the foundation is fine-tuned (``finetune.strategy``): frozen layers (``freeze`` level),
mace-torch's multihead fine-tuning with replay of the foundation's own data, or LoRA adapters."""
ReplayFilter = Literal["none", "combinations", "inclusive", "exclusive"]
REPLAY_FILTERS: tuple[str, ...] = get_args(ReplayFilter)
"""Which replay frames a multihead fine-tune draws from (``finetune.replay_filter``): mace-torch's
``--filter_type_pt`` kinds, by the elements of the data being fine-tuned on."""
NO_REPLAY_FILTER: ReplayFilter = "none"
"""Any replay frame (mace-torch's default; what every replay drew before the filter existed)."""
REPLAY_FILTER: ReplayFilter = "combinations"
"""The default replay filter: frames made only of the fine-tuned data's elements (forgetting
benchmark, 2026-12-07: lower target error and forgetting than any-frame replay on both cases)."""
REPLAY_WEIGHT = 0.3
"""The default loss weight of the replay head (forgetting benchmark, 3 seeds, 2026-12-08: with the
filter, 0.3 is the best strategy on alloys and +8.3 % vs naive on H2/Cu; weight 1 costs alloys
17 %; see docs/benchmarks/forgetting.md)."""
MACE_REPLAY_NAMES = ("mp", "omat", "matpes_pbe", "matpes_r2scan")
"""mace-torch's own replay data sets (downloaded by mace-torch, for MACE-MP-type foundations)."""
Loss = Literal["weighted", "huber", "l1l2"]
MACE_LOSSES: tuple[str, ...] = get_args(Loss)
"""frostline's names of mace-torch losses (``finetune.loss``)."""
