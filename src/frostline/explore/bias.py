"""Uncertainty-biased exploration: MD pushed towards configurations the model is unsure of.

Thermal MD rarely visits what decides a reaction (the stretched H-H bond of H2 dissociating on
Cu(111)) because such configurations are high in energy. Uncertainty-driven dynamics
(Kulichenko et al., Nat. Comput. Sci. 2023; with calibrated, gradient-based uncertainties and
bias stress: Zaverkin et al., npj Comput. Mater. 2024) adds to the model's energy a bias that
is lower where the model is less certain,

    E_b = A [exp(-sigma^2 / (N B^2)) - 1]        (<= 0, decreasing in sigma^2),

so the bias force ``-dE_b/dR = A / (N B^2) exp(-sigma^2 / (N B^2)) dsigma^2/dR`` pulls atoms up
the uncertainty, saturating once ``sigma^2 / N`` is well above ``B^2`` (the bias is bounded by
``A``; the thermostat is kept). ``A`` is ``explore.bias_strength`` (eV), ``B``
``explore.bias_width``.

Here ``sigma^2 = sum_i (a_z(i) sigma_i)^2``: the last-layer (LLPR) atomic variances of the model
driving the MD, each scaled by its element's calibrated scale ``a_z`` (eV/Å per unit score, from
the conformal fit of ``frostline.select.uncertainty.loop``), so ``sigma^2 / N`` is the mean
squared predicted atomic force error and ``B`` is in eV/Å. :class:`LastLayerBias` adds
``E_b`` to the model's own energy through forward hooks on its readouts' last linear layers: the
features are differentiable functions of the positions, so the force call's one backward pass
returns the biased forces (about one model's cost).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from frostline.select.uncertainty.last_layer import LLPR, LastLayerFeatures


def bias_energy(
    variance: torch.Tensor, n_atoms: torch.Tensor, strength: float, width: float
) -> torch.Tensor:
    """``A [exp(-sigma^2 / (N B^2)) - 1]`` per frame (eV; ``variance`` and ``n_atoms``: [G])."""
    return strength * torch.expm1(-variance / (n_atoms * width**2))


class LastLayerBias(LastLayerFeatures):
    """Hooks that add the uncertainty bias energy to a MACE model's energy (and so the bias
    force to its forces) in the model's own forward/backward pass.

    ``scales``: per element ``a_z`` (a conformal fit's ``element_scales``); None: raw LLPR
    standard deviations. Before each call on a new set of atoms, :meth:`layout` tells the hooks
    their elements and which frame each belongs to (a batch of replicas: one bias per frame).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        llpr: LLPR,
        strength: float,
        width: float,
        scales: dict[str, float] | None = None,
    ):
        if strength < 0 or width <= 0:
            raise ValueError(f"bias strength must be >= 0 and width > 0, got {strength}, {width}")
        self.llpr, self.strength, self.width = llpr, float(strength), float(width)
        self.scales = dict(scales or {})
        self._layout: tuple | None = None
        self.last_energy: np.ndarray | None = None  # E_b of the latest call, per frame (eV)
        super().__init__(model)

    def layout(self, symbols: Sequence[str], batch: Sequence[int] | None = None) -> None:
        """The elements of the atoms of the next calls and their frame indices (default: one
        frame)."""
        symbols = np.asarray(list(symbols))
        batch = np.zeros(len(symbols), dtype=int) if batch is None else np.asarray(batch)
        default = max(self.scales.values(), default=1.0)
        weight = np.array([self.scales.get(str(z), default) ** 2 for z in symbols])
        groups = []
        for z in np.unique(symbols):
            inverse = self.llpr._matrix(str(z))
            if inverse is None:
                raise ValueError(f"the LLPR state has no covariance for element {z}")
            groups.append((np.flatnonzero(symbols == z), inverse))
        self._layout = (groups, weight, batch, int(batch.max()) + 1 if len(batch) else 0)

    def close(self) -> None:
        """Detach the hooks (the model's energy is its own again)."""
        self.remove()

    def _keeper(self, i: int):
        last = i == len(self._layers) - 1

        def keep(_module, inputs, output):
            self._inputs[i] = inputs[0]  # not detached: the bias needs its gradient
            if last:
                return output + self._atom_bias(output).unsqueeze(-1)
            return None

        return keep

    def variance(self, features: torch.Tensor) -> torch.Tensor:
        """Per frame ``sum_i a_z^2 f_i^T C_z^-1 f_i`` of the laid-out atoms' features [n, d]."""
        if self._layout is None:
            raise RuntimeError("LastLayerBias.layout() was not called")
        groups, weight, batch, n_frames = self._layout
        if len(batch) != features.shape[0]:
            raise ValueError(f"bias laid out for {len(batch)} atoms, the call has {len(features)}")
        atom = torch.zeros(features.shape[0], dtype=features.dtype, device=features.device)
        for index, inverse in groups:
            idx = torch.as_tensor(index, device=features.device)
            f = features[idx]
            c = torch.as_tensor(inverse, dtype=features.dtype, device=features.device)
            atom = atom.index_add(0, idx, torch.einsum("ij,jk,ik->i", f, c, f))
        atom = atom * torch.as_tensor(weight, dtype=features.dtype, device=features.device)
        frames = torch.as_tensor(batch, device=features.device)
        return torch.zeros(n_frames, dtype=atom.dtype, device=atom.device).index_add(
            0, frames, atom
        )

    def _atom_bias(self, output: torch.Tensor) -> torch.Tensor:
        """Each atom's share of its frame's bias energy, in the readout's units (before the
        model's scale)."""
        features = torch.cat([g * x for g, x in zip(self._gains, self._inputs, strict=True)], 1)
        self._inputs = [None] * len(self._layers)
        _, _, batch, n_frames = self._layout
        frames = torch.as_tensor(batch, device=output.device)
        counts = torch.bincount(frames, minlength=n_frames).to(output.dtype)
        energy = bias_energy(self.variance(features), counts, self.strength, self.width)
        self.last_energy = energy.detach().cpu().numpy()
        return (energy / counts)[frames] / self._scale
