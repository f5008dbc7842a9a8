"""Where the search's candidates run: a process pool and Ray tasks give the local search's result, bit for bit;
a failing task is retried, one that keeps failing stops the search on record; a stopped or killed driver
resumes, with any executor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import factories
from factories import FlakyFineTune, toy_fine_tune, toy_pruner
from s4op_kernels.app import cli
from s4op_kernels.pruning.executor import (
    CandidateFailedError,
    ExecutorUnavailableError,
    LocalExecutor,
    ProcessExecutor,
    make_executor,
)

RATES = (0.3, 0.7)
SEEDS = (7, 42)
FINE_TUNE = toy_fine_tune()  # the pipeline's own (a picklable partial): one epoch of real fine-tuning
TESTS = str(Path(factories.__file__).parent)


def search(out, executor, fine_tune=None, log=None):
    return toy_pruner(out, executor, fine_tune=fine_tune, log=log, rates=RATES, seeds=SEEDS)


def outcome(out: Path) -> dict:
    """What may not depend on the executor: the run folder's search without its timings and provenance."""
    state = json.loads((out / "search.json").read_text())
    keep = ("rate", "seed", "val_metric", "test_metric", "params", "pruned_per_layer", "active_channels")
    return {"baseline": {k: state["baseline"][k] for k in ("val_metric", "test_metric", "params")},
            "settings": state["settings"], "stopped": state["stopped"],
            "rates": [{**{k: r[k] for k in keep}, "candidates": [(c["seed"], c["val_metric"]) for c in r["candidates"]]}
                      for r in state["rates"]]}


def assert_same_search(out: Path, reference: Path) -> None:
    assert outcome(out) == outcome(reference)
    for rate in RATES:
        name = f"rate_{round(100 * rate)}.safetensors"
        got, want = load_file(out / name), load_file(reference / name)
        assert got.keys() == want.keys()
        differ = [k for k in want if got[k].dtype != want[k].dtype or not torch.equal(got[k], want[k])]
        assert not differ, f"{name}: weights differ from the local search's in {differ}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The local search, its candidates trained with one thread as each task of the others is."""
    out = tmp_path_factory.mktemp("local")
    search(out, LocalExecutor(task_cpus=1)).run()
    return out


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance with 2 CPUs for the module (a start costs seconds); its workers find this
    suite's helpers (``factories``) through PYTHONPATH, which they inherit."""
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install \"s4op-kernels[ray]\")")
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (TESTS, before) if p)
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        yield ray
    finally:
        ray.shutdown()
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


@pytest.fixture
def executor(request):
    """``executor(name, **options)``: a fresh executor; "ray" joins the module's Ray instance."""

    def make(name: str, **options):
        if name == "ray":
            request.getfixturevalue("ray_instance")
        return make_executor(name, task_cpus=1, **options)

    return make


@pytest.mark.parametrize("name", ["processes", "ray"])
def test_same_report_and_weights_as_the_local_search(name, executor, reference, tmp_path):
    result = search(tmp_path, executor(name)).run()
    assert_same_search(tmp_path, reference)
    assert [r["executor"]["name"] for r in result.rates] == [name, name]
    assert all(r["executor"]["threads"] == 1 for r in result.rates)


@pytest.mark.parametrize("name", ["processes", "ray"])
def test_a_task_that_raises_once_is_retried_and_the_result_is_unchanged(name, executor, reference, tmp_path):
    # The failure is injected through the fine_tune callback the user supplies (a picklable object whose
    # count lives in marker files, shared by all workers): no hook in the package.
    flaky = FlakyFineTune(FINE_TUNE, tmp_path, seed=42, failures=1)
    lines = []
    search(tmp_path / "run", executor(name, retries=1), fine_tune=flaky, log=lines.append).run()
    assert flaky.failed() == 1
    assert_same_search(tmp_path / "run", reference)
    if name == "processes":  # Ray retries by itself, without telling the driver
        assert any("seed 42 failed (RuntimeError: injected failure 1 of 1" in line for line in lines), lines


