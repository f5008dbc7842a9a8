"""S4 (DPLR, rank 1) kernel spectrum, for the channels (rows) it is asked for.

The reference S4 kernel (state-spaces/s4 ``SSMKernelDPLR``; docs/design.md "S4"): per channel h

    dt = exp(log_dt),  Lambda = -exp(A_real) - i A_imag,  w = dt Lambda,  Q = conj(P)
    r_ij(z) = sum_n [ v_n / (z - w_n) + conj(v_n) / (z - conj(w_n)) ],  v = dt (row i of [B; P]) (row j of [C; Q])
    kf[k] = (r00 - r01 r10 / (1 + r11)) * 2 / (1 + omega_k),  omega_k = exp(-2 pi i k / M),  z_k = 2 (1 - omega_k) / (1 + omega_k)

for k = 0 .. M // 2, so that ``irfft(kf, n=M)`` is the kernel of length M (C holds C-tilde for length M).

Evaluated as written, z is infinite at the Nyquist bin of an even M and the sums lose precision near it.
Both implementations use the equivalent singularity-free form: with phi = pi k / M, c = cos phi, s = sin phi
(so z = 2 i s / c and 2 / (1 + omega) = exp(i phi) / c), each conjugate pair is one term

    den_n = (|w_n|^2 c^2 - 4 s^2) - 4 i Re(w_n) s c,   num_n = -2 Re(v_n conj(w_n)) c + 4 i Re(v_n) s
    R_ij = sum_n num_n / den_n   (r_ij = c R_ij),       kf = exp(i phi) (R00 - c R01 R10 / (1 + c R11)),

finite at every bin (DC: sum -2 Re(v / w); Nyquist: sum Re(v00)).

Registered once as the custom op ``s4op::dplr_spectrum``: the CPU kernel calls the compiled core (the rows
read in place, no (A, N2, M) temporary); the CUDA kernel the Triton kernel (ops/_triton_kernels.py: the Cauchy
sums in float64, the round trip in torch.fft; the reference where Triton is not installed); every other device
runs the reference.  Its fake validates shapes and
dtypes.  ``n_fft > 0`` asks for the spectrum a length-``n_fft`` FFT convolution needs of the kernel truncated to
``L`` taps, ``rfft(irfft(kf, M)[:L], n_fft)`` (what S4Layer's convolution takes), computed in the same row loop.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from s4op_kernels import _ext
from s4op_kernels.ops import dispatch
from s4op_kernels.ops.sparse_fftconv import next_fast_size

_NAMES = ("log_dt", "A_real", "A_imag", "B", "P", "C")


def _bins(M: int, dtype: torch.dtype, device: torch.device):
    """exp(i phi), c, s for phi = pi k / M, k = 0 .. M // 2, computed in float64."""
    phi = torch.arange(M // 2 + 1, dtype=torch.float64, device=device) * (math.pi / M)
    c, s = torch.cos(phi), torch.sin(phi)
    if M % 2 == 0:  # exact zero at the Nyquist bin (cos(pi / 2) rounds to 6e-17)
        c[-1] = 0.0
    real = torch.float64 if dtype == torch.float64 else torch.float32
    return torch.polar(torch.ones_like(phi), phi), c, s, real


def dplr_spectrum_ref(
    log_dt: torch.Tensor, A_real: torch.Tensor, A_imag: torch.Tensor, B: torch.Tensor, P: torch.Tensor,
    C: torch.Tensor, M: int, rows: Optional[torch.Tensor] = None, L: Optional[int] = None, n_fft: int = 0,
) -> torch.Tensor:
    """Reference DPLR kernel spectrum.

    log_dt: (H,); A_real, A_imag: (H, N2); B, P, C: (H, N2, 2) real views of complex; all one real dtype
    (float32 or float64).  rows: optional (A,) int64 in [0, H) (any order, repeats allowed; None: every row).
    Returns kf: (A, M // 2 + 1) complex with ``irfft(kf, n=M)`` the length-M kernels; with ``n_fft > 0``,
    ``rfft(irfft(kf, M)[:L], n_fft)``: (A, n_fft // 2 + 1).  Differentiable; float64 inputs give float64
    results.  It materializes (A, N2, M // 2 + 1) complex tensors: the spec and the autograd path.
    """
    if rows is not None:
        log_dt, A_real, A_imag, B, P, C = (t.index_select(0, rows) for t in (log_dt, A_real, A_imag, B, P, C))
    cdtype = torch.complex128 if C.dtype == torch.float64 else torch.complex64
    dt = torch.exp(log_dt).unsqueeze(-1)  # (A, 1)
    w = torch.complex(-torch.exp(A_real), -A_imag) * dt  # (A, N2)
    Bc, Pc, Cc = (torch.view_as_complex(t.contiguous()) for t in (B, P, C))
    Qc = Pc.conj()
    v = torch.stack([Bc * Cc, Bc * Qc, Pc * Cc, Pc * Qc]) * dt  # (4, A, N2): v00, v01, v10, v11
    rot, c, s, real = _bins(M, C.dtype, C.device)
    c, s, rot = c.to(real), s.to(real), rot.to(cdtype)
    c_, s_ = c.view(1, 1, -1), s.view(1, 1, -1)  # (1, 1, K)
    w_ = w.unsqueeze(-1)  # (A, N2, 1)
    # den in float64 whatever the dtype: |w|^2 c^2 - 4 s^2 cancels at resonance (|w| c ~ 2 s).
    w2 = (w_.real.double() ** 2 + w_.imag.double() ** 2)
    den_re = (w2 * c_.double() ** 2 - 4 * s_.double() ** 2).to(real)
    den = torch.complex(den_re, -4 * w_.real * s_ * c_)  # (A, N2, K)
    inv = 1.0 / den
    alpha = 4 * v.real.unsqueeze(-1)  # (4, A, N2, 1)
    beta = -2 * (v * w.conj()).real.unsqueeze(-1)
    num = torch.complex(beta * c_, alpha * s_)  # (4, A, N2, K)
    R = (num * inv).sum(-2)  # (4, A, K)
    c1 = c.to(cdtype)
    kf = rot * (R[0] - c1 * R[1] * R[2] / (1 + c1 * R[3]))  # (A, K)
    if n_fft:
        L = M if L is None else L
        kf = torch.fft.rfft(torch.fft.irfft(kf, n=M)[..., :L], n=n_fft)
    return kf


def _check_args(log_dt, A_real, A_imag, B, P, C, M, rows, L, n_fft) -> None:
    """What every implementation relies on, checked once per call (torch._check_*; the binding and the core
    check again only what memory safety needs)."""
    named = dict(log_dt=log_dt, A_real=A_real, A_imag=A_imag, B=B, P=P, C=C)
    if rows is not None:
        named["rows"] = rows
    dispatch.check_same_device("dplr_spectrum", **named)
    torch._check_type(C.dtype in (torch.float32, torch.float64),
                      lambda: f"dplr_spectrum: C must be float32 or float64 (real view of complex), got {C.dtype}")
    for name, t in zip(_NAMES[:5], (log_dt, A_real, A_imag, B, P)):
        torch._check_type(t.dtype == C.dtype,
                          lambda name=name, t=t: f"dplr_spectrum: {name} must be {C.dtype} like C, got {t.dtype}")
    torch._check_value(C.dim() == 3 and C.shape[2] == 2,
                       lambda: f"dplr_spectrum: C must be (H, N2, 2) (real view of complex), got shape {tuple(C.shape)}")
    H, N2 = C.shape[0], C.shape[1]
    for name, t, want in (("log_dt", log_dt, (H,)), ("A_real", A_real, (H, N2)), ("A_imag", A_imag, (H, N2)),
                          ("B", B, (H, N2, 2)), ("P", P, (H, N2, 2))):
        torch._check_value(tuple(t.shape) == want,
                           lambda name=name, t=t, want=want: f"dplr_spectrum: {name} must have shape {want}, got {tuple(t.shape)}")
    torch._check_value(M >= 1, lambda: f"dplr_spectrum: M must be >= 1, got {M}")
    torch._check_value(n_fft >= 0, lambda: f"dplr_spectrum: n_fft must be >= 0, got {n_fft}")
    if n_fft:
        torch._check_value(L is not None and 1 <= L <= M and L <= n_fft,
                           lambda: f"dplr_spectrum: with n_fft = {n_fft} L must satisfy 1 <= L <= min(M, n_fft) "
                                   f"(M = {M}), got {L}")
    if rows is not None:
        torch._check_type(rows.dtype == torch.int64, lambda: f"dplr_spectrum: rows must be int64, got {rows.dtype}")
        torch._check_value(rows.dim() == 1, lambda: f"dplr_spectrum: rows must be 1-D, got shape {tuple(rows.shape)}")


def _out_bins(M: int, n_fft: int) -> int:
    return (n_fft if n_fft else M) // 2 + 1


@torch.library.custom_op("s4op::dplr_spectrum", mutates_args=())
def _dplr_spectrum_op(log_dt: torch.Tensor, A_real: torch.Tensor, A_imag: torch.Tensor, B: torch.Tensor,
                      P: torch.Tensor, C: torch.Tensor, M: int, rows: Optional[torch.Tensor] = None,
                      L: Optional[int] = None, n_fft: int = 0) -> torch.Tensor:
    _check_args(log_dt, A_real, A_imag, B, P, C, M, rows, L, n_fft)
    return dplr_spectrum_ref(log_dt, A_real, A_imag, B, P, C, M, rows, L, n_fft)


@_dplr_spectrum_op.register_kernel("cpu")
def _dplr_spectrum_cpu(log_dt, A_real, A_imag, B, P, C, M, rows=None, L=None, n_fft=0):
    _check_args(log_dt, A_real, A_imag, B, P, C, M, rows, L, n_fft)
    if n_fft and (next_fast_size(M) != M or next_fast_size(n_fft) != n_fft):
        # The core's FFT takes 2^a 3^b 5^c lengths: the round trip runs in torch.fft around the core's spectrum.
        kf = _dplr_spectrum_cpu(log_dt, A_real, A_imag, B, P, C, M, rows)
        return torch.fft.rfft(torch.fft.irfft(kf, n=M)[..., :L], n=n_fft)
    if rows is None:
        rows = torch.arange(C.shape[0], dtype=torch.int64)
    out = torch.empty((rows.shape[0], _out_bins(M, n_fft), 2), dtype=C.dtype)
    _ext.C().dplr_spectrum(
        *(t.contiguous().numpy() for t in (log_dt, A_real, A_imag, B, P, C)), rows.contiguous().numpy(),
        M, L if n_fft else 0, n_fft, out.numpy(), torch.get_num_threads(),
    )
    return torch.view_as_complex(out)


@_dplr_spectrum_op.register_kernel("cuda")
def _dplr_spectrum_cuda(log_dt, A_real, A_imag, B, P, C, M, rows=None, L=None, n_fft=0):
    if not dispatch.triton_importable():
        _check_args(log_dt, A_real, A_imag, B, P, C, M, rows, L, n_fft)
        return dplr_spectrum_ref(log_dt, A_real, A_imag, B, P, C, M, rows, L, n_fft)
    return _dplr_spectrum_triton(log_dt, A_real, A_imag, B, P, C, M, rows, L, n_fft)


def _dplr_spectrum_triton(log_dt, A_real, A_imag, B, P, C, M, rows=None, L=None, n_fft=0):
    """The ``"triton"`` backend: the op's CUDA kernel, and the eager call (also on CPU tensors under Triton's
    interpreter)."""
    _check_args(log_dt, A_real, A_imag, B, P, C, M, rows, L, n_fft)
    from s4op_kernels.ops import _triton_kernels

    return _triton_kernels.dplr_spectrum(log_dt, A_real, A_imag, B, P, C, M, rows, L, n_fft)


@_dplr_spectrum_op.register_fake
def _(log_dt, A_real, A_imag, B, P, C, M, rows=None, L=None, n_fft=0):
    _check_args(log_dt, A_real, A_imag, B, P, C, M, rows, L, n_fft)
    cdtype = torch.complex128 if C.dtype == torch.float64 else torch.complex64
    return C.new_empty((C.shape[0] if rows is None else rows.shape[0], _out_bins(M, n_fft)), dtype=cdtype)


def dplr_spectrum(
    log_dt: torch.Tensor, A_real: torch.Tensor, A_imag: torch.Tensor, B: torch.Tensor, P: torch.Tensor,
    C: torch.Tensor, M: int, rows: Optional[torch.Tensor] = None, L: Optional[int] = None, n_fft: int = 0,
) -> torch.Tensor:
    """DPLR kernel spectra of channel rows ``rows`` (arguments as in :func:`dplr_spectrum_ref`), by the selected
    backend."""
    backend = dispatch.resolve(C.device, dispatch.needs_grad(log_dt, A_real, A_imag, B, P, C))
    if backend == dispatch.REFERENCE:
        _check_args(log_dt, A_real, A_imag, B, P, C, M, rows, L, n_fft)
        return dplr_spectrum_ref(log_dt, A_real, A_imag, B, P, C, M, rows, L, n_fft)
    if backend == dispatch.TRITON and not torch.compiler.is_compiling():
        return _dplr_spectrum_triton(log_dt, A_real, A_imag, B, P, C, M, rows, L, n_fft)
    if dispatch.eager_cpu(C):
        return _dplr_spectrum_cpu(log_dt, A_real, A_imag, B, P, C, M, rows, L, n_fft)
    return _dplr_spectrum_op(log_dt, A_real, A_imag, B, P, C, M, rows, L, n_fft)
