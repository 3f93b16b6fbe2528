"""Fine-tuning stage: a committee of frozen fine-tuned MACE models."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import mace  # noqa: F401
import numpy as np
from ase.data import chemical_symbols
from jobflow import Maker, job
from rich.console import Console

from frostline.finetune.committee import committee_calculator, resolve_device
from frostline.finetune.evaluate import evaluate
from frostline.finetune.foundation import load_foundation_model, sha256_file
from frostline.finetune.freeze import count_parameters
from frostline.finetune.train import MaceTrainSettings, run_mace_training
from frostline.schemas import FineTuneResult, LabelledStructure, ModelDoc, ModelFile
from frostline.store import EXPOSE_STORE, current_records

console = Console(stderr=True)


def member_subset(
    labelled: list[LabelledStructure], fraction: float, rng: np.random.Generator
) -> list[LabelledStructure]:
    """A per-composition subsample (at least one structure of every composition is kept)."""
    if fraction >= 1.0:
        return list(labelled)
    groups: dict[str, list[LabelledStructure]] = defaultdict(list)
    for lab in labelled:
        formula = "".join(sorted(s["species"][0]["element"] for s in lab.structure["sites"]))
        groups[formula].append(lab)
    out = []
    for members in groups.values():
        k = max(1, math.ceil(fraction * len(members)))
        idx = rng.choice(len(members), size=k, replace=False)
        out.extend(members[i] for i in sorted(idx))
    return out


@dataclass
class FineTuneMaker(Maker):
    """Fine-tune a committee of a foundation MACE with frozen layers (mace-torch ``--freeze``).

    Members differ by seed and by a per-composition subsample of the data. By default the
    model is reduced to the data's elements (mace-torch's element filtering);
    ``keep_foundation_elements`` keeps all of the foundation's.
    """

    name: str = "finetune"
    freeze: int = 6
    committee_size: int = 2
    epochs: int = 20
    lr: float = 0.01
    batch_size: int = 4
    subsample: float = 0.85
    e0s: str = "estimated"
    energy_weight: float = 10.0
    forces_weight: float = 10.0
    default_dtype: str = "float64"
    device: str = "auto"
    keep_foundation_elements: bool = False
    seed: int = 0

    @job(config=EXPOSE_STORE)
    def make(
        self,
        foundation: str,
        train: list[LabelledStructure],
        validation: list[LabelledStructure],
        campaign: str = "campaign",
        iteration: int = 0,
    ) -> FineTuneResult:
        """Train ``committee_size`` members on ``train``; evaluate them on ``validation``."""
        start = time.perf_counter()
        train = [LabelledStructure.model_validate(t) for t in train]
        validation = [LabelledStructure.model_validate(v) for v in validation]
        ok = [t for t in train if t.status == "ok"]
        if len(ok) < 2:
            raise ValueError(f"fine-tuning needs at least 2 labelled structures, got {len(ok)}")
        records = current_records()
        foundation_model = load_foundation_model(foundation)
        trainable, total = count_parameters(foundation_model, self.freeze)
        elements = sorted(
            {s["species"][0]["element"] for t in ok for s in t.structure["sites"]},
            key=chemical_symbols.index,
        )
        device = resolve_device(self.device)
        docs: list[ModelDoc] = []
        paths: list[Path] = []
        for member in range(self.committee_size):
            seed = self.seed + 1000 * iteration + member
            rng = np.random.default_rng(seed)
            data = member_subset(ok, self.subsample, rng)
            console.print(
                f"[bold]fine-tune[/] iteration {iteration} member {member + 1}/"
                f"{self.committee_size}: {len(data)} structures, freeze f{self.freeze}, "
                f"{trainable:,}/{total:,} parameters trainable"
            )
            settings = MaceTrainSettings(
                name=f"member{member}",
                seed=seed,
                max_num_epochs=self.epochs,
                batch_size=min(self.batch_size, max(1, len(data) - 1)),
                lr=self.lr,
                e0s=self.e0s,
                energy_weight=self.energy_weight,
                forces_weight=self.forces_weight,
                default_dtype=self.default_dtype,
                device=device,
                foundation_model=foundation,
                freeze=self.freeze,
                keep_foundation_elements=self.keep_foundation_elements,
            )
            path = run_mace_training(settings, data, Path.cwd() / f"member{member}")
            sha = sha256_file(path)
            model_id = f"{campaign}-it{iteration:03d}-m{member}-{sha[:8]}"
            records.put_model_file(model_id, path.read_bytes())
            paths.append(path)
            docs.append(
                ModelDoc(
                    model_id=model_id,
                    kind="committee-member",
                    campaign=campaign,
                    iteration=iteration,
                    member=member,
                    elements=elements,
                    foundation=Path(foundation).name,
                    freeze_level=self.freeze,
                    trainable_parameters=trainable,
                    total_parameters=total,
                    n_train=len(data),
                    training_set_hashes=[d.structure_hash for d in data],
                    file=ModelFile(filename=path.name, sha256=sha, size_bytes=path.stat().st_size),
                )
            )
        committee_metrics = None
        if validation:
            calc = committee_calculator(paths, device=device, dtype=self.default_dtype)
            committee_metrics = evaluate(calc, validation)
            for doc, path in zip(docs, paths, strict=True):
                doc.metrics = evaluate(
                    committee_calculator([path], device=device, dtype=self.default_dtype),
                    validation,
                )
        records.upsert("model_docs", [d.model_dump(mode="json") for d in docs], key=["model_id"])
        return FineTuneResult(
            models=docs,
            committee_metrics=committee_metrics,
            freeze_level=self.freeze,
            trainable_parameters=trainable,
            total_parameters=total,
            wall_time_s=time.perf_counter() - start,
        )
