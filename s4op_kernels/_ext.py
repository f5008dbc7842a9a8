"""Access to the compiled core ``s4op_kernels._C`` with an error that says how to repair it."""

from __future__ import annotations

import functools
from types import ModuleType

_REINSTALL_HINT = (
    "The compiled extension s4op_kernels._C is missing or broken ({err}). It is built by "
    "`pip install .` from the source tree (a C++17 compiler and CMake >= 3.18 are needed; "
    "pip fetches scikit-build-core and pybind11 itself). Reinstall with "
    "`pip install --force-reinstall --no-deps .` from the repository root, and do not run "
    "Python from inside the source tree's parent folder of an uninstalled copy."
)


class ExtensionUnavailableError(ImportError):
    """Raised when s4op_kernels._C cannot be imported."""


@functools.lru_cache(maxsize=None)
def _load() -> ModuleType | ExtensionUnavailableError:
    try:
        from s4op_kernels import _C
    except ImportError as err:  # missing file, ABI mismatch, unresolved symbol
        return ExtensionUnavailableError(_REINSTALL_HINT.format(err=err))
    return _C


def extension_available() -> bool:
    return not isinstance(_load(), ExtensionUnavailableError)


def unavailable_reason() -> str:
    mod = _load()
    return str(mod) if isinstance(mod, ExtensionUnavailableError) else "available"


def C() -> ModuleType:
    """Return the compiled module, or raise ExtensionUnavailableError with a reinstall hint."""
    mod = _load()
    if isinstance(mod, ExtensionUnavailableError):
        raise mod
    return mod
