"""The layer-wise ablation (the paper's Table I): one candidate per SSM layer, that layer removed, fine-tuned."""

from __future__ import annotations

import json

import pytest
import torch

from s4op_kernels.data.base import TaskDataset, TaskInfo
from s4op_kernels.models import Config, build_model
from s4op_kernels.pruning import SearchMismatchError, count_parameters, ssm_layers
from s4op_kernels.pruning.ablation import ABLATION_FILE, layer_ablation, without_layer
from s4op_kernels.pruning.report import layerwise_table

INFO = TaskInfo(task="toy", num_classes=2, seq_len=32, in_channels=1)
CONFIG = Config(name="toy", n_layers=3, d_model=8, d_state=4, norm="layer", epochs=1, batch_size=8)
H, N = 8, 4


def make_ds(n: int, seed: int, split: str) -> TaskDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, INFO.seq_len, 1, generator=g)
    return TaskDataset(x, (x.mean(dim=(1, 2)) > 0).long(), INFO, split=split)


class Recorder:
    """fine_tune/evaluate stand-ins: the score tells which layer is empty (layer i removed: 0.1 * (i + 1)
    before fine-tuning) and whether the candidate was fine-tuned (+0.5), so every cell is known in advance."""

    def __init__(self):
        self.calls: list[tuple] = []

    def fine_tune(self, model, train_ds, val_ds, *, seed):
        model._tuned = True
        self.calls.append(("fine_tune", _empty_layers(model), seed))

    def evaluate(self, model, ds):
        empty = _empty_layers(model)
        self.calls.append((ds.split, empty))
        if not empty:
            return 0.9
        score = 0.1 * (empty[0] + 1) + (0.5 if getattr(model, "_tuned", False) else 0.0)
        return score + (0.01 if ds.split == "test" else 0.0)


def _empty_layers(model):
    return [i for i, layer in enumerate(ssm_layers(model)) if layer.num_active == 0]


def ablate(model, rec, out_dir=None, **kw):
    return layer_ablation(model, make_ds(16, 1, "train"), make_ds(16, 2, "val"), make_ds(16, 3, "test"),
                          evaluate=rec.evaluate, fine_tune=rec.fine_tune, latency_warmup=1, latency_repeats=2,
                          latency_batch_size=2, threads=1, out_dir=out_dir, progress=False, **kw)


def test_each_candidate_removes_exactly_one_layer_and_is_fine_tuned_with_the_seed():
    model = build_model(CONFIG, INFO, seed=0).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rec = Recorder()
    summary = ablate(model, rec, seed=42)
    assert [r["layer"] for r in summary["layers"]] == [0, 1, 2]
    assert [c for c in rec.calls if c[0] == "fine_tune"] == [("fine_tune", [i], 42) for i in range(3)]
    for i, row in enumerate(summary["layers"]):
        assert row["val_metric_before"] == pytest.approx(0.1 * (i + 1))
        assert row["test_metric_before"] == pytest.approx(0.1 * (i + 1) + 0.01)
        assert row["val_metric"] == pytest.approx(0.1 * (i + 1) + 0.5)
        assert row["test_metric"] == pytest.approx(0.1 * (i + 1) + 0.51)
        # a whole layer's per-channel SSM tensors go: H (2N + 2) numbers for S4D
        assert row["params"] == summary["baseline"]["params"] - H * (2 * N + 2)
        assert row["latency_ms"] > 0 and row["latency_batch_ms"] > 0 and row["ssm_latency_ms"] > 0
    assert summary["baseline"]["val_metric"] == 0.9 and summary["baseline"]["params"] == count_parameters(model)
    # the baseline is left as it was: every channel active, the same weights
    assert not _empty_layers(model) and all(layer.num_active == H for layer in ssm_layers(model))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_without_layer_copies_and_checks_the_index():
    model = build_model(CONFIG, INFO, seed=0)
    cand = without_layer(model, 2)
    assert _empty_layers(cand) == [2] and not _empty_layers(model)
    x = torch.randn(2, INFO.seq_len, 1)
    with torch.inference_mode():
        assert torch.isfinite(cand.eval()(x)).all()
    for bad in (3, -1):
        with pytest.raises(ValueError, match=r"without_layer\(index\): expected an integer in \[0, 2\]"):
            without_layer(model, bad)


