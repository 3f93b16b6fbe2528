"""Distillation stage: the final fine-tuned MACE teaches a linear ACE surrogate.

``DistillMaker.make(summary)`` runs after the last iteration. It generates teacher data around the
campaign's labelled configurations (``frostline.distill.teacher``), fits linear ACE potentials of
increasing size (a sweep over functions per element and cutoffs) until one meets the accuracy
target on held-out teacher data, validates the chosen one against the oracle labels the campaign
bought, checks a short MD for stability, times it against the teacher, and records it as a
``ModelDoc`` of kind ``ace-surrogate`` with its ``.yace`` (plus B-basis ``.yaml`` and ``.asi``
active set for extrapolation grades) as blobs.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ase import Atoms
from jobflow import Maker, job
from pydantic import ValidationError
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from frostline.config import DistillConfig
from frostline.distill.ace import (
    ACEError,
    BasisSpec,
    LinearACEFit,
    SurrogateCalculator,
    build_basis,
    design_matrix,
    fit_linear_ace,
    is_padded,
    write_active_set,
    write_bbasis_yaml,
    write_yace,
)
from frostline.distill.schemas import CompanionFile, DistillResult, SweepPoint
from frostline.distill.teacher import TeacherSample, generate_teacher_data, split_by_group
from frostline.distill.validate import (
    error_metrics,
    md_stability,
    supercell,
    teacher_errors,
    time_per_atom_step,
)
from frostline.finetune.committee import committee_calculator, load_models
from frostline.finetune.evaluate import evaluate
from frostline.schemas import LabelledStructure, ModelDoc, ModelFile
from frostline.store import EXPOSE_STORE, Records, current_records

console = Console(stderr=True)
SETTINGS = tuple(f for f in DistillConfig.model_fields if f != "enabled")
"""DistillMaker fields validated by ``DistillConfig`` (same names, same rules)."""
STABILITY_TIMESTEP_FS = 0.5


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]distill[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


@dataclass
class SurrogateBuild:
    """A fitted surrogate with its files and the data and sweep that produced it."""

    fit: LinearACEFit
    samples: list[TeacherSample]
    train: list[int]
    holdout: list[int]
    sweep: list[SweepPoint]
    chosen: SweepPoint
    files: dict[str, Path]
    padded: bool

    def holdout_samples(self) -> list[TeacherSample]:
        return [self.samples[i] for i in self.holdout]


def sweep_fit(
    samples: Sequence[TeacherSample],
    train: Sequence[int],
    holdout: Sequence[int],
    elements: Sequence[str],
    basis_sizes: Sequence[int],
    cutoffs: Sequence[float],
    target_force_mae_mev_per_a: float,
    energy_weight: float = 10.0,
    ridge: float = 1e-6,
    show_progress: bool = True,
) -> tuple[LinearACEFit, list[SweepPoint], SweepPoint]:
    """Fit bases cheapest first (functions per element, then cutoff); stop at the first one
    whose held-out force MAE vs the teacher meets the target, else keep the most accurate.
    """
    if not train or not holdout:
        raise ACEError("sweep needs training and held-out teacher data")
    candidates = sorted((n, c) for n in basis_sizes for c in cutoffs)
    structures = [s.atoms for s in samples]
    tr_e = [samples[i].energy for i in train]
    tr_f = [samples[i].forces for i in train]
    ho_e = [samples[i].energy for i in holdout]
    ho_f = [samples[i].forces for i in holdout]
    points: list[SweepPoint] = []
    fits: list[LinearACEFit] = []
    with _progress() as progress:
        for n_funcs, cutoff in candidates:
            t0 = time.perf_counter()
            spec = BasisSpec(tuple(elements), n_funcs, cutoff)
            basis = build_basis(spec)
            task = progress.add_task(
                f"basis {n_funcs}/element, rc {cutoff:g} Å", total=len(structures)
            )
            step = (lambda k, t=task: progress.advance(t, k)) if show_progress else None
            design = design_matrix(basis, structures, progress=step)
            fit = fit_linear_ace(
                spec, design.subset(train), tr_e, tr_f, energy_weight, ridge, basis=basis
            )
            energies, forces = fit.predict(design.subset(holdout))
            m = error_metrics(ho_e, ho_f, energies, forces)
            point = SweepPoint(
                n_functions_per_element=n_funcs,
                cutoff=cutoff,
                n_functions=design.n_functions,
                energy_mae_mev_per_atom=m.energy_mae_mev_per_atom,
                force_mae_mev_per_a=m.force_mae_mev_per_a,
                meets_target=m.force_mae_mev_per_a <= target_force_mae_mev_per_a,
                fit_time_s=time.perf_counter() - t0,
            )
            console.print(
                f"[bold]distill[/] basis {n_funcs}/element rc {cutoff:g} Å: "
                f"{design.n_functions} functions, held-out F MAE "
                f"{point.force_mae_mev_per_a:.1f} meV/Å, E MAE "
                f"{point.energy_mae_mev_per_atom:.2f} meV/atom"
            )
            points.append(point)
            fits.append(fit)
            if point.meets_target:
                break
    best = min(range(len(points)), key=lambda i: points[i].force_mae_mev_per_a)
    if points[-1].meets_target:
        best = len(points) - 1
    return fits[best], points, points[best]


def build_surrogate(
    teacher: object,
    seeds: Sequence[Atoms],
    elements: Sequence[str],
    workdir: Path,
    settings: DistillConfig,
    temperatures: Sequence[float],
    timestep_fs: float = 1.0,
    friction: float = 0.02,
    seed: int = 0,
) -> SurrogateBuild:
    """Teacher data → basis sweep → linear ACE files (``surrogate.yace``/``.yaml``/``.asi``)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    with _progress() as progress:
        task = progress.add_task("teacher labels", total=settings.n_teacher_structures)
        samples = generate_teacher_data(
            seeds,
            teacher,
            settings.n_teacher_structures,
            temperatures,
            md_steps=settings.md_steps,
            sample_every=settings.sample_every,
            rattle_stdev=settings.rattle,
            max_strain=settings.max_strain,
            timestep_fs=timestep_fs,
            friction=friction,
            seed=seed,
            progress=lambda k: progress.advance(task, k),
        )
    train, holdout = split_by_group(samples, settings.holdout_fraction, seed)
    fit, points, chosen = sweep_fit(
        samples,
        train,
        holdout,
        elements,
        settings.basis_sizes,
        settings.cutoffs,
        settings.target_force_mae_mev_per_a,
        settings.energy_weight,
        settings.ridge,
    )
    if settings.require_target and not chosen.meets_target:
        raise ACEError(
            f"distill.target_force_mae_mev_per_a: no basis reached "
            f"{settings.target_force_mae_mev_per_a} meV/Å (best {chosen.force_mae_mev_per_a:.1f} "
            f"with {chosen.n_functions_per_element} functions/element, rc {chosen.cutoff} Å); "
            "add larger distill.basis_sizes or set distill.require_target false"
        )
    files = {
        "yace": write_yace(fit, workdir / "surrogate.yace"),
        "yaml": write_bbasis_yaml(fit, workdir / "surrogate.yaml"),
    }
    if settings.active_set:
        try:
            files["asi"] = write_active_set(
                fit, [samples[i].atoms for i in train], workdir / "surrogate.asi"
            )
        except (ACEError, ValueError) as exc:
            console.print(f"[yellow]distill: no active set written: {exc}[/]")
    padded = any(is_padded(s.atoms) for s in samples)
    return SurrogateBuild(fit, samples, list(train), list(holdout), points, chosen, files, padded)


