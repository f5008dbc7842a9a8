"""ONNX export of a (pruned) classifier: a graph that ONNX Runtime (or any ONNX runtime) runs, in which pruned
channels cost no compute.

:func:`export_onnx` writes the ``.onnx`` file of a ``SequenceClassifier`` or of a checkpoint; :func:`onnx_model`
builds the ``onnx.ModelProto`` without writing it.  The model is read by the same walk as the ``.s4m`` export
(:func:`s4op_kernels.export.model_entries`): the same modules are supported (encoder Linear or Embedding,
LayerNorm / eval-mode BatchNorm (folded into a per-channel scale and shift in float64) / no norm, S4D and S4
layers with the reference's mixing), the model is not changed, and only the active channels' SSM parameters
are read.

The graph (float32; ``B`` the batch, dynamic unless ``batch`` is given; ``L`` the input length, fixed at
export: ONNX Runtime refuses another length; activations ``(B, L, H)``):

- input ``x``: ``(B, L, C)`` float32 (continuous tasks) or ``(B, L)`` int64 token ids (0 = padding, masked out
  of the mean as in the model); output ``logits``: ``(B, num_classes)``;
- the encoder (``MatMul`` + ``Add``, or a ``Gather`` of embedding rows);
- per block: the prenorm, then the SSM layer: one ``Gather`` puts the ``A`` active channels first (the pruned
  ones after them), a ``Split`` takes the active ones, their causal convolution with the layer's kernels runs
  on those ``A`` channels only, ``Concat`` puts the untouched pruned channels back after them, GELU (exact)
  acts on all ``H``; the mixing ``MatMul`` reads the channels in that order (its weight's rows are permuted at
  export, so no gather back is needed), then the bias and GLU; the residual ``Add`` and the postnorm;
- the mean over L (valid positions only for token inputs) and the decoder (``Gemm``).

The convolution kernels are computed at export, in float64 from the layer's parameters (S4D: the
zero-order-hold kernel; S4: the DPLR kernel of C-tilde set up for the export length, truncated to the
layer's taps ``T``), with ``D`` folded into tap 0 (``y = K * u + D u`` is the convolution with ``K[0] + D``),
and stored as initializers ``(A, T)``: nothing is generated at run time.  Two forms of the convolution,
``conv=``:

- ``"direct"``: block-Toeplitz GEMMs (:func:`_direct`): the input cut into blocks of ``c`` samples
  (:func:`block_size`: 64, or 128 above L = 1024), each output block one row of a batched ``MatMul`` over
  the active channels, the Toeplitz weights a ``Gather`` of the kernels that ONNX Runtime folds to a
  constant at load (``A L c`` floats in memory, not in the file): ``A L^2`` multiply-adds at GEMM speed;
- ``"fft"``: ``DFT`` of the active channels at a power-of-two length ``n >= L + T - 1``, the product with
  the kernels' spectra (initializers ``(A, n, 2)``), the inverse ``DFT`` and the first L outputs.
- ``"auto"`` (the default): ``"direct"`` up to :data:`AUTO_DIRECT_MAX_LEN`, ``"fft"`` above.

Measured with ONNX Runtime 1.32 on one CPU thread (the main job's 4 x 32 model, batch 1): ONNX Runtime's
DFT is a plain radix-2 loop, so ``"direct"`` was as fast or faster up to L = 4096 at 0 % pruning (and
3-4x faster than a depthwise ``Conv`` with L taps, the first form tried); above L = 2048 ``"auto"`` takes
``"fft"`` because the direct form's folded weights grow as ``A L c`` (64 MB a layer at A = 128, L = 4096)
while the spectra grow as ``A n``.  ``benchmarks/bench_onnx.py`` times the forms against each other.

Either way every per-layer size that grows with the model's work (the kernels or spectra, the ``MatMul`` or
``DFT`` batch, the ``Split``) is proportional to that layer's active count ``A``, and a layer with no active
channel has no convolution at all (only GELU and the mixing, as in the model).

Needs the ``onnx`` package (``pip install "s4op-kernels[onnx]"``, which also installs ``onnxruntime``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from s4op_kernels._atomic import atomic_write_bytes
from s4op_kernels._validate import check_int

PathLike = Union[str, os.PathLike]

MIN_OPSET = 17  # LayerNormalization and DFT are in the default domain from opset 17
DEFAULT_OPSET = 20  # Gelu is an operator from opset 20 (below it, the graph spells it with Erf)
CONV_METHODS = ("auto", "direct", "fft")
# "auto" takes the direct convolution for inputs up to this length and the FFT above it (module docstring).
AUTO_DIRECT_MAX_LEN = 2048
INPUT_NAME, OUTPUT_NAME = "x", "logits"
_PROTOBUF_LIMIT = 2**31 - 1  # one ModelProto (no external data) must serialize below 2 GB


def _onnx():
    try:
        import onnx
    except ImportError as err:
        raise ImportError(f"ONNX export needs the onnx package ({err}); pip install \"s4op-kernels[onnx]\" "
                          "(onnx and onnxruntime)") from None
    return onnx


# ---------------------------------------------------------------------------------------------- the kernels
def _layer_kernels(e: dict[str, np.ndarray], p: str, L: int) -> np.ndarray:
    """The active channels' causal convolution kernels (A, T), float64, from a layer's entries (prefix ``p``),
    with D added to tap 0.  S4D: T = L; S4: T = the layer's taps for inputs of length L."""
    from s4op_kernels.ops import dplr_spectrum_ref, s4d_kernel_ref

    t = {name: torch.from_numpy(np.asarray(v, dtype=np.float64)) for name, v in e.items() if name.startswith(p)}
    if int(e[p + "kind"]) == 0:  # S4D
        K = s4d_kernel_ref(t[p + "C"], t[p + "log_dt"], t[p + "log_A_real"], t[p + "A_imag"], L)
    else:  # S4: the length-l_kernel kernel of C-tilde, truncated to the taps
        M, taps = int(e[p + "l_kernel"]), int(e[p + "taps"])
        kf = dplr_spectrum_ref(t[p + "log_dt"], t[p + "A_real"], t[p + "A_imag"], t[p + "B"], t[p + "P"],
                               t[p + "C"], M)
        K = torch.fft.irfft(kf, n=M)[:, :taps]
    K = K.numpy().copy()
    K[:, 0] += np.asarray(e[p + "D"], dtype=np.float64)
    return K


