"""The deployable model file (``.s4m``): what the torch-free C++ runtime (``csrc/runtime``) loads.

A flat, versioned, little-endian, self-describing file::

    offset  size  field
    0       8     magic b"S4OPMDL\\0"
    8       4     format version (u32, FORMAT_VERSION)
    12      4     flags (u32, 0)
    16      8     payload size in bytes (u64)
    24      4     CRC-32 of the payload (u32, zlib's polynomial)
    28      4     number of entries (u32)
    32      ...   payload: the entries, one after the other

    entry:  u16 name length, name (ASCII), u8 dtype (1 = float32, 2 = int64), u8 ndim (0-4), u16 zero,
            ndim x u64 dims, zero padding to a multiple of 8 bytes from the payload's start, then the data
            (row-major, little-endian), zero padding to a multiple of 8 bytes.

Entries (H = d_model, A = active channels of a layer, N2 = d_state / 2, K = classes):

- ``arch.*`` int64 scalars: ``encoder`` (0 linear, 1 embedding), ``in_channels`` or ``vocab_size``, ``d_model``,
  ``n_layers``, ``num_classes``, ``multilabel`` (0/1), ``prenorm`` (0/1), ``max_len`` (the longest input the
  file is set up for); ``arch.norm_eps`` float32 scalar.
- the encoder: ``encoder.weight`` (H, C) and ``encoder.bias`` (H), or ``embedding.weight`` (V, H);
- per layer i, prefix ``layers.i.``: ``kind`` (0 S4D, 1 S4), ``norm`` (0 none, 1 LayerNorm over channels,
  2 per-channel affine: an eval-mode BatchNorm folded into scale and shift, computed in float64),
  ``norm.weight``/``norm.bias`` (H), ``active`` (A) int64 (sorted channel indices), ``D`` (A), the active
  channels' SSM parameters -- S4D: ``C`` (A, N2, 2), ``log_dt`` (A), ``log_A_real`` (A, N2), ``A_imag`` (A, N2);
  S4: ``log_dt`` (A), ``A_real``, ``A_imag`` (A, N2), ``B``, ``P``, ``C`` (A, N2, 2; C holds C-tilde for
  ``l_kernel``), ``l_kernel`` and ``taps`` (int64 scalars: the kernel is the length-``l_kernel`` one truncated
  to ``taps = min(max_len, l_kernel)``), and ``C_f`` (A, N2, 2), the plain output vector C-tilde stands for
  (computed in float64: what the runtime's streaming step needs; files without it run in batch only) -- and the
  output mixing ``W`` (2H, H), ``b`` (2H), followed by GLU.
- the decoder: ``decoder.weight`` (K, H), ``decoder.bias`` (K).

Why parameters and not kernel spectra: a spectrum is tied to one FFT length (``max_len``) and costs
``A (n_fft / 2 + 1)`` complex numbers per layer (2 MB for 128 channels at L = 4096), while the parameters
cost ``A (2 N2 + 2)`` numbers, independent of L (64 KB); the runtime generates the spectra once, at load, in
the same C++ kernels the PyTorch layers use, and any input length up to ``max_len`` convolves with them
exactly (the FFT length covers ``L + max_len - 1``).  Pruned channels cost no byte: they are not in ``active``.

``export_model(model, info, path, max_len=...)`` writes the file; ``read_model_file(path)`` reads it back
(entries as NumPy arrays) with the same checks the C++ loader makes.  The layers are read from the model as
it is (pruned or compacted); the model is not changed (an S4 layer's C-tilde is set up for ``max_len`` on a
copy).
"""

from __future__ import annotations

import copy
import math
import os
import struct
import zlib
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import nn

from s4op_kernels._atomic import atomic_write_bytes
from s4op_kernels._validate import check_int

MAGIC = b"S4OPMDL\0"
FORMAT_VERSION = 1
SUFFIX = ".s4m"
_HEADER = struct.Struct("<8sIIQII")  # magic, version, flags, payload size, crc32, entries
_DTYPES = {1: np.dtype("<f4"), 2: np.dtype("<i8")}
_CODES = {np.dtype("<f4"): 1, np.dtype("<i8"): 2}
MAX_NDIM = 4

