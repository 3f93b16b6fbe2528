"""Choosing the batch to label from explored frames: filters, trust window, novelty, budget.

Every candidate gets exactly one fate:

- ``failed filter``: rejected by a sanity filter before any oracle call (reason recorded);
- ``too uncertain``: committee std at or above ``trust_hi`` (DP-GEN's "failed" frames);
- ``accurate``: committee std below ``trust_lo``;
- ``duplicate``: too close (novelty gate) to a labelled structure or to one already picked;
- ``selected``: sent to the oracle (``BatchPlan.calibration`` marks the picks drawn at random
  from all plausible frames, whatever their std, so calibration also sees typical frames;
  ``BatchPlan.contact`` the frames bought for a contact shorter than any training label has);
- ``over budget``: worth labelling but beyond the per-iteration cap or the total budget;
- ``not needed``: worth labelling, but the campaign stops this iteration.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import zip_longest

import numpy as np
from ase import Atoms
from pymatgen.io.ase import AseAtomsAdaptor

from frostline.schemas import CandidateStructure, as_structure
from frostline.select.contacts import ContactIndex, shortest_contacts
from frostline.select.filters import SanityLimits, candidate_sanity
from frostline.select.novelty import NoveltyIndex


class Fate(StrEnum):
    FAILED_FILTER = "failed filter"
    TOO_UNCERTAIN = "too uncertain"
    ACCURATE = "accurate"
    UNCERTAIN = "uncertain"  # transient: resolved into one of the fates below
    DUPLICATE = "duplicate"
    SELECTED = "selected"
    OVER_BUDGET = "over budget"
    NOT_NEEDED = "not needed"


STRATEGIES = ("diverse", "stochastic", "representative", "dpgen", "random")
# strategies that rank by uncertainty per cost x novelty
SCORED = ("diverse", "stochastic", "representative")


@dataclass
class BatchPlan:
    """Outcome of the selection rules for one explored pool."""

    fates: list[Fate]
    reasons: list[str | None]
    novelty: list[float | None]
    selected: list[int] = field(default_factory=list)
    calibration: list[int] = field(default_factory=list)
    n_accurate: int = 0  # below trust_lo, calibration picks among them included
    contact: list[int] = field(default_factory=list)
    topped_up: list[int] = field(default_factory=list)  # picks the window called accurate
    quota: dict[Hashable, int] = field(default_factory=dict)  # picks per stratum, if stratified

    def counts(self) -> dict[str, int]:
        return dict(Counter(str(f) for f in self.fates))

    def reason_counts(self) -> dict[str, int]:
        return dict(Counter(r.split(":")[0] for r in self.reasons if r))


def trust_fate(std: float | None, trust_lo: float, trust_hi: float) -> Fate:
    """DP-GEN's trust window: accurate (< lo), uncertain ([lo, hi)), too uncertain (>= hi)."""
    if std is None or not np.isfinite(std) or std >= trust_hi:
        return Fate.TOO_UNCERTAIN
    return Fate.ACCURATE if std < trust_lo else Fate.UNCERTAIN


def label_cost(n_atoms: int, exponent: float, reference_atoms: int = 16) -> float:
    """Relative oracle cost of a cell (1 at ``reference_atoms``; DFT grows ~N^1..3)."""
    return (max(n_atoms, 1) / reference_atoms) ** exponent


def _atoms(candidate: CandidateStructure) -> Atoms:
    return AseAtomsAdaptor.get_atoms(as_structure(candidate.structure))


