"""The S4oP search: nested rates, choice by validation only, one-shot, stopping rules, resume."""

from __future__ import annotations

import json

import pytest
import torch

from factories import TOY_CONFIG as CONFIG
from factories import TOY_INFO as INFO
from factories import toy_dataset as make_ds
from s4op_kernels.models import build_model
from s4op_kernels.pruning import allocate, ssm_layers
from s4op_kernels.pruning.search import (
    SEARCH_FILE,
    IncrementalPruner,
    OneShotPruner,
    SearchMismatchError,
)

RATES = (0.1, 0.3, 0.5, 0.7, 0.9)
SEEDS = (7, 42, 123)


def baseline(seed: int = 0):
    return build_model(CONFIG, INFO, seed=seed).eval()


class Recorder:
    """fine_tune/evaluate stand-ins: fine-tuning marks the candidate with its seed, and the validation
    score is a fixed function of that seed, so the expected choice is known in advance."""

    def __init__(self, val_scores: dict[int, float], test_scores: dict[int, float]):
        self.val_scores, self.test_scores = val_scores, test_scores
        self.calls: list[tuple[str, int]] = []

    def fine_tune(self, model, train_ds, val_ds, *, seed):
        model._seed = seed
        self.calls.append(("fine_tune", seed))

    def evaluate(self, model, ds):
        seed = getattr(model, "_seed", None)
        self.calls.append((ds.split, seed))
        if seed is None:  # the baseline
            return 0.9
        return (self.test_scores if ds.split == "test" else self.val_scores)[seed]


def pruner(model, rec, tmp_path=None, test_ds=None, **kw):
    kw.setdefault("rates", RATES)
    kw.setdefault("seeds", SEEDS)
    return IncrementalPruner(model, make_ds(16, 1, "train"), make_ds(16, 2, "val"),
                             test_ds if test_ds is not None else make_ds(16, 3, "test"),
                             evaluate=rec.evaluate, fine_tune=rec.fine_tune, latency_repeats=2, latency_warmup=1,
                             latency_batch_size=2, out_dir=tmp_path, progress=False, **kw)


def test_rates_are_nested_and_follow_the_allocation():
    rec = Recorder({7: 0.5, 42: 0.8, 123: 0.6}, {7: 0.9, 42: 0.1, 123: 0.2})
    result = pruner(baseline(), rec).run()
    assert [r["rate"] for r in result.rates] == list(RATES)
    previous = [set(range(8))] * 3
    for r in result.rates:
        assert r["pruned_per_layer"] == allocate(r["rate"], 3, 8)
        active = [set(a) for a in r["active_channels"]]
        assert all(a <= p for a, p in zip(active, previous)), "a later rate re-activated a channel"
        assert [8 - len(a) for a in active] == r["pruned_per_layer"]
        previous = active
    # parameters after compaction fall with the rate; every rate's row has its latencies
    params = [result.summary["baseline"]["params"]] + [r["params"] for r in result.rates]
    assert params == sorted(params, reverse=True) and params[0] > params[-1]
    assert all(r["latency_ms"] > 0 and r["latency_batch_ms"] > 0 for r in result.rates)


def test_choice_is_by_validation_and_the_test_split_is_read_only_after_it():
    rec = Recorder({7: 0.5, 42: 0.8, 123: 0.6}, {7: 0.99, 42: 0.1, 123: 0.2})
    result = pruner(baseline(), rec, rates=(0.3, 0.5)).run()
    assert [r["seed"] for r in result.rates] == [42, 42]  # best validation, although seed 7 tests best
    assert [r["test_metric"] for r in result.rates] == [0.1, 0.1]
    # per rate: every candidate is fine-tuned and validated before the one test evaluation
    after_baseline = rec.calls[2:]
    per_rate = len(SEEDS) * 2 + 1
    for k in range(2):
        block = after_baseline[k * per_rate:(k + 1) * per_rate]
        assert [c[0] for c in block[:-1]].count("test") == 0
        assert block[-1] == ("test", 42)


