"""Shared fixtures: the shipped mini foundation, tiny campaign configs, stores."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

from frostline.testing.campaigns import tiny_campaign  # noqa: F401  (tests import it from here)

os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def foundation() -> str:
    """The mini MACE foundation shipped with frostline (CHGNet-distilled, committed)."""
    from frostline.finetune.foundation import MINI_FOUNDATION

    assert MINI_FOUNDATION.exists(), "run `frostline foundation build-mini` first"
    return str(MINI_FOUNDATION)


@pytest.fixture
def job_store(tmp_path: Path):
    """An embedded (montydb) job store with frostline's collections."""
    from frostline.config import StoreConfig
    from frostline.store import make_job_store

    return make_job_store(StoreConfig(), tmp_path)


@pytest.fixture(scope="session")
def secantus_server(tmp_path_factory):
    """A real MongoDB wire-protocol server (SecantusDB) on a free port, for the whole session.

    Tests share it and isolate themselves by database name (``mongodb_store_config``).
    """
    from secantus import SecantusDBServer

    server = SecantusDBServer(storage_path=str(tmp_path_factory.mktemp("secantus")), port=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mongodb_store_config(secantus_server):
    """A ``StoreConfig`` for a fresh database on the SecantusDB server."""
    import uuid

    from frostline.config import StoreConfig

    return StoreConfig(kind="mongodb", uri=secantus_server.uri, database=f"t{uuid.uuid4().hex}")


@pytest.fixture
def embedded(tmp_path):
    """A populated embedded campaign store (``helpers.registry.populate``) and its CLI arguments."""
    from helpers.registry import make_backend, populate

    backend = make_backend("embedded", tmp_path, None)
    populate(backend.records)
    yield backend
    backend.records.close()


@functools.cache
def tiny_model_blob() -> bytes:
    """A stored-model blob (weights + architecture) of a tiny MACE (4 channels, ~30 kB): the
    mini foundation's architecture shrunk, random weights; for tests of the registry."""
    import torch
    from e3nn import o3

    from frostline.finetune.foundation import MINI_FOUNDATION
    from frostline.finetune.safe_model import _decode, architecture, model_to_blob, resolve_class

    arch = architecture(torch.load(MINI_FOUNDATION, map_location="cpu", weights_only=False))
    config = _decode(arch["config"])
    small = {"hidden_irreps": o3.Irreps("4x0e"), "MLP_irreps": o3.Irreps("4x0e")}
    config.update(small, radial_MLP=[8], num_bessel=4, max_ell=1, correlation=2)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(0)
        model = resolve_class(arch["class"])(**config)
    finally:
        torch.set_default_dtype(previous)
    return model_to_blob(model)


def exported_weights_match(path, blob: bytes) -> bool:
    """The ``.model`` file at ``path`` (an export) holds the weights of stored ``blob``."""
    import torch

    from frostline.finetune.safe_model import read_blob

    model = torch.load(path, map_location="cpu", weights_only=False)  # a file the test wrote
    state = read_blob(blob)["state_dict"]
    exported = model.state_dict()
    return exported.keys() == state.keys() and all(
        torch.equal(exported[k], state[k]) for k in state
    )
