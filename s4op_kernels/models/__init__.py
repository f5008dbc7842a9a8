"""The classifier backbone and its named configurations.

>>> from s4op_kernels.models import build_model, get_config
>>> model = build_model(get_config("ecg-small"), train_ds.info, seed=0)
>>> s4 = build_model(with_layer(get_config("ecg-small"), "s4"), train_ds.info, seed=0)  # ecg-small-s4
"""

from __future__ import annotations

from typing import Optional

import torch

from s4op_kernels.models.backbone import (
    ChannelLayerNorm,
    ClassifierStream,
    ResidualBlock,
    SequenceClassifier,
    available_layers,
    register_layer,
)
from s4op_kernels.models.config import (
    DEFAULT_LAYER,
    TASK_DEFAULT_CONFIG,
    Config,
    default_config,
    get_config,
    list_configs,
    register_config,
    with_layer,
)


def build_model(config: Config, info, *, seed: Optional[int] = None) -> SequenceClassifier:
    """The :class:`SequenceClassifier` of ``config`` for the task described by ``info`` (a ``TaskInfo``).

    With ``seed`` the initial weights come from ``torch.manual_seed(seed)`` inside a forked RNG, so the
    caller's global random state is left as it was; without it they come from the global RNG.
    """
    if isinstance(config, str):
        config = get_config(config)
    if not isinstance(config, Config):
        raise TypeError(f"build_model(config): expected a Config or a config name, got {type(config).__name__}")
    for attr in ("num_classes", "vocab_size", "in_channels"):
        if not hasattr(info, attr):
            raise TypeError(f"build_model(info): expected a TaskInfo, got {type(info).__name__} (no {attr!r})")

    def make() -> SequenceClassifier:
        return SequenceClassifier(
            info.num_classes, vocab_size=info.vocab_size, in_channels=info.in_channels,
            d_model=config.d_model, n_layers=config.n_layers, d_state=config.d_state, norm=config.norm,
            prenorm=config.prenorm, dropout=config.dropout, layer=config.layer, ssm_lr=config.ssm_lr,
            dt_min=config.dt_min, dt_max=config.dt_max,
        )

    if seed is None:
        return make()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


__all__ = [
    "SequenceClassifier", "ClassifierStream", "ResidualBlock", "ChannelLayerNorm", "register_layer", "available_layers",
    "Config", "get_config", "list_configs", "register_config", "default_config", "TASK_DEFAULT_CONFIG",
    "DEFAULT_LAYER", "with_layer",
    "build_model",
]
