"""S4DLayer: a drop-in, pruning-aware replacement for the reference standalone S4D layer.

Parameter names, shapes, initialization and random-number consumption follow the reference
(state-spaces/s4, ``models/s4/s4d.py``), so a state_dict saved from it loads with ``strict=True`` and the
same seed gives the same initial weights.  Pruning (S4oP, section III): a pruned channel's SSM operator is
replaced by identity (no kernel, no D); GELU, dropout and the output mixing still act on all channels.
"""

from __future__ import annotations

import copy
import math
import operator
from typing import Any, Iterable, Optional, Union

import torch
from torch import nn

from s4op_kernels.layers._snapshot import TensorSnapshot
from s4op_kernels.ops import fft_size, s4d_kernel, sparse_fftconv
from s4op_kernels._validate import check_float, check_int

_SUPPORTED_DTYPES = (torch.float32, torch.float64)
# The per-channel SSM tensors, by path in the layer (S4DLayer.SSM_TENSORS): row h belongs to channel h (dense
# storage) or to the h-th active channel (compact storage); see S4DLayer.active_rows.
SSM_TENSORS = ("D", "kernel.C", "kernel.log_dt", "kernel.log_A_real", "kernel.A_imag")
_SSM_TENSORS = tuple((path.rpartition(".")[0], path.rpartition(".")[2]) for path in SSM_TENSORS)  # (owner, name)
_ACTIVE_KEY = "active_channels"
_CONV_CACHE_SIZE = 8  # sequence lengths whose convolution arguments an S4DLayer keeps in inference

ChannelIndex = Union[torch.Tensor, Iterable[int]]


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
        # lr == 0.0 freezes the tensor as a buffer; otherwise it is a parameter tagged for the optimizer
        # (no weight decay, own learning rate), as in the reference.
        if lr == 0.0:
            self.register_buffer(name, tensor)
        else:
            self.register_parameter(name, nn.Parameter(tensor))
            optim = {"weight_decay": 0.0}
            if lr is not None:
                optim["lr"] = lr
            getattr(self, name)._optim = optim


