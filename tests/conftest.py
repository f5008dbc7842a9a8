# The guard that refuses a source-tree import (python -m pytest from the root) is the root conftest.py's,
# shared with benchmarks/.


def pytest_terminal_summary(terminalreporter):
    from tolerances import LARGEST

    if LARGEST:
        terminalreporter.section("largest relative error against the float64 formulas")
        for dtype, (err, where) in sorted(LARGEST.items(), key=lambda kv: str(kv[0])):
            terminalreporter.write_line(f"{str(dtype):>14}: {err:.3e}  at {where}")
