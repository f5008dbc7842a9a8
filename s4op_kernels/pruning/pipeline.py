"""From data to report in one call: load a task, train (or load) the baseline, run the S4oP search, write the
report.  The ``s4op prune``, ``s4op run`` and ``s4op compare`` commands are thin wrappers around these.

A run folder (``out``) holds::

    baseline.safetensors / baseline.json     the trained baseline (with its config and data options)
    rate_10.safetensors / rate_10.json ...   the chosen model of each finished rate
    search.json                              settings and results so far (the resume point)
    report.md / report.json / report.png     the report (rewritten after the search)
    compare/                                 the ablations of ``compare`` (strategies, one-shot)

Every file is written atomically, and running the same command again after an interruption continues
where it stopped.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from s4op_kernels.pruning.search import DEFAULT_RATES, PAPER_SEEDS, IncrementalPruner, OneShotPruner, PruningResult

# `s4op run`: the built-in synthetic ECG task, generated in memory, and the ecg-embedded model.
MAIN_TASK = "ecg-synthetic"
MAIN_CONFIG = "ecg-embedded"
MAIN_DATA = {"n_train": 2000, "n_val": 500, "n_test": 500, "seed": 0}
MAIN_OUT = "s4op-run"
BASELINE = "baseline"


def _load_splits(task: str, root, options: dict):
    from s4op_kernels import data

    return tuple(data.load(task, root, split, **options) for split in ("train", "val", "test"))


def _resolve_config(config):
    from s4op_kernels.models import Config, get_config

    if isinstance(config, str):
        return get_config(config)
    if not isinstance(config, Config):
        raise TypeError(f"config must be a Config or a registered config name, got {type(config).__name__}")
    return config


def prepare(task: str, root=None, *, config=None, checkpoint=None, out=MAIN_OUT, data_options: Optional[dict] = None,
            seed: int = 0, progress: Optional[bool] = None, log: Callable[[str], Any] = print):
    """Load ``task``'s splits and the baseline: ``checkpoint`` if given, else ``<out>/baseline`` if a previous
    run saved it, else a model of ``config`` trained now (and saved there).  Returns
    ``(model, config, (train, val, test), info)`` where ``info`` describes the baseline's training."""
    from s4op_kernels.checkpoint import load_checkpoint, save_checkpoint
    from s4op_kernels.models import build_model, default_config
    from s4op_kernels.training import evaluate, train

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / f"{BASELINE}.safetensors"
    source = checkpoint if checkpoint is not None else (out / BASELINE if saved.exists() else None)
    if source is not None:
        model, meta = load_checkpoint(source)
        config = meta.config if config is None else _resolve_config(config)
        if config is None:
            raise ValueError(f"{source}: the checkpoint holds no config; pass config=<name>")
        stored = (meta.extra or {}).get("data_options")
        options = {**config.data_options, **(stored or {}), **(data_options or {})}
        splits = _load_splits(task, root, options)
        info = {"source": str(source), "train_time_s": (meta.metrics or {}).get("train_time_s"), "data_options": options}
        log(f"baseline: loaded {source}")
        return model, config, splits, info

    config = default_config(task) if config is None else _resolve_config(config)
    options = {**config.data_options, **(data_options or {})}
    splits = _load_splits(task, root, options)
    train_ds, val_ds, _ = splits
    log(f"baseline: training {config.name} on {task} ({len(train_ds)} train / {len(val_ds)} val examples, "
        f"length {train_ds.seq_len})")
    model = build_model(config, train_ds.info, seed=seed)
    result = train(model, train_ds, val_ds, **config.train_kwargs(), seed=seed, progress=progress,
                   log=lambda line: log("  " + line))
    val = evaluate(model, val_ds, metric=result.metric)
    save_checkpoint(out / BASELINE, model, config=config, task_info=train_ds.info,
                    metrics={"metric": result.metric, "val": val, "train_time_s": result.wall_time,
                             "best_epoch": result.best_epoch},
                    extra={"task": task, "data": None if root is None else str(root), "data_options": options,
                           "seed": seed, "history": result.history})
    log(f"baseline: val {result.metric} {val['metric']:.4f} after {result.wall_time:.0f} s")
    return model, config, splits, {"source": "trained", "train_time_s": result.wall_time, "data_options": options}