@pytest.mark.parametrize("name", ["processes", "ray"])
def test_a_task_whose_worker_dies_is_retried_and_the_result_is_unchanged(name, executor, reference, tmp_path):
    crashing = FlakyFineTune(FINE_TUNE, tmp_path, seed=7, failures=1, crash=True)  # os._exit in the worker
    lines = []
    search(tmp_path / "run", executor(name, retries=1), fine_tune=crashing, log=lines.append).run()
    assert crashing.failed() == 1
    assert_same_search(tmp_path / "run", reference)
    if name == "processes":
        assert any("seed 7 failed (BrokenProcessPool" in line for line in lines), lines


@pytest.mark.parametrize("name", ["processes", "ray"])
def test_a_task_that_keeps_failing_stops_the_search_on_record(name, executor, reference, tmp_path):
    out = tmp_path / "run"
    broken = FlakyFineTune(FINE_TUNE, tmp_path, seed=42, failures=100)
    with pytest.raises(CandidateFailedError, match=r"at 30% the candidate of seed 42 failed 2 time\(s\) on the "
                                                   rf"{name} executor; last error: RuntimeError: injected failure"):
        search(out, executor(name, retries=1), fine_tune=broken).run()
    assert broken.failed() == 2  # the first attempt and one retry
    state = json.loads((out / "search.json").read_text())
    assert state["rates"] == [] and state["stopped"] is None  # no choice among the candidates that finished
    assert state["failed"]["rate"] == 0.3 and state["failed"]["seed"] == 42 and state["failed"]["attempts"] == 2
    assert "injected failure" in state["failed"]["error"]
    assert not (out / "rate_30.safetensors").exists()
    # Fixed, the same command resumes at the failed rate and gives the search it should have given.
    search(out, executor(name)).run()
    assert_same_search(out, reference)
    assert "failed" not in json.loads((out / "search.json").read_text())


class Stop(Exception):
    """The driver's end, right after the first rate is on disk."""


def stop_after_first_rate(line: str) -> None:
    if line.startswith("30%:"):  # logged after search.json and rate_30 are written
        raise Stop(line)


@pytest.mark.parametrize("first, then", [("ray", "ray"), ("processes", "local")])
def test_a_driver_stopped_after_the_first_rate_resumes(first, then, executor, reference, tmp_path):
    with pytest.raises(Stop):
        search(tmp_path, executor(first), log=stop_after_first_rate).run()
    assert len(json.loads((tmp_path / "search.json").read_text())["rates"]) == 1
    saved = (tmp_path / "rate_30.safetensors").read_bytes()
    lines = []
    # The executor is not a setting of the search: another one may resume it.
    result = search(tmp_path, executor(then), log=lines.append).run()
    assert any("1 of 2 rates already done" in line for line in lines), lines
    assert [r["executor"]["name"] for r in result.rates] == [first, then]
    assert (tmp_path / "rate_30.safetensors").read_bytes() == saved
    assert_same_search(tmp_path, reference)


# ---------------------------------------------------------------------- a killed driver
DRIVER = """
import sys
from factories import StallingFineTune, toy_fine_tune, toy_pruner
from s4op_kernels.pruning.executor import ProcessExecutor

if __name__ == "__main__":
    out, folder = sys.argv[1:]
    # the second rate's candidates never finish: the driver is certainly killed with its tasks in flight
    toy_pruner(out, ProcessExecutor(workers=2), fine_tune=StallingFineTune(toy_fine_tune(), folder, after=2)).run()
"""


