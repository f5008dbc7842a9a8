"""The sequence classifier used for every task: encoder -> residual SSM blocks -> masked mean -> decoder.

The architecture is the one of the paper's code (S4oP, per-task S4 and S4D models): a token ``Embedding``
(``padding_idx=0``) or a ``Linear`` encoder, ``n_layers`` residual blocks ``[optional prenorm, SSM layer,
dropout, residual add, optional postnorm]``, mean pooling over the sequence and a ``Linear`` decoder.
Activations stay in the SSM layers' (B, H, L) layout from the encoder to the pooling, so the only
transpose is the encoder's output.

Differences from the paper's code, on purpose: the mean runs over valid positions only (token inputs:
positions whose token is not padding; continuous inputs: the first ``lengths[b]`` positions), so padding
does not dilute the pooled features. Padding must be on the right: the SSM convolution is causal, so valid
positions never see the padded ones after them.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from s4op_kernels import _ext
from s4op_kernels.layers._base import _has_hooks
from s4op_kernels.layers.s4 import S4Layer
from s4op_kernels.layers.s4d import S4DLayer
from s4op_kernels._validate import check_float, check_int

# name -> factory(d_model, *, d_state, dropout, lr, dt_min, dt_max) -> module with forward(u (B, H, L)) -> (y, state)
LayerFactory = Callable[..., nn.Module]
_LAYERS: dict[str, LayerFactory] = {}


def register_layer(name: str, factory: LayerFactory, *, overwrite: bool = False) -> None:
    """Make ``factory`` buildable as ``SequenceClassifier(layer=name)``.

    ``factory(d_model, *, d_state, dropout, lr, dt_min, dt_max)`` must return a module taking
    ``u: (B, H, L)`` and returning ``(y: (B, H, L), state)``; pruning-aware layers expose
    ``active_channels`` like :class:`~s4op_kernels.S4DLayer`.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_layer(name): expected a non-empty str, got {name!r}")
    if name in _LAYERS and not overwrite:
        raise ValueError(f"register_layer: layer {name!r} is already registered (pass overwrite=True to replace it)")
    _LAYERS[name] = factory


def available_layers() -> list[str]:
    """Names accepted by ``SequenceClassifier(layer=...)`` and ``Config.layer``."""
    return sorted(_LAYERS)


def _s4d(d_model: int, *, d_state: int, dropout: float, lr: Optional[float], dt_min: float, dt_max: float) -> nn.Module:
    return S4DLayer(d_model, d_state=d_state, dropout=dropout, transposed=True, dt_min=dt_min, dt_max=dt_max, lr=lr)


def _s4(d_model: int, *, d_state: int, dropout: float, lr: Optional[float], dt_min: float, dt_max: float) -> nn.Module:
    return S4Layer(d_model, d_state=d_state, dropout=dropout, transposed=True, dt_min=dt_min, dt_max=dt_max, lr=lr)


register_layer("s4d", _s4d)
register_layer("s4", _s4)

