"""Shared pieces of the benchmark suite: the implementations compared, built from the package's own
reference ops (nothing is copied), probes of the largest temporary allocation and of peak memory, the
paired-floor timing every model and scaling row uses, and the rule that skips an unavailable contender."""

from __future__ import annotations

import os
import statistics
import time
from typing import Callable, Optional

import pytest

import torch
import torch.nn.functional as F

import s4op_kernels
from s4op_kernels.ops import fft_size, s4d_kernel_ref, sparse_fftconv, sparse_fftconv_ref
from factories import make_input, make_s4d, some_channels


def setup_layer(shape, rate, seed=0):
    """A pruned S4DLayer at ``rate`` and its input, for shape (B, H, N, L)."""
    B, H, N, L = shape
    layer = make_s4d(H, N, seed)
    layer.set_active_channels(some_channels(H, rate, seed))
    return layer, make_input(B, H, L, seed)


def reference_algorithm(layer, u):
    """The reference S4D forward on every channel: kernel regenerated each call (H x N x L temporary),
    FFT convolution of all channels, skip term, GELU, output mixing.  Ignores pruning."""
    H, L = layer.d_model, u.shape[-1]
    k = layer.kernel
    n = fft_size(L)
    K = s4d_kernel_ref(k.C, k.log_dt, k.log_A_real, k.A_imag, L)
    y = torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(K, n=n), n=n)[..., :L] + layer.D.unsqueeze(-1) * u
    return layer.output_linear(F.gelu(y))


def paper_pruned_model(layer, u):
    """The paper's pruned model: gather the active channels, run the reference algorithm on them (kernel
    regenerated each call), scatter back; pruned channels are identity."""
    active = layer.active_channels
    k = layer.kernel
    L = u.shape[-1]
    n = fft_size(L)
    K = s4d_kernel_ref(k.C[active], k.log_dt[active], k.log_A_real[active], k.A_imag[active], L)
    y = sparse_fftconv_ref(u, torch.fft.rfft(K, n=n), layer.D[active], active, n)
    return layer.output_linear(F.gelu(y))


