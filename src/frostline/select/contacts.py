"""Short contacts: frames that bring two atoms closer than any training label has.

Committee members fine-tuned from one foundation share its short-range repulsion. Where no label
constrains a contact (an H2 compressed below every H-H distance bought so far), every member
extrapolates the same wall, so their spread stays modest while the error is large: measured in
the selection benchmark, compressed H2 (H-H 0.61-0.66 Å, never labelled by the representative
arm) had a committee max force std of 0.36-0.52 eV/Å and a true max force error of 1.6-5.5
eV/Å. A rule that ranks by the spread does not buy such frames; this one does, whatever the
spread: a frame's *contact deficit* is how much shorter its shortest contact of some element
pair is than the shortest contact of that pair in every training label (validation labels
constrain nothing; pairs no label has within the cutoff count from the cutoff), in Å
(``absolute``) or as a fraction of the labelled contact (``relative``). In Å a Cu-Cu contact
0.28 Å short (12 %) outranks an H-H contact 0.11 Å short (15 %, far steeper up the H2 wall);
relative to the bond the compression is compared across pairs of different sizes.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from ase import Atoms

from frostline.structures import neighbor_list

Pair = tuple[str, str]
CUTOFF = 3.0  # Å: contacts longer than this are not short-range extrapolation
DEFICITS = ("absolute", "relative")


def shortest_contacts(atoms: Atoms, cutoff: float = CUTOFF) -> dict[Pair, float]:
    """Per element pair (sorted symbols), the shortest interatomic distance within ``cutoff``."""
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    symbols = atoms.get_chemical_symbols()
    out: dict[Pair, float] = {}
    for a, b, dist in zip((symbols[k] for k in i), (symbols[k] for k in j), d, strict=True):
        pair = (a, b) if a <= b else (b, a)
        if dist < out.get(pair, np.inf):
            out[pair] = float(dist)
    return out


class ContactIndex:
    """The shortest contact of every element pair over a set of labelled structures."""

    def __init__(self, labelled: Iterable[Atoms] = (), cutoff: float = CUTOFF):
        self.cutoff = cutoff
        self.shortest: dict[Pair, float] = {}
        for atoms in labelled:
            self.add(shortest_contacts(atoms, cutoff))

    def add(self, contacts: dict[Pair, float]) -> None:
        """Count a structure's contacts as labelled."""
        for pair, dist in contacts.items():
            self.shortest[pair] = min(dist, self.shortest.get(pair, np.inf))

    def deficit(self, contacts: dict[Pair, float], mode: str = "absolute") -> float:
        """Largest amount by which a contact is shorter than the labelled ones (0: none).

        ``mode``: ``absolute`` in Å; ``relative`` as a fraction of the labelled shortest contact
        of the pair (of the cutoff for a pair no label has).
        """
        if mode not in DEFICITS:
            raise ValueError(f"unknown contact deficit {mode!r} (one of {DEFICITS})")
        gaps = []
        for pair, dist in contacts.items():
            labelled = self.shortest.get(pair, self.cutoff)
            gaps.append((labelled - dist) / labelled if mode == "relative" else labelled - dist)
        return max([0.0, *gaps])  # a frame with no contact within the cutoff: 0
