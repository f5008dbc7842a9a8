"""The engine's targets as paired ratios (see :func:`harness.measure_ratios`: each round times ours, the
floor, our SSM part at this rate and unpruned, and more, back to back; every timed call follows the same
untimed call; the ratios are medians of per-round ratios).  On a shared 2-core VM, timing each
implementation in its own block lets machine drift move a ratio by 30-50 %; pairing cancels it.

Run: pytest benchmarks/bench_ratios.py --benchmark-only --benchmark-json=benchmarks/ratios.json
then s4op bench-report benchmarks/ratios.json
(or, without pytest: python benchmarks/interleaved.py)
"""

from __future__ import annotations

import pytest

from harness import measure_ratios, require_backend
from shapes import BENCH_SHAPES, PRUNING_RATES

ROUNDS = 40


@pytest.mark.parametrize("rate", PRUNING_RATES, ids=lambda r: f"rate{int(r * 100)}")
@pytest.mark.parametrize("shape", BENCH_SHAPES, ids=lambda s: "B{}-H{}-N{}-L{}".format(*s))
def test_ratios(benchmark, shape, rate):
    require_backend("cpu")  # "ours" and the SSM parts are the compiled engine's
    info = measure_ratios(shape, rate, ROUNDS,
                          run_rounds=lambda one_round, n: benchmark.pedantic(one_round, rounds=n, warmup_rounds=0))
    benchmark.extra_info.update(subject="ratios", impl="paired", **info)
