"""The README is the user's door: its Python examples must run and .ci/run must do what it says."""

from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_python_examples_run(index):
    exec(compile(_blocks("python")[index], f"README.md[python block {index}]", "exec"), {})


def test_ci_runs_the_readme_commands_and_make_installs_like_the_manual_steps():
    ci = (ROOT / ".ci" / "run").read_text()
    bash = "\n".join(_blocks("bash"))
    for command in ("make test", "make run"):
        assert re.search(rf"^{command}\b", bash, flags=re.M), f"README must show `{command}`"
        assert re.search(rf"^(time )?{command}\b", ci, flags=re.M), f".ci/run must run the README's `{command}`"
    # The Makefile installs what the README's manual steps install, in the same order (torch first).
    manual = [line for line in bash.splitlines() if line.startswith("pip install")]
    assert manual == ["pip install torch==2.13.0", 'pip install ".[test]"'], manual
    makefile = (ROOT / "Makefile").read_text()
    assert "TORCH ?= torch==2.13.0" in makefile and 'pip install ".[test]"' in makefile
    assert makefile.index("$(TORCH_STAMP):") < makefile.index("$(STAMP): $(TORCH_STAMP)")
    assert re.search(r"^pytest$", bash, flags=re.M), "README must show the manual test command `pytest`"
