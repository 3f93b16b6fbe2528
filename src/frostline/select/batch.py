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

:func:`select_batch` applies the rules of a :class:`SelectionSettings` in order; the strategy
(``frostline.select.strategies``, one class per name) fills the batch. :func:`plan_batch` is the
same with the settings as keyword arguments.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

import numpy as np
from ase import Atoms
from pymatgen.io.ase import AseAtomsAdaptor

from frostline.choices import ContactDeficit, Strategy
from frostline.schemas import CandidateStructure, as_structure
from frostline.select.contacts import ContactIndex, shortest_contacts
from frostline.select.filters import SanityLimits, candidate_sanity
from frostline.select.novelty import NoveltyIndex
from frostline.select.strategies import SelectionStrategy, strategy_class


class Fate(StrEnum):
    FAILED_FILTER = "failed filter"
    TOO_UNCERTAIN = "too uncertain"
    ACCURATE = "accurate"
    UNCERTAIN = "uncertain"  # transient: resolved into one of the fates below
    DUPLICATE = "duplicate"
    SELECTED = "selected"
    OVER_BUDGET = "over budget"
    NOT_NEEDED = "not needed"


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


def _atoms(candidate: CandidateStructure) -> Atoms:
    return AseAtomsAdaptor.get_atoms(as_structure(candidate.structure))


@dataclass(frozen=True)
class SelectionSettings:
    """The rules of one selection (everything but the frames and the labelled set).

    ``strategy``: a name of ``frostline.choices.STRATEGIES`` (``frostline.select.strategies``
    describes each); ``cap``: picks at most. A ``novelty_threshold`` of 0 disables the gate.

    ``calibration_picks``: that many of the cap are drawn uniformly at random from every frame
    that passes the filters and is below ``trust_hi`` (accurate ones included) before the
    strategy fills the rest; they pass the novelty gate like any pick. The frames a strategy
    picks are a biased, high-std sample; these keep the std → error calibration honest.

    ``contact_picks``: then up to that many of the cap go to frames below ``trust_hi`` (accurate
    ones included) whose shortest contact of some element pair is more than ``contact_margin``
    shorter than that pair's shortest contact in the trained structures (validation labels
    constrain nothing) and in the picks before it, in Å (``contact_deficit="absolute"``) or as
    a fraction of the labelled contact (``"relative"``), the largest deficit first
    (``frostline.select.contacts``: the committee's spread misses the short-range wall its
    members share). They pass the novelty gate like any pick.

    ``sampling_power``: the exponent of the score in ``stochastic`` and ``representative``;
    ``cost_exponent``: label cost ~ n_atoms^x in the score.
    """

    trust_lo: float
    trust_hi: float
    limits: SanityLimits
    cap: int
    strategy: Strategy = "diverse"
    novelty_threshold: float = 0.0
    cost_exponent: float = 0.0
    calibration_picks: int = 0
    sampling_power: float = 1.0
    contact_picks: int = 0
    contact_margin: float = 0.02
    contact_deficit: ContactDeficit = "absolute"