def labelled_atoms(lab: LabelledStructure) -> Atoms:
    """ASE atoms of a labelled structure (no labels attached)."""
    return AseAtomsAdaptor.get_atoms(Structure.from_dict(lab.structure))


def store_surrogate(
    records: Records,
    campaign: str,
    files: dict[str, Path],
    doc_fields: dict,
    extra: dict,
) -> tuple[ModelDoc, dict[str, CompanionFile]]:
    """Store the ``.yace`` (model file) and companions as blobs and the ``ModelDoc``.

    The stored document is the ``ModelDoc`` (``parent_model_ids``: the teacher committee) plus
    a ``surrogate`` section (``extra``); companions are blobs ``MODEL_ID.yaml`` / ``.asi``.
    """
    data = files["yace"].read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    model_id = f"{campaign}-ace-{sha[:8]}"
    records.put_model_file(model_id, data)
    companions: dict[str, CompanionFile] = {}
    for key in ("yaml", "asi"):
        if key in files:
            blob = files[key].read_bytes()
            blob_id = f"{model_id}.{key}"
            companions[key] = CompanionFile(
                blob_id=blob_id,
                filename=f"{model_id}.{key}",
                sha256=records.put_model_file(blob_id, blob),
                size_bytes=len(blob),
            )
    doc = ModelDoc(
        model_id=model_id,
        kind="ace-surrogate",
        campaign=campaign,
        file=ModelFile(filename=f"{model_id}.yace", sha256=sha, size_bytes=len(data)),
        parent_model_ids=extra.get("parent_model_ids", []),
        **doc_fields,
    )
    stored = doc.model_dump(mode="json")
    stored["surrogate"] = {
        **extra,
        "companions": {k: c.model_dump() for k, c in companions.items()},
    }
    records.upsert("model_docs", [stored], key=["model_id"])
    return doc, companions