NORMS = ("layer", "batch", "none")


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channel axis of (B, H, L) activations: each position is normalized over its H
    channels.  Same parameters and state-dict keys as ``nn.LayerNorm(H)`` (``weight``, ``bias``: (H,)).

    The (B, L, H) views in and out cost nothing; torch's fused layer_norm on the transposed view measured
    several times faster than a ``var_mean`` over dim 1 (a strided reduction) on CPU.  This is the module
    path (training, grad mode); :class:`ResidualBlock` in inference computes the same norm without the
    transposes.
    """

    def __init__(self, d_model: int, eps: float = 1e-5):
        super().__init__(d_model, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, H, L)
        y = nn.functional.layer_norm(x.transpose(1, 2), self.normalized_shape, self.weight, self.bias, self.eps)
        return y.transpose(1, 2)


def _make_norm(norm: str, d_model: int) -> nn.Module:
    if norm == "layer":
        return ChannelLayerNorm(d_model)
    if norm == "batch":
        return nn.BatchNorm1d(d_model)  # takes (B, H, L) as is: statistics per channel over batch and length
    return nn.Identity()


class ResidualBlock(nn.Module):
    """``x + dropout(ssm(prenorm(x)))`` followed by an optional postnorm; x: (B, H, L).

    In inference (eval mode and grad mode off, e.g. under ``torch.inference_mode()``), when the norm is the
    stock module (:class:`ChannelLayerNorm`, ``nn.BatchNorm1d`` using its running statistics, or
    ``nn.Identity``), the dropout is the identity (``nn.Identity`` or an ``nn.Dropout`` in eval) and neither
    has hooks, the block computes the same math without the modules and without a transposing pass: the
    residual stream stays in (B, H, L) rows, the layout the SSM layers convolve, the residual add writes
    straight into the layout its reader reads, and the LayerNorm over channels runs as row-wise passes
    (see :func:`_channel_layer_norm`).  The SSM layer is always called as a module.  Anything else
    (training, grad mode on, hooks, other modules) runs the modules as they are (:meth:`forward_modules`).
    """

    def __init__(self, ssm: nn.Module, norm: nn.Module, dropout: float, prenorm: bool):
        super().__init__()
        self.prenorm = prenorm
        self.norm = norm
        self.ssm = ssm
        self.dropout = nn.Dropout(dropout) if dropout > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training and not torch.is_grad_enabled() and isinstance(x, torch.Tensor) and x.dim() == 3:
            kind = self._inference_norm(x)
            if kind is not None:
                return self._forward_inference(x, kind)
        return self.forward_modules(x)  # also what reports a wrong input, in the modules' own words

    def forward_modules(self, x: torch.Tensor) -> torch.Tensor:
        """The block run module by module (what training and grad mode always use)."""
        z = self.norm(x) if self.prenorm else x
        z, _ = self.ssm(z)
        x = x + self.dropout(z)
        return x if self.prenorm else self.norm(x)

    def forward_stream(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The block on the next ``x: (B, H, T)`` samples of a stream whose SSM layer is in ``state``: the same
        math as :meth:`forward_modules` at those positions (the norms and the residual act per position; the SSM
        layer continues its state: :meth:`~s4op_kernels.S4DLayer.step` for one sample, a chunked forward for
        more).  Returns (the block's output (B, H, T), the layer's next state)."""
        z = self.norm(x) if self.prenorm else x
        if z.shape[-1] == 1:
            y, state = self.ssm.step(z[..., 0], state)
            y = y.unsqueeze(-1)
        else:
            y, state = self.ssm(z, state=state)
        x = x + self.dropout(y)
        return (x if self.prenorm else self.norm(x)), state

    def _inference_norm(self, x: torch.Tensor) -> Optional[str]:
        """``"layer"``, ``"batch"`` or ``"none"`` when the inference path may replace the norm and dropout
        modules by the ops they run on x (B, H, L) (stock types, eval behaviour, no hooks, H channels and
        x's dtype); None otherwise, and then the modules run (and report a wrong input themselves)."""
        modules = self._modules  # direct: nn.Module.__getattr__ costs about half a microsecond a read
        norm, drop = modules["norm"], modules["dropout"]
        kind_of_drop = type(drop)
        if not (kind_of_drop is nn.Identity or (kind_of_drop is nn.Dropout and not drop.training)):
            return None
        if _has_hooks(norm, drop):
            return None
        kind_of_norm = type(norm)
        H = x.shape[1]
        for t in (*norm._parameters.values(), *norm._buffers.values()):
            if t is not None and t.is_floating_point() and t.dtype != x.dtype:
                return None
        if kind_of_norm is ChannelLayerNorm:
            return "layer" if tuple(norm.normalized_shape) == (H,) else None
        if kind_of_norm is nn.Identity:
            return "none"
        if (kind_of_norm is nn.BatchNorm1d and not norm.training and norm.track_running_stats and norm.num_features == H
                and norm._buffers.get("running_mean") is not None and norm._buffers.get("running_var") is not None):
            return "batch"
        return None

    def _forward_inference(self, x: torch.Tensor, kind: str) -> torch.Tensor:
        ssm, norm = self._modules["ssm"], self._modules["norm"]
        if self.prenorm:
            z, _ = ssm(_norm_op(norm, kind, x))
            if not _same_kind(z, x):
                return x + z  # a layer with its own output convention: the modules' arithmetic, broadcasting
            return torch.add(x, z, out=x.new_empty(x.shape))  # (B, H, L) rows, as the next SSM layer reads
        z, _ = ssm(x)
        if not _same_kind(z, x):
            return norm(x + z)
        if kind == "layer":
            out = _core_layer_norm(norm, x, z)  # float32 on the compiled core: the add and the norm in one sweep
            if out is not None:
                return out
            # The sum goes straight into the (H, B, L) layout the statistics pass reads (rows of L: no
            # transposing pass; a plain view of (B, H, L) when B = 1).
            B, H, L = x.shape
            rows = x.new_empty(H, B, L)
            torch.add(x, z, out=rows.transpose(0, 1))
            return _channel_layer_norm(norm, rows.view(H, B * L), B, L)
        r = torch.add(x, z, out=x.new_empty(x.shape))  # (B, H, L) rows: what BatchNorm and the next SSM read
        return _norm_op(norm, kind, r)


