"""S4D convolution kernel (diagonal SSM, zero-order hold), for the rows (channels) it is given.

Formula (S4D, Gu et al. 2022, the ZOH-discretized diagonal kernel; design.md):
    A = -exp(log_A_real) + i A_imag,   dt = exp(log_dt)
    K[h, l] = 2 Re sum_n C[h, n] (exp(dt_h A[h, n]) - 1) / A[h, n] * exp(dt_h A[h, n] l)

Registered once as the custom op ``s4op::s4d_kernel``: the CPU kernel calls the compiled core, which never
materializes the (A, N2, L) tensor; every other device runs the reference.
"""

from __future__ import annotations

import torch

from s4op_kernels import _ext
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


@torch.library.custom_op("s4op::s4d_kernel", mutates_args=())
def _s4d_kernel_op(C: torch.Tensor, log_dt: torch.Tensor, log_A_real: torch.Tensor, A_imag: torch.Tensor, L: int) -> torch.Tensor:
    dispatch.check_same_device("s4d_kernel", C=C, log_dt=log_dt, log_A_real=log_A_real, A_imag=A_imag)
    return s4d_kernel_ref(C, log_dt, log_A_real, A_imag, L)


@_s4d_kernel_op.register_kernel("cpu")
def _s4d_kernel_cpu(C, log_dt, log_A_real, A_imag, L):
    dispatch.check_same_device("s4d_kernel", C=C, log_dt=log_dt, log_A_real=log_A_real, A_imag=A_imag)
    dtype = C.dtype
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"s4d_kernel: C must be float32 or float64 (real view of complex), got {dtype}")
    for name, t in (("log_dt", log_dt), ("log_A_real", log_A_real), ("A_imag", A_imag)):
        if t.dtype != dtype:
            raise TypeError(f"s4d_kernel: {name} must be {dtype} like C, got {t.dtype}")
    out = C.new_empty((C.shape[0], L))
    rows = torch.arange(C.shape[0], dtype=torch.int64)
    _ext.C().s4d_kernel(
        C.contiguous().numpy(), log_dt.contiguous().numpy(), log_A_real.contiguous().numpy(),
        A_imag.contiguous().numpy(), rows.numpy(), L, out.numpy(), torch.get_num_threads(),
    )
    return out


@_s4d_kernel_op.register_fake
def _(C, log_dt, log_A_real, A_imag, L):
    dispatch.check_same_device("s4d_kernel", C=C, log_dt=log_dt, log_A_real=log_A_real, A_imag=A_imag)
    return C.new_empty((C.shape[0], L))


def s4d_kernel(
    C: torch.Tensor, log_dt: torch.Tensor, log_A_real: torch.Tensor, A_imag: torch.Tensor, L: int
) -> torch.Tensor:
    """S4D kernel K: (A, L) of the given channel rows, by the selected backend."""
    backend = dispatch.resolve(C.device, dispatch.needs_grad(C, log_dt, log_A_real, A_imag))
    if backend == dispatch.REFERENCE:
        return s4d_kernel_ref(C, log_dt, log_A_real, A_imag, L)
    return _s4d_kernel_op(C, log_dt, log_A_real, A_imag, L)