PathLike = Union[str, os.PathLike]


class ModelFileError(ValueError):
    """A model file that cannot be read: not one, corrupted, truncated, or from a later format version."""


# ---------------------------------------------------------------------------------------------- writing
def _pad8(n: int) -> int:
    return (-n) % 8


def _entry(name: str, value: np.ndarray) -> bytes:
    arr = np.asarray(value)  # 0-d stays 0-d (np.ascontiguousarray would make it 1-d)
    if arr.dtype.kind == "f":
        arr = arr.astype("<f4")
    elif arr.dtype.kind in "iub":
        arr = arr.astype("<i8")
    else:
        raise TypeError(f"export: entry {name!r} has unsupported dtype {arr.dtype}")
    if arr.ndim > MAX_NDIM:
        raise ValueError(f"export: entry {name!r} has {arr.ndim} dimensions (at most {MAX_NDIM})")
    raw = name.encode("ascii")
    head = struct.pack("<H", len(raw)) + raw + struct.pack("<BBH", _CODES[arr.dtype], arr.ndim, 0)
    head += struct.pack(f"<{arr.ndim}Q", *arr.shape)
    data = arr.tobytes()
    return head + b"\0" * _pad8(len(head)) + data + b"\0" * _pad8(len(data))


def _f32(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy().astype("<f4")


def _layer_entries(i: int, block, H: int, max_len: int) -> dict[str, np.ndarray]:
    from s4op_kernels.layers import S4DLayer, S4Layer
    from s4op_kernels.layers.s4 import output_vector
    from s4op_kernels.models.backbone import ChannelLayerNorm

    p = f"layers.{i}."
    out: dict[str, np.ndarray] = {}
    norm = block.norm
    if isinstance(norm, nn.Identity):
        out[p + "norm"] = np.int64(0)
    elif type(norm) is ChannelLayerNorm:
        out[p + "norm"] = np.int64(1)
        out[p + "norm.weight"], out[p + "norm.bias"] = _f32(norm.weight), _f32(norm.bias)
        out[p + "norm.eps"] = np.float32(norm.eps)
    elif type(norm) is nn.BatchNorm1d and norm.track_running_stats and norm.affine:
        # eval-mode BatchNorm is the per-channel affine map x * scale + shift
        var, mean = norm.running_var.double(), norm.running_mean.double()
        scale = norm.weight.detach().double() / torch.sqrt(var + norm.eps)
        out[p + "norm"] = np.int64(2)
        out[p + "norm.weight"] = _f32(scale)
        out[p + "norm.bias"] = _f32(norm.bias.detach().double() - mean * scale)
    else:
        raise ValueError(f"export: block {i}'s norm {type(norm).__name__} is not one the runtime supports "
                         "(nn.Identity, ChannelLayerNorm, BatchNorm1d with running statistics and affine)")
    layer = block.ssm
    rows, active = layer._indices(torch.device("cpu"))
    out[p + "active"] = active.numpy().astype("<i8")
    if type(layer) is S4DLayer:
        k = layer.kernel
        out[p + "kind"] = np.int64(0)
        out[p + "D"] = _f32(layer.D[rows])
        out[p + "C"] = _f32(k.C[rows])
        out[p + "log_dt"] = _f32(k.log_dt[rows])
        out[p + "log_A_real"] = _f32(k.log_A_real[rows])
        out[p + "A_imag"] = _f32(k.A_imag[rows])
        lin = layer.output_linear[0]
        W = lin.weight.detach()[:, :, 0]
        expected = (nn.Conv1d, nn.GLU)
    elif type(layer) is S4Layer:
        layer = copy.deepcopy(layer)  # setting C-tilde up for max_len must not change the caller's model
        with torch.no_grad():
            layer._prepare_forward(max_len)
        k = layer.layer.kernel
        out[p + "kind"] = np.int64(1)
        out[p + "D"] = _f32(layer.layer.D[0, rows])
        out[p + "log_dt"] = _f32(k.inv_dt[rows, 0])
        for name in ("A_real", "A_imag"):
            out[p + name] = _f32(getattr(k, name)[rows])
        for name in ("B", "P", "C"):
            out[p + name] = _f32(getattr(k, name)[0, rows])
        # The recurrent step's output vector (S4Layer.step uses the same function): streaming in the runtime.
        out[p + "C_f"] = _f32(output_vector(k.inv_dt[rows, 0], k.A_real[rows], k.A_imag[rows], k.P[0, rows],
                                            k.C[0, rows], layer.l_kernel))
        out[p + "l_kernel"] = np.int64(layer._kernel_length)
        out[p + "taps"] = np.int64(layer._taps(max_len))
        lin = layer.output_linear[0]
        W = lin.weight.detach()
        expected = (nn.Linear, nn.GLU)
    else:
        raise ValueError(f"export: block {i}'s SSM layer {type(layer).__name__} is not S4DLayer or S4Layer")
    mods = tuple(layer.output_linear)
    if tuple(type(m) for m in mods) != expected or lin.bias is None:
        raise ValueError(f"export: layer {i}'s output mixing must be the reference's {expected[0].__name__}(H, 2H) "
                         "with bias + GLU")
    out[p + "W"], out[p + "b"] = _f32(W), _f32(lin.bias)
    if out[p + "W"].shape != (2 * H, H):
        raise ValueError(f"export: layer {i}'s mixing weight has shape {out[p + 'W'].shape}, expected {(2 * H, H)}")
    return out


def model_entries(model: nn.Module, info=None, *, max_len: Optional[int] = None) -> dict[str, np.ndarray]:
    """The file's entries (name -> array) for a ``SequenceClassifier`` and its task's ``TaskInfo``.

    Also the one walk over a model that the other exports read (``onnx_export``): ``info`` may then be None
    (``arch.multilabel`` is 0) when ``max_len`` is given."""
    from s4op_kernels.models.backbone import SequenceClassifier

    if not isinstance(model, SequenceClassifier):
        raise TypeError(f"export(model): expected a SequenceClassifier, got {type(model).__name__}")
    if info is None and max_len is None:
        raise ValueError("export: give max_len (the longest input) or info (the task, whose seq_len is the default)")
    max_len = check_int(info.seq_len if max_len is None else max_len, "max_len", func="export", minimum=1)
    H = model.d_model
    e: dict[str, np.ndarray] = {}
    if isinstance(model.encoder, nn.Embedding):
        e["arch.encoder"] = np.int64(1)
        e["arch.vocab_size"] = np.int64(model.encoder.num_embeddings)
        e["embedding.weight"] = _f32(model.encoder.weight)
    else:
        e["arch.encoder"] = np.int64(0)
        e["arch.in_channels"] = np.int64(model.encoder.in_features)
        e["encoder.weight"], e["encoder.bias"] = _f32(model.encoder.weight), _f32(model.encoder.bias)
    e["arch.d_model"] = np.int64(H)
    e["arch.n_layers"] = np.int64(len(model.blocks))
    e["arch.num_classes"] = np.int64(model.num_classes)
    e["arch.multilabel"] = np.int64(bool(info is not None and info.multilabel))
    e["arch.prenorm"] = np.int64(bool(model.blocks[0].prenorm)) if len(model.blocks) else np.int64(0)
    e["arch.max_len"] = np.int64(max_len)
    for i, block in enumerate(model.blocks):
        if bool(block.prenorm) != bool(e["arch.prenorm"]):
            raise ValueError("export: every block must have the same prenorm setting")
        e.update(_layer_entries(i, block, H, max_len))
    e["decoder.weight"], e["decoder.bias"] = _f32(model.decoder.weight), _f32(model.decoder.bias)
    return e


def encode(entries: dict[str, np.ndarray]) -> bytes:
    payload = b"".join(_entry(name, np.asarray(value)) for name, value in entries.items())
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, 0, len(payload), zlib.crc32(payload) & 0xFFFFFFFF, len(entries))
    return header + payload