def test_poisoned_test_split_does_not_change_the_choice(tmp_path):
    # Real fine-tuning and evaluation: the same search with a clean and with a poisoned test split must
    # choose the same seeds and channels; only the reported test metric differs.
    from s4op_kernels.training import evaluate, fine_tune

    def ft(model, train_ds, val_ds, *, seed):
        fine_tune(model, train_ds, val_ds, epochs=1, lr=1e-3, batch_size=8, seed=seed, progress=False)

    def ev(model, ds):
        return evaluate(model, ds)["metric"]

    runs = []
    for poison in (False, True):
        p = IncrementalPruner(baseline(), make_ds(32, 1, "train"), make_ds(32, 2, "val"), make_ds(32, 3, "test", poison), evaluate=ev,
                              fine_tune=ft, rates=(0.3, 0.7), seeds=(7, 42), latency_repeats=2, latency_warmup=1,
                              latency_batch_size=2, progress=False)
        runs.append(p.run().rates)
    for clean, poisoned in zip(*runs):
        assert clean["seed"] == poisoned["seed"]
        assert clean["active_channels"] == poisoned["active_channels"]
        assert clean["val_metric"] == poisoned["val_metric"]
        assert [c["val_metric"] for c in clean["candidates"]] == [c["val_metric"] for c in poisoned["candidates"]]


def test_one_shot_starts_every_rate_from_the_baseline():
    rec = Recorder({7: 0.5, 42: 0.8, 123: 0.6}, {7: 0.9, 42: 0.1, 123: 0.2})
    result = OneShotPruner(baseline(), make_ds(16, 1, "train"), make_ds(16, 2, "val"), None, evaluate=rec.evaluate, fine_tune=rec.fine_tune,
                           rates=(0.3, 0.7), seeds=(42,), latency_repeats=2, latency_warmup=1, latency_batch_size=2,
                           progress=False).run()
    assert result.summary["incremental"] is False
    assert [r["pruned_per_layer"] for r in result.rates] == [allocate(0.3, 3, 8), allocate(0.7, 3, 8)]
    assert all(r["test_metric"] is None for r in result.rates)
    # with the same seed from the same baseline, the first layers' draws coincide: the 70 % set of pruned
    # channels is not built on the 30 % model, but drawn afresh from all channels
    assert result.summary["settings"]["incremental"] is False


def test_metric_floor_stops_before_the_rate_that_drops_too_far():
    scores = iter([0.88, 0.87, 0.86, 0.5, 0.5, 0.5, 0.4, 0.4, 0.4])

    class Falling(Recorder):
        def evaluate(self, model, ds):
            if getattr(model, "_seed", None) is None:
                return 0.9
            return next(scores) if ds.split == "val" else 0.0

    rec = Falling({}, {})
    result = pruner(baseline(), rec, rates=(0.1, 0.3, 0.5), max_metric_drop=0.05, seeds=(7, 42, 123)).run()
    assert [r["rate"] for r in result.rates] == [0.1]
    assert result.summary["rejected"]["rate"] == 0.3
    assert "below the baseline" in result.summary["stopped"]


def test_latency_budget_stops_at_the_first_rate_that_meets_it():
    rec = Recorder({7: 0.5}, {7: 0.5})
    result = pruner(baseline(), rec, seeds=(7,), latency_budget_ms=1e9).run()
    assert [r["rate"] for r in result.rates] == [0.1]
    assert "latency budget" in result.summary["stopped"]


class Killed(Exception):
    pass


