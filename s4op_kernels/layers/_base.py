"""What S4DLayer and S4Layer share: channel pruning, compact storage, self-resizing state_dict loads, the exact
inference caches and the fused inference forward.

A subclass says where its per-channel SSM tensors live (``_SSM_TENSORS``: owner path, name, channel dim), how
the convolution arguments are built from them (``_build_conv_args``), and which modules are its activation,
dropouts and output mixing (``_parts``, ``_gemm_mixer``, ``_mix_module``).  Semantics (S4oP, section III): a
pruned channel's SSM operator is identity (no kernel, no D); GELU, dropout and the output mixing act on all
channels.
"""

from __future__ import annotations

import copy
import operator
from typing import Any, Iterable, Optional, Union

import torch
from torch import nn

from s4op_kernels._validate import check_float, check_int
from s4op_kernels.layers import _mixing
from s4op_kernels.layers._snapshot import TensorSnapshot
from s4op_kernels.ops import sparse_fftconv, ssm_chunk_state, ssm_step

SUPPORTED_DTYPES = (torch.float32, torch.float64)
ACTIVE_KEY = "active_channels"
_CONV_CACHE_SIZE = 8  # conv-argument keys (sequence lengths) a layer keeps in inference

ChannelIndex = Union[torch.Tensor, Iterable[int]]


