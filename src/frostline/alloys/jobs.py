"""Jobs of alloy campaigns: property sets, per-system validation records, campaign summary."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jobflow import Maker
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from frostline.alloys.schemas import (
    AlloySummaryDoc,
    PropertySet,
    SpotCheckResult,
    SystemSummary,
    SystemValidationDoc,
)
from frostline.alloys.validate import oracle_calculator, property_errors, property_set
from frostline.config import OracleConfig
from frostline.finetune.evaluate import predict_with_stress
from frostline.jobs import frostline_job
from frostline.schemas import LabelledStructure, ModelDoc
from frostline.store import Records, current_records

VALIDATIONS = "validations"
SUMMARIES = "alloy_summaries"


def structures_to_dicts(atoms_list) -> list[dict]:
    """Validation structures as JSON-able dicts (pymatgen dict + prototype/cubic tags)."""
    return [
        {
            "structure": AseAtomsAdaptor.get_structure(a).as_dict(),
            "prototype": a.info.get("prototype", ""),
            "cubic": bool(a.info.get("cubic", False)),
        }
        for a in atoms_list
    ]


def dicts_to_structures(items: list[dict]):
    """Inverse of ``structures_to_dicts`` (ASE atoms with ``info`` tags).

    Resolving a job's references MSON-decodes its arguments, so a structure may arrive as a
    pymatgen ``Structure`` already.
    """
    out = []
    for item in items:
        structure = item["structure"]
        if not isinstance(structure, Structure):
            structure = Structure.from_dict(structure)
        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.info.update(prototype=item.get("prototype", ""), cubic=item.get("cubic", False))
        out.append(atoms)
    return out


def _calculator(records: Records, spec: dict, device: str):
    """ASE calculator of ``{"oracle": {...}}``, ``{"model_ids": [...]}`` or ``{"model_file"}``."""
    from frostline.finetune.committee import committee_calculator, load_committee

    if "oracle" in spec:
        return oracle_calculator(OracleConfig.model_validate(spec["oracle"]))
    if "model_ids" in spec:
        ids = list(spec["model_ids"])
        docs = {d["model_id"]: d for d in records.find("model_docs", {"model_id": {"$in": ids}})}
        missing = [i for i in ids if i not in docs]
        if missing or not ids:
            raise ValueError(f"models not in the store: {missing or 'none given'}")
        return load_committee(records, [ModelDoc.model_validate(docs[i]) for i in ids], device)
    if "model_file" in spec:
        return committee_calculator([spec["model_file"]], device=device)
    raise ValueError(f"unknown calculator spec {sorted(spec)}")


@dataclass
class PropertiesMaker(Maker):
    """EOS, cubic elastic constants and hull of a validation set with one calculator."""

    name: str = "properties"
    eos_points: int = 7
    eos_range: float = 0.06
    elastic: bool = True
    elastic_strain: float = 0.01
    elastic_steps: int = 1
    elastic_fit: str = "cubic"
    hull_tolerance_mev: float = 5.0
    device: str = "auto"
    torch_threads: int | None = 1
    """Threads of torch (MACE, CHGNet) in this job: these small cells gain nothing from more,
    and on a loaded machine two spinning threads were measured 20x slower than one."""

    @frostline_job(PropertySet)
    def make(self, structures: list[dict], calculator: dict, label: str) -> PropertySet:
        """``calculator``: ``{"oracle": OracleConfig}``, ``{"model_ids": [...]}`` (committee
        mean, from the store) or ``{"model_file": path}``; ``label`` names the set."""
        import torch

        threads = torch.get_num_threads()
        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        try:
            return self._properties(structures, calculator, label)
        finally:
            torch.set_num_threads(threads)

    def _properties(self, structures: list[dict], calculator: dict, label: str) -> PropertySet:
        calc = _calculator(current_records(), calculator, self.device)
        return property_set(
            dicts_to_structures(structures),
            calc,
            label,
            eos_points=self.eos_points,
            eos_range=self.eos_range,
            elastic=self.elastic,
            elastic_strain=self.elastic_strain,
            elastic_steps=self.elastic_steps,
            elastic_fit=self.elastic_fit,
            hull_tolerance=self.hull_tolerance_mev / 1000,
            description=str({k: v for k, v in calculator.items() if k != "model_ids"}),
        )


def _formula(label: LabelledStructure) -> str:
    return Structure.from_dict(label.structure).composition.formula.replace(" ", "")


@frostline_job(SpotCheckResult)
def compare_spot_checks(
    labels: list,
    reference: str,
    calculators: dict[str, dict],
    device: str = "auto",
    torch_threads: int = 1,
) -> SpotCheckResult:
    """Forces and stress of each calculator against the reference oracle's spot-check labels.

    ``calculators``: name → ``{"oracle": ...}`` / ``{"model_ids": [...]}`` / ``{"model_file"}``
    (as for ``PropertiesMaker``). Failed reference calculations are listed, not compared.
    """
    import time

    import numpy as np
    import torch
    from ase.units import GPa

    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(torch_threads)
    labels = [LabelledStructure.model_validate(x) for x in labels or []]
    ok = [x for x in labels if x.status == "ok"]
    result = SpotCheckResult(
        reference=reference,
        n_structures=len(ok),
        failures=[f"{_formula(x)}: {x.reason}" for x in labels if x.status != "ok"],
        formulas=[_formula(x) for x in ok],
    )
    if ok:
        result.reference_force_scale_mev_per_a = 1000 * float(
            np.mean(np.concatenate([np.abs(np.asarray(x.forces)).ravel() for x in ok]))
        )
    try:
        records = current_records()
        for name, spec in calculators.items():
            _, forces, stresses = predict_with_stress(_calculator(records, spec, device), ok)
            df = [np.abs(f - np.asarray(lab.forces)) for f, lab in zip(forces, ok, strict=True)]
            ds = [
                np.abs(p - np.asarray(lab.stress)) / GPa
                for p, lab in zip(stresses, ok, strict=True)
                if p is not None
            ]
            if df:
                result.force_mae_mev_per_a[name] = 1000 * float(np.mean(np.concatenate(df)))
                result.max_force_error_mev_per_a[name] = 1000 * float(
                    max(np.linalg.norm(d, axis=1).max() for d in df)
                )
            if ds:
                result.stress_mae_gpa[name] = float(np.mean(ds))
    finally:
        torch.set_num_threads(threads)
    result.wall_time_s = time.perf_counter() - t0
    return result


@frostline_job(SystemValidationDoc)
def compare_properties(
    campaign: str,
    system: str,
    al_result: dict,
    oracle: str,
    foundation: str,
    reference: PropertySet,
    models: dict[str, PropertySet],
    spot_checks: SpotCheckResult | None = None,
) -> SystemValidationDoc:
    """Errors of each model's properties against the oracle's; recorded in ``validations``."""
    reference = PropertySet.model_validate(reference)
    spot_checks = SpotCheckResult.model_validate(spot_checks) if spot_checks else None
    models = {k: PropertySet.model_validate(v) for k, v in models.items()}
    doc = SystemValidationDoc(
        campaign=campaign,
        system=system,
        al_campaign=al_result["campaign"],
        oracle=oracle,
        model_ids=list(al_result.get("final_model_ids") or []),
        foundation=foundation,
        reference=reference,
        models=models,
        errors={k: property_errors(v, reference) for k, v in models.items()},
        spot_checks=spot_checks,
    )
    current_records().upsert(VALIDATIONS, [doc.model_dump(mode="json")], ["campaign", "system"])
    return doc


@frostline_job(AlloySummaryDoc)
def summarise_alloys(
    campaign: str,
    oracle: str,
    foundation: str,
    systems: list[str],
    al_results: list[dict],
    validations: list[SystemValidationDoc | None],
    plot_dir: str | None = None,
) -> AlloySummaryDoc:
    """Per-system table (labels, iterations, errors, converged) and plots; recorded."""
    records = current_records()
    rows = []
    for system, result, val in zip(systems, al_results, validations, strict=True):
        doc = records.campaign(result["campaign"]) or {}
        metrics = result.get("final_metrics") or {}
        val = SystemValidationDoc.model_validate(val) if val else None
        rows.append(
            SystemSummary(
                system=system,
                al_campaign=result["campaign"],
                state=result.get("state"),
                stop_reason=result.get("stop_reason"),
                converged=result.get("state") == "converged",
                iterations=result.get("iterations"),
                labels_spent=result.get("labels_spent"),
                force_mae_mev_per_a=metrics.get("force_mae_mev_per_a"),
                energy_mae_mev_per_atom=metrics.get("energy_mae_mev_per_atom"),
                zero_shot_force_mae_mev_per_a=(doc.get("zero_shot") or {}).get(
                    "force_mae_mev_per_a"
                ),
                errors=val.errors if val else {},
                spot_checks=val.spot_checks if val else None,
            )
        )
    plots: list[str] = []
    docs = [SystemValidationDoc.model_validate(v) for v in validations if v]
    if plot_dir is not None and docs:
        from frostline.alloys.plots import write_plots

        plots = [str(p) for p in write_plots(docs, Path(plot_dir))]
    summary = AlloySummaryDoc(
        campaign=campaign, oracle=oracle, foundation=foundation, systems=rows, plots=plots
    )
    records.upsert(SUMMARIES, [summary.model_dump(mode="json")], ["campaign"])
    return summary
