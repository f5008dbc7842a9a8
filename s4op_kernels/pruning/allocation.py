"""How many channels to prune in each layer for a global pruning rate.

``allocate(rate, n_layers, H, strategy)`` returns one count per layer, layer 0 nearest the input.  The
counts are *totals* (channels pruned in that layer at this rate), so the incremental search prunes only the
difference between two rates.

Strategies (S4oP, section IV-B compares all four):

``"depth_aware"`` (default)
    The paper's Algorithm 1: deeper layers get exponentially larger shares, layer 0 is pruned last.
``"depth_aware_original"``
    The same policy executed the way the authors' released code runs it (round by round); kept for
    bit-exact comparison with their published allocations.  Not monotone in the rate, see below.
``"uniform"``
    ``round(rate * H)`` channels in every layer.
``"random"``
    ``round(rate * H * n_layers)`` channels drawn uniformly at random from the whole model.
``"layerwise"``
    Whole layers, deepest first (the paper's Table I ablation removes whole layers).

Every strategy except ``"layerwise"`` leaves at least one active channel per layer (at most ``H - 1``
pruned), as the paper requires.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Optional

import torch

from s4op_kernels._validate import check_float, check_int

STRATEGIES = ("depth_aware", "depth_aware_original", "uniform", "random", "layerwise")


def allocate(rate: float, n_layers: int, H: int, strategy: str = "depth_aware", *, seed: Optional[int] = None) -> list[int]:
    """Number of channels to prune in each of ``n_layers`` layers of ``H`` channels at pruning ``rate``.

    Args:
        rate: fraction of all ``H * n_layers`` channels to prune, in [0, 1].
        n_layers: number of prunable layers (>= 1); index 0 is the layer nearest the input.
        H: channels per layer (>= 1).
        strategy: one of :data:`STRATEGIES` (see the module docstring and below).
        seed: seeds the ``"random"`` strategy (``None``: torch's global generator); the deterministic
            strategies ignore it, so callers may pass the same arguments to every strategy.

    Returns:
        ``counts``: list of ``n_layers`` ints, ``counts[i]`` channels pruned in layer ``i``.

    The global target is ``T = round(rate * H * n_layers)`` with Python's ``round`` (ties to even), as in
    the paper's code; at most ``n_layers * (H - 1)`` channels can be pruned while keeping one per layer.

    **depth_aware** (S4oP, Algorithm 1).  The paper distributes ``T`` over layers ``1..n-1`` with weights
    ``2^i``, saturates a layer at ``H - 1`` pruned channels, redistributes what a saturated layer cannot
    take over the remaining layers with the same weights, and prunes layer 0 only once every deeper layer
    is saturated.  Without rounding this is a water-filling: unsaturated layers get ``c * 2^i`` with one
    constant ``c``, saturated ones ``H - 1``.  Integer counts, step by step:

    1. ``T_deep = min(T, (n-1) * (H-1))`` channels go to layers ``1..n-1``; layer 0 gets
       ``min(H-1, T - T_deep)`` (non-zero only when every deeper layer is saturated).
    2. The ``T_deep`` channels are handed out one at a time (the Sainte-Lague highest-averages rule):
       the next channel goes to the unsaturated layer ``i >= 1`` with the largest ``2^i / (2 a_i + 1)``,
       where ``a_i`` is its count so far.  Equivalently, layer ``i``'s ``k``-th channel has the threshold
       ``(2k - 1) / 2^i`` and the ``T_deep`` smallest thresholds win.  Thresholds of different layers
       never tie (their odd parts differ), so the result is unique.

    The result sums to ``T`` (or to the cap), is the paper's water-filling share rounded to the nearest
    integer in every configuration we checked (tests/pruning/test_allocation.py), reproduces the
    published examples (ECG 4 x 128: 10 % -> [0, 7, 15, 29], 50 % -> [0, 43, 86, 127], 90 % ->
    [80, 127, 127, 127]; Pathfinder 6 x 256, 50 % -> [0, 37, 74, 147, 255, 255]) and, because channels
    are only ever added as ``T`` grows, every layer's count is non-decreasing in ``rate`` -- which the
    incremental search needs, since a pruned channel cannot be re-activated.

    **depth_aware_original**.  The authors' code rounds round by round instead: each round gives every
    unsaturated layer ``round(R * 2^i / sum_j 2^j)`` more channels, ``R`` being the part of ``T`` still
    unallocated; a layer whose total would reach ``H - 1`` is set to ``H - 1`` and leaves; repeat while
    ``R > 0``; once layers ``1..n-1`` are all saturated, layer 0 takes the rest (up to ``H - 1``).  It
    agrees with ``depth_aware`` on the examples above and on most configurations, but rounding twice
    can move a channel between layers and break monotonicity (6 layers of 103 channels: ``T`` = 393 ->
    394 takes layer 1 from 30 to 29).  With a single layer it prunes layer 0 like ``depth_aware`` (the
    released loop never touches it then).

    **uniform**: ``min(round(rate * H), H - 1)`` in every layer (the sum is ``n`` times that, not ``T``).

    **random**: a seeded random order of all ``n * H`` channels; walk it and prune each channel unless
    its layer already has ``H - 1`` pruned, until ``T`` are pruned.  The counts are those of a uniformly
    random global channel set with one channel kept per layer; for one seed, a larger rate prunes a
    superset, so the counts are monotone in ``rate`` too.

    **layerwise**: ``k = round(rate * n_layers)`` whole layers (all ``H`` channels), the deepest ``k``
    ones -- the paper (Table I) finds deeper layers the most tolerant to removal.  The only strategy that
    can leave a layer with no active channel.

    Raises:
        TypeError / ValueError: an argument of the wrong type or out of range, or an unknown strategy.
    """
    rate = _check_rate(rate)
    n_layers = _check_int("allocate", "n_layers", n_layers)
    H = _check_int("allocate", "H", H)
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise ValueError(f"allocate(strategy): unknown strategy {strategy!r}; choose one of {list(STRATEGIES)}")
    if seed is not None:
        seed = check_int(seed, "seed", func="allocate")

    target = round(rate * H * n_layers)  # the paper's order of operations, Python's round (ties to even)
    if strategy == "depth_aware":
        return _depth_aware(target, n_layers, H)
    if strategy == "depth_aware_original":
        return _depth_aware_original(target, n_layers, H)
    if strategy == "uniform":
        return [min(round(rate * H), H - 1)] * n_layers
    if strategy == "random":
        return _random(target, n_layers, H, seed)
    k = round(rate * n_layers)
    return [0] * (n_layers - k) + [H] * k


def max_prunable(n_layers: int, H: int) -> int:
    """The most channels any strategy but ``"layerwise"`` prunes: ``n_layers * (H - 1)``."""
    return _check_int("max_prunable", "n_layers", n_layers) * (_check_int("max_prunable", "H", H) - 1)


# ---------------------------------------------------------------------------------------------- strategies
def _depth_aware(target: int, n: int, H: int) -> list[int]:
    cap = H - 1
    deep = min(target, (n - 1) * cap)
    counts = [0] * n
    if deep > 0:
        # Layer i's k-th channel (k = 1..cap) has threshold (2k - 1) / 2^i; scaled by 2^(n-1) the keys are
        # exact Python ints, distinct across layers, so sorting them orders the channels without ties.
        keys = [((2 * k - 1) << (n - 1 - i), i) for i in range(1, n) for k in range(1, cap + 1)]
        keys.sort()
        for _, i in keys[:deep]:
            counts[i] += 1
    counts[0] = min(cap, target - deep)
    return counts


def _depth_aware_original(target: int, n: int, H: int) -> list[int]:
    cap = H - 1
    counts = [0] * n
    open_layers = list(range(1, n)) or [0]
    remaining = target
    while open_layers and remaining > 0:
        total_weight = sum(1 << i for i in open_layers)
        still_open = []
        for i in open_layers:
            # Exact rational share, rounded like Python's round(); the shares are never exactly x.5 here
            # (their denominators are odd), so float and exact arithmetic agree.
            share = round(Fraction(remaining << i, total_weight))
            if counts[i] + share >= cap:
                counts[i] = cap
            else:
                counts[i] += share
                still_open.append(i)
        remaining = target - sum(counts)
        open_layers = still_open
        if not open_layers and counts[0] < cap and remaining > 0:
            open_layers = [0]
    return counts


def _random(target: int, n: int, H: int, seed: Optional[int]) -> list[int]:
    cap = H - 1
    target = min(target, n * cap)
    if target == 0:
        return [0] * n
    generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    order = torch.randperm(n * H, generator=generator)  # a random order of all channels (global ids)
    layer = order // H
    # occurrence[j]: how many channels of layer[j]'s layer come before position j in the order.
    by_layer = torch.argsort(layer, stable=True)
    occurrence = torch.empty_like(order)
    occurrence[by_layer] = torch.arange(n * H) - layer[by_layer] * H
    taken = layer[occurrence < cap][:target]  # skip a layer's last channel: one stays active
    return torch.bincount(taken, minlength=n).tolist()


# ---------------------------------------------------------------------------------------------- validation
def _check_rate(rate) -> float:
    return check_float(rate, "rate", func="allocate", minimum=0.0, maximum=1.0)


def _check_int(func: str, name: str, value) -> int:
    return check_int(value, name, func=func, minimum=1)