class PrunableSSMLayer(nn.Module):
    """Base of the pruning-aware SSM layers (see the module docstring).  Subclasses set ``h`` (d_model) and
    ``transposed``, build their modules, then call :meth:`_init_pruning`."""

    # (owner path ("" = the layer itself), tensor name, channel dim), D first.
    _SSM_TENSORS: tuple[tuple[str, str, int], ...] = ()

    def _init_pruning(self) -> None:
        self._active = torch.arange(self.h)  # sorted int64 on CPU: the channels whose SSM runs
        self._compact = False  # True: SSM tensors hold only the active rows, in order
        self._device_index: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        self._conv_cache: dict[tuple, tuple[TensorSnapshot, tuple]] = {}  # key -> (sources, _conv_args)
        self._folded_cache: Optional[tuple[TensorSnapshot, _mixing.MixWeights]] = None  # (sources, _mixing_weights)
        self._step_cache: dict[tuple, tuple[TensorSnapshot, tuple]] = {}  # key -> (sources, _step_args)

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
        """Rows of the SSM tensors (along their channel dim) that hold the active channels, in the order of
        :attr:`active_channels` (int64, CPU): the active channels themselves in dense storage, ``0..A-1`` in
        compact storage."""
        return torch.arange(self.num_active) if self._compact else self._active.clone()

    def set_active_channels(self, idx: ChannelIndex) -> "PrunableSSMLayer":
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

    def compact(self) -> "PrunableSSMLayer":
        """An equivalent layer whose per-channel SSM tensors hold only the active rows.  Its state_dict carries
        ``active_channels`` and loads into a fresh layer of the same constructor arguments.  This layer is left
        unchanged."""
        rows, _ = self._indices(self._active.device)
        self._invalidate()
        new = copy.deepcopy(self)
        new._select_rows(rows)
        # With every channel active the compact and dense layouts coincide; keep the dense (reference) one.
        new._compact = new.is_pruned
        return new

    def _parse_channels(self, idx: Any, name: str) -> torch.Tensor:
        H = self.h
        device = self._ssm_tensor_list()[0].device
        if isinstance(idx, torch.Tensor):
            if idx.dtype == torch.bool or idx.is_floating_point() or idx.is_complex():
                raise TypeError(
                    f"{name}: expected integer channel indices, got a {idx.dtype} tensor"
                    + (" (for a boolean mask use mask.nonzero().flatten())" if idx.dtype == torch.bool else "")
                )
            if idx.device.type != "cpu" and idx.device != device:
                raise ValueError(
                    f"{name}: channel indices are on {idx.device}, expected the CPU or the layer's device {device}"
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
        for owner, name, dim in self._SSM_TENSORS:
            module = self.get_submodule(owner)
            old = getattr(module, name)
            _replace_tensor(module, name, old.detach().index_select(dim, rows.to(old.device)).clone())
        self._invalidate()

    def _prepare_rows(self, prefix: str, state_dict, target: torch.Tensor, stored: torch.Tensor, error_msgs) -> bool:
        """Before a state_dict load that changes which channels the SSM rows hold (``stored`` -> ``target``):
        a tensor the state dict carries gets ``len(target)`` fresh rows for the load to fill; a missing one
        (``strict=False``) keeps this layer's own values of the ``target`` channels, or, where the layer does
        not hold them, the load is refused (never uninitialized memory).  Returns False after an error."""
        keep = torch.isin(target, stored)
        rows_kept = torch.searchsorted(stored, target) if bool(keep.all()) else None  # where the layer holds them
        plan = []
        for owner, name, dim in self._SSM_TENSORS:
            key = prefix + (owner + "." if owner else "") + name
            if key in state_dict:
                shape = list(getattr(self.get_submodule(owner), name).shape)
                shape[dim] = target.numel()
                want, got = tuple(shape), tuple(getattr(state_dict[key], "shape", ()))
                if got != want:  # refused before any tensor is replaced: a failed load changes nothing
                    error_msgs.append(f"size mismatch for {key}: the state dict has shape {got}, expected {want}")
                    return False
                plan.append((owner, name, dim, None))
            elif rows_kept is not None:
                plan.append((owner, name, dim, rows_kept))
            else:
                lack = target[~keep].tolist()
                error_msgs.append(
                    f"{key} is missing from the state dict, and this layer holds no values of channels {lack[:8]} "
                    f"to keep in its place (it stores {stored.numel()} of {self.h} channels); load a state dict "
                    f"that has {key}, or into a layer that stores those channels")
                return False
        for owner, name, dim, rows in plan:
            module = self.get_submodule(owner)
            old = getattr(module, name).detach()
            if rows is None:
                shape = list(old.shape)
                shape[dim] = target.numel()
                new = old.new_empty(shape)  # filled by the load that follows
            else:
                new = old.index_select(dim, rows.to(old.device)).clone()
            _replace_tensor(module, name, new)
        self._invalidate()
        return True

    # ------------------------------------------------------------------ state dict
    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        # An unpruned, uncompacted layer saves exactly the reference's keys.
        if self.is_pruned or self._compact:
            destination[prefix + ACTIVE_KEY] = self._active.clone()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        key = prefix + ACTIVE_KEY
        if key in state_dict:
            try:
                active = self._parse_channels(state_dict[key], key)
            except (TypeError, ValueError, IndexError) as err:
                error_msgs.append(f"invalid {key!r} for {type(self).__name__}(d_model={self.h}): {err}")
                return
        else:
            active = torch.arange(self.h)
        owner, name, dim = self._SSM_TENSORS[0]  # D: its rows tell the storage layout
        d_key = prefix + (owner + "." if owner else "") + name
        d_ndim = getattr(self.get_submodule(owner), name).dim()
        d_val = state_dict.get(d_key)
        n_rows = d_val.shape[dim] if isinstance(d_val, torch.Tensor) and d_val.dim() == d_ndim else None
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
        self._step_cache.clear()

    def __getstate__(self):
        # Pickled (torch.save of the module, copy.deepcopy) without the caches: they are derived data, and
        # kept they made a saved S4D layer (H=64, N=64) 2.2 MB instead of 72 KB after one forward at L=4096.
        state = super().__getstate__()
        state.update(_device_index={}, _conv_cache={}, _folded_cache=None, _step_cache={})
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self.__dict__.setdefault("_step_cache", {})  # pickled before streaming existed

    def train(self, mode: bool = True):
        self._conv_cache.clear()
        self._step_cache.clear()
        return super().train(mode)

    def _apply(self, fn, recurse=True):
        self._invalidate()
        return super()._apply(fn, recurse)

    def _ssm_tensor_list(self) -> list[torch.Tensor]:
        """The _SSM_TENSORS, in order, read straight from the modules' dicts (this runs every forward, and
        nn.Module.__getattr__ costs about half a microsecond a read)."""
        out = []
        for owner, name, _ in self._SSM_TENSORS:
            module = self
            if owner:
                for part in owner.split("."):
                    module = module._modules[part]
            out.append(_module_tensor(module, name))
        return out

    def _conv_key(self, L: int, device: torch.device) -> tuple:
        """What the convolution arguments depend on besides the SSM tensors (S4: also the kernel length)."""
        return (L, device)

    def _conv_args(self, L: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """What sparse_fftconv needs besides u, for length L: (kernel spectra of the active channels
        (A, n_fft // 2 + 1), their D (A,), the active channels (A,), n_fft).  Cached per :meth:`_conv_key` in
        inference, so a forward costs one lookup and one exact comparison of the SSM tensors with the copies
        the cached value was built from (layers/_snapshot.py): any change to them, however made, rebuilds it."""
        tensors = self._ssm_tensor_list()
        # torch.export: no cache (a cached tensor would be traced as a constant built under other grad modes).
        if (self.training or (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))
                or torch.compiler.is_exporting()):
            return self._build_conv_args(L, device, tensors)
        key = self._conv_key(L, device)
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
        """_conv_args computed afresh from ``tensors`` (the _SSM_TENSORS or copies of them)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ forward
    def _prepare_forward(self, L: int) -> None:
        """Called before the convolution arguments are needed (S4: the kernel length)."""

    def _parts(self) -> tuple[nn.Module, Optional[nn.Module], nn.Module]:
        """(activation, dropout before it or None, dropout after it)."""
        raise NotImplementedError

    def _gemm_mixer(self) -> Optional[nn.Module]:
        """The output mixing's linear module (weight (2H, H[, 1]) and bias) when the mixing is exactly that
        linear map followed by GLU over channels with no hooks, so it may run as one GEMM; None otherwise."""
        raise NotImplementedError

    def _mix_module(self, y: torch.Tensor) -> torch.Tensor:
        """The output mixing run as the modules are, on y (B, H, L)."""
        raise NotImplementedError

    def forward(self, u: torch.Tensor, state: Optional[torch.Tensor] = None,
                **kwargs) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """u: (B, H, L) if transposed else (B, L, H), float32/float64 like the layer.  Returns (y, None); with a
        ``state`` (:meth:`default_state`, or the state a previous call returned), u continues that stream and the
        result is (y, the state after u) (:meth:`step` documents the streaming form)."""
        if state is not None:
            return self._forward_chunk(u, state)
        self._check_input(u)
        if not self.transposed:
            u = u.transpose(-1, -2)
        self._prepare_forward(u.shape[-1])
        act, drop_in, drop_out = self._parts()
        fuse_gelu = (type(act) is nn.GELU and act.approximate == "none" and not _has_hooks(act)
                     and (drop_in is None or not drop_in.training or type(drop_in) is nn.Identity))
        mixer = self._gemm_mixer() if fuse_gelu and not self.training and not drop_out.training else None
        if mixer is not None and _module_tensor(mixer, "bias") is not None:
            # Inference: GELU fused into the convolution's row loop; the mixing + GLU by the method chosen
            # for this machine and shape class (layers/_mixing.py).  For the folded GEMM the same row loop
            # writes a channel of ones after the H channels, so the GEMM adds the bias itself.
            W, b = _module_tensor(mixer, "weight"), _module_tensor(mixer, "bias")
            needs_grad = torch.is_grad_enabled() and (W.requires_grad or b.requires_grad)
            B, H, L = u.shape
            method, key = _mixing.lookup(B, H, L, u.dtype, u.is_cpu, needs_grad)
            weights = self._mixing_weights(W, b, needs_grad)
            if method is None:  # auto, and this shape class is not timed yet: time the methods on this call
                y = _mixing.measure(key, weights, self._ssm(u, activation="gelu", append_ones=True))
            else:
                y = self._ssm(u, activation="gelu", append_ones=_mixing.NEEDS_ONES[method])
                y = _mixing.mix(method, weights, y)
        else:
            if fuse_gelu:
                y = self._ssm(u, activation="gelu")
            else:
                y = self._ssm(u)
                y = act(drop_in(y) if drop_in is not None else y)
            y = self._mix(drop_out(y))
        if not self.transposed:
            y = y.transpose(-1, -2)
        return y, None

    # ------------------------------------------------------------------ streaming (the recurrent form)
    @property
    def state_modes(self) -> int:
        """N2 = d_state / 2: complex modes per active channel in a streaming state."""
        return self.n // 2

    def default_state(self, batch_size: int = 1) -> torch.Tensor:
        """The zero state of ``batch_size`` sequences: a ``(batch_size, A, N2, 2)`` tensor of the layer's dtype and
        device, A = :attr:`num_active`, N2 = d_state / 2 -- the complex modes of the active channels only, as
        (real, imaginary) pairs (S4: the first N2 of the 2 N2 states, the others being their conjugates).  A
        pruned channel has no state.  A state fits the active set it was made for: after
        :meth:`set_active_channels` make a new one."""
        batch_size = check_int(batch_size, "batch_size", func=f"{type(self).__name__}.default_state", minimum=1)
        return self._ssm_tensor_list()[0].detach().new_zeros(batch_size, self.num_active, self.state_modes, 2)

    def step(self, u: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One sample of a stream: ``u: (B, H)`` (either layout), ``state`` from :meth:`default_state` or the
        previous step.  Returns ``(y: (B, H), next_state)``; ``state`` is not modified.

        y is what :meth:`forward` gives at that position of the whole sequence: the active channels run their
        recurrence (S4D: zero-order hold, x' = exp(dt A) x + (exp(dt A) - 1) / A u, y = 2 Re(C x') + D u; S4: the
        bilinear rank-1 DPLR recurrence, O(N) per sample by the Woodbury identity, with the plain C that the
        stored C-tilde stands for, computed in float64), pruned channels pass u through, then the activation and
        the output mixing act on all channels as in forward.  O(A N2 + H^2) work per sample, A the active
        channels.  In training mode with an active dropout there is no per-sample equivalent of forward's
        dropout: call ``.eval()``."""
        tensors = self._ssm_tensor_list()  # read once: this runs per sample
        self._check_state_input(u, tensors[0], "step(u)")
        self._check_state(state, u.shape[0], tensors[0], "step(state)")
        act, drop_in, drop_out = self._parts()
        for d in (drop_in, drop_out):
            if d is not None and d.training and getattr(d, "p", 0.0) > 0.0:
                raise RuntimeError(f"{type(self).__name__}.step: the layer is in training mode with dropout "
                                   f"p={d.p}, which has no per-sample form; call .eval() to stream")
        modes, scalars, active = self._step_args(u.device, tensors)
        fuse_gelu = type(act) is nn.GELU and act.approximate == "none" and not _has_hooks(act)
        mixer = self._gemm_mixer() if fuse_gelu else None
        if mixer is not None and _module_tensor(mixer, "bias") is not None:
            y, nxt = ssm_step(modes, scalars, active, u, state, "gelu")
            W, b = _module_tensor(mixer, "weight"), _module_tensor(mixer, "bias")
            z = torch.addmm(b, y, W.reshape(W.shape[0], -1).t())  # (B, 2H)
            return nn.functional.glu(z, dim=-1), nxt
        y, nxt = ssm_step(modes, scalars, active, u, state, "gelu" if fuse_gelu else "none")
        if not fuse_gelu:
            y = act(drop_in(y) if drop_in is not None else y)
        y = self._mix(drop_out(y.unsqueeze(-1)))[..., 0]
        return y, nxt

    def _forward_chunk(self, u: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """forward(u, state): the chunk's own FFT convolution (the forward's cached spectra) plus the zero-input
        response of the incoming state, then activation and mixing as in forward; and the state after u."""
        self._check_input(u)
        if not self.transposed:
            u = u.transpose(-1, -2)
        B, H, L = u.shape
        self._check_state(state, B, self._ssm_tensor_list()[0], "forward(state)")
        self._prepare_chunk(L)
        y = self._ssm(u)
        if self.num_active:
            modes, scalars, active = self._step_args(u.device)
            y_free, nxt = ssm_chunk_state(modes, scalars, active, u, state)
            y = y.index_add(1, active, y_free)
        else:
            nxt = state.clone()
        act, drop_in, drop_out = self._parts()
        y = act(drop_in(y) if drop_in is not None else y)
        y = self._mix(drop_out(y))
        if not self.transposed:
            y = y.transpose(-1, -2)
        return y, nxt

    def _prepare_chunk(self, L: int) -> None:
        """Before a chunk of L samples continues a stream (S4: the kernel length; refused past l_max)."""
        self._prepare_forward(L)

    def _step_key(self, device: torch.device) -> tuple:
        """What the step coefficients depend on besides the SSM tensors (S4: also the kernel length)."""
        return (device,)

    def _step_args(self, device: torch.device,
                   tensors: Optional[list[torch.Tensor]] = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(modes, scalars, active) of ops.ssm_step for the active channels; cached and checked against the SSM
        tensors like :meth:`_conv_args` (never stale).  ``tensors``: the _SSM_TENSORS if the caller has them."""
        if tensors is None:
            tensors = self._ssm_tensor_list()
        if (self.training or (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))
                or torch.compiler.is_exporting()):
            return self._build_step_args(device, tensors)
        key = self._step_key(device)
        hit = self._step_cache.get(key)
        if hit is not None and hit[0].matches(tensors):
            return hit[1]
        snapshot = TensorSnapshot(tensors)
        with torch.inference_mode(False), torch.no_grad():
            args = self._build_step_args(device, snapshot.copies)
        self._step_cache.clear()  # one entry: the coefficients do not depend on the input
        self._step_cache[key] = (snapshot, args)
        return args

    def _build_step_args(self, device: torch.device, tensors: list[torch.Tensor]):
        """_step_args computed afresh from ``tensors`` (the _SSM_TENSORS or copies of them)."""
        raise NotImplementedError

    def _check_state_input(self, u: Any, ref: torch.Tensor, where: str) -> None:
        where = f"{type(self).__name__}.{where}"
        if not isinstance(u, torch.Tensor):
            raise TypeError(f"{where}: expected a torch.Tensor, got {type(u).__name__}")
        if u.dim() != 2 or u.shape[1] != self.h:
            raise ValueError(f"{where}: expected one sample (B, H) with H = d_model = {self.h}, got shape "
                             f"{tuple(u.shape)}")
        if u.dtype != ref.dtype:
            raise TypeError(f"{where}: u is {u.dtype} but the layer is {ref.dtype}; convert one with .to()")

    def _check_state(self, state: Any, B: int, ref: torch.Tensor, where: str) -> None:
        where = f"{type(self).__name__}.{where}"
        want = (B, self.num_active, self.state_modes, 2)
        if not isinstance(state, torch.Tensor):
            raise TypeError(f"{where}: expected the tensor default_state() or a previous call returned, got "
                            f"{type(state).__name__}")
        if tuple(state.shape) != want:
            raise ValueError(f"{where}: expected shape (B, A, N2, 2) = {want} (B sequences, A = {self.num_active} "
                             f"active channels, N2 = d_state / 2), got {tuple(state.shape)}; a state made for another "
                             "batch size or active set does not fit (make one with default_state(B))")
        if state.dtype != ref.dtype or state.device != ref.device:
            raise TypeError(f"{where}: the state is {state.dtype} on {state.device}, the layer {ref.dtype} on "
                            f"{ref.device}")

    def _mix(self, y: torch.Tensor) -> torch.Tensor:
        """The output mixing of y: (B, H, L).  When it is a linear map + GLU over channels (the reference's
        Conv1d(H, 2H, 1) or Linear(H, 2H), then GLU) it runs as one batched MKL GEMM (``baddbmm``): the same
        parameters and result on every machine, for training and the plain path (the inference fast path in
        :meth:`forward` picks the fastest route per machine instead: layers/_mixing.py).  Anything else (a
        replaced module, hooks) runs as is."""
        mixer = self._gemm_mixer()
        if mixer is None:
            return self._mix_module(y)
        W, b = _module_tensor(mixer, "weight"), _module_tensor(mixer, "bias")
        W = W.squeeze(-1) if W.dim() == 3 else W
        if b is None:
            z = torch.matmul(W, y)
        else:
            z = torch.baddbmm(b.view(1, -1, 1), W.expand(y.shape[0], -1, -1), y)  # (B, 2H, L)
        return torch.nn.functional.glu(z, dim=-2)

    def _mixing_weights(self, W: torch.Tensor, b: torch.Tensor, needs_grad: bool) -> _mixing.MixWeights:
        """The output mixing's weight W (2H, H[, 1]) and bias b (2H,) in the forms the mixing methods read
        (``folded`` [W | b] (2H, H + 1), ``separate()``); cached like _conv_args, unless autograd needs their
        gradient (then views of the parameters themselves) or while torch.export traces."""
        if needs_grad or torch.compiler.is_exporting():
            return _mixing.MixWeights.from_params(W, b)
        hit = self._folded_cache
        if hit is not None and hit[0].matches((W, b)):
            return hit[1]
        # [W | b] is itself the copy the snapshot keeps (made in one pass, before anything is derived from it):
        # no second copy of W, and the check reads the matrix the GEMM reads next.  The separate (W, b) that
        # some methods read is derived from it on first use, so this one check covers every form.
        with torch.inference_mode(False), torch.no_grad():
            Wb = torch.cat([W.detach().reshape(W.shape[0], -1), b.detach().unsqueeze(1)], dim=1)  # (2H, H + 1)
        H = Wb.shape[1] - 1
        weights = _mixing.MixWeights(folded=Wb)
        self._folded_cache = (TensorSnapshot((W, b), copies=(Wb[:, :H].view(W.shape), Wb[:, H])), weights)
        return weights

    def _ssm(self, u: torch.Tensor, activation: str = "none", append_ones: bool = False) -> torch.Tensor:
        """The SSM part: u (B, H, L) -> y (B, H, L), followed by GELU if ``activation="gelu"``; with
        ``append_ones`` y is (B, H + 1, L) with a last channel of ones."""
        if self.num_active == 0:
            y = nn.functional.gelu(u) if activation == "gelu" else u
            return torch.cat([y, y.new_ones(y.shape[0], 1, y.shape[2])], dim=1) if append_ones else y
        k_f, D, active, n_fft = self._conv_args(u.shape[-1], u.device)
        return sparse_fftconv(u, k_f, D, active, n_fft, activation, append_ones)

    def _check_input(self, u: Any) -> None:
        cls = type(self).__name__
        if not isinstance(u, torch.Tensor):
            raise TypeError(f"{cls}.forward(u): expected a torch.Tensor, got {type(u).__name__}")
        layout = "(B, H, L)" if self.transposed else "(B, L, H)"
        if u.dim() != 3:
            raise ValueError(f"{cls}.forward(u): expected a 3-D tensor {layout}, got shape {tuple(u.shape)}")
        if u.dtype not in SUPPORTED_DTYPES:
            raise TypeError(f"{cls}.forward(u): dtype {u.dtype} is not supported; use float32 or float64")
        dtype = self._ssm_tensor_list()[0].dtype
        if u.dtype != dtype:
            raise TypeError(f"{cls}.forward(u): u is {u.dtype} but the layer is {dtype}; convert one with .to()")
        H = u.shape[1] if self.transposed else u.shape[2]
        if H != self.h:
            raise ValueError(
                f"{cls}.forward(u): expected {layout} with H = d_model = {self.h}, got shape {tuple(u.shape)}"
                + ("" if self.transposed else "; the layer was built with transposed=False")
            )
        if u.shape[-1 if self.transposed else 1] < 1:
            raise ValueError(f"{cls}.forward(u): the sequence length must be >= 1, got shape {tuple(u.shape)}")

    def _pruning_repr(self) -> str:
        if self.is_pruned or self._compact:
            return f", active={self.num_active}/{self.h}" + (", compact" if self._compact else "")
        return ""


def check_ssm_init(func: str, dt_min: Any, dt_max: Any, lr: Any) -> tuple[float, float, Optional[float]]:
    """The step-size range and SSM learning rate every layer's constructor takes, checked by one rule:
    ``0 < dt_min <= dt_max`` (finite numbers) and ``lr`` None or a finite number >= 0."""
    dt_min = check_float(dt_min, "dt_min", func=func, minimum=0.0, min_open=True)
    dt_max = check_float(dt_max, "dt_max", func=func, minimum=0.0, min_open=True)
    if dt_min > dt_max:
        raise ValueError(f"{func}(dt_min, dt_max): expected dt_min <= dt_max, got dt_min={dt_min!r}, dt_max={dt_max!r}")
    if lr is not None:
        lr = check_float(lr, "lr", func=func, minimum=0.0)
    return dt_min, dt_max, lr


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


def register_ssm_tensor(module: nn.Module, name: str, tensor: torch.Tensor, lr: Optional[float],
                        optim: Optional[dict] = None) -> None:
    """Register an SSM tensor as the reference does: ``lr == 0.0`` freezes it as a buffer; otherwise a parameter
    tagged ``_optim`` for the optimizer (``optim``, default no weight decay, plus its own ``lr`` when given)."""
    if lr == 0.0:
        module.register_buffer(name, tensor)
    else:
        module.register_parameter(name, nn.Parameter(tensor))
        tags = {"weight_decay": 0.0} if optim is None else dict(optim)
        if lr is not None:
            tags["lr"] = lr
        getattr(module, name)._optim = tags