class Floor:
    """The work no implementation can avoid: rfft + irfft of the active channels (kernel spectra given)
    plus the output 1x1 convolution over all channels, each by torch's fastest route on CPU: MKL's FFT and
    MKL's GEMM (baddbmm; torch's own Conv1d goes through oneDNN and is several times slower here)."""

    def __init__(self, layer, u):
        active = layer.active_channels
        L = u.shape[-1]
        self.n = fft_size(L)
        self.L = L
        self.ua = u[:, active].contiguous()
        self.k_f = torch.randn(len(active), self.n // 2 + 1, dtype=torch.complex64)
        self.y = u.clone()
        conv = layer.output_linear[0]
        self.w, self.b = conv.weight, conv.bias

    def fft_pair(self):
        if self.ua.shape[1]:
            torch.fft.irfft(torch.fft.rfft(self.ua, n=self.n) * self.k_f, n=self.n)

    def __call__(self):
        self.fft_pair()
        return torch.baddbmm(self.b.view(1, -1, 1), self.w.squeeze(-1).expand(self.y.shape[0], -1, -1), self.y)


def ours(layer, u):
    with s4op_kernels.use_backend("auto"):
        return layer(u)[0]


# ---------------------------------------------------------------------- contenders that cannot run
def require_backend(name: str) -> None:
    """Skip the calling benchmark (``pytest.skip``, with the reason) unless backend ``name`` is in
    ``s4op_kernels.available_backends()``.  A contender is timed under its own name or not at all: a missing
    compiled core must never let the pure-PyTorch path be timed as ``cpu`` or ``ours``."""
    available = s4op_kernels.available_backends()
    if name in available:
        return
    reason = f"backend {name!r} is not available on this installation (available: {available})"
    if name == "cpu":
        from s4op_kernels import _ext

        why = _ext.unavailable_reason()
        reason += f": {why}" if why != "available" else ""
    pytest.skip(reason)


# ---------------------------------------------------------------------- sizes
PAPER_SIZES_ENV = "S4OP_PAPER_SIZES"


def paper_sizes(config=None) -> bool:
    """True under ``--paper-sizes`` (benchmarks/conftest.py) or with ``S4OP_PAPER_SIZES=1`` in the
    environment: the full configurations; else the reduced defaults that keep the suite short."""
    if os.environ.get(PAPER_SIZES_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    return bool(config is not None and config.getoption("paper_sizes", default=False))


# ---------------------------------------------------------------------- memory
def _status_kb(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _release_free_memory() -> None:
    """Hand the C allocator's free pages back to the system (glibc ``malloc_trim``), so that memory a call
    reuses from earlier calls must be faulted in again and shows in the resident set; a no-op elsewhere."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_rss_delta(fn) -> Optional[int]:
    """Bytes the process's resident set grew to above its size before ``fn()``, at its peak during the call
    (Linux: the high-water mark VmHWM is reset by writing 5 to /proc/self/clear_refs); None where that is
    not available.  Sees every allocation, torch's and the compiled core's own buffers alike, in pages.  The
    allocator's free memory is handed back first (glibc ``malloc_trim``); where that is not possible, memory
    freed earlier and reused does not show, and the figure is a lower bound."""
    _release_free_memory()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    before = _status_kb("VmRSS")
    fn()
    peak = _status_kb("VmHWM")
    if before is None or peak is None:
        return None
    return max(0, peak - before) * 1024


def peak_torch_allocation(fn) -> int:
    """Bytes of the peak of live CPU tensor memory allocated by torch during ``fn()`` (the running sum of the
    profiler's allocation and free events, in time order), the output included.  The compiled core's own
    scratch buffers do not go through torch's allocator: see :func:`peak_rss_delta`."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # Each op event carries its own net allocation (self_cpu_memory_usage; frees outside any op are "[memory]"
    # events), so their running sum in time order is the live memory; an op's total (children included,
    # cpu_memory_usage) on top of what was live before it bounds what it held at once.
    live = peak = 0
    for e in sorted(prof.events(), key=lambda e: e.time_range.start):
        peak = max(peak, live + max(0, e.cpu_memory_usage))
        live += e.self_cpu_memory_usage if e.name != "[memory]" else e.cpu_memory_usage
        peak = max(peak, live)
    return peak


# ---------------------------------------------------------------------- timing against the floor
def time_against_floor(benchmark, fn: Callable[[], object], floor: Callable[[], object], rounds: int,
                       warmup_rounds: int = 1) -> dict:
    """Time ``fn`` with pytest-benchmark (``pedantic``, one call a round) and, in each round's untimed setup,
    ``floor`` once, so every round pairs a floor time with the contender's.  Returns ``ratio_to_floor``
    (the median of the per-round ratios: machine drift cancels), ``floor_ms`` and ``median_ms`` (this
    process's own clock, the same rounds)."""
    own, ref = [], []

    def setup():
        t = time.perf_counter()
        floor()
        ref.append(time.perf_counter() - t)

    def target():
        t = time.perf_counter()
        fn()
        own.append(time.perf_counter() - t)

    benchmark.pedantic(target, setup=setup, rounds=rounds, warmup_rounds=warmup_rounds)
    pairs = list(zip(own, ref))[warmup_rounds:] or list(zip(own, ref))
    return dict(ratio_to_floor=statistics.median(a / b for a, b in pairs),
                floor_ms=1e3 * statistics.median(b for _, b in pairs),
                median_ms=1e3 * statistics.median(a for a, _ in pairs))


def largest_allocation(fn) -> int:
    """Bytes of the largest single CPU allocation made while running fn() once."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    sizes = [e.cpu_memory_usage for e in prof.events() if e.cpu_memory_usage > 0]
    return max(sizes, default=0)


def measure_ratios(shape, rate, rounds, run_rounds=None) -> dict:
    """The engine's targets as paired ratios at (shape, rate): every round times ours, the floor, our SSM
    part at this rate and of the same layer unpruned, the fused SSM + GELU pass (pruned, unpruned), a
    GELU-only pass and ``u.clone()`` back to back; ratios are medians of per-round ratios, so machine drift
    cancels.  ``run_rounds(one_round, rounds)`` runs the rounds (pytest-benchmark's ``pedantic`` in
    bench_ratios.py; a plain loop by default).  Returns medians in ms (``<name>_ms``) and the ratios.

    What runs just before a call moves its time: the floor's MKL calls, say, leave megabytes of dirty cache
    lines that the next call pays to write back (0.05-0.08 ms measured at 90 %).  So every timed call
    follows the same untimed call, what precedes an SSM in a model: the previous layer's output mixing, a
    (2H, H + 1) x (B, H + 1, L) GEMM.  The order also alternates round by round.  At 0 %, "ssm" and
    "ssm_dense" are the same computation: that row is the control (ratio 1).
    """
    layer, u = setup_layer(shape, rate)
    dense, _ = setup_layer(shape, 0.0)
    B, H, L = u.shape
    g = torch.Generator().manual_seed(1)
    w_prev, y_prev = torch.randn(2 * H, H + 1, generator=g), torch.randn(B, H + 1, L, generator=g)
    with torch.inference_mode():
        floor = Floor(layer, u)
        none = torch.zeros(0, dtype=torch.int64)
        n_fft = fft_size(L)
        k0, d0 = torch.zeros(0, n_fft // 2 + 1, dtype=torch.complex64), torch.zeros(0)
        fns = {"ours": lambda: ours(layer, u), "floor": floor, "ssm": lambda: layer._ssm(u),
               "ssm_dense": lambda: dense._ssm(u),
               # the pass the layer runs in inference (SSM + GELU fused), and a GELU-only pass over all rows
               "fused": lambda: layer._ssm(u, "gelu"), "fused_dense": lambda: dense._ssm(u, "gelu"),
               "gelu_pass": lambda: sparse_fftconv(u, k0, d0, none, n_fft, "gelu"),
               # the memory floor of any out-of-place op on u: read it once, write it once
               "clone": lambda: u.clone()}
        times = {k: [] for k in fns}
        orders = [list(fns), list(reversed(fns))]

        def one_round():
            for k in orders[len(times["ours"]) % 2]:
                torch.matmul(w_prev, y_prev)
                t = time.perf_counter()
                fns[k]()
                times[k].append(time.perf_counter() - t)

        one_round()  # warm-up: plans, cached kernel spectra
        for v in times.values():
            v.clear()
        if run_rounds is None:
            for _ in range(rounds):
                one_round()
        else:
            run_rounds(one_round, rounds)
    ratio = statistics.median(a / b for a, b in zip(times["ours"], times["floor"]))
    ssm_fraction = statistics.median(a / b for a, b in zip(times["ssm"], times["ssm_dense"]))
    # SSM work inside the fused inference pass: the fused pass minus a GELU-only pass, round by round
    fused_fraction = statistics.median(
        (f - g) / (fd - g) for f, fd, g in zip(times["fused"], times["fused_dense"], times["gelu_pass"]))
    active_fraction = layer.num_active / layer.d_model
    return dict(
        shape=list(shape), rate=rate, threads=torch.get_num_threads(),
        **{f"{k}_ms": 1e3 * statistics.median(v) for k, v in times.items()},
        ours_over_floor=ratio, ssm_fraction=ssm_fraction, active_fraction=active_fraction,
        ssm_deviation=ssm_fraction - active_fraction, fused_ssm_fraction=fused_fraction,
        fused_ssm_deviation=fused_fraction - active_fraction,
    )
