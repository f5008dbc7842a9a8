"""The one dispatch point: which implementation of an op runs, per call, by device and backend.

Backends:
  ``"reference"``  pure PyTorch (any device, autograd, float64-capable); always available.
  ``"auto"``       the default: the fastest available backend for the tensors' device.

The backend is selected per thread/task with the context manager :func:`use_backend`.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

import torch

AUTO = "auto"
REFERENCE = "reference"

_current: contextvars.ContextVar[str] = contextvars.ContextVar("s4op_backend", default=AUTO)


def available_backends() -> list[str]:
    """Names of the backends usable on this installation, in order of preference."""
    return [REFERENCE]


def current_backend() -> str:
    """The backend requested in this context (``"auto"`` unless inside :func:`use_backend`)."""
    return _current.get()


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[str]:
    """Run the enclosed code with backend ``name`` (one of :func:`available_backends` or ``"auto"``).

    >>> with s4op_kernels.use_backend("reference"):
    ...     y, _ = layer(u)
    """
    if not isinstance(name, str):
        raise TypeError(f"use_backend(name): expected a backend name (str), got {type(name).__name__}")
    valid = [AUTO, *available_backends()]
    if name not in valid:
        raise ValueError(f"use_backend(name): unknown or unavailable backend {name!r}; choose one of {valid}")
    token = _current.set(name)
    try:
        yield name
    finally:
        _current.reset(token)


def resolve(device: torch.device) -> str:
    """The backend that runs an op on tensors of ``device`` in the current context."""
    name = _current.get()
    if name == AUTO:
        return REFERENCE
    return name
