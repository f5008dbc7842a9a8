"""What every task's dataset looks like to the models, the trainer and the pruner."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence, TextIO, Tuple

import numpy as np
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


# ----------------------------------------------------------------------------------------------------
# checks every reader shares
# ----------------------------------------------------------------------------------------------------

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_SHOWN_ROWS = 5  # records named in a non-finite error; the count covers all of them


def check_finite(x, source, *, rows: Optional[Sequence] = None, row_name: str = "record",
                 allow_nan: bool = False, stage: str = ""):
    """Refuse non-finite values in the float data a reader read from ``source``.

    Policy, the same for every reader that produces float signals (ECG, UCR): a NaN or an infinity in
    the values a dataset would hold is **refused** with a :class:`DataFormatError` (a ``ValueError``)
    naming the file, the number of non-finite values (how many NaN, how many infinite), how many
    records hold them and the first few of those records.  Nothing is repaired: non-finite training
    data almost always means a corrupt or mis-converted file, and silently replacing values would
    change the user's data (and a single NaN makes every loss and gradient NaN).  Formats where NaN
    is the documented marker of a missing value (UCR's ``?``/``NaN``) pass ``allow_nan=True``; only
    infinities are refused there, and the reader fills the missing values as it documents.

    Values are checked as float32, the dtype the datasets store: a float64 value beyond float32's
    range (``|v| > 3.4e38``, e.g. ``1e308``) becomes ``inf`` by that conversion and counts as
    non-finite.  Readers whose values come from integers (Pathfinder's 8-bit pixels, token tasks)
    cannot produce non-finite values and need no check.

    x: an array or tensor (N, ...) with one record per index of the first axis, or a sequence of N
        arrays (records of different lengths).
    source: the file the values come from (named in the message).
    rows: what to call each of the N records in the message (default its position 0..N-1), e.g. HDF5
        row numbers or line numbers; ``row_name`` is the word for them ("record", "row", "line").
        With ``row_name="line"`` the first bad line is also the error's ``line``.
    stage: where the values came from when not straight from the file, e.g. "after normalisation".

    Returns x converted to float32 (an array for an array, a tensor for a tensor, a list of arrays for a
    sequence), so a reader can store exactly what was checked.
    """
    if isinstance(x, torch.Tensor):
        out = x.to(torch.float32)
        arrays, batched = [out.detach().cpu().numpy()], True
    elif isinstance(x, np.ndarray):
        with np.errstate(over="ignore", invalid="ignore"):
            arrays = [x.astype(np.float32, copy=False)]
        out, batched = arrays[0], True
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            arrays = [np.asarray(r).astype(np.float32, copy=False) for r in x]
        out, batched = arrays, False
    if batched:
        a = arrays[0]
        flat = a.reshape(a.shape[0], -1) if a.ndim else a.reshape(1, 1)
        n_nan = np.isnan(flat).sum(axis=1)
        n_inf = np.isinf(flat).sum(axis=1)
    else:
        n_nan = np.array([int(np.isnan(r).sum()) for r in arrays], dtype=np.int64)
        n_inf = np.array([int(np.isinf(r).sum()) for r in arrays], dtype=np.int64)
    bad_per_row = n_inf + (0 if allow_nan else n_nan)
    bad = np.flatnonzero(bad_per_row)
    if bad.size == 0:
        return out
    total_nan = 0 if allow_nan else int(n_nan[bad].sum())
    total_inf = int(n_inf[bad].sum())
    total = total_nan + total_inf
    kinds = []
    if total_nan:
        kinds.append(f"{total_nan} NaN")
    if total_inf:
        kinds.append(f"{total_inf} infinite: inf, or beyond float32's range +-{_FLOAT32_MAX:.4g}")
    names = [rows[i] if rows is not None else i for i in bad[:_SHOWN_ROWS].tolist()]
    shown = ", ".join(str(r) for r in names) + (", ..." if bad.size > _SHOWN_ROWS else "")
    plural = "s" if bad.size > 1 else ""
    line = int(names[0]) if row_name == "line" else None
    where = f" {stage}" if stage else ""
    raise DataFormatError(
        source,
        f"{total} non-finite value{'s' if total > 1 else ''}{where} ({', '.join(kinds)}) in {bad.size} "
        f"{row_name}{plural} ({row_name}{plural} {shown}); non-finite values are refused, not repaired: "
        "the file is probably corrupt or was converted wrongly",
        line=line)


_UTF8_HINT = ("the file must be UTF-8 encoded text; convert it (e.g. `iconv -f latin1 -t utf-8 old > new`) "
              "or fix the corrupt bytes")


def not_utf8(path, line: int, bad: bytes = b"", column: Optional[int] = None) -> "DataFormatError":
    """The error every text reader raises for bytes that are not UTF-8 (returned, for the caller to raise)."""
    at = f" (byte {column} of the line)" if column is not None else ""
    what = f"bytes {bad!r}{at} are" if bad else "the line is"
    return DataFormatError(path, f"{what} not valid UTF-8; {_UTF8_HINT}", line=line)


def decode_utf8(raw: bytes, path) -> str:
    """``raw`` (the whole content of ``path``) decoded as UTF-8; bytes that are not UTF-8 raise
    :class:`DataFormatError` naming the file and the line (counted by ``\\n``) where they are."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        start = raw.rfind(b"\n", 0, e.start) + 1
        raise not_utf8(path, raw.count(b"\n", 0, e.start) + 1, raw[e.start:e.end], e.start - start + 1) from None


def _first_bad_utf8_line(path) -> Optional[Tuple[int, int, bytes]]:
    """(line, column, bytes) of the first bytes of ``path`` that are not UTF-8, or None; reads line by line."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")  # b"\n" is never inside a UTF-8 sequence, so lines decode independently
            except UnicodeDecodeError as e:
                return lineno, e.start + 1, raw[e.start:e.end]
    return None


@contextlib.contextmanager
def open_utf8(path, newline: Optional[str] = None) -> Iterator[TextIO]:
    """``open(path, encoding="utf-8")`` for reading, whose decoding errors become :class:`DataFormatError`
    naming the file and the line of the bad bytes (found by a second, binary pass, only on error), so a
    reader streaming a large file keeps its memory bounded."""
    with open(path, "r", encoding="utf-8", newline=newline) as f:
        try:
            yield f
        except UnicodeDecodeError:
            found = _first_bad_utf8_line(path)
            if found is None:  # not this file's bytes: let the original error through
                raise
            line, column, bad = found
            raise not_utf8(Path(path), line, bad, column) from None


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
