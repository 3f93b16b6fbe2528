"""A committee of MACE models that evaluates the frozen trunk they share only once.

Members fine-tuned with ``--freeze 6`` keep the foundation's node embedding, interactions and
products bit for bit; only the readouts (and the E0s when they are estimated per member's data)
differ. Which modules are shared is decided from the members' actual tensors
(:func:`module_sharing`), never from a freeze level: when the trunk modules are identical in every
member the node features are computed once and each member adds its own readouts, atomic energies
and scale/shift; otherwise every member runs in full (the fallback, as ``MACECalculator`` does).

Forces: exploration MD needs only the committee-mean force, which is one backward pass of the mean
energy (forces are linear in the energy). Per-member forces, needed for the force deviation on
sampled frames, come from K vector-Jacobian products through the one shared graph, either batched
(``torch.autograd.grad(..., is_grads_batched=True)``) or one after the other. The spread of
per-atom energies across members (``energies_var``) is an uncertainty with no extra backward.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import mace  # noqa: F401  (import mace before e3nn: DESIGN.md §5)
import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from mace.data.neighborhood import get_neighborhood
from mace.modules.utils import GraphContext, prepare_graph
from mace.tools.scatter import scatter_sum

from frostline.choices import Dtype
from frostline.finetune.committee import resolve_device

#: Modules whose outputs are the node features every readout reads (plus ZBL when present).
TRUNK_MODULES = (
    "node_embedding",
    "radial_embedding",
    "spherical_harmonics",
    "interactions",
    "products",
    "pair_repulsion_fn",
)
#: Modules evaluated per member on top of the shared node features.
HEAD_MODULES = ("atomic_energies_fn", "readouts", "scale_shift")
#: Architectures the shared path knows how to split (others always run in full).
SPLITTABLE = ("MACE", "ScaleShiftMACE")
#: Optional extras of newer MACE variants the shared path does not implement.
UNSUPPORTED_EXTRAS = ("joint_embedding", "embedding_readout", "les", "field_readout")


def _module_state(module: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    return list(module.state_dict().items())


def _same_module(a: torch.nn.Module | None, b: torch.nn.Module | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if type(a) is not type(b):
        return False
    sa, sb = _module_state(a), _module_state(b)
    if [k for k, _ in sa] != [k for k, _ in sb]:
        return False
    return all(
        x.shape == y.shape and x.dtype == y.dtype and torch.equal(x, y)
        for (_, x), (_, y) in zip(sa, sb, strict=True)
    )


def module_sharing(models: Sequence[torch.nn.Module]) -> dict[str, bool]:
    """For every top-level child module name: are its tensors identical in all members?"""
    names: list[str] = []
    for m in models:
        names += [n for n, _ in m.named_children() if n not in names]
    return {
        name: all(
            _same_module(getattr(models[0], name, None), getattr(m, name, None)) for m in models[1:]
        )
        for name in names
    }


def load_mace_model(path: str | Path, device: str = "cpu", dtype: str = "float64"):
    """Load a ``.model`` file the user gave (``load_user_model_file``: a pickled MACE module,
    the user's trust decision) for inference on ``device``, without parameter grads."""
    from frostline.finetune.safe_model import load_user_model_file

    model = load_user_model_file(path, "committee member").to(device)
    model = model.double() if dtype == "float64" else model.float()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@dataclass
class CommitteeOutput:
    """Committee predictions on a batch of ``G`` graphs with ``N`` atoms in all (eV, Å)."""

    energies: torch.Tensor  # [K, G] total energy of each member
    node_energies: torch.Tensor  # [K, N] per-atom energy (E0 + interaction) of each member
    forces: torch.Tensor  # [N, 3] committee-mean forces
    member_forces: torch.Tensor | None  # [K, N, 3] when requested

    @property
    def energy_mean(self) -> torch.Tensor:
        return self.energies.mean(0)

    @property
    def energy_var(self) -> torch.Tensor:
        """[G] population variance over members (as ``MACECalculator``'s ``energy_var``)."""
        return self.energies.var(0, unbiased=False)

    @property
    def forces_var(self) -> torch.Tensor:
        """[N, 3] population variance of the member forces."""
        if self.member_forces is None:
            raise ValueError("forces_var needs member_forces=True in SharedCommittee.evaluate")
        return self.member_forces.var(0, unbiased=False)


class SharedCommittee:
    """K MACE members evaluated together on batches of graphs (see the module docstring).

    ``shared_trunk`` is True when every trunk module (:data:`TRUNK_MODULES`) holds identical
    tensors in all members (and ``share``); ``sharing`` reports the comparison for every module.
    ``batched_vjp``: per-member forces by one vmapped backward pass (default on CUDA) or by K
    backward passes through the retained graph (default on CPU).
    """

    def __init__(
        self,
        models: Sequence[torch.nn.Module],
        device: str = "auto",
        dtype: Dtype = "float64",
        share: bool = True,
        batched_vjp: bool | None = None,
    ) -> None:
        if not models:
            raise ValueError("a committee needs at least one model")
        self.device = resolve_device(device)
        self.dtype = torch.float64 if dtype == "float64" else torch.float32
        self.models = [m.to(device=self.device, dtype=self.dtype).eval() for m in models]
        for m in self.models:
            for p in m.parameters():
                p.requires_grad_(False)
        first = self.models[0]
        for i, m in enumerate(self.models[1:], start=1):
            if not torch.equal(m.atomic_numbers.cpu(), first.atomic_numbers.cpu()):
                raise ValueError(
                    f"committee member {i} has elements {m.atomic_numbers.tolist()}, member 0 "
                    f"{first.atomic_numbers.tolist()}: members must share the element table"
                )
            if float(m.r_max) != float(first.r_max):
                raise ValueError(
                    f"committee member {i} has r_max {float(m.r_max)}, member 0 "
                    f"{float(first.r_max)}: members must share the cutoff"
                )
        self.r_max = float(first.r_max)
        self.atomic_numbers = [int(z) for z in first.atomic_numbers]
        self._z_index = {z: i for i, z in enumerate(self.atomic_numbers)}
        self.sharing = module_sharing(self.models)
        splittable = all(
            type(m).__name__ in SPLITTABLE
            and not any(hasattr(m, extra) for extra in UNSUPPORTED_EXTRAS)
            and len(getattr(m, "heads", ["Default"])) == 1
            for m in self.models
        )
        trunk_same = all(self.sharing.get(n, True) for n in TRUNK_MODULES)
        self.shared_trunk = bool(share and splittable and trunk_same)
        # vmap over the backward pass wins on GPU; on CPU K plain backward passes measured faster
        self.batched_vjp = self.device.startswith("cuda") if batched_vjp is None else batched_vjp

    @classmethod
    def from_paths(
        cls,
        paths: Sequence[str | Path],
        device: str = "auto",
        dtype: Dtype = "float64",
        share: bool = True,
        batched_vjp: bool | None = None,
    ) -> SharedCommittee:
        """Load the members from ``.model`` files."""
        device = resolve_device(device)
        models = [load_mace_model(p, device, dtype) for p in paths]
        return cls(models, device, dtype, share, batched_vjp)

    @property
    def size(self) -> int:
        return len(self.models)

    # ------------------------------------------------------------------ graphs
    def node_attrs(self, numbers: Sequence[int]) -> torch.Tensor:
        """One-hot element encoding of ``numbers`` in the members' element table."""
        try:
            idx = [self._z_index[int(z)] for z in numbers]
        except KeyError as err:
            raise ValueError(
                f"element Z={err.args[0]} is not among the committee's elements "
                f"{self.atomic_numbers}"
            ) from None
        out = torch.zeros(len(idx), len(self.atomic_numbers), dtype=self.dtype)
        out[torch.arange(len(idx)), torch.tensor(idx, dtype=torch.long)] = 1.0
        return out.to(self.device)

    def batch(self, structures: Sequence[Atoms]) -> dict[str, torch.Tensor]:
        """A mace input dict for ``structures`` (neighbour lists with mace's own code)."""
        pos, attrs, edges, shifts, unit_shifts, cells, batch = [], [], [], [], [], [], []
        offset = 0
        for g, atoms in enumerate(structures):
            ei, sh, us, cell = get_neighborhood(
                atoms.positions,
                self.r_max,
                tuple(bool(p) for p in atoms.pbc),
                np.array(atoms.cell),
            )
            pos.append(torch.as_tensor(atoms.positions, dtype=self.dtype))
            attrs.append(self.node_attrs(atoms.numbers))
            edges.append(torch.as_tensor(ei, dtype=torch.long) + offset)
            shifts.append(torch.as_tensor(sh, dtype=self.dtype))
            unit_shifts.append(torch.as_tensor(us, dtype=self.dtype))
            cells.append(torch.as_tensor(np.array(atoms.cell), dtype=self.dtype))
            batch.append(torch.full((len(atoms),), g, dtype=torch.long))
            offset += len(atoms)
        counts = torch.tensor([0] + [len(a) for a in structures])
        d = self.device
        return {
            "positions": torch.cat(pos).to(d),
            "node_attrs": torch.cat(attrs).to(d),
            "edge_index": torch.cat(edges, dim=1).to(d),
            "shifts": torch.cat(shifts).to(d),
            "unit_shifts": torch.cat(unit_shifts).to(d),
            "cell": torch.cat(cells).to(d),
            "batch": torch.cat(batch).to(d),
            "ptr": torch.cumsum(counts, 0).to(d),
        }

    # -------------------------------------------------------------- evaluation
    def evaluate(
        self, data: dict[str, torch.Tensor], member_forces: bool = False
    ) -> CommitteeOutput:
        """Energies of every member; mean forces; per-member forces when ``member_forces``."""
        data = dict(data)
        data["positions"] = data["positions"].detach().clone()
        if self.shared_trunk:
            return self._evaluate_shared(data, member_forces)
        return self._evaluate_independent(data)

    def _evaluate_shared(
        self, data: dict[str, torch.Tensor], member_forces: bool
    ) -> CommitteeOutput:
        ctx = prepare_graph(data)
        feats, pair_node_energy = self._trunk_features(data, ctx)
        node_energies, energies, inter = self._member_energies(data, ctx, feats, pair_node_energy)
        forces, per_member = self._forces(inter, ctx.positions, member_forces)
        return CommitteeOutput(
            energies=torch.stack(energies).detach(),
            node_energies=torch.stack(node_energies).detach(),
            forces=forces.detach(),
            member_forces=None if per_member is None else per_member.detach(),
        )

    def _trunk_features(
        self, data: dict[str, torch.Tensor], ctx: GraphContext
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The shared trunk once: node features after each interaction, and the pair
        repulsion's node energies (zeros without ZBL)."""
        trunk = self.models[0]
        n_nodes = ctx.positions.shape[0]
        node_attrs, edge_index = data["node_attrs"], data["edge_index"]
        node_feats = trunk.node_embedding(node_attrs)
        edge_attrs = trunk.spherical_harmonics(ctx.vectors)
        edge_feats, cutoff = trunk.radial_embedding(
            ctx.lengths, node_attrs, edge_index, trunk.atomic_numbers
        )
        if hasattr(trunk, "pair_repulsion"):
            pair_node_energy = trunk.pair_repulsion_fn(
                ctx.lengths, node_attrs, edge_index, trunk.atomic_numbers
            )
        else:
            pair_node_energy = torch.zeros(n_nodes, dtype=ctx.positions.dtype, device=self.device)
        feats: list[torch.Tensor] = []
        for i, (interaction, product) in enumerate(
            zip(trunk.interactions, trunk.products, strict=True)
        ):
            node_feats, sc = interaction(
                node_attrs=node_attrs,
                node_feats=node_feats,
                edge_attrs=edge_attrs,
                edge_feats=edge_feats,
                edge_index=edge_index,
                cutoff=cutoff,
                first_layer=(i == 0),
                lammps_class=None,
                lammps_natoms=(0, 0),
            )
            node_feats = product(node_feats=node_feats, sc=sc, node_attrs=node_attrs)
            feats.append(node_feats)
        return feats, pair_node_energy

    def _member_energies(
        self,
        data: dict[str, torch.Tensor],
        ctx: GraphContext,
        feats: list[torch.Tensor],
        pair_node_energy: torch.Tensor,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """Each member's readouts on the shared features: node energies, energies per graph,
        and the interaction energies stacked [K, G]."""
        arange = ctx.num_atoms_arange.to(torch.int64)
        heads = ctx.node_heads.to(torch.int64)
        node_attrs, batch = data["node_attrs"], data["batch"]
        node_energies, inter_energies, energies = [], [], []
        for model in self.models:
            node_e0 = model.atomic_energies_fn(node_attrs)[arange, heads]
            e0 = scatter_sum(src=node_e0, index=batch, dim=0, dim_size=ctx.num_graphs)
            node_es = [pair_node_energy]
            for i, readout in enumerate(model.readouts):
                idx = -1 if len(model.readouts) == 1 else i
                node_es.append(readout(feats[idx], heads)[arange, heads])
            node_inter = torch.sum(torch.stack(node_es, dim=0), dim=0)
            if hasattr(model, "scale_shift"):
                node_inter = model.scale_shift(node_inter, heads)
            inter_e = scatter_sum(node_inter, batch, dim=-1, dim_size=ctx.num_graphs)
            inter_energies.append(inter_e)
            energies.append(e0 + inter_e)
            node_energies.append(node_e0 + node_inter)
        return node_energies, energies, torch.stack(inter_energies)  # [K, G]

    def _forces(
        self, inter: torch.Tensor, positions: torch.Tensor, member_forces: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Mean forces, and per-member forces when ``member_forces`` (else None), from the
        members' interaction energies ``inter`` [K, G]."""
        k = len(self.models)
        if member_forces and k > 1:
            eye = torch.eye(k, dtype=inter.dtype, device=self.device)
            if self.batched_vjp:
                # one batched vector-Jacobian product: row k of the identity picks member k
                grads = torch.autograd.grad(
                    inter.sum(dim=1), positions, grad_outputs=eye, is_grads_batched=True
                )[0]
            else:
                grads = torch.stack(
                    [
                        torch.autograd.grad(
                            inter.sum(dim=1), positions, grad_outputs=row, retain_graph=True
                        )[0]
                        for row in eye
                    ]
                )
            per_member = -grads
            forces = per_member.mean(0)
        else:
            (grad,) = torch.autograd.grad(inter.mean(0).sum(), positions)
            forces = -grad
            per_member = forces.unsqueeze(0) if member_forces else None
        return forces, per_member

    def _evaluate_independent(self, data: dict[str, torch.Tensor]) -> CommitteeOutput:
        energies, node_energies, forces = [], [], []
        for model in self.models:
            member_data = dict(data)
            member_data["positions"] = data["positions"].detach().clone()
            out = model(member_data, compute_force=True, training=False)
            energies.append(out["energy"].detach())
            node_energies.append(out["node_energy"].detach().to(self.dtype))
            forces.append(out["forces"].detach())
        member = torch.stack(forces)
        return CommitteeOutput(
            energies=torch.stack(energies),
            node_energies=torch.stack(node_energies),
            forces=member.mean(0),
            member_forces=member,
        )


class SharedCommitteeCalculator(Calculator):
    """ASE calculator over a :class:`SharedCommittee` (results keys as ``MACECalculator``'s).

    ``energy``/``forces`` are committee means; ``energy_var``, ``energy_comm`` (one energy per
    member), ``energies`` (mean per-atom energies) and ``energies_var`` come with every call.
    ``forces_var``/``forces_comm`` need per-member forces: with ``member_forces="always"`` every
    call computes them, with ``"on_request"`` (the default, for MD) only a request for them does
    (``calc.get_property("forces_var", atoms)``), so MD steps pay for one backward pass only.
    """

    implemented_properties = [
        "energy",
        "free_energy",
        "forces",
        "energies",
        "energies_var",
        "energy_var",
        "energy_comm",
        "forces_var",
        "forces_comm",
    ]

    def __init__(
        self,
        committee: SharedCommittee,
        member_forces: Literal["always", "on_request"] = "on_request",
        **kwargs,
    ) -> None:
        if member_forces not in ("always", "on_request"):
            raise ValueError(
                f"member_forces must be 'always' or 'on_request', got {member_forces!r}"
            )
        super().__init__(**kwargs)
        self.committee = committee
        self.member_forces = member_forces

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        want = self.member_forces == "always" or any(
            p in ("forces_var", "forces_comm") for p in (properties or ())
        )
        out = self.committee.evaluate(self.committee.batch([self.atoms]), member_forces=want)
        energy = float(out.energy_mean[0])
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": out.forces.cpu().numpy(),
            "energies": out.node_energies.mean(0).cpu().numpy(),
            "energies_var": out.node_energies.var(0, unbiased=False).cpu().numpy(),
            "energy_var": float(out.energy_var[0]),
            "energy_comm": out.energies[:, 0].cpu().numpy(),
        }
        if want:
            self.results["forces_var"] = out.forces_var.cpu().numpy()
            self.results["forces_comm"] = out.member_forces.cpu().numpy()


def perturbed_member(
    model: torch.nn.Module, seed: int, scale: float = 0.05, modules: Sequence[str] = HEAD_MODULES
) -> torch.nn.Module:
    """A copy of ``model`` with Gaussian noise (relative ``scale``) on the tensors of ``modules``.

    Cheap stand-in for a frozen fine-tune (tests, benchmarks): the other modules stay identical.
    """
    out = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in modules:
            module = getattr(out, name, None)
            if module is None:
                continue
            for key, t in module.state_dict(keep_vars=True).items():
                if not torch.is_floating_point(t) or "output_mask" in key:
                    continue
                noise = torch.randn(t.shape, generator=gen, dtype=t.dtype)
                t.add_(scale * noise * (t.abs().mean() + 1e-3))
    return out
