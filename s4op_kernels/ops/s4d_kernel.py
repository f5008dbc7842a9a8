"""S4D convolution kernel (diagonal SSM, zero-order hold), for the channels (rows) it is asked for.

Formula (S4D, Gu et al. 2022, the ZOH-discretized diagonal kernel; docs/design.md):
    A = -exp(log_A_real) + i A_imag,   dt = exp(log_dt)
    K[h, l] = 2 Re sum_n C[h, n] (exp(dt_h A[h, n]) - 1) / A[h, n] * exp(dt_h A[h, n] l)

Registered once as the custom op ``s4op::s4d_kernel``: the CPU kernel calls the compiled core, which reads
the requested rows in place (no gathered copy) and never materializes the (A, N2, L) tensor; the CUDA kernel
the Triton kernel (ops/_triton_kernels.py; the reference where Triton is not installed); every other device
runs the reference.  Its fake validates shapes and dtypes, so a traced call with wrong arguments is
refused at trace time.
"""

from __future__ import annotations

from typing import Optional

import torch

from s4op_kernels import _ext
from s4op_kernels.ops import dispatch


def s4d_kernel_ref(
    C: torch.Tensor, log_dt: torch.Tensor, log_A_real: torch.Tensor, A_imag: torch.Tensor, L: int,
    rows: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Reference S4D kernel.

    C: (H, N2, 2) real view of complex, log_dt: (H,), log_A_real: (H, N2), A_imag: (H, N2), all of one
    real dtype (float32 or float64); rows: optional (A,) int64 in [0, H), the rows to compute (any order,
    repeats allowed; None: every row).  Returns K: (A, L) of that dtype, row j for channel row rows[j].

    Like the reference implementation it materializes an (A, N2, L) complex tensor; it is the spec and
    the autograd path, not the fast path.
    """
    if rows is not None:
        C, log_dt, log_A_real, A_imag = (t.index_select(0, rows) for t in (C, log_dt, log_A_real, A_imag))
    dt = torch.exp(log_dt)  # (A,)
    Cc = torch.complex(C[..., 0], C[..., 1])  # (A, N2)
    A = torch.complex(-torch.exp(log_A_real), A_imag)  # (A, N2)
    dtA = A * dt.unsqueeze(-1)  # (A, N2)
    pos = torch.arange(L, device=C.device, dtype=C.dtype)  # (L,)
    Cd = Cc * (torch.exp(dtA) - 1.0) / A  # (A, N2)
    return 2 * torch.einsum("hn,hnl->hl", Cd, torch.exp(dtA.unsqueeze(-1) * pos)).real


def _check_args(C, log_dt, log_A_real, A_imag, L, rows) -> None:
    """What every implementation relies on, checked once per call (torch._check_*: symbolic shapes in a
    fake trace are checked, not guessed).  The binding and the core check again only what memory safety
    needs."""
    named = dict(C=C, log_dt=log_dt, log_A_real=log_A_real, A_imag=A_imag)
    if rows is not None:
        named["rows"] = rows
    dispatch.check_same_device("s4d_kernel", **named)
    torch._check_type(C.dtype in (torch.float32, torch.float64),
                      lambda: f"s4d_kernel: C must be float32 or float64 (real view of complex), got {C.dtype}")
    for name, t in (("log_dt", log_dt), ("log_A_real", log_A_real), ("A_imag", A_imag)):
        torch._check_type(t.dtype == C.dtype, lambda name=name, t=t: f"s4d_kernel: {name} must be {C.dtype} like C, got {t.dtype}")
    torch._check_value(C.dim() == 3 and C.shape[2] == 2,
                       lambda: f"s4d_kernel: C must be (H, N2, 2) (real view of complex), got shape {tuple(C.shape)}")
    H, N2 = C.shape[0], C.shape[1]
    for name, t, want in (("log_dt", log_dt, (H,)), ("log_A_real", log_A_real, (H, N2)), ("A_imag", A_imag, (H, N2))):
        torch._check_value(tuple(t.shape) == want,
                           lambda name=name, t=t, want=want: f"s4d_kernel: {name} must have shape {want}, got {tuple(t.shape)}")
    torch._check_value(L >= 0, lambda: f"s4d_kernel: L must be >= 0, got {L}")
    if rows is not None:
        torch._check_type(rows.dtype == torch.int64, lambda: f"s4d_kernel: rows must be int64, got {rows.dtype}")
        torch._check_value(rows.dim() == 1, lambda: f"s4d_kernel: rows must be 1-D, got shape {tuple(rows.shape)}")


@torch.library.custom_op("s4op::s4d_kernel", mutates_args=())
def _s4d_kernel_op(C: torch.Tensor, log_dt: torch.Tensor, log_A_real: torch.Tensor, A_imag: torch.Tensor, L: int,
                   rows: Optional[torch.Tensor] = None) -> torch.Tensor:
    _check_args(C, log_dt, log_A_real, A_imag, L, rows)
    return s4d_kernel_ref(C, log_dt, log_A_real, A_imag, L, rows)


@_s4d_kernel_op.register_kernel("cpu")
def _s4d_kernel_cpu(C, log_dt, log_A_real, A_imag, L, rows=None):
    _check_args(C, log_dt, log_A_real, A_imag, L, rows)
    if rows is None:
        rows = torch.arange(C.shape[0], dtype=torch.int64)
    out = C.new_empty((rows.shape[0], L))
    _ext.C().s4d_kernel(
        C.contiguous().numpy(), log_dt.contiguous().numpy(), log_A_real.contiguous().numpy(),
        A_imag.contiguous().numpy(), rows.contiguous().numpy(), L, out.numpy(), torch.get_num_threads(),
    )
    return out


@_s4d_kernel_op.register_kernel("cuda")
def _s4d_kernel_cuda(C, log_dt, log_A_real, A_imag, L, rows=None):
    if not dispatch.triton_importable():
        _check_args(C, log_dt, log_A_real, A_imag, L, rows)
        return s4d_kernel_ref(C, log_dt, log_A_real, A_imag, L, rows)
    return _s4d_kernel_triton(C, log_dt, log_A_real, A_imag, L, rows)


def _s4d_kernel_triton(C, log_dt, log_A_real, A_imag, L, rows=None):
    """The ``"triton"`` backend: the op's CUDA kernel, and the eager call (also on CPU tensors under Triton's
    interpreter)."""
    _check_args(C, log_dt, log_A_real, A_imag, L, rows)
    from s4op_kernels.ops import _triton_kernels

    return _triton_kernels.s4d_kernel(C, log_dt, log_A_real, A_imag, L, rows)


@_s4d_kernel_op.register_fake
def _(C, log_dt, log_A_real, A_imag, L, rows=None):
    _check_args(C, log_dt, log_A_real, A_imag, L, rows)
    return C.new_empty((C.shape[0] if rows is None else rows.shape[0], L))


def s4d_kernel(
    C: torch.Tensor, log_dt: torch.Tensor, log_A_real: torch.Tensor, A_imag: torch.Tensor, L: int,
    rows: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """S4D kernels K: (A, L) of channel rows ``rows`` (None: all rows; arguments as in
    :func:`s4d_kernel_ref`), by the selected backend."""
    backend = dispatch.resolve(C.device, dispatch.needs_grad(C, log_dt, log_A_real, A_imag))
    if backend == dispatch.REFERENCE:
        return s4d_kernel_ref(C, log_dt, log_A_real, A_imag, L, rows)
    if backend == dispatch.TRITON and not torch.compiler.is_compiling():
        return _s4d_kernel_triton(C, log_dt, log_A_real, A_imag, L, rows)
    if dispatch.eager_cpu(C):
        return _s4d_kernel_cpu(C, log_dt, log_A_real, A_imag, L, rows)
    return _s4d_kernel_op(C, log_dt, log_A_real, A_imag, L, rows)
