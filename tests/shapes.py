"""The one source of shapes, shared by tests and benchmarks.

Each shape is (B, H, N, L): batch, channels (d_model), state size (d_state), sequence length.
"""

from __future__ import annotations

import pytest

# Odd and prime H, H = 1, L = 1, non-power-of-two L, long L, batch 1 and > 1.
LAYER_SHAPES = [
    pytest.param((1, 1, 2, 1), id="B1-H1-N2-L1"),
    pytest.param((2, 1, 64, 17), id="B2-H1-N64-L17"),
    pytest.param((3, 7, 4, 1), id="B3-H7-N4-L1"),
    pytest.param((2, 13, 8, 100), id="B2-H13-N8-L100"),
    pytest.param((1, 5, 64, 257), id="B1-H5-N64-L257"),
    pytest.param((2, 31, 16, 1000), id="B2-H31-N16-L1000"),
    pytest.param((1, 4, 64, 4096), id="B1-H4-N64-L4096"),
]

# Fractions of channels pruned: none, some, all.
PRUNE_FRACTIONS = [pytest.param(0.0, id="prune0"), pytest.param(0.5, id="prune50"), pytest.param(1.0, id="prune100")]

# The paper's layer sizes and the engine benchmarks' shapes (B, H, N, L).
PAPER_SHAPES = {
    "imdb": (1, 256, 64, 4096),
    "listops": (1, 128, 64, 2048),
    "pathfinder": (1, 256, 64, 1024),
    "ecg": (1, 128, 64, 4096),
}
BENCH_SHAPES = [(1, 256, 64, 4096), (8, 128, 64, 1024)]
# One layer of the main job's model (`s4op run`: ecg-embedded, 4 x S4D, batch 1).
MAIN_JOB_SHAPE = (1, 32, 32, 256)
PRUNING_RATES = [0.0, 0.3, 0.7, 0.9]
