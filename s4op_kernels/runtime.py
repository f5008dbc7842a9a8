"""The torch-free C++ runtime from Python, for tests and benchmarks: ``load(path)`` a model file written by
:func:`s4op_kernels.export.export_model` (``s4op export``) and call it like the PyTorch classifier.

>>> model = runtime.load("model.s4m")              # max_batch=1, max_len: the file's, num_threads=1
>>> logits = model(x)                               # x: (B, L, C) float32 or (B, L) token ids; NumPy or tensor
>>> stream = model.stream(batch_size=1)             # the same classifier fed sample by sample
>>> logits = stream.push(x[:, :1]).logits()         # after any number of samples: model(x so far)

The runtime itself is C++ (``csrc/runtime``, C API in ``csrc/include/s4op/runtime.h``) and runs without
Python in ``s4op-infer``; this module only wraps it.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import numpy as np

from s4op_kernels._validate import check_int


class RuntimeModel:
    """A loaded model file.  ``info`` describes it; calling it returns the logits as a NumPy float32 array.
    One call at a time per object (the runtime's activation arena is shared by calls)."""

    def __init__(self, path, *, max_batch: int = 1, max_len: Optional[int] = None, num_threads: int = 1):
        from s4op_kernels import _ext

        max_batch = check_int(max_batch, "max_batch", func="runtime.load", minimum=1)
        max_len = 0 if max_len is None else check_int(max_len, "max_len", func="runtime.load", minimum=1)
        num_threads = check_int(num_threads, "num_threads", func="runtime.load", minimum=1, maximum=1024)
        self.path = os.fspath(path)
        self._model = _ext.C().RuntimeModel(self.path, max_batch, max_len, num_threads)
        self.info: dict[str, Any] = dict(self._model.info())

    def __call__(self, x, lengths=None) -> np.ndarray:
        info = self.info
        x = _numpy(x, "x")
        if info["tokens"]:
            if x.ndim != 2 or not np.issubdtype(x.dtype, np.integer):
                raise ValueError(f"RuntimeModel(x): a token model takes (B, L) integer ids, got {x.dtype} of shape "
                                 f"{x.shape}")
            x = np.ascontiguousarray(x, dtype=np.int64)
        else:
            if x.ndim != 3 or x.shape[2] != info["in_channels"] or not np.issubdtype(x.dtype, np.floating):
                raise ValueError(f"RuntimeModel(x): a continuous model takes (B, L, {info['in_channels']}) floats, got "
                                 f"{x.dtype} of shape {x.shape}")
            x = np.ascontiguousarray(x, dtype=np.float32)
        B, L = x.shape[0], x.shape[1]
        if not 1 <= B <= info["max_batch"]:
            raise ValueError(f"RuntimeModel(x): batch {B} is outside [1, max_batch={info['max_batch']}] (load with a "
                             "larger max_batch)")
        if not 1 <= L <= info["max_len"]:
            raise ValueError(f"RuntimeModel(x): length {L} is outside [1, max_len={info['max_len']}]")
        if lengths is not None:
            lengths = np.ascontiguousarray(_numpy(lengths, "lengths"), dtype=np.int64)
        out = np.empty((B, info["num_classes"]), np.float32)
        self._model.run(x, lengths, out)
        return out

    def stream(self, batch_size: int = 1) -> "RuntimeStream":
        """A :class:`RuntimeStream` of ``batch_size`` sequences over this model (any length: no max_len)."""
        return RuntimeStream(self, batch_size)

    def __repr__(self) -> str:
        i = self.info
        return (f"RuntimeModel({self.path!r}, {'tokens' if i['tokens'] else 'continuous'}, d_model={i['d_model']}, "
                f"n_layers={i['n_layers']}, active={i['active_channels']}/{i['channels']}, max_len={i['max_len']})")


class RuntimeStream:
    """The runtime's classifier fed a live signal (``s4op_stream_*`` of runtime.h): every layer's recurrent state
    and the running pooled sum.  :meth:`push` the next samples, read :meth:`logits` after any of them: they equal
    the model's batch run on the samples so far.  One call at a time per object."""

    def __init__(self, model: RuntimeModel, batch_size: int = 1):
        self.batch_size = check_int(batch_size, "batch_size", func="RuntimeModel.stream", minimum=1)
        self.info = model.info
        from s4op_kernels import _ext

        self._stream = _ext.C().RuntimeStream(model._model, self.batch_size)

    def push(self, x) -> "RuntimeStream":
        """x: (B, T, C) floats (continuous model) or (B, T) token ids, B = batch_size, T >= 0.  Returns self."""
        info, B = self.info, self.batch_size
        x = _numpy(x, "x")
        if info["tokens"]:
            if x.ndim != 2 or x.shape[0] != B or not np.issubdtype(x.dtype, np.integer):
                raise ValueError(f"RuntimeStream.push(x): a token model takes (B={B}, T) integer ids, got {x.dtype} of "
                                 f"shape {x.shape}")
            x = np.ascontiguousarray(x, dtype=np.int64)
        else:
            if x.ndim != 3 or x.shape[0] != B or x.shape[2] != info["in_channels"] or not np.issubdtype(x.dtype, np.floating):
                raise ValueError(f"RuntimeStream.push(x): a continuous model takes (B={B}, T, {info['in_channels']}) "
                                 f"floats, got {x.dtype} of shape {x.shape}")
            x = np.ascontiguousarray(x, dtype=np.float32)
        self._stream.push(x)
        return self

    def logits(self) -> np.ndarray:
        """(B, num_classes) float32: the logits of the samples pushed so far."""
        out = np.empty((self.batch_size, self.info["num_classes"]), np.float32)
        self._stream.logits(out)
        return out

    @property
    def samples(self) -> int:
        return int(self._stream.samples())

    def reset(self) -> "RuntimeStream":
        """Start a new sequence (zero states, nothing pooled)."""
        self._stream.reset()
        return self


def _numpy(x, name: str) -> np.ndarray:
    try:
        import torch

        if isinstance(x, torch.Tensor):
            return x.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if not isinstance(x, np.ndarray):
        raise TypeError(f"RuntimeModel({name}): expected a NumPy array or a torch.Tensor, got {type(x).__name__}")
    return x


def load(path, *, max_batch: int = 1, max_len: Optional[int] = None, num_threads: int = 1) -> RuntimeModel:
    """Load a model file for the runtime: ``max_batch`` and ``max_len`` size its arena (``max_len`` at most
    the file's, which is the default); ``num_threads`` (default 1) threads per call.  A bad, corrupted,
    truncated or future-version file raises ``ValueError`` naming it."""
    return RuntimeModel(path, max_batch=max_batch, max_len=max_len, num_threads=num_threads)


def simd() -> str:
    """The SIMD path of the runtime's output mixing on this CPU."""
    from s4op_kernels import _ext

    return _ext.C().runtime_simd()


__all__ = ["RuntimeModel", "RuntimeStream", "load", "simd"]
