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


def test_ci_runs_the_readme_install_and_test_commands():
    ci = (ROOT / ".ci" / "run").read_text()
    bash = _blocks("bash")
    install = [line for line in bash[0].splitlines() if line.startswith("pip install")]
    assert install, "README's first bash block must hold the install commands"
    for line in install:
        assert line in ci, f".ci/run does not run the README's install command {line!r}"
    assert "\npytest\n" in "\n" + "\n".join(bash) + "\n", "README must show the test command `pytest`"
    assert re.search(r"^\s*pytest\s*$", ci, flags=re.M), ".ci/run must run the README's test command `pytest`"
