"""The torch-free runtime against PyTorch on the same model (issue 14's targets): the main job's model
(ecg-embedded: 4 x S4D, H = 32, L = 256) at batch 1, one thread, pruned 0 / 50 / 90 %, with these contenders:

- ``runtime``: the C++ runtime on the exported file (``s4op_kernels.runtime``; the Python call adds a few us);
- ``eager``: the PyTorch model through our engine (compacted, eval, inference_mode);
- ``compile``: ``torch.compile`` of the same model (skipped with the reason where it cannot build);
- ``onnxruntime``: ONNX Runtime (one intra-op thread) on the package's ONNX export of the same model
  (``s4op_kernels.onnx_export.export_onnx``, its default form: active channels gathered, their convolution as
  block-Toeplitz GEMMs; the max |logit difference| to eager is recorded in ``extra_info``; skipped with the
  reason when onnx / onnxruntime are not installed: ``pip install "s4op-kernels[onnx]"``).

Run: pytest benchmarks/bench_runtime.py --benchmark-only --benchmark-json=benchmarks/runtime.json
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
import torch

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

        from s4op_kernels.onnx_export import export_onnx
    except ImportError as err:
        pytest.skip(f"onnx / onnxruntime not installed ({err}); pip install \"s4op-kernels[onnx]\"")
    path = os.path.join(folder, "m.onnx")
    export_onnx(model, path, seq_len=INFO.seq_len)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = model(x)
    out = sess.run(None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(out, ref.numpy(), atol=1e-4)  # never time another model under this name
    return sess, float(np.abs(out - ref.numpy()).max())


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
            sess, err = _onnx_session(model, x, folder)
            benchmark.extra_info["max_abs_err"] = err
            xn = x.numpy()
            fn = lambda: sess.run(None, {"x": xn})  # noqa: E731
        with torch.inference_mode():
            fn()
            benchmark.extra_info.update(subject="runtime", impl=impl, rate=rate, shape=[1, 32, 32, 256], threads=1,
                                        model="ecg-embedded")
            benchmark.pedantic(fn, rounds=300, warmup_rounds=20)
    finally:
        torch.set_num_threads(threads)
