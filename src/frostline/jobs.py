"""The job decorator of every frostline job (atomate2 has one per domain, e.g. ``cp2k_job``).

``@frostline_job(Model)`` is jobflow's ``@job`` with

- ``config=EXPOSE_STORE``: the job reaches frostline's records through ``CURRENT_JOB.store``
  (``expose_store=False`` for the few jobs that only build other jobs);
- ``output_schema=Model``: jobflow checks the output against the pydantic model (and checks
  attribute access on the job's output reference) where the job returns that model itself;
- ``data=`` and further keyword arguments as jobflow's (``data="candidates"`` sends that field
  to the job store's ``data`` store).

Jobs whose output is a list or a plain dict, or that replace themselves by a flow, declare
their schema with ``enforce=False``: it is recorded (``OUTPUT_SCHEMA_ATTRIBUTE`` on the job
function) but not given to jobflow, which would turn a dict into the model, refuse a list, and
(jobflow 0.1.x) hand the schema to the ``store_inputs`` job of a replacing flow, which then
fails on the output reference it stores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jobflow import job

from frostline.store import EXPOSE_STORE

OUTPUT_SCHEMA_ATTRIBUTE = "frostline_output_schema"
"""Attribute of a decorated job function holding the output schema it declares."""


def frostline_job(
    output_schema: Any,
    *,
    enforce: bool = True,
    expose_store: bool = True,
    **kwargs: Any,
) -> Callable[[Callable], Callable]:
    """Decorate a frostline job function or ``Maker.make`` (see the module docstring).

    ``output_schema``: the pydantic model the job returns (or a ``list[...]`` of models);
    ``enforce``: give it to jobflow (a model class returned as is); ``expose_store``: set
    ``config=EXPOSE_STORE`` unless ``config`` is given; ``kwargs``: jobflow's ``job`` options.
    """
    if enforce:
        if not (isinstance(output_schema, type) and hasattr(output_schema, "model_fields")):
            raise TypeError(f"enforce=True needs a pydantic model class, not {output_schema!r}")
        kwargs["output_schema"] = output_schema
    if expose_store:
        kwargs.setdefault("config", EXPOSE_STORE)

    def decorate(function: Callable) -> Callable:
        decorated = job(function, **kwargs)
        setattr(decorated, OUTPUT_SCHEMA_ATTRIBUTE, output_schema)
        return decorated

    return decorate
