"""What every task's dataset looks like to the models, the trainer and the pruner."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch.utils.data import Dataset

PAD = 0  # token index 0 is padding in every token task (the backbone's Embedding uses padding_idx=0)


_TOKEN_DTYPES = (torch.int64, torch.int32, torch.int16, torch.uint8)


def token_dtype(vocab_size: int) -> torch.dtype:
    """The narrowest dtype that stores token indices below ``vocab_size`` (int16 up to 32767, else int64)."""
    return torch.int16 if vocab_size <= 32767 else torch.int64


class DataFormatError(ValueError):
    """A file on disk is not in the format its task expects. The message names the file (and line)."""

    def __init__(self, path, message: str, line: Optional[int] = None):
        where = f"{path}" if line is None else f"{path}, line {line}"
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line


@dataclass(frozen=True)
class TaskInfo:
    """The common description of a task's data.

    ``vocab_size`` is set for token tasks (inputs are int64 indices, 0 = padding) and ``in_channels``
    for continuous ones (inputs are float32 (L, C)); exactly one of the two is not None.
    """

    task: str
    num_classes: int
    seq_len: int
    multilabel: bool = False
    vocab_size: Optional[int] = None
    in_channels: Optional[int] = None
    class_names: Optional[Sequence[str]] = None

    def __post_init__(self):
        if (self.vocab_size is None) == (self.in_channels is None):
            raise ValueError("TaskInfo needs exactly one of vocab_size (token task) or in_channels (continuous task)")


class TaskDataset(Dataset):
    """A whole split held in memory as two tensors.

    x: (N, L) integer token indices, or (N, L, C) float32 values.  Tokens may be stored in a narrow integer
       dtype (int16 holds any vocabulary below 32768: a quarter of int64's memory for a whole split);
       ``ds[i]`` always returns them as int64.
    y: (N,) int64 class indices, or (N, K) float32 0/1 targets when ``multilabel``.
    lengths: (N,) int64 valid length of each sequence (positions >= length are padding).

    ``ds[i]`` is ``(x[i], y[i])``; with ``return_lengths=True`` it is ``(x[i], y[i], lengths[i])`` so
    the backbone can pool over valid positions of continuous variable-length inputs (token inputs mark
    padding with index 0 themselves).
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, info: TaskInfo, lengths: Optional[torch.Tensor] = None,
                 split: str = "train", return_lengths: bool = False):
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x has {x.shape[0]} examples but y has {y.shape[0]}")
        if info.vocab_size is not None and (x.dim() != 2 or x.dtype not in _TOKEN_DTYPES):
            raise ValueError(f"token task {info.task!r} needs x of shape (N, L) and an integer dtype, "
                             f"got {tuple(x.shape)} {x.dtype}")
        if info.in_channels is not None and (x.dim() != 3 or x.shape[2] != info.in_channels):
            raise ValueError(
                f"continuous task {info.task!r} needs x of shape (N, L, {info.in_channels}), got {tuple(x.shape)}")
        if lengths is None:
            lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.int64)
        self.x, self.y, self.lengths = x, y, lengths.to(torch.int64)
        self.info, self.split, self.return_lengths = info, split, return_lengths

    # the attributes the issue names, straight from the description
    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    @property
    def seq_len(self) -> int:
        return self.info.seq_len

    @property
    def multilabel(self) -> bool:
        return self.info.multilabel

    @property
    def vocab_size(self) -> Optional[int]:
        return self.info.vocab_size

    @property
    def in_channels(self) -> Optional[int]:
        return self.info.in_channels

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i):
        x = self.x[i]
        if self.info.vocab_size is not None and x.dtype != torch.int64:
            x = x.long()
        if self.return_lengths:
            return x, self.y[i], self.lengths[i]
        return x, self.y[i]

    def __repr__(self) -> str:
        kind = f"vocab_size={self.vocab_size}" if self.vocab_size is not None else f"in_channels={self.in_channels}"
        return (f"TaskDataset(task={self.info.task!r}, split={self.split!r}, n={len(self)}, seq_len={self.seq_len}, "
                f"{kind}, num_classes={self.num_classes}, multilabel={self.multilabel})")


def seeded_split(n: int, val_fraction: float, seed: int):
    """Indices (train, val) of a seeded split of ``range(n)``; used when files carry no validation split."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    n_val = max(1, int(round(n * val_fraction)))
    return perm[n_val:].sort().values, perm[:n_val].sort().values