def fft_length(L: int, taps: int) -> int:
    """The DFT length of the ``"fft"`` form: the power of two >= L + taps - 1 (a linear, not circular,
    convolution; ONNX Runtime runs power-of-two DFTs as radix-2 FFTs)."""
    return 1 << max(0, (L + taps - 2).bit_length())


def conv_method(conv: str, L: int) -> str:
    """The convolution form ``conv`` (one of :data:`CONV_METHODS`) stands for at input length L."""
    if conv not in CONV_METHODS:
        raise ValueError(f"export_onnx(conv): expected one of {', '.join(CONV_METHODS)}, got {conv!r}")
    if conv == "auto":
        return "direct" if L <= AUTO_DIRECT_MAX_LEN else "fft"
    return conv


# ---------------------------------------------------------------------------------------------- the graph
class _Graph:
    """Nodes and initializers of one ONNX graph; each node's single output is named after the node."""

    def __init__(self, opset: int):
        self.opset = opset
        self.nodes: list = []
        self.inits: list = []
        self._used: set[str] = set()

    def _name(self, name: str) -> str:
        base, k = name, 1
        while name in self._used:
            k += 1
            name = f"{base}_{k}"
        self._used.add(name)
        return name

    def const(self, name: str, value, dtype=np.float32) -> str:
        from onnx import numpy_helper

        name = self._name(name)
        arr = np.array(value, dtype=dtype)  # a C-contiguous copy; 0-d stays 0-d (np.ascontiguousarray: 1-d)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def shared(self, name: str, value, dtype=np.int64) -> str:
        """An initializer that several nodes read (index arrays, shapes), added once under ``name``."""
        if name not in self._used:
            self.const(name, value, dtype)
        return name

    def op(self, op_type: str, inputs: list[str], name: str, outputs: int = 1, **attrs):
        from onnx import helper

        name = self._name(name)
        outs = [name] if outputs == 1 else [self._name(f"{name}.{k}") for k in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=name, **attrs))
        return outs[0] if outputs == 1 else outs

    # ops whose signature changed between the opsets we write
    def reduce(self, op_type: str, x: str, axis: int, name: str) -> str:
        if op_type == "ReduceSum" or self.opset >= 18:  # axes became an input (ReduceSum: opset 13, others: 18)
            return self.op(op_type, [x, self.const(name + ".axes", [axis], np.int64)], name, keepdims=0)
        return self.op(op_type, [x], name, axes=[axis], keepdims=0)

    def dft(self, x: str, n: str, axis: int, name: str, inverse: int = 0) -> str:
        if self.opset >= 20:  # axis became an input
            return self.op("DFT", [x, n, self.shared(f"dft.axis{axis}", np.int64(axis))], name, inverse=inverse)
        return self.op("DFT", [x, n], name, axis=axis, inverse=inverse)

    def gelu(self, x: str, name: str) -> str:
        """Exact (erf) GELU."""
        if self.opset >= 20:
            return self.op("Gelu", [x], name)
        half = self.op("Mul", [x, self.const(name + ".half", np.float32(0.5))], name + ".half_x")
        erf = self.op("Erf", [self.op("Mul", [x, self.const(name + ".rsqrt2", np.float32(2 ** -0.5))], name + ".scaled")],
                      name + ".erf")
        return self.op("Mul", [half, self.op("Add", [erf, self.const(name + ".one", np.float32(1.0))], name + ".1p")],
                       name)


