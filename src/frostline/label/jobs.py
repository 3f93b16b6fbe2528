"""Labelling stage: candidates become atomate2 static jobs; results become labelled structures."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from jobflow import Flow, JobConfig, Maker, OnMissing, Response, job
from pymatgen.core import Structure

from frostline.config import OracleConfig
from frostline.label.oracles import labels_from_task_document, oracle_hash, oracle_maker
from frostline.schemas import CandidateStructure, LabelledStructure, structure_hash
from frostline.store import EXPOSE_STORE, current_records


@dataclass
class LabelMaker(Maker):
    """Label candidate structures with an oracle through atomate2 makers.

    Labels already in the store for the same structure and oracle settings are reused, never
    recomputed; a failed calculation is recorded with its reason and the rest proceed.
    """

    name: str = "label"
    oracle: OracleConfig = field(default_factory=OracleConfig)
    campaign: str = "campaign"

    @job(config=EXPOSE_STORE)
    def make(self, candidates: list[CandidateStructure], role: str = "train", iteration: int = -1):
        """Replace this job by one atomate2 static job per new candidate and a collector."""
        candidates = [CandidateStructure.model_validate(c) for c in candidates]
        if not candidates:
            return []
        records = current_records()
        shash = oracle_hash(self.oracle)
        hashes = [structure_hash(c.structure) for c in candidates]
        reused = {
            d["structure_hash"]: d
            for d in records.find(
                "labelled",
                {"oracle_settings_hash": shash, "status": "ok", "structure_hash": {"$in": hashes}},
            )
        }
        maker = oracle_maker(self.oracle)
        jobs, todo = [], []
        for cand, h in zip(candidates, hashes, strict=True):
            if h in reused:
                continue
            j = maker.make(Structure.from_dict(cand.structure))
            j.name = f"{maker.name} {role} {len(jobs)}"
            j.config.on_missing_references = OnMissing.NONE
            jobs.append(j)
            todo.append(cand)
        collect = collect_labels(
            [j.output for j in jobs],
            todo,
            [reused[h] for h in dict.fromkeys(hashes) if h in reused],
            oracle=self.oracle,
            campaign=self.campaign,
            role=role,
            iteration=iteration,
            job_uuids=[j.uuid for j in jobs],
        )
        collect.config = JobConfig(expose_store=True, on_missing_references=OnMissing.NONE)
        return Response(replace=Flow([*jobs, collect], output=collect.output))


def _check_label(n_atoms: int, energy: float, forces: np.ndarray) -> str | None:
    if forces.shape != (n_atoms, 3):
        return f"oracle returned forces of shape {forces.shape} for {n_atoms} atoms"
    if not np.isfinite(energy) or not np.all(np.isfinite(forces)):
        return "oracle returned non-finite energy or forces"
    return None


@job(config=EXPOSE_STORE)
def collect_labels(
    task_docs: list,
    candidates: list[CandidateStructure],
    reused: list[dict],
    oracle: OracleConfig,
    campaign: str,
    role: str,
    iteration: int,
    job_uuids: list[str],
) -> list[LabelledStructure]:
    """Turn atomate2 task documents into labelled-structure records (failed ones included)."""
    shash = oracle_hash(oracle)
    out: list[LabelledStructure] = []
    for doc, cand, uuid in zip(task_docs, candidates, job_uuids, strict=True):
        cand = CandidateStructure.model_validate(cand)
        common = dict(
            structure=cand.structure,
            oracle=oracle.name,
            oracle_settings_hash=shash,
            structure_hash=structure_hash(cand.structure),
            provenance=cand.provenance,
            role=role,
            job_uuid=uuid,
            campaign=campaign,
        )
        if doc is None:
            out.append(LabelledStructure(**common, status="failed", reason="oracle job failed"))
            continue
        energy, forces, stress = labels_from_task_document(doc)
        reason = _check_label(len(cand.structure["sites"]), energy, forces)
        if reason:
            out.append(LabelledStructure(**common, status="failed", reason=reason))
            continue
        out.append(
            LabelledStructure(
                **common,
                energy=energy,
                forces=forces.tolist(),
                stress=None if stress is None else stress.tolist(),
            )
        )
    records = current_records()
    records.upsert(
        "labelled",
        [d.model_dump(mode="json") for d in out],
        key=["campaign", "structure_hash", "oracle_settings_hash", "role"],
    )
    for d in reused:  # the campaign reuses labels bought earlier (possibly by another campaign)
        lab = LabelledStructure.model_validate(d)
        if lab.campaign != campaign or lab.role != role:
            lab = lab.model_copy(update={"campaign": campaign, "role": role})
            records.upsert(
                "labelled",
                [lab.model_dump(mode="json")],
                key=["campaign", "structure_hash", "oracle_settings_hash", "role"],
            )
        out.append(lab)
    return out
