"""S4oP pruning: per-layer allocation, channel selection, parameter counts and latency probes.

>>> from s4op_kernels.pruning import allocate, prune_model, count_parameters, measure_latency
>>> counts = allocate(0.3, n_layers=len(ssm_layers(model)), H=128)        # the paper's depth-aware policy
>>> prune_model(model, counts, seed=42)                                   # random channels (section III-B)
>>> count_parameters(model), measure_latency(model, example_input(info))

Allocation counts are totals per layer, so calling :func:`prune_model` again with the counts of a higher
rate prunes only the difference among the still-active channels (nested, incremental pruning).
"""

from s4op_kernels.pruning.allocation import STRATEGIES, allocate, max_prunable
from s4op_kernels.pruning.executor import EXECUTORS, CandidateFailedError, Executor, make_executor
from s4op_kernels.pruning.latency import LatencyStats, example_input, measure_latency
from s4op_kernels.pruning.params import compact_model, count_parameters
from s4op_kernels.pruning.search import (
    DEFAULT_RATES,
    PAPER_SEEDS,
    IncrementalPruner,
    OneShotPruner,
    PruningResult,
    SearchMismatchError,
)
from s4op_kernels.pruning.selection import (
    SELECTORS,
    PrunableSpec,
    is_prunable,
    make_generator,
    named_ssm_layers,
    prunable_spec,
    prunable_types,
    prune_model,
    register_prunable,
    select_channels,
    ssm_layers,
)

__all__ = [
    "STRATEGIES", "allocate", "max_prunable",
    "SELECTORS", "PrunableSpec", "register_prunable", "prunable_types", "prunable_spec", "is_prunable",
    "ssm_layers", "named_ssm_layers", "make_generator", "select_channels", "prune_model",
    "count_parameters", "compact_model",
    "LatencyStats", "measure_latency", "example_input",
    "IncrementalPruner", "OneShotPruner", "PruningResult", "SearchMismatchError", "DEFAULT_RATES", "PAPER_SEEDS",
    "EXECUTORS", "Executor", "make_executor", "CandidateFailedError",
]
