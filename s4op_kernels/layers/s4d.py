"""S4DLayer: a drop-in, pruning-aware replacement for the reference standalone S4D layer.

Parameter names, shapes, initialization and random-number consumption follow the reference
(state-spaces/s4, ``models/s4/s4d.py``), so a state_dict saved from it loads with ``strict=True`` and the
same seed gives the same initial weights.  Pruning (S4oP, section III): a pruned channel's SSM operator is
replaced by identity (no kernel, no D); GELU, dropout and the output mixing still act on all channels.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import torch
from torch import nn

from s4op_kernels.layers._base import (
    SUPPORTED_DTYPES, PrunableSSMLayer, _has_hooks, check_ssm_init, register_ssm_tensor,
)
from s4op_kernels.ops import fft_size, s4d_kernel, s4d_step_coefficients
from s4op_kernels._validate import check_float, check_int

# The per-channel SSM tensors, by path in the layer (S4DLayer.SSM_TENSORS): row h belongs to channel h (dense
# storage) or to the h-th active channel (compact storage); see S4DLayer.active_rows.
SSM_TENSORS = ("D", "kernel.C", "kernel.log_dt", "kernel.log_A_real", "kernel.A_imag")
_SSM_TENSORS = tuple((path.rpartition(".")[0], path.rpartition(".")[2], 0) for path in SSM_TENSORS)  # (owner, name, dim)


class TiedDropout(nn.Module):
    """Dropout with one mask per (batch element, channel), shared over the sequence (DropoutNd, tie=True)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, H, L)
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape[0], x.shape[1], 1, device=x.device) < 1.0 - self.p
        return x * keep.to(x.dtype) / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class S4DKernel(nn.Module):
    """Holds the S4D kernel parameters (the reference's ``kernel`` submodule)."""

    def __init__(self, d_model: int, N: int, dt_min: float, dt_max: float, lr: Optional[float]):
        super().__init__()
        H = d_model
        log_dt = torch.rand(H) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        C = torch.randn(H, N // 2, dtype=torch.cfloat)
        self.C = nn.Parameter(torch.view_as_real(C))
        self._register("log_dt", log_dt, lr)
        self._register("log_A_real", torch.log(0.5 * torch.ones(H, N // 2)), lr)
        self._register("A_imag", math.pi * torch.arange(N // 2, dtype=torch.float32).repeat(H, 1), lr)

    def _register(self, name: str, tensor: torch.Tensor, lr: Optional[float]) -> None:
        register_ssm_tensor(self, name, tensor, lr)  # a buffer if lr == 0.0, else a parameter tagged _optim


class S4DLayer(PrunableSSMLayer):
    """Diagonal state-space layer (S4D) whose channels ("operators") can be pruned to identity.

    Args:
        d_model: number of channels H.
        d_state: state size N (even, >= 2); the layer has N/2 complex modes per channel.
        dropout: probability of the tied dropout after GELU.
        transposed: inputs/outputs are (B, H, L) if True, (B, L, H) if False.
        dt_min, dt_max: range of the log-uniform initial step size.
        lr: learning rate of the SSM tensors; ``0.0`` makes them buffers, ``None`` the optimizer default.
        device, dtype: factory keywords (float32 or float64).

    ``forward(u)`` returns ``(y, None)`` like the reference.  Pruning: :meth:`set_active_channels`,
    :attr:`active_channels`, :meth:`compact`; the storage behind them: :attr:`SSM_TENSORS`,
    :attr:`active_rows`, :meth:`active_kernels`.  In eval mode the spectra of the active kernels are cached
    per (L, device) and are never stale (layers/_snapshot.py); the caches are dropped when the active set
    changes, on ``.to()`` and on ``train()``.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        dropout: float = 0.0,
        transposed: bool = True,
        *,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        lr: Optional[float] = None,
        device: Optional[Union[str, torch.device]] = None,
        dtype: Optional[torch.dtype] = None,
    ):
        super().__init__()
        d_model = check_int(d_model, "d_model", func="S4DLayer", minimum=1)
        d_state = check_int(d_state, "d_state", func="S4DLayer", minimum=2)
        if d_state % 2:
            raise ValueError(f"S4DLayer(d_state): must be even (N/2 complex modes), got {d_state}")
        dropout = check_float(dropout, "dropout", func="S4DLayer", minimum=0.0, maximum=1.0, max_open=True)
        dt_min, dt_max, lr = check_ssm_init("S4DLayer", dt_min, dt_max, lr)
        if dtype is not None and dtype not in SUPPORTED_DTYPES:
            raise TypeError(f"S4DLayer: dtype must be torch.float32 or torch.float64, got {dtype}")

        self.h = self.d_model = d_model
        self.n = self.d_state = d_state
        self.d_output = d_model
        self.transposed = bool(transposed)

        # Same order of random draws as the reference: D, then the kernel, then the output mixing.
        self.D = nn.Parameter(torch.randn(d_model))
        self.kernel = S4DKernel(d_model, N=d_state, dt_min=dt_min, dt_max=dt_max, lr=lr)
        self.activation = nn.GELU()
        self.dropout = TiedDropout(dropout) if dropout > 0.0 else nn.Identity()
        self.output_linear = nn.Sequential(nn.Conv1d(d_model, 2 * d_model, kernel_size=1), nn.GLU(dim=-2))

        self._init_pruning()
        # Created on the CPU in float32 and then moved, so a seed gives the reference's values on any device and
        # dtype (after the caches exist: _apply clears them).
        if device is not None or dtype is not None:
            self.to(device=device, dtype=dtype)

    SSM_TENSORS = SSM_TENSORS  # the per-channel SSM tensors, by path (what pruning removes per channel)
    SSM_CHANNEL_DIMS = (0,) * len(SSM_TENSORS)  # their channel dims
    _SSM_TENSORS = _SSM_TENSORS

    def active_kernels(self, L: int) -> torch.Tensor:
        """K: (A, L), the convolution kernels of the active channels, in the order of :attr:`active_channels`
        (differentiable; under ``no_grad`` by the compiled core on CPU)."""
        rows, _ = self._indices(self.D.device)
        k = self._modules["kernel"]
        return s4d_kernel(k.C, k.log_dt, k.log_A_real, k.A_imag, L, rows)

    def _build_conv_args(self, L: int, device: torch.device, tensors: list[torch.Tensor]):
        """_conv_args computed afresh: only the active rows are gathered and only their kernels generated."""
        n_fft = fft_size(L)
        rows, active = self._indices(device)
        D, C, log_dt, log_A_real, A_imag = tensors
        # The kernel op reads the active rows in place; only D is gathered (sparse_fftconv takes it compact).
        k_f = torch.fft.rfft(s4d_kernel(C, log_dt, log_A_real, A_imag, L, rows), n=n_fft)
        return k_f, D.index_select(0, rows), active, n_fft

    def _build_step_args(self, device: torch.device, tensors: list[torch.Tensor]):
        """The ZOH step coefficients of the active channels (alpha = exp(dt A), beta = (exp(dt A) - 1) / A, C, D):
        the recurrence whose impulse response is exactly the kernel of :meth:`active_kernels`."""
        rows, active = self._indices(device)
        D, C, log_dt, log_A_real, A_imag = tensors
        modes, scalars = s4d_step_coefficients(C, log_dt, log_A_real, A_imag, D, rows)
        return modes, scalars, active

    def _parts(self):
        return self._modules["activation"], None, self._modules["dropout"]

    def _mix_module(self, y: torch.Tensor) -> torch.Tensor:
        return self.output_linear(y)

    def _gemm_mixer(self) -> Optional[nn.Conv1d]:
        """output_linear's Conv1d when output_linear is the reference's Conv1d(H, 2H, 1) + GLU over channels
        with no hooks, so it may be computed as a GEMM; None for anything else (run as is)."""
        seq = self._modules["output_linear"]
        mods = tuple(seq._modules.values())  # direct: Sequential indexing costs microseconds per forward
        if not (len(mods) == 2 and type(mods[0]) is nn.Conv1d and type(mods[1]) is nn.GLU):
            return None
        conv, glu = mods
        if _has_hooks(seq, conv, glu):
            return None
        if not (conv.kernel_size == (1,) and conv.stride == (1,) and conv.padding == (0,) and conv.dilation == (1,)
                and conv.groups == 1 and conv.padding_mode == "zeros" and glu.dim in (-2, 1)):
            return None
        return conv

    def extra_repr(self) -> str:
        return f"d_model={self.h}, d_state={self.n}, transposed={self.transposed}" + self._pruning_repr()