def export_surrogate(records: Records, model_id: str, folder: Path | str) -> dict[str, Path]:
    """Write a surrogate's ``.yace`` and companions (``.yaml``, ``.asi``) into ``folder``.

    Every file's sha256 is checked before it is written.
    """
    from frostline.registry.models import export_model

    companions = write_companions(records, model_id, folder)  # checks the kind first
    return {"yace": export_model(records, model_id, folder), **companions}


def write_companions(records: Records, model_id: str, folder: Path | str) -> dict[str, Path]:
    """Write a surrogate's ``.yaml`` B-basis and ``.asi`` active set (sha256-checked)."""
    from frostline.registry.models import atomic_write, get_model

    folder = Path(folder)
    doc = get_model(records, model_id)
    if doc.get("kind") != "ace-surrogate":
        raise ValueError(f"model {model_id} is a {doc.get('kind')}, not an ace-surrogate")
    out = {}
    for key, comp in (doc.get("surrogate") or {}).get("companions", {}).items():
        data = records.get_model_file(comp["blob_id"], expected_sha256=comp["sha256"])
        path = folder / comp["filename"]
        atomic_write(path, data)
        out[key] = path
    return out


@dataclass
class DistillMaker(Maker):
    """Distil the campaign's final fine-tuned MACE (committee mean) into a linear ACE.

    Settings mirror ``frostline.config.DistillConfig`` (validated on construction: a bad value
    raises ``ValueError`` naming the field). ``temperatures`` empty means ``[300, 800]``.
    """

    name: str = "distill"
    campaign: str = "campaign"
    elements: list[str] = field(default_factory=list)
    n_teacher_structures: int = 160
    temperatures: list[float] = field(default_factory=lambda: [300.0, 800.0])
    md_steps: int = 100
    sample_every: int = 5
    rattle: float = 0.05
    max_strain: float = 0.03
    holdout_fraction: float = 0.2
    basis_sizes: list[int] = field(default_factory=lambda: [50, 100, 200])
    cutoffs: list[float] = field(default_factory=lambda: [5.0])
    target_force_mae_mev_per_a: float = 50.0
    require_target: bool = False
    energy_weight: float = 10.0
    ridge: float = 1e-6
    stability_steps: int = 200
    active_set: bool = True
    speed_atoms: int = 500
    timestep_fs: float = 1.0
    friction: float = 0.02
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        self.settings()  # fail early, naming the field

    def settings(self) -> DistillConfig:
        """The maker's settings as a validated ``DistillConfig``."""
        values = {k: getattr(self, k) for k in SETTINGS}
        try:
            return DistillConfig.model_validate(values)
        except ValidationError as exc:
            lines = [
                f"DistillMaker field '{'.'.join(map(str, e['loc']))}': {e['msg']}"
                for e in exc.errors()
            ]
            raise ValueError("\n".join(lines)) from None

    @classmethod
    def from_config(cls, config, device: str = "auto") -> DistillMaker:
        """From a ``CampaignConfig`` (temperatures default to the exploration's)."""
        d = config.distill
        values = d.model_dump(exclude={"enabled"})
        values["temperatures"] = list(d.temperatures or config.explore.temperatures)
        return cls(
            name=f"distill {config.name}",
            campaign=config.name,
            elements=list(config.elements),
            timestep_fs=config.explore.timestep_fs,
            friction=config.explore.friction,
            device=device,
            seed=config.seed,
            **values,
        )

    @job(config=EXPOSE_STORE)
    def make(self, summary: dict) -> dict:
        """Distil the models of ``summary["final_model_ids"]``; return the summary with a
        ``surrogate`` key (a ``DistillResult`` dict).
        """
        t0 = time.perf_counter()
        settings = self.settings()
        ids = list((summary or {}).get("final_model_ids") or [])
        if not ids:
            raise ValueError("distill: the campaign summary has no final_model_ids to distil")
        records = current_records()
        found = {d["model_id"]: d for d in records.find("model_docs", {"model_id": {"$in": ids}})}
        missing = [i for i in ids if i not in found]
        if missing:
            raise ValueError(f"distill: model ids not in the store: {', '.join(missing)}")
        parents = [ModelDoc.model_validate(found[i]) for i in ids]
        workdir = Path.cwd()
        teacher = committee_calculator(load_models(records, parents), device=self.device)
        labelled = [
            LabelledStructure.model_validate(d)
            for d in records.find("labelled", {"campaign": self.campaign, "status": "ok"})
        ]
        train_labels = [lab for lab in labelled if lab.role == "train"]
        val_labels = [lab for lab in labelled if lab.role == "validation"]
        if not train_labels:
            raise ValueError(f"distill: campaign {self.campaign} has no labelled training data")
        seeds = [labelled_atoms(lab) for lab in train_labels]
        elements = self.elements or parents[0].elements
        build = build_surrogate(
            teacher,
            seeds,
            elements,
            workdir / "surrogate",
            settings,
            self.temperatures,
            self.timestep_fs,
            self.friction,
            self.seed,
        )
        files = build.files
        calc = SurrogateCalculator(files["yace"])
        vs_teacher = teacher_errors(calc, build.holdout_samples())
        vs_val = evaluate(calc, val_labels) if val_labels else None
        vs_train = evaluate(calc, train_labels)
        teacher_val = evaluate(teacher, val_labels) if val_labels else None
        stability = None
        biggest = max(seeds, key=len)
        if settings.stability_steps:
            stability = md_stability(
                calc,
                biggest,
                max(self.temperatures),
                settings.stability_steps,
                STABILITY_TIMESTEP_FS,
                self.friction,
                self.seed,
            )
        cell = supercell(biggest, settings.speed_atoms)
        speed = time_per_atom_step(calc, cell)
        teacher_speed = time_per_atom_step(teacher, cell, repeats=2)
        result = DistillResult(
            model_id="",
            parent_model_ids=ids,
            elements=list(elements),
            cutoff=build.chosen.cutoff,
            n_functions_per_element=build.chosen.n_functions_per_element,
            n_functions=build.chosen.n_functions,
            n_teacher_train=len(build.train),
            n_teacher_holdout=len(build.holdout),
            teacher_sources=dict(Counter(s.source for s in build.samples)),
            sweep=build.sweep,
            target_force_mae_mev_per_a=settings.target_force_mae_mev_per_a,
            target_met=build.chosen.meets_target,
            vs_teacher=vs_teacher,
            vs_oracle_validation=vs_val,
            vs_oracle_train=vs_train,
            teacher_vs_oracle_validation=teacher_val,
            stability=stability,
            speed_us_per_atom_step=speed,
            teacher_speed_us_per_atom_step=teacher_speed,
            speed_n_atoms=len(cell),
            padded_cells=build.padded,
            wall_time_s=0.0,
        )
        extra = result.model_dump(mode="json", exclude={"model_id", "companions", "wall_time_s"})
        extra["speedup_vs_teacher"] = teacher_speed / speed if speed > 0 else None
        doc, companions = store_surrogate(
            records,
            self.campaign,
            files,
            doc_fields={
                "iteration": parents[0].iteration,
                "elements": list(elements),
                "foundation": parents[0].foundation,
                "freeze_level": parents[0].freeze_level,
                "n_train": len(build.train),
                "training_set_hashes": [lab.structure_hash for lab in train_labels],
                "metrics": vs_val,
            },
            extra=extra,
        )
        result.model_id = doc.model_id
        result.companions = companions
        result.wall_time_s = time.perf_counter() - t0
        console.print(
            f"[bold]distill[/] {doc.model_id}: F MAE vs teacher "
            f"{vs_teacher.force_mae_mev_per_a:.1f} meV/Å, "
            + (f"vs oracle {vs_val.force_mae_mev_per_a:.1f} meV/Å, " if vs_val else "")
            + f"{speed:.1f} µs/atom/step ({teacher_speed / speed:.0f}x the teacher)"
        )
        return {**summary, "surrogate": result.model_dump(mode="json")}


__all__ = [
    "DistillMaker",
    "SurrogateBuild",
    "build_surrogate",
    "export_surrogate",
    "store_surrogate",
    "sweep_fit",
]
