"""From data to report in one call: load a task, train (or load) the baseline, run the S4oP search, write the
report.  The ``s4op prune``, ``s4op run`` and ``s4op compare`` commands are thin wrappers around these.

A run folder (``out``) holds::

    baseline.safetensors / baseline.json     the trained baseline (with its config and data options)
    rate_10.safetensors / rate_10.json ...   the chosen model of each finished rate
    search.json                              settings and results so far (the resume point)
    report.md / report.json / report.png     the report (rewritten after the search)
    compare/                                 the ablations of ``compare`` (strategies, one-shot, layer-wise)

Every file is written atomically, and running the same command again after an interruption continues
where it stopped.  What determines the result is recorded as the run's identity (``run_identity``: the task,
the data's resolved path, loading options and a SHA-256 fingerprint of every split's contents, the
baseline's training seed and config, or the checkpoint it was loaded from and that file's digest), in the
baseline's sidecar and in ``search.json``'s settings; resuming with anything different is refused
(:class:`SearchMismatchError`), and ``compare`` reloads exactly the run's data.  One command at a time
writes into a run folder (``runlock``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import platform
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from s4op_kernels import data
from s4op_kernels._atomic import atomic_write_bytes
from s4op_kernels.checkpoint import checkpoint_paths, load_checkpoint, save_checkpoint
from s4op_kernels.layers import S4DLayer, S4Layer
from s4op_kernels.models import Config, build_model, default_config, get_config, with_layer
from s4op_kernels.pruning.ablation import layer_ablation
from s4op_kernels.pruning.report import layerwise_table, write_report
from s4op_kernels.pruning.search import (
    DEFAULT_RATES, PAPER_SEEDS, IncrementalPruner, OneShotPruner, PruningResult, SearchMismatchError, summary_rate,
)
from s4op_kernels.runlock import lock_run_folder
from s4op_kernels.training import evaluate, fine_tune, is_multilabel, resolve_metric, train

# `s4op run`: the built-in synthetic ECG task, generated in memory, and the ecg-embedded model (S4D), or its
# twin of another layer (`--model s4`: ecg-embedded-s4) in its own default folder.
MAIN_TASK = "ecg-synthetic"
MAIN_CONFIG = "ecg-embedded"
MAIN_DATA = {"n_train": 2000, "n_val": 500, "n_test": 500, "seed": 0}
MAIN_OUT = "s4op-run"
BASELINE = "baseline"
COMPARE = "compare"


def main_config(layer: Optional[str] = None) -> Config:
    """The main job's config: ``ecg-embedded``, or its twin with SSM layer ``layer`` (``ecg-embedded-s4``)."""
    config = get_config(MAIN_CONFIG)
    return config if layer is None else with_layer(config, layer)


def main_out(layer: Optional[str] = None) -> str:
    """The main job's default run folder: ``s4op-run``, or ``s4op-run-<layer>`` for a layer other than the main
    config's own, so the two models' runs never meet in one folder."""
    return MAIN_OUT if layer is None or layer == get_config(MAIN_CONFIG).layer else f"{MAIN_OUT}-{layer}"


# The model classes behind the layer names, to name the kind of a loaded model.
_LAYER_CLASSES = {S4DLayer: "s4d", S4Layer: "s4"}


def model_layer(model) -> Optional[str]:
    """The layer name (``"s4d"``, ``"s4"``) of a model's SSM layers, or None if they are of another or of
    mixed kinds."""
    from s4op_kernels.pruning.selection import ssm_layers

    kinds = {_LAYER_CLASSES.get(type(layer)) for layer in ssm_layers(model)}
    return kinds.pop() if len(kinds) == 1 else None


def _load_splits(task: str, root, options: dict):
    return tuple(data.load(task, root, split, **options) for split in ("train", "val", "test"))


