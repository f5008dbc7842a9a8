"""Named configurations: model and training hyperparameters of each task's classifier.

The paper's per-task S4D settings (``ecg``, ``listops``, ``imdb``, ``pathfinder``; from the authors' code:
d_state 64, layers x H, norm, prenorm, dropout, lr, batch, epochs, weight decay, and the fine-tuning epochs
and lr of each pruning candidate with weight decay 1e-5) sit beside CPU-sized ``*-small`` variants that
train in about a minute on two cores with the built-in generated data.  Each has an S4 (DPLR) twin named
``<name>-s4``: the paper's S4 models (``ecg-s4`` 4x128, ``listops-s4`` 6x128, ``imdb-s4`` 4x64,
``pathfinder-s4`` 6x256; the shapes are all the authors' code gives, so the other settings are the task's S4D
ones) and the CPU-sized ones with the layer swapped (``ecg-embedded-s4``, ``ecg-small-s4``, ...).
:func:`with_layer` maps a config to its twin (what ``--model`` does).

Choices the paper's code does not pin down, made here and used by every config:
- ``ssm_lr``: the SSM tensors' learning rate is ``min(lr, 1e-3)``, as the reference S4D example does;
  they are never weight-decayed.
- ``warmup_epochs = 1``: one epoch of linear warm-up before the cosine decay.
- ``clip = 1.0``: gradient-norm clipping.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Mapping, Optional

from s4op_kernels._validate import check_float, check_int
from s4op_kernels.models.backbone import NORMS, available_layers


@dataclass(frozen=True)
class Config:
    """Hyperparameters of one classifier: its architecture, its training and its fine-tuning.

    Model: ``layer`` (SSM kind), ``n_layers``, ``d_model`` (H), ``d_state`` (N), ``norm`` (``"layer"``,
    ``"batch"`` or ``"none"``), ``prenorm``, ``dropout``, ``dt_min``/``dt_max``.
    Training: ``lr``, ``ssm_lr`` (None: same as ``lr``), ``weight_decay``, ``batch_size``, ``epochs``,
    ``warmup_epochs`` (linear warm-up, then cosine, per step), ``clip`` (gradient norm; None: off),
    ``patience`` (early-stopping epochs without improvement; None: run every epoch, keep the best).
    Fine-tuning (each pruning candidate): ``finetune_epochs``, ``finetune_lr``, ``finetune_weight_decay``.
    Data: ``data_options``, keywords for ``s4op_kernels.data.load`` that this config expects (``s4op train``
    and :func:`~s4op_kernels.app.train.train_task` apply them under the user's own options).

    Frozen; derive variants with :meth:`replace`.  :meth:`to_dict`/:meth:`from_dict` give the JSON form
    stored beside checkpoints.
    """

    name: str = "custom"
    description: str = ""
    # model
    layer: str = "s4d"
    n_layers: int = 4
    d_model: int = 128
    d_state: int = 64
    norm: str = "layer"
    prenorm: bool = False
    dropout: float = 0.0
    dt_min: float = 0.001
    dt_max: float = 0.1
    # training
    lr: float = 1e-3
    ssm_lr: Optional[float] = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 32
    epochs: int = 10
    warmup_epochs: float = 1.0
    clip: Optional[float] = 1.0
    patience: Optional[int] = None
    # fine-tuning of each pruning candidate
    finetune_epochs: int = 2
    finetune_lr: float = 1e-4
    finetune_weight_decay: float = 1e-5
    # how this config reads its task's data (keywords of s4op_kernels.data.load), e.g. a lower ECG rate
    data_options: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self):
        def fail(field: str, expected: str):
            raise ValueError(f"Config {self.name!r}: {field} must be {expected}, got {getattr(self, field)!r}")

        def checked(check, field: str, **bounds):
            # _validate's rule and message, prefixed with the config's name; a wrong type stays an
            # ArgumentTypeError (a TypeError that is also a ValueError), as the other checks raise.
            try:
                value = check(getattr(self, field), field, **bounds)
            except ValueError as err:
                raise type(err)(f"Config {self.name!r}: {err}") from None
            object.__setattr__(self, field, value)  # int / float: what JSON and the optimizer want

        def positive_int(field: str, minimum: int = 1):
            checked(check_int, field, minimum=minimum)

        def number(field: str, *, low: float = 0.0, strict: bool = False, optional: bool = False,
                   below: Optional[float] = None):
            if optional and getattr(self, field) is None:
                return
            checked(check_float, field, minimum=low, min_open=strict, maximum=below, max_open=True)

        for f in ("name", "description"):
            if not isinstance(getattr(self, f), str):
                fail(f, "a str")
        if self.layer not in available_layers():
            fail("layer", f"one of {available_layers()}")
        if self.norm not in NORMS:
            fail("norm", f"one of {list(NORMS)}")
        if not isinstance(self.prenorm, bool):
            fail("prenorm", "a bool")
        for f in ("n_layers", "d_model", "batch_size", "epochs"):
            positive_int(f)
        positive_int("d_state", 2)
        if self.d_state % 2:
            fail("d_state", "even (N/2 complex modes)")
        positive_int("finetune_epochs", 0)
        if self.patience is not None:
            positive_int("patience")
        number("dropout", below=1.0)
        number("dt_min", strict=True)
        number("dt_max", strict=True)
        if self.dt_min > self.dt_max:
            fail("dt_min", f"<= dt_max = {self.dt_max}")
        for f in ("lr", "finetune_lr"):
            number(f, strict=True)
        number("ssm_lr", optional=True)
        for f in ("weight_decay", "finetune_weight_decay", "warmup_epochs"):
            number(f)
        number("clip", strict=True, optional=True)
        if not isinstance(self.data_options, Mapping) or not all(isinstance(k, str) for k in self.data_options):
            fail("data_options", "a mapping with str keys")
        # read-only, so a registered config cannot be changed through its dict
        object.__setattr__(self, "data_options", MappingProxyType(dict(self.data_options)))

    # ------------------------------------------------------------------ variants and JSON
    def replace(self, **changes: Any) -> "Config":
        """A copy with ``changes`` applied (validated).  Unknown names raise TypeError listing the fields."""
        unknown = sorted(set(changes) - _FIELD_NAMES)
        if unknown:
            raise TypeError(f"Config.replace: unknown field(s) {unknown}; valid fields: {sorted(_FIELD_NAMES)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable dict of every field."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["data_options"] = copy.deepcopy(dict(self.data_options))
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Config":
        """Inverse of :meth:`to_dict`; missing fields take their defaults, unknown ones raise ValueError."""
        if not isinstance(data, Mapping):
            raise TypeError(f"Config.from_dict: expected a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - _FIELD_NAMES)
        if unknown:
            raise ValueError(f"Config.from_dict: unknown field(s) {unknown}; valid fields: {sorted(_FIELD_NAMES)}")
        return cls(**data)

    # ------------------------------------------------------------------ keyword sets for the trainer
    def train_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`s4op_kernels.training.train` for training from scratch."""
        return dict(epochs=self.epochs, lr=self.lr, ssm_lr=self.ssm_lr, weight_decay=self.weight_decay,
                    batch_size=self.batch_size, warmup_epochs=self.warmup_epochs, clip=self.clip,
                    patience=self.patience)

    def finetune_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`s4op_kernels.training.fine_tune` for one pruning candidate."""
        return dict(epochs=self.finetune_epochs, lr=self.finetune_lr, weight_decay=self.finetune_weight_decay,
                    batch_size=self.batch_size, clip=self.clip)


_FIELD_NAMES = frozenset(f.name for f in fields(Config))

# ---------------------------------------------------------------------- the registry
_REGISTRY: dict[str, Config] = {}


def register_config(config: Config, *, overwrite: bool = False) -> Config:
    """Add ``config`` under ``config.name`` (so :func:`get_config` and ``s4op train --config`` find it)."""
    if not isinstance(config, Config):
        raise TypeError(f"register_config: expected a Config, got {type(config).__name__}")
    if config.name in _REGISTRY and not overwrite:
        raise ValueError(f"register_config: a config named {config.name!r} exists (pass overwrite=True to replace it)")
    _REGISTRY[config.name] = config
    return config


def get_config(name: str) -> Config:
    """The registered configuration ``name`` (see :func:`list_configs`)."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown config {name!r}; available: {list_configs()}") from None


