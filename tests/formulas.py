"""A float64 evaluation of design.md's S4D formulas, independent of the package's code paths.

The SSM part is evaluated as the recurrence it came from (zero-order hold, S4D paper):
    x_t = exp(dt A) x_{t-1} + (exp(dt A) - 1) / A * u_t,     y_t = 2 Re(C x_t) + D u_t,
which equals causal_conv(u, K) + D u with K[l] = 2 Re sum_n C_n (exp(dt A_n) - 1)/A_n exp(dt A_n l),
so it checks the kernel, the FFT convolution and the skip term at once, with no FFT involved.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _np(t) -> np.ndarray:
    return t.detach().cpu().double().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, dtype=np.float64)


def s4d_kernel64(C, log_dt, log_A_real, A_imag, L: int) -> np.ndarray:
    """K: (H, L) float64 from C (H, N2, 2), log_dt (H,), log_A_real (H, N2), A_imag (H, N2)."""
    C, log_dt, log_A_real, A_imag = map(_np, (C, log_dt, log_A_real, A_imag))
    c = C[..., 0] + 1j * C[..., 1]
    A = -np.exp(log_A_real) + 1j * A_imag
    dtA = np.exp(log_dt)[:, None] * A
    coef = c * np.expm1(dtA) / A
    K = np.zeros((c.shape[0], L))
    for l in range(L):
        K[:, l] = 2 * np.real(np.sum(coef * np.exp(dtA * l), axis=-1))
    return K


def s4d_ssm64(u, C, log_dt, log_A_real, A_imag, D, active) -> np.ndarray:
    """SSM part of a pruned S4D layer, (B, H, L) float64: recurrence on active channels, identity elsewhere.

    u: (B, H, L); parameters dense over H; active: channel indices.
    """
    u = _np(u)
    C, log_dt, log_A_real, A_imag, D = map(_np, (C, log_dt, log_A_real, A_imag, D))
    active = np.asarray(active, dtype=np.int64)
    y = u.copy()
    if active.size == 0:
        return y
    c = (C[..., 0] + 1j * C[..., 1])[active]  # (A, N2)
    A = (-np.exp(log_A_real) + 1j * A_imag)[active]
    dtA = np.exp(log_dt)[active, None] * A
    dA, dB = np.exp(dtA), np.expm1(dtA) / A
    ua = u[:, active, :]  # (B, A, L)
    x = np.zeros(ua.shape[:2] + (c.shape[-1],), dtype=np.complex128)  # (B, A, N2)
    out = np.empty_like(ua)
    for t in range(ua.shape[-1]):
        x = dA * x + dB * ua[:, :, t, None]
        out[:, :, t] = 2 * np.real(np.sum(c * x, axis=-1))
    y[:, active, :] = out + D[active, None] * ua
    return y


def gelu64(x: np.ndarray) -> np.ndarray:
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def s4d_layer64(layer, u, active=None) -> np.ndarray:
    """Full S4D layer in eval mode (B, H, L) -> (B, H, L) float64, from a (dense) layer's state_dict.

    active defaults to all channels; pass it to evaluate a pruned layer.
    """
    sd = layer.state_dict()
    H = sd["D"].shape[0]
    active = np.arange(H) if active is None else np.asarray(active)
    y = s4d_ssm64(u, sd["kernel.C"], sd["kernel.log_dt"], sd["kernel.log_A_real"], sd["kernel.A_imag"], sd["D"], active)
    y = gelu64(y)
    W = _np(sd["output_linear.0.weight"])[:, :, 0]  # (2H, H)
    b = _np(sd["output_linear.0.bias"])  # (2H,)
    z = np.einsum("oh,bhl->bol", W, y) + b[None, :, None]
    a, g = z[:, :H], z[:, H:]
    return a / (1.0 + np.exp(-g))
