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


# ---------------------------------------------------------------------------------------------- S4 (DPLR)
def dplr_system64(inv_dt, A_real, A_imag, B, P, C, l_kernel: int):
    """The full conjugate-symmetric S4 system of every channel from reference-layout tensors (inv_dt (H, 1),
    A_real/A_imag (H, N2), B/P/C (1, H, N2, 2)): (dA, dB, C_f) in complex128, (H, 2N2, 2N2), (H, 2N2), (H, 2N2).

    A_f = diag([Lambda; conj Lambda]) - P_f P_f^H, bilinear dA = (I - dt/2 A_f)^-1 (I + dt/2 A_f),
    dB = (I - dt/2 A_f)^-1 dt B_f; C holds C-tilde for l_kernel, so C_f = C~ (I - dA^l_kernel)^-1 (C itself
    while l_kernel == 0)."""
    dt = np.exp(_np(inv_dt)[:, 0])
    lam = -np.exp(_np(A_real)) - 1j * _np(A_imag)
    cplx = lambda t: _np(t)[0, ..., 0] + 1j * _np(t)[0, ..., 1]  # noqa: E731
    b, p, c = cplx(B), cplx(P), cplx(C)
    H, N2 = lam.shape
    dA = np.empty((H, 2 * N2, 2 * N2), dtype=np.complex128)
    dB = np.empty((H, 2 * N2), dtype=np.complex128)
    Cf = np.empty((H, 2 * N2), dtype=np.complex128)
    eye = np.eye(2 * N2)
    for h in range(H):
        pf = np.concatenate([p[h], p[h].conj()])
        A = np.diag(np.concatenate([lam[h], lam[h].conj()])) - np.outer(pf, pf.conj())
        M1 = eye - dt[h] / 2 * A
        dA[h] = np.linalg.solve(M1, eye + dt[h] / 2 * A)
        dB[h] = np.linalg.solve(M1, dt[h] * np.concatenate([b[h], b[h].conj()]))
        ct = np.concatenate([c[h], c[h].conj()])
        Cf[h] = ct if l_kernel == 0 else np.linalg.solve((eye - np.linalg.matrix_power(dA[h], l_kernel)).T, ct)
    return dA, dB, Cf


def dplr_kernel64(inv_dt, A_real, A_imag, B, P, C, l_kernel: int, L: int) -> np.ndarray:
    """K: (H, L) float64, K[l] = C_f dA^l dB (the dense recurrence)."""
    dA, dB, Cf = dplr_system64(inv_dt, A_real, A_imag, B, P, C, l_kernel)
    x, K = dB.copy(), np.empty((dB.shape[0], L))
    for l in range(L):
        K[:, l] = np.real(np.sum(Cf * x, axis=-1))
        x = np.einsum("hnm,hm->hn", dA, x)
    return K


def dplr_op_kernel64(args, M: int, L: int = None) -> np.ndarray:
    """The length-L kernels (default M) of the dplr_spectrum op's arguments (log_dt, A_real, A_imag, B, P, C in
    the op's layout, C holding C-tilde for M), by the dense recurrence."""
    log_dt, A_real, A_imag, B, P, C = args
    return dplr_kernel64(log_dt[:, None], A_real, A_imag, B[None], P[None], C[None], M, M if L is None else L)


def s4_layer64(sd: dict, u, active=None, l_max=None) -> np.ndarray:
    """Full S4 block in eval mode (B, H, L) -> (B, H, L) float64 from a reference-layout state_dict ``sd`` (taken
    before the forward): conv with the dense-recurrence kernel (min(L, l_max) taps) + D u on the active channels,
    identity elsewhere, GELU, Linear(H, 2H), GLU."""
    u = _np(u)
    H, L = u.shape[1], u.shape[2]
    active = np.arange(H) if active is None else np.asarray(active, dtype=np.int64)
    taps = L if l_max is None else min(L, l_max)
    K = dplr_kernel64(*(sd["layer.kernel." + n] for n in ("inv_dt", "A_real", "A_imag", "B", "P", "C")),
                      int(sd["layer.kernel.l_kernel"]), taps)
    D = _np(sd["layer.D"])[0]
    y = u.copy()
    for h in active:
        full = np.stack([np.convolve(u[b, h], K[h])[:L] for b in range(u.shape[0])])
        y[:, h] = full + D[h] * u[:, h]
    y = gelu64(y)
    W, bias = _np(sd["output_linear.0.weight"]), _np(sd["output_linear.0.bias"])
    z = np.einsum("oh,bhl->bol", W, y) + bias[None, :, None]
    a, g = z[:, :H], z[:, H:]
    return a / (1.0 + np.exp(-g))