def _children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(status.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc to find the pool's workers")
def test_a_killed_driver_resumes_and_its_workers_leave(reference, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (TESTS, os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(out), str(tmp_path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env, cwd=tmp_path)  # not the source tree (no engine)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if len(json.loads((out / "search.json").read_text())["rates"]) == 1:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.1)
        assert proc.poll() is None, f"the driver ended before it could be killed: {proc.stderr.read().decode()}"
        assert time.monotonic() < deadline, "the first rate did not finish in time"
        workers = _children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert len(workers) >= 2, "the pool's workers were not found"
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers), "the pool's workers outlived their killed driver"
    saved = (out / "rate_30.safetensors").read_bytes()
    search(out, LocalExecutor(task_cpus=1)).run()  # the lock died with the driver
    assert (out / "rate_30.safetensors").read_bytes() == saved
    assert_same_search(out, reference)


def test_the_prune_command_runs_its_candidates_on_ray(ray_instance, tmp_path):
    out = tmp_path / "run"
    assert cli.main(["prune", "--task", "ecg-synthetic", "--config", "ecg-embedded", "--out", str(out),
                     "--rates", "50", "--seeds", "7,42", "--epochs", "1", "--finetune-epochs", "1", "--no-progress",
                     "-o", "n_train=32", "-o", "n_val=16", "-o", "n_test=16", "-o", "duration=1.28",
                     "--executor", "ray", "--task-cpus", "1"]) == 0
    (row,) = json.loads((out / "search.json").read_text())["rates"]
    assert row["executor"]["name"] == "ray" and row["executor"]["task_cpus"] == 1
    assert [c["seed"] for c in row["candidates"]] == [7, 42]


# ---------------------------------------------------------------------- refusals
@pytest.mark.parametrize("kw, match", [
    ({"executor": "threads"}, r"executor must be one of \['local', 'processes', 'ray'\]"),
    ({"executor": "local", "address": "auto"}, "the local executor takes no address"),
    ({"executor": "processes", "task_gpus": 1}, "the processes executor takes no task_gpus"),
    ({"executor": "local", "workers": 2}, "the local executor takes no workers"),
    ({"executor": "processes", "task_cpus": 0}, "task_cpus"),
    ({"executor": "processes", "retries": -1}, "retries"),
])
def test_bad_executor_options_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        make_executor(**kw)


def test_ray_missing_is_a_clear_error_with_the_install_command(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(ExecutorUnavailableError, match=r'pip install "s4op-kernels\[ray\]"'):
        make_executor("ray")
    # the command refuses it before any training
    assert cli.main(["prune", "--task", "ecg-synthetic", "--executor", "ray", "--out", "/nonexistent/x"]) == 2
    assert "the ray executor needs Ray" in capsys.readouterr().err


@pytest.mark.parametrize("flags, match", [
    (["--executor", "processes", "--address", "auto"], "--address is for --executor ray, not --executor processes"),
    (["--workers", "2"], "--workers is for --executor processes, not --executor local"),
    (["--executor", "processes", "--task-gpus", "1"], "--task-gpus is for --executor ray"),
])
def test_bad_executor_flags_are_usage_errors(flags, match, capsys):
    assert cli.main(["prune", "--task", "ecg-synthetic", "--out", "/nonexistent/x", *flags]) == 2
    assert match in capsys.readouterr().err


def test_a_ray_cluster_that_cannot_be_reached_fails_before_the_baseline_is_trained(monkeypatch, tmp_path, capsys):
    ray = pytest.importorskip("ray", reason="ray is not installed")

    def unreachable(address=None, **kw):
        raise ConnectionError(f"Could not find any running Ray instance at {address}")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", unreachable)
    assert cli.main(["prune", "--task", "ecg-synthetic", "--out", str(tmp_path), "--executor", "ray",
                     "--address", "auto"]) == 1
    assert "Could not find any running Ray instance at auto" in capsys.readouterr().err
    assert not (tmp_path / "baseline.safetensors").exists()


def test_the_process_pool_refuses_callbacks_it_cannot_send_before_any_work(tmp_path):
    with pytest.raises(TypeError, match="the processes executor sends fine_tune to its workers by pickling"):
        search(tmp_path, ProcessExecutor(), fine_tune=lambda m, tr, va, seed: None).run()
    assert not (tmp_path / "search.json").exists()
