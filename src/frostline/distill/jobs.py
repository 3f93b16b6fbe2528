"""Distillation stage: the final fine-tuned MACE teaches a linear ACE surrogate.

``DistillMaker.make(summary)`` runs after the last iteration. It generates teacher data around the
campaign's labelled configurations (``frostline.distill.teacher``), fits linear ACE potentials of
increasing size (a sweep over functions per element and cutoffs) until one meets the accuracy
target on held-out teacher data, grows its training data by teacher-labelled active learning of
the surrogate itself (``frostline.distill.active``; a larger basis while its MD still fails the
stability check), validates it against the oracle labels the campaign bought, checks a short MD
for stability, times it against the teacher, and records it as a
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

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from jobflow import Maker
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from frostline.config import DistillConfig, maker_settings
from frostline.distill.ace import (
    ACEError,
    BasisSpec,
    LinearACEFit,
    SurrogateCalculator,
    build_basis,
    design_matrix,
    fit_linear_ace,
    is_padded,
    pair_cutoffs,
    write_active_set,
    write_bbasis_yaml,
    write_yace,
)
from frostline.distill.active import ActiveLearner, ActivePlan
from frostline.distill.grade import GradeModel, fit_grade
from frostline.distill.schemas import (
    ActiveRound,
    CompanionFile,
    DistillResult,
    StabilityReport,
    SweepPoint,
)
from frostline.distill.teacher import (
    LANGEVIN,
    Langevin,
    TeacherSample,
    beyond_samples,
    generate_teacher_data,
    split_by_group,
)
from frostline.distill.validate import (
    StabilityRun,
    error_metrics,
    shortest_contacts,
    supercell,
    teacher_errors,
    time_per_atom_step,
    within_limits,
)
from frostline.finetune.committee import committee_calculator, load_models
from frostline.finetune.evaluate import evaluate
from frostline.jobs import frostline_job
from frostline.progress import nested_progress
from frostline.registry.models import stored_models
from frostline.schemas import CampaignSummary, LabelledStructure, ModelDoc, ModelFile
from frostline.store import Records, current_records

console = Console(stderr=True)
STABILITY_TIMESTEP_FS = 0.5
HOT_FACTOR = 1.5
"""Teacher MD also runs at this multiple of the highest distillation temperature."""
BEYOND_FACTOR = 2.0
"""The fidelity check's MD frames: this multiple of the highest distillation temperature."""
COMPANION_SUFFIXES = {"yaml": ".yaml", "asi": ".asi", "grade": ".grade.npz"}
"""Files stored with a surrogate's ``.yace`` (B-basis, MaxVol active set, grade model)."""
RELAX_STEPS = 200
"""FIRE steps of the teacher relaxation of the stability check's seed."""
STABILITY_MIN_ATOMS = 100
"""The stability MD runs on the biggest seed repeated to at least this many atoms (small cells
fluctuate too much in temperature for a ±25 % check)."""


