"""PNG plots of alloy validation: formation-energy parity, hulls, elastic and EOS parity."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from pymatgen.core import Composition  # noqa: E402

from frostline.alloys.schemas import SystemValidationDoc  # noqa: E402

MODEL_STYLE = {"finetuned": ("o", "C0", "fine-tuned"), "foundation": ("x", "C3", "foundation")}


def _parity(ax, pairs: dict[str, tuple[list[float], list[float]]], label: str) -> None:
    values = [v for xs, ys in pairs.values() for v in (*xs, *ys)]
    if not values:
        return
    lo, hi = min(values), max(values)
    pad = 0.05 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=0.8)
    for key, (xs, ys) in pairs.items():
        marker, color, name = MODEL_STYLE.get(key, ("s", "C2", key))
        mae = float(np.mean(np.abs(np.subtract(ys, xs)))) if xs else float("nan")
        ax.scatter(xs, ys, marker=marker, color=color, s=22, label=f"{name} (MAE {mae:.3g})")
    ax.set_xlabel(f"oracle {label}")
    ax.set_ylabel(f"model {label}")
    ax.legend(fontsize=7)


def formation_energy_parity(docs: Sequence[SystemValidationDoc], path: Path) -> Path:
    """Model vs oracle formation energies (meV/atom) of every system's validation set."""
    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    pairs = {}
    for key in MODEL_STYLE:
        xs, ys = [], []
        for doc in docs:
            if key in doc.models:
                xs += [1000 * s.formation_energy for s in doc.reference.structures]
                ys += [1000 * s.formation_energy for s in doc.models[key].structures]
        if xs:
            pairs[key] = (xs, ys)
    _parity(ax, pairs, "E_f (meV/atom)")
    ax.set_title("formation energies, held-out structures", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def elastic_parity(docs: Sequence[SystemValidationDoc], path: Path) -> Path:
    """C11, C12, C44 (strain–stress) and B0 (EOS) of the cubic prototypes, model vs oracle."""
    keys = ("C11", "C12", "C44")
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.6))
    for ax, key in zip(axes, (*keys, "B0"), strict=True):
        pairs = {}
        for model in MODEL_STYLE:
            xs, ys = [], []
            for doc in docs:
                if model not in doc.models:
                    continue
                for r, m in zip(
                    doc.reference.structures, doc.models[model].structures, strict=True
                ):
                    if key == "B0":
                        xs.append(r.bulk_modulus_gpa)
                        ys.append(m.bulk_modulus_gpa)
                    elif r.elastic and m.elastic:
                        xs.append(r.elastic[key])
                        ys.append(m.elastic[key])
            if xs:
                pairs[model] = (xs, ys)
        _parity(ax, pairs, f"{key} (GPa)")
        ax.set_title(key if key != "B0" else "B0 (EOS, all structures)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _binary_hull(ax, doc: SystemValidationDoc) -> None:
    a, b = doc.system.split("-")
    sets = {"oracle": doc.reference, **doc.models}
    for key, pset in sets.items():
        marker, color, name = MODEL_STYLE.get(key, ("s", "k", "oracle"))
        x = [Composition(s.formula).get_atomic_fraction(b) for s in pset.structures]
        ef = [1000 * s.formation_energy for s in pset.structures]
        stable = [s.stable for s in pset.structures]
        ax.scatter(x, ef, marker=marker, color=color, s=20, label=name)
        hull = sorted((xi, ei) for xi, ei, st in zip(x, ef, stable, strict=True) if st)
        if hull:
            ax.plot(*zip(*hull, strict=True), color=color, lw=1)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel(f"x ({b} in {a}$_{{1-x}}${b}$_x$)")
    ax.set_ylabel("E_f (meV/atom)")
    ax.set_title(doc.system, fontsize=9)
    ax.legend(fontsize=7)


def _ternary_hull(ax, doc: SystemValidationDoc) -> None:
    els = doc.system.split("-")
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]])
    ax.plot(*np.vstack([corners, corners[:1]]).T, color="grey", lw=0.8)
    for el, c in zip(els, corners, strict=True):
        ax.annotate(el, c, ha="center", va="top" if c[1] == 0 else "bottom")
    sets = {"oracle": doc.reference, **doc.models}
    for key, pset in sets.items():
        marker, color, name = MODEL_STYLE.get(key, ("s", "k", "oracle"))
        pts, size = [], []
        for s in pset.structures:
            comp = Composition(s.formula)
            frac = np.array([comp.get_atomic_fraction(e) for e in els])
            pts.append(frac @ corners)
            size.append(60 if s.stable else 12)
        pts = np.array(pts)
        ax.scatter(
            pts[:, 0],
            pts[:, 1],
            marker=marker,
            s=size,
            facecolors="none" if key == "oracle" else color,
            edgecolors=color if key != "oracle" else "k",
            label=f"{name} (large: on hull)",
        )
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(doc.system, fontsize=9)
    ax.legend(fontsize=6, loc="upper right")


def hull_plot(docs: Sequence[SystemValidationDoc], path: Path) -> Path:
    """One panel per system: binary E_f(x) with hulls; ternary stable structures."""
    fig, axes = plt.subplots(1, len(docs), figsize=(4.2 * len(docs), 3.8), squeeze=False)
    for ax, doc in zip(axes[0], docs, strict=True):
        (_binary_hull if len(doc.system.split("-")) == 2 else _ternary_hull)(ax, doc)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(docs: Sequence[SystemValidationDoc], folder: Path) -> list[Path]:
    """All plots of a campaign into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        formation_energy_parity(docs, folder / "formation_energy_parity.png"),
        hull_plot(docs, folder / "hulls.png"),
        elastic_parity(docs, folder / "elastic_parity.png"),
    ]
