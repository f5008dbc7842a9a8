"""The engine's targets as paired ratios: every round times ours, the floor, our SSM part at this rate and
our SSM part of the same layer unpruned, back to back, and the ratios are taken round by round (median
over rounds).  On a shared 2-core VM, timing each implementation in its own block lets machine drift move
a ratio by 30-50 %; pairing cancels it.  Every timed call follows the same untimed call (the previous
layer's output mixing), so none gains or loses by what happened to run before it; the 0 % row, where
"SSM" and "SSM dense" are the same computation, is the control (ratio 1).

Run: pytest benchmarks/bench_ratios.py --benchmark-only --benchmark-json=benchmarks/ratios.json
then python benchmarks/summarize.py benchmarks/ratios.json
"""

from __future__ import annotations

import statistics
import time

import pytest
import torch

from harness import Floor, ours, setup_layer
from s4op_kernels.ops import fft_size, sparse_fftconv
from shapes import BENCH_SHAPES, PRUNING_RATES

ROUNDS = 40


@pytest.mark.parametrize("rate", PRUNING_RATES, ids=lambda r: f"rate{int(r * 100)}")
@pytest.mark.parametrize("shape", BENCH_SHAPES, ids=lambda s: "B{}-H{}-N{}-L{}".format(*s))
def test_ratios(benchmark, shape, rate):
    layer, u = setup_layer(shape, rate)
    dense, _ = setup_layer(shape, 0.0)
    with torch.inference_mode():
        floor = Floor(layer, u)
        none = torch.zeros(0, dtype=torch.int64)
        n_fft = fft_size(u.shape[-1])
        k0, d0 = torch.zeros(0, n_fft // 2 + 1, dtype=torch.complex64), torch.zeros(0)
        fns = {"ours": lambda: ours(layer, u), "floor": floor, "ssm": lambda: layer._ssm(u),
               "ssm_dense": lambda: dense._ssm(u),
               # the pass the layer runs in inference (SSM + GELU fused), and a GELU-only pass over all rows
               "fused": lambda: layer._ssm(u, "gelu"), "fused_dense": lambda: dense._ssm(u, "gelu"),
               "gelu_pass": lambda: sparse_fftconv(u, k0, d0, none, n_fft, "gelu"),
               # the memory floor of any out-of-place op on u: read it once, write it once
               "clone": lambda: u.clone()}
        times = {k: [] for k in fns}
        orders = [list(fns), list(reversed(fns))]
        # What runs just before a call moves its time: the floor's MKL calls, say, leave megabytes of dirty
        # cache lines behind that the next call pays to write back (0.05-0.08 ms measured at 90 %).  So every
        # timed call gets the same untimed predecessor, what precedes an SSM in a model: the previous layer's
        # output mixing, a (2H, H + 1) x (B, H + 1, L) GEMM.
        g = torch.Generator().manual_seed(1)
        B, H, L = u.shape
        w_prev, y_prev = torch.randn(2 * H, H + 1, generator=g), torch.randn(B, H + 1, L, generator=g)

        def one_round():
            # The order also alternates round by round.
            for k in orders[len(times["ours"]) % 2]:
                torch.matmul(w_prev, y_prev)
                t = time.perf_counter()
                fns[k]()
                times[k].append(time.perf_counter() - t)

        one_round()  # warm-up: plans, kernel-spectrum caches
        for v in times.values():
            v.clear()
        benchmark.pedantic(one_round, rounds=ROUNDS, warmup_rounds=0)
    med = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    ratio = statistics.median(a / b for a, b in zip(times["ours"], times["floor"]))
    ssm_fraction = statistics.median(a / b for a, b in zip(times["ssm"], times["ssm_dense"]))
    # SSM work inside the fused inference pass: the fused pass minus a GELU-only pass, round by round
    fused_fraction = statistics.median(
        (f - g) / (fd - g) for f, fd, g in zip(times["fused"], times["fused_dense"], times["gelu_pass"]))
    active_fraction = layer.num_active / layer.d_model
    benchmark.extra_info.update(
        subject="ratios", shape=list(shape), rate=rate, impl="paired", threads=torch.get_num_threads(),
        **{f"{k}_ms": v for k, v in med.items()}, ours_over_floor=ratio, ssm_fraction=ssm_fraction,
        active_fraction=active_fraction, ssm_deviation=ssm_fraction - active_fraction,
        fused_ssm_fraction=fused_fraction, fused_ssm_deviation=fused_fraction - active_fraction,
    )
