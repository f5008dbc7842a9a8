"""Access to the compiled core ``s4op_kernels._C`` with an error that says how to repair it."""

from __future__ import annotations

import functools
import os
import pathlib
import re
import warnings
from types import ModuleType
from typing import Optional

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
    _configure_threading(_C)
    return _C


# S4OP_THREADING: "auto" (default) runs the engine's parallel sections on torch's OpenMP threads when
# torch uses OpenMP, "openmp" insists on that, "pool" uses the engine's own std::thread pool.
# Why share torch's threads: after every torch op, its OpenMP workers spin on the other cores for a
# while; a separate pool's worker then has to fight them for a core (measured in benchmarks/RESULTS.md).
_THREADING_CHOICES = ("auto", "openmp", "pool")
_OPENMP_NAME = re.compile(r"^lib(gomp|iomp5|omp)[-.\w]*\.so(\.\d+)*$")


def _loaded_openmp_library() -> Optional[str]:
    """Path of the OpenMP runtime torch uses, if torch's parallel backend is OpenMP and it can be found
    among the libraries mapped into this process (Linux); None otherwise."""
    import torch

    if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return None
    try:
        maps = pathlib.Path("/proc/self/maps").read_text()
    except OSError:  # not Linux
        return None
    paths = sorted({line.split(None, 5)[5] for line in maps.splitlines()
                    if len(line.split(None, 5)) == 6 and _OPENMP_NAME.match(os.path.basename(line.split(None, 5)[5]))})
    torch_lib = pathlib.Path(torch.__file__).resolve().parent / "lib"
    own = [p for p in paths if pathlib.Path(p).resolve().parent == torch_lib]
    if own:
        return own[0]
    return paths[0] if len(paths) == 1 else None  # several runtimes and none is torch's: do not guess


def _configure_threading(mod: ModuleType) -> None:
    choice = os.environ.get("S4OP_THREADING", "auto").strip().lower() or "auto"
    if choice not in _THREADING_CHOICES:
        warnings.warn(f"S4OP_THREADING must be one of {_THREADING_CHOICES}, got {choice!r}; using 'auto'",
                      RuntimeWarning, stacklevel=3)
        choice = "auto"
    if choice == "pool":
        mod.use_builtin_pool()
        return
    lib = _loaded_openmp_library()
    if lib is None:
        if choice == "openmp":
            warnings.warn("S4OP_THREADING=openmp, but torch's OpenMP runtime was not found in this process; "
                          "the engine uses its own thread pool", RuntimeWarning, stacklevel=3)
        return
    try:
        mod.use_openmp(lib)
    except ValueError as err:  # not loaded after all / no GOMP_parallel: the pool is always correct
        warnings.warn(f"could not join torch's OpenMP runtime ({err}); the engine uses its own thread pool",
                      RuntimeWarning, stacklevel=3)


def threading_backend() -> str:
    """What the CPU engine's parallel sections run on (see ``S4OP_THREADING`` in the README)."""
    return C().threading_backend()


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
