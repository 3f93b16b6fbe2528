"""Forgetting: what a fine-tuned model lost of what its foundation knew.

Two measurements, both against the foundation itself (and the oracle where it is cheap):

- the force MAE on a held-out slice of the foundation's domain (for the shipped mini
  foundations: fresh CHGNet-PBE-labelled cells of their pretraining generator,
  ``frostline.finetune.replay.HELDOUT_FILE``), after / before fine-tuning, on the frames whose
  elements the fine-tuned model has;
- for every pure element of the campaign with a cubic ASE reference state (fcc, bcc): the bulk
  lattice constant and bulk modulus from an equation-of-state fit (Birch-Murnaghan, ±3 %
  strain), compared with the foundation's and, when the oracle is a cheap ASE calculator,
  with the oracle's; and a repulsive-wall probe, the bulk squeezed from 0.95x its well down to
  0.75x the reference lattice constant, which must lie above the well all the way (a fine-tune
  that removed the short-range repulsion lets MD collapse even when its lattice constant looks
  sane);
- for every pair of the campaign's elements (H-H, Cu-H, ...): a pair-repulsion probe, the
  isolated dimer at 0.6x the sum of covalent radii, which must lie above the dimer at that sum
  (a fine-tune can lose a contact's repulsion that no pure bulk shows).

A model whose lattice constant or bulk modulus moved away from the oracle's (or, without an
oracle value, from the foundation's) beyond ``max_lattice_shift_percent`` or
``max_bulk_modulus_shift_percent``, whose held-out force MAE grew beyond
``max_force_mae_ratio`` times the foundation's, or that lost a wall, is flagged
(``ForgettingCheck.warnings``; ``frostline status`` prints them).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations_with_replacement

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_numbers, covalent_radii, reference_states
from ase.units import GPa
from pydantic import BaseModel, Field

from frostline.config import ForgettingConfig

STRAINS = np.linspace(-0.03, 0.03, 7)
"""Linear strains of the equation-of-state cells."""
SCANS = (0.12, 0.3)
"""Half-widths of the coarse lattice-constant scans tried in turn (fractions of the reference)."""
WALL = 0.75
"""The repulsive-wall probe squeezes the bulk down to this fraction of the reference lattice
constant,"""
WALL_TOP = 0.95
"""from this fraction of its own well,"""
WALL_POINTS = 9
"""in this many evenly spaced lattice constants. (One point at 0.75x missed holes above it:
a fine-tuned alloy model's gold lay 4.3 eV/atom below its well at 0.8x, 6 eV above at 0.75x.)"""
WALLED = ("model", "foundation")
"""Whose wall the check probes (the oracle's is not needed to tell a lost wall)."""
BULK_QUANTITIES = {
    "a": ("lattice constant", "Å", ".3f"),
    "bulk_modulus": ("bulk modulus", "GPa", ".0f"),
}
"""Name, unit and format of each equation-of-state quantity the check compares."""
PAIR_WALL = 0.6
"""The pair-repulsion probe: an isolated dimer at this fraction of the sum of covalent radii
(selection labels frames down to 0.5x, so MD gets this close)."""


class LatticeCheck(BaseModel):
    """One pure element's bulk lattice constant (Å) and bulk modulus (GPa) by three models."""

    element: str
    structure: str
    a_model: float | None = Field(
        description="None: no energy minimum within the widest scan (the model lost the bulk)"
    )
    a_foundation: float | None
    a_oracle: float | None = None
    bulk_modulus_model: float | None
    bulk_modulus_foundation: float | None
    bulk_modulus_oracle: float | None = None
    wall_model: float | None = Field(
        None,
        description="eV/atom: the lowest energy of the bulk squeezed from 0.95x its well down "
        "to 0.75x the reference lattice constant, minus the well's; negative: the bulk "
        "collapses (no repulsive wall). Checks stored up to 2026-12-07 probed 0.75x alone",
    )
    wall_foundation: float | None = None

    def change_percent(self, quantity: str, who: str, reference: str) -> float | None:
        """``quantity`` (``a`` or ``bulk_modulus``) of ``who`` relative to ``reference``'s
        (``model``, ``foundation``, ``oracle``), % (None: either is missing)."""
        value, ref = getattr(self, f"{quantity}_{who}"), getattr(self, f"{quantity}_{reference}")
        if value is None or ref is None:
            return None
        return 100.0 * (value - ref) / ref

    @property
    def shift_percent(self) -> float | None:
        """Lattice constant change by fine-tuning, % of the foundation's (None: no minimum)."""
        return self.change_percent("a", "model", "foundation")

    def error_percent(self, which: str = "model") -> float | None:
        """Lattice constant error of ``model`` or ``foundation`` vs the oracle, %."""
        return self.change_percent("a", which, "oracle")

    def text(self) -> str:
        """``Cu a 3.800 Å (foundation 3.567, oracle 3.870; +6.5 %)`` for summaries."""
        oracle = f", oracle {self.a_oracle:.3f}" if self.a_oracle is not None else ""
        found = f"{self.a_foundation:.3f}" if self.a_foundation is not None else "no minimum"
        if self.a_model is None:
            within = f"±{SCANS[-1]:.0%}"
            return f"{self.element}: no bulk minimum within {within} (foundation {found}{oracle})"
        shift = f"; {self.shift_percent:+.1f} %" if self.shift_percent is not None else ""
        text = f"{self.element} a {self.a_model:.3f} Å (foundation {found}{oracle}{shift})"
        if self.bulk_modulus_model is not None and self.bulk_modulus_foundation is not None:
            b_oracle = self.bulk_modulus_oracle
            b_oracle = f", oracle {b_oracle:.0f}" if b_oracle is not None else ""
            text += (
                f", B {self.bulk_modulus_model:.0f} GPa (foundation "
                f"{self.bulk_modulus_foundation:.0f}{b_oracle})"
            )
        return text


class PairCheck(BaseModel):
    """One element pair's short-range repulsion, probed on the isolated dimer."""

    pair: str = Field(description="'Cu-H': the two elements, alphabetical")
    wall_model: float | None = Field(
        None,
        description="eV: the dimer's energy at 0.6x the sum of covalent radii minus at the sum; "
        "negative: the pair attracts where it must repel",
    )
    wall_foundation: float | None = None


class ForgettingCheck(BaseModel):
    """A fine-tuned model against its foundation on the foundation's own domain."""

    n_frames: int = Field(0, description="held-out foundation-domain frames evaluated")
    reference: str = Field(
        "oracle",
        description="labels of the held-out frames: 'oracle' (relabelled by the campaign's "
        "oracle: the fine-tune's level of theory) or 'foundation data' (the pretraining labels: "
        "a fine-tune to another level of theory moves away from them by design)",
    )
    force_mae_before: float | None = Field(None, description="foundation, meV/Å")
    force_mae_after: float | None = Field(None, description="fine-tuned model, meV/Å")
    lattice: list[LatticeCheck] = Field(default_factory=list)
    pairs: list[PairCheck] = Field(default_factory=list)
    limits: ForgettingConfig = Field(default_factory=ForgettingConfig)
    strategy: str | None = Field(
        None, description="fine-tuning strategy of the checked model (its warnings' advice)"
    )
    warnings: list[str] = Field(default_factory=list)

    @property
    def force_mae_ratio(self) -> float | None:
        """Held-out force MAE after / before fine-tuning."""
        if not self.force_mae_after or not self.force_mae_before:
            return None
        return self.force_mae_after / self.force_mae_before

    def summary(self) -> str:
        """One line: the ratio and the lattice shifts."""
        parts = []
        if (ratio := self.force_mae_ratio) is not None:
            parts.append(
                f"foundation-domain force MAE vs {self.reference} {self.force_mae_after:.1f}, "
                f"{self.force_mae_before:.1f} meV/Å before (x{ratio:.2f}, {self.n_frames} frames)"
            )
        parts += [c.text() for c in self.lattice]
        return "forgetting: " + ("; ".join(parts) if parts else "nothing to compare")


def cubic_reference(element: str) -> tuple[str, float] | None:
    """ASE's reference crystal structure and lattice constant of ``element`` if fcc or bcc."""
    state = reference_states[atomic_numbers[element]] or {}
    if state.get("symmetry") in ("fcc", "bcc"):
        return state["symmetry"], float(state["a"])
    return None


def equation_of_state(
    calc, element: str, repeat: int = 2
) -> tuple[float, float] | tuple[None, None]:
    """Lattice constant (Å, conventional cubic cell) and bulk modulus (GPa) of ``element``.

    A coarse scan (±12 % of ASE's reference lattice constant, then ±30 % if it has no local
    minimum inside) finds the well nearest the reference, then a Birch-Murnaghan fit of ±3 %
    strains around it (``repeat``³ conventional cells: 32 atoms for fcc, so a Gamma-point oracle
    such as xTB sees a bulk, not a 4-atom molecule). ``(None, None)`` when no scan has a well
    inside or the fit is not a minimum. (A LoRA fine-tune on H2/Cu slabs put copper's well at
    about +25 %, with an energy hole under 30 % compression; the ±12 % scan alone returned NaN.)
    """
    from ase.eos import EquationOfState

    structure, a0 = cubic_reference(element) or ("fcc", 4.0)

    def cell(a: float) -> Atoms:
        return bulk_cell(calc, element, a, repeat)

    for half in SCANS:
        coarse = a0 * (1 + np.linspace(-half, half, 9))
        e = [cell(a).get_potential_energy() for a in coarse]
        wells = [i for i in range(1, len(e) - 1) if e[i] <= min(e[i - 1], e[i + 1])]
        if wells:  # the local minimum nearest the reference (not a collapse at the scan's end)
            center = coarse[min(wells, key=lambda i: abs(coarse[i] - a0))]
            break
    else:
        return None, None
    cells = [cell(center * (1 + eps)) for eps in STRAINS]
    volumes = [c.get_volume() / len(c) for c in cells]
    energies = [c.get_potential_energy() / len(c) for c in cells]
    try:
        v0, _, b = EquationOfState(volumes, energies, eos="birchmurnaghan").fit()
    except (RuntimeError, ValueError):  # no minimum to fit
        return None, None
    if not (np.isfinite(v0) and np.isfinite(b) and b > 0):
        return None, None
    per_cell = len(bulk(element, structure, a=a0, cubic=True))
    return float((v0 * per_cell) ** (1 / 3)), float(b / GPa)


def bulk_cell(calc, element: str, a: float, repeat: int = 2) -> Atoms:
    """``repeat``³ conventional cubic cells of ``element`` (its ASE reference structure, else
    fcc) at lattice constant ``a`` (Å), with ``calc`` attached."""
    structure, _ = cubic_reference(element) or ("fcc", 4.0)
    atoms = bulk(element, structure, a=a, cubic=True).repeat(repeat)
    atoms.calc = calc
    return atoms


def wall(calc, element: str, a_well: float | None) -> float | None:
    """The lowest energy per atom (eV) of bulk ``element`` squeezed from ``WALL_TOP`` x
    ``a_well`` down to ``WALL`` x its reference lattice constant, minus at ``a_well`` (None
    without a well). Negative: compressing the bulk lowers its energy somewhere on the way, the
    short-range repulsion is gone there and MD can collapse."""
    if a_well is None:
        return None
    a0 = (cubic_reference(element) or ("fcc", 4.0))[1]
    bottom = WALL * a0
    squeezed = np.linspace(bottom, max(bottom, WALL_TOP * a_well), WALL_POINTS)
    energy = [bulk_energy(calc, element, a) for a in squeezed]
    return float(min(energy) - bulk_energy(calc, element, a_well))


def bulk_energy(calc, element: str, a: float) -> float:
    """Energy per atom (eV) of bulk ``element`` at lattice constant ``a`` by ``calc``."""
    atoms = bulk_cell(calc, element, a)
    return atoms.get_potential_energy() / len(atoms)


def dimer_wall(calc, a: str, b: str) -> float:
    """Energy (eV) of the isolated ``a``-``b`` dimer at ``PAIR_WALL`` x the sum of their
    covalent radii minus at the sum. Negative: squeezing the pair lowers its energy, the
    short-range repulsion is gone and MD can fuse the two atoms."""
    bond = covalent_radii[atomic_numbers[a]] + covalent_radii[atomic_numbers[b]]
    energies = []
    for distance in (PAIR_WALL * bond, bond):
        dimer = Atoms([a, b], positions=[[0.0, 0.0, 0.0], [distance, 0.0, 0.0]], cell=[20.0] * 3)
        dimer.center()  # a vacuum box: no periodic images, a cell for calculators that scale it
        dimer.calc = calc
        energies.append(dimer.get_potential_energy())
    return float(energies[0] - energies[1])


def pair_checks(model, foundation, elements: Sequence[str]) -> list[PairCheck]:
    """The pair-repulsion probe of ``model`` and ``foundation`` for every pair of ``elements``."""
    return [
        PairCheck(
            pair=f"{a}-{b}",
            wall_model=dimer_wall(model, a, b),
            wall_foundation=dimer_wall(foundation, a, b),
        )
        for a, b in combinations_with_replacement(sorted(elements), 2)
    ]


def force_mae(calc, frames: Sequence[Atoms]) -> float:
    """Force MAE (meV/Å, per component) of ``calc`` against the frames' ``REF_forces``."""
    errors = []
    for frame in frames:
        atoms = frame.copy()
        atoms.calc = calc
        errors.append(np.abs(atoms.get_forces() - frame.arrays["REF_forces"]).ravel())
    return 1000.0 * float(np.mean(np.concatenate(errors)))


def relabelled(frames: Sequence[Atoms], calc) -> list[Atoms]:
    """Copies of ``frames`` with ``calc``'s forces as ``REF_forces`` (frames it fails on are
    left out: an oracle that cannot label a structure has no error to compare)."""
    out = []
    for frame in frames:
        atoms = frame.copy()
        atoms.calc = calc
        try:
            forces = atoms.get_forces()
        except Exception:  # e.g. an SCF that does not converge on a molecule in a box
            continue
        atoms.calc = None
        atoms.arrays["REF_forces"] = np.array(forces)
        out.append(atoms)
    return out


def covered(frames: Sequence[Atoms], elements: Sequence[str]) -> list[Atoms]:
    """The frames whose elements are all among ``elements``."""
    allowed = set(elements)
    return [f for f in frames if set(f.get_chemical_symbols()) <= allowed]


def check_forgetting(
    model,
    foundation,
    elements: Sequence[str],
    heldout: Sequence[Atoms] = (),
    oracle=None,
    limits: ForgettingConfig | None = None,
    strategy: str | None = None,
) -> ForgettingCheck:
    """Compare the fine-tuned calculator ``model`` with ``foundation`` on the foundation's domain.

    ``elements``: the campaign's elements (held-out frames of other elements are skipped, and
    each fcc/bcc element among them gets an equation-of-state check); ``oracle``: an ASE
    calculator of the campaign's oracle (``None``: too expensive). With it the held-out frames
    are relabelled by the oracle, so that before and after are errors at the fine-tune's own
    level of theory (a fine-tune from PBE to r2SCAN must move away from the PBE labels: that
    is learning, not forgetting), and the oracle's lattice constants are fitted too.
    ``strategy``: the model's fine-tuning strategy (``finetune.strategy``), which the
    warnings' advice depends on.
    """
    limits = limits or ForgettingConfig()
    check = ForgettingCheck(limits=limits, strategy=strategy)
    frames = covered(heldout, elements)
    if frames and oracle is not None:
        frames = relabelled(frames, oracle)
    elif frames:
        check.reference = "foundation data"
    if frames:
        check.n_frames = len(frames)
        check.force_mae_before = force_mae(foundation, frames)
        check.force_mae_after = force_mae(model, frames)
    for element in elements:
        if cubic_reference(element) is None:
            continue
        calcs = {"model": model, "foundation": foundation, "oracle": oracle}
        fits = {who: equation_of_state(c, element) for who, c in calcs.items() if c is not None}
        lattice = {f"a_{who}": a for who, (a, _) in fits.items()}
        moduli = {f"bulk_modulus_{who}": b for who, (_, b) in fits.items()}
        walls = {f"wall_{who}": wall(calcs[who], element, fits[who][0]) for who in WALLED}
        structure = cubic_reference(element)[0]
        check.lattice.append(
            LatticeCheck(element=element, structure=structure, **lattice, **moduli, **walls)
        )
    check.pairs = pair_checks(model, foundation, elements)
    check.warnings = forgetting_warnings(check)
    return check


def wall_lost(model: float | None, foundation: float | None) -> bool:
    """A probe's wall (energy squeezed minus relaxed) went below zero by fine-tuning while the
    foundation's was not (a foundation without it has nothing to lose)."""
    return model is not None and model < 0 <= (foundation or 0.0)


def remedy(strategy: str | None) -> str:
    """The advice a forgetting warning ends with, for a model fine-tuned with ``strategy``."""
    if strategy == "multihead-replay":
        return (
            "replay did not keep it: raise finetune.replay_weight (toward 1) or "
            "finetune.replay_samples, draw replay from your elements if it is drawn from any "
            "frame (finetune.replay_filter: combinations), or label structures of that kind"
        )
    return "try finetune.strategy: multihead-replay"


WALL_REMEDY = (
    "a wall the labels never reach is extrapolated, whatever the strategy: label squeezed "
    "structures (select.contact_picks buys explored frames with contacts shorter than the labels')"
)
"""The advice of a lost-wall warning (the forgetting benchmark's alloys replay fine-tunes lost
copper's wall at replay weights 0.3 and 1, gold's at 0, none at 0.1)."""
MODULUS_REMEDY = (
    "no strategy kept it in the forgetting benchmark: label strained bulk (alloys.volume_scales) "
    "and train on stress (finetune.stress_weight)"
)
"""The advice of a bulk-modulus warning (alloys, seed 0: copper's modulus -52 % with naive,
frozen and replay fine-tunes alike, -7 % with naive and stress weight 100)."""


def forgetting_warnings(check: ForgettingCheck) -> list[str]:
    """What exceeds the check's limits, one line each.

    Against the oracle (its relabelled frames, its lattice constants) a model is flagged when
    it is worse than the foundation was: moving toward the oracle is what fine-tuning is for.
    Without the oracle, a lattice constant that moved beyond the limit is flagged as a move
    (learning and forgetting cannot be told apart there); the force MAE against the
    pretraining labels is reported, never flagged (another level of theory moves it by design).
    """
    out = []
    ratio, limits = check.force_mae_ratio, check.limits
    hint = remedy(check.strategy)
    if check.reference == "oracle" and ratio is not None and ratio > limits.max_force_mae_ratio:
        out.append(
            f"fine-tuning forgot: foundation-domain force MAE vs the oracle x{ratio:.2f} of the "
            f"foundation's (limit x{limits.max_force_mae_ratio:g}); {hint}"
        )
    for p in check.pairs:
        if wall_lost(p.wall_model, p.wall_foundation):
            out.append(
                f"fine-tuning removed the {p.pair} repulsion: the isolated pair at {PAIR_WALL:g}x "
                f"the sum of covalent radii lies {-p.wall_model:.2f} eV below the pair at that "
                f"sum (the foundation's: {p.wall_foundation or 0.0:+.2f} eV; MD can fuse the "
                f"atoms); {WALL_REMEDY}"
            )
    for c in check.lattice:
        if wall_lost(c.wall_model, c.wall_foundation):
            out.append(
                f"fine-tuning removed bulk {c.element}'s repulsive wall: squeezed toward "
                f"{WALL:g}x its reference lattice constant it falls {-c.wall_model:.2f} eV/atom "
                f"below its minimum (the foundation's lowest: {c.wall_foundation or 0.0:+.2f}; MD "
                f"can collapse); {WALL_REMEDY}"
            )
        if c.a_model is None and c.a_foundation is not None:
            out.append(
                f"fine-tuning lost bulk {c.element}: no energy minimum within "
                f"±{SCANS[-1]:.0%} of its reference lattice constant (foundation "
                f"{c.a_foundation:.3f} Å); {hint}"
            )
            continue
        out += [
            line
            for quantity, limit, advice in (
                ("a", limits.max_lattice_shift_percent, hint),
                ("bulk_modulus", limits.max_bulk_modulus_shift_percent, MODULUS_REMEDY),
            )
            if (line := moved(c, quantity, limit, advice))
        ]
    return out


def moved(c: LatticeCheck, quantity: str, limit: float, hint: str) -> str | None:
    """The warning when fine-tuning moved ``quantity`` of ``c``'s bulk too far: its error vs
    the oracle grew by more than ``limit`` percentage points over the foundation's, or without
    an oracle value, it moved more than ``limit`` % from the foundation's."""
    name, unit, f = BULK_QUANTITIES[quantity]
    model, foundation, oracle = (
        getattr(c, f"{quantity}_{w}") for w in ("model", "foundation", "oracle")
    )
    model_error = c.change_percent(quantity, "model", "oracle")
    foundation_error = c.change_percent(quantity, "foundation", "oracle")
    if model_error is not None and foundation_error is not None:
        if abs(model_error) - abs(foundation_error) <= limit:
            return None
        return (
            f"fine-tuning moved bulk {c.element}'s {name} away from the oracle's: "
            f"{model:{f}} {unit} vs {oracle:{f}} ({model_error:+.1f} %; foundation "
            f"{foundation_error:+.1f} %); {hint}"
        )
    shift = c.change_percent(quantity, "model", "foundation")
    if shift is None or abs(shift) <= limit:
        return None
    return (
        f"fine-tuning moved bulk {c.element}'s {name} by {shift:+.1f} % ({foundation:{f}} -> "
        f"{model:{f}} {unit}; limit {limit:g} %; no oracle value to tell learning from forgetting)"
    )
