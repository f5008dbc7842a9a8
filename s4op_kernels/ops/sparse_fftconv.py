"""Sparse-channel FFT convolution: the SSM part of an operator-pruned S4/S4D layer.

    y[:, h] = causal_conv(u[:, h], K_h) + D_h u[:, h]   for active h (computed by FFT)
    y[:, h] = u[:, h]                                   for pruned h (identity: no D, no kernel)
"""

from __future__ import annotations

import torch

from s4op_kernels.ops import dispatch


def fft_size(L: int) -> int:
    """FFT length used for a causal convolution of length L (linear, not circular: >= 2L - 1)."""
    return 2 * L


def sparse_fftconv_ref(
    u: torch.Tensor, k_f: torch.Tensor, D: torch.Tensor, active: torch.Tensor, n_fft: int
) -> torch.Tensor:
    """Reference sparse-channel FFT convolution.

    u: (B, H, L) float32/float64; k_f: (A, n_fft // 2 + 1) complex, rfft of the active channels'
    kernels; D: (A,) real; active: (A,) int64, sorted distinct channel indices in [0, H);
    n_fft >= 2L - 1.  Returns y: (B, H, L) of u's dtype.  Differentiable in u, k_f and D.
    """
    if active.numel() == 0:
        return u.clone()
    L = u.shape[-1]
    ua = u.index_select(1, active)  # (B, A, L)
    ya = torch.fft.irfft(torch.fft.rfft(ua, n=n_fft) * k_f, n=n_fft)[..., :L]  # (B, A, L)
    ya = ya + D.unsqueeze(-1) * ua
    return u.index_copy(1, active, ya)


def sparse_fftconv(
    u: torch.Tensor, k_f: torch.Tensor, D: torch.Tensor, active: torch.Tensor, n_fft: int
) -> torch.Tensor:
    """Sparse-channel FFT convolution (shapes as in :func:`sparse_fftconv_ref`), dispatched by backend."""
    backend = dispatch.resolve(u.device)
    if backend == dispatch.REFERENCE:
        return sparse_fftconv_ref(u, k_f, D, active, n_fft)
    raise NotImplementedError(f"sparse_fftconv: backend {backend!r} has no implementation")
