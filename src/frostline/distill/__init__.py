"""Surrogate distillation: the final fine-tuned MACE teaches a fast linear ACE (pyace, ``.yace``).

``DistillMaker`` (jobs), the linear-ACE fit and slab padding (``ace``), teacher data (``teacher``),
checks (``validate``) and documents (``schemas``).
"""

from frostline.distill.ace import SurrogateCalculator, ace_ready
from frostline.distill.jobs import DistillMaker, export_surrogate

__all__ = ["DistillMaker", "SurrogateCalculator", "ace_ready", "export_surrogate"]
