"""One S4D layer per pruning rate: the reference algorithm, the paper's pruned model, the floor (FFTs of
the active channels + output 1x1 conv) and our engine (eval mode, kernel spectrum cached).

Run: pytest benchmarks/bench_layer.py --benchmark-only --benchmark-json=benchmarks/layer.json
then s4op bench-report benchmarks/layer.json benchmarks/ops.json
"""

from __future__ import annotations

import pytest
import torch

from harness import (Floor, largest_allocation, ours, paper_pruned_model, reference_algorithm, require_backend,
                     setup_layer)
from shapes import BENCH_SHAPES, PRUNING_RATES

IMPLS = ["reference", "paper_pruned", "floor", "ours"]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("rate", PRUNING_RATES, ids=lambda r: f"rate{int(r * 100)}")
@pytest.mark.parametrize("shape", BENCH_SHAPES, ids=lambda s: "B{}-H{}-N{}-L{}".format(*s))
def test_layer(benchmark, shape, rate, impl):
    if impl == "ours":
        require_backend("cpu")  # skipped, never the pure-PyTorch path under our name
    layer, u = setup_layer(shape, rate)
    if impl == "reference":
        fn = lambda: reference_algorithm(layer, u)  # noqa: E731
    elif impl == "paper_pruned":
        fn = lambda: paper_pruned_model(layer, u)  # noqa: E731
    elif impl == "floor":
        fn = Floor(layer, u)
    else:
        fn = lambda: ours(layer, u)  # noqa: E731
    with torch.inference_mode():
        fn()  # warm-up: plans, caches
        benchmark.extra_info.update(
            subject="layer", impl=impl, rate=rate, shape=list(shape), threads=torch.get_num_threads(),
            input_bytes=u.numel() * u.element_size(), largest_alloc_bytes=largest_allocation(fn),
        )
        benchmark.pedantic(fn, rounds=7 if impl == "reference" else 30, warmup_rounds=1)