def export_model(model: nn.Module, info, path: PathLike, *, max_len: Optional[int] = None) -> dict[str, Any]:
    """Write ``model`` (a ``SequenceClassifier``, pruned or not) as a runtime model file at ``path`` (atomically).

    ``info``: the task's ``TaskInfo`` (classes, multi-label); ``max_len``: the longest input the runtime will
    get (default ``info.seq_len``).  Returns :func:`footprint` of the written file."""
    blob = encode(model_entries(model, info, max_len=max_len))
    path = Path(os.fspath(path))
    atomic_write_bytes(path, blob)
    return footprint(path)


def export_checkpoint(checkpoint: PathLike, path: PathLike, *, max_len: Optional[int] = None,
                      batch: int = 1) -> dict[str, dict[str, Any]]:
    """``s4op export``: the checkpoint ``save_checkpoint`` wrote (its stem, weights or sidecar path; read through
    the verified loader) as a runtime model file at ``path``.  ``max_len`` defaults to the checkpoint's task
    length.  Returns ``{"pruned": footprint, "dense": footprint of the unpruned model of the same architecture}``
    at ``batch``."""
    from s4op_kernels.checkpoint import load_checkpoint

    batch = check_int(batch, "batch", func="export_checkpoint", minimum=1)
    model, meta = load_checkpoint(checkpoint)
    if meta.task_info is None:
        raise ValueError(f"export_checkpoint({checkpoint}): the checkpoint records no task (TaskInfo); save it with "
                         "task_info=")
    export_model(model.eval(), meta.task_info, path, max_len=max_len)
    return {"pruned": footprint(path, batch=batch), "dense": footprint(path, batch=batch, dense=True)}


