"""MACE models in the store as weights plus architecture JSON, loaded without unpickling.

A ``.model`` file written by mace-torch is a pickled ``torch.nn.Module``: loading it runs
whatever code the pickle names, so a model blob swapped in a shared store (with a matching
sha256 written next to it: the checksum comes from the same database) would run code on every
machine that loads it. frostline therefore stores each fine-tuned model as one
``torch.save``'d dictionary of plain data (:data:`FORMAT`, the architecture as a JSON string,
the state dict) read back with ``torch.load(..., weights_only=True)`` (honoured even though
importing mace sets ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``: that variable only applies when
``weights_only`` is not given). The architecture (mace-torch's
``extract_config_mace_model``) names classes and functions as strings that are resolved only
from :data:`ALLOWED_MODULES` / :data:`ALLOWED_FUNCTIONS`; the model is rebuilt and its weights
loaded. ``.model`` files for users are written on export, from the rebuilt model.

Model files a user gives (a foundation) are the user's own trust decision: they are loaded as
mace-torch writes them (pickled), see :func:`load_user_model_file`.
"""

from __future__ import annotations

import importlib
import io
import json
from pathlib import Path
from typing import Any

import mace  # noqa: F401
import numpy as np
import torch

from frostline.finetune.coupling_cache import cache_coupling_matrices

FORMAT = "frostline-mace-weights-1"
"""Value of the ``format`` key of a stored model blob."""
ALLOWED_MODULES = ("mace.modules.models", "mace.modules.blocks", "mace.modules.radial")
"""Modules whose ``torch.nn.Module`` classes an architecture may name."""
ALLOWED_FUNCTIONS = frozenset(
    f"torch.nn.functional.{name}"
    for name in ("silu", "tanh", "relu", "gelu", "sigmoid", "softplus", "elu", "selu")
)
"""Activation functions an architecture may name (mace's gates)."""


class ModelFormatError(ValueError):
    """A stored model is not a frostline weights blob, or names something not allowed."""


# -- architecture <-> JSON ---------------------------------------------------------------------
def _qualname(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def _encode(value: Any) -> Any:
    """A JSON-able form of one ``extract_config_mace_model`` value."""
    from e3nn import o3

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, o3.Irreps):
        return {"$irreps": str(value)}
    if isinstance(value, (np.ndarray, torch.Tensor)):
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
        kind = "$tensor" if isinstance(value, torch.Tensor) else "$array"
        return {kind: array.tolist(), "dtype": str(array.dtype)}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, type):
        return {"$class": _qualname(value)}
    if callable(value) and _qualname(value) in ALLOWED_FUNCTIONS:
        return {"$function": _qualname(value)}
    name = _qualname(value) if callable(value) else type(value).__name__
    raise ModelFormatError(f"cannot store a model whose architecture holds {name}")


def resolve_class(name: str) -> type:
    """The ``torch.nn.Module`` class ``name`` if it lives in :data:`ALLOWED_MODULES`."""
    module, _, attr = name.rpartition(".")
    if module not in ALLOWED_MODULES or not attr.isidentifier():
        raise ModelFormatError(f"architecture names class {name!r}, not an allowed mace class")
    cls = getattr(importlib.import_module(module), attr, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ModelFormatError(f"architecture names class {name!r}, not an allowed mace class")
    return cls


def resolve_function(name: str):
    """The activation function ``name`` if it is one of :data:`ALLOWED_FUNCTIONS`."""
    if name not in ALLOWED_FUNCTIONS:
        raise ModelFormatError(f"architecture names function {name!r}, not an allowed one")
    module, _, attr = name.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def _decode(value: Any) -> Any:
    """The inverse of :func:`_encode`, resolving names only from the allow-lists."""
    from e3nn import o3

    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "$irreps" in value:
        return o3.Irreps(str(value["$irreps"]))
    if "$array" in value:
        return np.asarray(value["$array"], dtype=np.dtype(str(value["dtype"])))
    if "$tensor" in value:
        array = np.asarray(value["$tensor"], dtype=np.dtype(str(value["dtype"])))
        return torch.from_numpy(array)
    if "$class" in value:
        return resolve_class(str(value["$class"]))
    if "$function" in value:
        return resolve_function(str(value["$function"]))
    return {k: _decode(v) for k, v in value.items()}


def architecture(model: torch.nn.Module) -> dict[str, Any]:
    """A MACE model's architecture as JSON-able data (class, constructor config, dtype)."""
    from mace.tools.scripts_utils import extract_config_mace_model

    config = extract_config_mace_model(model)
    if "error" in config:
        raise ModelFormatError(f"cannot store a {type(model).__name__}: {config['error']}")
    return {
        "class": _qualname(type(model)),
        "config": _encode(config),
        "avg_num_neighbors": [float(i.avg_num_neighbors) for i in model.interactions],
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
    }


# -- blobs ---------------------------------------------------------------------------------------
def model_to_blob(model: torch.nn.Module) -> bytes:
    """The stored form of ``model``: format tag, architecture JSON and state dict."""
    arch = json.dumps(architecture(model))
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "architecture": arch, "state_dict": state}, buf)
    return buf.getvalue()