class _Pool:
    """One selection in progress: every frame's fate, the forced picks, quotas and novelty."""

    def __init__(
        self,
        candidates: Sequence[CandidateStructure],
        settings: SelectionSettings,
        strategy: SelectionStrategy,
        rng: np.random.Generator,
        strata: Sequence[Hashable] | None,
    ) -> None:
        self.candidates, self.settings, self.rng, self.strata = candidates, settings, rng, strata
        self.reasons = [candidate_sanity(c, settings.limits) for c in candidates]
        lo, hi = settings.trust_lo, settings.trust_hi
        self.fates = [
            Fate.FAILED_FILTER
            if r
            else (
                trust_fate(c.max_force_std, lo, hi) if strategy.uses_committee else Fate.UNCERTAIN
            )
            for c, r in zip(candidates, self.reasons, strict=True)
        ]
        self.n_accurate = self.fates.count(Fate.ACCURATE)
        self.novelty: list[float | None] = [None] * len(candidates)
        self.forced: list[int] = []
        self.contact: list[int] = []
        self.was_accurate: set[int] = set()
        self.quota: dict[Hashable, int] = {}
        self.left: dict[Hashable, int] = {}
        self.topped: set[int] = set()
        self.frames: list[int] = []
        self.selected: list[int] = []
        self.desc: dict[int, tuple[np.ndarray, list[str]]] = {}
        self.atom_d: dict[int, np.ndarray] = {}
        self.index = NoveltyIndex()
        self.use_gate = False

    def plausible(self) -> list[int]:
        return [i for i, f in enumerate(self.fates) if f in (Fate.ACCURATE, Fate.UNCERTAIN)]

    def force_picks(self, plausible: list[int], trained: Sequence[Atoms]) -> None:
        """Calibration picks (at random), then contact picks; both moved into the window."""
        s = self.settings
        if s.calibration_picks > 0 and s.cap > 0:
            k = min(s.calibration_picks, s.cap, len(plausible))
            drawn = self.rng.choice(len(plausible), size=k, replace=False)
            self.forced = [plausible[j] for j in drawn]
        if s.contact_picks > 0 and s.cap > len(self.forced):
            self.contact = _contact_order(
                self.candidates,
                [i for i in plausible if i not in self.forced],
                trained,
                min(s.contact_picks, s.cap - len(self.forced)),
                s.contact_margin,
                s.contact_deficit,
            )
            self.forced += self.contact
        self.was_accurate = {i for i in self.forced if self.fates[i] == Fate.ACCURATE}
        for i in self.forced:
            self.fates[i] = Fate.UNCERTAIN

    def share_among_strata(self, plausible: list[int]) -> None:
        """Quota per stratum; a stratum with fewer frames in its window is topped up."""
        strata = self.strata
        if len(strata) != len(self.candidates):
            raise ValueError(f"strata has {len(strata)} keys for {len(self.candidates)} candidates")
        quota = self.quota = stratum_quotas([strata[i] for i in plausible], self.settings.cap)
        in_window = Counter(strata[i] for i, f in enumerate(self.fates) if f == Fate.UNCERTAIN)
        self.topped = {
            i
            for i in plausible
            if self.fates[i] == Fate.ACCURATE and in_window[strata[i]] < quota[strata[i]]
        }
        for i in self.topped:
            self.fates[i] = Fate.UNCERTAIN
        self.was_accurate |= self.topped

    def measure_novelty(
        self, labelled: Sequence[Atoms], descriptor: Callable[[Atoms], np.ndarray], gate: bool
    ) -> None:
        """Every frame's novelty against the labelled set; the gate marks duplicates."""
        for atoms in labelled:
            self.index.add(descriptor(atoms), atoms.get_chemical_symbols())
        for i in self.frames:
            atoms = _atoms(self.candidates[i])
            self.desc[i] = (descriptor(atoms), atoms.get_chemical_symbols())
            self.atom_d[i] = self.index.atom_distances(*self.desc[i])
            self.novelty[i] = float(self.atom_d[i].max(initial=0.0))
        if gate:
            self.use_gate = True
            for i in self.frames:
                if self.novelty[i] < self.settings.novelty_threshold:
                    self.fates[i] = Fate.DUPLICATE
            self.frames = [i for i in self.frames if self.fates[i] != Fate.DUPLICATE]
            self.forced = [i for i in self.forced if self.fates[i] != Fate.DUPLICATE]

    def take(self, i: int) -> None:
        self.selected.append(i)
        self.fates[i] = Fate.SELECTED
        if self.quota:
            self.left[self.strata[i]] -= 1

    def open_to(self, frames: list[int]) -> list[int]:
        """The frames whose stratum has quota left (all of them when none has)."""
        if not self.quota:
            return frames
        return [i for i in frames if self.left[self.strata[i]] > 0] or frames

    def after_pick(self, picked: int, remaining: list[int]) -> None:
        """A pick counts as labelled for the rest of the batch (novelty, duplicates)."""
        if picked not in self.desc:
            return
        _update_distances(self.index, self.desc, self.atom_d, self.novelty, picked, remaining)
        if self.use_gate:
            threshold = self.settings.novelty_threshold
            for i in [i for i in remaining if self.novelty[i] < threshold]:
                self.fates[i] = Fate.DUPLICATE
                remaining.remove(i)

    def over_budget(self, frames: list[int]) -> None:
        for i in frames:
            self.fates[i] = Fate.OVER_BUDGET

    def stopped(self) -> BatchPlan:
        """The campaign stops: nothing selected (forced picks the window called accurate stay)."""
        for i in self.frames:
            self.fates[i] = Fate.ACCURATE if i in self.was_accurate else Fate.NOT_NEEDED
        return BatchPlan(self.fates, self.reasons, self.novelty, n_accurate=self.n_accurate)

    def plan(self) -> BatchPlan:
        for i in self.topped:  # a top-up the batch did not need stays accurate
            if self.fates[i] == Fate.OVER_BUDGET:
                self.fates[i] = Fate.ACCURATE
        fates = self.fates
        calibration = [
            i for i in self.forced if fates[i] == Fate.SELECTED and i not in self.contact
        ]
        return BatchPlan(
            fates,
            self.reasons,
            self.novelty,
            sorted(self.selected),
            sorted(calibration),
            self.n_accurate,
            sorted(i for i in self.contact if fates[i] == Fate.SELECTED),
            sorted(i for i in self.topped if fates[i] == Fate.SELECTED),
            self.quota,
        )


