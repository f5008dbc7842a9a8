"""Training loop, optimizer groups, schedule, metrics and evaluation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from s4op_kernels import training
from s4op_kernels.data.base import TaskDataset, TaskInfo
from s4op_kernels.models import Config, build_model
from s4op_kernels.training import (
    evaluate,
    f1_scores,
    fine_tune,
    make_scheduler,
    multilabel_counts,
    parameter_groups,
    train,
    warmup_cosine,
)

TINY = Config(name="tiny", n_layers=1, d_model=8, d_state=4, norm="layer", dropout=0.0, ssm_lr=1e-3)


def mean_sign_task(n: int, L: int, seed: int, *, lengths: bool = False) -> TaskDataset:
    """Continuous (n, L, 1) sequences; label 1 when the mean of the valid positions is positive."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, L, 1, generator=g) + 0.5 * torch.randn(n, 1, 1, generator=g)
    lens = torch.randint(L // 2, L + 1, (n,), generator=g) if lengths else torch.full((n,), L)
    valid = torch.arange(L).unsqueeze(0) < lens.unsqueeze(1)
    y = ((x[..., 0] * valid).sum(1) > 0).long()
    x[~valid] = 0.0
    info = TaskInfo("mean-sign", num_classes=2, seq_len=L, in_channels=1)
    return TaskDataset(x, y, info, lengths=lens, return_lengths=lengths)


# ---------------------------------------------------------------------- optimizer groups
def test_ssm_tensors_get_their_own_group_without_weight_decay():
    model = build_model(TINY.replace(n_layers=2, norm="batch"), mean_sign_task(4, 8, 0).info, seed=0)
    groups = parameter_groups(model, lr=1e-2, weight_decay=0.1, ssm_lr=5e-4)
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {"decay", "no_decay", "ssm"}
    ids = lambda g: {id(p) for p in g["params"]}  # noqa: E731
    # as the reference S4D, the layer tags log_dt, log_A_real and A_imag; C trains like any weight
    ssm = [p for layer in model.ssm_layers() for p in (layer.kernel.log_dt, layer.kernel.log_A_real, layer.kernel.A_imag)]
    assert ids(by_name["ssm"]) == {id(p) for p in ssm}
    assert by_name["ssm"]["lr"] == 5e-4 and by_name["ssm"]["weight_decay"] == 0.0
    no_decay = {id(p) for b in model.blocks for p in b.norm.parameters()}
    no_decay |= {id(p) for n, p in model.named_parameters() if n.endswith("bias")}
    assert ids(by_name["no_decay"]) == no_decay and by_name["no_decay"]["weight_decay"] == 0.0
    decay = ids(by_name["decay"])
    assert {id(model.encoder.weight), id(model.ssm_layers()[0].D), id(model.ssm_layers()[0].kernel.C)} <= decay
    assert by_name["decay"]["weight_decay"] == 0.1 and by_name["decay"]["lr"] == 1e-2
    # every trainable parameter exactly once
    all_ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(all_ids) == sorted(id(p) for p in model.parameters()) and len(set(all_ids)) == len(all_ids)


def test_ssm_lr_none_keeps_each_tags_learning_rate():
    model = build_model(TINY.replace(ssm_lr=2e-4), mean_sign_task(4, 8, 0).info, seed=0)
    (ssm,) = [g for g in parameter_groups(model, lr=1e-2, weight_decay=0.1) if g["name"] == "ssm"]
    assert ssm["lr"] == 2e-4 and ssm["weight_decay"] == 0.0
    untagged_lr = build_model(TINY.replace(ssm_lr=None), mean_sign_task(4, 8, 0).info, seed=0)
    (ssm,) = [g for g in parameter_groups(untagged_lr, lr=1e-2, weight_decay=0.1) if g["name"] == "ssm"]
    assert ssm["lr"] == 1e-2 and ssm["weight_decay"] == 0.0  # tag without lr: the default lr, still no decay


# ---------------------------------------------------------------------- schedule
def test_warmup_then_cosine_values():
    # warm-up of 4 steps: (s + 1) / 4; then cosine over the remaining 8 steps of 12
    got = [warmup_cosine(s, warmup_steps=4, total_steps=12) for s in range(12)]
    expected = [0.25, 0.5, 0.75] + [0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(-1, 8)]
    expected[3] = 1.0  # step 3 ends the warm-up at the peak
    expected[4:] = [0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(8)]
    assert got == pytest.approx(expected)
    assert got[4] == 1.0 and got[8] == pytest.approx(0.5) and got[-1] == pytest.approx(0.5 * (1 + math.cos(7 * math.pi / 8)))
    assert warmup_cosine(0, warmup_steps=0, total_steps=10) == 1.0


def test_scheduler_scales_every_group_per_step():
    p, q = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([{"params": [p], "lr": 1.0}, {"params": [q], "lr": 0.1}])
    sched = make_scheduler(opt, warmup_steps=2, total_steps=6)
    seen = []
    for _ in range(6):
        seen.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    assert [s[0] for s in seen] == pytest.approx([0.5, 1.0, 1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5,
                                                  0.5 * (1 + math.cos(3 * math.pi / 4))])
    assert [s[1] / s[0] for s in seen] == pytest.approx([0.1] * 6)


# ---------------------------------------------------------------------- training
def test_training_on_a_tiny_task_beats_chance_by_far():
    train_ds, val_ds = mean_sign_task(256, 32, seed=0), mean_sign_task(128, 32, seed=1)
    model = build_model(TINY, train_ds.info, seed=0)
    before = evaluate(model, val_ds)["accuracy"]
    result = train(model, train_ds, val_ds, epochs=4, lr=1e-2, batch_size=32, warmup_epochs=0.5, seed=0)
    assert result.metric == "accuracy" and result.steps == 4 * 8
    assert result.best_metric >= 0.85 and result.best_metric > before + 0.2
    assert evaluate(model, val_ds)["accuracy"] == result.best_metric  # the model holds the best weights
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.wall_time > 0 and model.training


def test_batches_with_lengths_reach_the_model():
    train_ds, val_ds = mean_sign_task(64, 16, 0, lengths=True), mean_sign_task(32, 16, 1, lengths=True)
    model = build_model(TINY, train_ds.info, seed=0)
    calls = []
    original = model.forward
    model.forward = lambda x, lengths=None: calls.append(lengths) or original(x, lengths)
    train(model, train_ds, val_ds, epochs=1, lr=1e-3, batch_size=16, seed=0)
    assert calls and all(c is not None and c.shape[0] == x for c, x in zip(calls, [16] * 4 + [32]))


def test_same_seed_same_result_other_seed_other_result():
    train_ds, val_ds = mean_sign_task(64, 16, 0), mean_sign_task(32, 16, 1)
    cfg = TINY.replace(dropout=0.2)

    def run(seed):
        model = build_model(cfg, train_ds.info, seed=0)
        res = train(model, train_ds, val_ds, epochs=2, lr=5e-3, batch_size=16, seed=seed)
        return res, model.state_dict()

    (r1, s1), (r2, s2), (r3, s3) = run(7), run(7), run(8)
    assert [h["train_loss"] for h in r1.history] == [h["train_loss"] for h in r2.history]
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert [h["train_loss"] for h in r1.history] != [h["train_loss"] for h in r3.history]


def test_early_stopping_restores_the_best_epochs_weights(monkeypatch):
    train_ds, val_ds = mean_sign_task(32, 8, 0), mean_sign_task(16, 8, 1)
    model = build_model(TINY, train_ds.info, seed=0)
    scripted = iter([0.50, 0.90, 0.60, 0.55, 0.95])  # epoch 2 is best; patience 2 stops after epoch 4
    snapshots = []

    def fake_evaluate(m, ds, **kw):
        snapshots.append({k: v.clone() for k, v in m.state_dict().items()})
        value = next(scripted)
        return {"loss": 1.0 - value, "accuracy": value, "n": len(ds), "metric": value}

    monkeypatch.setattr(training, "evaluate", fake_evaluate)
    result = train(model, train_ds, val_ds, epochs=5, lr=1e-2, batch_size=8, patience=2, seed=0)
    assert result.best_epoch == 2 and result.best_metric == 0.90
    assert result.stopped_early and len(result.history) == 4 and result.steps == 4 * 4
    state = model.state_dict()
    assert all(torch.equal(state[k], snapshots[1][k]) for k in state)
    assert not torch.equal(state["decoder.weight"], snapshots[3]["decoder.weight"])


def test_loss_metric_is_minimized(monkeypatch):
    train_ds, val_ds = mean_sign_task(16, 8, 0), mean_sign_task(8, 8, 1)
    losses = iter([0.7, 0.4, 0.6])
    monkeypatch.setattr(training, "evaluate",
                        lambda m, ds, **kw: (lambda v: {"loss": v, "accuracy": 0.5, "n": 8, "metric": v})(next(losses)))
    result = train(build_model(TINY, train_ds.info, seed=0), train_ds, val_ds, epochs=3, lr=1e-3, batch_size=8,
                   metric="loss")
    assert result.best_epoch == 2 and result.best_metric == 0.4


def test_fine_tune_uses_the_papers_defaults(monkeypatch):
    seen = {}
    monkeypatch.setattr(training, "train", lambda model, tr, va, **kw: seen.update(kw))
    fine_tune(nn.Linear(1, 1), None, None, epochs=5, lr=1e-4, seed=3)
    assert seen == {"epochs": 5, "lr": 1e-4, "weight_decay": 1e-5, "ssm_lr": 1e-4, "warmup_steps": 0, "seed": 3}


def test_a_diverging_loss_raises_with_the_step():
    train_ds, val_ds = mean_sign_task(16, 8, 0), mean_sign_task(8, 8, 1)
    train_ds.x[3, 2, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="epoch 1, step 1"):
        train(build_model(TINY, train_ds.info, seed=0), train_ds, val_ds, epochs=1, lr=1e-3, batch_size=16)


def test_argument_errors_name_the_argument():
    ds = mean_sign_task(8, 8, 0)
    model = build_model(TINY, ds.info, seed=0)
    with pytest.raises(ValueError, match="epochs"):
        train(model, ds, ds, epochs=0, lr=1e-3)
    with pytest.raises(ValueError, match="not both"):
        train(model, ds, ds, epochs=1, lr=1e-3, warmup_epochs=1, warmup_steps=2)
    with pytest.raises(ValueError, match="metric must be"):
        train(model, ds, ds, epochs=1, lr=1e-3, metric="micro_f1")
    with pytest.raises(ValueError, match="val_ds is empty"):
        train(model, ds, TensorDataset(torch.zeros(0, 8, 1), torch.zeros(0)), epochs=1, lr=1e-3)


def test_progress_is_quiet_when_stderr_is_not_a_terminal(capsys):
    ds = mean_sign_task(16, 8, 0)
    train(build_model(TINY, ds.info, seed=0), ds, ds, epochs=1, lr=1e-3, batch_size=8)
    assert capsys.readouterr().err == ""
    lines = []
    train(build_model(TINY, ds.info, seed=0), ds, ds, epochs=2, lr=1e-3, batch_size=8, progress=True, log=lines.append)
    assert "train" in capsys.readouterr().err and len(lines) == 2 and lines[0].startswith("epoch 1/2")


def test_a_compacted_model_trains_after_an_inference_mode_evaluation():
    train_ds, val_ds = mean_sign_task(16, 8, 0), mean_sign_task(8, 8, 1)
    model = build_model(TINY, train_ds.info, seed=0)
    model.blocks[0].ssm.set_active_channels([1, 4, 6])
    model.blocks[0].ssm = model.blocks[0].ssm.compact()
    # e.g. the pruner measuring a candidate before fine-tuning it: the layer's cached row index is then an
    # inference tensor, which autograd refuses; train() moving the model (.to) drops that cache first.
    evaluate(model, val_ds)
    result = train(model, train_ds, val_ds, epochs=2, lr=1e-3, batch_size=8)
    assert result.steps == 4


# ---------------------------------------------------------------------- metrics and evaluation
def test_f1_scores_against_hand_computed_values():
    logits = torch.tensor([[2.0, -1.0, 0.5], [-0.3, 1.0, -2.0], [0.0, -1.0, 3.0], [-1.0, -1.0, -1.0]])
    targets = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 0, 0]], dtype=torch.float32)
    counts = multilabel_counts(logits, targets)
    # label 0: tp 1 (row 0), fp 1 (row 2, logit 0 -> sigmoid 0.5 counts as positive), fn 1 (row 1)
    # label 1: tp 1, fp 0, fn 0;  label 2: tp 1 (row 2), fp 1 (row 0), fn 0
    assert counts.tolist() == [[1, 1, 1], [1, 0, 1], [1, 0, 0]]
    f1 = f1_scores(counts)
    assert f1["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))
    assert f1["macro_f1"] == pytest.approx((2 / 4 + 1.0 + 2 / 3) / 3)
    # a label never present nor predicted scores 0 in the macro mean (scikit-learn's default)
    assert f1_scores(torch.tensor([[2, 0], [0, 0], [0, 0]]))["macro_f1"] == pytest.approx(0.5)
    assert f1_scores(torch.zeros(3, 2, dtype=torch.int64)) == {"micro_f1": 0.0, "macro_f1": 0.0}


class _Logits(nn.Module):
    """Returns its input as logits, and records whether it ran in inference mode."""

    def __init__(self):
        super().__init__()
        self.modes = []

    def forward(self, x):
        self.modes.append((torch.is_inference_mode_enabled(), self.training))
        return x


def test_evaluate_multilabel_and_single_label_metrics_in_inference_mode():
    logits = torch.tensor([[2.0, -1.0, 0.5], [-0.3, 1.0, -2.0], [0.0, -1.0, 3.0], [-1.0, -1.0, -1.0]])
    targets = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 0, 0]], dtype=torch.float32)
    model = _Logits().train()
    out = evaluate(model, TensorDataset(logits, targets), batch_size=3)  # multi-label inferred from 2-D float y
    assert out["micro_f1"] == pytest.approx(6 / 9) and out["metric"] == out["micro_f1"]
    assert out["accuracy"] == pytest.approx(9 / 12) and out["n"] == 4
    bce = nn.functional.binary_cross_entropy_with_logits(logits, targets)
    assert out["loss"] == pytest.approx(float(bce))
    assert model.modes == [(True, False), (True, False)] and model.training  # eval + inference, then restored
    y = torch.tensor([0, 1, 1, 2])
    single = evaluate(_Logits(), TensorDataset(logits, y), metric="auto")
    assert single["accuracy"] == 0.5 and single["metric"] == 0.5  # argmax = [0, 1, 2, 0]
    assert single["loss"] == pytest.approx(float(nn.functional.cross_entropy(logits, y)))
    assert evaluate(_Logits(), TensorDataset(logits, targets), metric="macro_f1")["metric"] == pytest.approx(
        (2 / 4 + 1.0 + 2 / 3) / 3)
