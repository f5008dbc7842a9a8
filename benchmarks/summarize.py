"""Print the Markdown report of pytest-benchmark JSON files of this suite: a thin wrapper of
``s4op bench-report`` (``s4op_kernels.app.benchreport``, the suite's one formatter).

    python benchmarks/summarize.py benchmarks/layer.json benchmarks/ops.json
    s4op bench-report benchmarks/layer.json benchmarks/ops.json [-o report.md] [--plots plots/]
"""

from __future__ import annotations

import sys

from s4op_kernels.app.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["bench-report", *sys.argv[1:]]))
