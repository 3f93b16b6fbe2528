"""Freeze levels named as in Radova et al. (2025) and mace-torch's ``--freeze N``.

mace-torch freezes modules by name: N>=1 the node embedding, N>=5 also the interactions,
N>=6 also the products, N>=7 also the readouts (2-4 act like 1). Buffers (atomic energies,
scale/shift, radial basis) are never trainable, so a ZBL module does not shift these levels.
"""

from __future__ import annotations

from enum import IntEnum

import torch

FREEZE_MODULES: dict[int, tuple[str, ...]] = {
    0: (),
    1: ("node_embedding",),
    5: ("node_embedding", "interactions"),
    6: ("node_embedding", "interactions", "products"),
    7: ("node_embedding", "interactions", "products", "readouts"),
}


class FreezeLevel(IntEnum):
    """Frozen transfer-learning levels (f0 = full fine-tune ... f7 = everything frozen)."""

    F0 = 0
    F1 = 1
    F5 = 5
    F6 = 6
    F7 = 7


def frozen_modules(level: int) -> tuple[str, ...]:
    """Names of the MACE sub-modules that ``--freeze level`` freezes."""
    if level <= 0:
        return ()
    effective = max(k for k in FREEZE_MODULES if k <= level)
    return FREEZE_MODULES[effective]


def apply_freeze(model: torch.nn.Module, level: int) -> None:
    """Set ``requires_grad`` as mace-torch's ``--freeze level`` does."""
    names = frozen_modules(level)
    for name, module in model.named_children():
        for p in module.parameters(recurse=True):
            p.requires_grad = name not in names


def count_parameters(model: torch.nn.Module, level: int | None = None) -> tuple[int, int]:
    """Return (trainable, total) parameter counts of ``model`` at freeze ``level``.

    With ``level`` None the model's own ``requires_grad`` flags are counted.
    """
    total = sum(p.numel() for p in model.parameters())
    if level is None:
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    else:
        names = frozen_modules(level)
        trainable = sum(
            p.numel()
            for name, module in model.named_children()
            if name not in names
            for p in module.parameters()
        )
    return trainable, total


def lora_parameters(model: torch.nn.Module, rank: int, alpha: float = 1.0) -> tuple[int, int]:
    """(trainable, total) of a LoRA fine-tune: the adapters mace-torch's ``--lora`` injects
    (rank ``rank``) into a copy of ``model``, of the foundation's parameters."""
    import copy

    from mace.modules.lora import inject_LoRAs

    adapted = inject_LoRAs(copy.deepcopy(model), rank=rank, alpha=alpha)
    trainable = sum(p.numel() for p in adapted.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())