def _progress() -> Progress:  # inside the run's display when one is open (frostline.progress)
    return nested_progress(
        TextColumn("[bold]distill[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
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
    beyond: list[TeacherSample] = field(default_factory=list)
    """Teacher-labelled frames outside the teacher data (stronger strains, hotter MD)."""
    active_rounds: list[ActiveRound] = field(default_factory=list)
    check: StabilityRun | None = None
    """The MD stability check the rounds (and the final assessment) use."""

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
    pair_cutoff_factor: float = 0.0,
) -> tuple[LinearACEFit, list[SweepPoint], SweepPoint]:
    """Fit bases cheapest first (functions per element, then cutoff); stop at the first one
    whose held-out force MAE vs the teacher meets the target, else keep the most accurate.
    Pairs whose shortest training contact x ``pair_cutoff_factor`` is below a cutoff get that
    shorter cutoff (:func:`frostline.distill.ace.pair_cutoffs`).
    """
    if not train or not holdout:
        raise ACEError("sweep needs training and held-out teacher data")
    candidates = sorted((n, c) for n in basis_sizes for c in cutoffs)
    structures = [s.atoms for s in samples]
    tr_e = [samples[i].energy for i in train]
    tr_f = [samples[i].forces for i in train]
    ho_e = [samples[i].energy for i in holdout]
    ho_f = [samples[i].forces for i in holdout]
    contacts = shortest_contacts([samples[i].atoms for i in train])
    points: list[SweepPoint] = []
    fits: list[LinearACEFit] = []
    with _progress() as progress:
        for n_funcs, cutoff in candidates:
            t0 = time.perf_counter()
            pairs = pair_cutoffs(contacts, cutoff, pair_cutoff_factor)
            spec = BasisSpec(tuple(elements), n_funcs, cutoff, pair_cutoffs=pairs)
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
                pair_cutoffs=dict(pairs),
                n_functions=design.n_functions,
                energy_mae_mev_per_atom=m.energy_mae_mev_per_atom,
                force_mae_mev_per_a=m.force_mae_mev_per_a,
                meets_target=m.force_mae_mev_per_a <= target_force_mae_mev_per_a,
                fit_time_s=time.perf_counter() - t0,
            )
            console.print(
                f"[bold]distill[/] basis {n_funcs}/element rc {cutoff:g} Å: "
                f"{design.n_functions} functions{pair_text(pairs)}, held-out F MAE "
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


def pair_text(pairs: Sequence[tuple[str, float]]) -> str:
    """`` (H-H 2.5 Å)``: the pairs with a shorter cutoff, for progress lines ('' when none)."""
    return f" ({', '.join(f'{p} {r:g} Å' for p, r in pairs)})" if pairs else ""


def teacher_data(
    teacher: object,
    seeds: Sequence[Atoms],
    settings: DistillConfig,
    temperatures: Sequence[float],
    langevin: Langevin = LANGEVIN,
) -> list[TeacherSample]:
    """``settings.n_teacher_structures`` teacher-labelled structures around ``seeds`` (MD at
    ``temperatures``), with a progress bar."""
    with _progress() as progress:
        task = progress.add_task("teacher labels", total=settings.n_teacher_structures)
        return generate_teacher_data(
            seeds,
            teacher,
            settings.n_teacher_structures,
            temperatures,
            md_steps=settings.md_steps,
            sample_every=settings.sample_every,
            rattle_stdev=settings.rattle,
            max_strain=settings.max_strain,
            langevin=langevin,
            progress=lambda k: progress.advance(task, k),
        )


def stability_run(
    seeds: Sequence[Atoms],
    temperatures: Sequence[float],
    steps: int,
    langevin: Langevin = LANGEVIN,
    labelled: Sequence[Atoms] = (),
    teacher: Calculator | None = None,
) -> StabilityRun:
    """The stability check: the biggest seed (relaxed by ``teacher`` when given, so that the MD
    does not start with energy stored in a strained seed, e.g. a stretched H2, which heats the
    cell whatever the potential) repeated to ``STABILITY_MIN_ATOMS`` at the highest temperature;
    contacts judged against the shortest in ``seeds`` and ``labelled``."""
    start = max(seeds, key=len)
    if teacher is not None:
        start = relaxed(start, teacher)
    return StabilityRun(
        supercell(start, STABILITY_MIN_ATOMS),
        max(temperatures),
        steps,
        shortest_contacts([*seeds, *labelled]),
        STABILITY_TIMESTEP_FS,
        langevin.friction,
        langevin.seed,
    )


def relaxed(atoms: Atoms, calc: Calculator, fmax: float = 0.05, steps: int = RELAX_STEPS) -> Atoms:
    """``atoms`` after at most ``steps`` FIRE steps with ``calc`` (positions only)."""
    from ase.optimize import FIRE

    work = atoms.copy()
    work.calc = calc
    FIRE(work, logfile=None).run(fmax=fmax, steps=steps)
    out = work.copy()
    out.calc = None
    return out


def build_surrogate(
    teacher: object,
    seeds: Sequence[Atoms],
    elements: Sequence[str],
    workdir: Path,
    settings: DistillConfig,
    temperatures: Sequence[float],
    langevin: Langevin = LANGEVIN,
    stability: StabilityRun | None = None,
) -> SurrogateBuild:
    """Teacher data → basis sweep → active learning of the surrogate → linear ACE files
    (``surrogate.yace``/``.yaml``/``.asi``/``.grade.npz``), plus teacher-labelled frames beyond
    the teacher data for the fidelity check.

    The teacher MD runs at ``temperatures`` and at ``HOT_FACTOR`` x the highest (users run
    hotter than the campaign explored), and so does the surrogate's exploration in the
    ``settings.active_rounds`` rounds (``frostline.distill.active``); ``stability`` (default
    :func:`stability_run` of the seeds) is checked before each round. The fidelity frames are
    at ``BEYOND_FACTOR`` x the highest temperature.
    """
    workdir = Path(workdir)
    md_temperatures = [*temperatures, HOT_FACTOR * max(temperatures)]
    workdir.mkdir(parents=True, exist_ok=True)
    check = stability or stability_run(
        seeds, temperatures, settings.stability_steps, langevin, teacher=teacher
    )
    samples = within(teacher_data(teacher, seeds, settings, md_temperatures, langevin), check)
    train, holdout = split_by_group(samples, settings.holdout_fraction, langevin.seed)
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
        pair_cutoff_factor=settings.pair_cutoff_factor,
    )
    if settings.require_target and not chosen.meets_target:
        raise ACEError(
            f"distill.target_force_mae_mev_per_a: no basis reached "
            f"{settings.target_force_mae_mev_per_a} meV/Å (best {chosen.force_mae_mev_per_a:.1f} "
            f"with {chosen.n_functions_per_element} functions/element, rc {chosen.cutoff} Å); "
            "add larger distill.basis_sizes or set distill.require_target false"
        )
    learner = ActiveLearner(
        teacher,
        samples,
        train,
        holdout,
        seeds,
        check,
        active_plan(settings, md_temperatures),
        langevin,
        workdir,
        settings.energy_weight,
        settings.ridge,
    )
    fit, rounds, chosen = grow_until_stable(learner, fit, points, chosen, settings)
    files = write_files(fit, samples, train, holdout, seeds, workdir, settings.active_set)
    beyond = beyond_samples(
        seeds, teacher, BEYOND_FACTOR * max(temperatures), settings.max_strain, langevin=langevin
    )
    padded = any(is_padded(s.atoms) for s in samples)
    build = SurrogateBuild(fit, samples, train, holdout, points, chosen, files, padded, beyond)
    build.active_rounds, build.check = rounds, learner.stability
    return build


