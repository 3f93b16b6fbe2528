"""How fast the CLI answers: ``frostline --help``, ``models list`` and ``import frostline``.

    .venv/bin/python workflows/benchmarks/cli_startup.py [--repeats 5] [--dir CAMPAIGN_DIR]

Median of ``--repeats`` wall times (each a fresh process) of

- ``frostline --help``;
- ``frostline models list --dir DEMO``: DEMO is ``--dir`` (e.g. a finished
  ``campaigns/demo-h2-cu111``) or, by default, a demo-like campaign directory built here in a
  temporary folder: the demo's config copy and an embedded store holding what a 3-iteration demo
  records (campaign, iterations, 6 committee members stored as ``H,Cu``, an ACE surrogate);
- ``python -c "import frostline"``.

It also reports whether torch, mace or jobflow were imported by each command (they must not be for
``--help``; ``models list`` needs jobflow's store, not torch or mace). Prints the machine's load
average (the machine is shared: figures scale with it) and, last, exactly
``frostline --help median = X s`` (goal <= 1.0 s when idle).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPORT = (
    "print('HEAVY', *[m for m in ('torch', 'mace', 'jobflow') if m in sys.modules], "
    "file=sys.stderr)"
)
PROBE = (  # run the CLI as the console script does, then report the heavy modules imported
    "import runpy, sys; sys.argv = ['frostline', *sys.argv[1:]]\n"
    "try:\n    runpy.run_module('frostline.cli', run_name='__main__')\n"
    "except SystemExit: pass\n"
    f"finally:\n    {REPORT}"
)


def demo_like_dir(folder: Path) -> Path:
    """A campaign directory shaped like the demo's (config copy + embedded store), no training."""
    from frostline.config import CONFIG_COPY, StoreConfig, read_yaml
    from frostline.schemas import CampaignDoc, IterationDoc, ModelDoc, ModelFile
    from frostline.store import Records, make_job_store

    config = read_yaml(Path(__file__).resolve().parents[2] / "configs" / "demo_h2_cu111.yaml")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_COPY).write_text(yaml.safe_dump(config))
    records = Records(make_job_store(StoreConfig(), folder)).connect()
    name = config["name"]
    campaign = CampaignDoc(
        campaign=name, config=config, foundation="mini", oracle="xtb", elements=["Cu", "H"]
    )
    doc = campaign.model_dump(mode="json") | {"state": "stopped", "stop_reason": "max iterations"}
    records.upsert("campaigns", [doc], ["campaign"])
    for index, (mae, labelled) in enumerate([(213.6, 10), (170.2, 20), (164.9, 30)]):
        it = IterationDoc(
            campaign=name, index=index, n_labelled=labelled, n_selected=10, n_new_labels=10,
            n_candidates=48, n_accurate=8 * index, n_uncertain=45 - 8 * index, n_failed_frames=3,
            accurate_fraction=index / 6, force_mae_mev_per_a=mae,
        )  # fmt: skip
        records.upsert("iterations", [it.model_dump(mode="json")], ["campaign", "index"])
        for member in range(2):
            model_id = f"{name}-it{index:03d}-m{member}"
            data = f"model {model_id}".encode() * 100
            sha = records.put_model_file(model_id, data)
            model = ModelDoc(
                model_id=model_id, kind="committee-member", campaign=name, iteration=index,
                member=member, elements=["H", "Cu"], n_train=labelled,
                file=ModelFile(filename="member.model", sha256=sha, size_bytes=len(data)),
            )  # fmt: skip
            records.upsert("model_docs", [model.model_dump(mode="json")], ["model_id"])
    records.close()
    return folder


def wall_times(argv: list[str], repeats: int) -> tuple[list[float], str]:
    """Wall times of ``repeats`` fresh runs of ``argv``, and the heavy modules they imported."""
    times, heavy = [], ""
    for _ in range(repeats):
        start = time.perf_counter()
        res = subprocess.run(argv, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if res.returncode not in (0,):
            raise SystemExit(f"{' '.join(argv)} failed: {res.stderr.strip()[-500:]}")
        heavy = next((x for x in res.stderr.splitlines() if x.startswith("HEAVY")), "HEAVY ?")
    return times, heavy.removeprefix("HEAVY").strip() or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--dir", type=Path, default=None, help="campaign directory (default: built)"
    )
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        demo = args.dir or demo_like_dir(Path(tmp) / "demo-h2-cu111")
        cases = {
            "frostline --help": [py, "-c", PROBE, "--help"],
            f"frostline models list --dir {'DEMO' if args.dir is None else demo}": [
                py, "-c", PROBE, "models", "list", "--dir", str(demo)
            ],
            'python -c "import frostline"': [py, "-c", f"import sys, frostline; {REPORT}"],
        }  # fmt: skip
        load = os.getloadavg()
        print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
        medians = {}
        for label, argv in cases.items():
            times, heavy = wall_times(argv, args.repeats)
            medians[label] = statistics.median(times)
            shown = " ".join(f"{t:.2f}" for t in times)
            print(f"{label}: median {medians[label]:.2f} s ({shown}); imported: {heavy}")
    print(f"frostline --help median = {medians['frostline --help']:.2f} s")


if __name__ == "__main__":
    main()