def list_configs() -> list[str]:
    """Names of the registered configurations, sorted."""
    return sorted(_REGISTRY)


# The CPU-sized config `s4op train --task T` uses when no --config is given.
TASK_DEFAULT_CONFIG = {
    "ecg": "ecg-small",
    "ecg-synthetic": "ecg-embedded",
    "listops": "listops-small",
    "pathfinder": "pathfinder-small",
    "imdb": "imdb-small",
    "ucr": "ucr-small",
}


def default_config(task: str) -> Config:
    """The CPU-sized configuration for ``task`` (a name of :data:`s4op_kernels.data.TASKS`)."""
    if task not in TASK_DEFAULT_CONFIG:
        raise ValueError(f"no default config for task {task!r}; tasks: {sorted(TASK_DEFAULT_CONFIG)}")
    return get_config(TASK_DEFAULT_CONFIG[task])


DEFAULT_LAYER = "s4d"  # the layer of the unsuffixed configs; every other layer's twins are named <name>-<layer>


def _twin_name(name: str, layer_of_name: str, layer: str) -> str:
    base = name
    if layer_of_name != DEFAULT_LAYER and name.endswith(f"-{layer_of_name}"):
        base = name[: -len(layer_of_name) - 1]
    return base if layer == DEFAULT_LAYER else f"{base}-{layer}"


