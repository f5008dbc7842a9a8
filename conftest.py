"""The one guard of both suites (``pytest`` of tests/ and ``pytest benchmarks/``): they must exercise the
installed package, with its compiled ``_C``, never the bare source tree.

``python -m pytest`` puts the current directory first on ``sys.path``, so run from the repository root it
imports ``./s4op_kernels``, which has no ``_C``: every op would quietly take the pure-PyTorch path (a
contender named ``cpu`` or ``ours`` would time the reference) and the compiled-backend tests and benchmarks
would fail deep in a traceback.  This conftest sits at the repository root, so pytest loads it for any test
path under it, and it refuses that run with the one-line fix.
"""

from __future__ import annotations

import pathlib
from typing import Optional

import pytest

ROOT = pathlib.Path(__file__).resolve().parent


def source_tree_problem(package_file: str, root: pathlib.Path = ROOT) -> Optional[str]:
    """Why the package imported from ``package_file`` (its ``__init__.py``) must not be tested, or None.

    Refused: the copy in ``root/s4op_kernels`` when it holds no compiled ``_C*.so``/``_C*.pyd`` (an in-place
    build next to the sources is a real build and is accepted)."""
    src = root / "s4op_kernels"
    pkg = pathlib.Path(package_file).resolve().parent
    if pkg != src.resolve():
        return None
    if any(src.glob("_C*.so")) or any(src.glob("_C*.pyd")):
        return None
    return (f"s4op_kernels was imported from the source tree ({pkg}), which has no compiled _C. Install the "
            "package (`make install`, or `pip install .`) and run `pytest` (not `python -m pytest`), e.g. "
            "`.venv/bin/pytest benchmarks/ --benchmark-only`, so the installed package is imported.")


def pytest_configure(config):
    import s4op_kernels

    problem = source_tree_problem(s4op_kernels.__file__)
    if problem:
        raise pytest.UsageError(problem)