# ---------------------------------------------------------------------------------------------- reading
def read_model_file(path: PathLike) -> dict[str, np.ndarray]:
    """The entries of a model file, checked as the C++ loader checks them (magic, version, size, CRC-32,
    entry layout).  Raises :class:`ModelFileError` naming the file and the problem."""
    path = Path(os.fspath(path))
    try:
        blob = path.read_bytes()
    except OSError as err:
        raise ModelFileError(f"{path}: cannot read ({err.strerror or err})") from None
    return decode(blob, str(path))


def decode(blob: bytes, where: str = "model file") -> dict[str, np.ndarray]:
    def bad(what: str):
        raise ModelFileError(f"{where}: {what}")

    if len(blob) < _HEADER.size:
        bad(f"truncated: {len(blob)} bytes, shorter than the {_HEADER.size}-byte header")
    magic, version, flags, size, crc, count = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        bad("not an s4op model file (bad magic)")
    if version > FORMAT_VERSION or version < 1:
        bad(f"format version {version} is not supported (this reader knows 1 to {FORMAT_VERSION}); "
            "upgrade s4op-kernels" if version > FORMAT_VERSION else f"format version {version} is invalid")
    if flags != 0:
        bad(f"unknown flags {flags:#x}")
    if size != len(blob) - _HEADER.size:
        bad(f"truncated or padded: the header says {size} payload bytes, the file has {len(blob) - _HEADER.size}")
    payload = memoryview(blob)[_HEADER.size:]
    if zlib.crc32(payload) & 0xFFFFFFFF != crc:
        bad("corrupted: the payload's CRC-32 does not match the header")
    out: dict[str, np.ndarray] = {}
    pos = 0
    for k in range(count):
        if pos + 2 > size:
            bad(f"entry {k}: truncated")
        (n,) = struct.unpack_from("<H", payload, pos)
        pos += 2
        if n == 0 or pos + n + 4 > size:
            bad(f"entry {k}: bad name length {n}")
        try:
            name = bytes(payload[pos:pos + n]).decode("ascii")
        except UnicodeDecodeError:
            bad(f"entry {k}: the name is not ASCII")
        pos += n
        code, ndim, zero = struct.unpack_from("<BBH", payload, pos)
        pos += 4
        if code not in _DTYPES or ndim > MAX_NDIM or zero != 0:
            bad(f"entry {name!r}: bad dtype code {code} or ndim {ndim}")
        if pos + 8 * ndim > size:
            bad(f"entry {name!r}: truncated shape")
        shape = struct.unpack_from(f"<{ndim}Q", payload, pos)
        pos += 8 * ndim
        pos += _pad8(pos)
        dtype = _DTYPES[code]
        count_elems = math.prod(shape)
        nbytes = count_elems * dtype.itemsize
        if nbytes > size - pos:
            bad(f"entry {name!r}: {nbytes} data bytes run past the end of the payload")
        if name in out:
            bad(f"entry {name!r} appears twice")
        out[name] = np.frombuffer(payload, dtype, count_elems, pos).reshape(shape).copy()
        pos += nbytes + _pad8(nbytes)
    if pos != size:
        bad(f"{size - pos} bytes after the last entry")
    return out


