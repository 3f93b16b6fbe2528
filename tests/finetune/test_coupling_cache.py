"""The per-process cache of mace-torch's coupling matrices: same values, never shared."""

from __future__ import annotations

import torch
from mace.modules import symmetric_contraction
from mace.tools.cg import U_matrix_real

from frostline.finetune.coupling_cache import cache_coupling_matrices


def test_cached_matrices_equal_mace_torchs_and_are_copies():
    cache_coupling_matrices()
    cache_coupling_matrices()  # idempotent: one wrapper, not two
    cached = symmetric_contraction.U_matrix_real
    assert cached is not U_matrix_real and cached.__wrapped__ is U_matrix_real
    for args in (("1x0e+1x1o", "1x0e", 2), ("1x0e+1x1o+1x2e", "1x0e+1x1o", 3)):
        for dtype in (torch.float32, torch.float64):
            first = cached(*args, dtype=dtype)
            first[-1].mul_(0.0)  # a model loading a state dict writes into its buffers
            again, reference = cached(*args, dtype=dtype), U_matrix_real(*args, dtype=dtype)
            assert again[-1].dtype == dtype
            assert torch.equal(again[-1], reference[-1]) and again[0] == reference[0]
            assert again[-1].abs().sum() > 0


def test_the_key_tells_dtypes_and_irreps_apart():
    cache_coupling_matrices()
    cached = symmetric_contraction.U_matrix_real
    a = cached("1x0e+1x1o", "1x0e", 2, dtype=torch.float32)[-1]
    b = cached("1x0e+1x1o", "1x0e", 2, dtype=torch.float64)[-1]
    c = cached("1x0e+1x1o", "1x1o", 2, dtype=torch.float32)[-1]
    assert (a.dtype, b.dtype) == (torch.float32, torch.float64)
    assert a.shape != c.shape
    previous = torch.get_default_dtype()
    try:  # dtype None: the default dtype of the moment, as mace-torch reads it
        torch.set_default_dtype(torch.float64)
        assert cached("1x0e+1x1o", "1x0e", 2)[-1].dtype == torch.float64
        torch.set_default_dtype(torch.float32)
        assert cached("1x0e+1x1o", "1x0e", 2)[-1].dtype == torch.float32
    finally:
        torch.set_default_dtype(previous)
