"""ONNX Runtime on the package's ONNX export (``s4op_kernels.onnx_export``) against PyTorch eager (our engine):
the main job's model shape (ecg-embedded: 4 x S4D, H = 32, N = 32; random weights, seed 0, compacted), batch 1,
one thread, pruned 0 / 90 % (random channels, seed 1), at L = 256 (the main job's length), 1024 and 4096, with
both forms of the exported convolution:

- ``eager``: the PyTorch model (eval, ``inference_mode``);
- ``onnx-direct``: ONNX Runtime (one intra-op thread) on the export with ``conv="direct"`` (block-Toeplitz GEMMs);
- ``onnx-fft``: the same with ``conv="fft"`` (ONNX ``DFT``).

Each ONNX session is checked against eager before it is timed (max |logit difference| <= 1e-4, recorded in
``extra_info``); without onnx / onnxruntime the ONNX rows are skipped with the reason.

    pytest benchmarks/bench_onnx.py --benchmark-only --benchmark-json=benchmarks/onnx.json

The must-show figures of issue 16 (ONNX Runtime's equality and latency on the main job's model at 0 / 90 %)
without pytest, interleaved (each round times eager and ONNX Runtime back to back; the ratio is the median of
the per-round ratios, so machine drift cancels):

    python benchmarks/bench_onnx.py [rounds] [CHECKPOINT ...]     # default 300 rounds; random weights

Given checkpoints (e.g. ``s4op-run/baseline s4op-run/rate_90`` after ``s4op run``), it measures those models
instead of random ones.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import time

import numpy as np
import pytest
import torch

from s4op_kernels.data.base import TaskInfo
from s4op_kernels.models import build_model, get_config
from s4op_kernels.pruning import compact_model

LENGTHS = [256, 1024, 4096]
RATES = [0.0, 0.9]
IMPLS = ["eager", "onnx-direct", "onnx-fft"]
_CASES: dict = {}


def main_job_model(L: int = 256, rate: float = 0.0):
    """The main job's model shape (ecg-embedded on the synthetic ECG task) for inputs of length L, random weights
    (seed 0), ``rate`` of each layer's channels pruned at random (seed 1), compacted, eval."""
    info = TaskInfo("ecg-synthetic", 6, L, multilabel=True, in_channels=2)
    model = build_model(get_config("ecg-embedded"), info, seed=0).eval()
    g = torch.Generator().manual_seed(1)
    for layer in model.ssm_layers():
        H = layer.d_model
        layer.set_active_channels(sorted(torch.randperm(H, generator=g)[: H - round(rate * H)].tolist()))
    return compact_model(model).eval(), info


def onnx_session(model, L: int, conv: str, folder: str):
    """An ONNX Runtime session (one thread) on ``model``'s export with ``conv``, and the max |logit difference|
    to eager on a seeded batch of 2 (raises if above 1e-4: never time another model under this name)."""
    import onnxruntime as ort

    from s4op_kernels.onnx_export import export_onnx

    path = os.path.join(folder, f"m-{conv}.onnx")
    export_onnx(model, path, seq_len=L, conv=conv)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    x = torch.randn(2, L, model.in_channels, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        ref = model(x).numpy()
    err = float(np.abs(sess.run(None, {"x": x.numpy()})[0] - ref).max())
    if not err <= 1e-4:
        raise AssertionError(f"ONNX Runtime's logits differ from eager by {err:.3g} ({conv}, L={L})")
    return sess, err


def _case(L, rate):
    if (L, rate) not in _CASES:
        model, _ = main_job_model(L, rate)
        x = torch.randn(1, L, 2, generator=torch.Generator().manual_seed(2))
        _CASES[L, rate] = (model, x, tempfile.mkdtemp())
    return _CASES[L, rate]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("rate", RATES, ids=lambda r: f"rate{int(r * 100)}")
@pytest.mark.parametrize("L", LENGTHS, ids=lambda n: f"L{n}")
def test_onnx_runtime_vs_eager(benchmark, L, rate, impl):
    model, x, folder = _case(L, rate)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if impl == "eager":
            fn = lambda: model(x)  # noqa: E731
        else:
            missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
            if missing:
                pytest.skip(f"{' and '.join(missing)} not installed; pip install \"s4op-kernels[onnx]\"")
            sess, err = onnx_session(model, L, impl.split("-")[1], folder)
            benchmark.extra_info["max_abs_err"] = err
            xn = x.numpy()
            fn = lambda: sess.run(None, {"x": xn})  # noqa: E731
        with torch.inference_mode():
            fn()
            benchmark.extra_info.update(subject="onnx", impl=impl, rate=rate, shape=[1, 32, L], threads=1,
                                        model="ecg-embedded")
            benchmark.pedantic(fn, rounds=max(10, 40000 // L), warmup_rounds=3)
    finally:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------- without pytest
def _interleaved(fns: dict, rounds: int) -> dict:
    times = {k: [] for k in fns}
    for r in range(rounds):
        for k in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
            t0 = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t0)
    return {k: np.asarray(v) for k, v in times.items()}


def must_show(rounds: int = 300, checkpoints=()) -> str:
    """The markdown table of issue 16's must-show: per model, the max |logit difference| of ONNX Runtime to
    eager (and the relative error to the float64 model), the median latencies at batch 1, one thread, and the
    median of the per-round ratios."""
    import copy

    import onnxruntime as ort

    from s4op_kernels.checkpoint import load_checkpoint
    from s4op_kernels.onnx_export import conv_method

    if checkpoints:
        cases = []
        for path in checkpoints:
            model, meta = load_checkpoint(path)
            cases.append((os.path.basename(os.fspath(path)), compact_model(model).eval(), meta.task_info.seq_len))
    else:
        cases = [(f"random, {int(r * 100)} % pruned", main_job_model(256, r)[0], 256) for r in RATES]
    torch.set_num_threads(1)
    folder = tempfile.mkdtemp()
    head = (f"ONNX Runtime {ort.__version__}, torch {torch.__version__}, one thread, batch 1, medians of {rounds} "
            "interleaved rounds\n\n| model | active / channels | form | max abs err vs eager | rel. err vs float64 | "
            "ONNX Runtime ms | eager ms | ONNX Runtime / eager |\n|---|---|---|---|---|---|---|---|")
    rows = [head]
    for name, model, L in cases:
        sess, err = onnx_session(model, L, "auto", folder)
        x = torch.randn(4, L, model.in_channels, generator=torch.Generator().manual_seed(5))
        with torch.no_grad():
            ref64 = copy.deepcopy(model).double()(x.double())
        out = torch.from_numpy(sess.run(None, {"x": x.numpy()})[0]).double()
        rel = float((out - ref64).abs().max() / ref64.abs().max())
        x1 = x[:1].contiguous()
        xn = x1.numpy()
        with torch.inference_mode():
            t = _interleaved({"ort": lambda: sess.run(None, {"x": xn}), "eager": lambda: model(x1)}, rounds)
        active = sum(layer.num_active for layer in model.ssm_layers())
        total = sum(layer.d_model for layer in model.ssm_layers())
        rows.append(f"| {name} | {active} / {total} | {conv_method('auto', L)} | {err:.2e} | {rel:.2e} | "
                    f"{np.median(t['ort']) * 1e3:.3f} | {np.median(t['eager']) * 1e3:.3f} | "
                    f"{np.median(t['ort'] / t['eager']):.2f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    args = sys.argv[1:]
    n = int(args.pop(0)) if args and args[0].isdigit() else 300
    print(must_show(n, args))
