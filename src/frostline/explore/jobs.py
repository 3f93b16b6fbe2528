"""Exploration stage: MD with the committee from seed structures at the campaign temperatures."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from ase import Atoms
from jobflow import Maker
from pymatgen.io.ase import AseAtomsAdaptor

from frostline.choices import Bias, Dtype, Engine, Uncertainty
from frostline.config import ExploreConfig, SelectConfig, check_bias_uncertainty, maker_settings
from frostline.explore.batched import batched_langevin_frames
from frostline.explore.bias import LastLayerBias
from frostline.explore.samplers import Frame, langevin_frames
from frostline.explore.shared_committee import SharedCommittee
from frostline.finetune.committee import load_committee, load_models
from frostline.jobs import frostline_job
from frostline.progress import advance_stage, end_stage, show_stage
from frostline.reliability.memo import memo_keys, memo_lookup, memo_mark
from frostline.schemas import (
    CandidateStructure,
    ExploreResult,
    FineTuneResult,
    Provenance,
    as_structure,
)
from frostline.store import current_records
from frostline.structures import strain


@dataclass
class ExploreMaker(Maker):
    """Langevin MD with the committee mean; every sampled frame carries its uncertainty.

    ``engine="ase"`` runs the trajectories one after the other with ASE and mace's
    ``MACECalculator``; ``engine="batched"`` runs them all at once
    (:func:`frostline.explore.batched.batched_langevin_frames`) with the shared-trunk committee.
    Both follow the same algorithm, seeds and starts, so they give the same frames up to rounding.

    ``max_strain`` > 0 starts every trajectory from a randomly strained copy of its start cell
    (symmetric strain, components uniform in ±``max_strain``, seeded per trajectory): MD at
    fixed cell then samples compressed, expanded and sheared cells, the configurations that
    decide equations of state and elastic constants, which near-equilibrium MD never visits.

    ``uncertainty="last-layer"``: member 0 alone drives the MD, and every sampled frame records
    its per-atom last-layer (LLPR) standard deviations, read by hooks from the same model call
    that gave the frame's forces (about one model's cost; the member's LLPR state is fitted and
    stored on first use, reloaded after: ``frostline.select.uncertainty.loop``). The frame's
    ``max_force_std`` is then the largest of those scores, which have no eV/Å scale before
    calibration: ``abort_force_std`` is not applied in this mode (close contacts and
    non-finite numbers still stop a trajectory; wild frames fail selection's sanity filters).

    Once a calibration has derived the trust window ``trust`` (``make``), a trajectory also stops
    when a frame's calibrated predicted error (``ErrorBound``: the conformal bound, or the
    committee's linear fit) exceeds ``abort_error_factor`` x ``target_force_error`` (reason
    ``error_bound``, counted in ``ExploreResult.abort_reasons``). ``bias="uncertainty"``
    (last-layer only): uncertainty-driven dynamics with that calibration's per-element scales
    (:mod:`frostline.explore.bias`); without a calibration the MD stays thermal. Frames from
    biased MD say so in their provenance (``bias``).
    """

    name: str = "explore"
    temperatures: list[float] = field(default_factory=lambda: [300.0, 800.0])
    steps: int = 150
    sample_every: int = 10
    starts_per_temperature: int = 2
    timestep_fs: float = 1.0
    friction: float = 0.02
    abort_force_std: float = 1.0
    max_strain: float = 0.0
    engine: Engine = "ase"
    dtype: Dtype = "float64"
    device: str = "auto"
    seed: int = 0
    uncertainty: Uncertainty = "committee"
    abort_error_factor: float = 10.0
    target_force_error: float = 0.3
    bias: Bias = "none"
    bias_strength: float = 3.0
    bias_width: float = 0.3
    # fields added after campaigns were stored (at their defaults: left out of the memo key)
    MEMO_ADDED_FIELDS: ClassVar[tuple[str | tuple[str, ...], ...]] = (
        "uncertainty",
        ("abort_error_factor", "target_force_error", "bias", "bias_strength", "bias_width"),
    )

    def __post_init__(self) -> None:
        maker_settings(self, ExploreConfig)  # the campaign file's rules, named by field
        maker_settings(self, SelectConfig)  # uncertainty and target_force_error
        try:
            check_bias_uncertainty(self.bias, self.uncertainty)
        except ValueError as exc:
            raise ValueError(f"ExploreMaker: {exc}") from None

    def plan(self, n_starts: int, iteration: int) -> list[tuple[float, int, int]]:
        """(temperature, seed, index of the start) of every trajectory, in output order."""
        out = []
        for n, (temp, k) in enumerate(
            (t, k) for t in self.temperatures for k in range(self.starts_per_temperature)
        ):
            seed = self.seed + 7919 * iteration + n
            out.append((temp, seed, (seed + k) % n_starts))
        return out

    def start_cells(self, starts: list[Atoms], plan: list[tuple[float, int, int]]) -> list[Atoms]:
        """The cell every trajectory of ``plan`` starts from (strained when ``max_strain`` > 0)."""
        cells = []
        for _, seed, start in plan:
            atoms = starts[start]
            if self.max_strain > 0:
                rng = np.random.default_rng([seed, 104729])
                atoms = strain(atoms, rng, self.max_strain)
            cells.append(atoms)
        return cells

    @frostline_job(ExploreResult, data="candidates")
    def make(
        self,
        finetuned: FineTuneResult,
        starts: list[dict],
        iteration: int = 0,
        trust: list[float] | None = None,
    ) -> ExploreResult:
        """Run ``starts_per_temperature`` trajectories per temperature from ``starts``.

        The frames (``candidates``, most of a campaign's job-output bytes) are kept in the
        job store's ``data`` store, their output document refers to them: the document store
        stays small, so looking up any job output (the embedded store reads every document of
        its collection per query) costs little however many iterations a campaign has run.
        ``trust``: the calibrated trust window of this iteration's selection; the calibration
        that derived it gives the calibrated stop and the bias their scales.
        """
        t0 = time.perf_counter()
        finetuned = FineTuneResult.model_validate(finetuned)
        if not starts:
            raise ValueError("exploration needs at least one starting structure")
        keys = memo_keys(
            "explore",
            maker=self,
            models=[(m.model_id, m.file.sha256) for m in finetuned.models],
            starts=starts,
            iteration=iteration,
        )
        reused = memo_lookup(keys)
        if reused is not None:  # a resumed run: these trajectories ran before the crash
            memo_mark(keys[0])
            return ExploreResult.model_validate(reused)
        plan = self.plan(len(starts), iteration)
        atoms = self.start_cells([AseAtomsAdaptor.get_atoms(as_structure(s)) for s in starts], plan)
        show_stage("explore", f"explore ({self.engine} MD)", len(plan) * self.steps, "steps")
        cal = self._calibration(finetuned, iteration, trust)
        run = self._run_batched if self.engine == "batched" else self._run_ase
        runs = run(finetuned, atoms, plan, lambda n: advance_stage("explore", n), cal)
        end_stage("explore")
        result = self._result(plan, runs, iteration, self.bias if self._bias_scales(cal) else None)
        memo_mark(keys[0])
        result.wall_time_s = time.perf_counter() - t0
        return result

    def _result(self, plan, runs, iteration: int, bias: str | None) -> ExploreResult:
        """The candidates of ``runs`` (``(frames, steps done)`` per trajectory of ``plan``),
        their provenance (``bias``: the MD bias applied), and the trajectories stopped early."""
        candidates: list[CandidateStructure] = []
        n_steps = n_aborted = 0
        reasons: dict[str, int] = {}
        for (temp, _, _), (frames, done) in zip(plan, runs, strict=True):
            n_steps += done
            n_aborted += done < self.steps
            if frames and frames[-1].stop_reason:
                reasons[frames[-1].stop_reason] = reasons.get(frames[-1].stop_reason, 0) + 1
            for frame in frames:
                candidates.append(
                    CandidateStructure(
                        structure=AseAtomsAdaptor.get_structure(frame.atoms).as_dict(),
                        provenance=Provenance(
                            iteration=iteration, sampler="langevin", temperature=temp, bias=bias
                        ),
                        max_force_std=frame.max_force_std,
                        energy_std_per_atom=frame.energy_std_per_atom,
                        max_force=frame.max_force,
                        atom_scores=frame.atom_scores,
                    )
                )
        return ExploreResult(
            candidates=candidates,
            n_trajectories=len(plan),
            n_steps_total=n_steps,
            n_aborted=n_aborted,
            abort_reasons=reasons,
            wall_time_s=0.0,
        )

    def _calibration(
        self, finetuned: FineTuneResult, iteration: int, trust: list[float] | None
    ) -> dict:
        """The calibration that derived ``trust`` (from the iteration documents of the models'
        campaign before ``iteration``), or {}."""
        if not trust or not finetuned.models:
            return {}
        from frostline.select.uncertainty.loop import window_calibration

        criteria = {"campaign": finetuned.models[0].campaign, "index": {"$lt": iteration}}
        earlier = current_records().find("iterations", criteria)
        return window_calibration(earlier, trust)

    def _abort(self, cal: dict) -> dict:
        """The calibrated stop of ``langevin_frames``/``batched_langevin_frames``, if any."""
        from frostline.select.uncertainty.loop import ErrorBound

        bound = ErrorBound.of(cal)
        if bound is None:
            return {}
        return {
            "error_bound": bound,
            "max_error": self.abort_error_factor * self.target_force_error,
        }

    def _bias_scales(self, cal: dict) -> dict[str, float] | None:
        """The per-element scales the bias uses (the conformal fit's), or None: no bias."""
        scales = ((cal.get("conformal") or {}).get("element_scales")) or None
        return scales if self.bias == "uncertainty" and self.uncertainty == "last-layer" else None

    def _run_ase(self, finetuned, atoms, plan, on_steps, cal) -> list[tuple[list[Frame], int]]:
        """One ASE Langevin trajectory after the other with mace's ``MACECalculator``
        (``on_steps(n)``: n more MD steps done, an aborted trajectory's rest counted)."""
        records, models = current_records(), self._members(finetuned)
        calc = load_committee(records, models, device=self.device, dtype=self.dtype)
        scorer, bias = self._hooks(records, models, calc.models[0], cal)
        try:
            return self._trajectories(calc, atoms, plan, on_steps, scorer, bias, cal)
        finally:
            for hooks in (scorer, bias):
                if hooks is not None:
                    hooks.close()

    def _trajectories(self, calc, atoms, plan, on_steps, scorer, bias, cal) -> list:
        """The ASE engine's trajectories, one after the other."""
        runs = []
        for (temp, seed, _), start in zip(plan, atoms, strict=True):
            frames: list[Frame] = []
            for frame in langevin_frames(
                start,
                calc,
                temp,
                self.steps,
                self.sample_every,
                timestep_fs=self.timestep_fs,
                friction=self.friction,
                seed=seed,
                abort_force_std=self.abort_force_std,
                scorer=scorer,
                bias=bias,
                **self._abort(cal),
            ):
                on_steps(frame.step - (frames[-1].step if frames else 0))
                frames.append(frame)
            done = frames[-1].step if frames else 0
            on_steps(self.steps - done)
            runs.append((frames, done))
        return runs

    def _run_batched(self, finetuned, atoms, plan, on_steps, cal) -> list[tuple[list[Frame], int]]:
        """All trajectories in one batch per step with the (shared-trunk) committee."""
        records, docs = current_records(), self._members(finetuned)
        models = load_models(records, docs)  # rebuilt, not unpickled
        committee = SharedCommittee(models, device=self.device, dtype=self.dtype)
        scorer, bias = self._hooks(records, docs, committee.models[0], cal)
        try:
            replicas = batched_langevin_frames(
                committee,
                atoms,
                [temp for temp, _, _ in plan],
                [seed for _, seed, _ in plan],
                self.steps,
                self.sample_every,
                timestep_fs=self.timestep_fs,
                friction=self.friction,
                abort_force_std=self.abort_force_std,
                on_step=on_steps,
                scorer=scorer,
                bias=bias,
                **self._abort(cal),
            )
        finally:
            for hooks in (scorer, bias):
                if hooks is not None:
                    hooks.close()
        return [(rep.frames, rep.steps_done) for rep in replicas]

    def _members(self, finetuned: FineTuneResult) -> list:
        """The models that drive the MD: the committee, or member 0 alone (last-layer)."""
        return finetuned.models[:1] if self.uncertainty == "last-layer" else finetuned.models

    def _hooks(self, records, docs: list, model, cal: dict) -> tuple:
        """(scorer, bias) on ``model`` (member 0 as the engine runs it), last-layer only: hooks
        scoring each call's atoms with the member's stored (or newly fitted) LLPR state, and
        the uncertainty bias when configured and calibrated (else None)."""
        if self.uncertainty != "last-layer":
            return None, None
        from frostline.select.uncertainty.loop import LastLayerScorer, last_layer_state

        llpr = last_layer_state(records, docs[0], self.device)
        scales = self._bias_scales(cal)
        bias = None
        if scales:
            bias = LastLayerBias(model, llpr, self.bias_strength, self.bias_width, scales)
        return LastLayerScorer(model, llpr), bias
