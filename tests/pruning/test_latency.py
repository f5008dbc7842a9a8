"""measure_latency / example_input: behaviour only (counts, restored state, argument checks), no timings."""

from __future__ import annotations

import gc
import json

import pytest
import torch
from torch import nn

import s4op_kernels
from s4op_kernels.data.base import TaskInfo
from s4op_kernels.pruning import LatencyStats, example_input, measure_latency
from factories import make_input, make_s4d


class Probe(nn.Module):
    """An S4D layer plus a recorder of the conditions each forward ran under."""

    def __init__(self, fail_at=None):
        super().__init__()
        self.ssm = make_s4d(4, 4, 0).train()
        self.head = nn.Linear(4, 2)
        self.seen = []
        self.fail_at = fail_at

    def forward(self, u, scale=None):  # u: (B, 4, L)
        if self.fail_at is not None and len(self.seen) == self.fail_at:
            raise RuntimeError("forward failed")
        self.seen.append(dict(training=self.training, ssm_training=self.ssm.training,
                              inference=torch.is_inference_mode_enabled(), threads=torch.get_num_threads(),
                              backend=s4op_kernels.current_backend(), scale=scale, gc=gc.isenabled()))
        y, _ = self.ssm(u)
        return self.head(y.mean(-1))


@pytest.fixture
def u():
    return make_input(1, 4, 16, seed=0)


def test_stats_have_the_right_counts_and_order(u):
    model = Probe()
    stats = measure_latency(model, u, warmup=3, repeats=7)
    assert isinstance(stats, LatencyStats)
    assert len(model.seen) == 3 + 7
    assert stats.repeats == len(stats.times_ms) == 7 and stats.warmup == 3
    assert all(t > 0 for t in stats.times_ms)
    assert stats.min_ms <= stats.p10_ms <= stats.median_ms <= stats.p90_ms <= stats.max_ms
    assert stats.min_ms <= stats.mean_ms <= stats.max_ms
    assert stats.min_ms == min(stats.times_ms) and stats.max_ms == max(stats.times_ms)
    assert stats.median_ms == pytest.approx(sorted(stats.times_ms)[3])
    assert stats.backend == "auto" and stats.threads == torch.get_num_threads()
    d = json.loads(json.dumps(stats.as_dict()))
    assert d["repeats"] == 7 and len(d["times_ms"]) == 7 and d["median_ms"] == stats.median_ms
    assert "ms median" in str(stats)


def test_runs_in_eval_inference_mode_and_restores_each_modules_mode(u):
    model = Probe()
    model.train()
    model.head.eval()  # a mixed state must come back exactly
    measure_latency(model, u, warmup=1, repeats=2)
    assert all(s["training"] is False and s["ssm_training"] is False and s["inference"] for s in model.seen)
    assert all(s["gc"] is False for s in model.seen[1:])  # timed runs: collector paused
    assert model.training and model.ssm.training and not model.head.training
    assert gc.isenabled()
    assert not torch.is_inference_mode_enabled()


def test_threads_are_set_for_the_runs_and_restored(u):
    before = torch.get_num_threads()
    model = Probe()
    stats = measure_latency(model, u, warmup=1, repeats=2, threads=1)
    assert {s["threads"] for s in model.seen} == {1} and stats.threads == 1
    assert torch.get_num_threads() == before
    model.seen.clear()
    measure_latency(model, u, warmup=0, repeats=1)
    assert model.seen[0]["threads"] == before


def test_backend_is_applied(u):
    model = Probe()
    stats = measure_latency(model, u, warmup=0, repeats=2, backend="reference")
    assert {s["backend"] for s in model.seen} == {"reference"} and stats.backend == "reference"
    with pytest.raises(ValueError, match="backend"):
        measure_latency(model, u, repeats=1, backend="tpu")


def test_state_is_restored_when_the_forward_fails(u):
    before = torch.get_num_threads()
    model = Probe(fail_at=2)
    model.train()
    with pytest.raises(RuntimeError, match="forward failed"):
        measure_latency(model, u, warmup=1, repeats=5, threads=1)
    assert model.training and model.ssm.training
    assert torch.get_num_threads() == before and gc.isenabled()


