"""Fine-tuning stage: a committee of frozen fine-tuned MACE models."""

from __future__ import annotations

import hashlib
import math
import time
from collections import defaultdict
from copy import copy
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, NamedTuple

import mace  # noqa: F401
import numpy as np
from ase.data import chemical_symbols
from jobflow import Maker
from rich.console import Console

from frostline.choices import (
    MEMBER_WEIGHTS,
    NO_REPLAY_FILTER,
    REPLAY_FILTER,
    REPLAY_WEIGHT,
)
from frostline.config import FineTuneConfig, maker_settings
from frostline.finetune.committee import committee_calculator, resolve_device
from frostline.finetune.evaluate import evaluate
from frostline.finetune.foundation import load_foundation_model, sha256_file
from frostline.finetune.freeze import count_parameters, lora_parameters
from frostline.finetune.replay import replay_source
from frostline.finetune.safe_model import model_file_to_blob, read_blob
from frostline.finetune.train import (
    MaceTrainSettings,
    run_mace_training,
    training_outcome,
)
from frostline.jobs import frostline_job
from frostline.registry.models import mark_superseded
from frostline.reliability.memo import memo_keys, memo_lookup, memo_mark
from frostline.schemas import (
    FineTuneResult,
    FreezeSweepPoint,
    LabelledStructure,
    ModelDoc,
    ModelFile,
    TrainingOutcome,
    ValidationMetrics,
)
from frostline.store import current_records

console = Console(stderr=True)

# a retry's seed (member seed + 7919 k, k <= 5) never equals another member's seed
# (seed + 1000 * iteration + member, member < 16): 7919 k mod 1000 lies in 595..919
RETRY_SEED_STRIDE = 7919


class TrainedModel(NamedTuple):
    """A finished training: its ``.model`` file and how it ended (failed attempts counted)."""

    path: Path
    training: TrainingOutcome | None


class _CommitteeRun(NamedTuple):
    """What every member of one committee shares: where it goes and how it trains."""

    foundation: str
    campaign: str
    iteration: int
    level: int
    rate: float
    device: str
    checkpoint_set: list
    parameters: tuple[int, int]  # (trainable, total) at ``level`` with ``strategy``
    strategy: str = "frozen"


def retry_settings(seed: int, lr: float, attempt: int) -> tuple[int, float]:
    """Seed and learning rate of retry ``attempt`` (1, 2, ...) of a failed training.

    Another seed (another batch order and, with ``checkpoint_on: holdout``, another 10 %
    holdout) and half the previous learning rate. Seen in the selection benchmark: a member's
    loss on a 3-structure holdout was lowest after epoch 0 and never again, while its holdout
    force MAE fell from 238 to 145 meV/Å: the loss (squared errors) was ruled by a few
    high-force structures, so mace-torch kept the poor epoch-0 model.
    """
    return seed + RETRY_SEED_STRIDE * attempt, lr * 0.5**attempt


def member_subset(
    labelled: list[LabelledStructure], fraction: float, rng: np.random.Generator
) -> list[LabelledStructure]:
    """A per-composition subsample (at least one structure of every composition is kept)."""
    if fraction >= 1.0:
        return list(labelled)
    groups: dict[str, list[LabelledStructure]] = defaultdict(list)
    for lab in labelled:
        formula = "".join(sorted(s["species"][0]["element"] for s in lab.structure["sites"]))
        groups[formula].append(lab)
    out = []
    for members in groups.values():
        k = max(1, math.ceil(fraction * len(members)))
        idx = rng.choice(len(members), size=k, replace=False)
        out.extend(members[i] for i in sorted(idx))
    return out


def member_loss_weights(n: int, mode: str, rng: np.random.Generator) -> list[float] | None:
    """Per-structure loss weights of one member (``None``: all 1).

    ``dirichlet`` is the Bayesian bootstrap (Rubin 1981): weights ``n * Dirichlet(1, ..., 1)``
    (mean 1, every structure kept with a positive weight), so members differ by construction
    even when their data subsets coincide, and no structure (or element) is dropped.
    """
    if mode == "uniform":
        return None
    if mode != "dirichlet":
        raise ValueError(f"member weights must be one of {MEMBER_WEIGHTS}, got {mode!r}")
    return (n * rng.dirichlet(np.ones(n))).tolist()


