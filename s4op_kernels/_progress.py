"""When progress bars show: the one rule for every bar of the package (training, the search)."""

from __future__ import annotations

import sys
from typing import Optional


def progress_enabled(progress: Optional[bool]) -> bool:
    """``progress`` if given, else only when stderr is a terminal (never in logs or CI)."""
    if progress is None:
        return sys.stderr.isatty()
    return bool(progress)
