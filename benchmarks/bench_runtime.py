"""The torch-free runtime against PyTorch on the same model (issue 14's targets): the main job's model
(ecg-embedded: 4 x S4D, H = 32, L = 256) at batch 1, one thread, pruned 0 / 50 / 90 %, with these contenders:

- ``runtime``: the C++ runtime on the exported file (``s4op_kernels.runtime``; the Python call adds a few us);
- ``eager``: the PyTorch model through our engine (compacted, eval, inference_mode);
- ``compile``: ``torch.compile`` of the same model (skipped with the reason where it cannot build);
- ``onnxruntime``: ONNX Runtime (one intra-op thread) on an ONNX export of the same model in the form it runs
  best that we found: each layer's active channels gathered, their kernels precomputed as a depthwise causal
  ``Conv`` (L taps), scattered back by a ``Gather`` of a channel permutation, the mixing as a 1x1 ``Conv``
  (skipped with the reason when onnx / onnxruntime are not installed: ``pip install onnx onnxruntime
  onnxscript``).

Run: pytest benchmarks/bench_runtime.py --benchmark-only --benchmark-json=benchmarks/runtime.json
"""

from __future__ import annotations

import copy
import os
import tempfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from s4op_kernels import runtime
from s4op_kernels.data.base import TaskInfo
from s4op_kernels.export import export_model
from s4op_kernels.models import build_model, get_config
from s4op_kernels.pruning import compact_model

INFO = TaskInfo("ecg-synthetic", 6, 256, multilabel=True, in_channels=2)
RATES = [0.0, 0.5, 0.9]
IMPLS = ["runtime", "eager", "compile", "onnxruntime"]
_CASES: dict = {}


def _model(rate):
    model = build_model(get_config("ecg-embedded"), INFO, seed=0).eval()
    g = torch.Generator().manual_seed(1)
    for layer in model.ssm_layers():
        H = layer.d_model
        layer.set_active_channels(sorted(torch.randperm(H, generator=g)[: H - round(rate * H)].tolist()))
    return compact_model(model).eval()


class _OnnxLayer(nn.Module):
    """One S4D layer with its kernels precomputed, in ONNX-friendly ops (gather, depthwise conv, gather)."""

    def __init__(self, layer, L):
        super().__init__()
        from s4op_kernels.ops import s4d_kernel

        rows, active = layer._indices(torch.device("cpu"))
        H, A = layer.d_model, len(active)
        k = layer.kernel
        with torch.no_grad():
            K = s4d_kernel(k.C, k.log_dt, k.log_A_real, k.A_imag, L, rows) if A else torch.zeros(0, L)
        self.register_buffer("active", active.clone())
        self.register_buffer("weight", K.flip(-1).unsqueeze(1).contiguous())  # (A, 1, L): causal depthwise conv
        self.register_buffer("D", layer.D.detach()[rows].clone().view(1, A, 1))
        pruned = torch.tensor([h for h in range(H) if h not in set(active.tolist())], dtype=torch.int64)
        self.register_buffer("pruned", pruned)
        self.register_buffer("perm", torch.argsort(torch.cat([active, pruned])))  # (active ++ pruned)[perm] = 0..H-1
        self.A, self.L = A, L
        self.mix = copy.deepcopy(layer.output_linear)

    def forward(self, u):
        if self.A:
            ua = u.index_select(1, self.active)
            ya = F.conv1d(F.pad(ua, (self.L - 1, 0)), self.weight, groups=self.A) + self.D * ua
            y = torch.cat([ya, u.index_select(1, self.pruned)], dim=1).index_select(1, self.perm)
        else:
            y = u
        return self.mix(F.gelu(y))


class _OnnxModel(nn.Module):
    def __init__(self, model, L):
        super().__init__()
        self.encoder, self.decoder = copy.deepcopy(model.encoder), copy.deepcopy(model.decoder)
        self.layers = nn.ModuleList(_OnnxLayer(b.ssm, L) for b in model.blocks)
        self.norms = nn.ModuleList(nn.LayerNorm(model.d_model) for _ in model.blocks)
        for norm, block in zip(self.norms, model.blocks):
            norm.load_state_dict(block.norm.state_dict())
        self.prenorm = model.blocks[0].prenorm

    def forward(self, x):
        h = self.encoder(x)  # (B, L, H)
        for layer, norm in zip(self.layers, self.norms):
            z = norm(h) if self.prenorm else h
            h = h + layer(z.transpose(1, 2)).transpose(1, 2)
            h = h if self.prenorm else norm(h)
        return self.decoder(h.mean(dim=1))


def _case(rate):
    if rate not in _CASES:
        model = _model(rate)
        folder = tempfile.mkdtemp()
        path = os.path.join(folder, "m.s4m")
        export_model(model, INFO, path)
        x = torch.randn(1, INFO.seq_len, INFO.in_channels, generator=torch.Generator().manual_seed(2))
        _CASES[rate] = (model, runtime.load(path), x, folder)
    return _CASES[rate]


def _onnx_session(model, x, folder):
    try:
        import onnxruntime as ort
    except ImportError as err:
        pytest.skip(f"onnxruntime not installed ({err}); pip install onnx onnxruntime onnxscript")
    wrapped = _OnnxModel(model, INFO.seq_len).eval()
    with torch.no_grad():
        ref = model(x)
        assert torch.allclose(wrapped(x), ref, atol=1e-4), "the ONNX form must compute the same model"
    path = os.path.join(folder, "m.onnx")
    try:
        torch.onnx.export(wrapped, (x,), path, input_names=["x"], output_names=["logits"], dynamo=True,
                          verbose=False)
    except Exception as err:  # an exporter that cannot handle the graph: say so, never time something else
        pytest.skip(f"torch.onnx.export failed: {type(err).__name__}: {err}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    out = sess.run(None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(out, ref.numpy(), atol=1e-4)
    return sess


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("rate", RATES, ids=lambda r: f"rate{int(r * 100)}")
def test_runtime_vs_pytorch(benchmark, rate, impl):
    model, rt, x, folder = _case(rate)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if impl == "runtime":
            xn = x.numpy()
            fn = lambda: rt(xn)  # noqa: E731
        elif impl == "eager":
            fn = lambda: model(x)  # noqa: E731
        elif impl == "compile":
            try:
                compiled = torch.compile(model)
                with torch.inference_mode():
                    compiled(x)
            except Exception as err:
                pytest.skip(f"torch.compile failed here: {type(err).__name__}: {str(err)[:200]}")
            fn = lambda: compiled(x)  # noqa: E731
        else:
            sess = _onnx_session(model, x, folder)
            xn = x.numpy()
            fn = lambda: sess.run(None, {"x": xn})  # noqa: E731
        with torch.inference_mode():
            fn()
            benchmark.extra_info.update(subject="runtime", impl=impl, rate=rate, shape=[1, 32, 32, 256], threads=1,
                                        model="ecg-embedded")
            benchmark.pedantic(fn, rounds=300, warmup_rounds=20)
    finally:
        torch.set_num_threads(threads)
