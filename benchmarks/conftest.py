"""Options of the benchmark suite (the guard against a source-tree import is the root conftest.py's, shared
with tests/).

``--paper-sizes`` (or ``S4OP_PAPER_SIZES=1``): bench_model.py and bench_scaling.py run the paper's full
configurations, every pruning rate and the longest sequences, instead of the reduced defaults that keep
``pytest benchmarks/ --benchmark-only`` short on a small machine.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser):
    parser.addoption("--paper-sizes", action="store_true", default=False,
                     help="benchmarks: the paper's full model configurations, all pruning rates and the longest "
                          "sequences (slow); same as S4OP_PAPER_SIZES=1")


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config, machine_info):
    """What the report's header needs besides pytest-benchmark's CPU description: versions and threads."""
    import torch

    import s4op_kernels
    from harness import paper_sizes

    machine_info["s4op"] = dict(
        torch=torch.__version__, s4op_kernels=s4op_kernels.__version__, threads=torch.get_num_threads(),
        backends=s4op_kernels.available_backends(), paper_sizes=paper_sizes(config),
    )