def _same_kind(z: torch.Tensor, x: torch.Tensor) -> bool:
    return isinstance(z, torch.Tensor) and z.shape == x.shape and z.dtype == x.dtype and z.device == x.device


def _core_layer_norm(norm: nn.LayerNorm, x: torch.Tensor, z: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """LayerNorm ``norm`` over the channels of ``x + z`` (``z`` None: of x), x and z (B, H, L), by the compiled
    core's ``residual_layer_norm``: per tile of positions, the sum is written while the means accumulate, then
    the centered variance and the normalization run on the tile while it is in cache, split over torch's
    threads.  None (the caller runs the torch ops) unless x, z and the norm's parameters are contiguous float32
    CPU tensors and the extension is available."""
    if x.dtype != torch.float32 or not x.is_cpu or not x.is_contiguous() or not _ext.extension_available():
        return None
    if torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing():
        return None  # a graph holds torch ops, not a call of the extension
    if z is not None and not (z.dtype == torch.float32 and z.is_cpu and z.is_contiguous()):
        return None
    p = norm._parameters
    w, b = p.get("weight"), p.get("bias")
    for t in (w, b):
        if t is not None and not (t.dtype == torch.float32 and t.is_cpu and t.is_contiguous()):
            return None
    out = x.new_empty(x.shape)
    _ext.C().residual_layer_norm(x.numpy(), None if z is None else z.numpy(), out.numpy(),
                                 None if w is None else w.detach().numpy(), None if b is None else b.detach().numpy(),
                                 float(norm.eps), torch.get_num_threads())
    return out


def _channel_layer_norm(norm: nn.LayerNorm, rows: torch.Tensor, B: int, L: int) -> torch.Tensor:
    """LayerNorm ``norm`` over the H channels of ``rows`` (H, B * L) (channel h of position (b, l) at
    [h, b * L + l]), returned as contiguous (B, H, L).

    Standardizing each column of an (H, B*L) matrix over its H entries is what BatchNorm in training mode
    does to a 2-D (N, C) input, with the same biased variance and eps as LayerNorm; torch's CPU batch_norm
    computes it with row-wise passes over contiguous memory.  The LayerNorm's own affine (per channel h)
    follows as a mul and an add_: one addcmul with both operands broadcast over L runs torch's scalar loop,
    5x slower at H=128, L=4096.  torch.layer_norm would need the channels innermost: a transposing pass
    before it and another for the next SSM layer, each 10-35x a contiguous pass over the same bytes at
    L = 4096."""
    H = rows.shape[0]
    y = torch.batch_norm(rows, None, None, None, None, True, 0.0, norm.eps, False)  # (H, B*L), a new tensor
    p = norm._parameters
    w, b = p.get("weight"), p.get("bias")
    if B == 1:
        out = y.view(1, H, L)
        if w is not None:
            out.mul_(w.view(H, 1))
    else:
        y = y.view(H, B, L).transpose(0, 1)
        out = y.contiguous() if w is None else torch.mul(y, w.view(H, 1), out=rows.new_empty(B, H, L))
    return out if b is None else out.add_(b.view(H, 1))


def _norm_op(norm: nn.Module, kind: str, x: torch.Tensor) -> torch.Tensor:
    """What the stock norm module computes in eval on x (B, H, L), without the module call; (B, H, L) rows."""
    if kind == "layer":
        out = _core_layer_norm(norm, x, None)
        if out is not None:
            return out
        B, H, L = x.shape
        return _channel_layer_norm(norm, x.transpose(0, 1).reshape(H, B * L), B, L)  # a view when B = 1
    if kind == "batch":
        p, b = norm._parameters, norm._buffers
        return torch.batch_norm(x, p.get("weight"), p.get("bias"), b["running_mean"], b["running_var"], False, 0.0,
                                norm.eps, torch.backends.cudnn.enabled)
    return x


class SequenceClassifier(nn.Module):
    """Encoder -> ``n_layers`` residual SSM blocks -> masked mean over L -> Linear decoder.

    Args:
        num_classes: outputs of the decoder (one logit per class, or per label for multi-label tasks,
            whose loss is BCE-with-logits on the same outputs).
        vocab_size: token task: inputs ``x: (B, L)`` int64 with 0 = padding, encoded by
            ``Embedding(vocab_size, d_model, padding_idx=0)``.
        in_channels: continuous task: inputs ``x: (B, L, C)`` float, encoded by ``Linear(C, d_model)``.
            Exactly one of ``vocab_size`` and ``in_channels`` is given.
        d_model: channels H; n_layers: residual blocks; d_state: SSM state size N.
        norm: ``"layer"`` (LayerNorm over H), ``"batch"`` (BatchNorm1d over H) or ``"none"``.
        prenorm: normalize each block's input (True) or its output after the residual add (False).
        dropout: dropout inside each SSM layer and after it (as the paper's code).
        layer: SSM layer kind, one of :func:`available_layers`: ``"s4d"`` (:class:`~s4op_kernels.S4DLayer`)
            or ``"s4"`` (:class:`~s4op_kernels.S4Layer`, DPLR).
        ssm_lr: learning rate tagged on the SSM tensors (``_optim``); None: the optimizer's default.
        dt_min, dt_max: initial step-size range of the SSM layers.

    ``forward(x, lengths=None)`` returns logits ``(B, num_classes)``.  In inference (eval mode, grad mode
    off) the encoder writes contiguous (B, H, L) rows and the blocks keep them (:class:`ResidualBlock`).
    """

    def __init__(
        self,
        num_classes: int,
        *,
        vocab_size: Optional[int] = None,
        in_channels: Optional[int] = None,
        d_model: int = 128,
        n_layers: int = 4,
        d_state: int = 64,
        norm: str = "layer",
        prenorm: bool = False,
        dropout: float = 0.0,
        layer: str = "s4d",
        ssm_lr: Optional[float] = None,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
    ):
        super().__init__()
        num_classes, d_model, n_layers = (check_int(v, name, func="SequenceClassifier", minimum=1) for name, v in
                                          (("num_classes", num_classes), ("d_model", d_model), ("n_layers", n_layers)))
        if (vocab_size is None) == (in_channels is None):
            raise ValueError("SequenceClassifier: give exactly one of vocab_size (token inputs) or in_channels "
                             f"(continuous inputs), got vocab_size={vocab_size!r}, in_channels={in_channels!r}")
        if vocab_size is not None:  # index 0 is padding: at least one more token
            vocab_size = check_int(vocab_size, "vocab_size", func="SequenceClassifier", minimum=2)
        if in_channels is not None:
            in_channels = check_int(in_channels, "in_channels", func="SequenceClassifier", minimum=1)
        if norm not in NORMS:
            raise ValueError(f"SequenceClassifier: norm must be one of {NORMS}, got {norm!r}")
        if layer not in _LAYERS:
            raise ValueError(f"SequenceClassifier: layer must be one of {available_layers()}, got {layer!r}")
        dropout = check_float(dropout, "dropout", func="SequenceClassifier", minimum=0.0, maximum=1.0, max_open=True)

        self.num_classes, self.d_model, self.n_layers = num_classes, d_model, n_layers
        self.vocab_size, self.in_channels = vocab_size, in_channels
        if vocab_size is not None:
            self.encoder: nn.Module = nn.Embedding(vocab_size, d_model, padding_idx=0)
        else:
            self.encoder = nn.Linear(in_channels, d_model)
        factory = _LAYERS[layer]
        self.blocks = nn.ModuleList(
            ResidualBlock(
                factory(d_model, d_state=d_state, dropout=float(dropout), lr=ssm_lr, dt_min=dt_min, dt_max=dt_max),
                _make_norm(norm, d_model),
                float(dropout),
                bool(prenorm),
            )
            for _ in range(n_layers)
        )
        self.decoder = nn.Linear(d_model, num_classes)

    def stream(self, batch_size: int = 1) -> "ClassifierStream":
        """A :class:`ClassifierStream` of ``batch_size`` sequences fed sample by sample (or chunk by chunk): after
        any number of samples its :meth:`~ClassifierStream.logits` equal this model's forward on the samples so
        far.  The model must be in eval mode (BatchNorm's batch statistics and dropout have no streaming form)."""
        return ClassifierStream(self, batch_size)

    def ssm_layers(self) -> list[nn.Module]:
        """The SSM layer of each block, first to last (the modules the pruner prunes)."""
        return [block.ssm for block in self.blocks]

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: (B, L) int64 tokens (0 = padding) or (B, L, C) float; lengths: optional (B,) valid lengths
        of continuous inputs (positions >= lengths[b] are padding).  Returns logits (B, num_classes)."""
        mask = self._valid_mask(x, lengths)  # (B, L) bool, or None when every position is valid
        if self.vocab_size is not None and x.dtype not in (torch.int64, torch.int32):
            x = x.long()  # tokens stored narrow (e.g. int16); Embedding takes int64/int32
        if not self.training and not torch.is_grad_enabled():
            h = self._encode_rows(x)
        else:
            h = self.encoder(x).transpose(1, 2)  # (B, L, H) -> (B, H, L): the SSM layers' layout
        for block in self.blocks:
            h = block(h)
        if mask is None:
            pooled = h.mean(dim=-1)
        else:
            m = mask.unsqueeze(1).to(h.dtype)  # (B, 1, L)
            # An all-padding sequence pools to zeros rather than dividing by zero.
            pooled = (h * m).sum(dim=-1) / m.sum(dim=-1).clamp_min(1.0)
        return self.decoder(pooled)  # (B, num_classes)

    def _encode_rows(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's output as contiguous (B, H, L) rows (inference): what the first SSM layer reads, and
        what the blocks' inference path keeps, so no block meets a transposed view.  The stock Linear encoder
        computes ``W x^T + b`` straight in that layout (one batched GEMM, the input read transposed by the
        GEMM itself); any other encoder's (B, L, H) output is transposed once: for a few sequences one 2-D
        copy each (torch's copy_ takes its blocked transpose only for 2-D tensors: about 4x faster than the
        3-D copy at H=128, L=4096), for more one 3-D copy (fewer calls)."""
        enc = self._modules["encoder"]
        if type(enc) is nn.Linear and not _has_hooks(enc) and x.dtype == enc.weight.dtype:
            W, b = enc._parameters["weight"], enc._parameters["bias"]
            xt = x.transpose(1, 2)  # (B, C, L)
            if b is None:
                return torch.matmul(W, xt)
            return torch.baddbmm(b.view(1, -1, 1), W.expand(x.shape[0], -1, -1), xt)  # (B, H, L)
        h = enc(x)  # (B, L, H)
        if h.dim() != 3 or torch.compiler.is_exporting() or h.shape[0] > 8:
            return h.transpose(1, 2).contiguous()
        out = h.new_empty(h.shape[0], h.shape[2], h.shape[1])
        for b in range(h.shape[0]):
            out[b].copy_(h[b].t())
        return out

    def _valid_mask(self, x: torch.Tensor, lengths: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"SequenceClassifier.forward(x): expected a torch.Tensor, got {type(x).__name__}")
        if self.vocab_size is not None:
            if x.dim() != 2 or x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
                raise ValueError(
                    f"SequenceClassifier.forward(x): token model expects (B, L) integer token indices, "
                    f"got shape {tuple(x.shape)} {x.dtype}")
            # Token inputs mark their own padding; lengths, if given, must agree with it and add nothing.
            return x != 0
        if x.dim() != 3 or x.shape[2] != self.in_channels or not x.is_floating_point():
            raise ValueError(
                f"SequenceClassifier.forward(x): continuous model expects (B, L, {self.in_channels}) float, "
                f"got shape {tuple(x.shape)} {x.dtype}")
        if x.shape[1] < 1:
            raise ValueError(f"SequenceClassifier.forward(x): sequence length must be >= 1, got shape {tuple(x.shape)}")
        if lengths is None:
            return None
        if not isinstance(lengths, torch.Tensor) or lengths.shape != (x.shape[0],) or lengths.is_floating_point():
            raise ValueError(
                f"SequenceClassifier.forward(lengths): expected an integer tensor of shape ({x.shape[0]},), got "
                f"{tuple(lengths.shape) if isinstance(lengths, torch.Tensor) else type(lengths).__name__}")
        positions = torch.arange(x.shape[1], device=x.device)
        return positions.unsqueeze(0) < lengths.to(x.device).unsqueeze(1)

    def extra_repr(self) -> str:
        kind = f"vocab_size={self.vocab_size}" if self.vocab_size is not None else f"in_channels={self.in_channels}"
        return f"{kind}, d_model={self.d_model}, n_layers={self.n_layers}, num_classes={self.num_classes}"


class ClassifierStream:
    """A :class:`SequenceClassifier` fed a live signal: every layer's recurrent state and the running pooled sum.

    >>> stream = model.eval().stream(batch_size=1)
    >>> for chunk in chunks:                      # (B, T, C) floats or (B, T) token ids, any T >= 1
    ...     logits = stream.push(chunk).logits()  # equal to model(all samples so far)

    Each :meth:`push` runs the encoder, every residual block (norms and residual per position, the SSM layer's
    :meth:`~s4op_kernels.S4DLayer.step` for one sample or its chunked forward for more) and adds the last block's
    outputs to the running sum; :meth:`logits` decodes the running mean (token inputs: over the non-padding
    positions, as the forward's masked mean).  Work per sample: O(active channels x d_state + H^2) per layer, no
    matter how long the stream is.

    Streamable: eval mode; norms ``ChannelLayerNorm`` (LayerNorm over channels), ``BatchNorm1d`` with running
    statistics, or none; SSM layers with ``default_state`` / ``step`` (S4DLayer, S4Layer).  Not streamable, and
    refused with a ValueError / RuntimeError: training mode (BatchNorm's batch statistics are not causal, dropout
    has no per-sample form), other norm modules, layers without a recurrent form, and continuous inputs'
    ``lengths`` (stop pushing instead).  An S4Layer with ``l_max`` streams its untruncated system, equal to the
    forward on sequences up to l_max samples.
    """

    def __init__(self, model: SequenceClassifier, batch_size: int = 1):
        if not isinstance(model, SequenceClassifier):
            raise TypeError(f"ClassifierStream(model): expected a SequenceClassifier, got {type(model).__name__}")
        self.model = model
        self.batch_size = check_int(batch_size, "batch_size", func="SequenceClassifier.stream", minimum=1)
        self._check_streamable()
        self.reset()

    def _check_streamable(self) -> None:
        model = self.model
        if model.training:
            raise RuntimeError("SequenceClassifier.stream: the model is in training mode (BatchNorm's batch "
                               "statistics and dropout have no streaming form); call model.eval() first")
        for i, block in enumerate(model.blocks):
            norm = block.norm
            ok = (type(norm) in (ChannelLayerNorm, nn.Identity)
                  or (type(norm) is nn.BatchNorm1d and norm.track_running_stats
                      and norm.running_mean is not None and norm.running_var is not None))
            if not ok:
                raise ValueError(f"SequenceClassifier.stream: block {i}'s norm {type(norm).__name__} is not known to "
                                 "act on each position alone (streamable: ChannelLayerNorm, BatchNorm1d with running "
                                 "statistics, nn.Identity)")
            if not (callable(getattr(block.ssm, "step", None)) and callable(getattr(block.ssm, "default_state", None))):
                raise ValueError(f"SequenceClassifier.stream: block {i}'s layer {type(block.ssm).__name__} has no "
                                 "recurrent form (default_state / step)")

    def reset(self) -> "ClassifierStream":
        """Start over: zero states, nothing pooled."""
        model, B = self.model, self.batch_size
        self.states = [layer.default_state(B) for layer in model.ssm_layers()]
        ref = model.decoder.weight
        self._sum = torch.zeros(B, model.d_model, dtype=torch.float64, device=ref.device)
        self._count = torch.zeros(B, dtype=torch.float64, device=ref.device)
        self.samples = 0
        return self

    def push(self, x: torch.Tensor) -> "ClassifierStream":
        """Feed the next samples: ``x: (B, T, C)`` floats (continuous model) or ``(B, T)`` token ids (0 = padding,
        left out of the mean as in forward), T >= 1.  Returns self."""
        model = self.model
        if model.training:
            raise RuntimeError("ClassifierStream.push: the model was put in training mode; call model.eval()")
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"ClassifierStream.push(x): expected a torch.Tensor, got {type(x).__name__}")
        B = self.batch_size
        if model.vocab_size is not None:
            if x.dim() != 2 or x.shape[0] != B or x.shape[1] < 1 or x.is_floating_point() or x.is_complex() \
                    or x.dtype == torch.bool:
                raise ValueError(f"ClassifierStream.push(x): a token model takes (B={B}, T >= 1) integer ids, got "
                                 f"shape {tuple(x.shape)} {x.dtype}")
            valid = (x != 0).to(torch.float64)  # (B, T)
            x = x.long()
        else:
            if x.dim() != 3 or x.shape[0] != B or x.shape[1] < 1 or x.shape[2] != model.in_channels \
                    or not x.is_floating_point():
                raise ValueError(f"ClassifierStream.push(x): a continuous model takes (B={B}, T >= 1, "
                                 f"C={model.in_channels}) floats, got shape {tuple(x.shape)} {x.dtype}")
            valid = None
        with torch.no_grad():
            h = model.encoder(x).transpose(1, 2)  # (B, H, T)
            states = list(self.states)
            for i, block in enumerate(model.blocks):
                h, states[i] = block.forward_stream(h, states[i])
            if valid is None:
                self._sum += h.sum(dim=-1, dtype=torch.float64)
                self._count += h.shape[-1]
            else:
                self._sum += (h.double() * valid.unsqueeze(1)).sum(dim=-1)
                self._count += valid.sum(dim=-1)
        self.states = states
        self.samples += int(x.shape[1])
        return self

    def logits(self) -> torch.Tensor:
        """The logits of the samples pushed so far, (B, num_classes): the model's forward on them (before any
        sample, or with only padding, the decoder of zero features)."""
        model = self.model
        with torch.no_grad():
            pooled = (self._sum / self._count.clamp_min(1.0).unsqueeze(1)).to(model.decoder.weight.dtype)
            return model.decoder(pooled)

    def __repr__(self) -> str:
        return f"ClassifierStream(batch_size={self.batch_size}, samples={self.samples})"