def model_file_to_blob(path: Path | str) -> bytes:
    """The stored form of a ``.model`` file this process trained (a file frostline wrote)."""
    return model_to_blob(torch.load(str(path), map_location="cpu", weights_only=False))


def read_blob(data: bytes, label: str = "model") -> dict[str, Any]:
    """The blob's dictionary, read with ``weights_only=True`` (nothing is unpickled)."""
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception:  # refused by the weights-only unpickler, truncated, not a torch file
        payload = None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFormatError(
            f"model {label} is not stored as frostline weights (a pickled .model written "
            "before frostline stored weights, or not a model): if you trust this store, "
            "`frostline models migrate` converts it"
        )
    return payload


def model_from_blob(data: bytes, label: str = "model") -> torch.nn.Module:
    """Rebuild a model from its stored form (see the module docstring); eval mode."""
    payload = read_blob(data, label)
    cache_coupling_matrices()
    try:
        arch = json.loads(payload["architecture"])
        cls = resolve_class(arch["class"])
        config = _decode(arch["config"])
        dtype = getattr(torch, arch["dtype"])
        if not isinstance(dtype, torch.dtype):
            raise ModelFormatError(f"model {label}: unknown dtype {arch['dtype']!r}")
        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            model = cls(**config)
        finally:
            torch.set_default_dtype(previous)
        for block, avg in zip(model.interactions, arch["avg_num_neighbors"], strict=True):
            block.avg_num_neighbors = float(avg)
        model.to(dtype).load_state_dict(payload["state_dict"], strict=True)
    except ModelFormatError:
        raise
    except Exception as exc:  # a malformed architecture or state dict: one line
        text = " ".join(str(exc).split())[:200]
        raise ModelFormatError(f"model {label}: cannot rebuild it ({text})") from None
    return model.eval()


def write_model_file(model: torch.nn.Module, path: Path | str) -> Path:
    """A mace-torch ``.model`` file of a rebuilt model (for users and mace's own tools)."""
    torch.save(model, str(path))
    return Path(path)


def load_user_model_file(path: Path | str, what: str = "foundation"):
    """Load a ``.model`` file the user gave (pickled, as mace-torch writes them).

    Unpickling runs code named in the file: a foundation file is the user's trust decision,
    as with any mace-torch model. A directory, a truncated or a random file is one
    ``ModelFormatError`` line naming the file.
    """
    path = Path(path)
    if path.is_dir():
        raise ModelFormatError(f"{what} model {path} is a directory, not a .model file")
    try:
        model = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated, random bytes, another format
        text = " ".join(str(exc).split()).split(". ")[0][:120] or type(exc).__name__
        raise ModelFormatError(
            f"{what} model {path} is not a readable mace-torch .model file ({text})"
        ) from None
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "atomic_numbers"):
        raise ModelFormatError(f"{what} model {path} is not a MACE model file")
    return model
