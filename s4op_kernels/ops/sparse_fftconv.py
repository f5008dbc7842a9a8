"""Sparse-channel FFT convolution: the SSM part of an operator-pruned S4/S4D layer.

    y[:, h] = f(causal_conv(u[:, h], K_h) + D_h u[:, h])   for active h (computed by FFT)
    y[:, h] = f(u[:, h])                                   for pruned h (identity: no D, no kernel)

with ``f`` the identity (``activation="none"``) or the exact GELU that follows the SSM in an S4/S4D layer
(``"gelu"``): fused, it is applied to each row while the row is in cache instead of in a separate pass.

Registered once as the custom op ``s4op::sparse_fftconv``: the CPU kernel calls the compiled core
(s4op_kernels._C), the CUDA kernel the Triton kernels (ops/_triton_kernels.py; the reference where Triton is
not installed), every other device the reference.  :func:`sparse_fftconv` picks the backend.

Dtypes: u float32 or float64 on every backend; float16 and bfloat16 (half inputs, computed with float32
accumulation) on the ``"triton"`` and ``"reference"`` backends, with k_f complex64 and D float32.
"""

from __future__ import annotations

import torch

from s4op_kernels import _ext
from s4op_kernels.ops import dispatch


def next_fast_size(n: int) -> int:
    """Smallest m >= n of the form 2^a 3^b 5^c (the sizes the FFTs handle fastest)."""
    m = max(1, n)
    while True:
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def fft_size(L: int) -> int:
    """FFT length for a causal (linear, not circular) convolution of length L: a fast size >= 2L - 1."""
    return next_fast_size(2 * L - 1)


ACTIVATIONS = ("none", "gelu")
HALF_DTYPES = (torch.float16, torch.bfloat16)
U_DTYPES = (torch.float32, torch.float64, *HALF_DTYPES)


def sparse_fftconv_ref(
    u: torch.Tensor, k_f: torch.Tensor, D: torch.Tensor, active: torch.Tensor, n_fft: int, activation: str = "none",
    append_ones: bool = False,
) -> torch.Tensor:
    """Reference sparse-channel FFT convolution.

    u: (B, H, L) float32/float64 (or float16/bfloat16: computed in float32, the result rounded to u's
    dtype); k_f: (A, n_fft // 2 + 1) complex, rfft of the active channels' kernels (complex64 for half u);
    D: (A,) real (float32 for half u); active: (A,) int64, sorted distinct channel indices in [0, H);
    n_fft >= 2L - 1; activation: "none" or "gelu" (exact, erf-based), applied to every row.
    Returns y: (B, H, L) of u's dtype, or (B, H + 1, L) with a last channel of ones if ``append_ones``
    (so a following 1x1 convolution can fold its bias into the GEMM).  Differentiable in u, k_f and D.
    """
    if u.dtype in HALF_DTYPES:  # computed in float32 (no half FFT on CPU), rounded once at the end
        y = sparse_fftconv_ref(u.float(), k_f, D, active, n_fft, activation, append_ones)
        return y.to(u.dtype)
    if active.numel() == 0 or u.shape[0] == 0:  # nothing to convolve (MKL refuses a batch of 0 FFTs)
        y = u.clone()
    else:
        L = u.shape[-1]
        ua = u.index_select(1, active)  # (B, A, L)
        ya = torch.fft.irfft(torch.fft.rfft(ua, n=n_fft) * k_f, n=n_fft)[..., :L]  # (B, A, L)
        ya = ya + D.unsqueeze(-1) * ua
        y = u.index_copy(1, active, ya)
    y = torch.nn.functional.gelu(y) if activation == "gelu" else y
    if append_ones:
        y = torch.cat([y, y.new_ones(y.shape[0], 1, y.shape[2])], dim=1)
    return y