def _norm(g: _Graph, e: dict, p: str, z: str) -> str:
    kind = int(e[p + "norm"])
    if kind == 0:
        return z
    w, b = g.const(p + "norm.weight", e[p + "norm.weight"]), g.const(p + "norm.bias", e[p + "norm.bias"])
    if kind == 1:
        return g.op("LayerNormalization", [z, w, b], p + "norm", axis=-1, epsilon=float(e[p + "norm.eps"]))
    return g.op("Add", [g.op("Mul", [z, w], p + "norm.scale"), b], p + "norm")  # eval BatchNorm, folded


def block_size(L: int) -> int:
    """The block of the ``"direct"`` form: outputs are computed ``c`` positions at a time."""
    return min(1 << max(0, (L - 1).bit_length()), 64 if L <= 1024 else 128)


def _ssm_conv(g: _Graph, K: np.ndarray, za: str, p: str, L: int, method: str) -> str:
    """The causal convolution of za (B, L, A) with the kernels K (A, T) (D in tap 0) -> (B, L, A)."""
    A, T = K.shape
    zt = g.op("Transpose", [za], p + "conv.in", perm=[0, 2, 1])  # (B, A, L): each channel's samples contiguous
    if method == "direct":
        y = _direct(g, K, zt, p, L)
    else:
        y = _fft(g, K, zt, p, L)
    return g.op("Transpose", [y], p + "conv.out", perm=[0, 2, 1])


