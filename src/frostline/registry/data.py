"""Export labelled structures (oracle energies, forces, stresses) as extended XYZ."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from ase import Atoms
from ase.io import write

from frostline.schemas import LabelledStructure
from frostline.store import Records, StoreError

ROLES = ("train", "validation", "all")
Role = Literal["train", "validation", "all"]


def labelled_filter(campaign: str | None = None, role: str = "train") -> dict[str, Any]:
    """MongoDB filter of the successfully labelled structures of a campaign (or all) and role."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    criteria: dict[str, Any] = {"status": "ok"}
    if campaign is not None:
        if not campaign:
            raise ValueError("campaign name must not be empty")
        criteria["campaign"] = campaign
    if role != "all":
        criteria["role"] = role
    return criteria


def labelled_atoms(doc: dict[str, Any]) -> Atoms:
    """ASE atoms of one labelled-structure document: labels in a SinglePointCalculator, and
    oracle, hashes, campaign, role and provenance in ``atoms.info`` (``config_type`` = sampler).
    """
    lab = LabelledStructure.model_validate({k: v for k, v in doc.items() if k != "_id"})
    atoms = lab.to_calc_atoms()
    info: dict[str, Any] = {
        "oracle": lab.oracle,
        "oracle_settings_hash": lab.oracle_settings_hash,
        "structure_hash": lab.structure_hash,
        "campaign": lab.campaign,
        "role": lab.role,
        "config_type": lab.provenance.sampler,
    }
    info.update({f"provenance_{k}": v for k, v in lab.provenance.model_dump().items()})
    atoms.info.update({k: v for k, v in info.items() if v not in (None, "")})
    return atoms


def export_labelled(
    records: Records,
    path: Path | str,
    campaign: str | None = None,
    role: Role = "train",
    force: bool = False,
) -> int:
    """Write the labelled structures of ``campaign`` (or of every campaign) to an extxyz file.

    Only successful labels (``status: ok``) of ``role`` (``train``, ``validation`` or ``all``)
    are written, in insertion order; across campaigns a label reused by several campaigns is
    written once (same structure hash and oracle settings hash). The file is written through a
    temporary file and only if at least one structure matches (``StoreError`` otherwise).
    An existing file is kept unless ``force``. Returns the number of structures written.
    """
    from frostline.registry.models import refuse_overwrite

    criteria = labelled_filter(campaign, role)
    path = Path(path)
    if not path.parent.is_dir():
        raise StoreError(f"cannot write {path}: directory {path.parent} does not exist")
    refuse_overwrite(path, force)
    seen: set[tuple[str, str, str]] = set()
    n = 0
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w") as fh:
            for doc in records["labelled"].query(criteria, sort={"_id": 1}):
                key = (doc.get("structure_hash", ""), doc.get("oracle_settings_hash", ""))
                if key[0] and (*key, doc.get("role", "")) in seen:
                    continue
                seen.add((*key, doc.get("role", "")))
                write(fh, labelled_atoms(doc), format="extxyz")
                n += 1
        if n == 0:
            where = f"campaign {campaign!r}" if campaign is not None else "this store"
            roles = "any role" if role == "all" else f"role {role}"
            raise StoreError(f"no successfully labelled structures ({roles}) in {where}")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n
