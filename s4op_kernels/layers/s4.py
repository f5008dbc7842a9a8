"""S4Layer: a drop-in, pruning-aware replacement for the reference S4 block (DPLR kernel).

Parameter names, shapes, buffers and ``_optim`` tags follow the reference ``S4Block(d_model, d_state=...)``
(state-spaces/s4 ``models/s4/s4.py``: ``FFTConv`` with ``mode='dplr'``, ``init='legs'``), so its state_dict
loads with ``strict=True`` and gives the same outputs, and ours loads back into it.  The kernel is rank-1 DPLR
with the bilinear discretization; ``kernel.C`` holds C-tilde for the internal length ``kernel.l_kernel``
(0 until the first forward), exactly as the reference keeps it (docs/design.md, "S4").

Pruning (S4oP, section III) as in :class:`~s4op_kernels.S4DLayer`: a pruned channel's SSM operator is identity
(no kernel, no D); dropout, GELU and the output mixing act on all channels.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Union

import torch
from torch import nn

from s4op_kernels._validate import check_float, check_int
from s4op_kernels.layers._base import (
    SUPPORTED_DTYPES, PrunableSSMLayer, _has_hooks, check_ssm_init, register_ssm_tensor,
)
from s4op_kernels.ops import dplr_spectrum, dplr_step_coefficients, fft_size

# The per-channel SSM tensors, by path in the layer, and the dim that indexes channels (the reference's shapes:
# D (1, H); inv_dt (H, 1); A_real, A_imag (H, N2); B, P, C (1, H, N2, 2)).
SSM_TENSORS = ("layer.D", "layer.kernel.inv_dt", "layer.kernel.A_real", "layer.kernel.A_imag", "layer.kernel.B",
               "layer.kernel.P", "layer.kernel.C")
SSM_CHANNEL_DIMS = (1, 0, 0, 0, 1, 1, 1)
_SSM_TENSORS = tuple((p.rpartition(".")[0], p.rpartition(".")[2], d) for p, d in zip(SSM_TENSORS, SSM_CHANNEL_DIMS))


def hippo_legs_dplr(N: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The HiPPO-LegS matrix in DPLR form, as the reference builds it: (Lambda, P, B), each (N // 2,) complex128.

    A_ij = -sqrt((2i+1)(2j+1)) (i > j), -(i+1) (i = j), 0 above; B_i = sqrt(2i+1); P_i = sqrt(i + 1/2).
    A + P P^T = -I/2 + S with S skew-symmetric; S = V diag(i W) V^H (float64 eigendecomposition), sorted by
    imaginary part, keeping the N/2 eigenvalues with negative imaginary part; Lambda = -1/2 + i W,
    B = V^H B, P = V^H P, and Im B clipped to [-2, 2]."""
    n = torch.arange(N, dtype=torch.float64)
    r = torch.sqrt(2 * n + 1)
    A = -torch.tril(torch.outer(r, r), diagonal=-1) - torch.diag(n + 1)
    B = r.clone()
    P = torch.sqrt(n + 0.5)
    S = A + torch.outer(P, P)
    W_im, V = torch.linalg.eigh(S * -1j)  # S is -I/2 + skew; eigh takes the Hermitian -i (skew part)
    order = torch.argsort(W_im)
    W_im, V = W_im[order][: N // 2], V[:, order][:, : N // 2]
    Lambda = torch.complex(torch.full_like(W_im, -0.5), W_im)
    Vh = V.conj().transpose(-1, -2)
    B = Vh @ B.to(V.dtype)
    P = Vh @ P.to(V.dtype)
    B = torch.complex(B.real, B.imag.clamp(-2.0, 2.0))
    return Lambda, P, B


class S4Kernel(nn.Module):
    """Holds the DPLR kernel tensors (the reference's ``layer.kernel``, an ``SSMKernelDPLR``)."""

    def __init__(self, d_model: int, N: int, dt_min: float, dt_max: float, lr: Optional[float]):
        super().__init__()
        H, N2 = d_model, N // 2
        # Same order of random draws as the reference: inv_dt, then C (the LegS init draws nothing).
        inv_dt = torch.rand(H, 1) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        Lambda, P, B = hippo_legs_dplr(N)
        C = torch.randn(1, H, N2, dtype=torch.cfloat).conj().resolve_conj()  # stored conjugated, as the reference
        c64 = torch.complex64
        register_ssm_tensor(self, "inv_dt", inv_dt, lr)
        register_ssm_tensor(self, "C", torch.view_as_real(C).clone(), lr, optim={})
        register_ssm_tensor(self, "B", torch.view_as_real(B.to(c64).repeat(1, H, 1)).clone(), lr)
        register_ssm_tensor(self, "A_real", torch.log((-Lambda.real).clamp(min=1e-4)).float().repeat(H, 1), lr)
        register_ssm_tensor(self, "A_imag", (-Lambda.imag).clamp(min=1e-4).float().repeat(H, 1), lr)
        register_ssm_tensor(self, "P", torch.view_as_real(P.to(c64).repeat(1, H, 1)).clone(), lr)
        self.register_buffer("l_kernel", torch.tensor(0))  # the length C-tilde is set up for; 0: not yet


class _FFTConv(nn.Module):
    """The reference's ``layer`` (FFTConv): D, the kernel, the dropout after the convolution, GELU."""

    def __init__(self, d_model: int, N: int, dropout: float, dt_min: float, dt_max: float, lr: Optional[float]):
        super().__init__()
        self.D = nn.Parameter(torch.randn(1, d_model))
        self.kernel = S4Kernel(d_model, N, dt_min, dt_max, lr)
        self.drop = nn.Dropout(dropout) if dropout > 0.0 else nn.Identity()
        self.activation = nn.GELU()


class DPLRParameters(NamedTuple):
    """The discretization inputs of the active channels (rows in the order of ``active_channels``)."""

    Lambda: torch.Tensor  # (A, N2) complex: the diagonal, -exp(A_real) - i A_imag
    P: torch.Tensor  # (A, N2) complex: the rank-1 term (A_full = diag(Lambda) - P P^H over the conjugate pairs)
    B: torch.Tensor  # (A, N2) complex
    C: torch.Tensor  # (A, N2) complex: C-tilde for length l_kernel (plain C while l_kernel == 0)
    dt: torch.Tensor  # (A,) real: exp(inv_dt)
    l_kernel: int


class S4Layer(PrunableSSMLayer):
    """S4 (DPLR) state-space block whose channels ("operators") can be pruned to identity.

    Args:
        d_model: number of channels H.
        d_state: state size N (even, >= 2); N/2 complex modes per channel.
        dropout: probability of each of the block's two dropouts (after the convolution, after GELU).
        transposed: inputs/outputs are (B, H, L) if True, (B, L, H) if False.
        l_max: maximum kernel length (None: the first forward's length, doubled as longer inputs come).
        dt_min, dt_max: range of the log-uniform initial step size.
        lr: learning rate of the SSM tensors; ``0.0`` makes them buffers (C included), ``None`` the default.
        n_ssm: must be None or d_model (channels sharing an SSM are not supported: pruning removes per channel).
        rank: must be 1 (the reference's default, the LegS init).
        device, dtype: factory keywords (float32 or float64).

    ``forward(u)`` returns ``(y, None)`` like the reference.  Pruning as :class:`~s4op_kernels.S4DLayer`.
    :meth:`dplr_parameters` gives the active channels' discretization inputs.
    """

    SSM_TENSORS = SSM_TENSORS
    SSM_CHANNEL_DIMS = SSM_CHANNEL_DIMS
    _SSM_TENSORS = _SSM_TENSORS

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        dropout: float = 0.0,
        transposed: bool = True,
        l_max: Optional[int] = None,
        *,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        lr: Optional[float] = None,
        n_ssm: Optional[int] = None,
        rank: int = 1,
        device: Optional[Union[str, torch.device]] = None,
        dtype: Optional[torch.dtype] = None,
    ):
        super().__init__()
        d_model = check_int(d_model, "d_model", func="S4Layer", minimum=1)
        d_state = check_int(d_state, "d_state", func="S4Layer", minimum=2)
        if d_state % 2:
            raise ValueError(f"S4Layer(d_state): must be even (N/2 complex modes in conjugate pairs), got {d_state}")
        dropout = check_float(dropout, "dropout", func="S4Layer", minimum=0.0, maximum=1.0, max_open=True)
        if l_max is not None:
            l_max = check_int(l_max, "l_max", func="S4Layer", minimum=1)
        dt_min, dt_max, lr = check_ssm_init("S4Layer", dt_min, dt_max, lr)
        if n_ssm is not None and n_ssm != d_model:
            raise ValueError(
                f"S4Layer(n_ssm): only n_ssm = None or d_model ({d_model}) is supported (one SSM per channel, so that "
                f"a channel can be pruned on its own), got {n_ssm!r}")
        if rank != 1 or isinstance(rank, bool):
            raise ValueError(f"S4Layer(rank): only rank 1 (the LegS DPLR form) is supported, got {rank!r}")
        if dtype is not None and dtype not in SUPPORTED_DTYPES:
            raise TypeError(f"S4Layer: dtype must be torch.float32 or torch.float64, got {dtype}")

        self.h = self.d_model = d_model
        self.n = self.d_state = d_state
        self.d_output = d_model
        self.transposed = bool(transposed)
        self.l_max = l_max

        # Same order of random draws as the reference: D, the kernel (inv_dt, C), then the output Linear.
        self.layer = _FFTConv(d_model, d_state, dropout, dt_min, dt_max, lr)
        self.drop = nn.Dropout(dropout) if dropout > 0.0 else nn.Identity()
        self.output_linear = nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.GLU(dim=-1))
        self._init_pruning()
        self._kernel_length = 0  # l_kernel as the last forward read it (the conv cache key)
        if device is not None or dtype is not None:
            self.to(device=device, dtype=dtype)

    # ------------------------------------------------------------------ the kernel length and C-tilde
    @property
    def l_kernel(self) -> int:
        """The internal kernel length C-tilde is set up for (0 until the first forward)."""
        return int(self.layer.kernel.l_kernel)

    def _taps(self, L: int) -> int:
        """Taps of the kernel a length-L input is convolved with."""
        return L if self.l_max is None else min(L, self.l_max)

    def _prepare_forward(self, L: int) -> None:
        """The reference's kernel-length logic: the first forward sets C-tilde up for its length (or l_max),
        a longer input doubles the length (C-tilde rewritten each time) until it covers the input."""
        if torch.compiler.is_exporting():  # l_kernel is a fake tensor there: C-tilde must already be set up
            if self._kernel_length < self._taps(L):
                raise RuntimeError(f"S4Layer: C-tilde is set up for kernel length {self._kernel_length}, not for "
                                   f"inputs of length {L}; run one forward of length {L} (eval) before torch.export")
            return
        kernel = self.layer.kernel
        lk = int(kernel.l_kernel)
        if lk == 0 and self.l_max is not None:
            lk = self._setup_C(self.l_max, double=False)
        taps = self._taps(L)
        while taps > lk:
            lk = self._setup_C(taps, double=lk > 0)
        self._kernel_length = lk

    def _invalidate(self) -> None:
        super()._invalidate()
        # Keep the kernel length in step with the l_kernel buffer (a loaded state dict sets it), so a traced
        # forward (torch.export), which cannot read the buffer, sees the length C-tilde is set up for.
        fft_conv = self._modules.get("layer")
        if fft_conv is not None and not torch.compiler.is_exporting():
            self._kernel_length = int(fft_conv.kernel.l_kernel)

    def _setup_C(self, L: int, double: bool) -> int:
        """C <- C (I - dA^L) (first set-up, l_kernel = L) or C-tilde <- C-tilde (I + dA^l_kernel) (doubling), for
        every stored row, computed in float64 from the dense bilinear dA.  Returns the new l_kernel."""
        kernel = self.layer.kernel
        lk = int(kernel.l_kernel)
        length = lk if double else L
        with torch.inference_mode(False), torch.no_grad():
            dA = _bilinear_dA(kernel)  # (rows, 2 N2, 2 N2) complex128
            power = torch.linalg.matrix_power(dA, length)
            C = torch.view_as_complex(kernel.C.detach()[0].double().contiguous())  # (rows, N2)
            C_full = torch.cat([C, C.conj()], dim=-1)
            prod = torch.einsum("hn,hnm->hm", C_full, power)
            new = (C_full + prod if double else C_full - prod)[..., : C.shape[-1]]
            kernel.C.copy_(torch.view_as_real(new).to(kernel.C.dtype).unsqueeze(0))
            new_len = 2 * lk if double else L
            kernel.l_kernel.fill_(new_len)
        self._invalidate()
        return new_len

    def dplr_parameters(self) -> DPLRParameters:
        """The active channels' (Lambda, P, B, C, dt) and l_kernel, detached, in the layer's dtype."""
        rows, _ = self._indices(self.layer.D.device)
        k = self.layer.kernel
        sel = lambda t, d: t.detach().index_select(d, rows)  # noqa: E731
        Lambda = torch.complex(-torch.exp(sel(k.A_real, 0)), -sel(k.A_imag, 0))
        cplx = lambda t: torch.view_as_complex(sel(t, 1)[0].contiguous())  # noqa: E731
        return DPLRParameters(Lambda, cplx(k.P), cplx(k.B), cplx(k.C), torch.exp(sel(k.inv_dt, 0)[:, 0]), self.l_kernel)

    def active_kernels(self, L: int) -> torch.Tensor:
        """K: (A, taps), the convolution kernels a length-L input meets (taps = min(L, l_max)), of the active
        channels in the order of :attr:`active_channels` (differentiable).  Like a forward, the first call (or a
        longer L) sets C-tilde up for the kernel length."""
        self._prepare_forward(L)
        rows, _ = self._indices(self.layer.D.device)
        k = self.layer.kernel
        M = self._kernel_length
        kf = dplr_spectrum(k.inv_dt[:, 0], k.A_real, k.A_imag, k.B[0], k.P[0], k.C[0], M, rows)
        return torch.fft.irfft(kf, n=M)[..., : self._taps(L)]

    # ------------------------------------------------------------------ convolution
    def _conv_key(self, L: int, device: torch.device) -> tuple:
        return (L, device, self._kernel_length)

    def _build_conv_args(self, L: int, device: torch.device, tensors: list[torch.Tensor]):
        """The spectra of the active channels' kernels, generated at the kernel length and truncated to the
        input's taps, at the convolution's FFT length (one op: the Cauchy sums, then the round trip
        irfft -> truncate -> rfft that the truncation needs, in the same row loop of the core)."""
        n_fft = fft_size(L)
        rows, active = self._indices(device)
        D, inv_dt, A_real, A_imag, B, P, C = tensors
        k_f = dplr_spectrum(inv_dt[:, 0], A_real, A_imag, B[0], P[0], C[0], self._kernel_length, rows,
                            L=self._taps(L), n_fft=n_fft)
        return k_f, D[0].index_select(0, rows), active, n_fft

    def _prepare_chunk(self, L: int) -> None:
        if self.l_max is not None and L > self.l_max:
            raise ValueError(
                f"S4Layer.forward(u, state): a chunk of {L} samples is longer than l_max={self.l_max}; the forward "
                "convolves a longer input with the kernel truncated to l_max taps, which no recurrence reproduces: "
                "stream in chunks of at most l_max samples")
        self._prepare_forward(L)

    def _step_key(self, device: torch.device) -> tuple:
        return (device, self.l_kernel)

    def _build_step_args(self, device: torch.device, tensors: list[torch.Tensor]):
        """The bilinear rank-1 DPLR step coefficients of the active channels, with the plain output vector C_f
        that the stored C-tilde stands for (:func:`output_vector`, float64)."""
        rows, active = self._indices(device)
        D, inv_dt, A_real, A_imag, B, P, C = tensors
        log_dt = inv_dt.index_select(0, rows)[:, 0]
        A_real, A_imag = A_real.index_select(0, rows), A_imag.index_select(0, rows)
        B, P, C = (t.index_select(1, rows)[0] for t in (B, P, C))
        C_f = output_vector(log_dt, A_real, A_imag, P, C, self.l_kernel).to(C.dtype)
        modes, scalars = dplr_step_coefficients(log_dt, A_real, A_imag, B, P, C_f, D.index_select(1, rows)[0])
        return modes, scalars, active

    def _parts(self):
        layer = self._modules["layer"]
        return layer._modules["activation"], layer._modules["drop"], self._modules["drop"]

    def _mix_module(self, y: torch.Tensor) -> torch.Tensor:
        return self.output_linear(y.transpose(-1, -2)).transpose(-1, -2)

    def _gemm_mixer(self) -> Optional[nn.Linear]:
        """output_linear's Linear when output_linear is the reference's Linear(H, 2H) + GLU(dim=-1) with no
        hooks, so it may be computed as a GEMM over (B, H, L); None for anything else (run as is)."""
        seq = self._modules["output_linear"]
        mods = tuple(seq._modules.values())
        if not (len(mods) == 2 and type(mods[0]) is nn.Linear and type(mods[1]) is nn.GLU):
            return None
        linear, glu = mods
        if _has_hooks(seq, linear, glu) or glu.dim != -1:
            return None
        return linear

    def extra_repr(self) -> str:
        s = f"d_model={self.h}, d_state={self.n}, transposed={self.transposed}"
        if self.l_max is not None:
            s += f", l_max={self.l_max}"
        return s + self._pruning_repr()


