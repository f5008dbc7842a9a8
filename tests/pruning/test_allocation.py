"""allocate(): the published depth-aware examples, properties of every strategy over grids, argument errors."""

from __future__ import annotations

import math

import pytest

from s4op_kernels._validate import ArgumentTypeError
from s4op_kernels.pruning import STRATEGIES, allocate, max_prunable

# facts.md (the authors' code, Python's round): (rate, n_layers, H) -> per-layer counts.
PUBLISHED = [
    pytest.param(0.1, 4, 128, [0, 7, 15, 29], id="ecg-10"),
    pytest.param(0.5, 4, 128, [0, 43, 86, 127], id="ecg-50"),
    pytest.param(0.9, 4, 128, [80, 127, 127, 127], id="ecg-90"),
    pytest.param(0.5, 6, 256, [0, 37, 74, 147, 255, 255], id="pathfinder-50"),
]

RATES = [k / 20 for k in range(21)] + [0.3, 0.7, 0.123, 0.999]
GRID = [(n, H) for n in (1, 2, 3, 4, 6, 8) for H in (1, 2, 3, 7, 16, 103)]
GRID_IDS = [f"n{n}-H{H}" for n, H in GRID]


def water_filling(target: int, n: int, H: int) -> list[float]:
    """The continuous allocation Algorithm 1 describes: layers 1..n-1 share min(target, (n-1)(H-1)) in
    proportion to 2^i, each capped at H-1 with the excess spread over the others; layer 0 gets the rest."""
    cap = H - 1
    deep = min(target, (n - 1) * cap)
    shares = [0.0] * n
    free, rest = list(range(1, n)), float(deep)
    while free and rest > 0:
        total = sum(2.0 ** i for i in free)
        full = [i for i in free if rest * 2.0 ** i / total >= cap]
        if not full:
            for i in free:
                shares[i] = rest * 2.0 ** i / total
            break
        for i in full:
            shares[i] = float(cap)
        rest -= cap * len(full)
        free = [i for i in free if i not in full]
    shares[0] = float(min(cap, target - deep))
    return shares


# ----------------------------------------------------------------------------- published examples
@pytest.mark.parametrize("strategy", ["depth_aware", "depth_aware_original"])
@pytest.mark.parametrize("rate, n, H, expected", PUBLISHED)
def test_published_depth_aware_examples(rate, n, H, expected, strategy):
    counts = allocate(rate, n, H, strategy)
    assert counts == expected
    assert sum(counts) == round(rate * H * n)


def test_default_strategy_is_depth_aware():
    assert allocate(0.5, 6, 256) == [0, 37, 74, 147, 255, 255]


def test_target_uses_pythons_round_half_to_even():
    # rate * H * n exactly 2.5 -> 2 and 1.5 -> 2 (ties to even), as the paper's code.
    for strategy in ("depth_aware", "depth_aware_original", "random"):
        assert sum(allocate(0.125, 5, 4, strategy, seed=0)) == 2
        assert sum(allocate(0.375, 1, 4, strategy, seed=0)) == 2


# ----------------------------------------------------------------------------- depth-aware properties
@pytest.mark.parametrize("strategy", ["depth_aware", "depth_aware_original"])
@pytest.mark.parametrize("n, H", GRID, ids=GRID_IDS)
def test_depth_aware_sum_caps_and_layer0_last(n, H, strategy):
    for rate in RATES:
        counts = allocate(rate, n, H, strategy)
        target = round(rate * H * n)
        assert len(counts) == n
        assert all(0 <= c <= H - 1 for c in counts), (rate, counts)  # one channel stays active
        assert sum(counts) == min(target, max_prunable(n, H)), (rate, counts)
        if counts[0] > 0:  # layer 0 only once every deeper layer is saturated
            assert all(c == H - 1 for c in counts[1:]), (rate, counts)
        deep = counts[1:]
        assert deep == sorted(deep), (rate, counts)  # deeper layers prune at least as much


@pytest.mark.parametrize("n, H", GRID, ids=GRID_IDS)
def test_depth_aware_monotone_in_rate(n, H):
    previous = [0] * n
    for rate in sorted(RATES):
        counts = allocate(rate, n, H, "depth_aware")
        assert all(c >= p for c, p in zip(counts, previous)), (rate, previous, counts)
        previous = counts


@pytest.mark.parametrize("n, H", [(6, 103), (8, 100), (4, 128), (8, 128), (6, 256)],
                         ids=["n6-H103", "n8-H100", "ecg", "listops", "pathfinder"])
def test_depth_aware_monotone_for_every_target(n, H):
    # Every reachable global target T (rate = T / (n H)), not just a grid of rates.
    previous = [0] * n
    for T in range(n * H + 1):
        counts = allocate(T / (n * H), n, H)
        assert sum(counts) == min(T, n * (H - 1))
        assert all(c >= p for c, p in zip(counts, previous)), (T, previous, counts)
        previous = counts


@pytest.mark.parametrize("n, H", [(2, 16), (4, 7), (4, 128), (6, 103), (8, 128), (6, 256)],
                         ids=["n2-H16", "n4-H7", "ecg", "n6-H103", "listops", "pathfinder"])
