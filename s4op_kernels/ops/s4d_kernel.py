"""S4D convolution kernel (diagonal SSM, zero-order hold), for the rows (channels) it is given.

Formula (S4D, Gu et al. 2022, eq. for the ZOH-discretized diagonal kernel; design.md):
    A = -exp(log_A_real) + i A_imag,   dt = exp(log_dt)
    K[h, l] = 2 Re sum_n C[h, n] (exp(dt_h A[h, n]) - 1) / A[h, n] * exp(dt_h A[h, n] l)
"""

from __future__ import annotations

import torch

from s4op_kernels.ops import dispatch


def s4d_kernel_ref(
    C: torch.Tensor, log_dt: torch.Tensor, log_A_real: torch.Tensor, A_imag: torch.Tensor, L: int
) -> torch.Tensor:
    """Reference S4D kernel.

    C: (A, N2, 2) real view of complex, log_dt: (A,), log_A_real: (A, N2), A_imag: (A, N2), all of one
    real dtype (float32 or float64).  Returns K: (A, L) of that dtype.

    Like the reference implementation it materializes an (A, N2, L) complex tensor; it is the spec and
    the autograd path, not the fast path.
    """
    dt = torch.exp(log_dt)  # (A,)
    Cc = torch.complex(C[..., 0], C[..., 1])  # (A, N2)
    A = torch.complex(-torch.exp(log_A_real), A_imag)  # (A, N2)
    dtA = A * dt.unsqueeze(-1)  # (A, N2)
    pos = torch.arange(L, device=C.device, dtype=C.dtype)  # (L,)
    Cd = Cc * (torch.exp(dtA) - 1.0) / A  # (A, N2)
    return 2 * torch.einsum("hn,hnl->hl", Cd, torch.exp(dtA.unsqueeze(-1) * pos)).real


def s4d_kernel(
    C: torch.Tensor, log_dt: torch.Tensor, log_A_real: torch.Tensor, A_imag: torch.Tensor, L: int
) -> torch.Tensor:
    """S4D kernel K: (A, L) of the given channel rows, by the backend chosen in ``dispatch``."""
    backend = dispatch.resolve(C.device)
    if backend == dispatch.REFERENCE:
        return s4d_kernel_ref(C, log_dt, log_A_real, A_imag, L)
    raise NotImplementedError(f"s4d_kernel: backend {backend!r} has no implementation")
