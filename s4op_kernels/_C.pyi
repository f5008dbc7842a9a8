# Type stub of the compiled core (python/module.cpp).
from typing import Any

def build_info() -> dict[str, Any]:
    """Compiler, flags, build type, SIMD level chosen at build time and threading backend of the core."""