def _direct(g: _Graph, K: np.ndarray, zt: str, p: str, L: int) -> str:
    """Block-Toeplitz GEMMs.  With c = block_size(L), nb = ceil(L / c) blocks and Lp = nb c, output block j of
    channel a is ``X[a, j] @ W[a]``: X[a, j] (Lp,) holds input blocks j, j-1, ..., 0, then zero blocks (one
    Gather of whole blocks), and W[a] (Lp, c) the kernel's Toeplitz blocks, ``W[a][d c + q, r] = K[a, d c + r -
    q]`` (0 outside the taps; a Gather of the kernels (A, T) that the runtime folds to a constant at load).  The
    index matrices depend only on (L, T, c) and are shared by the layers.  A L Lp multiply-adds in batched GEMMs
    (half of them on the zero blocks: the price of a dense GEMM)."""
    A, T = K.shape
    c = block_size(L)
    nb = -(-L // c)
    Lp = nb * c
    m = np.arange(Lp)
    lag = (m[:, None] // c) * c + np.arange(c)[None, :] - m[:, None] % c  # (Lp, c)
    w_idx = np.where((lag >= 0) & (lag < T), lag + 1, 0)  # into the kernels with a zero tap in front
    kernels = g.const(p + "conv.kernels", np.concatenate([np.zeros((A, 1)), K], axis=1))  # (A, T + 1)
    W = g.op("Gather", [kernels, g.shared(f"conv.w_index.L{L}.T{T}.c{c}", w_idx)], p + "conv.weight", axis=1)
    # the input as blocks (B, A, nb + 1, c), block 0 zeros; X[:, :, j, d] = block j - d + 1 (0 where d > j)
    j, d = np.arange(nb)[:, None], np.arange(nb)[None, :]
    b_idx = np.where(d <= j, j - d + 1, 0)
    u0 = g.op("Pad", [zt, g.shared(f"conv.pads.L{L}.c{c}", [0, 0, c, 0, 0, Lp - L])], p + "conv.padded")
    u0 = g.op("Reshape", [u0, g.shared(f"conv.block_shape.A{A}.c{c}.nb{nb}", [0, A, nb + 1, c])], p + "conv.in_blocks")
    X = g.op("Gather", [u0, g.shared(f"conv.block_index.nb{nb}", b_idx)], p + "conv.blocks", axis=2)  # (B, A, nb, nb, c)
    X = g.op("Reshape", [X, g.shared(f"conv.rows.A{A}.nb{nb}.Lp{Lp}", [0, A, nb, Lp])], p + "conv.rows")
    y = g.op("MatMul", [X, W], p + "conv.matmul")  # (B, A, nb, c)
    y = g.op("Reshape", [y, g.shared(f"conv.shape.A{A}.Lp{Lp}", [0, A, Lp])], p + "conv.flat")  # (B, A, Lp)
    if Lp != L:
        y = g.op("Slice", [y, g.shared("conv.zero", [0]), g.shared(f"conv.L{L}", [L]), g.shared("conv.axis2", [2])],
                 p + "conv.first_L")
    return y


def _fft(g: _Graph, K: np.ndarray, zt: str, p: str, L: int) -> str:
    """DFT at the power-of-two length n >= L + T - 1, the product with the kernels' spectra, the inverse DFT,
    the first L samples."""
    A, T = K.shape
    n = fft_length(L, T)
    Kf = np.fft.fft(K, n=n, axis=1)  # (A, n) complex128
    # the complex product X Kf as X [Re Kf, Re Kf] + swap(X) [-Im Kf, Im Kf], with swap(X) = [Im X, Re X]
    k_re = g.const(p + "fft.kernel_re", np.stack([Kf.real, Kf.real], axis=-1))  # (A, n, 2)
    k_im = g.const(p + "fft.kernel_im", np.stack([-Kf.imag, Kf.imag], axis=-1))
    n_const = g.shared(f"fft.n{n}", np.int64(n))
    x = g.op("Unsqueeze", [zt, g.shared("fft.axis3", [3])], p + "fft.real")  # (B, A, L, 1)
    X = g.dft(x, n_const, 2, p + "fft.forward")  # (B, A, n, 2)
    swapped = g.op("Gather", [X, g.shared("fft.swap", [1, 0])], p + "fft.swapped", axis=3)
    Y = g.op("Add", [g.op("Mul", [X, k_re], p + "fft.mul_re"), g.op("Mul", [swapped, k_im], p + "fft.mul_im")],
             p + "fft.product")
    y = g.dft(Y, n_const, 2, p + "fft.inverse", inverse=1)  # (B, A, n, 2), the imaginary part ~0
    y = g.op("Slice", [y, g.shared("fft.starts", [0, 0]), g.shared(f"fft.ends.L{L}", [L, 1]),
                       g.shared("fft.axes23", [2, 3])], p + "fft.first_L")  # (B, A, L, 1)
    return g.op("Squeeze", [y, g.shared("fft.axis3", [3])], p + "fft.out")


def _layer(g: _Graph, e: dict, i: int, z: str, H: int, L: int, method: str) -> str:
    """Layer i's SSM part, GELU and mixing on z (B, L, H) -> (B, L, H)."""
    p = f"layers.{i}."
    active = np.asarray(e[p + "active"], dtype=np.int64)
    A = len(active)
    order = np.concatenate([active, np.setdiff1d(np.arange(H), active)]).astype(np.int64)
    if A == 0:
        y = z
    else:
        zp = z if A == H else g.op("Gather", [z, g.const(p + "order", order, np.int64)], p + "gather", axis=2)
        if A == H:
            za, zr = zp, None
        else:
            za, zr = g.op("Split", [zp, g.const(p + "split.sizes", [A, H - A], np.int64)], p + "split", outputs=2, axis=2)
        y = _ssm_conv(g, _layer_kernels(e, p, L), za, p, L, method)
        if zr is not None:
            y = g.op("Concat", [y, zr], p + "concat", axis=2)  # channels in `order`
    y = g.gelu(y, p + "gelu")
    W = np.asarray(e[p + "W"], dtype=np.float64)[:, order]  # (2H, H), columns in the order y holds
    z2 = g.op("Add", [g.op("MatMul", [y, g.const(p + "mix.weight", W.T)], p + "mix.matmul"),
                      g.const(p + "mix.bias", e[p + "b"])], p + "mix")  # (B, L, 2H)
    a, gate = g.op("Split", [z2, g.const(p + "glu.sizes", [H, H], np.int64)], p + "glu.split", outputs=2, axis=2)
    return g.op("Mul", [a, g.op("Sigmoid", [gate], p + "glu.sigmoid")], p + "glu")


def _graph(e: dict, L: int, batch: Optional[int], method: str, opset: int, name: str):
    from onnx import TensorProto, helper

    g = _Graph(opset)
    H, n_layers, K = int(e["arch.d_model"]), int(e["arch.n_layers"]), int(e["arch.num_classes"])
    prenorm = bool(int(e["arch.prenorm"]))
    B = "batch" if batch is None else batch
    mask = None
    if int(e["arch.encoder"]) == 1:  # tokens
        x = helper.make_tensor_value_info(INPUT_NAME, TensorProto.INT64, [B, L])
        h = g.op("Gather", [g.const("embedding.weight", e["embedding.weight"]), INPUT_NAME], "encoder", axis=0)
        valid = g.op("Not", [g.op("Equal", [INPUT_NAME, g.const("padding", np.int64(0), np.int64)], "is_padding")],
                     "valid")
        mask = g.op("Unsqueeze", [g.op("Cast", [valid], "valid.float", to=TensorProto.FLOAT),
                                  g.const("mask.axes", [2], np.int64)], "mask")  # (B, L, 1)
    else:
        x = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [B, L, int(e["arch.in_channels"])])
        h = g.op("Add", [g.op("MatMul", [INPUT_NAME, g.const("encoder.weight", np.asarray(e["encoder.weight"]).T)],
                              "encoder.matmul"), g.const("encoder.bias", e["encoder.bias"])], "encoder")
    for i in range(n_layers):
        p = f"layers.{i}."
        z = _norm(g, e, p, h) if prenorm else h
        h = g.op("Add", [h, _layer(g, e, i, z, H, L, method)], p + "residual")
        if not prenorm:
            h = _norm(g, e, p, h)
    if mask is None:
        pooled = g.reduce("ReduceMean", h, 1, "pool")
    else:
        total = g.reduce("ReduceSum", g.op("Mul", [h, mask], "pool.masked"), 1, "pool.sum")
        count = g.op("Max", [g.reduce("ReduceSum", mask, 1, "pool.count"), g.const("pool.one", np.float32(1.0))],
                     "pool.count_min1")  # an all-padding sequence pools to zeros
        pooled = g.op("Div", [total, count], "pool")
    g.op("Gemm", [pooled, g.const("decoder.weight", e["decoder.weight"]), g.const("decoder.bias", e["decoder.bias"])],
         OUTPUT_NAME, transB=1)
    y = helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [B, K])
    return helper.make_graph(g.nodes, name, [x], [y], initializer=g.inits)