def _resolve_config(config):
    if isinstance(config, str):
        return get_config(config)
    if not isinstance(config, Config):
        raise TypeError(f"config must be a Config or a registered config name, got {type(config).__name__}")
    return config


def data_fingerprint(splits) -> str:
    """SHA-256 over the contents of every split (inputs, labels, their dtypes and shapes, the task
    description): the identity of the data a run used, independent of where or how it is stored."""
    h = hashlib.sha256()
    for ds in splits:
        h.update(json.dumps(dataclasses.asdict(ds.info), sort_keys=True, default=str).encode())
        for t in (ds.x, ds.y):
            t = t.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()


def run_identity(task: str, root, options: dict, splits, *, seed: int, config, checkpoint=None) -> dict:
    """Everything that determines a run's result besides the search's own settings (JSON-normalized)."""
    data_id = {"path": None if root is None else str(Path(root).resolve()), "options": options,
               "fingerprint": data_fingerprint(splits)}
    if checkpoint is not None:
        weights = checkpoint_paths(checkpoint)[0]
        baseline = {"checkpoint": str(weights.resolve()), "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}
    else:
        baseline = {"seed": seed, "config": config.to_dict()}
    return json.loads(json.dumps({"task": task, "data": data_id, "baseline": baseline}))


def _differences(a, b, prefix="") -> list[str]:
    """Paths of the entries where two JSON-like values differ (for an error message)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str) for d in _differences(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [f"{prefix[:-1] or 'value'}: {a!r} -> {b!r}"[:300]]


def check_identity(recorded: Optional[dict], current: dict, where) -> None:
    """Refuse (SearchMismatchError) to continue a run recorded with another identity."""
    if recorded is None:
        raise SearchMismatchError(
            f"{where} records no run identity (data fingerprint, seed, config): written by an older version, it "
            "cannot be checked against this command. Use another output folder, or delete this one to start again.")
    diff = _differences(recorded, current)
    if diff:
        raise SearchMismatchError(
            f"{where} was made with other data or settings than this command's ({'; '.join(diff[:4])}). Use "
            "another output folder, or delete this one to start again.")


def prepare(task: str, root=None, *, config=None, checkpoint=None, out=MAIN_OUT, data_options: Optional[dict] = None,
            seed: int = 0, layer: Optional[str] = None, progress: Optional[bool] = None,
            log: Callable[[str], Any] = print):
    """Load ``task``'s splits and the baseline: ``checkpoint`` if given, else ``<out>/baseline`` if a previous
    run saved it (refused unless it was trained on the same data, with the same seed and config), else a
    model of ``config`` trained now (and saved there).  ``layer`` (``"s4"``, ``"s4d"``; None: the config's
    own) swaps the config for its twin with that SSM layer (:func:`~s4op_kernels.models.with_layer`); a
    loaded baseline of another layer is refused.  Returns ``(model, config, (train, val, test), info)``
    where ``info`` describes the baseline's training and holds the run's identity (``info["run"]``; the
    layer is part of its config)."""
    if config is not None:
        config = _resolve_config(config)
        if layer is not None:
            config = with_layer(config, layer)
    with lock_run_folder(out) as out:
        saved = out / f"{BASELINE}.safetensors"
        source = checkpoint if checkpoint is not None else (out / BASELINE if saved.exists() else None)
        if source is not None:
            model, meta = load_checkpoint(source)
            held = model_layer(model)
            wanted = layer if layer is not None else (config.layer if config is not None else None)
            if wanted is not None and held is not None and held != wanted:
                what = "the run folder's baseline" if checkpoint is None else "the checkpoint"
                raise SearchMismatchError(
                    f"{source}: {what} is a model with the {held!r} layer, and this command asks for {wanted!r}"
                    + (f". Use another output folder (--out) for the {wanted} run, or delete this one to start again."
                       if checkpoint is None else f"; pass a {wanted} checkpoint, or ask for {held} (--model {held})."))
            config = meta.config if config is None else config
            if config is None:
                raise ValueError(f"{source}: the checkpoint holds no config; pass config=<name>")
            stored = (meta.extra or {}).get("data_options")
            options = {**config.data_options, **(stored or {}), **(data_options or {})}
            splits = _load_splits(task, root, options)
            identity = run_identity(task, root, options, splits, seed=seed, config=config, checkpoint=checkpoint)
            if checkpoint is None:  # the run's own baseline: it must be this run's
                check_identity((meta.extra or {}).get("run"), identity, f"{source}.json")
            info = {"source": str(source), "train_time_s": (meta.metrics or {}).get("train_time_s"),
                    "data_options": options, "run": identity}
            log(f"baseline: loaded {source}")
            return model, config, splits, info

        if config is None:
            config = default_config(task) if layer is None else with_layer(default_config(task), layer)
        options = {**config.data_options, **(data_options or {})}
        splits = _load_splits(task, root, options)
        identity = run_identity(task, root, options, splits, seed=seed, config=config)
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
                               "seed": seed, "history": result.history, "run": identity})
        log(f"baseline: val {result.metric} {val['metric']:.4f} after {result.wall_time:.0f} s")
        return model, config, splits, {"source": "trained", "train_time_s": result.wall_time, "data_options": options,
                                       "run": identity}


def _model_device(model) -> torch.device:
    p = next(model.parameters(), None)
    return torch.device("cpu") if p is None else p.device


def _fine_tune_candidate(model, train_ds, val_ds, *, seed, kwargs: dict, metric: str):
    """The search's fine-tuning of one candidate, on the model's device (a Ray task with a GPU moves it there)."""
    if kwargs["epochs"] > 0:
        fine_tune(model, train_ds, val_ds, **kwargs, seed=seed, metric=metric, progress=False,
                  device=_model_device(model))


def _evaluate_metric(model, ds, *, metric: str) -> float:
    return evaluate(model, ds, metric=metric, device=_model_device(model))["metric"]


def _callbacks(config, metric: str, progress: Optional[bool], finetune_epochs=None, finetune_lr=None):
    """The search's ``fine_tune`` and ``evaluate``: partials of module-level functions, so an executor can
    send them to other processes (pickle), and the fine-tuning settings."""
    kw = config.finetune_kwargs()
    if finetune_epochs is not None:
        kw["epochs"] = finetune_epochs
    if finetune_lr is not None:
        kw["lr"] = finetune_lr
    ft = functools.partial(_fine_tune_candidate, kwargs=kw, metric=metric)
    ev = functools.partial(_evaluate_metric, metric=metric)
    return ft, ev, {"epochs": kw["epochs"], "lr": kw["lr"]}


def _metric_name(train_ds) -> str:
    return resolve_metric("auto", is_multilabel(train_ds))


def prune_task(task: str, root=None, *, config=None, checkpoint=None, out=MAIN_OUT,
               rates: Sequence[float] = DEFAULT_RATES, seeds: Sequence[int] = PAPER_SEEDS,
               strategy: str = "depth_aware", selector: str = "random", incremental: bool = True,
               finetune_epochs: Optional[int] = None, finetune_lr: Optional[float] = None,
               data_options: Optional[dict] = None, seed: int = 0, latency_batch_size: int = 8,
               latency_repeats: int = 100, latency_budget_ms: Optional[float] = None,
               max_metric_drop: Optional[float] = None, layer: Optional[str] = None, progress: Optional[bool] = None,
               log: Callable[[str], Any] = print, executor: Any = "local") -> tuple[PruningResult, dict]:
    """The whole S4oP pipeline on one task; returns the search result and the report's file paths.
    ``layer`` (``"s4"``, ``"s4d"``; None: the config's own) is :func:`prepare`'s.  ``executor``: where the
    candidates run (``"local"``, ``"processes"``, ``"ray"`` or an ``Executor``; see
    :mod:`s4op_kernels.pruning.executor`); it is checked before the baseline is trained."""
    from s4op_kernels.pruning.executor import make_executor

    executor = make_executor(executor)
    t0 = time.perf_counter()
    # before any work: a busy or unwritable folder fails now, and so does a wrong Ray --address
    with lock_run_folder(out) as out, executor.connected(log):
        model, config, (train_ds, val_ds, test_ds), base = prepare(
            task, root, config=config, checkpoint=checkpoint, out=out, data_options=data_options, seed=seed,
            layer=layer, progress=progress, log=log)
        metric = _metric_name(train_ds)
        ft, ev, ft_settings = _callbacks(config, metric, progress, finetune_epochs, finetune_lr)
        meta = {"task": task, "model": config.name, "layer": config.layer, "metric": metric, "finetune": ft_settings,
                "run": base["run"],
                "data_options": base["data_options"], "baseline_train_time_s": base["train_time_s"],
                "seq_len": train_ds.seq_len, "n_train": len(train_ds), "n_val": len(val_ds), "n_test": len(test_ds),
                "machine": {"platform": platform.platform(), "torch": torch.__version__}}
        search = IncrementalPruner(model, train_ds, val_ds, test_ds, evaluate=ev, fine_tune=ft, rates=rates,
                                   seeds=seeds, strategy=strategy, selector=selector, incremental=incremental,
                                   latency_batch_size=latency_batch_size, latency_repeats=latency_repeats,
                                   latency_budget_ms=latency_budget_ms, max_metric_drop=max_metric_drop, out_dir=out,
                                   meta=meta, config=config, progress=progress, log=log, executor=executor)
        result = search.run()
        result.summary["wall_time_s"] = time.perf_counter() - t0
        paths = write_report(result.to_dict(), out)
    return result, paths


def run_main_job(out=None, *, layer: Optional[str] = None, progress: Optional[bool] = None,
                 log: Callable[[str], Any] = print, **overrides):
    """``s4op run``: the built-in synthetic ECG task at the ecg-embedded size, baseline training, the
    incremental search over 10-90 % with the paper's five seeds, and the report in ``out``.  ``layer``
    (``"s4"``) trains the main config's twin with that SSM layer (:func:`main_config`); ``out`` defaults to
    :func:`main_out` of the layer (``s4op-run``, ``s4op-run-s4``)."""
    kw = dict(config=main_config(layer), data_options=dict(MAIN_DATA), out=main_out(layer) if out is None else out,
              progress=progress, log=log)
    kw.update(overrides)
    return prune_task(MAIN_TASK, None, **kw)


def report(out) -> dict:
    """Rebuild ``report.md/json/png`` of a run folder from its ``search.json`` (finished or not)."""
    path = Path(out) / "search.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: not a run folder of `s4op prune` / `s4op run` (no search.json)")
    with lock_run_folder(out):  # the report files are the search's too
        state = json.loads(path.read_text())
        result = PruningResult.from_state(state, state.get("meta", {}).get("metric", "metric"))
        return write_report(result.to_dict(), out)


def compare(out=MAIN_OUT, *, strategies: Sequence[str] = ("depth_aware", "random", "uniform"),
            strategy_rates: Sequence[float] = (0.3, 0.5, 0.7), oneshot_rates: Sequence[float] = (0.7, 0.9),
            seeds: Optional[Sequence[int]] = None, layerwise: bool = True, layer: Optional[str] = None,
            progress: Optional[bool] = None, log: Callable[[str], Any] = print) -> dict:
    """The paper's ablations in small, on the baseline of a finished run folder ``out``: one-shot pruning
    with each allocation strategy at ``strategy_rates`` (Figure 3), one-shot against the run's incremental
    search at ``oneshot_rates`` (Figure 4), and with ``layerwise`` the layer-wise ablation (Table I: each SSM
    layer removed in turn, fine-tuned with the first of ``seeds``), all with the same seeds, fine-tuning and
    data.  ``layer`` (``"s4"``, ``"s4d"``; None: any) must be the run's model layer, else the call is refused.
    Writes ``<out>/compare/compare.md`` and ``compare.json`` (and ``layerwise.md``/``layerwise.json``);
    resumable like the search."""
    out = Path(out)
    path = out / "search.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: run `s4op run` or `s4op prune --out {out}` first (no search.json)")
    with lock_run_folder(out):
        main = json.loads(path.read_text())
        meta, settings = main["meta"], main["settings"]
        run = settings.get("run")
        if run is None:
            check_identity(None, {}, path)
        recorded_layer = (run["baseline"].get("config") or {}).get("layer")
        _check_run_layer(out, recorded_layer, layer)
        seeds = list(settings["seeds"] if seeds is None else seeds)
        # Exactly the run's data and baseline: the recorded path, options, seed (or checkpoint), checked
        # against the recorded fingerprint.
        model, config, (train_ds, val_ds, test_ds), base = prepare(
            run["task"], run["data"]["path"], out=out, data_options=run["data"]["options"],
            seed=run["baseline"].get("seed", 0), checkpoint=run["baseline"].get("checkpoint"), log=log)
        check_identity(run, base["run"], path)
        _check_run_layer(out, model_layer(model), layer)
        metric = meta["metric"]
        ft, ev, _ = _callbacks(config, metric, progress, meta["finetune"]["epochs"], meta["finetune"]["lr"])
        common = dict(evaluate=ev, fine_tune=ft, seeds=seeds, latency_batch_size=settings["latency_batch_size"],
                      config=config, progress=progress, log=log)
        sub_meta = {"task": meta["task"], "model": config.name, "layer": config.layer, "metric": metric,
                    "finetune": meta["finetune"], "run": run}
        runs = {}
        for strategy in strategies:
            rates = sorted(set(strategy_rates) | (set(oneshot_rates) if strategy == settings["strategy"] else set()))
            sub = out / COMPARE / f"oneshot-{strategy}"
            runs[strategy] = OneShotPruner(model, train_ds, val_ds, test_ds, rates=rates, strategy=strategy,
                                           out_dir=sub, meta=sub_meta, **common).run().summary
        table = comparison_tables(main, runs, strategy_rates, oneshot_rates)
        folder = out / COMPARE
        folder.mkdir(exist_ok=True)
        result = {"incremental": main, "one_shot": runs}
        paths = {"md": folder / "compare.md", "json": folder / "compare.json"}
        if layerwise:
            ablation = layer_ablation(model, train_ds, val_ds, test_ds, evaluate=ev, fine_tune=ft, seed=seeds[0],
                                      latency_batch_size=settings["latency_batch_size"], out_dir=folder,
                                      meta=sub_meta, progress=progress, log=log)
            layer_table = layerwise_table(ablation)
            atomic_write_bytes(folder / "layerwise.md", layer_table.encode())
            table += "\n" + layer_table
            result["layerwise"] = ablation
            paths.update(layerwise_md=folder / "layerwise.md", layerwise_json=folder / "layerwise.json")
        atomic_write_bytes(paths["md"], table.encode())
        atomic_write_bytes(paths["json"], json.dumps(result, indent=2).encode())
    return {**paths, "table": table}


def _check_run_layer(out: Path, held: Optional[str], wanted: Optional[str]) -> None:
    if wanted is not None and held is not None and held != wanted:
        raise SearchMismatchError(f"{out} holds a run of a model with the {held!r} layer, not {wanted!r}; compare the "
                                  f"{wanted} run's folder instead (`s4op run --model {wanted}` writes "
                                  f"{main_out(wanted)})")


def comparison_tables(main: dict, oneshot: dict, strategy_rates, oneshot_rates) -> str:
    """Markdown: Figure 3 (one-shot, strategies x rates) and Figure 4 (incremental vs one-shot)."""
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
