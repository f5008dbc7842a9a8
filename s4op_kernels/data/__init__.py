"""Tasks: readers of the standard on-disk formats users bring, and offline generators.

One entry point, :func:`load`; generated tasks are written in their standard on-disk format by
:func:`generate` (the ``s4op data`` command), which ``load`` then reads.

Each task's loader module provides ``load(root, split, **options) -> TaskDataset``; a generated task's
generator module provides ``generate(out, train, val, test, seed, **options) -> pathlib.Path``.  Readers
and generators are separate modules where both are sizeable (``ecg`` / ``ecg_synthetic``, ``pathfinder`` /
``pathfinder_synthetic``): a generator builds on its reader's format helpers, a reader never imports its
generator.  ``ecg-synthetic`` is loaded by its generator module, which generates the split in memory
when ``root`` is None and otherwise reads the folder through the ``ecg`` reader.
"""

from __future__ import annotations

import importlib
from typing import Optional

from s4op_kernels.data.base import DataFormatError, TaskDataset, TaskInfo

# task name -> module with its load() (imported only when that task is used, so h5py/PIL are not imported
# up front)
_LOADERS = {
    "listops": "s4op_kernels.data.listops",
    "pathfinder": "s4op_kernels.data.pathfinder",
    "imdb": "s4op_kernels.data.imdb",
    "ecg": "s4op_kernels.data.ecg",
    "ecg-synthetic": "s4op_kernels.data.ecg_synthetic",
    "ucr": "s4op_kernels.data.ucr",
}
# generated task -> module with its generate()
_GENERATORS = {
    "listops": "s4op_kernels.data.listops",
    "pathfinder": "s4op_kernels.data.pathfinder_synthetic",
    "ecg-synthetic": "s4op_kernels.data.ecg_synthetic",
}
# tasks whose load() takes root=None (generated in memory) or refuses it with its own message
_ROOT_OPTIONAL = {"ecg", "ecg-synthetic"}
SPLITS = ("train", "val", "test")

TASKS = tuple(_LOADERS)
GENERATED_TASKS = tuple(sorted(_GENERATORS))


def _module(task: str):
    if task not in _LOADERS:
        raise ValueError(f"task must be one of {list(_LOADERS)}, got {task!r}")
    return importlib.import_module(_LOADERS[task])


def load(task: str, root: Optional[str] = None, split: str = "train", **options) -> TaskDataset:
    """Load one split of ``task`` as a :class:`TaskDataset` of ``(x, y)``.

    ``root`` is the folder in the task's standard layout (see the README's "Data" section). For
    ``ecg-synthetic`` it may be None: the data is then generated in memory from ``seed`` (default 0).
    ``split`` is ``"train"``, ``"val"`` or ``"test"``; tasks whose files have no validation split take a
    seeded one out of train (``val_fraction``, ``split_seed``), never out of test.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    mod = _module(task)
    if task in _ROOT_OPTIONAL:
        return mod.load(root, split, **options)
    if root is None:
        raise ValueError(f"task {task!r} reads files: pass root=<folder in its standard layout>")
    return mod.load(root, split, **options)


def generate(task: str, out, train: int, val: int, test: int, seed: int = 0, **options):
    """Write a generated dataset for ``task`` in its standard on-disk format under ``out``; returns the
    folder to pass to :func:`load` as ``root``."""
    if task not in _GENERATORS:
        raise ValueError(f"task must be one of {sorted(_GENERATORS)} to be generated, got {task!r}")
    for name, n in (("train", train), ("val", val), ("test", test)):
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"{name} must be a non-negative int, got {n!r}")
    return importlib.import_module(_GENERATORS[task]).generate(out, train=train, val=val, test=test, seed=seed,
                                                              **options)


__all__ = ["load", "generate", "TaskDataset", "TaskInfo", "DataFormatError", "TASKS", "GENERATED_TASKS", "SPLITS"]