def plan_batch(
    candidates: Sequence[CandidateStructure],
    trust_lo: float,
    trust_hi: float,
    limits: SanityLimits,
    cap: int,
    strategy: str = "diverse",
    rng: np.random.Generator | None = None,
    labelled: Sequence[Atoms] = (),
    descriptor: Callable[[Atoms], np.ndarray] | None = None,
    novelty_threshold: float = 0.0,
    cost_exponent: float = 0.0,
    stop: Callable[[int, int], bool] | None = None,
    calibration_picks: int = 0,
    sampling_power: float = 1.0,
    contact_picks: int = 0,
    contact_margin: float = 0.02,
    trained: Sequence[Atoms] = (),
    contact_deficit: str = "absolute",
    strata: Sequence[Hashable] | None = None,
) -> BatchPlan:
    """Apply the rules in order (filters, trust window, novelty vs labelled, budget).

    ``strategy``: ``diverse`` picks greedily by uncertainty per unit cost times novelty
    (capped at 1) against the labelled set plus the picks so far, so near-identical frames of
    one trajectory are not all taken; ``dpgen`` picks uniformly at random among frames in the
    trust window; ``stochastic`` uses diverse's score, but draws each pick at random with
    probability proportional to ``score ** sampling_power`` (power-law stochastic batch
    acquisition, Kirsch et al. 2023: top-k of a noisy score fills a batch with the tail of one
    region; sampling keeps the batch spread over the window); ``representative`` clusters the
    frames in the window by their descriptors with k-means weighted by that score (power
    ``sampling_power``; k = the picks left) and takes the frame nearest each centre, heaviest
    cluster first (Zhdanov 2019, "Diverse mini-batch active learning": a batch that covers where
    the uncertain frames are, not their most extreme members; needs ``descriptor``); ``random``
    ignores the committee and picks uniformly among all frames that pass the filters (a
    baseline).
    ``stop(n_accurate, n_selectable)`` says whether the campaign stops (then nothing is
    selected). A novelty threshold of 0 disables the gate.

    ``calibration_picks``: that many of the cap are drawn uniformly at random from every frame
    that passes the filters and is below ``trust_hi`` (accurate ones included) before the
    strategy fills the rest; they pass the novelty gate like any pick. The frames a strategy
    picks are a biased, high-std sample; these keep the std → error calibration honest.

    ``contact_picks``: then up to that many of the cap go to frames below ``trust_hi`` (accurate
    ones included) whose shortest contact of some element pair is more than ``contact_margin``
    shorter than that pair's shortest contact in ``trained`` (the structures the committee
    was trained on; validation labels constrain nothing) and in the picks before it, in Å
    (``contact_deficit="absolute"``) or as a fraction of the labelled contact (``"relative"``),
    the largest deficit first (``frostline.select.contacts``: the committee's spread misses the
    short-range wall its members share). They pass the novelty gate like any pick.

    ``strata`` (one key per candidate, e.g. the MD temperature that explored it) shares the cap
    among the strata in proportion to their plausible frames (filters passed, below
    ``trust_hi``; largest remainders), so the batch follows the explored distribution instead
    of piling into the stratum with the largest std; the strategy ranks within each stratum.
    A stratum whose window holds fewer frames than its quota is topped up with its own
    "accurate" frames (ranked like the rest; ``BatchPlan.topped_up``): one window for all
    strata calls most frames of a calm stratum accurate although its true errors are not small
    (measured in the selection benchmark). Forced picks count toward their stratum; quota a
    stratum cannot fill (duplicates) goes to the others. Not used by ``random``.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown selection strategy {strategy!r} (one of {STRATEGIES})")
    if strategy == "representative" and descriptor is None:
        raise ValueError("selection strategy 'representative' needs a descriptor model")
    rng = rng or np.random.default_rng(0)
    n = len(candidates)
    reasons: list[str | None] = [candidate_sanity(c, limits) for c in candidates]
    fates = [
        Fate.FAILED_FILTER if r else trust_fate(c.max_force_std, trust_lo, trust_hi)
        for c, r in zip(candidates, reasons, strict=True)
    ]
    if strategy == "random":
        fates = [Fate.FAILED_FILTER if r else Fate.UNCERTAIN for r in reasons]
    n_accurate = fates.count(Fate.ACCURATE)
    forced: list[int] = []
    plausible = [i for i in range(n) if fates[i] in (Fate.ACCURATE, Fate.UNCERTAIN)]
    if calibration_picks > 0 and strategy != "random" and cap > 0:
        k = min(calibration_picks, cap, len(plausible))
        forced = [plausible[j] for j in rng.choice(len(plausible), size=k, replace=False)]
    contact: list[int] = []
    if contact_picks > 0 and strategy != "random" and cap > len(forced):
        contact = _contact_order(
            candidates,
            [i for i in plausible if i not in forced],
            trained,
            min(contact_picks, cap - len(forced)),
            contact_margin,
            contact_deficit,
        )
        forced += contact
    was_accurate = {i for i in forced if fates[i] == Fate.ACCURATE}
    for i in forced:
        fates[i] = Fate.UNCERTAIN
    quota: dict[Hashable, int] = {}
    topped: set[int] = set()
    if strata is not None and strategy != "random" and cap > 0:
        if len(strata) != n:
            raise ValueError(f"strata has {len(strata)} keys for {n} candidates")
        quota = stratum_quotas([strata[i] for i in plausible], cap)
        in_window = Counter(strata[i] for i in range(n) if fates[i] == Fate.UNCERTAIN)
        topped = {
            i
            for i in plausible
            if fates[i] == Fate.ACCURATE and in_window[strata[i]] < quota[strata[i]]
        }
        for i in topped:
            fates[i] = Fate.UNCERTAIN
        was_accurate |= topped
    left = dict(quota)
    novelty: list[float | None] = [None] * n
    pool = [i for i in range(n) if fates[i] == Fate.UNCERTAIN]

    use_gate = descriptor is not None and novelty_threshold > 0
    atom_d: dict[int, np.ndarray] = {}
    desc: dict[int, tuple[np.ndarray, list[str]]] = {}
    index = NoveltyIndex()
    if use_gate or (descriptor is not None and strategy in SCORED):
        for atoms in labelled:
            index.add(descriptor(atoms), atoms.get_chemical_symbols())
        for i in pool:
            atoms = _atoms(candidates[i])
            desc[i] = (descriptor(atoms), atoms.get_chemical_symbols())
            atom_d[i] = index.atom_distances(*desc[i])
            novelty[i] = float(atom_d[i].max(initial=0.0))
        if use_gate:
            for i in pool:
                if novelty[i] < novelty_threshold:
                    fates[i] = Fate.DUPLICATE
            pool = [i for i in pool if fates[i] != Fate.DUPLICATE]
            forced = [i for i in forced if fates[i] != Fate.DUPLICATE]

    if stop is not None and stop(n_accurate, len(pool)):
        for i in pool:  # a calibration pick the window called accurate stays accurate
            fates[i] = Fate.ACCURATE if i in was_accurate else Fate.NOT_NEEDED
        return BatchPlan(fates, reasons, novelty, n_accurate=n_accurate)

    selected: list[int] = []

    def take(i: int) -> None:
        selected.append(i)
        fates[i] = Fate.SELECTED
        if quota:
            left[strata[i]] -= 1

    def open_to(frames: list[int]) -> list[int]:
        """The frames whose stratum has quota left (all of them when none has)."""
        if not quota:
            return frames
        return [i for i in frames if left[strata[i]] > 0] or frames

    if strategy in ("dpgen", "random"):
        rest = [i for i in pool if i not in forced]
        for i in forced:
            take(i)
        remaining = [rest[k] for k in rng.permutation(len(rest))]
        while remaining and len(selected) < cap:
            best = open_to(remaining)[0]
            remaining.remove(best)
            take(best)
        for i in remaining:
            fates[i] = Fate.OVER_BUDGET
    else:
        priority = {
            i: (candidates[i].max_force_std or 0.0)
            / label_cost(len(candidates[i].structure["sites"]), cost_exponent)
            for i in pool
        }
        remaining = list(pool)
        queue = list(forced)  # calibration picks first, then the best by score
        clustered = False
        while remaining and len(selected) < cap:
            if not queue and strategy == "representative" and not clustered:
                clustered = True  # after the calibration picks: one centre per pick left
                weights = {i: priority[i] * min(novelty[i], 1.0) for i in remaining}
                groups = (
                    [([i for i in remaining if strata[i] == s], k) for s, k in left.items()]
                    if quota
                    else [(remaining, cap - len(selected))]
                )
                orders = [
                    representative_order(frames, desc, weights, k, sampling_power, rng)
                    for frames, k in groups
                ]
                queue = [i for depth in zip_longest(*orders) for i in depth if i is not None]
            if queue:
                best = queue.pop(0)
                if best not in remaining:  # made a duplicate by an earlier pick
                    continue
                if best not in forced and best not in open_to(remaining):  # stratum full
                    continue
                remaining.remove(best)
            else:
                eligible = open_to(remaining)
                score = [
                    priority[i] * (min(novelty[i], 1.0) if i in atom_d else 1.0) for i in eligible
                ]
                best = eligible[_pick(np.asarray(score), strategy, sampling_power, rng)]
                remaining.remove(best)
            take(best)
            if best in desc:  # picks count as labelled for the rest of the batch
                _update_distances(index, desc, atom_d, novelty, best, remaining)
                if use_gate:
                    for i in [i for i in remaining if novelty[i] < novelty_threshold]:
                        fates[i] = Fate.DUPLICATE
                        remaining.remove(i)
        for i in remaining:
            fates[i] = Fate.OVER_BUDGET
    for i in topped:  # a top-up the batch did not need stays accurate
        if fates[i] == Fate.OVER_BUDGET:
            fates[i] = Fate.ACCURATE
    calibration = sorted(i for i in forced if fates[i] == Fate.SELECTED and i not in contact)
    contact = sorted(i for i in contact if fates[i] == Fate.SELECTED)
    topped_up = sorted(i for i in topped if fates[i] == Fate.SELECTED)
    return BatchPlan(
        fates,
        reasons,
        novelty,
        sorted(selected),
        calibration,
        n_accurate,
        contact,
        topped_up,
        quota,
    )


def stratum_quotas(keys: Sequence[Hashable], cap: int) -> dict[Hashable, int]:
    """``cap`` picks shared among the strata in ``keys`` in proportion to their counts.

    Hamilton's largest-remainder method (ties to the larger stratum, then first seen), so the
    quotas sum to ``min(cap, len(keys))`` and no stratum gets more picks than frames.
    """
    counts = Counter(keys)
    total = sum(counts.values())
    if total == 0:
        return {}
    cap = min(cap, total)
    exact = {k: cap * c / total for k, c in counts.items()}
    quota = {k: int(x) for k, x in exact.items()}  # floor: x >= 0
    order = sorted(counts, key=lambda k: (-(exact[k] - quota[k]), -counts[k]))
    for k in order[: cap - sum(quota.values())]:
        quota[k] += 1
    return quota


def _contact_order(
    candidates: Sequence[CandidateStructure],
    eligible: list[int],
    trained: Sequence[Atoms],
    k: int,
    margin: float,
    mode: str = "absolute",
) -> list[int]:
    """Up to ``k`` frames with the largest contact deficit (> ``margin``), each pick counted."""
    index = ContactIndex(trained)
    contacts = {i: shortest_contacts(_atoms(candidates[i]), index.cutoff) for i in eligible}
    picks: list[int] = []
    while len(picks) < k:
        deficits = {i: index.deficit(c, mode) for i, c in contacts.items() if i not in picks}
        best = max(deficits, key=deficits.get, default=None)
        if best is None or deficits[best] <= margin:
            break
        picks.append(best)
        index.add(contacts[best])
    return picks


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


def _pick(score: np.ndarray, strategy: str, power: float, rng: np.random.Generator) -> int:
    """Index of the next pick: the best score, or (``stochastic``) drawn ∝ score**power."""
    if strategy != "stochastic":
        return int(np.argmax(score))
    weight = np.clip(score, 0.0, None) ** power
    if not np.isfinite(weight).all() or weight.sum() <= 0:
        return int(rng.integers(len(score)))
    return int(rng.choice(len(score), p=weight / weight.sum()))


def _update_distances(
    index: NoveltyIndex,
    desc: dict[int, tuple[np.ndarray, list[str]]],
    atom_d: dict[int, np.ndarray],
    novelty: list[float | None],
    picked: int,
    remaining: list[int],
) -> None:
    """Lower the per-atom distances of ``remaining`` by the environments of ``picked``."""
    for i in remaining:
        atom_d[i] = np.minimum(atom_d[i], index.nearest_in(*desc[i], *desc[picked]))
        novelty[i] = float(atom_d[i].max(initial=0.0))
    index.add(*desc[picked])
