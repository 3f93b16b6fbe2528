"""Helpers shared by test files in several folders (importable as ``helpers.*``: tests/ is on
``sys.path``, see ``[tool.pytest.ini_options]``)."""
