"""Scaling of one S4D layer (ours, warm: spectra cached, eval, ``torch.inference_mode``) at a fixed pruning rate
of 50 %: latency against the sequence length L at H=128, and against the channels H at L=4096 (B=1, N=64).
Every row is paired with the layer's floor (``harness.Floor``: rfft + irfft of the active channels + the output
GEMM; ``harness.time_against_floor``) and records its memory, which must stay O(B H L):

- ``peak_torch_bytes``: the peak of live tensor memory torch allocated during one forward, output included
  (profiler allocation events, ``harness.peak_torch_allocation``; the compiled core's own scratch buffers are
  not torch allocations);
- ``peak_rss_bytes``: how far the process's resident set rose above its size before the call (Linux VmHWM
  after a reset, ``harness.peak_rss_delta``; every allocation, in pages; None elsewhere);

each also divided by the input's bytes (``*_over_input``).  The benchmark fails if the torch peak exceeds
``MEMORY_BOUND`` times the input: a temporary of size H x N x L (the reference's kernel generation) would.

Default: L = 1K, 2K, ..., 16K and H = 32 ... 512; ``--paper-sizes`` / ``S4OP_PAPER_SIZES=1`` adds L = 32K, 64K.

Run: pytest benchmarks/bench_scaling.py --benchmark-only --benchmark-json=scaling.json
then s4op bench-report scaling.json --plots plots/
"""

from __future__ import annotations

import pytest
import torch

from harness import (Floor, ours, paper_sizes, peak_rss_delta, peak_torch_allocation, require_backend,
                     setup_layer, time_against_floor)

RATE = 0.5
N = 64
B = 1
H_FIXED = 128
L_FIXED = 4096
DEFAULT_LS = [1024 * 2**i for i in range(5)]  # 1K .. 16K
PAPER_LS = [1024 * 2**i for i in range(7)]  # 1K .. 64K
HS = [32, 64, 128, 256, 512]
ROUNDS = 15
# Peak torch memory of a forward over the input's bytes.  The warm forward holds the input, GELU'd SSM output
# with a ones channel (1x), the mixing's output (2x) and the GLU's (1x); the transforms of the active channels
# live in the core's own buffers.  Measured 4.0-4.1x; the reference's H x N/2 x L complex temporary is 256x.
MEMORY_BOUND = 8.0


def pytest_generate_tests(metafunc):
    if "scaling_case" in metafunc.fixturenames:
        Ls = PAPER_LS if paper_sizes(metafunc.config) else DEFAULT_LS
        cases = [("L", (B, H_FIXED, N, L)) for L in Ls] + [("H", (B, H, N, L_FIXED)) for H in HS]
        metafunc.parametrize("scaling_case", cases, ids=[f"{k}-B{s[0]}-H{s[1]}-N{s[2]}-L{s[3]}" for k, s in cases])


@pytest.mark.parametrize("impl", ["ours"])
def test_scaling(benchmark, scaling_case, impl):
    require_backend("cpu")
    sweep, shape = scaling_case
    layer, u = setup_layer(shape, RATE)
    input_bytes = u.numel() * u.element_size()
    with torch.inference_mode():
        floor = Floor(layer, u)
        fn = lambda: ours(layer, u)  # noqa: E731
        fn()  # warm-up: the cached spectra, FFT plans
        torch_peak = peak_torch_allocation(fn)
        rss_peak = peak_rss_delta(fn)
        timing = time_against_floor(benchmark, fn, floor, ROUNDS)
    benchmark.extra_info.update(
        subject="scaling", impl=impl, sweep=sweep, shape=list(shape), rate=RATE, threads=torch.get_num_threads(),
        input_bytes=input_bytes, peak_torch_bytes=torch_peak, peak_torch_over_input=torch_peak / input_bytes,
        peak_rss_bytes=rss_peak, peak_rss_over_input=None if rss_peak is None else rss_peak / input_bytes,
        **timing,
    )
    assert torch_peak <= MEMORY_BOUND * input_bytes, (
        f"peak torch memory {torch_peak} B is {torch_peak / input_bytes:.1f}x the input ({input_bytes} B) at "
        f"B,H,N,L={shape}: not O(B H L)")