# The per-channel entries of a layer: their first dimension is the number of active channels.
_PER_CHANNEL = ("active", "D", "C", "log_dt", "log_A_real", "A_imag", "A_real", "B", "P", "C_f")


def footprint(path: PathLike, *, batch: int = 1, max_len: Optional[int] = None, dense: bool = False) -> dict[str, Any]:
    """Sizes of a model file and of what running it needs: ``file_bytes``, ``weight_bytes`` (the entries'
    data), ``spectra_bytes`` (the kernels' spectra the runtime builds at load, complex float32) and
    ``activation_bytes`` (the runtime's arena of activations for ``batch`` x ``max_len``, default the file's),
    plus the active / total channel counts.  ``dense=True``: the same figures for the unpruned model of the
    same architecture (every channel active; computed from the per-channel entries' shapes; its file_bytes
    is exact up to the entries' alignment padding, at most 7 bytes each)."""
    e = read_model_file(path)
    L = int(e["arch.max_len"]) if max_len is None else check_int(max_len, "max_len", func="footprint", minimum=1)
    batch = check_int(batch, "batch", func="footprint", minimum=1)
    H, n_layers = int(e["arch.d_model"]), int(e["arch.n_layers"])
    n_fft = _fft_size(int(e["arch.max_len"]))
    active = [int(e[f"layers.{i}.active"].shape[0]) for i in range(n_layers)]
    weights = sum(v.nbytes for v in e.values())
    file_bytes = Path(os.fspath(path)).stat().st_size
    if dense:
        for i, a in enumerate(active):
            for name in _PER_CHANNEL:
                v = e.get(f"layers.{i}.{name}")
                if v is not None:
                    extra = (H - a) * int(np.prod(v.shape[1:], dtype=np.int64)) * v.itemsize
                    weights, file_bytes = weights + extra, file_bytes + extra
        active = [H] * n_layers
    spectra = sum(a * (n_fft // 2 + 1) * 8 for a in active)
    # the runtime's arena (what s4op_model_info's arena_bytes reports): the residual stream h and the SSM
    # output y, the normalized input of a prenorm block, the pooling's mask of valid positions, the pooled
    # features, and a continuous input transposed
    C = int(e["arch.in_channels"]) if "arch.in_channels" in e else 0
    acts = 4 * (batch * H * L * (2 + int(e["arch.prenorm"])) + L + batch * H + C * L)
    return {"file_bytes": file_bytes, "weight_bytes": weights, "spectra_bytes": spectra,
            "activation_bytes": acts, "active_channels": sum(active), "channels": H * n_layers,
            "batch": batch, "max_len": L}


def _fft_size(L: int) -> int:
    from s4op_kernels.ops import fft_size

    return fft_size(L)


__all__ = ["FORMAT_VERSION", "MAGIC", "SUFFIX", "ModelFileError", "decode", "encode", "export_checkpoint",
           "export_model", "footprint",
           "model_entries", "read_model_file"]
