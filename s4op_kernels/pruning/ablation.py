"""The layer-wise ablation of the paper's Table I: remove every SSM operator of one layer, fine-tune, score.

For a trained baseline with ``n`` SSM layers there are ``n`` candidates; candidate ``i`` has every channel of
layer ``i`` pruned to identity (``set_active_channels([])``) and the other layers untouched.  Each candidate
is scored on the validation and test splits as pruned (no fine-tuning), then fine-tuned exactly like the
search's candidates (the same ``fine_tune`` callback, so the same epochs, learning rate and weight decay)
and scored again.  The paper reads the table as "which layers matter": removing an early layer costs the
most, deeper layers are more redundant (section IV-B).

Parameters and latency depend only on which channels are active, not on the values of the weights, so they
are taken after the loop from the baseline with layer ``i`` removed, compacted, all candidates and the
baseline timed round-robin (:func:`~s4op_kernels.pruning.search.measure_models`), which keeps their numbers
comparable and needs no candidate kept in memory or on disk.

With ``out_dir`` the state is saved after every layer (``layerwise.json``, atomically) and a second call
with the same settings continues after the last finished layer; other settings are refused
(:class:`~s4op_kernels.pruning.SearchMismatchError`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
from pathlib import Path
from typing import Any, Callable, Optional

from torch import nn

from s4op_kernels.pruning.params import count_parameters
from s4op_kernels.pruning.search import (
    PAPER_SEEDS, SEED_MAX, Evaluate, SearchMismatchError, _bar, measure_models,
)
from s4op_kernels.pruning.selection import ssm_layers
from s4op_kernels._validate import check_int

ABLATION_FILE = "layerwise.json"
FORMAT_VERSION = 1


def without_layer(model: nn.Module, index: int) -> nn.Module:
    """A deep copy of ``model`` with every SSM operator of its ``index``-th SSM layer pruned (identity)."""
    layers = ssm_layers(model)
    index = check_int(index, "index", func="without_layer", minimum=0, maximum=len(layers) - 1)
    cand = copy.deepcopy(model)
    ssm_layers(cand)[index].set_active_channels([])
    return cand


def layer_ablation(
    model: nn.Module,
    train_ds,
    val_ds,
    test_ds=None,
    *,
    evaluate: Evaluate,
    fine_tune: Optional[Callable[..., Any]] = None,
    seed: int = PAPER_SEEDS[0],
    latency_batch_size: int = 8,
    latency_warmup: int = 20,
    latency_repeats: int = 100,
    threads: Optional[int] = None,
    out_dir=None,
    meta: Optional[dict] = None,
    progress: Optional[bool] = None,
    log: Optional[Callable[[str], Any]] = None,
) -> dict:
    """Table I of the paper on ``model`` (left unchanged): one candidate per SSM layer, that layer removed.

    Args:
        model: the trained baseline; its SSM layers (:func:`~s4op_kernels.pruning.ssm_layers`) must share one
            ``d_model``.
        train_ds, val_ds, test_ds: fine-tuning data, the validation split and (optional) the test split.
        evaluate: ``evaluate(model, ds) -> float``, higher is better.
        fine_tune: ``fine_tune(model, train_ds, val_ds, seed=...)`` trains a candidate in place, as in the
            search (None: no fine-tuning; the "after" columns then equal the "before" ones).
        seed: the fine-tuning seed of every candidate.  Removing a whole layer involves no random choice,
            so one seed per layer is the ablation; a best-of-seeds would select on fine-tuning noise.
        latency_batch_size, latency_warmup, latency_repeats, threads: the latency probe (as the search's).
        out_dir: folder of ``layerwise.json`` (enables resume); locked while the ablation runs.
        meta: facts for the report and the resume check (``task``, ``model``, ``metric``, ``finetune``,
            ``run``; JSON-serializable).
        progress, log: a tqdm bar (None: only on a terminal) and a callable taking one line of text.

    Returns the summary dict (also the content of ``layerwise.json``): ``settings``, ``meta``,
    ``baseline`` and ``layers``, one row per layer with ``layer``, ``val_metric``/``test_metric`` after
    fine-tuning, ``val_metric_before``/``test_metric_before``, ``finetune_s``, ``params`` (compacted),
    ``latency_ms`` (batch 1), ``latency_batch_ms`` and ``ssm_latency_ms``.
    """
    layers = ssm_layers(model)
    if not layers:
        raise ValueError("layer_ablation(model): the model contains no prunable SSM layer")
    widths = {layer.d_model for layer in layers}
    if len(widths) != 1:
        raise ValueError(f"layer_ablation(model): all SSM layers must have the same d_model, got {sorted(widths)}")
    if not callable(evaluate):
        raise TypeError("layer_ablation(evaluate): expected a callable (model, dataset) -> float")
    if fine_tune is not None and not callable(fine_tune):
        raise TypeError("layer_ablation(fine_tune): expected None or a callable (model, train_ds, val_ds, seed=...)")
    seed = check_int(seed, "seed", func="layer_ablation", minimum=0, maximum=SEED_MAX)
    latency_batch_size = check_int(latency_batch_size, "latency_batch_size", func="layer_ablation", minimum=1)
    latency_warmup = check_int(latency_warmup, "latency_warmup", func="layer_ablation", minimum=0)
    latency_repeats = check_int(latency_repeats, "latency_repeats", func="layer_ablation", minimum=1)
    meta = dict(meta or {})
    settings = json.loads(json.dumps({
        "seed": seed, "n_layers": len(layers), "d_model": widths.pop(), "latency_batch_size": latency_batch_size,
        **{k: meta[k] for k in ("task", "model", "layer", "finetune", "run") if k in meta},
    }))
    log = log or (lambda line: None)
    out_dir = None if out_dir is None else Path(out_dir)
    from s4op_kernels.runlock import lock_run_folder

    with lock_run_folder(out_dir) if out_dir is not None else contextlib.nullcontext():
        t_start = time.perf_counter()
        state = _load_state(out_dir, settings)
        if state is None:
            log("layer-wise ablation: evaluating the baseline")
            state = {"format": FORMAT_VERSION, "settings": settings, "meta": meta,
                     "baseline": _scores(model, evaluate, val_ds, test_ds), "layers": [], "elapsed_s": 0.0}
            _save_state(out_dir, state)
        else:
            log(f"resuming {out_dir / ABLATION_FILE}: {len(state['layers'])} of {len(layers)} layers already done")
        elapsed_before = state.get("elapsed_s", 0.0)
        done = len(state["layers"])
        bar = _bar(len(layers), done, progress, "layer-wise ablation")
        try:
            for i in range(done, len(layers)):
                cand = without_layer(model, i)
                before = _scores(cand, evaluate, val_ds, test_ds)
                t = time.perf_counter()
                if fine_tune is not None:
                    fine_tune(cand, train_ds, val_ds, seed=seed)
                finetune_s = time.perf_counter() - t
                after = _scores(cand, evaluate, val_ds, test_ds)
                state["layers"].append({"layer": i, **after, "val_metric_before": before["val_metric"],
                                        "test_metric_before": before["test_metric"], "finetune_s": finetune_s})
                state["elapsed_s"] = elapsed_before + time.perf_counter() - t_start
                _save_state(out_dir, state)
                log(f"layer {i} removed: val {before['val_metric']:.4f} -> {after['val_metric']:.4f} after "
                    f"fine-tuning ({finetune_s:.0f} s)")
                bar.update(1)
        finally:
            bar.close()
        if "latency_method" not in state:
            log("layer-wise ablation: parameters and latency of every candidate, interleaved")
            structures = [model] + [without_layer(model, i) for i in range(len(layers))]
            rows = [state["baseline"]] + state["layers"]
            times = measure_models(structures, train_ds.info, batch_size=latency_batch_size, warmup=latency_warmup,
                                   repeats=latency_repeats, threads=threads)
            for row, m, (lat1, latb, ssm) in zip(rows, structures, times):
                row.update(params=count_parameters(m), latency_ms=lat1, latency_batch_ms=latb, ssm_latency_ms=ssm)
            state["threads"] = threads if threads is not None else _threads()
            state["latency_method"] = (f"the baseline and every candidate round-robin, compacted: {latency_warmup} "
                                       f"warm-up + {latency_repeats} timed forwards each, median")
            state["elapsed_s"] = elapsed_before + time.perf_counter() - t_start
            _save_state(out_dir, state)
    return state


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _scores(model: nn.Module, evaluate: Evaluate, val_ds, test_ds) -> dict:
    return {"val_metric": float(evaluate(model, val_ds)),
            "test_metric": float(evaluate(model, test_ds)) if test_ds is not None else None}


def _load_state(out_dir: Optional[Path], settings: dict) -> Optional[dict]:
    if out_dir is None or not (out_dir / ABLATION_FILE).exists():
        return None
    path = out_dir / ABLATION_FILE
    try:
        state = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read the saved ablation ({err}); move it away to start afresh") from err
    if not isinstance(state, dict) or state.get("settings") != settings:
        recorded = state.get("settings") if isinstance(state, dict) else state
        raise SearchMismatchError(
            f"{path} holds a layer-wise ablation with other settings ({recorded}); these are {settings}. Use "
            "another output folder, or delete this file to start again.")
    return state


def _save_state(out_dir: Optional[Path], state: dict) -> None:
    if out_dir is None:
        return
    from s4op_kernels._atomic import atomic_write_bytes

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_dir / ABLATION_FILE, json.dumps(state, indent=2).encode())


__all__ = ["ABLATION_FILE", "layer_ablation", "without_layer"]