# ---------------------------------------------------------------------------------------------- the API
def onnx_model(model, *, seq_len: Optional[int] = None, batch: Optional[int] = None, opset: int = DEFAULT_OPSET,
               conv: str = "auto", info=None):
    """The ``onnx.ModelProto`` of ``model`` (a ``SequenceClassifier``, pruned, compacted or dense) for inputs
    of length ``seq_len`` (default ``info.seq_len``), batch ``batch`` (None: any), at ``opset``
    (:data:`MIN_OPSET` to the installed onnx's latest), convolution form ``conv`` (:data:`CONV_METHODS`).
    The graph computes the model in eval mode (dropout off, BatchNorm's running statistics), whatever mode the
    module is in.  Checked by ``onnx.checker`` before it is returned."""
    from s4op_kernels.export import model_entries
    from s4op_kernels.models.backbone import SequenceClassifier

    if not isinstance(model, SequenceClassifier):
        raise TypeError(f"export_onnx(model): expected a SequenceClassifier (or, for export_onnx, a checkpoint path), "
                        f"got {type(model).__name__}")
    onnx = _onnx()
    latest = onnx.defs.onnx_opset_version()
    opset = check_int(opset, "opset", func="export_onnx", minimum=MIN_OPSET, maximum=latest)
    if seq_len is None and info is None:
        raise ValueError("export_onnx(seq_len): the input length is needed (the graph is built for one length); "
                         "pass seq_len=")
    L = check_int(info.seq_len if seq_len is None else seq_len, "seq_len", func="export_onnx", minimum=1)
    if batch is not None:
        batch = check_int(batch, "batch", func="export_onnx", minimum=1)
    method = conv_method(conv, L)
    with torch.no_grad():
        entries = model_entries(model, info, max_len=L)
    graph = _graph(entries, L, batch, method, opset, "s4op_classifier")
    m = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)],
                               producer_name="s4op-kernels", doc_string="s4op-kernels classifier (onnx_export.py)")
    from s4op_kernels import __version__

    n_layers, H = int(entries["arch.n_layers"]), int(entries["arch.d_model"])
    active = [int(entries[f"layers.{i}.active"].shape[0]) for i in range(n_layers)]
    meta = {"s4op.producer_version": __version__, "s4op.seq_len": str(L), "s4op.conv": method,
            "s4op.active_channels": ",".join(map(str, active)), "s4op.d_model": str(H),
            "s4op.multilabel": str(int(entries["arch.multilabel"]))}
    onnx.helper.set_model_props(m, meta)
    onnx.checker.check_model(m, full_check=True)
    return m