def grow_until_stable(
    learner: ActiveLearner,
    fit: LinearACEFit,
    points: list[SweepPoint],
    chosen: SweepPoint,
    settings: DistillConfig,
) -> tuple[LinearACEFit, list[ActiveRound], SweepPoint]:
    """Active learning with ``fit``'s basis; while the refit fails the stability check and a
    larger size is in ``settings.basis_sizes``, refit with the next size on the grown data (a
    point appended to ``points``) and learn again. Returns the last fit, all rounds, its point."""
    rounds: list[ActiveRound] = []
    larger = [n for n in settings.basis_sizes if n > chosen.n_functions_per_element]
    while True:
        fit, new = learner.run(fit)
        for r in new:
            r.n_functions_per_element = fit.spec.n_functions_per_element
            r.round += len(rounds)
            console.print(f"[bold]distill[/] active round {r.round}: {active_line(r)}")
        rounds += new
        if not (new and learner.stability.steps and larger):
            return fit, rounds, chosen
        if learner.check(fit).stable:
            return fit, rounds, chosen
        console.print(f"[bold]distill[/] still unstable: trying {larger[0]} functions/element")
        train, holdout = learner.train, learner.holdout
        fit, grown, chosen = sweep_fit(
            learner.samples,
            train,
            holdout,
            fit.spec.elements,
            [larger.pop(0)],
            [chosen.cutoff],
            settings.target_force_mae_mev_per_a,
            settings.energy_weight,
            settings.ridge,
            pair_cutoff_factor=settings.pair_cutoff_factor,
        )
        points += grown


def active_line(r: ActiveRound) -> str:
    """One line for a round: frames added and their disagreement, stability before."""
    verdict = "stable" if r.stable_before else "unstable" if r.stable_before is False else "-"
    return (
        f"{r.n_added} of {r.n_candidates} frames added ({r.n_ended_early} of {r.n_trajectories}"
        f" runs ended early), their F MAE vs teacher {r.added_before_mev_per_a:.0f} → "
        f"{r.added_after_mev_per_a:.0f} meV/Å, held out {r.holdout_force_mae_mev_per_a:.1f}; "
        f"MD before: {verdict}"
        + (f" ({r.mean_temperature_before_k:.0f} K)" if r.mean_temperature_before_k else "")
    )


def within(samples: list[TeacherSample], check: StabilityRun) -> list[TeacherSample]:
    """``samples`` without those whose contacts the stability check would call a collapse
    (the teacher extrapolates there; the surrogate's ZBL core takes over)."""
    kept = [s for s in samples if within_limits(s.atoms, check.contact_limits())]
    if len(kept) < len(samples):
        limits = ", ".join(f"{k} {v:.2f}" for k, v in check.contact_limits().items())
        console.print(
            f"[bold]distill[/] {len(samples) - len(kept)} teacher frames with contacts below "
            f"the stability check's limits ({limits} Å) left out"
        )
    return kept


