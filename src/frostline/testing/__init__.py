"""Test harness shipped with frostline (not used by a campaign): the chaos driver (kills and
resumes, audits), input fuzzing and misbehaving oracles, for ``tests/`` and
``workflows/benchmarks/chaos.py``. It may import anything in frostline; nothing in frostline
imports it."""
