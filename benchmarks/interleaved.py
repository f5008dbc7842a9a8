"""The paired-ratio table of bench_ratios.py without pytest: the same measurement
(:func:`harness.measure_ratios`), printed as markdown.

    python benchmarks/interleaved.py [rounds]        # default 40 rounds per case
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from s4op_kernels.app.benchreport import ratio_table

sys.path[:0] = [str(Path(__file__).resolve().parent.parent / "tests"), str(Path(__file__).resolve().parent)]
from harness import measure_ratios  # noqa: E402
from shapes import BENCH_SHAPES, PRUNING_RATES  # noqa: E402


def main(rounds: int = 40) -> None:
    from s4op_kernels import _ext

    print(f"threads={torch.get_num_threads()}, engine threads on: {_ext.threading_backend()}, "
          f"medians of {rounds} paired rounds\n")
    rows = [measure_ratios(shape, rate, rounds) for shape in BENCH_SHAPES for rate in PRUNING_RATES]
    print("\n".join(ratio_table(rows)))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