def active_plan(settings: DistillConfig, temperatures: Sequence[float]) -> ActivePlan:
    """The active-learning plan of ``settings`` (exploration at ``temperatures``)."""
    return ActivePlan(
        rounds=settings.active_rounds,
        frames=settings.active_frames,
        steps=settings.active_steps,
        temperatures=tuple(temperatures),
        core=settings.core_repulsion,
    )


def write_files(
    fit: LinearACEFit,
    samples: Sequence[TeacherSample],
    train: Sequence[int],
    holdout: Sequence[int],
    seeds: Sequence[Atoms],
    workdir: Path,
    active_set: bool = True,
) -> dict[str, Path]:
    """``surrogate.yace`` and ``.yaml``; with ``active_set`` also the MaxVol ``.asi`` (when the
    data allows) and the calibrated grade model ``.grade.npz`` (``frostline.distill.grade``)."""
    files = {
        "yace": write_yace(fit, workdir / "surrogate.yace"),
        "yaml": write_bbasis_yaml(fit, workdir / "surrogate.yaml"),
    }
    if not active_set:
        return files
    train_atoms = [samples[i].atoms for i in train]
    try:
        files["asi"] = write_active_set(fit, train_atoms, workdir / "surrogate.asi")
    except (ACEError, ValueError) as exc:
        console.print(f"[yellow]distill: no active set written: {exc}[/]")
    grade = fit_grade(fit.basis, train_atoms, [samples[i].atoms for i in holdout], seeds)
    files["grade"] = grade.save(workdir / "surrogate.grade.npz")
    c = grade.calibration
    console.print(
        f"[bold]distill[/] extrapolation grade: threshold {c['threshold']:.2f}, false alarms "
        f"{100 * c['false_alarm_rate']:.0f} % of {c['n_held_in']} held-out frames, misses "
        f"{100 * c['miss_rate']:.0f} % of {c['n_extrapolative']} extrapolative probes"
    )
    return files


