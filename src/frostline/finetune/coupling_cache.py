"""mace-torch's coupling (Clebsch-Gordan) matrices computed once per process.

Every MACE model mace-torch builds (each committee member's training, each model rebuilt from
the store) computes the symmetric contractions' U matrices again with
``mace.tools.cg.U_matrix_real``, a float64 contraction of Wigner 3j symbols: 0.3-0.5 s of the
1.3-1.7 s a mini model takes to rebuild on a quiet core, and most of it when torch's threads
share busy cores (docs/dev/testing.md, 2026-12-08). The matrices depend on their arguments only
(irreps, correlation order, dtype), so :func:`cache_coupling_matrices` keeps them per process
and hands every caller its own copy: a model that loads a state dict into its buffers never
writes into the cache.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

_CACHED = "_frostline_cached"


def _key(args: tuple, kwargs: dict) -> tuple | None:
    """A hashable key of one ``U_matrix_real`` call (None: not cacheable, compute it)."""
    names = ("irreps_in", "irreps_out", "correlation", "normalization", "filter_ir_mid")
    names += ("dtype", "use_cueq_cg", "use_nonsymmetric_product")
    bound = dict(zip(names, args, strict=False)) | kwargs
    bound["irreps_in"], bound["irreps_out"] = str(bound["irreps_in"]), str(bound["irreps_out"])
    bound["dtype"] = bound.get("dtype") or torch.get_default_dtype()
    if (mid := bound.get("filter_ir_mid")) is not None:
        bound["filter_ir_mid"] = tuple(tuple(ir) for ir in mid)
    try:
        key = tuple(sorted(bound.items()))
        hash(key)
    except TypeError:
        return None
    return key


def _copy(value: list[Any]) -> list[Any]:
    return [v.clone() if isinstance(v, torch.Tensor) else v for v in value]


def cache_coupling_matrices() -> None:
    """Make mace-torch's symmetric contraction reuse its coupling matrices (idempotent)."""
    from mace.modules import symmetric_contraction

    compute = symmetric_contraction.U_matrix_real
    if getattr(compute, _CACHED, False):
        return
    store: dict[tuple, list[Any]] = {}

    @functools.wraps(compute)
    def cached(*args, **kwargs):
        if (key := _key(args, kwargs)) is None:
            return compute(*args, **kwargs)
        if key not in store:
            store[key] = _copy(compute(*args, **kwargs))
        return _copy(store[key])

    setattr(cached, _CACHED, True)
    symmetric_contraction.U_matrix_real = cached
