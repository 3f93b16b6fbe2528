"""mkdocs hooks: the generated configuration reference and the benchmark plots.

- ``reference/configuration.md`` is written at every build from the pydantic models
  (``frostline.config_reference``), so it lists every field of the campaign config;
- the plots under ``workflows/benchmarks/results`` are published as ``results/...`` (pages link
  them as ``../results/NAME/plot.png``) without copying them into ``docs/``.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

RESULTS = Path(__file__).resolve().parent.parent / "workflows" / "benchmarks"


def on_files(files, config):
    from frostline.config_reference import render_markdown

    files.append(File.generated(config, "reference/configuration.md", content=render_markdown()))
    for png in sorted((RESULTS / "results").rglob("*.png")):
        rel = png.relative_to(RESULTS).as_posix()
        files.append(File(rel, str(RESULTS), config["site_dir"], config["use_directory_urls"]))
    return files