def grade_report(
    build: SurrogateBuild, train: Sequence[Atoms], validation: Sequence[Atoms]
) -> dict[str, float] | None:
    """The grade model's calibration plus the share of the campaign's own labelled frames
    (training seeds, validation cells) above its threshold (``None``: no grade model)."""
    if "grade" not in build.files:
        return None
    model = GradeModel.load(build.files["grade"])
    report = dict(model.calibration)
    for name, frames in (("campaign_train", train), ("campaign_validation", validation)):
        if frames:
            grades = model.frame_grades(build.fit.basis, frames)
            report[f"{name}_above_threshold"] = float(np.mean(grades > model.threshold))
    return report


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
    for key, suffix in COMPANION_SUFFIXES.items():
        if key in files:
            blob = files[key].read_bytes()
            blob_id = f"{model_id}.{key}"
            companions[key] = CompanionFile(
                blob_id=blob_id,
                filename=f"{model_id}{suffix}",
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


EXPORT_MODE = 0o644
"""Permissions of exported surrogate files (readable by all, as a normal file)."""


def export_surrogate(
    records: Records,
    model_id: str,
    output: Path | str,
    force: bool = False,
    allow_failed: bool = False,
) -> dict[str, Path]:
    """Write a surrogate's ``.yace`` and companions (``.yaml``, ``.asi``), mode 644.

    ``output`` is a directory (files named ``MODEL_ID.yace`` etc.) or the ``.yace`` path (the
    companions go next to it). Every file's sha256 is checked before anything is written; an
    existing file is never replaced unless ``force`` (``FileExistsError`` naming it, nothing
    written); a surrogate that failed its checks raises ``SurrogateRejected`` unless
    ``allow_failed``. Warnings (exported anyway, target missed) are printed to stderr.
    """
    from frostline.distill.status import check_exportable
    from frostline.registry.models import get_model

    doc = get_model(records, model_id)
    if doc.get("kind") != "ace-surrogate":
        raise ValueError(f"model {model_id} is a {doc.get('kind')}, not an ace-surrogate")
    warning = check_exportable(doc, allow_failed)
    output = Path(output)
    yace = output / f"{model_id}.yace" if output.is_dir() else output
    blobs = {"yace": (model_id, doc["file"]["sha256"], yace)}
    for key, comp in (doc.get("surrogate") or {}).get("companions", {}).items():
        blobs[key] = (comp["blob_id"], comp["sha256"], yace.parent / comp["filename"])
    _write_checked(records, blobs, force)
    if warning:
        console.print(f"[yellow]warning: {warning}[/]")
    return {key: path for key, (_, _, path) in blobs.items()}


def write_companions(
    records: Records, model_id: str, folder: Path | str, force: bool = False
) -> dict[str, Path]:
    """Write a surrogate's ``.yaml`` B-basis and ``.asi`` active set (sha256-checked, mode 644;
    existing files only replaced with ``force``)."""
    from frostline.registry.models import get_model

    folder = Path(folder)
    doc = get_model(records, model_id)
    if doc.get("kind") != "ace-surrogate":
        raise ValueError(f"model {model_id} is a {doc.get('kind')}, not an ace-surrogate")
    blobs = {
        key: (comp["blob_id"], comp["sha256"], folder / comp["filename"])
        for key, comp in (doc.get("surrogate") or {}).get("companions", {}).items()
    }
    _write_checked(records, blobs, force)
    return {key: path for key, (_, _, path) in blobs.items()}


def _write_checked(records: Records, blobs: dict[str, tuple[str, str, Path]], force: bool) -> None:
    """Read and verify every blob, refuse existing targets (unless ``force``), then write all."""
    from frostline.registry.models import atomic_write

    existing = [str(path) for _, _, path in blobs.values() if path.exists()]
    if existing and not force:
        raise FileExistsError(f"{', '.join(existing)} already exist(s); pass --force to overwrite")
    data = {
        key: records.get_model_file(blob, expected_sha256=sha)
        for key, (blob, sha, _) in blobs.items()
    }
    for key, (_, _, path) in blobs.items():
        atomic_write(path, data[key])
        path.chmod(EXPORT_MODE)


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
    active_rounds: int = 3
    active_frames: int = 60
    active_steps: int = 200
    core_repulsion: bool = False
    pair_cutoff_factor: float = 4.0
    timestep_fs: float = 1.0
    friction: float = 0.02
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        self.settings()  # fail early, naming the field

    def settings(self) -> DistillConfig:
        """The maker's settings as a validated ``DistillConfig``."""
        return maker_settings(self, DistillConfig)

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

    @staticmethod
    def stability(calc: SurrogateCalculator, check: StabilityRun | None) -> StabilityReport | None:
        """The MD check ``check`` of ``calc`` (``None``: no check or no steps), failures shown."""
        if check is None or not check.steps:
            return None
        report = check.check(calc)
        if not report.stable:
            console.print(
                "[bold red]distill: surrogate FAILED its MD stability check:[/] "
                + "; ".join(report.failures)
            )
        return report

    @frostline_job(CampaignSummary, enforce=False)  # a dict
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
        parents = stored_models(records, ids, "distill")
        teacher = committee_calculator(load_models(records, parents), device=self.device)
        train_labels, val_labels = self.campaign_labels(records)
        seeds = [labelled_atoms(lab) for lab in train_labels]
        elements = self.elements or parents[0].elements
        langevin = Langevin(self.timestep_fs, self.friction, self.seed)
        labelled = [labelled_atoms(lab) for lab in val_labels]
        check = stability_run(
            seeds, self.temperatures, settings.stability_steps, langevin, labelled, teacher
        )
        build = build_surrogate(
            teacher,
            seeds,
            elements,
            Path.cwd() / "surrogate",
            settings,
            self.temperatures,
            langevin,
            check,
        )
        result = self.assess(build, teacher, seeds, val_labels, train_labels, settings)
        result.parent_model_ids, result.elements = ids, list(elements)
        self.record(records, build, result, parents[0], train_labels)
        result.wall_time_s = time.perf_counter() - t0
        announce(result)
        return {**summary, "surrogate": result.model_dump(mode="json")}

    def campaign_labels(
        self, records: Records
    ) -> tuple[list[LabelledStructure], list[LabelledStructure]]:
        """The campaign's good labels: (training, validation); no training ones is an error."""
        labelled = [
            LabelledStructure.model_validate(d)
            for d in records.find("labelled", {"campaign": self.campaign, "status": "ok"})
        ]
        train_labels = [lab for lab in labelled if lab.role == "train"]
        val_labels = [lab for lab in labelled if lab.role == "validation"]
        if not train_labels:
            raise ValueError(f"distill: campaign {self.campaign} has no labelled training data")
        return train_labels, val_labels

    def assess(
        self,
        build: SurrogateBuild,
        teacher: Calculator,
        seeds: Sequence[Atoms],
        val_labels: Sequence[LabelledStructure],
        train_labels: Sequence[LabelledStructure],
        settings: DistillConfig,
    ) -> DistillResult:
        """The chosen surrogate against the teacher (held out, beyond) and the oracle labels,
        its MD stability, extrapolation grades and speed (ids and elements left empty)."""
        calc = SurrogateCalculator(build.files["yace"])
        cell = supercell(max(seeds, key=len), settings.speed_atoms)
        vs_teacher = teacher_errors(calc, build.holdout_samples())
        return DistillResult(
            model_id="",
            parent_model_ids=[],
            elements=[],
            cutoff=build.chosen.cutoff,
            pair_cutoffs=dict(build.fit.spec.pair_cutoffs),
            n_functions_per_element=build.chosen.n_functions_per_element,
            n_functions=build.chosen.n_functions,
            n_teacher_train=len(build.train),
            n_teacher_holdout=len(build.holdout),
            teacher_sources=dict(Counter(s.source for s in build.samples)),
            sweep=build.sweep,
            target_force_mae_mev_per_a=settings.target_force_mae_mev_per_a,
            target_met=vs_teacher.force_mae_mev_per_a <= settings.target_force_mae_mev_per_a,
            vs_teacher=vs_teacher,
            vs_teacher_beyond=teacher_errors(calc, build.beyond) if build.beyond else None,
            vs_oracle_validation=evaluate(calc, val_labels) if val_labels else None,
            vs_oracle_train=evaluate(calc, train_labels),
            teacher_vs_oracle_validation=evaluate(teacher, val_labels) if val_labels else None,
            stability=self.stability(calc, build.check),
            grade=grade_report(build, seeds, [labelled_atoms(lab) for lab in val_labels]),
            speed_us_per_atom_step=time_per_atom_step(calc, cell),
            teacher_speed_us_per_atom_step=time_per_atom_step(teacher, cell, repeats=2),
            speed_n_atoms=len(cell),
            padded_cells=build.padded,
            active_rounds=build.active_rounds,
            core_repulsion=dict(build.fit.spec.core),
            wall_time_s=0.0,
        )

    def record(
        self,
        records: Records,
        build: SurrogateBuild,
        result: DistillResult,
        parent: ModelDoc,
        train_labels: Sequence[LabelledStructure],
    ) -> None:
        """Store the surrogate's files and model document (its fields from the first parent
        ``parent``); sets ``result.model_id`` and ``result.companions``."""
        speed, teacher_speed = result.speed_us_per_atom_step, result.teacher_speed_us_per_atom_step
        extra = result.model_dump(mode="json", exclude={"model_id", "companions", "wall_time_s"})
        extra["speedup_vs_teacher"] = teacher_speed / speed if speed > 0 else None
        doc, companions = store_surrogate(
            records,
            self.campaign,
            build.files,
            doc_fields={
                "iteration": parent.iteration,
                "elements": list(result.elements),
                "foundation": parent.foundation,
                "freeze_level": parent.freeze_level,
                "n_train": len(build.train),
                "training_set_hashes": [lab.structure_hash for lab in train_labels],
                "metrics": result.vs_oracle_validation,
            },
            extra=extra,
        )
        result.model_id = doc.model_id
        result.companions = companions


def announce(result: DistillResult) -> None:
    """One console line: the surrogate's errors and speed against the teacher."""
    vs_teacher, beyond = result.vs_teacher, result.vs_teacher_beyond
    vs_val, speed = result.vs_oracle_validation, result.speed_us_per_atom_step
    speedup = result.teacher_speed_us_per_atom_step / speed
    console.print(
        f"[bold]distill[/] {result.model_id}: F MAE vs teacher "
        f"{vs_teacher.force_mae_mev_per_a:.1f} meV/Å held out"
        + (f", {beyond.force_mae_mev_per_a:.1f} beyond the teacher data, " if beyond else ", ")
        + (f"vs oracle {vs_val.force_mae_mev_per_a:.1f} meV/Å, " if vs_val else "")
        + f"{speed:.1f} µs/atom/step ({speedup:.0f}x the teacher)"
    )


__all__ = [
    "DistillMaker",
    "SurrogateBuild",
    "announce",
    "build_surrogate",
    "export_surrogate",
    "store_surrogate",
    "stored_models",
    "sweep_fit",
]
