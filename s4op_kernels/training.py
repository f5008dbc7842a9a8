"""Training, fine-tuning and evaluation of sequence classifiers.

- :func:`train`: AdamW with per-step linear warm-up then cosine decay, gradient-norm clipping, selection
  of the best epoch by the **validation** metric (its weights are restored at the end; optional early
  stopping after ``patience`` epochs without improvement), seeded end to end.
- :func:`fine_tune`: :func:`train` with the paper's fine-tuning defaults (weight decay 1e-5, no warm-up,
  SSM tensors at the fine-tuning learning rate).
- :func:`evaluate`: loss and metrics in eval mode under ``torch.inference_mode`` (so S4D layers run on the
  compiled CPU engine).

Loading a task, training it and saving a checkpoint in one call (the ``s4op train`` command) is the
application's: :func:`s4op_kernels.app.train.train_task`.

Optimizer parameter groups (:func:`parameter_groups`): parameters tagged ``_optim`` (the SSM tensors C,
log_dt, log_A_real, A_imag) get their tag's hyperparameters (no weight decay; their own learning rate,
overridden by ``ssm_lr``); normalization weights and all biases get no weight decay either (they set
scales and offsets, and decaying them only fights the normalization); every other parameter (encoder,
D, output mixing, decoder) gets ``weight_decay``.

Metrics: single-label tasks report ``accuracy``; multi-label tasks report ``micro_f1`` and ``macro_f1``
(a label is predicted when its sigmoid is >= 0.5, i.e. its logit is >= 0) and the per-label ``accuracy``.
The ``"auto"`` metric that selects the best epoch is ``accuracy`` for single-label and ``micro_f1`` for
multi-label tasks (micro-F1 is what the paper reports for ECG).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional, Union

import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from s4op_kernels._progress import progress_enabled
from s4op_kernels._validate import check_float, check_int

METRICS = ("accuracy", "micro_f1", "macro_f1", "loss")
_NO_DECAY_MODULES = (nn.LayerNorm, nn.modules.batchnorm._NormBase, nn.GroupNorm)


# ---------------------------------------------------------------------- results
@dataclass
class TrainResult:
    """What :func:`train` did.

    ``best_metric`` is the validation ``metric`` of epoch ``best_epoch`` (1-based), whose weights the model
    holds on return; ``history`` has one dict per epoch (``epoch``, ``train_loss``, ``lr`` at the end of
    the epoch, ``val_loss`` and the validation metrics); ``steps`` counts optimizer steps.
    """

    metric: str
    best_metric: float
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    wall_time: float = 0.0
    steps: int = 0
    stopped_early: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------- optimizer and schedule
def parameter_groups(model: nn.Module, *, lr: float, weight_decay: float, ssm_lr: Optional[float] = None) -> list[dict]:
    """AdamW parameter groups of ``model`` (see the module docstring for the rules).

    Returns groups of ``{"params", "lr", "weight_decay", "name"}``; empty groups are left out.  Parameters
    tagged ``_optim`` are grouped by their (overridden) hyperparameters, so differently tagged layers keep
    their own settings.
    """
    decay, no_decay = [], []
    tagged: dict[tuple, list] = {}
    no_decay_ids = set()
    for module in model.modules():
        for pname, p in module.named_parameters(recurse=False):
            if isinstance(module, _NO_DECAY_MODULES) or pname == "bias":
                no_decay_ids.add(id(p))
    seen = set()
    for _, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        optim = getattr(p, "_optim", None)
        if optim is not None:
            hp = {"lr": lr, "weight_decay": weight_decay, **optim}
            if ssm_lr is not None:
                hp["lr"] = ssm_lr
            tagged.setdefault(tuple(sorted(hp.items())), []).append(p)
        elif id(p) in no_decay_ids:
            no_decay.append(p)
        else:
            decay.append(p)
    groups = []
    if decay:
        groups.append({"name": "decay", "params": decay, "lr": lr, "weight_decay": weight_decay})
    if no_decay:
        groups.append({"name": "no_decay", "params": no_decay, "lr": lr, "weight_decay": 0.0})
    for i, (hp, params) in enumerate(tagged.items()):
        groups.append({"name": f"ssm{i}" if len(tagged) > 1 else "ssm", "params": params, **dict(hp)})
    return groups


def warmup_cosine(step: int, *, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate factor at optimizer step ``step`` (0-based): linear warm-up ``(step + 1) / warmup_steps``
    for the first ``warmup_steps`` steps (so the first step already learns), then a cosine from 1 to 0 over
    the remaining ``total_steps - warmup_steps`` steps: ``0.5 * (1 + cos(pi * (step - warmup) / (total - warmup)))``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step :func:`warmup_cosine` schedule scaling every group's learning rate (call ``step()`` after
    each optimizer step)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, warmup_steps=warmup_steps, total_steps=total_steps))


# ---------------------------------------------------------------------- metrics
def is_multilabel(ds: Dataset) -> bool:
    """True when ``ds`` is a multi-label task (``ds.multilabel``, else 2-D float targets)."""
    flag = getattr(ds, "multilabel", None)
    if flag is not None:
        return bool(flag)
    y = ds[0][1]
    return torch.as_tensor(y).is_floating_point() and torch.as_tensor(y).dim() == 1


def resolve_metric(metric: str, multilabel: bool) -> str:
    """``"auto"`` -> ``"micro_f1"`` (multi-label) or ``"accuracy"``; other names are checked."""
    if metric == "auto":
        return "micro_f1" if multilabel else "accuracy"
    valid = ("micro_f1", "macro_f1", "accuracy", "loss") if multilabel else ("accuracy", "loss")
    if metric not in valid:
        kind = "multi-label" if multilabel else "single-label"
        raise ValueError(f"metric must be 'auto' or one of {list(valid)} for a {kind} task, got {metric!r}")
    return metric


def multilabel_counts(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-label (tp, fp, fn) counts, (3, K) int64, of predictions ``sigmoid(logits) >= 0.5``.

    logits: (N, K) float; targets: (N, K) 0/1.
    """
    pred = logits >= 0  # sigmoid(z) >= 0.5  <=>  z >= 0
    true = targets > 0.5
    tp = (pred & true).sum(0)
    fp = (pred & ~true).sum(0)
    fn = (~pred & true).sum(0)
    return torch.stack([tp, fp, fn]).to(torch.int64)


