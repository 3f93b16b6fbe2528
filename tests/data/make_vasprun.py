# ruff: noqa: E501  (VASP output lines are written verbatim)
"""Write ``vasp_cu4/vasprun.xml``: a hand-made VASP 6 output for the VASP-path tests.

There is no VASP binary here; this file stands in for one run of it (the only mock boundary
of the label tests). Its numbers are EMT's for a rattled 4-atom Cu cell written the way VASP
writes them (eV, eV/Å, stress in kbar with compression positive), atoms sorted as VASP got
them. Re-run ``python tests/data/make_vasprun.py`` to regenerate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import write
from ase.units import GPa

HERE = Path(__file__).parent


def cu4():
    """The candidate structure (also built by tests/label/test_vasp.py)."""
    atoms = bulk("Cu", "fcc", a=3.62, cubic=True)
    atoms.rattle(0.04, seed=7)
    return atoms


def _v(rows, fmt="{:16.8f}") -> str:
    return "\n".join("    <v>" + " ".join(fmt.format(x) for x in row) + " </v>" for row in rows)


def _structure(name: str, atoms) -> str:
    cell = atoms.cell[:]
    rec = np.linalg.inv(cell).T
    frac = atoms.get_scaled_positions()
    head = f' name="{name}"' if name else ""
    return f"""  <structure{head}>
   <crystal>
   <varray name="basis" >
{_v(cell)}
   </varray>
   <i name="volume">{atoms.get_volume():16.8f} </i>
   <varray name="rec_basis" >
{_v(rec)}
   </varray>
   </crystal>
   <varray name="positions" >
{_v(frac)}
   </varray>
  </structure>"""


def vasprun(atoms, energy: float, forces, stress_kbar, nelm: int = 100, nsteps: int = 12) -> str:
    """vasprun.xml text of a static run (``nsteps`` SCF steps; ``nsteps == nelm`` = unconverged)."""
    n = len(atoms)
    scsteps = "\n".join(
        f"""  <scstep>
   <energy>
    <i name="e_fr_energy">{energy + 10.0 ** (-k):16.8f} </i>
    <i name="e_wo_entrp">{energy + 10.0 ** (-k):16.8f} </i>
    <i name="e_0_energy">{energy + 10.0 ** (-k):16.8f} </i>
   </energy>
  </scstep>"""
        for k in range(nsteps)
    )
    eig = "\n".join(
        f"       <r>{-5.0 + i:10.4f} {1.0 if i < 22 else 0.0:8.4f} </r>" for i in range(30)
    )
    dos = "\n".join(
        f"       <r>{-10.0 + 0.5 * i:10.4f} {0.1:10.4f} {0.1 * i:10.4f} </r>" for i in range(40)
    )
    return f"""<?xml version="1.0" encoding="ISO-8859-1"?>