def _callbacks(config, metric: str, progress: Optional[bool], finetune_epochs=None, finetune_lr=None):
    from s4op_kernels.training import evaluate, fine_tune

    kw = config.finetune_kwargs()
    if finetune_epochs is not None:
        kw["epochs"] = finetune_epochs
    if finetune_lr is not None:
        kw["lr"] = finetune_lr

    def ft(model, train_ds, val_ds, *, seed):
        if kw["epochs"] > 0:
            fine_tune(model, train_ds, val_ds, **kw, seed=seed, metric=metric, progress=False)

    def ev(model, ds):
        return evaluate(model, ds, metric=metric)["metric"]

    return ft, ev, {"epochs": kw["epochs"], "lr": kw["lr"]}


def _metric_name(train_ds) -> str:
    from s4op_kernels.training import is_multilabel, resolve_metric

    return resolve_metric("auto", is_multilabel(train_ds))


def prune_task(task: str, root=None, *, config=None, checkpoint=None, out=MAIN_OUT,
               rates: Sequence[float] = DEFAULT_RATES, seeds: Sequence[int] = PAPER_SEEDS,
               strategy: str = "depth_aware", selector: str = "random", incremental: bool = True,
               finetune_epochs: Optional[int] = None, finetune_lr: Optional[float] = None,
               data_options: Optional[dict] = None, seed: int = 0, latency_batch_size: int = 8,
               latency_repeats: int = 100, latency_budget_ms: Optional[float] = None,
               max_metric_drop: Optional[float] = None, progress: Optional[bool] = None,
               log: Callable[[str], Any] = print) -> tuple[PruningResult, dict]:
    """The whole S4oP pipeline on one task; returns the search result and the report's file paths."""
    from s4op_kernels.pruning.report import write_report

    t0 = time.perf_counter()
    model, config, (train_ds, val_ds, test_ds), base = prepare(
        task, root, config=config, checkpoint=checkpoint, out=out, data_options=data_options, seed=seed,
        progress=progress, log=log)
    metric = _metric_name(train_ds)
    ft, ev, ft_settings = _callbacks(config, metric, progress, finetune_epochs, finetune_lr)
    meta = {"task": task, "model": config.name, "metric": metric, "finetune": ft_settings,
            "data_options": base["data_options"], "baseline_train_time_s": base["train_time_s"],
            "seq_len": train_ds.seq_len, "n_train": len(train_ds), "n_val": len(val_ds), "n_test": len(test_ds),
            "machine": {"platform": platform.platform(), "torch": torch.__version__}}
    search = IncrementalPruner(model, train_ds, val_ds, test_ds, evaluate=ev, fine_tune=ft, rates=rates, seeds=seeds,
                               strategy=strategy, selector=selector, incremental=incremental,
                               latency_batch_size=latency_batch_size, latency_repeats=latency_repeats,
                               latency_budget_ms=latency_budget_ms, max_metric_drop=max_metric_drop, out_dir=out,
                               meta=meta, config=config, progress=progress, log=log)
    result = search.run()
    result.summary["wall_time_s"] = time.perf_counter() - t0
    paths = write_report(result.to_dict(), out)
    return result, paths


def run_main_job(out=MAIN_OUT, *, progress: Optional[bool] = None, log: Callable[[str], Any] = print, **overrides):
    """``s4op run``: the built-in synthetic ECG task at the ecg-embedded size, baseline training, the
    incremental search over 10-90 % with the paper's five seeds, and the report in ``out``."""
    kw = dict(config=MAIN_CONFIG, data_options=dict(MAIN_DATA), out=out, progress=progress, log=log)
    kw.update(overrides)
    return prune_task(MAIN_TASK, None, **kw)


def report(out) -> dict:
    """Rebuild ``report.md/json/png`` of a run folder from its ``search.json`` (finished or not)."""
    from s4op_kernels.pruning.report import write_report

    path = Path(out) / "search.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: not a run folder of `s4op prune` / `s4op run` (no search.json)")
    state = json.loads(path.read_text())
    result = PruningResult.from_state(state, state.get("meta", {}).get("metric", "metric"))
    return write_report(result.to_dict(), out)


