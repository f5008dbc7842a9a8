"""GPU (CUDA) benchmarks of the ``"triton"`` backend at the paper's layer sizes, per pruning rate, fp32 and bf16.

The SSM part of a layer (sparse_fftconv with the fused GELU), kernel spectra given:
  ours            the triton backend: the fused four-step FFT kernel (n <= 8192), one launch
  ours_fallback   the triton backend's fallback forced: torch.fft on the gathered active rows + Triton epilogue
  torch_gather    torch.fft + gather/scatter: the op's reference (gather the active rows, rfft, product, irfft,
                  + D u, index_copy back, GELU), i.e. use_backend("reference") on CUDA tensors
  dense           the unpruned reference: torch.fft over all H channels (pruning ignored), + D u, GELU
bf16 inputs: ours reads and writes bf16 (fp32 accumulation); the torch contenders compute in fp32 (cuFFT has no
bf16) and round the result to bf16.  Kernel generation (s4d_kernel of the active rows) and one S4D layer forward
(eval, spectra cached: auto = triton vs use_backend("reference")) at the same sizes.

Skipped without a CUDA device.  Each row times with pytest-benchmark (the call plus a synchronize) and stores
the CUDA-event median of ``triton.testing.do_bench`` in extra_info["gpu_ms"].

Run (on a CUDA machine): benchmarks/gpu/run_gpu_check.sh, or
    pytest benchmarks/bench_gpu.py --benchmark-only --benchmark-json=gpu.json
"""

from __future__ import annotations

import pytest
import torch

import s4op_kernels
from s4op_kernels.ops import fft_size, s4d_kernel, sparse_fftconv, sparse_fftconv_ref
from factories import make_conv_args, make_input, make_s4d, some_channels
from harness import require_backend
from shapes import BENCH_SHAPES, PAPER_SHAPES

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="no CUDA device: the GPU benchmarks need one (benchmarks/gpu/run_gpu_check.sh runs them on a CUDA machine)")

SHAPES = {**PAPER_SHAPES, "batch8": BENCH_SHAPES[1]}  # the paper's four layers (batch 1) and a batch of 8
RATES = [0.0, 0.5, 0.9]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
IMPLS = ["ours", "ours_fallback", "torch_gather", "dense"]


def _sync(fn):
    def run():
        out = fn()
        torch.cuda.synchronize()
        return out
    return run


def _time(benchmark, fn, rounds=50):
    """pytest-benchmark over the synchronized call, and the CUDA-event median in extra_info["gpu_ms"]."""
    import triton.testing

    fn()
    torch.cuda.synchronize()
    benchmark.extra_info["gpu_ms"] = triton.testing.do_bench(fn, warmup=10, rep=50, return_mode="median")
    benchmark.pedantic(_sync(fn), rounds=rounds, warmup_rounds=3)


def _dense(u, k_full, D_full, n):
    """All H channels through torch.fft (pruning ignored), + D u, GELU: the unpruned reference's SSM part."""
    L = u.shape[-1]
    uf = u.float()
    y = torch.fft.irfft(torch.fft.rfft(uf, n=n) * k_full, n=n)[..., :L] + D_full.unsqueeze(-1) * uf
    return torch.nn.functional.gelu(y).to(u.dtype)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", list(DTYPES), ids=list(DTYPES))
@pytest.mark.parametrize("rate", RATES, ids=lambda r: f"rate{int(r * 100)}")
@pytest.mark.parametrize("task", list(SHAPES))
def test_ssm_gpu(benchmark, task, rate, dtype, impl):
    if impl.startswith("ours"):
        require_backend("triton")
    B, H, _, L = SHAPES[task]
    n = fft_size(L)
    args, _ = make_conv_args(B, H, L, n, rate, DTYPES[dtype], seed=0, device="cuda")
    u, k_f, D, active = args
    benchmark.extra_info.update(subject="ssm_gpu", impl=impl, rate=rate, shape=[B, H, 64, L], task=task, dtype=dtype,
                                n_fft=n, device=torch.cuda.get_device_name())
    if impl == "ours":
        def fn():
            with s4op_kernels.use_backend("triton"):
                return sparse_fftconv(u, k_f, D, active, n, "gelu")
    elif impl == "ours_fallback":
        from s4op_kernels.ops import _triton_kernels

        def fn():
            return _triton_kernels.sparse_fftconv(u, k_f, D, active, n, "gelu", path="fallback")
    elif impl == "torch_gather":
        def fn():
            return sparse_fftconv_ref(u, k_f, D, active, n, "gelu")
    else:
        k_full = torch.randn(H, n // 2 + 1, dtype=torch.complex64, device="cuda")
        D_full = torch.randn(H, device="cuda")

        def fn():
            return _dense(u, k_full, D_full, n)
    with torch.inference_mode():
        _time(benchmark, fn)


@pytest.mark.parametrize("impl", ["triton", "reference"])
@pytest.mark.parametrize("rate", RATES, ids=lambda r: f"rate{int(r * 100)}")
@pytest.mark.parametrize("task", list(PAPER_SHAPES))
def test_kernel_generation_gpu(benchmark, task, rate, impl):
    if impl == "triton":
        require_backend("triton")
    _, H, N, L = PAPER_SHAPES[task]
    k = make_s4d(H, N, 0).kernel.to("cuda")
    rows = torch.tensor(some_channels(H, rate, 0), device="cuda")
    params = [t.detach() for t in (k.C, k.log_dt, k.log_A_real, k.A_imag)]
    benchmark.extra_info.update(subject="kernel_gpu", impl=impl, rate=rate, shape=[1, H, N, L], task=task,
                                device=torch.cuda.get_device_name())

    def fn():
        with s4op_kernels.use_backend(impl):
            return s4d_kernel(*params, L, rows)
    with torch.inference_mode():
        _time(benchmark, fn, rounds=20)


@pytest.mark.parametrize("impl", ["auto", "reference"])
@pytest.mark.parametrize("rate", RATES, ids=lambda r: f"rate{int(r * 100)}")
@pytest.mark.parametrize("task", list(SHAPES))
def test_layer_gpu(benchmark, task, rate, impl):
    if impl == "auto":
        require_backend("triton")
    B, H, N, L = SHAPES[task]
    layer = make_s4d(H, N, 0)
    layer.set_active_channels(some_channels(H, rate, 0))
    layer = layer.to("cuda").eval()
    u = make_input(B, H, L, 0).to("cuda")
    benchmark.extra_info.update(subject="layer_gpu", impl=impl, rate=rate, shape=[B, H, N, L], task=task,
                                device=torch.cuda.get_device_name())

    def fn():
        with s4op_kernels.use_backend(impl):
            return layer(u)[0]
    with torch.inference_mode():
        _time(benchmark, fn, rounds=20)
