"""Exploration stage: MD with the committee from seed structures at the campaign temperatures."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from jobflow import Maker, job
from pymatgen.io.ase import AseAtomsAdaptor
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from frostline.explore.samplers import langevin_frames
from frostline.finetune.committee import load_committee
from frostline.schemas import (
    CandidateStructure,
    ExploreResult,
    FineTuneResult,
    Provenance,
    as_structure,
)
from frostline.store import EXPOSE_STORE, current_records


@dataclass
class ExploreMaker(Maker):
    """Langevin MD with the committee mean; every sampled frame carries its uncertainty."""

    name: str = "explore"
    temperatures: list[float] = field(default_factory=lambda: [300.0, 800.0])
    steps: int = 150
    sample_every: int = 10
    starts_per_temperature: int = 2
    timestep_fs: float = 1.0
    friction: float = 0.02
    abort_force_std: float = 1.0
    device: str = "auto"
    seed: int = 0

    @job(config=EXPOSE_STORE)
    def make(
        self, finetuned: FineTuneResult, starts: list[dict], iteration: int = 0
    ) -> ExploreResult:
        """Run ``starts_per_temperature`` trajectories per temperature from ``starts``."""
        t0 = time.perf_counter()
        finetuned = FineTuneResult.model_validate(finetuned)
        if not starts:
            raise ValueError("exploration needs at least one starting structure")
        calc = load_committee(current_records(), finetuned.models, device=self.device)
        plan = [(temp, k) for temp in self.temperatures for k in range(self.starts_per_temperature)]
        candidates: list[CandidateStructure] = []
        n_steps = n_aborted = 0
        columns = (
            TextColumn("[bold]explore[/] it {task.fields[it]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, transient=False) as progress:
            task = progress.add_task("md", total=len(plan) * self.steps, it=iteration)
            for n, (temp, k) in enumerate(plan):
                seed = self.seed + 7919 * iteration + n
                start = AseAtomsAdaptor.get_atoms(as_structure(starts[(seed + k) % len(starts)]))
                last = 0
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
                ):
                    progress.advance(task, frame.step - last)
                    last = frame.step
                    candidates.append(
                        CandidateStructure(
                            structure=AseAtomsAdaptor.get_structure(frame.atoms).as_dict(),
                            provenance=Provenance(
                                iteration=iteration, sampler="langevin", temperature=temp
                            ),
                            max_force_std=frame.max_force_std,
                            energy_std_per_atom=frame.energy_std_per_atom,
                        )
                    )
                n_steps += last
                if last < self.steps:
                    n_aborted += 1
                    progress.advance(task, self.steps - last)
        return ExploreResult(
            candidates=candidates,
            n_trajectories=len(plan),
            n_steps_total=n_steps,
            n_aborted=n_aborted,
            wall_time_s=time.perf_counter() - t0,
        )