class S4DLayer(nn.Module):
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
        if not (isinstance(dt_min, (int, float)) and isinstance(dt_max, (int, float)) and 0 < dt_min <= dt_max):
            raise ValueError(f"S4DLayer: need 0 < dt_min <= dt_max, got dt_min={dt_min!r}, dt_max={dt_max!r}")
        if lr is not None and (not isinstance(lr, (int, float)) or lr < 0):
            raise ValueError(f"S4DLayer: lr must be None or a number >= 0, got {lr!r}")
        if dtype is not None and dtype not in _SUPPORTED_DTYPES:
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

        self._active = torch.arange(d_model)  # sorted int64 on CPU: the channels whose SSM runs
        self._compact = False  # True: SSM tensors hold only the active rows, in order
        self._device_index: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        self._conv_cache: dict[tuple, tuple[TensorSnapshot, tuple]] = {}  # (L, device) -> (sources, _conv_args)
        self._folded_cache: Optional[tuple[TensorSnapshot, torch.Tensor]] = None  # (sources, _folded_weights)
        # Created on the CPU in float32 and then moved, so a seed gives the reference's values on any device and
        # dtype (after the caches exist: _apply clears them).
        if device is not None or dtype is not None:
            self.to(device=device, dtype=dtype)

    SSM_TENSORS = SSM_TENSORS  # the per-channel SSM tensors, by path (what pruning removes per channel)

    # ------------------------------------------------------------------ pruning
    @property
    def active_channels(self) -> torch.Tensor:
        """Sorted int64 CPU tensor of the channels whose SSM operator runs (the others are identity)."""
        return self._active.clone()

    @property
    def num_active(self) -> int:
        return int(self._active.numel())

    @property
    def is_pruned(self) -> bool:
        return self.num_active < self.h

    @property
    def is_compact(self) -> bool:
        return self._compact

    @property
    def active_rows(self) -> torch.Tensor:
        """Rows of the SSM tensors that hold the active channels, in the order of :attr:`active_channels`
        (int64, CPU): the active channels themselves in dense storage, ``0..A-1`` in compact storage."""
        return torch.arange(self.num_active) if self._compact else self._active.clone()

    def active_kernels(self, L: int) -> torch.Tensor:
        """K: (A, L), the convolution kernels of the active channels, in the order of :attr:`active_channels`
        (differentiable; under ``no_grad`` by the compiled core on CPU)."""
        rows, _ = self._indices(self.D.device)
        k = self._modules["kernel"]
        return s4d_kernel(k.C, k.log_dt, k.log_A_real, k.A_imag, L, rows)

    def set_active_channels(self, idx: ChannelIndex) -> "S4DLayer":
        """Keep the SSM operators of channels ``idx`` (any integer sequence or integer tensor, any order);
        every other channel becomes identity.  An empty ``idx`` prunes every channel.

        On a compacted layer ``idx`` must be a subset of the channels it still stores.  Returns self.
        """
        active = self._parse_channels(idx, "idx")
        if self._compact:
            missing = active[~torch.isin(active, self._active)]
            if missing.numel():
                raise ValueError(
                    f"set_active_channels(idx): channels {missing.tolist()[:8]} were removed by compact() and "
                    "cannot be re-activated; load the uncompacted layer to grow the active set"
                )
            rows = torch.searchsorted(self._active, active)
            self._select_rows(rows)
        self._active = active
        self._invalidate()
        return self

    def compact(self) -> "S4DLayer":
        """An equivalent layer whose per-channel SSM tensors (D, C, log_dt, log_A_real, A_imag) hold only
        the active rows.  Its state_dict carries ``active_channels`` and loads into a fresh
        ``S4DLayer(d_model, d_state)``.  This layer is left unchanged."""
        rows, _ = self._indices(self._active.device)
        self._invalidate()
        new = copy.deepcopy(self)
        new._select_rows(rows)
        # With every channel active the compact and dense layouts coincide; keep the dense (reference) one.
        new._compact = new.is_pruned
        return new

    def _parse_channels(self, idx: Any, name: str) -> torch.Tensor:
        H = self.h
        if isinstance(idx, torch.Tensor):
            if idx.dtype == torch.bool or idx.is_floating_point() or idx.is_complex():
                raise TypeError(
                    f"{name}: expected integer channel indices, got a {idx.dtype} tensor"
                    + (" (for a boolean mask use mask.nonzero().flatten())" if idx.dtype == torch.bool else "")
                )
            if idx.device.type != "cpu" and idx.device != self.D.device:
                raise ValueError(
                    f"{name}: channel indices are on {idx.device}, expected the CPU or the layer's device "
                    f"{self.D.device}"
                )
            if idx.dim() > 1:
                raise ValueError(f"{name}: expected a 1-D sequence of channel indices, got shape {tuple(idx.shape)}")
            active = idx.detach().reshape(-1).to("cpu", torch.int64)
        else:
            if isinstance(idx, (str, bytes)) or not isinstance(idx, Iterable):
                raise TypeError(f"{name}: expected a sequence of channel indices, got {type(idx).__name__}")
            values = []
            for v in idx:
                if isinstance(v, bool):
                    raise TypeError(f"{name}: expected integer channel indices, got the bool {v!r}")
                try:
                    v = operator.index(v)
                except TypeError:
                    raise TypeError(
                        f"{name}: expected integer channel indices, got {v!r} ({type(v).__name__})"
                    ) from None
                if not 0 <= v < H:  # before torch.tensor, which cannot hold ints beyond 64 bits
                    raise IndexError(f"{name}: channel index {v} out of range for d_model={H} (valid: 0..{H - 1})")
                values.append(v)
            active = torch.tensor(values, dtype=torch.int64)
        if active.numel():
            lo, hi = int(active.min()), int(active.max())
            if lo < 0 or hi >= H:
                bad = lo if lo < 0 else hi
                raise IndexError(f"{name}: channel index {bad} out of range for d_model={H} (valid: 0..{H - 1})")
        active = torch.sort(active).values
        if active.numel() > 1 and bool((active[1:] == active[:-1]).any()):
            dup = active[1:][active[1:] == active[:-1]].unique().tolist()
            raise ValueError(f"{name}: duplicated channel indices {dup[:8]}")
        return active

    def _indices(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows of the SSM tensors that hold the active channels, the active channels), on ``device``."""
        hit = self._device_index.get(device)
        if hit is None:
            # Built outside inference mode: the cache outlives the call, and an inference tensor here would
            # break a later training forward ("Inference tensors cannot be saved for backward").
            with torch.inference_mode(False):
                hit = (self.active_rows.to(device), self._active.to(device))
            self._device_index[device] = hit
        return hit

    def _select_rows(self, rows: torch.Tensor) -> None:
        """Replace each per-channel SSM tensor by its ``rows`` (new tensors, same kind and tags)."""
        for owner, name in _SSM_TENSORS:
            module = self.get_submodule(owner)
            old = getattr(module, name)
            _replace_tensor(module, name, old.detach().index_select(0, rows.to(old.device)).clone())
        self._invalidate()

    def _prepare_rows(self, prefix: str, state_dict, target: torch.Tensor, stored: torch.Tensor, error_msgs) -> bool:
        """Before a state_dict load that changes which channels the SSM rows hold (``stored`` -> ``target``):
        a tensor the state dict carries gets ``len(target)`` fresh rows for the load to fill; a missing one
        (``strict=False``) keeps this layer's own values of the ``target`` channels, or, where the layer does
        not hold them, the load is refused (never uninitialized memory).  Returns False after an error."""
        keep = torch.isin(target, stored)
        rows_kept = torch.searchsorted(stored, target) if bool(keep.all()) else None  # where the layer holds them
        plan = []
        for owner, name in _SSM_TENSORS:
            key = prefix + (owner + "." if owner else "") + name
            if key in state_dict:
                want = (target.numel(), *getattr(self.get_submodule(owner), name).shape[1:])
                got = tuple(getattr(state_dict[key], "shape", ()))
                if got != want:  # refused before any tensor is replaced: a failed load changes nothing
                    error_msgs.append(f"size mismatch for {key}: the state dict has shape {got}, expected {want}")
                    return False
                plan.append((owner, name, None))
            elif rows_kept is not None:
                plan.append((owner, name, rows_kept))
            else:
                lack = target[~keep].tolist()
                error_msgs.append(
                    f"{key} is missing from the state dict, and this layer holds no values of channels {lack[:8]} "
                    f"to keep in its place (it stores {stored.numel()} of {self.h} channels); load a state dict "
                    f"that has {key}, or into a layer that stores those channels")
                return False
        for owner, name, rows in plan:
            module = self.get_submodule(owner)
            old = getattr(module, name).detach()
            if rows is None:
                new = old.new_empty((target.numel(), *old.shape[1:]))  # filled by the load that follows
            else:
                new = old.index_select(0, rows.to(old.device)).clone()
            _replace_tensor(module, name, new)
        self._invalidate()
        return True

    # ------------------------------------------------------------------ state dict
    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        # An unpruned, uncompacted layer saves exactly the reference's keys.
        if self.is_pruned or self._compact:
            destination[prefix + _ACTIVE_KEY] = self._active.clone()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        key = prefix + _ACTIVE_KEY
        if key in state_dict:
            try:
                active = self._parse_channels(state_dict[key], key)
            except (TypeError, ValueError, IndexError) as err:
                error_msgs.append(f"invalid {key!r} for S4DLayer(d_model={self.h}): {err}")
                return
        else:
            active = torch.arange(self.h)
        d_key = prefix + "D"
        n_rows = state_dict[d_key].shape[0] if d_key in state_dict and state_dict[d_key].dim() == 1 else None
        compact = n_rows is not None and n_rows == active.numel() and n_rows != self.h
        if n_rows is not None and n_rows != self.h and not compact:
            error_msgs.append(
                f"size mismatch for {d_key}: the checkpoint has {n_rows} rows, expected d_model={self.h} "
                f"(dense) or {active.numel()} (compacted, one per active channel)"
            )
            return
        # The channels the SSM rows will hold, and those they hold now.
        target = active if compact else torch.arange(self.h)
        stored = self._active if self._compact else torch.arange(self.h)
        if target.numel() != stored.numel() or not torch.equal(target, stored):
            if not self._prepare_rows(prefix, state_dict, target, stored, error_msgs):
                return
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
        if key in unexpected_keys:
            unexpected_keys.remove(key)
        self._active = active
        self._compact = compact
        self._invalidate()

    # ------------------------------------------------------------------ caching
    def _invalidate(self) -> None:
        self._device_index.clear()
        self._conv_cache.clear()
        self._folded_cache = None

    def __getstate__(self):
        # Pickled (torch.save of the module, copy.deepcopy) without the caches: they are derived data, and
        # kept they made a saved layer (H=64, N=64) 2.2 MB instead of 72 KB after one forward at L=4096.
        state = super().__getstate__()
        state.update(_device_index={}, _conv_cache={}, _folded_cache=None)
        return state

    def train(self, mode: bool = True) -> "S4DLayer":
        self._conv_cache.clear()
        return super().train(mode)

    def _apply(self, fn, recurse=True):
        self._invalidate()
        return super()._apply(fn, recurse)

    def _ssm_tensor_list(self) -> list[torch.Tensor]:
        """The _SSM_TENSORS (D, C, log_dt, log_A_real, A_imag), read straight from the modules' dicts (this
        runs every forward, and nn.Module.__getattr__ costs about half a microsecond a read)."""
        own, kernel = self, self._modules["kernel"]
        return [_module_tensor(kernel if owner else own, name) for owner, name in _SSM_TENSORS]

    def _conv_args(self, L: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """What sparse_fftconv needs besides u, for length L: (kernel spectra of the active channels
        (A, n_fft // 2 + 1), their D (A,), the active channels (A,), n_fft).  Cached per (L, device) in
        inference, so a forward costs one lookup and one exact comparison of the SSM tensors with the copies
        the cached value was built from (layers/_snapshot.py): any change to them, however made, rebuilds it."""
        tensors = self._ssm_tensor_list()
        if self.training or (torch.is_grad_enabled() and any(t.requires_grad for t in tensors)):
            return self._build_conv_args(L, device, tensors)
        key = (L, device)
        hit = self._conv_cache.get(key)
        if hit is not None and hit[0].matches(tensors):
            return hit[1]
        # The snapshot is taken before the build and the build reads only its copies, so the cached value is
        # exactly a function of what the snapshot holds, even if another thread changes a tensor meanwhile.
        snapshot = TensorSnapshot(tensors)
        with torch.inference_mode(False), torch.no_grad():
            args = self._build_conv_args(L, device, snapshot.copies)
        if len(self._conv_cache) >= _CONV_CACHE_SIZE:
            self._conv_cache.pop(next(iter(self._conv_cache)))
        self._conv_cache[key] = (snapshot, args)
        return args

    def _build_conv_args(self, L: int, device: torch.device, tensors: list[torch.Tensor]):
        """_conv_args computed afresh: only the active rows are gathered and only their kernels generated."""
        n_fft = fft_size(L)
        rows, active = self._indices(device)
        D, C, log_dt, log_A_real, A_imag = tensors
        # The kernel op reads the active rows in place; only D is gathered (sparse_fftconv takes it compact).
        k_f = torch.fft.rfft(s4d_kernel(C, log_dt, log_A_real, A_imag, L, rows), n=n_fft)
        return k_f, D.index_select(0, rows), active, n_fft

    # ------------------------------------------------------------------ forward
    def forward(self, u: torch.Tensor, **kwargs) -> tuple[torch.Tensor, None]:
        """u: (B, H, L) if transposed else (B, L, H), float32/float64 like the layer.  Returns (y, None)."""
        self._check_input(u)
        if not self.transposed:
            u = u.transpose(-1, -2)
        act = self._modules["activation"]
        fuse_gelu = type(act) is nn.GELU and act.approximate == "none" and not _has_hooks(act)
        conv = self._gemm_conv() if fuse_gelu and not self.training and not self._modules["dropout"].training else None
        if conv is not None and _module_tensor(conv, "bias") is not None:
            # Inference: GELU fused into the convolution's row loop, which also writes a channel of ones
            # after the H channels, so the GEMM adds the bias itself (no separate broadcast-and-add pass).
            y = self._ssm(u, activation="gelu", append_ones=True)  # (B, H + 1, L)
            y = nn.functional.glu(torch.matmul(self._folded_weights(conv), y), dim=-2)
        else:
            y = self._ssm(u, activation="gelu") if fuse_gelu else act(self._ssm(u))
            y = self._mix(self.dropout(y))
        if not self.transposed:
            y = y.transpose(-1, -2)
        return y, None

    def _mix(self, y: torch.Tensor) -> torch.Tensor:
        """output_linear(y) for y: (B, H, L).  The reference's Conv1d(H, 2H, 1) + GLU is computed as one batched
        GEMM with the bias folded in: the same parameters and result, but oneDNN's 1x1 convolution is several
        times slower than MKL's GEMM on CPU (benchmarks/RESULTS.md).  Anything else (a replaced module, hooks)
        runs as is."""
        conv = self._gemm_conv()
        if conv is None:
            return self.output_linear(y)
        W, b = _module_tensor(conv, "weight").squeeze(-1), _module_tensor(conv, "bias")
        if b is None:
            z = torch.matmul(W, y)
        else:
            z = torch.baddbmm(b.view(1, -1, 1), W.expand(y.shape[0], -1, -1), y)  # (B, 2H, L)
        return torch.nn.functional.glu(z, dim=-2)

    def _gemm_conv(self) -> Optional[nn.Conv1d]:
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

    def _folded_weights(self, conv: nn.Conv1d) -> torch.Tensor:
        """[W | b] (2H, H + 1) of the output Conv1d, for a GEMM against [y; 1]; cached like _conv_args."""
        W, b = _module_tensor(conv, "weight"), _module_tensor(conv, "bias")
        if torch.is_grad_enabled() and (W.requires_grad or b.requires_grad):
            return torch.cat([W.squeeze(-1), b.unsqueeze(1)], dim=1)
        hit = self._folded_cache
        if hit is not None and hit[0].matches((W, b)):
            return hit[1]
        # [W | b] is itself the copy the snapshot keeps (made in one pass, before anything is derived from it):
        # no second copy of W, and the check reads the matrix the GEMM reads next.
        with torch.inference_mode(False), torch.no_grad():
            Wb = torch.cat([W.detach().squeeze(-1), b.detach().unsqueeze(1)], dim=1)  # (2H, H + 1)
        H = Wb.shape[1] - 1
        self._folded_cache = (TensorSnapshot((W, b), copies=(Wb[:, :H].view(W.shape), Wb[:, H])), Wb)
        return Wb

    def _ssm(self, u: torch.Tensor, activation: str = "none", append_ones: bool = False) -> torch.Tensor:
        """The SSM part: u (B, H, L) -> y (B, H, L), followed by GELU if ``activation="gelu"``; with
        ``append_ones`` y is (B, H + 1, L) with a last channel of ones."""
        if self.num_active == 0:
            y = nn.functional.gelu(u) if activation == "gelu" else u
            return torch.cat([y, y.new_ones(y.shape[0], 1, y.shape[2])], dim=1) if append_ones else y
        k_f, D, active, n_fft = self._conv_args(u.shape[-1], u.device)
        return sparse_fftconv(u, k_f, D, active, n_fft, activation, append_ones)

    def _check_input(self, u: Any) -> None:
        if not isinstance(u, torch.Tensor):
            raise TypeError(f"S4DLayer.forward(u): expected a torch.Tensor, got {type(u).__name__}")
        layout = "(B, H, L)" if self.transposed else "(B, L, H)"
        if u.dim() != 3:
            raise ValueError(f"S4DLayer.forward(u): expected a 3-D tensor {layout}, got shape {tuple(u.shape)}")
        if u.dtype not in _SUPPORTED_DTYPES:
            raise TypeError(f"S4DLayer.forward(u): dtype {u.dtype} is not supported; use float32 or float64")
        if u.dtype != self.D.dtype:
            raise TypeError(
                f"S4DLayer.forward(u): u is {u.dtype} but the layer is {self.D.dtype}; convert one with .to()"
            )
        H = u.shape[1] if self.transposed else u.shape[2]
        if H != self.h:
            raise ValueError(
                f"S4DLayer.forward(u): expected {layout} with H = d_model = {self.h}, got shape {tuple(u.shape)}"
                + ("" if self.transposed else "; the layer was built with transposed=False")
            )
        if u.shape[-1 if self.transposed else 1] < 1:
            raise ValueError(f"S4DLayer.forward(u): the sequence length must be >= 1, got shape {tuple(u.shape)}")

    def extra_repr(self) -> str:
        s = f"d_model={self.h}, d_state={self.n}, transposed={self.transposed}"
        if self.is_pruned or self._compact:
            s += f", active={self.num_active}/{self.h}" + (", compact" if self._compact else "")
        return s


def _replace_tensor(module: nn.Module, name: str, value: torch.Tensor) -> None:
    old = getattr(module, name)
    if isinstance(old, nn.Parameter):
        new = nn.Parameter(value, requires_grad=old.requires_grad)
        if hasattr(old, "_optim"):
            new._optim = dict(old._optim)
        setattr(module, name, new)
    else:
        module._buffers[name] = value


def _module_tensor(module: nn.Module, name: str) -> torch.Tensor:
    """``getattr(module, name)`` for a parameter or buffer, without nn.Module.__getattr__."""
    t = module._parameters.get(name)
    if t is None:
        t = module._buffers.get(name)
    return t if t is not None else getattr(module, name)


def _has_hooks(*modules: nn.Module) -> bool:
    """True if any of ``modules`` (listed explicitly: callers know the structure they bypass) or the global
    registry has forward (pre-)hooks, which a fused path would skip."""
    return bool(nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks) or any(
        m._forward_hooks or m._forward_pre_hooks for m in modules)


