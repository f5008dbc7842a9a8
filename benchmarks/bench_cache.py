"""What the inference cache's exact check costs (issue 10): paired rounds, in one process, of the same layer
(or model) whose caches are checked exactly (``TensorSnapshot``: storage, dtype and a memcmp of the bytes
per forward, as shipped) and of a copy whose caches are checked by the former (version, data pointer)
token, which missed in-place edits through ``.data``.  Also the cached lookup alone, both ways.  Shapes:
one layer of the main job (``s4op run``) and its whole ecg-embedded model at batch 1, and the paper's layer
sizes; dense and 90 % pruned (compacted, as deployed).  Medians of per-round ratios, so machine drift
cancels.

Run: pytest benchmarks/bench_cache.py --benchmark-only --benchmark-json=benchmarks/cache.json
then s4op bench-report benchmarks/cache.json
"""

from __future__ import annotations

import copy
import statistics
import time

import pytest
import torch

from harness import require_backend, setup_layer
from shapes import MAIN_JOB_SHAPE, PAPER_SHAPES

SHAPES = [MAIN_JOB_SHAPE, *sorted(set(PAPER_SHAPES.values()))]
ROUNDS = 30


class VersionToken:
    """The check before issue 10 (the same tensors, each version counter and data pointer), for comparison
    only: it cannot see writes through ``.data``."""

    def __init__(self, tensors):
        self.token = [(t, t._version, t.data_ptr()) for t in tensors]

    def matches(self, tensors) -> bool:
        if len(tensors) != len(self.token):
            return False
        for (t, version, ptr), x in zip(self.token, tensors):
            if t is not x or version != x._version or ptr != x.data_ptr():
                return False
        return True


def _with_version_tokens(layer):
    """The layer's filled caches, re-keyed by VersionToken instead of TensorSnapshot."""
    layer._conv_cache = {k: (VersionToken(layer._ssm_tensor_list()), v) for k, (_, v) in layer._conv_cache.items()}
    conv = layer.output_linear[0]
    layer._folded_cache = (VersionToken((conv.weight, conv.bias)), layer._folded_cache[1])


def _layers(model):
    from s4op_kernels import S4DLayer

    return [m for m in model.modules() if isinstance(m, S4DLayer)]


def _main_job_model(rate):
    from s4op_kernels.data.base import TaskInfo
    from s4op_kernels.models import build_model, get_config
    from s4op_kernels.pruning import allocate, prune_model, ssm_layers
    from s4op_kernels.pruning.params import compact_model

    B, H, _, L = MAIN_JOB_SHAPE
    model = build_model(get_config("ecg-embedded"), TaskInfo("ecg-synthetic", 6, L, True, in_channels=2), seed=0)
    if rate:
        prune_model(model, allocate(rate, len(ssm_layers(model)), H), seed=7)
    return compact_model(model).eval(), torch.randn(B, L, 2, generator=torch.Generator().manual_seed(0))


def _paired(fns: dict, iterations: int, rounds: int, run_rounds) -> dict:
    times = {k: [] for k in fns}
    orders, first = [list(fns), list(reversed(fns))], next(iter(fns))

    def one_round():  # the order alternates round by round
        for k in orders[len(times[first]) % 2]:
            t = time.perf_counter()
            for _ in range(iterations):
                fns[k]()
            times[k].append((time.perf_counter() - t) / iterations)

    one_round()
    for v in times.values():
        v.clear()
    run_rounds(one_round, rounds)
    return {k: statistics.median(v) for k, v in times.items()}, times


@pytest.mark.parametrize("rate", [0.0, 0.9], ids=lambda r: f"rate{int(r * 100)}")
@pytest.mark.parametrize("shape", SHAPES + ["main-job-model"], ids=lambda s: s if isinstance(s, str) else
                         "B{}-H{}-N{}-L{}".format(*s))
def test_cache_check(benchmark, shape, rate):
    require_backend("cpu")  # the forwards compared are the compiled engine's
    model_level = shape == "main-job-model"
    if model_level:
        exact, x = _main_job_model(rate)
        shape = MAIN_JOB_SHAPE
    else:
        layer, x = setup_layer(shape, rate)
        exact = (layer.compact() if rate else layer).eval()
    token, control = copy.deepcopy(exact), copy.deepcopy(exact)
    with torch.inference_mode():
        exact(x), token(x), control(x)  # fill the caches
        for layer in _layers(token) + _layers(control):
            _with_version_tokens(layer)
        # control: a second version-token copy, so control / token shows the noise of the ratio itself
        fns = {"exact": lambda: exact(x), "token": lambda: token(x), "control": lambda: control(x)}
        if not model_level:
            L, ce, ct = x.shape[-1], exact.output_linear[0], token.output_linear[0]
            fns["lookup_exact"] = lambda: (exact._conv_args(L, x.device),
                                           exact._mixing_weights(ce.weight, ce.bias, False))
            fns["lookup_token"] = lambda: (token._conv_args(L, x.device),
                                           token._mixing_weights(ct.weight, ct.bias, False))
        iterations = 100 if shape == MAIN_JOB_SHAPE else 5
        medians, times = _paired(fns, iterations, ROUNDS,
                                 lambda one_round, n: benchmark.pedantic(one_round, rounds=n, warmup_rounds=0))
        for layer in _layers(exact) + _layers(token) + _layers(control):  # no rebuild was timed
            assert len(layer._conv_cache) == 1 and layer._folded_cache is not None
    ratio = statistics.median(a / b for a, b in zip(times["exact"], times["token"]))
    control_ratios = [a / b for a, b in zip(times["control"], times["token"])]
    q1, _, q3 = statistics.quantiles(control_ratios, n=4)
    benchmark.extra_info.update(
        subject="cache", impl="model" if model_level else "layer", rate=rate, shape=list(shape),
        threads=torch.get_num_threads(), exact_over_token=ratio, control_over_token=statistics.median(control_ratios),
        control_iqr=[q1, q3], **{f"{k}_us": 1e6 * v for k, v in medians.items()})
