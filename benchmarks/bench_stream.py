"""Streaming (issue 16): the per-sample latency of a classifier fed a live signal at batch 1, by its recurrent step,
against recomputing the convolution over the window for each new sample.

Models (random weights, seed 0; pruned as ``bench_model``: depth-aware allocation at 0 / 50 / 90 %, random
channels with seed 7; compacted, eval, ``torch.inference_mode``):

- ``ecg-embedded``: the main job's model (4 x S4D, H = 32, N = 32), window L = 256, and its S4 twin
  ``ecg-embedded-s4``;
- ``ecg``: the paper's ECG model (4 x 128, N = 64, 12 leads), window L = 1024 (4096 with ``--paper-sizes``);
- with ``--paper-sizes`` / ``S4OP_PAPER_SIZES=1`` also the paper's ``listops`` (8 x 128, L = 2000), ``pathfinder``
  (6 x 256, L = 1024) and ``imdb`` (6 x 256, L = 4096).

Contenders, each the cost of one new sample:

- ``step``: ``ClassifierStream.push`` of one sample (PyTorch; the layers' ``step`` over the compiled core);
- ``runtime_step``: the torch-free runtime's stream (``RuntimeStream.push`` of one sample; the Python call adds a
  few microseconds to the C++);
- ``recompute``: the model's forward on the last L samples (our engine, warm kernel caches): what a classifier
  without a recurrent form must do for each new sample;
- ``recompute_runtime``: the runtime's batch run on the last L samples;
- ``ssm_core``: only the SSM part of the step, every layer's ``ssm_step`` compute kernel called through the binding
  on preallocated arrays (no mixing, norms or encoder): the part that scales with the active channels.

The step's work is O(active channels x N + H^2) per layer: the SSM part falls with the pruning rate, the output
mixing's H^2 (a 2H x H matrix-vector product) does not, and bounds the gain once the SSM part is small (as for the
batch forward, docs/design.md "Performance model").  The recompute's work is O(H L log L + H^2 L).

Quick table (interleaved rounds, one thread unless told; each entry the lower quartile over the rounds, which
time slicing on a shared machine disturbs least -- under load the per-round times were bimodal, 150 / 500 us --
and which a quiet machine's median matches):

    python benchmarks/bench_stream.py [--paper-sizes] [--rounds 30] [--threads 1]

pytest: ``pytest benchmarks/bench_stream.py --benchmark-only [--paper-sizes]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__":  # run as a script: the suite's helpers and shapes, as pytest's rootdir would
    sys.path[:0] = [str(Path(__file__).resolve().parent.parent / "tests"), str(Path(__file__).resolve().parent)]

import pytest
import torch

from s4op_kernels import runtime
from s4op_kernels.data.base import TaskInfo
from s4op_kernels.export import export_model
from s4op_kernels.models import build_model, get_config
from s4op_kernels.pruning import allocate, compact_model, example_input, prune_model, ssm_layers
from bench_model import PRUNE_SEED, TASKS
from harness import paper_sizes, require_backend

MAIN_JOB = TaskInfo("ecg-synthetic", 6, 256, multilabel=True, in_channels=2)
RATES = [0.0, 0.5, 0.9]
IMPLS = ["step", "runtime_step", "recompute", "recompute_runtime", "ssm_core"]


def cases(full: bool) -> list[tuple[str, TaskInfo, int]]:
    """(config, task info, window L) of the models measured."""
    out = [("ecg-embedded", MAIN_JOB, 256), ("ecg-embedded-s4", MAIN_JOB, 256),
           ("ecg", TASKS["ecg"], 4096 if full else 1024)]
    if full:
        out += [(task, TASKS[task], TASKS[task].seq_len) for task in ("listops", "pathfinder", "imdb")]
    return out


class Case:
    """One (model, rate): the compacted model, its stream, its runtime file and stream, and the window."""

    def __init__(self, config: str, info: TaskInfo, L: int, rate: float):
        model = build_model(get_config(config), info, seed=0).eval()
        prune_model(model, allocate(rate, len(ssm_layers(model)), model.d_model), seed=PRUNE_SEED)
        self.model = compact_model(model).eval()
        self.active = [layer.num_active for layer in ssm_layers(self.model)]
        self.window = example_input(info, 1, seq_len=L, seed=0)
        self.sample = self.window[:, :1]
        self.stream = self.model.stream(1)
        self._dir = tempfile.TemporaryDirectory()
        path = os.path.join(self._dir.name, "m.s4m")
        export_model(self.model, info, path, max_len=L)
        self.rt = runtime.load(path)
        self.rt_stream = self.rt.stream(1)
        self.sample_np = self.sample.numpy()
        self.window_np = self.window.numpy()
        # ssm_core: each layer's step coefficients (as its step uses them) and preallocated state and outputs
        H = self.model.d_model
        cpu = torch.device("cpu")
        self.core = []
        for layer in ssm_layers(self.model):
            with torch.no_grad():
                modes, scalars, active = (t.numpy() for t in layer._step_args(cpu))
            x = layer.default_state(1).numpy()
            self.core.append((modes, scalars, active, x, torch.randn(1, H).numpy(), torch.empty(1, H).numpy()))

    def _ssm_core(self):
        from s4op_kernels import _ext

        step = _ext.C().ssm_step
        for modes, scalars, active, x, u, y in self.core:
            step(modes, scalars, active, u, x, x, y, 1, activation="gelu")

    def fn(self, impl: str):
        if impl == "step":
            return lambda: self.stream.push(self.sample)
        if impl == "runtime_step":
            return lambda: self.rt_stream.push(self.sample_np)
        if impl == "recompute":
            return lambda: self.model(self.window)
        if impl == "ssm_core":
            return self._ssm_core
        return lambda: self.rt(self.window_np)


_CASES: dict = {}


def get_case(config: str, info: TaskInfo, L: int, rate: float) -> Case:
    key = (config, L, rate)
    if key not in _CASES:
        _CASES.clear()  # one case's models alive at a time
        _CASES[key] = Case(config, info, L, rate)
    return _CASES[key]


def pytest_generate_tests(metafunc):
    if "stream_case" in metafunc.fixturenames:
        rows = [(c, info, L, r) for c, info, L in cases(paper_sizes(metafunc.config)) for r in RATES]
        metafunc.parametrize("stream_case", rows, ids=[f"{c}-L{L}-rate{round(r * 100)}" for c, _, L, r in rows])


@pytest.mark.parametrize("impl", IMPLS)
def test_stream(benchmark, stream_case, impl):
    """``stream_case`` (config, info, L, rate) is parametrized by :func:`pytest_generate_tests`."""
    require_backend("cpu")  # the PyTorch contenders run the compiled core; never the reference under its name
    config, info, L, rate = stream_case
    case = get_case(config, info, L, rate)
    with torch.inference_mode():
        fn = case.fn(impl)
        fn()
        step = impl.endswith("step") or impl == "ssm_core"
        benchmark.extra_info.update(subject="stream", impl=impl, config=config, L=L, rate=rate, batch=1,
                                    active=case.active, threads=torch.get_num_threads())
        benchmark.pedantic(fn, rounds=30 if step else 10, iterations=20 if step else 1, warmup_rounds=1)


# ---------------------------------------------------------------------------------------------- the quick table
def _per_call(fn, budget_s: float = 2e-3) -> float:
    """Seconds per call of fn, timing enough calls to fill ``budget_s``."""
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        t = time.perf_counter() - t0
        if t >= budget_s:
            return t / n


def measure(case: Case, rounds: int) -> dict[str, float]:
    """Seconds per new sample of each contender: the lower quartile over ``rounds`` interleaved rounds."""
    fns = {impl: case.fn(impl) for impl in IMPLS}
    times: dict[str, list[float]] = {impl: [] for impl in IMPLS}
    with torch.inference_mode():
        for fn in fns.values():
            fn()
        for _ in range(rounds):
            for impl, fn in fns.items():
                times[impl].append(_per_call(fn))
    return {impl: statistics.quantiles(v, n=4)[0] if len(v) > 1 else v[0] for impl, v in times.items()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="per-sample latency: recurrent step vs recompute (markdown table)")
    p.add_argument("--paper-sizes", action="store_true", help="the paper's four models at their full lengths")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    full = args.paper_sizes or paper_sizes()
    print(f"threads={args.threads}, batch 1, lower quartiles of {args.rounds} interleaved rounds, microseconds per "
          "new sample\n")
    print("| model | window L | rate | active channels | step (PyTorch) | step (runtime) | SSM step only (core) "
          "| recompute (PyTorch) | recompute (runtime) | recompute / step (PyTorch) | recompute / step (runtime) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for config, info, L in cases(full):
        for rate in RATES:
            case = Case(config, info, L, rate)
            t = measure(case, args.rounds)
            us = {k: v * 1e6 for k, v in t.items()}
            print(f"| {config} | {L} | {round(rate * 100)} % | {sum(case.active)} | {us['step']:.1f} | "
                  f"{us['runtime_step']:.1f} | {us['ssm_core']:.1f} | {us['recompute']:.0f} | "
                  f"{us['recompute_runtime']:.0f} | "
                  f"{t['recompute'] / t['step']:.0f}x | {t['recompute_runtime'] / t['runtime_step']:.0f}x |",
                  flush=True)


if __name__ == "__main__":
    main()