def compare(out=MAIN_OUT, *, strategies: Sequence[str] = ("depth_aware", "random", "uniform"),
            strategy_rates: Sequence[float] = (0.3, 0.5, 0.7), oneshot_rates: Sequence[float] = (0.7, 0.9),
            seeds: Optional[Sequence[int]] = None, progress: Optional[bool] = None,
            log: Callable[[str], Any] = print) -> dict:
    """The paper's Figures 3 and 4 in small, on the baseline of a finished run folder ``out``:
    one-shot pruning with each allocation strategy at ``strategy_rates``, and one-shot against the run's
    incremental search at ``oneshot_rates`` (same seeds, fine-tuning and data).  Writes
    ``<out>/compare/compare.md`` and ``compare.json``; resumable like the search."""
    from s4op_kernels.checkpoint import atomic_write_bytes

    out = Path(out)
    path = out / "search.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: run `s4op run` or `s4op prune --out {out}` first (no search.json)")
    main = json.loads(path.read_text())
    meta, settings = main["meta"], main["settings"]
    seeds = list(settings["seeds"] if seeds is None else seeds)
    model, config, (train_ds, val_ds, test_ds), _ = prepare(meta["task"], None, out=out,
                                                           data_options=meta.get("data_options"), log=log)
    metric = meta["metric"]
    ft, ev, _ = _callbacks(config, metric, progress, meta["finetune"]["epochs"], meta["finetune"]["lr"])
    common = dict(evaluate=ev, fine_tune=ft, seeds=seeds, latency_batch_size=settings["latency_batch_size"],
                  config=config, progress=progress, log=log)
    runs = {}
    for strategy in strategies:
        rates = sorted(set(strategy_rates) | (set(oneshot_rates) if strategy == settings["strategy"] else set()))
        sub = out / "compare" / f"oneshot-{strategy}"
        runs[strategy] = OneShotPruner(model, train_ds, val_ds, test_ds, rates=rates, strategy=strategy,
                                       out_dir=sub, meta={"task": meta["task"], "model": config.name, "metric": metric,
                                                          "finetune": meta["finetune"]}, **common).run().summary
    table = comparison_tables(main, runs, strategy_rates, oneshot_rates)
    (out / "compare").mkdir(exist_ok=True)
    atomic_write_bytes(out / "compare" / "compare.md", table.encode())
    atomic_write_bytes(out / "compare" / "compare.json",
                       json.dumps({"incremental": main, "one_shot": runs}, indent=2).encode())
    return {"md": out / "compare" / "compare.md", "json": out / "compare" / "compare.json", "table": table}


def comparison_tables(main: dict, oneshot: dict, strategy_rates, oneshot_rates) -> str:
    """Markdown: Figure 3 (one-shot, strategies x rates) and Figure 4 (incremental vs one-shot)."""
    from s4op_kernels.pruning.search import summary_rate

    metric = main["meta"]["metric"]
    base = main["baseline"]

    def cell(summary, rate):
        r = summary_rate(summary, rate)
        return "-" if r is None else f"{100 * r['val_metric']:.2f} / {100 * r['test_metric']:.2f}"

    lines = [f"Validation / test {metric} (%), baseline {100 * base['val_metric']:.2f} / {100 * base['test_metric']:.2f}; "
             f"best of seeds {main['settings']['seeds']} by validation, fine-tuning {main['meta']['finetune']}.", "",
             "One-shot pruning by allocation strategy (the paper's Figure 3):", "",
             "| strategy | " + " | ".join(f"{round(100 * r)}%" for r in strategy_rates) + " |",
             "|---|" + "---|" * len(strategy_rates)]
    for strategy, summary in oneshot.items():
        lines.append(f"| {strategy} | " + " | ".join(cell(summary, r) for r in strategy_rates) + " |")
    strat = main["settings"]["strategy"]
    lines += ["", f"Incremental vs one-shot, {strat} (the paper's Figure 4):", "",
              "| search | " + " | ".join(f"{round(100 * r)}%" for r in oneshot_rates) + " |",
              "|---|" + "---|" * len(oneshot_rates),
              "| incremental | " + " | ".join(cell(main, r) for r in oneshot_rates) + " |"]
    if strat in oneshot:
        lines.append("| one-shot | " + " | ".join(cell(oneshot[strat], r) for r in oneshot_rates) + " |")
    return "\n".join(lines) + "\n"
