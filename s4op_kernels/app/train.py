"""``s4op train``'s application code: one task from its data to a saved checkpoint.

The library parts it composes live below it (``s4op_kernels.data``, ``.models``, ``.training``,
``.checkpoint``, ``.runlock``); nothing in the library imports this module.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import torch
from torch import nn

from s4op_kernels import data
from s4op_kernels.checkpoint import save_checkpoint
from s4op_kernels.models import Config, build_model, default_config, get_config
from s4op_kernels.runlock import lock_run_folder
from s4op_kernels.training import TrainResult, evaluate, train

@dataclass
class TaskRun:
    """What :func:`train_task` produced: the trained model and where it was saved."""

    task: str
    config: Any  # models.Config
    model: nn.Module
    result: TrainResult
    val: dict[str, float]
    test: Optional[dict[str, float]]
    num_parameters: int
    checkpoint: Optional[str]

    def summary(self) -> str:
        """One line: task, config, validation and test metric, epochs, parameters, time, checkpoint."""
        m = self.result.metric
        parts = [f"task={self.task}", f"config={self.config.name}", f"val_{m}={self.val['metric']:.4f}"]
        if self.test is not None:
            parts.append(f"test_{m}={self.test['metric']:.4f}")
        parts += [f"best_epoch={self.result.best_epoch}/{len(self.result.history)}", f"params={self.num_parameters}",
                  f"time={self.result.wall_time:.1f}s"]
        if self.checkpoint is not None:
            parts.append(f"checkpoint={self.checkpoint}")
        return " ".join(parts)


def train_task(task: str, root: Optional[Union[str, os.PathLike]] = None, *, config=None, seed: int = 0,
               out: Optional[Union[str, os.PathLike]] = None, data_options: Optional[dict] = None,
               test: bool = True, progress: Optional[bool] = None, device: Union[str, torch.device] = "cpu",
               log: Optional[Callable[[str], Any]] = None) -> TaskRun:
    """Load ``task``'s train/val/test splits from ``root``, build and train the model of ``config``
    (a Config, a registered name, or None: the task's CPU-sized default) with ``seed``, evaluate the test
    split once (reported, never used for selection) and, if ``out`` is given, save the checkpoint
    ``<out>/model.safetensors`` + ``<out>/model.json``.  ``s4op_kernels.data.load`` receives the config's
    ``data_options`` updated with ``data_options``.  ``out`` is locked for the whole call (``runlock``): a
    busy or unwritable folder fails before any training."""
    with lock_run_folder(out) if out is not None else contextlib.nullcontext():
        return _train_task(task, root, config=config, seed=seed, out=out, data_options=data_options, test=test,
                           progress=progress, device=device, log=log)


def _train_task(task, root, *, config, seed, out, data_options, test, progress, device, log) -> TaskRun:
    if config is None:
        config = default_config(task)
    elif isinstance(config, str):
        config = get_config(config)
    elif not isinstance(config, Config):
        raise TypeError(f"train_task(config): expected a Config, a config name or None, got {type(config).__name__}")
    options = {**config.data_options, **(data_options or {})}  # the user's options win
    train_ds = data.load(task, root, "train", **options)
    val_ds = data.load(task, root, "val", **options)
    test_ds = data.load(task, root, "test", **options) if test else None

    model = build_model(config, train_ds.info, seed=seed)
    result = train(model, train_ds, val_ds, **config.train_kwargs(), seed=seed, progress=progress,
                   device=device, log=log)
    val = evaluate(model, val_ds, metric=result.metric, device=device)
    test_metrics = evaluate(model, test_ds, metric=result.metric, device=device) if test_ds is not None else None
    n_params = sum(p.numel() for p in model.parameters())
    path = None
    if out is not None:
        metrics = {"metric": result.metric, "val": val, "best_epoch": result.best_epoch,
                   "train_time_s": result.wall_time, "steps": result.steps}
        if test_metrics is not None:
            metrics["test"] = test_metrics
        extra = {"task": task, "data": None if root is None else str(root), "data_options": options, "seed": seed,
                 "history": result.history}
        path = str(save_checkpoint(os.path.join(os.fspath(out), "model"), model, config=config,
                                   task_info=train_ds.info, metrics=metrics, extra=extra))
    return TaskRun(task=task, config=config, model=model, result=result, val=val, test=test_metrics,
                   num_parameters=n_params, checkpoint=path)


__all__ = ["TaskRun", "train_task"]
