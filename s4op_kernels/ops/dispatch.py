"""The one dispatch point: which implementation of an op runs, per call, by device and backend.

Backends:
  ``"cpu"``        the compiled C++ core (s4op_kernels._C) on CPU tensors; inference only (no autograd).
  ``"triton"``     the Triton kernels (ops/_triton_kernels.py) on CUDA tensors, or on CPU tensors under Triton's
                   interpreter (``TRITON_INTERPRET=1``, how the tests run them); inference only.  Available when
                   Triton is importable and a CUDA device exists or the interpreter is on.
  ``"reference"``  pure PyTorch (any device, autograd, float64-capable); always available.
  ``"auto"``       the default: ``"cpu"`` for CPU tensors and ``"triton"`` for CUDA tensors when no gradient
                   is needed and the backend is available, else ``"reference"``.

The backend is selected per thread/task with the context manager :func:`use_backend`.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib.util
import os
from typing import Iterator

import torch

from s4op_kernels import _ext

AUTO = "auto"
CPU = "cpu"
TRITON = "triton"
REFERENCE = "reference"

_current: contextvars.ContextVar[str] = contextvars.ContextVar("s4op_backend", default=AUTO)


def available_backends() -> list[str]:
    """Names of the backends usable on this installation, in order of preference."""
    return ([CPU] if _ext.extension_available() else []) + ([TRITON] if triton_available() else []) + [REFERENCE]


def backends_for(device) -> list[str]:
    """The available backends that run tensors on ``device`` (a torch.device or its name): ``"cpu"`` runs CPU
    tensors only, ``"triton"`` CUDA tensors (and CPU tensors under the interpreter), ``"reference"`` any."""
    device = torch.device(device)
    ok = {CPU: device.type == "cpu", TRITON: triton_runs_on(device), REFERENCE: True}
    return [name for name in available_backends() if ok[name]]


@functools.lru_cache(maxsize=None)
def triton_importable() -> bool:
    """Triton is installed (found without importing it: ``import s4op_kernels`` never imports Triton)."""
    return importlib.util.find_spec("triton") is not None


def triton_interpreting() -> bool:
    """Triton's interpreter is on (``TRITON_INTERPRET`` set to a true value, read as Triton reads it)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes")


def triton_available() -> bool:
    """The ``"triton"`` backend can run: Triton is importable and there is a CUDA device or the interpreter
    is on (then it runs the kernels on CPU tensors)."""
    return triton_importable() and (triton_interpreting() or torch.cuda.is_available())


def triton_runs_on(device: torch.device) -> bool:
    """The Triton kernels run on tensors of ``device``: CUDA tensors, or CPU tensors under the interpreter."""
    return device.type == "cuda" or (device.type == "cpu" and triton_interpreting())


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
        if name == TRITON:
            hint = (" (Triton is not installed: pip install triton, or the package's [gpu] extra)"
                    if not triton_importable() else
                    " (no CUDA device; TRITON_INTERPRET=1 runs Triton's interpreter on CPU tensors)")
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
        if needs_grad:
            return REFERENCE
        if device.type == "cpu" and _ext.extension_available():
            return CPU
        if device.type == "cuda" and triton_available():
            return TRITON
        return REFERENCE
    if name == CPU:
        if device.type != "cpu":
            raise ValueError(f"backend 'cpu' runs on CPU tensors, got tensors on {device}")
    if name == TRITON and not triton_runs_on(device):
        raise ValueError(f"backend 'triton' runs on CUDA tensors (or on CPU tensors under TRITON_INTERPRET=1), got "
                         f"tensors on {device}")
    if name in (CPU, TRITON) and needs_grad:
        raise RuntimeError(
            f"backend {name!r} is inference-only (no autograd); train with use_backend('reference') or 'auto', "
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
