"""Op level: the SSM part alone (sparse_fftconv, before GELU) per pruning rate, and kernel generation for
the active channels against one rfft + irfft pair over the same channels.

Run: pytest benchmarks/bench_ops.py --benchmark-only --benchmark-json=benchmarks/ops.json
then s4op bench-report benchmarks/ops.json
"""

from __future__ import annotations

import pytest
import torch

import s4op_kernels
from s4op_kernels.ops import fft_size, s4d_kernel, sparse_fftconv
from harness import Floor, require_backend, setup_layer
from shapes import BENCH_SHAPES, PRUNING_RATES

BACKENDS = ["cpu", "reference"]


def _ssm_inputs(layer, u):
    active = layer.active_channels
    L = u.shape[-1]
    n = fft_size(L)
    k = layer.kernel
    K = s4d_kernel(k.C, k.log_dt, k.log_A_real, k.A_imag, L, active)  # the active rows, read in place
    return u, torch.fft.rfft(K, n=n), layer.D[active].contiguous(), active, n


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rate", PRUNING_RATES, ids=lambda r: f"rate{int(r * 100)}")
@pytest.mark.parametrize("shape", BENCH_SHAPES, ids=lambda s: "B{}-H{}-N{}-L{}".format(*s))
def test_ssm(benchmark, shape, rate, backend):
    require_backend(backend)
    layer, u = setup_layer(shape, rate)
    with torch.inference_mode(), s4op_kernels.use_backend(backend):
        args = _ssm_inputs(layer, u)
        benchmark.extra_info.update(subject="ssm", impl=backend, rate=rate, shape=list(shape))
        benchmark.pedantic(sparse_fftconv, args=args, rounds=30, warmup_rounds=2)


@pytest.mark.parametrize("impl", ["cpu", "reference", "fft_pair"])
@pytest.mark.parametrize("rate", PRUNING_RATES, ids=lambda r: f"rate{int(r * 100)}")
@pytest.mark.parametrize("shape", BENCH_SHAPES, ids=lambda s: "B{}-H{}-N{}-L{}".format(*s))
def test_kernel_generation(benchmark, shape, rate, impl):
    if impl != "fft_pair":
        require_backend(impl)
    layer, u = setup_layer(shape, rate)
    active = layer.active_channels
    k = layer.kernel
    L = u.shape[-1]
    with torch.inference_mode():
        if impl == "fft_pair":  # one rfft + irfft over the same number of channels, batch 1
            fn = Floor(layer, u[:1]).fft_pair
            args = ()
        else:
            fn = s4d_kernel
            args = (k.C[active], k.log_dt[active], k.log_A_real[active], k.A_imag[active], L)
        benchmark.extra_info.update(subject="kernel", impl=impl, rate=rate, shape=list(shape))
        with s4op_kernels.use_backend("reference" if impl == "reference" else "auto"):
            benchmark.pedantic(fn, args=args, rounds=7 if impl == "reference" else 30, warmup_rounds=1)