<modeling>
 <generator>
  <i name="program" type="string">vasp </i>
  <i name="version" type="string">6.4.2  </i>
  <i name="subversion" type="string">20Jul23 (build Nov 24 2026 12:00:00) complex  parallel </i>
  <i name="platform" type="string">LinuxIFC </i>
  <i name="date" type="string">2026 11 24 </i>
  <i name="time" type="string">12:00:00 </i>
 </generator>
 <incar>
  <i type="string" name="PREC">accurate</i>
  <i type="string" name="ALGO">Fast</i>
  <i name="ENCUT">    520.00000000</i>
  <i name="EDIFF">      0.00005000</i>
  <i type="int" name="ISMEAR">    -5</i>
  <i name="SIGMA">      0.05000000</i>
  <i type="int" name="ISPIN">     1</i>
  <i type="int" name="NSW">     0</i>
  <i type="int" name="NELM">   {nelm}</i>
  <i type="logical" name="LASPH"> T  </i>
  <i type="logical" name="LWAVE"> F  </i>
 </incar>
 <kpoints>
  <generation param="Gamma">
   <v type="int" name="divisions">       4        4        4 </v>
   <v name="usershift">      0.00000000       0.00000000       0.00000000 </v>
   <v name="genvec1">      0.25000000       0.00000000       0.00000000 </v>
   <v name="genvec2">      0.00000000       0.25000000       0.00000000 </v>
   <v name="genvec3">      0.00000000       0.00000000       0.25000000 </v>
   <v name="shift">      0.00000000       0.00000000       0.00000000 </v>
  </generation>
  <varray name="kpointlist" >
    <v>       0.00000000       0.00000000       0.00000000 </v>
  </varray>
  <varray name="weights" >
    <v>       1.00000000 </v>
  </varray>
 </kpoints>
 <parameters>
  <separator name="general" >
   <i type="string" name="SYSTEM">Cu4</i>
   <i type="logical" name="LCOMPAT"> F  </i>
   <i type="int" name="LORBIT">     0</i>
  </separator>
  <separator name="electronic" >
   <i type="string" name="PREC">accurate</i>
   <i name="ENMAX">    520.00000000</i>
   <i name="NELECT">     {11.0 * n:.8f}</i>
   <i type="int" name="ISPIN">     1</i>
   <i type="int" name="NBANDS">    30</i>
   <separator name="electronic convergence" >
    <i type="int" name="NELM">   {nelm}</i>
    <i name="EDIFF">      0.00005000</i>
   </separator>
   <separator name="electronic smearing" >
    <i type="int" name="ISMEAR">    -5</i>
    <i name="SIGMA">      0.05000000</i>
   </separator>
  </separator>
  <separator name="ionic" >
   <i type="int" name="NSW">     0</i>
   <i type="int" name="IBRION">    -1</i>
   <i name="EDIFFG">     -0.05000000</i>
  </separator>
 </parameters>
 <atominfo>
  <atoms>       {n} </atoms>
  <types>       1 </types>
  <array name="atoms" >
   <dimension dim="1">ion</dimension>
   <field type="string">element</field>
   <field type="int">atomtype</field>
   <set>
{"".join("    <rc><c>Cu</c><c>   1</c></rc>" + chr(10) for _ in range(n))}   </set>
  </array>
  <array name="atomtypes" >
   <dimension dim="1">type</dimension>
   <field type="int">atomspertype</field>
   <field type="string">element</field>
   <field>mass</field>
   <field>valence</field>
   <field type="string">pseudopotential</field>
   <set>
    <rc><c>   {n}</c><c>Cu</c><c>     63.54600000</c><c>     11.00000000</c><c>  PAW_PBE Cu_pv 06Sep2000                 </c></rc>
   </set>
  </array>
 </atominfo>
{_structure("initialpos", atoms)}
 <calculation>
{scsteps}
{_structure("", atoms)}
  <varray name="forces" >
{_v(forces)}
  </varray>
  <varray name="stress" >
{_v(stress_kbar)}
  </varray>
  <energy>
   <i name="e_fr_energy">{energy:16.8f} </i>
   <i name="e_wo_entrp">{energy:16.8f} </i>
   <i name="e_0_energy">{energy:16.8f} </i>
  </energy>
  <eigenvalues>
   <array>
    <dimension dim="1">band</dimension>
    <dimension dim="2">kpoint</dimension>
    <dimension dim="3">spin</dimension>
    <field>eigene</field>
    <field>occ</field>
    <set>
     <set comment="spin 1">
      <set comment="kpoint 1">
{eig}
      </set>
     </set>
    </set>
   </array>
  </eigenvalues>
  <dos>
   <i name="efermi">     16.50000000 </i>
   <total>
    <array>
     <dimension dim="1">gridpoints</dimension>
     <dimension dim="2">spin</dimension>
     <field>energy</field>
     <field>total</field>
     <field>integrated</field>
     <set>
      <set comment="spin 1">
{dos}
      </set>
     </set>
    </array>
   </total>
  </dos>
 </calculation>
{_structure("finalpos", atoms)}
</modeling>
"""


OUTCAR = """ vasp.6.4.2 20Jul23 (build Nov 24 2026 12:00:00) complex

 running on    1 total cores
 POTCAR:    PAW_PBE Cu_pv 06Sep2000
   NELECT =      44.0000    total number of electrons
   k-points           NKPTS =      1   k-points in BZ     NKDIM =      1   number of bands    NBANDS=     30
   total plane-waves  NPLWV =  32768
   IBRION =     -1    ionic relax: 0-MD 1-quasi-New 2-CG
   ISPIN  =      1    spin polarized calculation?
 total drift:                                0.000000   0.000000   0.000000

                  General timing and accounting informations for this job:
                  ========================================================

                  Total CPU time used (sec):        1.000
                            User time (sec):        1.000
                          System time (sec):        0.000
                         Elapsed time (sec):        1.000

                   Maximum memory used (kb):       10000.
                   Average memory used (kb):          N/A
"""
"""The lines of an OUTCAR that pymatgen's ``Outcar`` and emmet's ``TaskDoc`` need."""


def emt_reference(atoms):
    """EMT energy (eV), forces (eV/Å) and VASP-convention stress (kbar, compression > 0)."""
    atoms = atoms.copy()
    atoms.calc = EMT()
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    stress_kbar = -atoms.get_stress(voigt=False) / GPa * 10.0
    return energy, forces, stress_kbar


if __name__ == "__main__":
    atoms = cu4()
    energy, forces, stress = emt_reference(atoms)
    out = HERE / "vasp_cu4"
    out.mkdir(exist_ok=True)
    (out / "vasprun.xml").write_text(vasprun(atoms, energy, forces, stress))
    (out / "vasprun_unconverged.xml").write_text(
        vasprun(atoms, energy, forces, stress, nelm=8, nsteps=8)
    )
    (out / "OUTCAR").write_text(OUTCAR)
    write(out / "CONTCAR", atoms, format="vasp", direct=True)
    print(f"wrote {out}")