def test_tuple_input_is_passed_as_positional_arguments(u):
    model = Probe()
    measure_latency(model, (u, 2.0), warmup=0, repeats=2)
    assert [s["scale"] for s in model.seen] == [2.0, 2.0]
    measure_latency(model, [u], warmup=0, repeats=1)
    assert model.seen[-1]["scale"] is None


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(repeats=0), ValueError, "repeats"),
    (dict(warmup=-1), ValueError, "warmup"),
    (dict(threads=0), ValueError, "threads"),
    (dict(repeats=True), TypeError, "repeats"),
    (dict(warmup=1.5), TypeError, "warmup"),
    (dict(backend=None), TypeError, "backend"),
])
def test_argument_validation(u, kwargs, exc, match):
    model = Probe()
    with pytest.raises(exc, match=match):
        measure_latency(model, u, **kwargs)
    assert model.seen == []


def test_input_and_model_validation(u):
    with pytest.raises(TypeError, match="example_input"):
        measure_latency(Probe(), "x")
    with pytest.raises(TypeError, match="no tensor"):
        measure_latency(Probe(), (1, 2))
    with pytest.raises(TypeError, match="nn.Module"):
        measure_latency(lambda x: x, u)


# ----------------------------------------------------------------------------- example inputs
def test_example_input_token_task():
    info = TaskInfo(task="listops", num_classes=10, seq_len=50, vocab_size=18)
    x = example_input(info)
    assert x.shape == (1, 50) and x.dtype == torch.int64
    assert int(x.min()) >= 1 and int(x.max()) <= 17  # no padding token
    assert torch.equal(x, example_input(info))
    assert not torch.equal(x, example_input(info, seed=1))
    assert example_input(info, 4, seq_len=9).shape == (4, 9)


def test_example_input_continuous_task():
    info = TaskInfo(task="ecg", num_classes=6, seq_len=40, multilabel=True, in_channels=12)
    x = example_input(info, 2, seed=3)
    assert x.shape == (2, 40, 12) and x.dtype == torch.float32
    assert example_input(info, dtype=torch.float64).dtype == torch.float64
    with pytest.raises(ValueError, match="batch_size"):
        example_input(info, 0)
    with pytest.raises(ValueError, match="seq_len"):
        example_input(info, seq_len=0)
    with pytest.raises(TypeError, match="floating"):
        example_input(info, dtype=torch.int32)
    with pytest.raises(TypeError, match="TaskInfo"):
        example_input(object())


def test_example_input_drives_a_model_end_to_end():
    info = TaskInfo(task="toy", num_classes=3, seq_len=24, in_channels=2)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 4), nn.Flatten(), nn.Linear(96, 3))
    stats = measure_latency(model, example_input(info), warmup=1, repeats=3)
    assert stats.repeats == 3


def test_ssm_operators_run_every_prunable_layer_and_only_their_ssm_part():
    from s4op_kernels import S4DLayer
    from s4op_kernels.pruning.latency import SSMOperators, measure_ssm_latency

    model = torch.nn.Sequential(S4DLayer(6, 4), torch.nn.Identity(), S4DLayer(6, 4))
    calls = []
    for layer in (model[0], model[2]):
        layer.activation.register_forward_hook(lambda *a: calls.append("gelu"))
        original = layer._ssm
        layer._ssm = lambda u, original=original: calls.append("ssm") or original(u)
    stats = measure_ssm_latency(model, 2, 16, warmup=1, repeats=3)
    assert stats.repeats == 3 and calls == ["ssm"] * 8  # (1 warm-up + 3 timed) x 2 layers, no GELU
    with pytest.raises(ValueError, match="no prunable SSM layer"):
        SSMOperators(torch.nn.Linear(2, 2))


def test_measure_latencies_interleaves_the_cases():
    from s4op_kernels.pruning.latency import measure_latencies

    calls = []

    class Tag(torch.nn.Module):
        def __init__(self, name):
            super().__init__()
            self.name = name

        def forward(self, x):
            calls.append(self.name)
            return x

    a, b = Tag("a").eval(), Tag("b").train()
    stats = measure_latencies([(a, torch.zeros(1)), (b, torch.zeros(1))], warmup=1, repeats=3)
    assert [s.repeats for s in stats] == [3, 3]
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then rounds in alternating order
    assert b.training and not a.training  # modes restored
    with pytest.raises(ValueError, match="at least one"):
        measure_latencies([])
    with pytest.raises(TypeError, match="pair"):
        measure_latencies([a])
