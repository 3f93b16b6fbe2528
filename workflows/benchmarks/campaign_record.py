"""What the selection benchmarks read from a finished campaign, from its store or its archive.

A campaign folder (its MongoDB-file store, models, memo) lives under the benchmark's output
folder and is not in the repository: a fresh checkout loses it, and with it hours of
campaigns. When ``selection.py`` has evaluated a finished campaign it writes
``OUT/FOLDER.campaign.json`` beside the folder (committed with the results): the status
document (every iteration's labels and validation figures), the labelled structures (training
labels with the iteration that bought them, validation structures), the campaign's config and
the oracle-MD test curves. ``selection.py`` and ``label_sets.py`` read that archive when the
folder is gone, so their tables, ratios and retrained label sets (whose ledger keys hash the
same structures) survive the checkout; a campaign asked for more iterations than its archive
holds must be run again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ase import Atoms

from frostline.registry.data import labelled_filter
from frostline.registry.queries import campaign_status, open_campaign_dir
from frostline.schemas import LabelledStructure

ARCHIVE_SUFFIX = ".campaign.json"
ARCHIVE_VERSION = 1


def archive_path(folder: Path) -> Path:
    """``OUT/FOLDER.campaign.json``: the archive of the campaign in ``OUT/FOLDER``."""
    return folder.with_name(folder.name + ARCHIVE_SUFFIX)


def has_store(folder: Path) -> bool:
    """Whether ``folder`` holds a campaign's own files (its store), not only an archive."""
    return (folder / "campaign.yaml").exists()


def finished_iterations(folder: Path) -> int:
    """Iterations the campaign with its store in ``folder`` finished (0: not finished).

    Its ``finished`` marker holds the iterations it was run for (an empty marker, written
    before markers held them: the stored ``campaign.yaml``'s ``convergence.max_iterations``).
    """
    import yaml

    finished = folder / "finished"
    if not finished.exists():
        return 0
    text = finished.read_text().strip()
    if text:
        return int(text)
    stored = yaml.safe_load((folder / "campaign.yaml").read_text())
    return int(stored["convergence"]["max_iterations"])


@dataclass
class CampaignRecord:
    """A finished campaign as the benchmarks read it (from its store, or its archive).

    ``iterations``: the iterations the campaign was run for; ``status``: the ``frostline
    status --json`` document; ``labelled``: the successfully labelled structures' documents
    (training and validation); ``config``: the stored ``campaign.yaml``; ``md_test``: the
    oracle-MD test curves (``selection.py``'s cache: its test-set key, ``mae``, ``p95``,
    ``by_element``, ``by_temperature``) or None.
    """

    iterations: int
    status: dict[str, Any]
    labelled: list[dict[str, Any]]
    config: dict[str, Any]
    md_test: dict[str, Any] | None = None

    @classmethod
    def from_store(cls, folder: Path, iterations: int) -> CampaignRecord:
        """Read the campaign in ``folder`` (its store and ``campaign.yaml``)."""
        import yaml

        records = open_campaign_dir(folder)
        status = campaign_status(records)
        docs = records.find("labelled", labelled_filter(status["campaign"], "all"))
        cache = folder / "md-test-curve.json"
        return cls(
            iterations=iterations,
            status=status,
            labelled=[{k: v for k, v in d.items() if k != "_id"} for d in docs],
            config=yaml.safe_load((folder / "campaign.yaml").read_text()),
            md_test=json.loads(cache.read_text()) if cache.exists() else None,
        )

    @classmethod
    def from_archive(cls, path: Path) -> CampaignRecord:
        """Read an archive written by ``save`` (a clear error naming the file if it is not one)."""
        try:
            doc = json.loads(path.read_text())
            if doc.get("version") != ARCHIVE_VERSION:
                raise ValueError(f"version {doc.get('version')!r}, expected {ARCHIVE_VERSION}")
            return cls(**{k: doc[k] for k in ("iterations", "status", "labelled", "config")},
                       md_test=doc.get("md_test"))  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise SystemExit(f"{path}: not a readable campaign archive ({err})") from err

    @classmethod
    def load(cls, folder: Path) -> CampaignRecord:
        """The campaign in ``folder`` from its store when present, else from its archive."""
        archive = archive_path(folder)
        if has_store(folder):
            return cls.from_store(folder, finished_iterations(folder))
        if archive.exists():
            return cls.from_archive(archive)
        raise SystemExit(f"no campaign in {folder} and no archive {archive} (run selection.py)")

    def save(self, path: Path) -> Path:
        """Write the archive atomically (JSON; datetimes as ISO strings)."""
        doc = {"version": ARCHIVE_VERSION, **self.__dict__}
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(doc, default=str))  # key order kept (temperatures)
        partial.replace(path)
        return path

    def curve(self) -> list[tuple[int, float]]:
        """(training labels, validation force MAE meV/Å) of every iteration's committee."""
        return [(it["n_labelled"], it["force_mae_mev_per_a"]) for it in self.status["iterations"]]

    def structures(self, role: str) -> list[LabelledStructure]:
        """The labelled structures of ``role`` (train / validation), in stored order."""
        return [
            LabelledStructure.model_validate(d)
            for d in self.labelled
            if d.get("role") == role and d.get("status") == "ok"
        ]

    def label_temperatures(self, before: int | None = None) -> dict[str, int]:
        """Training labels bought per exploration temperature ("initial": the seeds); with
        ``before``, only those bought before iteration ``before`` (its model's training set:
        a campaign run for more iterations than it is read for)."""
        counts: dict[str, int] = {}
        for doc in self.labelled:
            if doc.get("role") != "train" or doc.get("status") != "ok":
                continue
            bought_at = (doc.get("provenance") or {}).get("iteration", -1)
            if before is not None and bought_at >= before:
                continue
            t = (doc.get("provenance") or {}).get("temperature")
            key = "initial" if t is None else f"{t:.0f} K"
            counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items()))

    def label_sets(self, where: str = "") -> list[tuple[int, list[Atoms]]]:
        """(labels, training set) before every iteration: the labels bought before it."""
        bought = self.structures("train")
        sets = []
        for it in self.status["iterations"]:
            before = [b.to_atoms() for b in bought if b.provenance.iteration < it["index"]]
            if len(before) != it["n_labelled"]:
                raise SystemExit(
                    f"{where}: iteration {it['index']} trained on {it['n_labelled']} labels, "
                    f"the record holds {len(before)} bought before it"
                )
            sets.append((it["n_labelled"], before))
        return sets