def f1_scores(counts: torch.Tensor) -> dict[str, float]:
    """``micro_f1`` and ``macro_f1`` from (3, K) per-label (tp, fp, fn) counts.

    micro: ``2 TP / (2 TP + FP + FN)`` with the counts summed over labels; macro: the mean over labels of
    each label's F1.  A label with no positives and no positive predictions (0/0) scores 0, as scikit-learn's
    default; so does micro-F1 when every count is 0.
    """
    tp, fp, fn = counts.to(torch.float64)
    denom = 2 * tp + fp + fn
    per_label = torch.where(denom > 0, 2 * tp / denom.clamp_min(1), torch.zeros_like(denom))
    micro_denom = float(denom.sum())
    micro = 2 * float(tp.sum()) / micro_denom if micro_denom > 0 else 0.0
    return {"micro_f1": micro, "macro_f1": float(per_label.mean())}


def loss_fn(logits: torch.Tensor, y: torch.Tensor, multilabel: bool, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy (y: (B,) class indices) or BCE-with-logits (y: (B, K) 0/1) of logits (B, K)."""
    if multilabel:
        return nn.functional.binary_cross_entropy_with_logits(logits, y.to(logits.dtype), reduction=reduction)
    return nn.functional.cross_entropy(logits, y, reduction=reduction)


# ---------------------------------------------------------------------- batches
def _batches(ds: Dataset, batch_size: int, *, shuffle: bool, generator: Optional[torch.Generator]) -> DataLoader:
    """Batches of ``ds``; seeded by ``generator`` when shuffled.

    In-memory datasets whose ``__getitem__`` takes a list of indices (TaskDataset: tensor indexing) are
    fetched a whole batch at a time instead of item by item and re-stacked.
    """
    sampler = RandomSampler(ds, generator=generator) if shuffle else SequentialSampler(ds)
    if _takes_index_lists(ds):
        return DataLoader(ds, sampler=BatchSampler(sampler, batch_size, drop_last=False), batch_size=None)
    return DataLoader(ds, batch_size=batch_size, sampler=sampler)


def _takes_index_lists(ds: Dataset) -> bool:
    from s4op_kernels.data.base import TaskDataset

    return isinstance(ds, TaskDataset)


def _unpack(batch, device: torch.device):
    """(x, y, lengths or None) on ``device`` from a batch ``(x, y)`` or ``(x, y, lengths)``."""
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
        raise ValueError(f"a batch must be (x, y) or (x, y, lengths), got {type(batch).__name__}"
                         + (f" of {len(batch)} items" if isinstance(batch, (tuple, list)) else ""))
    x, y = batch[0].to(device), batch[1].to(device)
    lengths = batch[2].to(device) if len(batch) == 3 else None
    return x, y, lengths


def _forward(model: nn.Module, x: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
    return model(x) if lengths is None else model(x, lengths)


# ---------------------------------------------------------------------- evaluation
def evaluate(model: nn.Module, ds: Dataset, *, batch_size: int = 256, metric: str = "auto",
             device: Union[str, torch.device] = "cpu") -> dict[str, float]:
    """Loss and metrics of ``model`` on ``ds``, in eval mode under ``torch.inference_mode``.

    Returns ``{"loss", "accuracy"}`` (single-label) or ``{"loss", "micro_f1", "macro_f1", "accuracy"}``
    (multi-label; ``accuracy`` is the fraction of correct (example, label) pairs), plus ``"n"`` (examples)
    and ``"metric"``: the value of ``metric`` (``"auto"``: accuracy or micro-F1).  The model's
    train/eval mode is restored afterwards.
    """
    if len(ds) == 0:
        raise ValueError("evaluate(ds): the dataset is empty")
    multilabel = is_multilabel(ds)
    name = resolve_metric(metric, multilabel)
    device = torch.device(device)
    was_training = model.training
    model.eval()
    total_loss, n, correct, counts = 0.0, 0, 0, None
    try:
        with torch.inference_mode():
            for batch in _batches(ds, batch_size, shuffle=False, generator=None):
                x, y, lengths = _unpack(batch, device)
                logits = _forward(model, x, lengths)
                total_loss += float(loss_fn(logits, y, multilabel, reduction="sum"))
                n += y.shape[0]
                if multilabel:
                    c = multilabel_counts(logits, y)
                    counts = c if counts is None else counts + c
                    correct += int(((logits >= 0) == (y > 0.5)).sum())
                else:
                    correct += int((logits.argmax(dim=-1) == y).sum())
    finally:
        model.train(was_training)
    if multilabel:
        k = counts.shape[1]
        out = {"loss": total_loss / (n * k), **f1_scores(counts), "accuracy": correct / (n * k)}
    else:
        out = {"loss": total_loss / n, "accuracy": correct / n}
    out["n"] = n
    out["metric"] = out[name]
    return out


# ---------------------------------------------------------------------- training
def train(
    model: nn.Module,
    train_ds: Dataset,
    val_ds: Dataset,
    *,
    epochs: int,
    lr: float,
    ssm_lr: Optional[float] = None,
    weight_decay: float = 0.0,
    batch_size: int = 32,
    warmup_epochs: Optional[float] = None,
    warmup_steps: Optional[int] = None,
    clip: Optional[float] = 1.0,
    patience: Optional[int] = None,
    seed: int = 0,
    metric: str = "auto",
    eval_batch_size: Optional[int] = None,
    progress: Optional[bool] = None,
    device: Union[str, torch.device] = "cpu",
    log: Optional[Callable[[str], Any]] = None,
) -> TrainResult:
    """Train ``model`` on ``train_ds``, select the best epoch on ``val_ds``, and restore its weights.

    Args:
        model: a module with ``forward(x)`` (and ``forward(x, lengths)`` if batches carry lengths) -> logits.
        train_ds, val_ds: datasets of ``(x, y)`` or ``(x, y, lengths)``; y: (B,) int64 classes or
            (B, K) 0/1 labels (multi-label: BCE-with-logits, else cross-entropy).
        epochs: passes over ``train_ds``; lr: peak learning rate; weight_decay: AdamW decay of the
            decayed group (see :func:`parameter_groups`); ssm_lr: learning rate of the ``_optim``-tagged
            SSM tensors (None: their tag's, else ``lr``).
        warmup_epochs / warmup_steps: length of the linear warm-up (give at most one; default none), then
            cosine decay to 0 at the last step.
        clip: maximum gradient norm (None: no clipping).
        patience: stop after this many epochs without a better validation metric (None: run all epochs).
        seed: seeds the shuffling (a seeded DataLoader generator) and dropout (``torch.manual_seed`` in a
            forked RNG, so the caller's random state is untouched).  The same seed, data, initial weights
            and thread count give the same result.
        metric: validation metric that selects the best epoch (:func:`resolve_metric`; ``"loss"`` is
            minimized, the others maximized).
        progress: tqdm progress bar on stderr; None: only when stderr is a terminal.
        device: where the model and batches live.
        log: called with one line of text per epoch (e.g. ``print``).

    Returns a :class:`TrainResult`; the model holds the best epoch's weights and is in train mode.
    """
    epochs = check_int(epochs, "epochs", func="train", minimum=1)
    batch_size = check_int(batch_size, "batch_size", func="train", minimum=1)
    if patience is not None:
        patience = check_int(patience, "patience", func="train", minimum=1)
    lr = check_float(lr, "lr", func="train", minimum=0.0, min_open=True)
    if clip is not None and not clip > 0:
        raise ValueError(f"train: clip must be None or > 0, got {clip!r}")
    if warmup_epochs is not None and warmup_steps is not None:
        raise ValueError("train: give warmup_epochs or warmup_steps, not both")
    if len(train_ds) == 0:
        raise ValueError("train: train_ds is empty")
    if len(val_ds) == 0:
        raise ValueError("train: val_ds is empty (the best epoch is chosen on validation data)")

    multilabel = is_multilabel(train_ds)
    name = resolve_metric(metric, multilabel)
    higher_is_better = name != "loss"
    device = torch.device(device)
    model.to(device)  # (S4D layers drop their inference caches on .to(); training never reads them)

    steps_per_epoch = math.ceil(len(train_ds) / batch_size)
    total_steps = epochs * steps_per_epoch
    if warmup_steps is None:
        warmup_steps = int(round((warmup_epochs or 0.0) * steps_per_epoch))
    if warmup_steps < 0:
        raise ValueError(f"train: the warm-up must be >= 0 steps, got {warmup_steps}")

    optimizer = torch.optim.AdamW(parameter_groups(model, lr=lr, weight_decay=weight_decay, ssm_lr=ssm_lr))
    scheduler = make_scheduler(optimizer, warmup_steps=warmup_steps, total_steps=total_steps)
    generator = torch.Generator().manual_seed(seed)
    loader = _batches(train_ds, batch_size, shuffle=True, generator=generator)
    eval_bs = eval_batch_size or max(batch_size, 64)

    result = TrainResult(metric=name, best_metric=-math.inf if higher_is_better else math.inf, best_epoch=0)
    best_state: Optional[dict[str, torch.Tensor]] = None
    since_best = 0
    start = time.perf_counter()
    bar = _make_bar(total_steps, progress_enabled(progress))
    rng_devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=rng_devices):
            torch.manual_seed(seed)
            for epoch in range(1, epochs + 1):
                model.train()
                loss_sum, n_seen = 0.0, 0
                for batch in loader:
                    x, y, lengths = _unpack(batch, device)
                    loss = loss_fn(_forward(model, x, lengths), y, multilabel)
                    loss_value = float(loss.detach())
                    if not math.isfinite(loss_value):
                        raise FloatingPointError(
                            f"train: the loss became {loss_value} at epoch {epoch}, step {result.steps + 1}; "
                            f"lower lr (now {lr}) or check the data for NaN/Inf")
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if clip is not None:
                        nn.utils.clip_grad_norm_(model.parameters(), clip)
                    optimizer.step()
                    scheduler.step()
                    result.steps += 1
                    loss_sum += loss_value * y.shape[0]
                    n_seen += y.shape[0]
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(epoch=epoch, loss=f"{loss_value:.4f}", refresh=False)

                val = evaluate(model, val_ds, batch_size=eval_bs, metric=name, device=device)
                row = {"epoch": epoch, "train_loss": loss_sum / n_seen, "lr": optimizer.param_groups[0]["lr"]}
                row.update({f"val_{k}": v for k, v in val.items() if k not in ("n", "metric")})
                result.history.append(row)
                value = val["metric"]
                improved = value > result.best_metric if higher_is_better else value < result.best_metric
                if improved:
                    result.best_metric, result.best_epoch, since_best = value, epoch, 0
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    since_best += 1
                if log is not None:
                    log(f"epoch {epoch}/{epochs}  train_loss {row['train_loss']:.4f}  val_loss {val['loss']:.4f}  "
                        f"val_{name} {value:.4f}" + ("  (best)" if improved else ""))
                if bar is not None:
                    bar.set_postfix(epoch=epoch, **{f"val_{name}": f"{value:.4f}"})
                if patience is not None and since_best >= patience and epoch < epochs:
                    result.stopped_early = True
                    if log is not None:
                        log(f"early stop: no better val_{name} for {patience} epochs; best epoch {result.best_epoch}")
                    break
    finally:
        if bar is not None:
            bar.close()
    if best_state is not None:  # None only if every validation metric was NaN
        model.load_state_dict(best_state)
    model.train()
    result.wall_time = time.perf_counter() - start
    return result


def fine_tune(model: nn.Module, train_ds: Dataset, val_ds: Dataset, *, epochs: int, lr: float,
              weight_decay: float = 1e-5, ssm_lr: Optional[float] = None, warmup_steps: int = 0,
              **kwargs: Any) -> TrainResult:
    """Fine-tune ``model`` (e.g. a pruned candidate) with the paper's defaults: AdamW, weight decay 1e-5,
    best epoch by validation restored; ``epochs`` and ``lr`` per task (``Config.finetune_kwargs()``).

    The SSM tensors train at the fine-tuning ``lr`` too (``ssm_lr=None`` means ``lr`` here, not the
    layers' tagged training learning rate, which would be far larger) and keep no weight decay.  No
    warm-up by default.  Other keywords go to :func:`train`.
    """
    return train(model, train_ds, val_ds, epochs=epochs, lr=lr, weight_decay=weight_decay,
                 ssm_lr=lr if ssm_lr is None else ssm_lr, warmup_steps=warmup_steps, **kwargs)


# ---------------------------------------------------------------------- helpers
def _make_bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="train", unit="step", file=sys.stderr, dynamic_ncols=True, leave=False)


__all__ = [
    "TrainResult", "train", "fine_tune", "evaluate", "parameter_groups", "warmup_cosine",
    "make_scheduler", "f1_scores", "multilabel_counts", "loss_fn", "resolve_metric", "is_multilabel", "METRICS",
]