def _check_args(u, k_f, D, active, n_fft, activation) -> None:
    """Everything the implementations rely on that shapes and dtypes can tell, checked once per traced or
    reference call (torch._check_*: in a fake trace, symbolic shapes are checked, not guessed).  The
    eager CPU kernel leaves these to the binding, which must check them anyway (it hands raw pointers to
    the core); the core checks the values (``active`` sorted and in range)."""
    _check_activation(activation)
    dispatch.check_same_device("sparse_fftconv", u=u, k_f=k_f, D=D, active=active)
    torch._check_value(u.dim() == 3, lambda: f"sparse_fftconv: u must be (B, H, L), got shape {tuple(u.shape)}")
    torch._check_type(u.dtype in U_DTYPES,
                      lambda: f"sparse_fftconv: u must be float32 or float64 (or float16/bfloat16 on the 'triton' and "
                              f"'reference' backends), got {u.dtype}")
    real = torch.float32 if u.dtype in HALF_DTYPES else u.dtype  # the dtype of D and of k_f's parts
    torch._check_type(k_f.dtype == real.to_complex(),
                      lambda: f"sparse_fftconv: k_f must be {real.to_complex()} for u of {u.dtype}, got {k_f.dtype}")
    torch._check_type(D.dtype == real, lambda: f"sparse_fftconv: D must be {real} for u of {u.dtype}, got {D.dtype}")
    torch._check_type(active.dtype == torch.int64, lambda: f"sparse_fftconv: active must be int64, got {active.dtype}")
    torch._check_value(active.dim() == 1, lambda: f"sparse_fftconv: active must be 1-D, got shape {tuple(active.shape)}")
    A, L = active.shape[0], u.shape[2]
    torch._check_value(n_fft >= 2 * L - 1,
                       lambda: f"sparse_fftconv: n_fft={n_fft} is too short for a linear convolution of L={L} (>= 2L - 1)")
    torch._check_value(tuple(k_f.shape) == (A, n_fft // 2 + 1),
                       lambda: f"sparse_fftconv: k_f must be (A, n_fft // 2 + 1) = {(A, n_fft // 2 + 1)} for {A} active "
                               f"channels, got {tuple(k_f.shape)}")
    torch._check_value(tuple(D.shape) == (A,), lambda: f"sparse_fftconv: D must be ({A},) like active, got {tuple(D.shape)}")


@torch.library.custom_op("s4op::sparse_fftconv", mutates_args=())
def _sparse_fftconv_op(u: torch.Tensor, k_f: torch.Tensor, D: torch.Tensor, active: torch.Tensor, n_fft: int,
                       activation: str = "none", append_ones: bool = False) -> torch.Tensor:
    _check_args(u, k_f, D, active, n_fft, activation)
    return sparse_fftconv_ref(u, k_f, D, active, n_fft, activation, append_ones)


@_sparse_fftconv_op.register_kernel("cpu")
def _sparse_fftconv_cpu(u, k_f, D, active, n_fft, activation="none", append_ones=False):
    # Called directly in eager mode (dispatch.eager_cpu), where mixed devices are not caught by the
    # dispatcher; shapes and dtypes are the binding's to check.
    if not (u.is_cpu and k_f.is_cpu and D.is_cpu and active.is_cpu):
        dispatch.check_same_device("sparse_fftconv", u=u, k_f=k_f, D=D, active=active)
    _check_activation(activation)
    if u.dim() != 3:
        raise ValueError(f"sparse_fftconv: u must be (B, H, L), got shape {tuple(u.shape)}")
    u = u.contiguous()
    B, H, L = u.shape
    out = u.new_empty(B, H + 1 if append_ones else H, L)  # channels [0, H) from the op, then the ones
    _ext.C().sparse_fftconv(
        u.numpy(), k_f.contiguous().numpy(), D.contiguous().numpy(), active.contiguous().numpy(), n_fft,
        out.numpy(), torch.get_num_threads(), activation=activation, extra_value=1.0 if append_ones else None,
    )
    return out


@_sparse_fftconv_op.register_kernel("cuda")
def _sparse_fftconv_cuda(u, k_f, D, active, n_fft, activation="none", append_ones=False):
    if not dispatch.triton_importable():
        _check_args(u, k_f, D, active, n_fft, activation)
        return sparse_fftconv_ref(u, k_f, D, active, n_fft, activation, append_ones)
    return _sparse_fftconv_triton(u, k_f, D, active, n_fft, activation, append_ones)


def _sparse_fftconv_triton(u, k_f, D, active, n_fft, activation="none", append_ones=False):
    """The ``"triton"`` backend: the op's CUDA kernel, and the eager call (also on CPU tensors under Triton's
    interpreter)."""
    _check_args(u, k_f, D, active, n_fft, activation)
    from s4op_kernels.ops import _triton_kernels

    return _triton_kernels.sparse_fftconv(u, k_f, D, active, n_fft, activation, append_ones)


def _check_activation(activation) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"sparse_fftconv: activation must be one of {ACTIVATIONS}, got {activation!r}")


@_sparse_fftconv_op.register_fake
def _(u, k_f, D, active, n_fft, activation="none", append_ones=False):
    _check_args(u, k_f, D, active, n_fft, activation)
    if append_ones:
        return u.new_empty(u.shape[0], u.shape[1] + 1, u.shape[2])
    return torch.empty_like(u)


def sparse_fftconv(
    u: torch.Tensor, k_f: torch.Tensor, D: torch.Tensor, active: torch.Tensor, n_fft: int, activation: str = "none",
    append_ones: bool = False,
) -> torch.Tensor:
    """Sparse-channel FFT convolution (arguments as in :func:`sparse_fftconv_ref`), by the selected backend."""
    _check_activation(activation)
    append_ones = bool(append_ones)
    backend = dispatch.resolve(u.device, dispatch.needs_grad(u, k_f, D))
    if backend == dispatch.REFERENCE:
        return sparse_fftconv_ref(u, k_f, D, active, n_fft, activation, append_ones)
    if backend == dispatch.TRITON and not torch.compiler.is_compiling():
        return _sparse_fftconv_triton(u, k_f, D, active, n_fft, activation, append_ones)
    if dispatch.eager_cpu(u):
        return _sparse_fftconv_cpu(u, k_f, D, active, n_fft, activation, append_ones)
    return _sparse_fftconv_op(u, k_f, D, active, n_fft, activation, append_ones)