def test_resume_after_an_interruption_continues_and_loses_nothing(tmp_path):
    scores = {7: 0.5, 42: 0.8, 123: 0.6}
    uninterrupted = pruner(baseline(), Recorder(scores, scores), tmp_path / "a").run()

    class Dies(Recorder):
        def fine_tune(self, model, train_ds, val_ds, *, seed):
            if sum(1 for c in self.calls if c[0] == "fine_tune") == 2 * len(SEEDS) + 1:  # during the third rate
                raise Killed()
            super().fine_tune(model, train_ds, val_ds, seed=seed)

    out = tmp_path / "b"
    with pytest.raises(Killed):
        pruner(baseline(), Dies(scores, scores), out).run()
    saved = json.loads((out / SEARCH_FILE).read_text())
    assert [r["rate"] for r in saved["rates"]] == [0.1, 0.3]
    assert (out / "rate_30.safetensors").exists() and (out / "rate_30.json").exists()

    rec = Recorder(scores, scores)
    resumed = pruner(baseline(), rec, out).run()
    assert sum(1 for c in rec.calls if c[0] == "fine_tune") == 3 * len(SEEDS)  # only the missing rates
    key = ("rate", "seed", "active_channels", "pruned_per_layer", "val_metric", "params")
    assert [{k: r[k] for k in key} for r in resumed.rates] == [{k: r[k] for k in key} for r in uninterrupted.rates]
    # re-running a finished search does no work at all
    rec = Recorder(scores, scores)
    again = pruner(baseline(), rec, out).run()
    assert not [c for c in rec.calls if c[0] == "fine_tune"] and len(again.rates) == len(RATES)


def test_resuming_with_other_settings_is_refused(tmp_path):
    scores = {7: 0.5, 42: 0.8, 123: 0.6}
    pruner(baseline(), Recorder(scores, scores), tmp_path, rates=(0.1,)).run()
    with pytest.raises(SearchMismatchError, match="other settings"):
        pruner(baseline(), Recorder(scores, scores), tmp_path, rates=(0.1, 0.5)).run()


@pytest.mark.parametrize("kw, match", [
    ({"rates": (0.5, 0.3)}, "strictly increasing"),
    ({"rates": (0.0, 0.5)}, "strictly increasing"),
    ({"seeds": ()}, "seeds"),
    ({"seeds": (1, 1)}, "distinct"),
    ({"strategy": "spiral"}, "strategy"),
    ({"latency_repeats": 0}, "latency_repeats"),
    ({"max_metric_drop": -1}, "max_metric_drop"),
])
def test_bad_arguments(kw, match):
    rec = Recorder({}, {})
    with pytest.raises((ValueError, TypeError), match=match):
        pruner(baseline(), rec, **kw)


def test_model_without_ssm_layers_is_refused():
    with pytest.raises(ValueError, match="no prunable SSM layer"):
        pruner(torch.nn.Linear(2, 2), Recorder({}, {}))


def test_baseline_is_left_unchanged():
    model = baseline()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pruner(model, Recorder({7: 0.5, 42: 0.8, 123: 0.6}, {7: 0.9, 42: 0.1, 123: 0.2}), rates=(0.5,)).run()
    assert all(not layer.is_pruned for layer in ssm_layers(model))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_kernel_norm_selector_prunes_the_smallest_kernels_first():
    model = baseline()
    layers = ssm_layers(model)
    with torch.no_grad():
        layers[2].kernel.C[:3] *= 1e-4  # channels 0-2 of the deepest layer have near-zero kernels
    rec = Recorder({7: 0.5}, {7: 0.5})
    result = pruner(model, rec, rates=(0.1,), seeds=(7,), selector="kernel_norm").run()
    pruned = set(range(8)) - set(result.rates[0]["active_channels"][2])
    n = result.rates[0]["pruned_per_layer"][2]
    assert n >= 1
    assert pruned <= {0, 1, 2} if n <= 3 else pruned >= {0, 1, 2}


def test_report_latencies_are_remeasured_round_robin_after_the_search():
    rec = Recorder({7: 0.5}, {7: 0.5})
    result = pruner(baseline(), rec, rates=(0.3, 0.7), seeds=(7,)).run()
    rows = [result.summary["baseline"]] + result.rates
    for row in rows:
        for key in ("latency", "latency_batch", "ssm_latency"):
            assert row[f"{key}_ms"] > 0 and row[f"{key}_in_loop_ms"] > 0
    assert "round-robin" in result.summary["latency_method"]
