"""Property-based fuzzing of user inputs (campaign configs, structure files) with hypothesis.

Each case is written to a file and given to the same checks ``frostline run`` makes before any
work (``load_config``, ``validate_campaign``, ``check_inputs``). The property: a case is either
accepted, or refused with a ``ConfigError`` / ``FoundationError`` whose message names the file
(and, for configs, the field); a refused case is also run through the CLI, which must exit with
code 2, print one message without a traceback, and create no campaign directory (no
half-written store). Accepted cases are not run (they would start a campaign).

Used by ``tests/reliability/test_fuzz_inputs.py`` and ``workflows/benchmarks/chaos.py``.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

BASE_CONFIG: dict[str, Any] = {
    "name": "fuzz",
    "elements": ["Cu", "H"],
    "foundation": "mini",
    "system": {"builder": "h2_cu111", "n_initial": 4, "n_validation": 2, "rattle": 0.05},
    "finetune": {"freeze": 6, "committee_size": 2, "epochs": 1, "batch_size": 2, "lr": 0.01},
    "explore": {"temperatures": [300.0], "steps": 8, "sample_every": 4, "timestep_fs": 1.0},
    "select": {"trust_lo": 0.05, "trust_hi": 0.5, "max_labels_per_iteration": 2},
    "oracle": {"name": "emt", "settings": {}},
    "convergence": {"max_iterations": 2, "label_budget": 50, "accurate_fraction": 0.9},
    "distill": {"enabled": False},
    "store": {"kind": "embedded"},
    "seed": 0,
}


def _leaf_paths(d: dict, prefix: tuple = ()) -> list[tuple]:
    out = []
    for k, v in d.items():
        out.append((*prefix, k))
        if isinstance(v, dict):
            out.extend(_leaf_paths(v, (*prefix, k)))
    return out


PATHS = _leaf_paths(BASE_CONFIG) + [("unknown_key",), ("system", "typo"), ("oracle", "timeout_s")]


def strategies():
    """(config_case, seeds_case, labelled_case) hypothesis strategies."""
    from hypothesis import strategies as st

    values = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**12), 10**12),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=20),
        st.sampled_from(["Xx", "", "mini", "/nonexistent/model.model", "h2_cu111", "mongodb"]),
        st.lists(st.one_of(st.integers(-5, 5), st.text(max_size=3), st.floats()), max_size=3),
        st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    )
    mutation = st.tuples(st.sampled_from(PATHS), values)
    raw = st.sampled_from(
        [b"", b"\x00\xff\xfe binary", b"name: [unclosed", b"- a\n- b\n", b"42", b"\t- x: y"]
    )
    config_case = st.one_of(st.lists(mutation, min_size=1, max_size=3), raw)

    coord = st.one_of(
        st.floats(-5, 15, allow_nan=False), st.sampled_from([math.nan, math.inf, 1e300])
    )
    symbol = st.sampled_from(["Cu", "Cu", "H", "Xx", "Q", "cu", "Au"])
    atom = st.tuples(symbol, coord, coord, coord)
    lattice = st.sampled_from(["12 0 0 0 12 0 0 0 20", "0 0 0 0 0 0 0 0 0", "nan 0 0 0 1 0 0 0 1"])
    structure = st.fixed_dictionaries(
        {
            "atoms": st.lists(atom, min_size=0, max_size=4),
            "huge": st.integers(0, 9).map(lambda x: x == 0),
            "lattice": lattice,
            "count_delta": st.sampled_from([0, 0, 0, 1, -1]),
            "energy": st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
            "junk": st.sampled_from(["", "", "", "garbage line\n", "1 2 3\n"]),
        }
    )
    structures = st.one_of(st.lists(structure, min_size=1, max_size=3), raw)
    return config_case, structures


def config_bytes(case) -> bytes:
    if isinstance(case, bytes):
        return case
    data = copy.deepcopy(BASE_CONFIG)
    for path, value in case:
        node = data
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[path[-1]] = value
    return yaml.safe_dump(data, sort_keys=False).encode()


def extxyz_bytes(case, labelled: bool) -> bytes:
    if isinstance(case, bytes):
        return case
    lines = []
    for s in case:
        atoms = list(s["atoms"])
        if s["huge"]:
            atoms = [
                ("Cu", 2.0 * (i % 40), 2.0 * (i // 40 % 40), 2.0 * (i // 1600)) for i in range(2001)
            ]
        props = "species:S:1:pos:R:3" + (":forces:R:3" if labelled else "")
        info = f'Lattice="{s["lattice"]}" Properties={props} pbc="T T T"'
        if labelled and s["energy"] is not None:
            info += f" energy={s['energy']}"
        lines.append(str(len(atoms) + s["count_delta"]))
        lines.append(info)
        for sym, x, y, z in atoms:
            forces = " 0.1 -0.1 0.0" if labelled else ""
            lines.append(f"{sym} {x} {y} {z}{forces}")
        if s["junk"]:
            lines.append(s["junk"].rstrip("\n"))
    return ("\n".join(lines) + "\n").encode()


def _validate(config_path: Path) -> None:
    from frostline.config import load_config
    from frostline.flows.campaign import check_inputs, validate_campaign

    config = load_config(config_path)
    validate_campaign(config)
    check_inputs(config)


def check_case(config_path: Path, campaign_dir: Path, names: list[str]) -> str:
    """Run the property on one config file; ``names``: strings the error must mention (any)."""
    from typer.testing import CliRunner

    from frostline.cli import app
    from frostline.config import ConfigError
    from frostline.finetune.foundation import FoundationError

    try:
        _validate(config_path)
    except (ConfigError, FoundationError) as exc:
        message = str(exc)
        assert any(n in message for n in names), f"error does not name {names}: {message}"
    else:
        return "accepted"
    res = CliRunner().invoke(app, ["run", str(config_path), "--dir", str(campaign_dir)])
    assert res.exit_code == 2, f"exit {res.exit_code}: {res.output}"
    assert "Traceback" not in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert str(config_path) in res.output.replace("\n", ""), res.output
    assert not campaign_dir.exists(), "a refused input left a campaign directory"
    return "refused"


def check_config_case(case, folder: Path, counts: Counter) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    n = sum(counts.values())
    path = folder / f"config{n}.yaml"
    path.write_bytes(config_bytes(case))
    counts["config " + check_case(path, folder / f"c{n}", [str(path)])] += 1


def check_structure_case(case, folder: Path, counts: Counter, labelled: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    n = sum(counts.values())
    kind = "labelled" if labelled else "seeds"
    path = folder / f"{kind}{n}.extxyz"
    path.write_bytes(extxyz_bytes(case, labelled))
    config = copy.deepcopy(BASE_CONFIG)
    config["system"]["builder"] = None
    config["system"]["labelled_file" if labelled else "seeds_file"] = str(path)
    if labelled:
        config["system"]["seeds_file"] = None
    cfg_path = folder / f"{kind}{n}.yaml"
    cfg_path.write_text(yaml.safe_dump(config, sort_keys=False))
    counts[f"{kind} " + check_case(cfg_path, folder / f"c{n}", [str(path)])] += 1


def file_and_name_strategies():
    """(model_file_case, name_case) hypothesis strategies: foundation files that are truncated
    (at a random length), random bytes or a directory; names too long or naming a path."""
    from hypothesis import strategies as st

    model_file = st.one_of(
        st.tuples(st.just("truncated"), st.integers(0, 400_000)),
        st.tuples(st.just("random"), st.binary(max_size=4096)),
        st.just(("directory", b"")),
    )
    names = st.one_of(
        st.text(alphabet="abcxyz_-.0123", min_size=65, max_size=400),
        st.sampled_from(["..", ".", "...", "../up", "a/b", "/abs", "~", "a b", ""]),
    )
    return model_file, names


def check_model_file_case(case, folder: Path, counts: Counter) -> None:
    """A foundation file that cannot be a model: refused in one line naming the file."""
    from frostline.finetune.foundation import MINI_FOUNDATION

    folder.mkdir(parents=True, exist_ok=True)
    n = sum(counts.values())
    kind, data = case
    path = folder / f"foundation{n}.model"
    if kind == "directory":
        path.mkdir()
    elif kind == "truncated":
        path.write_bytes(
            MINI_FOUNDATION.read_bytes()[: min(data, MINI_FOUNDATION.stat().st_size - 1)]
        )
    else:
        path.write_bytes(data)
    config = {**copy.deepcopy(BASE_CONFIG), "foundation": str(path)}
    cfg_path = folder / f"model{n}.yaml"
    cfg_path.write_text(yaml.safe_dump(config, sort_keys=False))
    counts["model file " + check_case(cfg_path, folder / f"c{n}", [str(path)])] += 1


def check_name_case(name: str, folder: Path, counts: Counter) -> None:
    """A campaign name that is too long or names a path: refused naming the field."""
    folder.mkdir(parents=True, exist_ok=True)
    n = sum(counts.values())
    cfg_path = folder / f"name{n}.yaml"
    cfg_path.write_text(yaml.safe_dump({**BASE_CONFIG, "name": name}, sort_keys=False))
    counts["name " + check_case(cfg_path, folder / f"c{n}", ["field 'name'"])] += 1
