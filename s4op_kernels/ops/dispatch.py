"""The one dispatch point: which implementation of an op runs, per call, by device and backend.

Backends:
  ``"cpu"``        the compiled C++ core (s4op_kernels._C) on CPU tensors; inference only (no autograd).
  ``"reference"``  pure PyTorch (any device, autograd, float64-capable); always available.
  ``"auto"``       the default: ``"cpu"`` for CPU tensors when no gradient is needed, else ``"reference"``.

The backend is selected per thread/task with the context manager :func:`use_backend`.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

import torch

from s4op_kernels import _ext

AUTO = "auto"
CPU = "cpu"
REFERENCE = "reference"

_current: contextvars.ContextVar[str] = contextvars.ContextVar("s4op_backend", default=AUTO)


def available_backends() -> list[str]:
    """Names of the backends usable on this installation, in order of preference."""
    return ([CPU] if _ext.extension_available() else []) + [REFERENCE]


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
        hint = f" ({_ext.unavailable_reason()})" if name == CPU else ""
        raise ValueError(f"use_backend(name): unknown or unavailable backend {name!r}{hint}; choose one of {valid}")
    token = _current.set(name)
    try:
        yield name
    finally:
        _current.reset(token)


def resolve(device: torch.device, needs_grad: bool) -> str:
    """The backend that runs an op on tensors of ``device`` in the current context.

    ``needs_grad``: some input requires grad and grad mode is on (only ``"reference"`` has autograd).
    """
    name = _current.get()
    if name == AUTO:
        if device.type == "cpu" and not needs_grad and _ext.extension_available():
            return CPU
        return REFERENCE
    if name == CPU:
        if device.type != "cpu":
            raise ValueError(f"backend 'cpu' runs on CPU tensors, got tensors on {device}")
        if needs_grad:
            raise RuntimeError(
                "backend 'cpu' is inference-only (no autograd); train with use_backend('reference') or 'auto', "
                "or run under torch.no_grad()"
            )
    return name


def eager_cpu(t: torch.Tensor) -> bool:
    """The one eager policy of every op: on CPU tensors outside a trace, a public op calls the CPU kernel its
    custom op would dispatch to, directly, without the custom-op machinery (about 15 us per call, a large
    share of a small layer's forward: benchmarks/RESULTS.md); traced code (torch.compile, export) keeps
    the custom op, so graphs see ``s4op::...`` and its fake."""
    return t.device.type == "cpu" and not torch.compiler.is_compiling()


def needs_grad(*tensors: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def check_same_device(op: str, **tensors: torch.Tensor) -> None:
    """Raise ValueError unless every tensor is on the first one's device.  Called by each op's kernels and
    fake: with mixed devices the dispatcher picks one device's kernel (a meta argument selects the fake,
    which would return uninitialized memory for CPU inputs)."""
    (first, t0), *rest = tensors.items()
    for name, t in rest:
        if t.device != t0.device:
            raise ValueError(f"{op}: {name} is on {t.device} but {first} is on {t0.device}; all tensors must be on "
                             "one device")
