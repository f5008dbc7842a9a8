"""Inference latency of a model, measured the way the paper reports it (section IV, Table II).

The paper's protocol (its authors' latency script): batch 1, full sequence length, eval mode without
autograd, 50 warm-up and 100 timed forwards.  :func:`measure_latency` follows it with configurable counts
and reports the median (robust to the odd slow run on a shared machine) with its spread.
"""

from __future__ import annotations

import gc
import time
from dataclasses import asdict, dataclass
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import nn

from s4op_kernels.ops.dispatch import use_backend
from s4op_kernels._validate import check_int


@dataclass(frozen=True)
class LatencyStats:
    """Wall-clock time of one forward, in milliseconds, over ``repeats`` timed runs.

    ``p10_ms``/``p90_ms`` are the 10th/90th percentiles (linear interpolation); ``times_ms`` keeps every
    run in order.  ``threads`` is the torch intra-op thread count the runs used, ``backend`` the engine
    backend requested (``"auto"``: the C++ engine on CPU).
    """

    median_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    times_ms: tuple[float, ...]
    warmup: int
    threads: int
    backend: str

    @property
    def repeats(self) -> int:
        return len(self.times_ms)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (``times_ms`` as a list)."""
        d = asdict(self)
        d["times_ms"] = list(self.times_ms)
        d["repeats"] = self.repeats
        return d

    def __str__(self) -> str:
        return (f"{self.median_ms:.3f} ms median (p10 {self.p10_ms:.3f}, p90 {self.p90_ms:.3f}; "
                f"{self.repeats} runs, {self.threads} thread{'s' if self.threads != 1 else ''}, {self.backend})")


def measure_latency(
    model: nn.Module,
    example_input: Union[torch.Tensor, tuple, list],
    *,
    warmup: int = 10,
    repeats: int = 50,
    threads: Optional[int] = None,
    backend: str = "auto",
) -> LatencyStats:
    """Time ``model(*example_input)`` in inference.

    Args:
        model: the model; it runs in eval mode under ``torch.inference_mode()`` and every submodule's
            training flag is restored afterwards.
        example_input: a tensor, or a tuple/list of positional arguments (e.g. ``(x, lengths)``), already
            on the model's device.  :func:`example_input` builds one from a ``TaskInfo``.
        warmup: untimed forwards first (>= 0); they also fill the layers' kernel-spectrum caches, as in a
            deployed model that serves many requests of one length.
        repeats: timed forwards (>= 1).  The paper's protocol is ``warmup=50, repeats=100``.
        threads: torch intra-op threads during the measurement (the engine uses torch's count);
            ``None`` keeps the current setting.  The previous count is restored afterwards.
        backend: engine backend (:func:`s4op_kernels.use_backend`), ``"auto"`` by default.

    Python's garbage collector is paused during the timed runs (as ``timeit`` does) so a collection does
    not land inside one forward; CUDA work is synchronized before each clock read.
    """
    return measure_latencies([(model, example_input)], warmup=warmup, repeats=repeats, threads=threads,
                             backend=backend)[0]


def measure_latencies(
    cases, *, warmup: int = 10, repeats: int = 50, threads: Optional[int] = None, backend: str = "auto",
) -> list[LatencyStats]:
    """:func:`measure_latency` of several ``(model, example_input)`` cases, interleaved: each of the
    ``repeats`` rounds times every case once (the order reversed every other round), so a slow drift or a
    burst of other work on a shared machine hits all cases alike and their ratios stay meaningful.
    Returns one :class:`LatencyStats` per case, in order."""
    cases = list(cases)
    if not cases:
        raise ValueError("measure_latencies(cases): expected at least one (model, example_input) pair")
    prepared = []
    for i, case in enumerate(cases):
        if not (isinstance(case, (tuple, list)) and len(case) == 2):
            raise TypeError(f"measure_latencies(cases[{i}]): expected a (model, example_input) pair")
        model, inp = case
        if not isinstance(model, nn.Module):
            raise TypeError(f"measure_latency(model): expected an nn.Module, got {type(model).__name__}")
        args = _as_args(inp)
        prepared.append((model, args, _synchronizer(args)))
    warmup = _check_count("warmup", warmup, minimum=0)
    repeats = _check_count("repeats", repeats, minimum=1)
    if threads is not None:
        threads = _check_count("threads", threads, minimum=1)
    if not isinstance(backend, str):
        raise TypeError(f"measure_latency(backend): expected a backend name, got {type(backend).__name__}")

    modes = [(m, m.training) for model, _, _ in prepared for m in model.modules()]
    old_threads = torch.get_num_threads()
    gc_was_enabled = gc.isenabled()
    times: list[list[float]] = [[] for _ in prepared]
    order = list(range(len(prepared)))
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        used_threads = torch.get_num_threads()
        for model, _, _ in prepared:
            model.eval()
        with use_backend(backend), torch.inference_mode():
            for model, args, sync in prepared:
                for _ in range(warmup):
                    model(*args)
                sync()
            gc.collect()
            gc.disable()
            for r in range(repeats):
                for i in (order if r % 2 == 0 else order[::-1]):
                    model, args, sync = prepared[i]
                    start = time.perf_counter_ns()
                    model(*args)
                    sync()
                    times[i].append((time.perf_counter_ns() - start) / 1e6)
    finally:
        if gc_was_enabled:
            gc.enable()
        for module, training in modes:
            module.training = training
        if torch.get_num_threads() != old_threads:
            torch.set_num_threads(old_threads)

    stats = []
    for ts in times:
        t = np.asarray(ts, dtype=np.float64)
        p10, median, p90 = np.percentile(t, [10.0, 50.0, 90.0])
        stats.append(LatencyStats(
            median_ms=float(median), p10_ms=float(p10), p90_ms=float(p90), mean_ms=float(t.mean()),
            min_ms=float(t.min()), max_ms=float(t.max()), times_ms=tuple(float(x) for x in t),
            warmup=warmup, threads=used_threads, backend=backend,
        ))
    return stats


def example_input(
    info,
    batch_size: int = 1,
    *,
    seq_len: Optional[int] = None,
    seed: int = 0,
    device: Optional[Union[str, torch.device]] = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """A random model input for the task described by ``info`` (a ``TaskInfo``), for latency probes.

    Token tasks (``info.vocab_size``): ``x: (batch_size, L)`` int64 tokens drawn from ``1..vocab_size-1``
    (no padding, so every position is computed).  Continuous tasks (``info.in_channels``):
    ``x: (batch_size, L, C)`` standard normal values of ``dtype``.  ``L`` is ``seq_len`` or
    ``info.seq_len`` (the paper times the full length at batch 1).  Seeded by ``seed``.
    """
    for attr in ("seq_len", "vocab_size", "in_channels"):
        if not hasattr(info, attr):
            raise TypeError(f"example_input(info): expected a TaskInfo, got {type(info).__name__} (no {attr!r})")
    batch_size = _check_count("batch_size", batch_size, minimum=1, func="example_input")
    L = _check_count("seq_len", info.seq_len if seq_len is None else seq_len, minimum=1, func="example_input")
    g = torch.Generator().manual_seed(int(seed))
    if info.vocab_size is not None:
        if info.vocab_size < 2:
            raise ValueError(f"example_input(info): vocab_size must be >= 2 (0 is padding), got {info.vocab_size}")
        x = torch.randint(1, int(info.vocab_size), (batch_size, L), generator=g, dtype=torch.int64)
    else:
        if not dtype.is_floating_point:
            raise TypeError(f"example_input(dtype): continuous inputs need a floating dtype, got {dtype}")
        x = torch.randn(batch_size, L, int(info.in_channels), generator=g, dtype=torch.float64).to(dtype)
    return x if device is None else x.to(device)


def _as_args(example_input) -> tuple:
    if isinstance(example_input, torch.Tensor):
        return (example_input,)
    if isinstance(example_input, (tuple, list)):
        if not any(isinstance(a, torch.Tensor) for a in example_input):
            raise TypeError("measure_latency(example_input): the tuple of arguments holds no tensor")
        return tuple(example_input)
    raise TypeError(
        f"measure_latency(example_input): expected a tensor or a tuple of positional arguments, got "
        f"{type(example_input).__name__}"
    )


def _synchronizer(args: tuple):
    devices = {a.device for a in args if isinstance(a, torch.Tensor) and a.device.type == "cuda"}
    if not devices:
        return lambda: None

    def sync() -> None:
        for device in devices:
            torch.cuda.synchronize(device)

    return sync


def _check_count(name: str, value, *, minimum: int, func: str = "measure_latency") -> int:
    return check_int(value, name, func=func, minimum=minimum)


class SSMOperators(nn.Module):
    """Runs only the SSM operators (the part pruning removes: convolution + skip, before GELU and the output
    mixing) of each prunable layer of a model, each on its own (B, H, L) input.  Timing it next to the whole
    model shows how much of the forward pruning can act on."""

    def __init__(self, model: nn.Module):
        super().__init__()
        from s4op_kernels.pruning.selection import ssm_layers

        self.layers = nn.ModuleList(ssm_layers(model))
        if not len(self.layers):
            raise ValueError("SSMOperators(model): the model contains no prunable SSM layer")

    def forward(self, u: torch.Tensor) -> torch.Tensor:  # u: (B, H, L); H must match every layer
        for layer in self.layers:
            # What the layer's own forward does first (S4: set the kernel length up for L; S4D: nothing).
            prepare = getattr(layer, "_prepare_forward", None)
            if prepare is not None:
                prepare(u.shape[-1])
            layer._ssm(u)
        return u


def measure_ssm_latency(model: nn.Module, batch_size: int, seq_len: int, **kwargs) -> LatencyStats:
    """:func:`measure_latency` of :class:`SSMOperators` of ``model`` on a random (batch_size, H, seq_len)
    input (H of the first prunable layer; all layers must share it)."""
    ops = SSMOperators(model)
    H = ops.layers[0].d_model
    if any(layer.d_model != H for layer in ops.layers):
        raise ValueError("measure_ssm_latency: the prunable layers have different d_model")
    p = next(ops.layers[0].parameters())
    u = torch.randn(batch_size, H, seq_len, generator=torch.Generator().manual_seed(0)).to(device=p.device, dtype=p.dtype)
    return measure_latency(ops, u, **kwargs)
