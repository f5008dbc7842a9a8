import pathlib

import pytest

import s4op_kernels


def pytest_configure(config):
    # Tests must exercise the installed package (with its compiled _C), not the bare source tree.
    src = pathlib.Path(__file__).resolve().parent.parent / "s4op_kernels"
    if pathlib.Path(s4op_kernels.__file__).resolve().parent == src and not any(src.glob("_C*.so")):
        raise pytest.UsageError(
            "s4op_kernels was imported from the source tree, which has no compiled _C. Run `pip install .` "
            "and run `pytest` (not `python -m pytest`) so the installed package is imported."
        )


def pytest_terminal_summary(terminalreporter):
    from tolerances import LARGEST

    if LARGEST:
        terminalreporter.section("largest relative error against the float64 formulas")
        for dtype, (err, where) in sorted(LARGEST.items(), key=lambda kv: str(kv[0])):
            terminalreporter.write_line(f"{str(dtype):>14}: {err:.3e}  at {where}")