def test_resume_continues_after_the_last_finished_layer_and_refuses_other_settings(tmp_path):
    model = build_model(CONFIG, INFO, seed=0).eval()
    rec = Recorder()
    first = ablate(model, rec, out_dir=tmp_path, meta={"task": "toy", "metric": "accuracy"})
    state = json.loads((tmp_path / ABLATION_FILE).read_text())
    assert state["layers"] == first["layers"] and "latency_method" in state

    # a run killed after layer 0: layers 1 and 2 are done again, layer 0 is not
    state["layers"] = state["layers"][:1]
    del state["latency_method"]
    (tmp_path / ABLATION_FILE).write_text(json.dumps(state))
    rec = Recorder()
    again = ablate(model, rec, out_dir=tmp_path, meta={"task": "toy", "metric": "accuracy"})
    assert [c[1] for c in rec.calls if c[0] == "fine_tune"] == [[1], [2]]
    assert [r["layer"] for r in again["layers"]] == [0, 1, 2]

    # finished: a third call does no work
    rec = Recorder()
    ablate(model, rec, out_dir=tmp_path, meta={"task": "toy", "metric": "accuracy"})
    assert rec.calls == []
    with pytest.raises(SearchMismatchError, match="layer-wise ablation with other settings"):
        ablate(model, Recorder(), out_dir=tmp_path, seed=1, meta={"task": "toy", "metric": "accuracy"})


def test_bad_arguments_are_refused():
    model = build_model(CONFIG, INFO, seed=0)
    ds = make_ds(4, 0, "val")
    with pytest.raises(ValueError, match="no prunable SSM layer"):
        layer_ablation(torch.nn.Linear(2, 2), ds, ds, evaluate=lambda m, d: 0.0)
    with pytest.raises(TypeError, match=r"layer_ablation\(evaluate\)"):
        layer_ablation(model, ds, ds, evaluate=None)
    with pytest.raises(ValueError, match=r"layer_ablation\(seed\): expected an integer"):
        layer_ablation(model, ds, ds, evaluate=lambda m, d: 0.0, seed=-1)


def test_the_table_has_the_papers_rows_baseline_first():
    model = build_model(CONFIG, INFO, seed=0).eval()
    summary = ablate(model, Recorder(), meta={"task": "toy", "model": "toy", "layer": "s4d", "metric": "accuracy",
                                              "finetune": {"epochs": 1, "lr": 1e-3}})
    table = layerwise_table(summary)
    lines = table.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| Layer pruned |"))
    assert "Test accuracy" in lines[header] and "no fine-tuning" in lines[header] and "Parameters" in lines[header]
    rows = [line.split("|")[1].strip() for line in lines[header + 2:] if line.startswith("|")]
    assert rows == ["none", "0", "1", "2"]
    assert "| 0 | 61.00 | 60.00 | 11.00 | 10.00 |" in table  # test / val after, test / val before
    assert f"{summary['layers'][0]['params']:,} (" in table and "1 fine-tuning epoch at lr 0.001" in table
    assert "model `toy` (s4d)" in table


def test_the_ablation_of_an_s4_model():
    from s4op_kernels import S4Layer

    model = build_model(CONFIG.replace(layer="s4"), INFO, seed=0).eval()
    assert all(isinstance(layer, S4Layer) for layer in ssm_layers(model))
    rec = Recorder()
    summary = ablate(model, rec)
    assert [c[1] for c in rec.calls if c[0] == "fine_tune"] == [[0], [1], [2]]
    # S4: D, inv_dt (1 each), A_real, A_imag (N/2 each), B, P, C (N reals each) per channel
    per_channel = 2 + N + 3 * N
    assert all(r["params"] == summary["baseline"]["params"] - H * per_channel for r in summary["layers"])
    assert all(r["ssm_latency_ms"] > 0 for r in summary["layers"])