def with_layer(config: Config, layer: str) -> Config:
    """``config`` with SSM layer ``layer`` (one of :func:`~s4op_kernels.models.available_layers`): what
    ``--model`` does to a config.

    - ``config`` already has that layer: ``config`` itself.
    - ``config`` is a registered config and its twin is registered (``<name>-s4`` for S4, the unsuffixed
      name for S4D: ``listops`` <-> ``listops-s4``, ``ecg-embedded`` <-> ``ecg-embedded-s4``): the twin,
      which may differ in more than the layer (the paper's S4 ListOps model is 6 x 128, its S4D one 8 x 128).
    - otherwise (a custom or modified config): ``config.replace(layer=layer)``, every other field kept.
    """
    if not isinstance(config, Config):
        raise TypeError(f"with_layer(config): expected a Config, got {type(config).__name__}")
    if layer not in available_layers():
        raise ValueError(f"with_layer(layer): expected one of {available_layers()}, got {layer!r}")
    if config.layer == layer:
        return config
    twin = _twin_name(config.name, config.layer, layer)
    if _REGISTRY.get(config.name) == config and twin in _REGISTRY and _REGISTRY[twin].layer == layer:
        return _REGISTRY[twin]
    return config.replace(layer=layer)


def _paper(name: str, **kw: Any) -> Config:
    kw.setdefault("ssm_lr", min(kw["lr"], 1e-3))
    kw.setdefault("d_state", 64)  # the paper uses N = 64 for every task
    return register_config(Config(name=name, **kw))


# The paper's S4D models (facts: the authors' code).  Fine-tuning weight decay is 1e-5 for all.
_paper("ecg", description="paper S4D, CODE-15% ECG (6-label): 4x128 LayerNorm postnorm",
       n_layers=4, d_model=128, norm="layer", prenorm=False, dropout=0.2,
       lr=1e-3, batch_size=32, epochs=200, weight_decay=0.0, finetune_epochs=20, finetune_lr=1e-4)
_paper("listops", description="paper S4D, LRA ListOps: 8x128 BatchNorm postnorm",
       n_layers=8, d_model=128, norm="batch", prenorm=False, dropout=0.0,
       lr=1e-3, batch_size=50, epochs=40, weight_decay=0.05, finetune_epochs=5, finetune_lr=1e-4)
_paper("imdb", description="paper S4D, LRA IMDb bytes: 6x256 BatchNorm prenorm",
       n_layers=6, d_model=256, norm="batch", prenorm=True, dropout=0.0,
       lr=1e-2, batch_size=16, epochs=32, weight_decay=0.05, finetune_epochs=4, finetune_lr=1e-5)
_paper("pathfinder", description="paper S4D, LRA Pathfinder 32x32: 6x256 BatchNorm prenorm",
       n_layers=6, d_model=256, norm="batch", prenorm=True, dropout=0.1,
       lr=4e-3, batch_size=64, epochs=200, weight_decay=0.03, finetune_epochs=20, finetune_lr=1e-4)

# CPU-sized variants: the paper's layout per task (norm, prenorm), 4 layers x H=32 with d_state 32, few
# epochs with early stopping, and an SSM learning rate above the reference's 1e-3 cap (with a budget of a few
# hundred steps, ecg-small reached val micro-F1 0.69 with ssm_lr 5e-3 and 0.34 with 1e-3).  Fine-tuning
# keeps the paper's ratio: about a tenth of the training epochs at a tenth of the learning rate.
# Measured on a shared 2-core VM, one thread: a training step (batch 32, L=1000, 12 inputs) takes about
# 0.7 s at 4x32/N=32 against 1.6 s at 4x64/N=64; ecg-small on 600 synthetic records (lead II, 100 Hz,
# L=1024) takes 12-13 s per epoch (8 epochs: 103 s on one thread, 177 s on two threads of that busy VM).
# Only ecg-small was tuned; the others are starting points.
_SMALL = dict(n_layers=4, d_model=32, d_state=32)
_paper("ecg-small", description="CPU-sized ECG: 4x32 LayerNorm postnorm, lead II at 100 Hz (600 synthetic "
                                "records: about 100 s on one thread of a busy 2-core VM, val micro-F1 0.69)",
       **_SMALL, norm="layer", prenorm=False, dropout=0.1,
       lr=1e-2, ssm_lr=5e-3, batch_size=16, epochs=8, weight_decay=0.0, patience=4, finetune_epochs=2,
       finetune_lr=1e-3, data_options={"sample_rate": 100, "leads": "II", "normalize": True})