def test_depth_aware_is_the_water_filling_share_rounded(n, H):
    for T in range(0, n * H + 1, max(1, (n * H) // 150)):
        counts = allocate(T / (n * H), n, H)
        shares = water_filling(T, n, H)
        worst = max(abs(c - s) for c, s in zip(counts, shares))
        assert worst <= 0.5 + 1e-9, (T, counts, [round(s, 2) for s in shares])


def test_original_loop_is_not_monotone_where_depth_aware_is():
    # The round-by-round rounding of the released loop moves a channel from layer 1 to layer 2 here.
    n, H = 6, 103
    before, after = (allocate(T / (n * H), n, H, "depth_aware_original") for T in (393, 394))
    assert before == [0, 30, 57, 102, 102, 102] and after == [0, 29, 59, 102, 102, 102]
    before, after = (allocate(T / (n * H), n, H) for T in (393, 394))
    assert all(a >= b for a, b in zip(after, before)) and sum(after) == 394


def test_single_layer_prunes_layer0_up_to_cap():
    for strategy in ("depth_aware", "depth_aware_original"):
        assert allocate(0.5, 1, 10, strategy) == [5]
        assert allocate(1.0, 1, 10, strategy) == [9]


# ----------------------------------------------------------------------------- uniform, random, layerwise
@pytest.mark.parametrize("n, H", GRID, ids=GRID_IDS)
def test_uniform_same_count_everywhere_and_monotone(n, H):
    previous = 0
    for rate in sorted(RATES):
        counts = allocate(rate, n, H, "uniform")
        expected = min(round(rate * H), H - 1)
        assert counts == [expected] * n
        assert expected >= previous
        previous = expected


@pytest.mark.parametrize("seed", [0, 7, 2024], ids=lambda s: f"seed{s}")
@pytest.mark.parametrize("n, H", GRID, ids=GRID_IDS)
def test_random_sum_caps_and_nested_for_one_seed(n, H, seed):
    previous = [0] * n
    for rate in sorted(RATES):
        counts = allocate(rate, n, H, "random", seed=seed)
        assert all(0 <= c <= H - 1 for c in counts)
        assert sum(counts) == min(round(rate * H * n), n * (H - 1))
        assert all(c >= p for c, p in zip(counts, previous)), (rate, previous, counts)
        previous = counts


def test_random_is_seeded_and_spreads_over_layers():
    assert allocate(0.4, 6, 64, "random", seed=3) == allocate(0.4, 6, 64, "random", seed=3)
    draws = [tuple(allocate(0.4, 6, 64, "random", seed=s)) for s in range(40)]
    assert len(set(draws)) > 30  # different seeds give different splits
    # Uniform global channels: each layer's mean count is near the target / n_layers.
    target = round(0.4 * 64 * 6)
    for layer in range(6):
        mean = sum(d[layer] for d in draws) / len(draws)
        assert abs(mean - target / 6) < 3.0, (layer, mean)


@pytest.mark.parametrize("n", [1, 2, 4, 5, 8])
def test_layerwise_removes_the_deepest_whole_layers(n):
    H = 16
    for rate in RATES:
        k = round(rate * n)
        assert allocate(rate, n, H, "layerwise") == [0] * (n - k) + [H] * k
    assert allocate(1.0, n, H, "layerwise") == [H] * n  # the only strategy that may empty a layer


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_zero_rate_prunes_nothing(strategy):
    assert allocate(0.0, 4, 32, strategy, seed=1) == [0, 0, 0, 0]


@pytest.mark.parametrize("strategy", [s for s in STRATEGIES if s != "layerwise"])
def test_full_rate_keeps_one_channel_per_layer(strategy):
    assert allocate(1.0, 4, 32, strategy, seed=1) == [31, 31, 31, 31]


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("rate, exc", [(-0.1, ValueError), (1.5, ValueError), (math.nan, ValueError),
                                       (math.inf, ValueError), (True, TypeError), ("0.5", TypeError), (None, TypeError)])
def test_rate_validation(rate, exc):
    with pytest.raises(exc, match="rate"):
        allocate(rate, 4, 128)


@pytest.mark.parametrize("name, kwargs, exc", [
    ("n_layers", dict(n_layers=0), ValueError),
    ("n_layers", dict(n_layers=2.0), TypeError),
    ("n_layers", dict(n_layers=True), TypeError),
    ("H", dict(H=0), ValueError),
    ("H", dict(H=-3), ValueError),
    ("H", dict(H="128"), TypeError),
])
def test_size_validation(name, kwargs, exc):
    args = dict(rate=0.5, n_layers=4, H=128) | kwargs
    with pytest.raises(exc, match=name):
        allocate(args["rate"], args["n_layers"], args["H"])


def test_unknown_strategy_lists_the_choices():
    with pytest.raises(ValueError, match="depth_aware.*uniform.*random.*layerwise"):
        allocate(0.5, 4, 128, "exponential")


def test_bad_seed():
    with pytest.raises(TypeError, match="seed"):
        allocate(0.5, 4, 128, "random", seed=1.5)
    for bad in (1.5, True, "1"):
        with pytest.raises(ArgumentTypeError, match=r"allocate\(seed\): expected an integer, got"):
            allocate(0.5, 4, 128, "random", seed=bad)


def test_rate_messages_name_the_function_and_argument():
    with pytest.raises(ValueError, match=r"allocate\(rate\): expected a finite number >= 0.0 and <= 1.0, got 1.5"):
        allocate(1.5, 4, 128)
    with pytest.raises(ArgumentTypeError, match=r"allocate\(rate\): expected a finite number .*, got '0.5'"):
        allocate("0.5", 4, 128)


def test_numpy_like_integers_are_accepted():
    import numpy as np

    assert allocate(np.float64(0.5), np.int64(4), np.int32(128)) == [0, 43, 86, 127]
