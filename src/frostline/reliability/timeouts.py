"""Oracle time-out: an ASE calculator whose every calculation is bounded in wall time.

``oracle.timeout_s`` wraps the oracle's ASE calculator (``emt``, ``xtb``, ``chgnet``,
``chgnet-r2scan``, ``ase``) in :func:`timed_calculator`: each ``calculate`` runs under a
``SIGALRM`` timer and raises :class:`OracleTimeoutError` when it is exceeded. The oracle job then
fails like a crashed calculation: its label is recorded as failed, the rest of the batch
proceeds, and the run's fault report names the structure and the time-out.

Limits: the timer needs the job to run in the main thread of its process (``run_locally``,
jobflow-remote and FireWorks workers do), and it interrupts Python code and blocking system
calls; a C extension that never returns to the interpreter is only stopped when it does. DFT
oracles (``cp2k``, ``vasp``, ``maker``) run external programs: bound them with the scheduler's
wall time instead (``timeout_s`` is refused for them).
"""

from __future__ import annotations

import contextlib
import importlib
import signal
import threading
from typing import Any


class OracleTimeoutError(TimeoutError):
    """An oracle calculation exceeded ``oracle.timeout_s``."""


@contextlib.contextmanager
def time_limit(seconds: float, what: str = "oracle calculation"):
    """Raise :class:`OracleTimeoutError` in the main thread after ``seconds`` (no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _expired(signum, frame):
        raise OracleTimeoutError(f"{what} exceeded the time-out of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def timed_calculator(target: str, timeout_s: float, **kwargs: Any):
    """The ASE calculator ``target`` (import path) built with ``kwargs``, time-limited.

    ``target`` is an oracle's calculator: a built-in oracle's factory (``frostline.label``) or
    a class deriving from ASE's ``Calculator`` (``frostline.config.import_class``).
    """
    from frostline.config import CALCULATOR_BASES, import_class

    module, _, name = target.rpartition(".")
    if module.startswith(("frostline.label.", "ase.calculators.")):
        factory = getattr(importlib.import_module(module), name)
    else:
        factory = import_class(target, "oracle ase: settings.calculator", CALCULATOR_BASES)
    calc = factory(**kwargs)
    calculate = calc.calculate

    def limited(*args, **kw):
        with time_limit(timeout_s, f"oracle {target}"):
            return calculate(*args, **kw)

    calc.calculate = limited
    return calc
