"""Layer timings with the implementations interleaved round by round (ours, floor, SSM part, FFT pair), so
slow drifts of the machine hit all of them alike.  pytest-benchmark runs each case in a block, which on a
2-core VM lets the order of runs move results by 30-50 %.

    python benchmarks/interleaved.py            # torch's default OpenMP wait policy
    OMP_WAIT_POLICY=PASSIVE python benchmarks/interleaved.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path[:0] = [str(Path(__file__).resolve().parent.parent / "tests"), str(Path(__file__).resolve().parent)]
from harness import Floor, ours, setup_layer  # noqa: E402
from shapes import BENCH_SHAPES, PRUNING_RATES  # noqa: E402


def main(rounds: int = 40) -> None:
    from s4op_kernels import _ext

    print(f"threads={torch.get_num_threads()} OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(default)')}, "
          f"engine threads on: {_ext.threading_backend()}, median of {rounds} interleaved rounds, ms\n")
    print("| shape | rate | ours | floor | ours / floor | SSM part (ours) | SSM / dense SSM - active fraction "
          "| rfft+irfft pair (MKL) |")
    print("|---|---|---|---|---|---|---|---|")
    for shape in BENCH_SHAPES:
        dense_ssm = None
        for rate in PRUNING_RATES:
            layer, u = setup_layer(shape, rate)
            with torch.inference_mode():
                floor = Floor(layer, u)
                fns = {"ours": lambda: ours(layer, u), "floor": floor, "ssm": lambda: layer._ssm(u), "pair": floor.fft_pair}
                times = {k: [] for k in fns}
                for f in fns.values():
                    f()
                    f()
                for _ in range(rounds):
                    for k, f in fns.items():
                        t = time.perf_counter()
                        f()
                        times[k].append(time.perf_counter() - t)
            m = {k: 1e3 * statistics.median(v) for k, v in times.items()}
            dense_ssm = m["ssm"] if dense_ssm is None else dense_ssm  # PRUNING_RATES starts at 0 %
            deviation = m["ssm"] / dense_ssm - layer.num_active / layer.d_model
            print(f"| B={shape[0]} H={shape[1]} L={shape[3]} | {int(rate * 100)} % | {m['ours']:.2f} | {m['floor']:.2f} | "
                  f"{m['ours'] / m['floor']:.2f} | {m['ssm']:.2f} | {deviation:+.3f} | {m['pair']:.2f} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