def export_onnx(model, path: PathLike, *, seq_len: Optional[int] = None, batch: Optional[int] = None,
                opset: int = DEFAULT_OPSET, conv: str = "auto") -> dict[str, Any]:
    """Write ``model`` as an ONNX file at ``path`` (atomically).

    ``model``: a ``SequenceClassifier`` (pruned or not), or the path of a checkpoint that ``save_checkpoint``
    wrote (read through the verified loader; its task gives the default ``seq_len``).  ``seq_len``: the input
    length the graph takes (required for a module).  ``batch``: a fixed batch size, or None (the default) for
    any.  ``opset``, ``conv``: see :func:`onnx_model`.  Returns a summary: ``path``, ``file_bytes``,
    ``seq_len``, ``batch``, ``opset``, ``conv`` (the form used), ``active_channels`` (per layer),
    ``channels`` (H per layer)."""
    path = Path(os.fspath(path))
    if path.is_dir():
        raise IsADirectoryError(f"export_onnx(path): {path} is a folder; give a file name such as "
                                f"{path / 'model.onnx'}")
    info = None
    if isinstance(model, (str, os.PathLike)):
        from s4op_kernels.checkpoint import load_checkpoint

        model, meta = load_checkpoint(model)
        info = meta.task_info
    m = onnx_model(model, seq_len=seq_len, batch=batch, opset=opset, conv=conv, info=info)
    blob = m.SerializeToString()
    if len(blob) > _PROTOBUF_LIMIT:  # pragma: no cover - far above any model this package trains
        raise ValueError(f"export_onnx: the model is {len(blob):,} bytes, above protobuf's 2 GB limit")
    atomic_write_bytes(path, blob)
    props = {p.key: p.value for p in m.metadata_props}
    return {"path": path, "file_bytes": len(blob), "seq_len": int(props["s4op.seq_len"]), "batch": batch,
            "opset": int(m.opset_import[0].version), "conv": props["s4op.conv"],
            "active_channels": [int(a) for a in props["s4op.active_channels"].split(",")],
            "channels": [int(props["s4op.d_model"])] * len(props["s4op.active_channels"].split(","))}


__all__ = ["AUTO_DIRECT_MAX_LEN", "CONV_METHODS", "DEFAULT_OPSET", "INPUT_NAME", "MIN_OPSET", "OUTPUT_NAME",
           "block_size", "conv_method", "export_onnx", "fft_length", "onnx_model"]
