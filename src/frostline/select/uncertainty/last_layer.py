"""Last-layer prediction rigidity (LLPR) of one MACE model: an uncertainty for the price of one.

A MACE atom's energy is a linear function of the inputs of its readouts' last linear layers
(readout 0: the scalar node features; the non-linear last readout: its gated hidden layer),
times the scale of ``ScaleShiftMACE``. Those inputs, multiplied by the layers' normalisation
constants and the scale, are exactly the gradient of the atom's energy with respect to the
last-layer weights: the *last-layer features* ``f_i`` (Bigi, Chong, Ceriotti, Grasselli 2024).
With ``F`` the matrix of the training structures' features (``f_A = sum_i f_i``) the last-layer
Laplace approximation gives a structure's energy variance

    sigma^2(A) = alpha^2 f_A^T (F^T F + varsigma^2 I)^-1 f_A,

and an atom's local variance with ``f_i`` for ``f_A``. The features are read by forward hooks
during the model call that computes the forces (no second pass), so MD with this uncertainty
costs one model plus a ``d x d`` product per atom (``d`` = 80 for the mini foundations).
``alpha`` is left to the calibration (``frostline.select.uncertainty.calibration``), which
fits one scale per element on labelled batches; ``varsigma^2`` is ``regularizer`` times the
mean diagonal of ``F^T F``.

``covariance``: ``structures`` (Bigi et al.: one feature vector per training structure, what
an energy loss sees) or ``atoms`` (every training atom's ``f_i``, one matrix per element: what
a force loss constrains is local, and an element's environments are compared with that
element's training environments).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from ase import Atoms

COVARIANCES = ("structures", "atoms")
Covariance = Literal["structures", "atoms"]


def _last_linears(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The last linear layer of each readout (its input: the last-layer features)."""
    layers = []
    for readout in model.readouts:
        layer = getattr(readout, "linear_2", None) or getattr(readout, "linear", None)
        if layer is None or not hasattr(layer, "weight"):
            raise ValueError(f"unsupported MACE readout {type(readout).__name__}")
        layers.append(layer)
    return layers


def _weight_gain(layer: torch.nn.Module) -> float:
    """d(output)/d(weight_c) per unit input ``c`` of a scalar e3nn ``Linear`` (its path
    normalisation, e.g. ``1/sqrt(fan_in)``), measured with autograd on a probe input."""
    weight = layer.weight
    n_in = int(layer.irreps_in.dim)
    probe = torch.zeros(1, n_in, dtype=weight.dtype, device=weight.device)
    probe[0, 0] = 1.0
    frozen = not weight.requires_grad
    try:
        weight.requires_grad_(True)
        with torch.enable_grad():
            out = layer.forward(probe)[0, 0]  # not through forward hooks already on it
            (grad,) = torch.autograd.grad(out, weight)
    finally:
        weight.requires_grad_(not frozen)
    return float(grad.reshape(-1)[0])


class LastLayerFeatures:
    """Hooks on a MACE model that keep each call's per-atom last-layer features.

    After any forward call of ``model`` (for instance inside ``MACECalculator.calculate``),
    ``take()`` returns the ``(n_atoms, d)`` features of that call's atoms.
    """

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self._layers = _last_linears(model)
        scale = getattr(getattr(model, "scale_shift", None), "scale", None)
        self._scale = 1.0 if scale is None else float(torch.atleast_1d(scale)[0])
        self._gains = [_weight_gain(layer) * self._scale for layer in self._layers]
        self._inputs: list[torch.Tensor | None] = [None] * len(self._layers)
        self._handles = [
            layer.register_forward_hook(self._keeper(i)) for i, layer in enumerate(self._layers)
        ]

    def _keeper(self, i: int):
        def keep(_module, inputs, _output) -> None:
            self._inputs[i] = inputs[0].detach()

        return keep

    def take(self) -> np.ndarray:
        """The features of the last call (``(n_atoms, d)``, float64)."""
        if any(x is None for x in self._inputs):
            raise RuntimeError("no model call since the features were last taken")
        out = np.concatenate(
            [g * x.cpu().double().numpy() for g, x in zip(self._gains, self._inputs, strict=True)],
            axis=1,
        )
        self._inputs = [None] * len(self._layers)
        return out

    def remove(self) -> None:
        """Detach the hooks."""
        for handle in self._handles:
            handle.remove()


def calculator_features(calc, frames: Sequence[Atoms]) -> list[np.ndarray]:
    """Per frame, the ``(n_atoms, d)`` last-layer features of ``calc``'s first model."""
    hooks = LastLayerFeatures(calc.models[0])
    try:
        out = []
        for atoms in frames:
            work = atoms.copy()
            calc.reset()  # a new model call even for atoms the calculator has just seen
            work.calc = calc
            work.get_potential_energy()
            out.append(hooks.take())
        return out
    finally:
        hooks.remove()


@dataclass
class LLPR:
    """Inverse last-layer covariance fitted on training features; variances of new ones."""

    covariance: Covariance = "structures"
    regularizer: float = 1e-4
    inverse: dict[str, np.ndarray] = field(default_factory=dict)
    n_train: int = 0

    def __post_init__(self) -> None:
        if self.covariance not in COVARIANCES:
            raise ValueError(
                f"LLPR covariance must be one of {COVARIANCES}, got {self.covariance!r}"
            )
        if self.regularizer <= 0:
            raise ValueError(f"LLPR regularizer must be > 0, got {self.regularizer}")

    def fit(self, features: Sequence[np.ndarray], symbols: Sequence[Sequence[str]]) -> LLPR:
        """Fit on the training structures' per-atom features (and their atoms' elements)."""
        if not features:
            raise ValueError("LLPR needs at least one training structure")
        self.n_train = len(features)
        if self.covariance == "structures":
            stacked = np.stack([f.sum(axis=0) for f in features])
            self.inverse = {"*": self._invert(stacked)}
            return self
        rows = np.concatenate(features)
        elements = np.concatenate([np.asarray(s) for s in symbols])
        self.inverse = {str(z): self._invert(rows[elements == z]) for z in np.unique(elements)}
        return self

    def _invert(self, rows: np.ndarray) -> np.ndarray:
        gram = rows.T @ rows
        ridge = self.regularizer * max(float(np.mean(np.diag(gram))), 1e-300)
        return np.linalg.inv(gram + ridge * np.eye(gram.shape[0]))

    def _matrix(self, element: str) -> np.ndarray | None:
        return self.inverse.get("*", self.inverse.get(element))

    def atom_variances(self, features: np.ndarray, symbols: Sequence[str]) -> np.ndarray:
        """Per atom ``f_i^T C^-1 f_i`` (inf for an element no training atom had)."""
        symbols = np.asarray(symbols)
        out = np.full(len(symbols), np.inf)
        for z in np.unique(symbols):
            inverse = self._matrix(str(z))
            if inverse is None:
                continue
            mask = symbols == z
            f = features[mask]
            out[mask] = np.einsum("ij,jk,ik->i", f, inverse, f)
        return out

    def frame_variance(self, features: np.ndarray) -> float:
        """Structure energy variance ``f_A^T C^-1 f_A`` (``structures`` covariance only)."""
        inverse = self.inverse.get("*")
        if inverse is None:
            raise ValueError("a frame's energy variance needs covariance: structures")
        f = features.sum(axis=0)
        return float(f @ inverse @ f)
