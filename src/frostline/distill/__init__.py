"""Surrogate distillation: the final fine-tuned MACE teaches a fast linear ACE (pyace, ``.yace``).

``DistillMaker`` (``jobs``), the linear-ACE fit and slab padding (``ace``), teacher data
(``teacher``), checks (``validate``), the verdict shown by ``status`` and ``models list``
(``status``) and documents (``schemas``). Nothing is imported here, so that the CLI can read a
surrogate's verdict without loading torch or pyace.
"""