def _bilinear_dA(kernel: S4Kernel) -> torch.Tensor:
    """dA = (I - dt/2 A)^-1 (I + dt/2 A) over the full conjugate-symmetric system, A = diag(Lambda_f) - P_f P_f^H,
    per stored row, in complex128."""
    return _bilinear_dA_of(kernel.inv_dt.detach()[:, 0], kernel.A_real.detach(), kernel.A_imag.detach(),
                           kernel.P.detach()[0])


def output_vector(log_dt: torch.Tensor, A_real: torch.Tensor, A_imag: torch.Tensor, P: torch.Tensor, C: torch.Tensor,
                  l_kernel: int) -> torch.Tensor:
    """The plain output vector C_f (first N2 entries of the full system's; the rest are their conjugates) that a
    stored C-tilde stands for: C_f = C~ (I - dA^l_kernel)^-1 over the full conjugate-symmetric system (C itself
    while ``l_kernel == 0``), solved in float64 from the dense bilinear dA, per row.  The kernel is
    K[l] = C_f dA^l dB and the recurrence's output map is C_f (docs/design.md "S4").

    log_dt: (A,), A_real, A_imag: (A, N2), P, C: (A, N2, 2).  Returns (A, N2, 2) float64 (differentiable).  A
    doubling of l_kernel rewrites C~ but leaves C_f unchanged, up to the rounding of the stored C~."""
    C64 = torch.complex(C[..., 0].double(), C[..., 1].double())  # (A, N2)
    if l_kernel == 0:
        return torch.view_as_real(C64)
    dA = _bilinear_dA_of(log_dt, A_real, A_imag, P)  # (A, 2 N2, 2 N2)
    eye = torch.eye(dA.shape[-1], dtype=dA.dtype, device=dA.device).expand_as(dA)
    C_full = torch.cat([C64, C64.conj()], dim=-1)  # (A, 2 N2)
    # C_f (I - dA^M) = C~  <=>  (I - dA^M)^T C_f^T = C~^T
    C_f = torch.linalg.solve((eye - torch.linalg.matrix_power(dA, l_kernel)).transpose(-1, -2), C_full)
    return torch.view_as_real(C_f[..., : C64.shape[-1]].contiguous())


def _bilinear_dA_of(log_dt: torch.Tensor, A_real: torch.Tensor, A_imag: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """dA (rows, 2 N2, 2 N2) complex128 of log_dt (rows,), A_real, A_imag (rows, N2), P (rows, N2, 2)."""
    dt = torch.exp(log_dt.double())[:, None, None]  # (H, 1, 1)
    Lam = torch.complex(-torch.exp(A_real.double()), -A_imag.double())
    P = torch.complex(P[..., 0].double(), P[..., 1].double())
    Lf, Pf = torch.cat([Lam, Lam.conj()], -1), torch.cat([P, P.conj()], -1)  # (H, 2 N2)
    A = torch.diag_embed(Lf) - Pf.unsqueeze(-1) * Pf.conj().unsqueeze(-2)
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device).expand_as(A)
    return torch.linalg.solve(eye - dt / 2 * A, eye + dt / 2 * A)
