"""ASE calculator factories referenced by import path from atomate2 makers."""

from __future__ import annotations

from ase.calculators.calculator import Calculator


def chgnet_calculator(model_name: str | None = None, device: str = "cpu") -> Calculator:
    """CHGNet calculator (0.3.0 PBE by default, ``"r2scan"`` for its r2SCAN model); offline."""
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    model = (
        CHGNet.load(model_name=model_name, verbose=False)
        if model_name
        else CHGNet.load(verbose=False)
    )
    return CHGNetCalculator(model=model, use_device=device)


def xtb_calculator(
    method: str = "GFN1-xTB", electronic_temperature: float = 1000.0, max_iterations: int = 250
) -> Calculator:
    """GFN-xTB through tblite (periodic)."""
    from tblite.ase import TBLite

    return TBLite(
        method=method,
        electronic_temperature=electronic_temperature,
        max_iterations=max_iterations,
        verbosity=0,
    )
