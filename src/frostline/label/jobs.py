"""Labelling stage: candidates become atomate2 static jobs; results become labelled structures.

Flow of one batch (``LabelMaker.make``)::

    make ──replace──► label_structure(c_0) … label_structure(c_n) ──► collect_labels
                          │ replace
                          ▼
                      atomate2 job (oracle) ──► record_label ──(unusable, retry left)──►
                                                    │          label_structure(c, attempt 1)
                                                    ▼
                                     upsert into ``labelled`` (status ok | failed + reason)

Each label is written to the store by its own ``record_label`` job right after its oracle job,
not at the end of the batch: a batch killed midway keeps every finished label, and a re-run
(same structures, same oracle settings) finds them through the reuse query and computes only
the rest. Under ``run_locally`` the replacement of each ``label_structure`` runs depth first,
so oracle job and record job run back to back; under jobflow-remote / FireWorks the oracle jobs
of a batch still run in parallel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from jobflow import Flow, Job, JobConfig, Maker, OnMissing, OutputReference, Response
from pymatgen.core import Structure

from frostline.config import OracleConfig
from frostline.jobs import frostline_job
from frostline.label.oracles import (
    labels_from_task_document,
    max_attempts,
    oracle_hash,
    oracle_maker,
    unconverged_reason,
)
from frostline.progress import advance_stage, end_stage, show_stage
from frostline.schemas import CandidateStructure, LabelledStructure, structure_hash
from frostline.store import Records, current_records
from frostline.submit.routing import Routes, route

LABEL_KEY = ["campaign", "structure_hash", "oracle_settings_hash", "role"]
"""Upsert key of the ``labelled`` collection: one document per label and campaign role."""
_RECORD_CONFIG = JobConfig(expose_store=True, on_missing_references=OnMissing.NONE)


@dataclass
class LabelMaker(Maker):
    """Label candidate structures with an oracle through atomate2 makers.

    Labels already in the store for the same structure and oracle settings are reused, never
    recomputed (also after a batch was killed midway: every label is stored as soon as its
    calculation finished); duplicate structures within a batch are computed once. A failed
    calculation is retried once with escalated settings where the oracle allows it (CP2K,
    VASP), then recorded with its reason, and the rest proceed. Failed labels are not reused: a
    re-run tries them again (a failure may come from the machine, e.g. a missing binary).
    """

    name: str = "label"
    oracle: OracleConfig = field(default_factory=OracleConfig)
    campaign: str = "campaign"
    routing: Routes | None = None  # manager config per job type (frostline.submit.routing)

    @frostline_job(list[LabelledStructure], enforce=False)  # a list, or replaced by a flow
    def make(
        self,
        candidates: list[CandidateStructure],
        role: str = "train",
        iteration: int = -1,
        imported: list[LabelledStructure] | None = None,
    ):
        """Replace this job by one labelling job per new candidate and a collector.

        ``imported`` labels (e.g. ``system.labelled_file``) are appended to the output as they
        are: they count as labelled and are never sent to the oracle.
        """
        candidates = [CandidateStructure.model_validate(c) for c in candidates or []]
        imported = [LabelledStructure.model_validate(x) for x in imported or []]
        if not candidates:
            return imported
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
        stored = stored_oracle_outputs(records, shash, [h for h in hashes if h not in reused])
        jobs, seen = [], set(reused)
        for cand, h in zip(candidates, hashes, strict=True):
            if h in seen:
                continue
            seen.add(h)
            if h in stored:  # computed before a kill, never recorded: record it, not again
                j = self._record_stored(cand, h, *stored[h], role, iteration)
            else:
                j = label_structure(
                    cand,
                    self.oracle,
                    self.campaign,
                    role,
                    structure_key=h,
                    iteration=iteration,
                    routing=self.routing,
                )
                j.name = f"label {self.oracle.name} {role} {len(jobs)}"
            jobs.append(j)
        n_unique = len(dict.fromkeys(hashes))
        show_stage(label_stage(role), f"label {role}", n_unique, "labels", n_unique - len(jobs))
        collect = collect_labels(
            [j.output for j in jobs],
            [reused[h] for h in dict.fromkeys(hashes) if h in reused],
            campaign=self.campaign,
            role=role,
            imported=[x.model_dump(mode="json") for x in imported],
        )
        collect.config = _RECORD_CONFIG
        collect.name = f"collect labels {role}"
        route([*jobs, collect], "control", self.routing)
        return Response(replace=Flow([*jobs, collect], output=collect.output))

    def _record_stored(
        self, cand: CandidateStructure, h: str, uuid: str, attempt: int, role: str, iteration: int
    ):
        """A ``record_label`` job of the stored output of oracle job ``uuid`` (jobflow resolves
        the reference from the store as for any finished job)."""
        record = record_label(
            OutputReference(uuid),
            cand,
            self.oracle,
            self.campaign,
            role,
            job_uuid=uuid,
            iteration=iteration,
            attempt=attempt,
            routing=self.routing,
        )
        record.config = _RECORD_CONFIG
        record.name = f"record stored label {h[:8]}"
        return record


ORACLE_OUTPUT = "frostline_label"
"""Metadata of an oracle job: ``{"key": ..., "structure_hash": ..., "attempt": ...}``."""


def oracle_output_key(settings_hash: str, h: str) -> str:
    """What an oracle job computes: one structure under one set of oracle settings."""
    return f"{settings_hash}:{h}"


def stored_oracle_outputs(
    records: Records, settings_hash: str, hashes: list[str]
) -> dict[str, tuple[str, int]]:
    """Structure hash -> (job uuid, attempt) of oracle jobs whose output is in the job store
    but whose label was never recorded (a run killed between the two; the latest attempt).

    Structures with a recorded label of any status are left out: failed labels are computed
    again (a failure may come from the machine), as ``LabelMaker`` promises.
    """
    from jobflow import CURRENT_JOB

    from frostline.store import _is_transfer_store

    store = CURRENT_JOB.store
    if store is None or not hashes or _is_transfer_store(store):
        return {}  # (a jobflow-remote worker's job store holds this job's files only)
    recorded = {
        d["structure_hash"]
        for d in records.find(
            "labelled",
            {"oracle_settings_hash": settings_hash, "structure_hash": {"$in": hashes}},
        )
    }
    keys = [oracle_output_key(settings_hash, h) for h in hashes if h not in recorded]
    if not keys:
        return {}
    docs = store.query(
        {f"metadata.{ORACLE_OUTPUT}.key": {"$in": keys}},
        properties=["uuid", "metadata", "completed_at"],
        sort={"completed_at": 1},
    )
    found = {}
    for doc in docs:  # the latest attempt wins
        meta = doc["metadata"][ORACLE_OUTPUT]
        found[meta["structure_hash"]] = (doc["uuid"], int(meta.get("attempt", 0)))
    return found


@frostline_job(LabelledStructure, enforce=False, expose_store=False)  # replaced by a flow
def label_structure(
    candidate: CandidateStructure,
    oracle: OracleConfig,
    campaign: str,
    role: str,
    structure_key: str = "",
    iteration: int = -1,
    attempt: int = 0,
    previous_reason: str | None = None,
    routing: Routes | None = None,
):
    """Replace this job by the oracle's atomate2 job on ``candidate`` and its recorder.

    ``routing``: manager config per job type; the oracle job is a ``label`` job, the recorder
    a ``control`` job (``frostline.submit.routing``).
    """
    cand = CandidateStructure.model_validate(candidate)
    oracle = OracleConfig.model_validate(oracle)
    maker = oracle_maker(oracle, attempt)
    calc = maker.make(Structure.from_dict(cand.structure))
    calc.name = f"{maker.name} {role} {structure_key[:8]}".strip()
    if isinstance(calc, Job):  # found by a resumed run if killed before its label is recorded
        h = structure_hash(cand.structure)
        tag = {"key": oracle_output_key(oracle_hash(oracle), h), "structure_hash": h}
        calc.metadata = {**(calc.metadata or {}), ORACLE_OUTPUT: {**tag, "attempt": attempt}}
    record = record_label(
        calc.output,
        cand,
        oracle,
        campaign,
        role,
        job_uuid=calc.uuid,
        iteration=iteration,
        attempt=attempt,
        previous_reason=previous_reason,
        routing=routing,
    )
    record.config = _RECORD_CONFIG
    record.name = f"record label {structure_key[:8]}".strip()
    route(calc, "label", routing)
    route(record, "control", routing)
    return Response(replace=Flow([calc, record], output=record.output))


MAX_NET_FORCE = 0.1
"""eV/Å: largest accepted norm of the summed forces of a label (ideally zero)."""


def _check_label(n_atoms: int, energy: float, forces: np.ndarray) -> str | None:
    if forces.shape != (n_atoms, 3):
        return f"oracle returned forces of shape {forces.shape} for {n_atoms} atoms"
    if not np.isfinite(energy) or not np.all(np.isfinite(forces)):
        return "oracle returned non-finite energy or forces"
    net = float(np.linalg.norm(forces.sum(axis=0)))
    if net > MAX_NET_FORCE:  # translation invariance: a numerically broken calculation
        return (
            f"oracle forces sum to {net:.3f} eV/Å (> {MAX_NET_FORCE}): not translation "
            "invariant, the calculation is not numerically converged (basis, grid, k-points)"
        )
    return None


def _label(doc, cand: CandidateStructure):
    """(energy, forces, stress, None) or (None, None, None, reason) for one task document."""
    if doc is None:
        return None, None, None, "oracle job failed (crashed or raised; see its job log)"
    if isinstance(doc, dict) and doc.get("failed"):  # a maker that reports its own failure
        return None, None, None, str(doc.get("reason") or "oracle reported a failure")
    reason = unconverged_reason(doc)
    if reason:
        return None, None, None, reason
    try:
        energy, forces, stress = labels_from_task_document(doc, cand.to_structure())
    except (ValueError, TypeError, AttributeError) as exc:
        return None, None, None, f"cannot read the oracle's result: {exc}"
    reason = _check_label(len(cand.structure["sites"]), energy, forces)
    if reason:
        return None, None, None, reason
    return energy, forces, stress, None


@frostline_job(LabelledStructure, enforce=False)  # or replaced by a retry
def record_label(
    doc,
    candidate: CandidateStructure,
    oracle: OracleConfig,
    campaign: str,
    role: str,
    job_uuid: str | None = None,
    iteration: int = -1,
    attempt: int = 0,
    previous_reason: str | None = None,
    routing: Routes | None = None,
):
    """Store one oracle result as a labelled structure right away (or retry it once).

    An unusable result (crash, unconverged SCF, bad shape, NaN) is retried with escalated
    settings while ``oracle`` allows more attempts; the last failure is recorded with its
    reason (and the first one's).
    """
    cand = CandidateStructure.model_validate(candidate)
    oracle = OracleConfig.model_validate(oracle)
    energy, forces, stress, reason = _label(doc, cand)
    if reason and attempt + 1 < max_attempts(oracle):
        retry = label_structure(
            cand,
            oracle,
            campaign,
            role,
            structure_key=structure_hash(cand.structure),
            iteration=iteration,
            attempt=attempt + 1,
            previous_reason=reason,
            routing=routing,
        )
        retry.name = f"label {oracle.name} retry {structure_hash(cand.structure)[:8]}"
        route(retry, "control", routing)
        return Response(replace=retry)
    common = dict(
        structure=cand.structure,
        oracle=oracle.name,
        oracle_settings_hash=oracle_hash(oracle),
        structure_hash=structure_hash(cand.structure),
        provenance=cand.provenance,
        role=role,
        job_uuid=job_uuid,
        campaign=campaign,
    )
    if reason:
        if attempt:
            reason = f"{reason} (after {attempt + 1} attempts; first: {previous_reason})"
        label = LabelledStructure(**common, status="failed", reason=reason)
    else:
        label = LabelledStructure(
            **common,
            energy=energy,
            forces=np.asarray(forces).tolist(),
            stress=None if stress is None else np.asarray(stress).tolist(),
        )
    current_records().upsert("labelled", [label.model_dump(mode="json")], key=LABEL_KEY)
    advance_stage(label_stage(role))
    return label


def label_stage(role: str) -> str:
    """The progress display's stage of a batch of ``role`` labels (``frostline.progress``)."""
    return f"label {role}"


def store_labels(records: Records, labels: list[LabelledStructure]) -> None:
    """Upsert labelled structures (idempotent: keyed by campaign, hashes and role)."""
    records.upsert("labelled", [lab.model_dump(mode="json") for lab in labels], key=LABEL_KEY)


@frostline_job(list[LabelledStructure], enforce=False)
def collect_labels(
    labels: list,
    reused: list[dict],
    campaign: str,
    role: str,
    imported: list[dict] | None = None,
) -> list[LabelledStructure]:
    """The batch's labels: new ones (already stored by ``record_label``), reused, imported."""
    out = [LabelledStructure.model_validate(x) for x in labels if x is not None]
    records = current_records()
    for d in reused:  # the campaign reuses labels bought earlier (possibly by another campaign)
        lab = LabelledStructure.model_validate(d)
        if lab.campaign != campaign or lab.role != role:
            lab = lab.model_copy(update={"campaign": campaign, "role": role})
            store_labels(records, [lab])
        out.append(lab)
    out.extend(LabelledStructure.model_validate(x) for x in imported or [])
    end_stage(label_stage(role))
    return out
