"""Selection strategies: how a batch is filled from the frames left in the trust window.

One class per strategy name of ``frostline.choices.STRATEGIES`` (:data:`STRATEGY_CLASSES`), all
behind :class:`SelectionStrategy`: ``fill(pool)`` takes picks with ``pool.take`` until the cap
and marks the rest ``over budget``. ``frostline.select.batch`` prepares the pool (filters, trust
window, forced picks, strata, novelty) the same way for all of them.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from itertools import zip_longest
from typing import Any, ClassVar, Protocol

import numpy as np

from frostline.choices import STRATEGIES
from frostline.schemas import CandidateStructure


class Pool(Protocol):
    """What a strategy sees of a selection in progress (``frostline.select.batch``)."""

    candidates: Sequence[CandidateStructure]
    settings: Any  # SelectionSettings
    rng: np.random.Generator
    frames: list[int]  # the frames in play (in the window, not duplicates)
    forced: list[int]  # calibration and contact picks, taken first
    selected: list[int]
    novelty: list[float | None]
    desc: dict[int, tuple[np.ndarray, list[str]]]  # per-atom descriptors, if measured
    atom_d: dict[int, np.ndarray]
    quota: dict[Hashable, int]  # picks per stratum (empty: not stratified)
    left: dict[Hashable, int]  # quota left per stratum
    strata: Sequence[Hashable] | None

    def take(self, i: int) -> None: ...
    def open_to(self, frames: list[int]) -> list[int]: ...
    def after_pick(self, picked: int, remaining: list[int]) -> None: ...
    def over_budget(self, frames: list[int]) -> None: ...


def label_cost(n_atoms: int, exponent: float, reference_atoms: int = 16) -> float:
    """Relative oracle cost of a cell (1 at ``reference_atoms``; DFT grows ~N^1..3)."""
    return (max(n_atoms, 1) / reference_atoms) ** exponent


class SelectionStrategy:
    """Fills the batch from ``pool.frames`` (``fill``); class attributes say what it needs."""

    name: ClassVar[str]
    uses_committee: ClassVar[bool] = True
    """False: the trust window, forced picks and strata are ignored (every plausible frame)."""
    scored: ClassVar[bool] = False
    """Ranks by uncertainty per cost x novelty (descriptors measured when a model is given)."""
    needs_descriptor: ClassVar[bool] = False

    def fill(self, pool: Pool) -> None:
        raise NotImplementedError


class DpgenStrategy(SelectionStrategy):
    """DP-GEN: the forced picks, then uniformly at random among the frames in the window."""

    name = "dpgen"

    def fill(self, pool: Pool) -> None:
        rest = [i for i in pool.frames if i not in pool.forced]
        for i in pool.forced:
            pool.take(i)
        remaining = [rest[k] for k in pool.rng.permutation(len(rest))]
        while remaining and len(pool.selected) < pool.settings.cap:
            best = pool.open_to(remaining)[0]
            remaining.remove(best)
            pool.take(best)
        pool.over_budget(remaining)


class RandomStrategy(DpgenStrategy):
    """Baseline: ignores the committee, uniformly at random among all frames past the filters."""

    name = "random"
    uses_committee = False


class DiverseStrategy(SelectionStrategy):
    """Greedy by uncertainty per unit cost times novelty (capped at 1) against the labelled set
    plus the picks so far, so near-identical frames of one trajectory are not all taken."""

    name = "diverse"
    scored = True

    def fill(self, pool: Pool) -> None:
        cost = pool.settings.cost_exponent
        priority = {
            i: (pool.candidates[i].max_force_std or 0.0)
            / label_cost(len(pool.candidates[i].structure["sites"]), cost)
            for i in pool.frames
        }
        remaining = list(pool.frames)
        queue = list(pool.forced)  # calibration picks first, then the best by score
        while remaining and len(pool.selected) < pool.settings.cap:
            queue = self.queue(pool, queue, remaining, priority)
            if queue:
                best = queue.pop(0)
                if best not in remaining:  # made a duplicate by an earlier pick
                    continue
                if best not in pool.forced and best not in pool.open_to(remaining):  # full
                    continue
            else:
                eligible = pool.open_to(remaining)
                score = [
                    priority[i] * (min(pool.novelty[i], 1.0) if i in pool.atom_d else 1.0)
                    for i in eligible
                ]
                best = eligible[self.pick(np.asarray(score), pool)]
            remaining.remove(best)
            pool.take(best)
            pool.after_pick(best, remaining)
        pool.over_budget(remaining)

    def queue(
        self, pool: Pool, queue: list[int], remaining: list[int], priority: dict[int, float]
    ) -> list[int]:
        """Frames to take in order before scoring (the forced picks)."""
        return queue

    def pick(self, score: np.ndarray, pool: Pool) -> int:
        """Index of the next pick among the eligible frames: the best score."""
        return int(np.argmax(score))


class StochasticStrategy(DiverseStrategy):
    """Diverse's score, each pick drawn with probability proportional to
    ``score ** sampling_power`` (power-law stochastic batch acquisition, Kirsch et al. 2023:
    top-k of a noisy score fills a batch with the tail of one region; sampling keeps the batch
    spread over the window)."""

    name = "stochastic"

    def pick(self, score: np.ndarray, pool: Pool) -> int:
        weight = np.clip(score, 0.0, None) ** pool.settings.sampling_power
        if not np.isfinite(weight).all() or weight.sum() <= 0:
            return int(pool.rng.integers(len(score)))
        return int(pool.rng.choice(len(score), p=weight / weight.sum()))


class RepresentativeStrategy(DiverseStrategy):
    """k-means of the window's frames (descriptors) weighted by diverse's score (power
    ``sampling_power``; k = the picks left), the frame nearest each centre, heaviest cluster
    first (Zhdanov 2019, "Diverse mini-batch active learning": a batch that covers where the
    uncertain frames are, not their most extreme members). Needs a descriptor model."""

    name = "representative"
    needs_descriptor = True

    def __init__(self) -> None:
        self.clustered = False

    def queue(
        self, pool: Pool, queue: list[int], remaining: list[int], priority: dict[int, float]
    ) -> list[int]:
        if queue or self.clustered:
            return queue
        self.clustered = True  # after the calibration picks: one centre per pick left
        weights = {i: priority[i] * min(pool.novelty[i], 1.0) for i in remaining}
        groups = (
            [([i for i in remaining if pool.strata[i] == s], k) for s, k in pool.left.items()]
            if pool.quota
            else [(remaining, pool.settings.cap - len(pool.selected))]
        )
        power = pool.settings.sampling_power
        orders = [
            representative_order(frames, pool.desc, weights, k, power, pool.rng)
            for frames, k in groups
        ]
        return [i for depth in zip_longest(*orders) for i in depth if i is not None]


STRATEGY_CLASSES: dict[str, type[SelectionStrategy]] = {
    cls.name: cls
    for cls in (
        DiverseStrategy,
        StochasticStrategy,
        RepresentativeStrategy,
        DpgenStrategy,
        RandomStrategy,
    )
}
"""Strategy name -> class (the names are ``frostline.choices.STRATEGIES``)."""
assert tuple(STRATEGY_CLASSES) == STRATEGIES


def strategy_class(name: str) -> type[SelectionStrategy]:
    """The class of strategy ``name``; ValueError naming the allowed ones."""
    if name not in STRATEGY_CLASSES:
        raise ValueError(f"unknown selection strategy {name!r} (one of {STRATEGIES})")
    return STRATEGY_CLASSES[name]


def frame_features(
    desc: dict[int, tuple[np.ndarray, list[str]]], frames: Sequence[int]
) -> np.ndarray:
    """One row per frame: per element, mean and spread of its atoms' descriptors.

    Each element's block is divided by the RMS descriptor size of that element over
    ``frames`` (so every element weighs alike, whatever its count); an element a frame lacks
    gives zeros.
    """
    elements = sorted({s for i in frames for s in desc[i][1]})
    rows: list[list[np.ndarray]] = [[] for _ in frames]
    for el in elements:
        atoms_of = [desc[i][0][np.asarray(desc[i][1]) == el] for i in frames]
        stacked = np.concatenate([a for a in atoms_of if len(a)])
        scale = float(np.sqrt(np.mean(stacked * stacked))) or 1.0
        zeros = np.zeros(stacked.shape[1])
        for row, a in zip(rows, atoms_of, strict=True):
            row += [a.mean(0) / scale, a.std(0) / scale] if len(a) else [zeros, zeros]
    return np.asarray([np.concatenate(r) for r in rows])


def representative_order(
    frames: Sequence[int],
    desc: dict[int, tuple[np.ndarray, list[str]]],
    weights: dict[int, float],
    k: int,
    power: float,
    rng: np.random.Generator,
) -> list[int]:
    """Frames to pick, in order: weighted k-means centres' nearest members, heaviest first.

    ``weights`` (the uncertainty score) raised to ``power`` weigh the k-means (scikit-learn's
    ``KMeans`` with ``sample_weight``); each cluster gives its member nearest the centre, then
    (if the novelty gate removes picks) its next nearest, round by round.
    """
    from sklearn.cluster import KMeans

    frames = list(frames)
    if k <= 0 or not frames:
        return []
    w = np.asarray([max(weights[i], 0.0) for i in frames], dtype=float) ** power
    if not np.isfinite(w).all() or w.sum() <= 0:
        w = np.ones(len(frames))
    x = frame_features(desc, frames)
    k = min(k, len(frames), len(np.unique(x, axis=0)))
    seed = int(rng.integers(2**31 - 1))
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x, sample_weight=w)
    dist = np.linalg.norm(x - km.cluster_centers_[km.labels_], axis=1)
    clusters = sorted(range(k), key=lambda c: -w[km.labels_ == c].sum())
    members = {c: sorted(np.flatnonzero(km.labels_ == c), key=lambda j: dist[j]) for c in clusters}
    order: list[int] = []
    for depth in range(max(len(m) for m in members.values())):
        order += [frames[m[depth]] for c in clusters if depth < len(m := members[c])]
    return order
