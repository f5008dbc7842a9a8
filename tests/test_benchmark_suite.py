"""The benchmark suite cannot lie: a source-tree import (``python -m pytest`` from the repository root) is refused
by the one guard of tests/ and benchmarks/ (the root conftest.py), and a contender whose backend is unavailable
is skipped with its reason, never timed as another implementation under its name."""

from __future__ import annotations

import importlib.util
import pathlib
import shutil
import subprocess
import sys

import pytest

import s4op_kernels

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _root_conftest():
    spec = importlib.util.spec_from_file_location("s4op_root_conftest", ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_tree(root: pathlib.Path, with_extension: bool) -> pathlib.Path:
    pkg = root / "s4op_kernels"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    if with_extension:
        (pkg / "_C.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    return pkg / "__init__.py"


def test_guard_refuses_source_tree_without_extension(tmp_path):
    guard = _root_conftest().source_tree_problem
    message = guard(str(_fake_tree(tmp_path, with_extension=False)), tmp_path)
    assert message is not None
    assert "source tree" in message and "no compiled _C" in message
    assert "python -m pytest" in message and "pip install ." in message  # the one-line fix
    assert "\n" not in message


def test_guard_accepts_installed_package_and_in_place_build(tmp_path):
    guard = _root_conftest().source_tree_problem
    # an in-place build next to the sources is a real build
    assert guard(str(_fake_tree(tmp_path / "inplace", with_extension=True)), tmp_path / "inplace") is None
    # a package imported from anywhere else (site-packages) is not the source tree
    other = _fake_tree(tmp_path / "site-packages", with_extension=False)
    assert guard(str(other), tmp_path / "repo") is None
    # this very session imports the installed package
    assert guard(s4op_kernels.__file__) is None


def test_python_m_pytest_from_a_source_copy_is_refused(tmp_path):
    """End to end: ``python -m pytest benchmarks/`` run from a copy of the repository (its sources, no _C)."""
    for name in ("conftest.py", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "s4op_kernels", tmp_path / "s4op_kernels",
                    ignore=shutil.ignore_patterns("_C*.so", "_C*.pyd", "__pycache__"))
    (tmp_path / "benchmarks").mkdir()
    shutil.copy(ROOT / "benchmarks" / "conftest.py", tmp_path / "benchmarks" / "conftest.py")
    (tmp_path / "benchmarks" / "bench_probe.py").write_text("def test_probe():\n    raise AssertionError('ran')\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "benchmarks/", "-q", "-p", "no:cacheprovider"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, out
    assert "imported from the source tree" in out and str(tmp_path / "s4op_kernels") in out, out
    assert "ran" not in out


# ---------------------------------------------------------------------- unavailable contenders
class _NoBenchmark:
    """A benchmark fixture that fails if anything is timed."""

    def __init__(self):
        self.extra_info = {}

    def pedantic(self, *args, **kwargs):
        raise AssertionError("an unavailable contender was timed")

    __call__ = pedantic


def test_unavailable_backend_is_skipped_with_its_reason(monkeypatch):
    import harness

    monkeypatch.setattr(s4op_kernels, "available_backends", lambda: ["cpu", "reference"])  # as without a GPU
    with pytest.raises(pytest.skip.Exception, match=r"backend 'triton' is not available .*available: \["):
        harness.require_backend("triton")
    harness.require_backend("reference")  # always there: no skip


def test_contenders_without_the_compiled_core_are_skipped(monkeypatch):
    """With the compiled core unavailable, every contender that is ours or ``cpu`` is skipped with the reason
    before anything is built or timed; the reference contenders still run."""
    import bench_layer
    import bench_model
    import bench_ops
    import bench_scaling
    import bench_stream

    monkeypatch.setattr(s4op_kernels, "available_backends", lambda: ["reference"])
    shape = (1, 4, 8, 16)
    calls = [
        lambda: bench_ops.test_ssm(_NoBenchmark(), shape, 0.5, "cpu"),
        lambda: bench_ops.test_kernel_generation(_NoBenchmark(), shape, 0.5, "cpu"),
        lambda: bench_layer.test_layer(_NoBenchmark(), shape, 0.5, "ours"),
        lambda: bench_model.test_model(_NoBenchmark(), ("ecg", 64, 1, 0.5), "ours"),
        lambda: bench_model.test_model(_NoBenchmark(), ("ecg", 64, 1, 0.5), "ours_cold"),
        lambda: bench_scaling.test_scaling(_NoBenchmark(), ("L", shape), "ours"),
        lambda: bench_stream.test_stream(_NoBenchmark(), ("ecg-embedded", bench_stream.MAIN_JOB, 256, 0.5), "step"),
    ]
    for call in calls:
        with pytest.raises(pytest.skip.Exception, match=r"backend 'cpu' is not available on this installation"):
            call()

    class Recorder(_NoBenchmark):
        def __init__(self):
            self.extra_info, self.timed = {}, 0

        def pedantic(self, fn, args=(), kwargs=None, setup=None, rounds=1, warmup_rounds=0, iterations=1):
            for _ in range(warmup_rounds + rounds):
                if setup is not None:
                    setup()
                fn(*args)
                self.timed += 1

    bench = Recorder()
    bench_ops.test_ssm(bench, shape, 0.5, "reference")  # the reference contender is available: timed
    assert bench.timed > 0 and bench.extra_info["impl"] == "reference"


def test_paper_sizes_option_and_environment(monkeypatch):
    import harness

    class Config:
        def __init__(self, value):
            self.value = value

        def getoption(self, name, default=None):
            assert name == "paper_sizes"
            return self.value

    monkeypatch.delenv(harness.PAPER_SIZES_ENV, raising=False)
    assert not harness.paper_sizes(Config(False)) and harness.paper_sizes(Config(True))
    monkeypatch.setenv(harness.PAPER_SIZES_ENV, "1")
    assert harness.paper_sizes(Config(False)) and harness.paper_sizes(None)
    monkeypatch.setenv(harness.PAPER_SIZES_ENV, "0")
    assert not harness.paper_sizes(None)


# ---------------------------------------------------------------------- memory probes
def test_peak_torch_allocation_sees_temporaries():
    import harness
    import torch

    x = torch.randn(1000, 1000)  # 4 MB
    # x * 2 (4 MB, freed after the add) and the result (4 MB): 8 MB live at the peak
    peak = harness.peak_torch_allocation(lambda: (x * 2) + 1)
    assert 8e6 <= peak <= 8.1e6


@pytest.mark.skipif(not pathlib.Path("/proc/self/clear_refs").exists(), reason="Linux /proc only")
def test_peak_rss_delta_sees_a_touched_buffer():
    import harness
    import torch

    def touch():
        t = torch.empty(64 * 2**20, dtype=torch.uint8)
        t.fill_(1)  # every page faulted in
        return int(t[::4096].sum())

    touch()  # the same buffer size again: reused unless the free memory is handed back first
    delta = harness.peak_rss_delta(touch)
    if delta is None:
        pytest.skip("the resident-set high-water mark cannot be reset here")
    assert 60 * 2**20 <= delta <= 80 * 2**20
