"""Batched exploration: many MD replicas advanced together, one committee call per step.

Each replica (its own start, temperature and seed) keeps ASE's Langevin algorithm exactly
(``ase.md.langevin.Langevin``, ``fixcm=False``: same coefficients, same two normal draws per step
from the replica's own ``numpy`` generator, same initial ``thermalize_momenta``), so a replica
follows the trajectory the ASE engine (:func:`frostline.explore.samplers.langevin_frames`) would,
to floating-point rounding; ``friction=0`` is velocity Verlet. All replicas' atoms live in one
tensor and the committee (:class:`~frostline.explore.shared_committee.SharedCommittee`) sees one
batch of graphs per step: committee-mean forces on ordinary steps, per-member forces on sampled
frames, where a replica whose force deviation leaves the trust window (``abort_force_std``), whose
atoms come too close or whose numbers are not finite stops and leaves the batch.

Neighbour lists: a Verlet list per replica, built with mace's ``get_neighborhood`` (matscipy) at
``r_max + skin`` and filtered to ``r_max`` on every step in one tensor operation; a replica's list
is rebuilt when one of its atoms has moved more than ``skin / 2`` since the last build (periodic
images are tracked by the shifts, so positions are never wrapped).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from ase import Atoms, units
from ase.md.velocitydistribution import thermalize_momenta
from mace.data.neighborhood import get_neighborhood

from frostline.explore.samplers import AbortRule, Frame
from frostline.explore.shared_committee import CommitteeOutput, SharedCommittee
from frostline.structures import min_distance


@dataclass
class Replica:
    """One trajectory of a batched run and what it produced."""

    start: Atoms
    temperature: float
    seed: int
    frames: list[Frame] = field(default_factory=list)
    steps_done: int = 0
    stopped: str | None = None  # why it stopped early (``AbortRule.reason``)


@dataclass
class _Neighbours:
    edge_index: np.ndarray  # [2, E] local indices, candidates within r_max + skin
    shifts: np.ndarray  # [E, 3]
    unit_shifts: np.ndarray  # [E, 3]
    reference: torch.Tensor  # [n, 3] positions at the build


class BatchedLangevin:
    """Langevin (or, with ``friction=0``, velocity Verlet) MD of many replicas at once.

    ``thermalize``: draw initial momenta from each replica's generator at its temperature (as the
    ASE engine does); otherwise the starts' own momenta are used. ``scorer``: per-atom scores of
    the committee's latest call (hooks on a member, e.g. ``LastLayerScorer``), recorded on
    sampled frames instead of the committee deviation; ``abort_force_std`` then does not apply
    (as in :func:`frostline.explore.samplers.langevin_frames`). ``bias``: a ``LastLayerBias``
    whose hooks sit on the committee's (one) model, laid out for the active replicas (one bias
    per replica; uncertainty-biased MD, :mod:`frostline.explore.bias`).
    """

    def __init__(
        self,
        committee: SharedCommittee,
        starts: Sequence[Atoms],
        temperatures: Sequence[float],
        seeds: Sequence[int],
        timestep_fs: float = 1.0,
        friction: float = 0.02,
        skin: float = 0.5,
        thermalize: bool = True,
        scorer: Callable[[Sequence[str]], np.ndarray] | None = None,
        bias=None,
    ) -> None:
        if not (len(starts) == len(temperatures) == len(seeds)):
            raise ValueError(
                f"starts ({len(starts)}), temperatures ({len(temperatures)}) and seeds "
                f"({len(seeds)}) must have the same length"
            )
        if not starts:
            raise ValueError("batched MD needs at least one replica")
        if skin < 0:
            raise ValueError(f"skin must be >= 0 Å, got {skin}")
        if friction < 0:
            raise ValueError(f"friction must be >= 0 1/fs, got {friction}")
        self.committee = committee
        self.scorer, self.bias = scorer, bias
        self.device, self.dtype = committee.device, committee.dtype
        self.skin = float(skin)
        self.cutoff = committee.r_max + self.skin
        self.dt = timestep_fs * units.fs
        self.friction = friction / units.fs
        self.replicas: list[Replica] = []
        self._rngs: list[np.random.Generator] = []
        self._x: list[torch.Tensor] = []
        self._v: list[torch.Tensor] = []
        self._neigh: list[_Neighbours] = []
        for atoms, temp, seed in zip(starts, temperatures, seeds, strict=True):
            atoms = atoms.copy()
            rng = np.random.default_rng(seed)
            if thermalize:
                thermalize_momenta(atoms, temperature_K=temp, rng=rng)
            self.replicas.append(Replica(atoms, float(temp), int(seed)))
            self._rngs.append(rng)
            self._x.append(self._tensor(atoms.positions))
            self._v.append(self._tensor(atoms.get_velocities()))
            self._neigh.append(self._build(atoms, self._x[-1]))
        self.active = list(range(len(self.replicas)))
        self.n_rebuilds = 0  # neighbour-list rebuilds after the initial ones
        self._static: dict[str, torch.Tensor] = {}
        self._assemble()

    # ----------------------------------------------------------------- set-up
    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a), dtype=self.dtype, device=self.device)

    def _build(self, atoms: Atoms, x: torch.Tensor) -> _Neighbours:
        ei, sh, us, _ = get_neighborhood(
            x.detach().cpu().numpy(),
            self.cutoff,
            tuple(bool(p) for p in atoms.pbc),
            np.array(atoms.cell),
        )
        return _Neighbours(ei, sh, us, x.detach().clone())

    def _assemble(self) -> None:
        """Concatenate the active replicas' state into batch tensors."""
        reps = [self.replicas[r] for r in self.active]
        sizes = [len(rep.start) for rep in reps]
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        self._offsets = offsets
        self.x = torch.cat([self._x[r] for r in self.active])
        self.v = torch.cat([self._v[r] for r in self.active])
        masses = np.concatenate([rep.start.get_masses() for rep in reps])[:, None]
        temps = np.concatenate(
            [
                np.full((n, 1), rep.temperature * units.kB)
                for rep, n in zip(reps, sizes, strict=True)
            ]
        )
        dt, fr = self.dt, self.friction
        sigma = np.sqrt(2 * temps * fr / masses)
        c5 = dt**1.5 * sigma / (2 * np.sqrt(3))
        self.m = self._tensor(masses)
        self.c1 = dt / 2.0 - dt * dt * fr / 8.0
        self.c2 = dt * fr / 2 - dt * dt * fr * fr / 8.0
        self.c3 = self._tensor(np.sqrt(dt) * sigma / 2.0 - dt**1.5 * fr * sigma / 8.0)
        self.c4 = self._tensor(fr / 2.0 * c5)
        self.c5 = self._tensor(c5)
        batch = np.repeat(np.arange(len(reps)), sizes)
        self._static = {
            "node_attrs": torch.cat([self.committee.node_attrs(rep.start.numbers) for rep in reps]),
            "cell": self._tensor(np.concatenate([np.array(rep.start.cell) for rep in reps])),
            "batch": torch.as_tensor(batch, device=self.device),
            "ptr": torch.as_tensor(offsets, device=self.device),
        }
        self._batch_np = batch
        if self.bias is not None:
            self.bias.layout([z for rep in reps for z in rep.start.symbols], batch)
        self._assemble_edges()

    def _assemble_edges(self) -> None:
        neigh = [self._neigh[r] for r in self.active]
        self._cand = torch.as_tensor(
            np.concatenate(
                [n.edge_index + o for n, o in zip(neigh, self._offsets[:-1], strict=True)], axis=1
            ),
            device=self.device,
        )
        self._cand_shifts = self._tensor(np.concatenate([n.shifts for n in neigh]))
        self._cand_unit = self._tensor(np.concatenate([n.unit_shifts for n in neigh]))
        self._ref = torch.cat([n.reference for n in neigh])

    def _scatter(self) -> None:
        """Write the batch state back to the per-replica tensors."""
        for i, r in enumerate(self.active):
            lo, hi = self._offsets[i], self._offsets[i + 1]
            self._x[r], self._v[r] = self.x[lo:hi], self.v[lo:hi]

    # ------------------------------------------------------------------- step
    def _update_neighbours(self) -> None:
        moved = torch.linalg.norm(self.x - self._ref, dim=1)
        worst = torch.zeros(len(self.active), dtype=self.dtype, device=self.device)
        worst = worst.scatter_reduce(0, self._static["batch"], moved, reduce="amax")
        rebuild = torch.nonzero(worst > 0.5 * self.skin).flatten().tolist()
        if not rebuild:
            return
        self.n_rebuilds += len(rebuild)
        for i in rebuild:
            r = self.active[i]
            lo, hi = self._offsets[i], self._offsets[i + 1]
            self._neigh[r] = self._build(self.replicas[r].start, self.x[lo:hi])
        self._assemble_edges()

    def graph(self) -> dict[str, torch.Tensor]:
        """The mace input dict of the active replicas at the current positions."""
        self._update_neighbours()
        sender, receiver = self._cand
        vectors = self.x[receiver] - self.x[sender] + self._cand_shifts
        keep = torch.linalg.norm(vectors, dim=1) < self.committee.r_max
        return {
            **self._static,
            "positions": self.x,
            "edge_index": self._cand[:, keep],
            "shifts": self._cand_shifts[keep],
            "unit_shifts": self._cand_unit[keep],
        }

    def _noise(self) -> tuple[torch.Tensor, torch.Tensor]:
        """ASE's xi and eta, drawn per replica from its own generator."""
        xi, eta = [], []
        for r in self.active:
            n = len(self.replicas[r].start)
            xi.append(self._rngs[r].standard_normal(size=(n, 3)))
            eta.append(self._rngs[r].standard_normal(size=(n, 3)))
        return self._tensor(np.concatenate(xi)), self._tensor(np.concatenate(eta))

    def run(
        self,
        steps: int,
        sample_every: int,
        abort_force_std: float = 1.0,
        abort_min_distance: float = 0.5,
        on_step: Callable[[int], None] | None = None,
        error_bound: Callable[[Frame], float] | None = None,
        max_error: float = float("inf"),
    ) -> list[Replica]:
        """Advance all replicas ``steps`` steps (fewer if one stops); sample every ``sample_every``.

        ``on_step(n)`` is called after each step with the number of replicas that made it;
        a replica stops by :class:`~frostline.explore.samplers.AbortRule` (``error_bound``,
        ``max_error``: its calibrated stop).
        """
        rule = AbortRule(abort_force_std, abort_min_distance, error_bound, max_error)
        if steps < 1 or sample_every < 1:
            raise ValueError(f"steps ({steps}) and sample_every ({sample_every}) must be >= 1")
        out = self.committee.evaluate(self.graph())
        forces = out.forces
        for step in range(1, steps + 1):
            if self.friction > 0:
                xi, eta = self._noise()
                rnd_pos = self.c5 * eta
                rnd_vel = self.c3 * xi - self.c4 * eta
            else:
                rnd_pos = rnd_vel = torch.zeros_like(self.x)
            self.v = self.v + (self.c1 * forces / self.m - self.c2 * self.v + rnd_vel)
            x_old = self.x
            self.x = x_old + self.dt * self.v + rnd_pos
            self.v = (self.x - x_old - rnd_pos) / self.dt
            sample = step % sample_every == 0 or step == steps
            out = self.committee.evaluate(self.graph(), member_forces=sample)
            forces = out.forces
            self.v = self.v + (self.c1 * forces / self.m - self.c2 * self.v + rnd_vel)
            for r in self.active:
                self.replicas[r].steps_done = step
            if on_step is not None:
                on_step(len(self.active))
            if sample:
                stopped = self._sample(step, out, rule)
                if stopped:
                    self._scatter()
                    keep = [i for i, r in enumerate(self.active) if r not in stopped]
                    self.active = [self.active[i] for i in keep]
                    if not self.active:
                        break
                    forces = torch.cat(
                        [forces[self._offsets[i] : self._offsets[i + 1]] for i in keep]
                    )
                    self._assemble()
        self._scatter()
        return self.replicas

    def _sample(self, step: int, out: CommitteeOutput, rule: AbortRule) -> set[int]:
        """Record a frame of every active replica; return the replicas that must stop."""
        scores = None
        if self.scorer is None:
            per_atom = torch.sqrt(out.forces_var.sum(dim=1))  # DP-GEN's force deviation
        else:  # the scorer's hooks hold the features of the call that gave ``out``
            symbols = [z for r in self.active for z in self.replicas[r].start.symbols]
            scores = self.scorer(symbols)
            per_atom = self._tensor(scores)
            rule = dataclasses.replace(rule, force_std=float("inf"))
        n_graphs = len(self.active)
        f_std = torch.zeros(n_graphs, dtype=self.dtype, device=self.device).scatter_reduce(
            0, self._static["batch"], per_atom, reduce="amax", include_self=False
        )
        e_std = torch.sqrt(out.energy_var)
        finite = torch.isfinite(self.x).all(1) & torch.isfinite(out.forces).all(1)
        ok = torch.ones(n_graphs, dtype=self.dtype, device=self.device)
        ok = ok.scatter_reduce(0, self._static["batch"], finite.to(self.dtype), reduce="amin") > 0
        x = self.x.detach().cpu().numpy()
        p = (self.v * self.m).detach().cpu().numpy()
        f_std_np, e_std_np, ok_np = (t.cpu().numpy() for t in (f_std, e_std, ok))
        f_norm = np.linalg.norm(out.forces.detach().cpu().numpy(), axis=1)
        stopped: set[int] = set()
        for i, r in enumerate(self.active):
            rep = self.replicas[r]
            lo, hi = self._offsets[i], self._offsets[i + 1]
            atoms = rep.start.copy()
            atoms.positions = x[lo:hi]
            atoms.set_momenta(p[lo:hi])
            dmin = min_distance(atoms) if ok_np[i] else float("nan")
            fs = float(f_std_np[i]) if ok_np[i] else float("inf")
            frame = Frame(
                atoms,
                step,
                rep.temperature,
                fs,
                float(e_std_np[i]) / len(atoms),
                dmin,
                float(f_norm[lo:hi].max()),
                None if scores is None else [float(x) for x in scores[lo:hi]],
            )
            frame.stop_reason = "not_finite" if not ok_np[i] else rule.reason(frame)
            rep.frames.append(frame)
            rep.stopped = frame.stop_reason
            if rep.stopped is not None:
                stopped.add(r)
        return stopped


def batched_langevin_frames(
    committee: SharedCommittee,
    starts: Sequence[Atoms],
    temperatures: Sequence[float],
    seeds: Sequence[int],
    steps: int,
    sample_every: int,
    timestep_fs: float = 1.0,
    friction: float = 0.02,
    abort_force_std: float = 1.0,
    abort_min_distance: float = 0.5,
    skin: float = 0.5,
    on_step: Callable[[int], None] | None = None,
    scorer: Callable[[Sequence[str]], np.ndarray] | None = None,
    error_bound: Callable[[Frame], float] | None = None,
    max_error: float = float("inf"),
    bias=None,
) -> list[Replica]:
    """Run one replica per (start, temperature, seed) together; frames as ``langevin_frames``."""
    md = BatchedLangevin(
        committee, starts, temperatures, seeds, timestep_fs, friction, skin, scorer=scorer,
        bias=bias,
    )  # fmt: skip
    return md.run(
        steps, sample_every, abort_force_std, abort_min_distance, on_step, error_bound, max_error
    )
