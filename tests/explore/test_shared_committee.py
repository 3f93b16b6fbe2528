"""Shared-trunk committee: same per-member predictions as independent MACE models, less work."""

from __future__ import annotations

from pathlib import Path

import mace  # noqa: F401
import numpy as np
import pytest
import torch
from mace.calculators import MACECalculator

from frostline.explore.samplers import committee_uncertainty
from frostline.explore.shared_committee import (
    SharedCommittee,
    SharedCommitteeCalculator,
    load_mace_model,
    module_sharing,
    perturbed_member,
)
from frostline.structures import cu111_slab, h2_on_slab


def _mace(paths: list[str]) -> MACECalculator:
    return MACECalculator(
        model_paths=paths if len(paths) > 1 else paths[0], device="cpu", default_dtype="float64"
    )


@pytest.fixture(scope="module")
def members(foundation, tmp_path_factory) -> dict[str, list[str]]:
    """Three 'frozen fine-tuned' members (readouts + E0s perturbed) and one with its own trunk."""
    folder: Path = tmp_path_factory.mktemp("members")
    base = load_mace_model(foundation)
    heads = []
    for k in range(3):
        path = folder / f"head{k}.model"
        torch.save(perturbed_member(base, seed=k), path)
        heads.append(str(path))
    other = folder / "trunk.model"
    torch.save(perturbed_member(base, seed=9, modules=("interactions", "readouts")), other)
    return {"heads": heads, "trunk": [heads[0], str(other)]}


@pytest.fixture(scope="module")
def structures():
    rng = np.random.default_rng(4)
    return [h2_on_slab(cu111_slab(), rng), h2_on_slab(cu111_slab(), rng), cu111_slab()]


def test_sharing_is_read_from_the_tensors(members):
    committee = SharedCommittee.from_paths(members["heads"], device="cpu")
    assert committee.shared_trunk
    for name in ("node_embedding", "interactions", "products", "radial_embedding"):
        assert committee.sharing[name], name
    assert not committee.sharing["readouts"] and not committee.sharing["atomic_energies_fn"]
    other = SharedCommittee.from_paths(members["trunk"], device="cpu")
    assert not other.sharing["interactions"] and not other.shared_trunk
    base = load_mace_model(members["heads"][0])
    assert all(module_sharing([base, load_mace_model(members["heads"][0])]).values())


@pytest.mark.parametrize("which", ["heads", "trunk"])
def test_per_member_predictions_match_independent_models(members, structures, which):
    """Shared path (heads) and fallback path (trunk) against mace's calculator per member."""
    paths = members[which]
    committee = SharedCommittee.from_paths(paths, device="cpu")
    assert committee.shared_trunk == (which == "heads")
    out = committee.evaluate(committee.batch(structures), member_forces=True)
    assert out.energies.shape == (len(paths), len(structures))
    ptr = np.cumsum([0] + [len(s) for s in structures])
    for k, path in enumerate(paths):
        single = _mace([path])
        for g, atoms in enumerate(structures):
            a = atoms.copy()
            a.calc = single
            forces = a.get_forces()
            assert np.isclose(float(out.energies[k, g]), a.get_potential_energy(), atol=1e-9)
            member_f = out.member_forces[k, ptr[g] : ptr[g + 1]].numpy()
            assert np.allclose(member_f, forces, atol=1e-9)
            node_e = out.node_energies[k, ptr[g] : ptr[g + 1]].numpy()
            assert np.allclose(node_e, single.results["energies"], atol=1e-9)
    # the members really differ, so the comparison above is not trivial
    assert float(out.energies.std(0).max()) > 1e-4
    assert float(out.member_forces.std(0).max()) > 1e-4


def test_mean_forces_alone_equal_the_mean_of_member_forces(members, structures):
    committee = SharedCommittee.from_paths(members["heads"], device="cpu")
    data = committee.batch(structures)
    full = committee.evaluate(data, member_forces=True)
    mean_only = committee.evaluate(data, member_forces=False)
    assert mean_only.member_forces is None
    assert torch.allclose(mean_only.forces, full.member_forces.mean(0), atol=1e-10)
    assert torch.allclose(mean_only.energies, full.energies, atol=1e-12)
    with pytest.raises(ValueError, match="member_forces"):
        _ = mean_only.forces_var
    committee.batched_vjp = not committee.batched_vjp  # the other way to the member forces
    other = committee.evaluate(data, member_forces=True)
    assert torch.allclose(other.member_forces, full.member_forces, atol=1e-10)


def test_ase_calculator_gives_macecalculator_results(members, structures):
    atoms = structures[0].copy()
    reference = _mace(members["heads"])
    ref = atoms.copy()
    ref.calc = reference
    ref.get_forces()
    calc = SharedCommitteeCalculator(SharedCommittee.from_paths(members["heads"], device="cpu"))
    atoms.calc = calc
    assert np.allclose(atoms.get_forces(), reference.results["forces"], atol=1e-9)
    assert "forces_var" not in calc.results  # MD steps pay for the mean forces only
    assert np.isclose(calc.results["energy_var"], reference.results["energy_var"], atol=1e-9)
    assert np.allclose(calc.results["energy_comm"], reference.results["energy_comm"], atol=1e-9)
    assert np.allclose(calc.results["energies"], reference.results["energies"], atol=1e-9)
    assert calc.results["energies_var"].shape == (len(atoms),)
    f_std, e_std = committee_uncertainty(calc, atoms)  # asks for the member forces
    assert np.allclose(calc.results["forces_var"], reference.results["forces_var"], atol=1e-9)
    assert np.allclose((f_std, e_std), committee_uncertainty(reference, ref), rtol=1e-7, atol=1e-12)
    assert f_std > 0
    always = SharedCommitteeCalculator(calc.committee, member_forces="always")
    atoms.calc = always
    atoms.get_forces()
    assert np.allclose(always.results["forces_comm"], reference.results["forces_comm"], atol=1e-9)


def test_clear_errors(members):
    committee = SharedCommittee.from_paths(members["heads"], device="cpu")
    with pytest.raises(ValueError, match="Z=26 is not among"):
        committee.batch([cu111_slab(), _iron()])
    with pytest.raises(ValueError, match="member_forces must be"):
        SharedCommitteeCalculator(committee, member_forces="sometimes")  # type: ignore[arg-type]


def _iron():
    slab = cu111_slab()
    slab.numbers[0] = 26  # Fe: not in the mini foundation
    return slab