@dataclass
class FineTuneMaker(Maker):
    """Fine-tune a committee of a foundation MACE with frozen layers (mace-torch ``--freeze``).

    Members differ by seed and by a per-composition subsample of the data. By default the
    model is reduced to the data's elements (mace-torch's element filtering);
    ``keep_foundation_elements`` keeps all of the foundation's. ``checkpoint_on``:
    ``holdout`` (mace-torch holds out 10% of the member's data to pick the epoch it keeps: one
    or two structures while a campaign is young, a different part per member) or
    ``validation`` (every member trains on all its data; the epoch with the lowest loss on the
    validation structures is kept; members whose subsets coincide then train identically
    unless ``member_weights`` is ``dirichlet``: every member's structures get Bayesian-bootstrap
    loss weights, a different draw per member). ``retrain_failed``: a member whose training
    kept its first epoch (its checkpoint loss never improved on it) is trained again, up to
    this many times, with another seed and half the learning rate each time
    (``retry_settings``); the attempt kept and the number of failed ones are recorded in the
    member's ``ModelDoc.training``. ``loss``: mace-torch's loss (``weighted``: squared
    errors; ``huber`` with ``huber_delta``; ``l1l2``: absolute energy error per atom and the
    length of each atom's force error), which also picks the epoch each member keeps.
    """

    name: str = "finetune"
    freeze: int = 6
    committee_size: int = 2
    epochs: int = 20
    lr: float = 0.01
    batch_size: int = 4
    subsample: float = 0.85
    e0s: str = "estimated"
    energy_weight: float = 10.0
    forces_weight: float = 10.0
    stress_weight: float = 0.0
    default_dtype: str = "float64"
    device: str = "auto"
    keep_foundation_elements: bool = False
    freeze_sweep: tuple[int, ...] = ()
    lr_sweep: tuple[float, ...] = ()
    checkpoint_on: str = "holdout"
    member_weights: str = "uniform"
    loss: str = "weighted"
    huber_delta: float = 0.01
    patience: int = 0
    scheduler_patience: int = 0
    retrain_failed: int = 0
    seed: int = 0
    strategy: str = "frozen"
    strategy_sweep: tuple[str, ...] = ()
    replay_file: str | None = None
    replay_samples: int = 200
    replay_weight: float = REPLAY_WEIGHT
    lora_rank: int = 4
    lora_alpha: float = 1.0
    replay_filter: str = REPLAY_FILTER
    # fields added after campaigns were stored, oldest first (fields added together grouped):
    # at their defaults they are left out of the keys older versions computed, so those
    # campaigns resume (frostline.reliability.memo.memo_keys)
    MEMO_ADDED_FIELDS: ClassVar[tuple[str | tuple[str, ...], ...]] = (
        ("loss", "huber_delta"),
        "lr_sweep",
        "scheduler_patience",
        (
            "strategy",
            "strategy_sweep",
            "replay_file",
            "replay_samples",
            "replay_weight",
            "lora_rank",
            "lora_alpha",
        ),
        "replay_filter",
    )
    # the defaults the fields above were added with, where they changed since: older keys are
    # matched only at these values (frostline.reliability.memo); both are read by a replay only
    MEMO_ORIGINAL_DEFAULTS: ClassVar[dict] = {
        "replay_weight": 1.0,  # 0.3 since 2026-12-07
        "replay_filter": NO_REPLAY_FILTER,  # combinations since 2026-12-07
    }

    def __post_init__(self) -> None:
        maker_settings(self, FineTuneConfig)  # the campaign file's rules, named by field

    @frostline_job(FineTuneResult)
    def make(
        self,
        foundation: str,
        train: list[LabelledStructure],
        validation: list[LabelledStructure],
        campaign: str = "campaign",
        iteration: int = 0,
        freeze: int | None = None,
        lr: float | None = None,
        strategy: str | None = None,
    ) -> FineTuneResult:
        """Train ``committee_size`` members on ``train``; evaluate them on ``validation``.

        With ``freeze_sweep`` levels (and no explicit ``freeze``), member 0 is first trained at
        every level; the level with the lowest validation force MAE is kept (member 0 of that
        level is reused) and the rest of the committee is trained at it. With ``lr_sweep``
        rates, member 0 is then trained at that level (``freeze`` without a level sweep) at
        each of them too and the (level, rate) with the lowest validation force MAE is kept.
        ``freeze`` overrides the maker's level and skips the sweeps (a level chosen in an
        earlier iteration); ``lr`` overrides the maker's rate (one an earlier sweep chose),
        ``strategy`` its fine-tuning strategy (one an earlier ``strategy_sweep`` chose).
        """
        start = time.perf_counter()
        train = [LabelledStructure.model_validate(t) for t in train]
        validation = [LabelledStructure.model_validate(v) for v in validation]
        ok, sweeping = self._checked_inputs(train, validation, freeze)
        records = current_records()
        keys = self._memo_keys(
            foundation, train, validation, campaign, iteration, freeze, lr, strategy
        )
        reused = self._reuse(records, keys, campaign, iteration)
        if reused is not None:  # a resumed run: this committee was trained before the crash
            return reused
        foundation_model = load_foundation_model(foundation)
        device = resolve_device(self.device)
        checkpoint_set = self._checkpoint_set(validation)
        level, sweep, trained = self.freeze if freeze is None else freeze, [], None
        rate, strategy = self.lr if lr is None else lr, strategy or self.strategy
        if sweeping:
            level, rate, strategy, sweep, trained = self._sweep(
                foundation, foundation_model, ok, validation, iteration, device, checkpoint_set
            )
        parameters = self._parameters(foundation_model, level, strategy)
        run = _CommitteeRun(foundation, campaign, iteration, level, rate, device, checkpoint_set,
                            parameters, strategy)  # fmt: skip
        docs, paths = self._train_members(records, run, ok, trained)
        committee_metrics = self._evaluate(docs, paths, validation, device)
        records.upsert("model_docs", [d.model_dump(mode="json") for d in docs], key=["model_id"])
        mark_superseded(records, campaign, iteration, [d.model_id for d in docs])
        memo_mark(keys[0])
        return FineTuneResult(
            models=docs,
            committee_metrics=committee_metrics,
            freeze_level=level,
            freeze_sweep=sweep,
            lr=rate,
            strategy=strategy,
            trainable_parameters=run.parameters[0],
            total_parameters=run.parameters[1],
            wall_time_s=time.perf_counter() - start,
        )

    def _checked_inputs(
        self, train: list[LabelledStructure], validation: list, freeze: int | None
    ) -> tuple[list[LabelledStructure], bool]:
        """The successfully labelled training structures, and whether this call sweeps."""
        ok = [t for t in train if t.status == "ok"]
        if len(ok) < 2:
            raise ValueError(f"fine-tuning needs at least 2 labelled structures, got {len(ok)}")
        sweeps = (self.freeze_sweep, self.lr_sweep, self.strategy_sweep)
        sweeping = freeze is None and any(sweeps)
        if sweeping and not validation:
            kind = "freeze" if self.freeze_sweep else "learning-rate"
            raise ValueError(f"a {kind} sweep needs validation structures to compare its runs")
        return ok, sweeping

    def _reuse(self, records, keys: tuple, campaign: str, iteration: int) -> FineTuneResult | None:
        """The committee a killed run finished (its files checked, weights only), or None."""
        reused = memo_lookup(keys)
        if reused is None:
            return None
        result = FineTuneResult.model_validate(reused)
        for m in result.models:  # every file still there, sha256 verified, weights only
            read_blob(records.get_model_file(m.model_id, m.file.sha256), m.model_id)
        console.print(f"[bold]fine-tune[/] iteration {iteration}: reusing finished committee")
        mark_superseded(records, campaign, iteration, [m.model_id for m in result.models])
        memo_mark(keys[0])
        return result

    def _train_members(
        self, records, run: _CommitteeRun, ok: list[LabelledStructure], trained
    ) -> tuple[list[ModelDoc], list[Path]]:
        """Train (member 0: reuse the sweep's ``trained`` if any) and store every member."""
        elements = sorted(
            {s["species"][0]["element"] for t in ok for s in t.structure["sites"]},
            key=chemical_symbols.index,
        )
        docs: list[ModelDoc] = []
        paths: list[Path] = []
        taken: set = set()  # members never train on the same structures with the same weights
        for member in range(self.committee_size):
            seed = self.seed + 1000 * run.iteration + member
            data, weights = self._member_data(ok, seed, taken)
            if member > 0 or trained is None:
                trainable, total = run.parameters
                console.print(
                    f"[bold]fine-tune[/] iteration {run.iteration} member {member + 1}/"
                    f"{self.committee_size}: {len(data)} structures, {run.strategy} "
                    f"f{run.level}, {trainable:,}/{total:,} parameters trainable, lr {run.rate:g}"
                )
                trained = self._train(run.foundation, data, seed, run.level, run.rate,
                                      run.device, f"member{member}", run.checkpoint_set,
                                      weights, run.strategy)  # fmt: skip
            docs.append(self._store_member(records, run, member, trained, data, elements))
            paths.append(trained.path)
        return docs, paths

    def _store_member(
        self, records, run: _CommitteeRun, member: int, trained: TrainedModel, data: list,
        elements: list[str],
    ) -> ModelDoc:  # fmt: skip
        """Store a member's weights + architecture (loaded without pickle) and its document."""
        blob = model_file_to_blob(trained.path)
        sha = hashlib.sha256(blob).hexdigest()
        model_id = f"{run.campaign}-it{run.iteration:03d}-m{member}-{sha[:8]}"
        records.put_model_file(model_id, blob)
        trainable, total = run.parameters
        return ModelDoc(
            model_id=model_id,
            kind="committee-member",
            campaign=run.campaign,
            iteration=run.iteration,
            member=member,
            elements=elements,
            foundation=Path(run.foundation).name,
            freeze_level=run.level,
            strategy=run.strategy,
            trainable_parameters=trainable,
            total_parameters=total,
            n_train=len(data),
            training_set_hashes=[d.structure_hash for d in data],
            training=trained.training,
            file=ModelFile(filename=trained.path.name, sha256=sha, size_bytes=len(blob)),
        )

    def _evaluate(
        self, docs: list[ModelDoc], paths: list[Path], validation: list, device: str
    ) -> ValidationMetrics | None:
        """The committee's validation errors (and each member's, into its document)."""
        if not validation:
            return None
        calc = committee_calculator(paths, device=device, dtype=self.default_dtype)
        committee_metrics = evaluate(calc, validation)
        for doc, path in zip(docs, paths, strict=True):
            doc.metrics = evaluate(
                committee_calculator([path], device=device, dtype=self.default_dtype), validation
            )
        return committee_metrics

    def _memo_keys(
        self, foundation, train, validation, campaign, iteration, freeze, lr, strategy=None
    ) -> tuple:
        """What the committee depends on: settings, foundation file, data (by hash), place
        (``memo_keys``: the current key, then those before each ``MEMO_ADDED_FIELDS`` entry; a rate
        passed in is part of the key only when given, so keys without one are unchanged).

        The data are sets of labels (sorted by hash): a resumed run whose labels come back in
        another order finds the finished committee. The keys of the data in the order given
        (those frostline computed before) follow, so campaigns stored before still resume.
        """
        fingerprint = sha256_file(foundation) if Path(foundation).is_file() else foundation

        def ids(labels: list[LabelledStructure], ordered: bool) -> list:
            out = [(x.structure_hash, x.oracle_settings_hash, x.status) for x in labels]
            return out if ordered else sorted(out)

        keys: list[str] = []
        for ordered in (False, True):
            keys += memo_keys(
                "finetune",
                maker=self._keyed(strategy),
                foundation=fingerprint,
                train=ids(train, ordered),
                validation=ids(validation, ordered),
                campaign=campaign,
                iteration=iteration,
                freeze=freeze,
                **({"lr": lr} if lr is not None else {}),
                **({"strategy": strategy} if strategy is not None else {}),
                **self._replay_weighting(strategy),
            )
        return tuple(dict.fromkeys(keys))

    def _replays(self, strategy: str | None) -> bool:
        """A multihead replay trains among the committee's candidates."""
        return "multihead-replay" in (strategy or self.strategy, *self.strategy_sweep)

    def _keyed(self, strategy: str | None) -> FineTuneMaker:
        """The maker as the memo key sees it: where no replay trains, the replay's weight and
        filter at their defaults are keyed at the defaults they had before, so the change of
        those defaults never changes the keys of other fine-tunes. (A value set by hand is
        keyed as set: only one equal to today's default, stored before, is not found again.)"""
        if self._replays(strategy):
            return self
        fields = self.__dataclass_fields__
        moved = {
            name: original
            for name, original in self.MEMO_ORIGINAL_DEFAULTS.items()
            if getattr(self, name) == fields[name].default != original
        }
        keyed = copy(self)  # not dataclasses.replace: no second validation of the settings
        keyed.__dict__.update(moved)
        return keyed

    def _replay_weighting(self, strategy: str | None) -> dict:
        """A replay at a weight other than 1 in the memo key: before 2026-12-07 such a weight
        never reached mace-torch's loss (``frostline.finetune.train.replay_subset``), so the
        committees stored then are not reused."""
        if self._replays(strategy) and self.replay_weight != 1.0:
            return {"replay_weighting": "property weights"}
        return {}

    def _checkpoint_set(self, validation: list[LabelledStructure]) -> list[LabelledStructure]:
        """The structures mace-torch keeps the best epoch on (none: its own 10% holdout)."""
        if self.checkpoint_on == "holdout":
            return []
        return [v for v in validation if v.status == "ok"]

    def _member_data(
        self, ok: list[LabelledStructure], seed: int, taken: set | None = None
    ) -> tuple[list[LabelledStructure], list[float] | None]:
        """One member's structures (a subsample) and their loss weights (``member_weights``).

        ``taken``: the (structures, weights) of the members planned before this one. A member
        whose structures and weights equal an earlier member's would train into the same
        model (fine-tuning starts from the same foundation; a full batch has no order to
        shuffle: measured, two such members agreed to every digit and called every frame
        accurate), so it gets Bayesian-bootstrap weights instead (``dirichlet``).
        """
        rng = np.random.default_rng(seed)
        data = member_subset(ok, self.subsample, rng)
        weights = member_loss_weights(len(data), self.member_weights, rng)
        if taken is not None:
            key = (frozenset(d.structure_hash for d in data), None if weights is None
                   else tuple(weights))  # fmt: skip
            if key in taken:
                weights = member_loss_weights(len(data), "dirichlet", rng)
                key = (key[0], tuple(weights))
            taken.add(key)
        return data, weights

    def _train(
        self,
        foundation: str,
        data: list,
        seed: int,
        level: int,
        lr: float,
        device: str,
        name: str,
        valid: list | None = None,
        weights: list[float] | None = None,
        strategy: str | None = None,
    ) -> TrainedModel:
        """One mace-torch fine-tuning (retried while it fails, ``retrain_failed``).

        ``valid``: the structures whose loss chooses the epoch kept (``checkpoint_on:
        validation``); without them mace-torch holds out 10% of ``data``. ``weights``: a loss
        weight per structure of ``data`` (mace-torch's ``config_weight``). Retry ``k`` trains
        in ``NAME-retryK``; when every attempt failed the last one is kept (status warns).
        """
        strategy = strategy or self.strategy
        path = self._train_once(
            foundation, data, seed, lr, level, device, name, valid, weights, strategy
        )
        outcome = training_outcome(path.parent, path.stem, self.epochs)
        attempt = 0
        while attempt < self.retrain_failed and outcome is not None and outcome.never_improved:
            attempt += 1
            retry_seed, retry_lr = retry_settings(seed, lr, attempt)
            console.print(
                f"[yellow]fine-tune[/] {name} kept its first epoch of {outcome.epochs_run} (it "
                f"never improved): retry {attempt}/{self.retrain_failed} with seed {retry_seed}, "
                f"lr {retry_lr:g}"
            )
            path = self._train_once(
                foundation,
                data,
                retry_seed,
                retry_lr,
                level,
                device,
                f"{name}-retry{attempt}",
                valid,
                weights,
                strategy,
            )
            outcome = training_outcome(path.parent, path.stem, self.epochs)
        if outcome is not None:
            outcome.retrained = attempt
        return TrainedModel(path, outcome)

    def _train_once(
        self,
        foundation: str,
        data: list,
        seed: int,
        lr: float,
        level: int,
        device: str,
        name: str,
        valid: list | None,
        weights: list[float] | None,
        strategy: str = "frozen",
    ) -> Path:
        """One mace-torch fine-tuning run in ``./NAME``; the ``.model`` file it wrote."""
        settings = MaceTrainSettings(
            name=name,
            seed=seed,
            max_num_epochs=self.epochs,
            batch_size=min(self.batch_size, max(1, len(data) - 1)),
            lr=lr,
            e0s=self.e0s,
            energy_weight=self.energy_weight,
            forces_weight=self.forces_weight,
            stress_weight=self.stress_weight,
            loss=self.loss,
            huber_delta=self.huber_delta,
            default_dtype=self.default_dtype,
            device=device,
            foundation_model=foundation,
            freeze=level,
            keep_foundation_elements=self.keep_foundation_elements,
            extra=self._mace_extra(),
            **self._strategy_settings(foundation, strategy),
        )
        return run_mace_training(settings, data, Path.cwd() / name, valid=valid, weights=weights)

    def _strategy_settings(self, foundation: str, strategy: str) -> dict:
        """``MaceTrainSettings`` fields of ``strategy`` (none for ``frozen``)."""
        if strategy == "lora":
            return {"lora": True, "lora_rank": self.lora_rank, "lora_alpha": self.lora_alpha}
        if strategy != "multihead-replay":
            return {}
        return {
            "pt_train_file": replay_source(self.replay_file, foundation),
            "num_samples_pt": self.replay_samples,
            "weight_pt_head": self.replay_weight,
            "filter_type_pt": self.replay_filter,
        }

    def _parameters(self, foundation_model, level: int, strategy: str) -> tuple[int, int]:
        """(trainable, total) parameters of a fine-tune at ``level`` with ``strategy``."""
        if strategy == "lora":
            return lora_parameters(foundation_model, self.lora_rank, self.lora_alpha)
        return count_parameters(foundation_model, level)

    def _mace_extra(self) -> dict[str, str]:
        """mace-torch arguments set only when asked for (their defaults are mace-torch's)."""
        extra = {"patience": str(self.patience)} if self.patience else {}
        if self.scheduler_patience:
            extra["scheduler_patience"] = str(self.scheduler_patience)
        return extra

    def _sweep(
        self,
        foundation: str,
        foundation_model,
        ok: list[LabelledStructure],
        validation: list[LabelledStructure],
        iteration: int,
        device: str,
        checkpoint_set: list[LabelledStructure],
    ) -> tuple[int, float, str, list[FreezeSweepPoint], TrainedModel]:
        """Member 0 at every sweep level (at ``lr``, with ``strategy``), then at the best level at
        every other rate of ``lr_sweep``, then with every other strategy of ``strategy_sweep``
        at the best (level, rate); (level, rate, strategy, all results, best member-0 file)."""
        seed = self.seed + 1000 * iteration
        data, weights = self._member_data(ok, seed)
        points: list[FreezeSweepPoint] = []
        files: dict[tuple[int, float, str], TrainedModel] = {}

        def run(level: int, lr: float, strategy: str) -> None:
            trainable, _ = self._parameters(foundation_model, level, strategy)
            console.print(
                f"[bold]sweep[/] iteration {iteration}: {strategy} f{level}, lr {lr:g}, "
                f"{trainable:,} parameters trainable, {len(data)} structures"
            )
            name = f"sweep-f{level}" if lr == self.lr else f"sweep-f{level}-lr{lr:g}"
            name += "" if strategy == self.strategy else f"-{strategy}"
            trained = self._train(
                foundation, data, seed, level, lr, device, name, checkpoint_set, weights, strategy
            )
            calc = committee_calculator([trained.path], device=device, dtype=self.default_dtype)
            points.append(
                FreezeSweepPoint(
                    freeze_level=level,
                    trainable_parameters=trainable,
                    metrics=evaluate(calc, validation),
                    lr=lr,
                    strategy=strategy,
                )
            )
            files[level, lr, strategy] = trained

        def error(point: FreezeSweepPoint) -> float:
            return point.metrics.force_mae_mev_per_a

        for level in sorted(set(self.freeze_sweep)) or [self.freeze]:
            run(level, self.lr, self.strategy)
        level = min(points, key=error).freeze_level
        for lr in sorted(set(self.lr_sweep) - {self.lr}, reverse=True):
            run(level, lr, self.strategy)
        rate = min(points, key=error).lr
        for strategy in dict.fromkeys(self.strategy_sweep):
            if strategy != self.strategy:
                run(level, rate, strategy)
        best = min(points, key=error)
        best.chosen = True
        table = ", ".join(
            f"{p.strategy} f{p.freeze_level} lr {p.lr:g} {error(p):.1f}" for p in points
        )
        console.print(
            f"[bold]sweep[/] validation force MAE meV/Å: {table} → {best.strategy} "
            f"f{best.freeze_level}, lr {best.lr:g}"
        )
        key = (best.freeze_level, best.lr, best.strategy)
        return *key, points, files[key]
