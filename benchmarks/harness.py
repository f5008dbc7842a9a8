"""Shared pieces of the benchmark suite: the implementations compared, built from the package's own
reference ops (nothing is copied), and a probe of the largest temporary allocation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import s4op_kernels
from s4op_kernels.ops import fft_size, s4d_kernel_ref, sparse_fftconv_ref
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


def largest_allocation(fn) -> int:
    """Bytes of the largest single CPU allocation made while running fn() once."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    sizes = [e.cpu_memory_usage for e in prof.events() if e.cpu_memory_usage > 0]
    return max(sizes, default=0)