def select_batch(
    candidates: Sequence[CandidateStructure],
    settings: SelectionSettings,
    rng: np.random.Generator | None = None,
    *,
    labelled: Sequence[Atoms] = (),
    descriptor: Callable[[Atoms], np.ndarray] | None = None,
    stop: Callable[[int, int], bool] | None = None,
    trained: Sequence[Atoms] = (),
    strata: Sequence[Hashable] | None = None,
) -> BatchPlan:
    """Apply the rules in order (filters, trust window, forced picks, strata, novelty, budget).

    ``labelled``: the structures labelled so far (novelty); ``descriptor``: per-atom
    descriptors of a structure (novelty gate, scored strategies); ``trained``: the structures
    the committee was trained on (contact picks). ``stop(n_accurate, n_selectable)`` says
    whether the campaign stops (then nothing is selected).

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
    strategy = strategy_class(settings.strategy)()
    if strategy.needs_descriptor and descriptor is None:
        raise ValueError(f"selection strategy {settings.strategy!r} needs a descriptor model")
    pool = _Pool(candidates, settings, strategy, rng or np.random.default_rng(0), strata)
    plausible = pool.plausible()
    if strategy.uses_committee:
        pool.force_picks(plausible, trained)
        if strata is not None and settings.cap > 0:
            pool.share_among_strata(plausible)
    pool.left = dict(pool.quota)
    pool.frames = [i for i, f in enumerate(pool.fates) if f == Fate.UNCERTAIN]
    gate = descriptor is not None and settings.novelty_threshold > 0
    if gate or (descriptor is not None and strategy.scored):
        pool.measure_novelty(labelled, descriptor, gate)
    if stop is not None and stop(pool.n_accurate, len(pool.frames)):
        return pool.stopped()
    strategy.fill(pool)
    return pool.plan()


def plan_batch(
    candidates: Sequence[CandidateStructure],
    trust_lo: float,
    trust_hi: float,
    limits: SanityLimits,
    cap: int,
    strategy: Strategy = "diverse",
    rng: np.random.Generator | None = None,
    **options: Any,
) -> BatchPlan:
    """:func:`select_batch` with the settings as arguments: ``options`` are the other fields of
    :class:`SelectionSettings` (e.g. ``novelty_threshold``, ``calibration_picks``) and
    :func:`select_batch`'s keyword arguments (``labelled``, ``descriptor``, ``stop``, ...)."""
    names = {f.name for f in fields(SelectionSettings)}
    rules = {k: v for k, v in options.items() if k in names}
    inputs = {k: v for k, v in options.items() if k not in names}
    settings = SelectionSettings(trust_lo, trust_hi, limits, cap, strategy, **rules)
    return select_batch(candidates, settings, rng, **inputs)


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