# The main job's model (`s4op run`): the paper's ECG shape (4 layers, LayerNorm, postnorm) at 4x32 with
# 2.56 s windows of leads II and V1 at 100 Hz (L = 256), sized so baseline training plus the search over
# five rates x five seeds (one fine-tuning epoch each) fits in minutes on two cores.  Lead V1 makes the
# bundle-branch blocks and AF visible (with lead II alone AF is the weakest label).
_paper("ecg-embedded", description="main job (s4op run): 4x32 S4D, LayerNorm postnorm, leads II+V1 at 100 Hz, "
                                   "2.56 s windows (L=256)",
       n_layers=4, d_model=32, d_state=32, norm="layer", prenorm=False, dropout=0.1,
       lr=1e-2, ssm_lr=5e-3, batch_size=32, epochs=10, weight_decay=0.0, patience=None, finetune_epochs=1,
       finetune_lr=2e-3, data_options={"sample_rate": 100, "leads": ["II", "V1"], "duration": 2.56, "normalize": True})
_paper("listops-small", description="CPU-sized ListOps: 4x32 BatchNorm postnorm",
       **_SMALL, norm="batch", prenorm=False, dropout=0.0,
       lr=4e-3, ssm_lr=2e-3, batch_size=32, epochs=15, weight_decay=0.05, patience=5, finetune_epochs=2, finetune_lr=4e-4)
_paper("imdb-small", description="CPU-sized IMDb: 4x32 BatchNorm prenorm",
       **_SMALL, norm="batch", prenorm=True, dropout=0.0,
       lr=4e-3, ssm_lr=2e-3, batch_size=16, epochs=8, weight_decay=0.05, patience=3, finetune_epochs=1, finetune_lr=4e-4)
_paper("pathfinder-small", description="CPU-sized Pathfinder: 4x32 BatchNorm prenorm",
       **_SMALL, norm="batch", prenorm=True, dropout=0.1,
       lr=4e-3, ssm_lr=2e-3, batch_size=32, epochs=20, weight_decay=0.03, patience=5, finetune_epochs=2, finetune_lr=4e-4)
_paper("ucr-small", description="CPU-sized UCR/UEA classifier: 4x32 BatchNorm postnorm",
       **_SMALL, norm="batch", prenorm=False, dropout=0.1,
       lr=4e-3, ssm_lr=2e-3, batch_size=16, epochs=40, weight_decay=0.01, patience=10, finetune_epochs=4, finetune_lr=4e-4)

# The paper's S4 (DPLR) models.  facts.md gives their shapes only (layers x H; d_state 64 as everywhere), so
# every other hyperparameter (norm, prenorm, dropout, lr, batch, epochs, weight decay, fine-tuning) is the
# task's S4D one.
def _paper_s4(task: str, n_layers: int, d_model: int, what: str) -> Config:
    base = _REGISTRY[task]
    return register_config(base.replace(
        name=f"{task}-s4", layer="s4", n_layers=n_layers, d_model=d_model,
        description=f"paper S4 (DPLR), {what}: {n_layers}x{d_model}, the other settings as the S4D `{task}`"))


_paper_s4("ecg", 4, 128, "CODE-15% ECG (6-label)")
_paper_s4("listops", 6, 128, "LRA ListOps")
_paper_s4("imdb", 4, 64, "LRA IMDb bytes")
_paper_s4("pathfinder", 6, 256, "LRA Pathfinder 32x32")

# The CPU-sized configs with the S4 layer, every other setting as their S4D twin's (not tuned separately).
for _name in ("ecg-small", "ecg-embedded", "listops-small", "imdb-small", "pathfinder-small", "ucr-small"):
    _base = _REGISTRY[_name]
    register_config(_base.replace(name=f"{_name}-s4", layer="s4",
                                  description=f"`{_name}` with the S4 (DPLR) layer: "
                                              + _base.description.replace("S4D", "S4")))
del _name, _base
