"""UCR/UEA time-series classification archive: ``<Name>_TRAIN`` / ``<Name>_TEST`` files.

Two on-disk forms are read (the first one present wins, in this order):

``<Name>_TRAIN.ts`` / ``<Name>_TEST.ts`` — the sktime/aeon ``.ts`` text format of the current archive::

    # comment lines start with '#' (some archive files also use '%')
    @problemName BasicMotions
    @timeStamps false            (true is not supported: DataFormatError)
    @missing false
    @univariate false
    @dimensions 6                (optional; otherwise taken from the first case)
    @equalLength true
    @seriesLength 100            (checked when @equalLength is true)
    @classLabel true standing running walking badminton
    @data
    -0.74,-0.74,...,0.46:0.12,...,-0.3:...:standing

  One case per line: the values of each dimension comma-separated, dimensions separated by ':', the class
  label after the last ':'. ``?`` (or ``NaN``) is a missing value. Tags are case-insensitive (the archive
  writes ``@timeStamps`` and ``@timestamps``). ``@classLabel false`` (unlabelled) and ``@targetLabel true``
  (regression) are rejected with a clear error: this is a classification loader. Unknown tags are ignored.

``<Name>_TRAIN.tsv`` (UCR 2018) or ``<Name>_TRAIN.txt`` (UCR 2015) — univariate, one case per line, the
  label first and then the values, separated by tabs, commas or whitespace. Variable-length series in this
  form are padded with ``NaN`` at the end by the archive, so trailing NaNs mark the end of a series; other
  NaNs are missing values.

What the loader returns (documented choices):

- x: (N, L, C) float32 with C = number of dimensions. Series are zero-padded at the end to L = the longest
  series in TRAIN and TEST together, so every split of a dataset shares ``seq_len``; ``lengths`` (N,) holds
  each series' valid length.
- Class labels map to 0..K-1 in the ``@classLabel`` order of the TRAIN file (for the old form, or a ``.ts``
  file without ``@classLabel``: the sorted unique TRAIN labels, numerically when all labels are numbers).
  A TEST label that TRAIN does not know is a DataFormatError.
- ``normalize="series"`` (default) z-normalises each series per dimension over its valid, non-missing
  values, the convention of the UCR archive (most univariate datasets are distributed z-normalised, and
  published results assume it). ``"channel"`` uses one mean/std per dimension computed on the training
  portion (TRAIN minus the validation subset), which keeps amplitude differences between series.
  ``"none"`` leaves values as read. A dimension with zero spread is only centred.
- Missing values: ``missing="interpolate"`` (default) fills them linearly from their valid neighbours
  (a leading or trailing run takes the nearest valid value; an all-missing dimension becomes 0);
  ``missing="zero"`` sets them to 0, which after normalisation is the mean. Missing values are filled after
  normalisation, whose statistics ignore them.
- Non-finite values: ``inf``, and numbers float32 cannot hold (``|v| > 3.4e38``, e.g. ``1e308``), are refused
  with a DataFormatError naming the file, the count and the lines (:func:`~s4op_kernels.data.base.check_finite`),
  as is a normalised value that overflows float32 (``"channel"`` with a tiny training spread); NaN is a
  missing value, as above.
- Text: bytes that are not UTF-8 are a DataFormatError naming the line, except in comment lines.
- ``val`` is a seeded ``val_fraction`` of TRAIN (:func:`seeded_split`); ``train`` is the rest; TEST is
  never split.

Both files are always parsed (the labels come from TRAIN, the common length from both), and each parse is
cached by path, size and modification time, so loading train, val and test parses each file once.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from s4op_kernels.data.base import DataFormatError, TaskDataset, TaskInfo, check_finite, not_utf8, seeded_split

SPLITS = ("train", "val", "test")
FORMATS = (".ts", ".tsv", ".txt")  # searched in this order
NORMALIZE = ("series", "channel", "none")
MISSING = ("interpolate", "zero")
_ZERO_STD = 1e-8  # below this a dimension is treated as constant: centred, not scaled
_UNDECODED = re.compile(r"[\udc80-\udcff]+")  # bytes that were not UTF-8, after errors="surrogateescape"


@dataclass(frozen=True)
class _Parsed:
    """One parsed file.

    series: one (C, L_i) float64 array per case, NaN where a value is missing.
    labels: the raw label text of each case.
    lines: the 1-based line number of each case (for error messages after parsing).
    class_names: the ``@classLabel`` values in file order, or None when the file declares none.
    """

    path: Path
    series: Tuple[np.ndarray, ...]
    labels: Tuple[str, ...]
    lines: Tuple[int, ...]
    class_names: Optional[Tuple[str, ...]]
    dims: int


# ------------------------------------------------------------------------------------------------ parsing
def _read_lines(path: Path) -> List[str]:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataFormatError(path, f"cannot read file ({e.strerror or e})") from e
    try:
        return raw.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        pass
    # Comments in archive files contain author names in UTF-8 (and occasionally other encodings), so bytes
    # that are not UTF-8 are tolerated in comment lines (which are skipped).  Elsewhere, replaced, they would
    # silently change a label or a tag (two labels differing only in such bytes would become one class):
    # refused, naming the line.
    lines = raw.decode("utf-8", errors="surrogateescape").splitlines()  # bad bytes -> U+DC80..U+DCFF
    for n, text in enumerate(lines, start=1):
        bad = _UNDECODED.search(text)
        if bad and not text.lstrip().startswith(("#", "%")):
            column = len(text[:bad.start()].encode("utf-8", "surrogateescape")) + 1
            raise not_utf8(path, n, bad.group().encode("utf-8", "surrogateescape"), column)
    return lines


def _parse_values(text: str, path: Path, line: int, what: str) -> np.ndarray:
    """Comma-separated numbers -> (n,) float64; '?' and NaN -> NaN."""
    tokens = text.replace("?", "nan").split(",")
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError:
        # numpy does not say which token failed; find it for the message
        for j, tok in enumerate(tokens):
            try:
                float(tok)
            except ValueError:
                shown = tok.strip() or "<empty>"
                raise DataFormatError(path, f"{what}: value {j + 1} is not a number: {shown!r}", line=line) from None
        raise  # pragma: no cover - every token converted one by one, so the array conversion cannot fail
    return values


def _bool_tag(tag: str, args: List[str], path: Path, line: int) -> bool:
    if len(args) != 1 or args[0].lower() not in ("true", "false"):
        raise DataFormatError(path, f"{tag} needs one value, true or false, got {' '.join(args)!r}", line=line)
    return args[0].lower() == "true"


def _int_tag(tag: str, args: List[str], path: Path, line: int) -> int:
    if len(args) != 1 or not args[0].isdigit() or int(args[0]) < 1:
        raise DataFormatError(path, f"{tag} needs one positive integer, got {' '.join(args)!r}", line=line)
    return int(args[0])


def _parse_ts(path: Path) -> _Parsed:
    lines = _read_lines(path)
    univariate: Optional[bool] = None
    dims: Optional[int] = None
    equal_length: Optional[bool] = None
    series_length: Optional[int] = None
    class_names: Optional[Tuple[str, ...]] = None
    i = 0
    # header: tags up to @data
    while True:
        if i == len(lines):
            raise DataFormatError(path, "no @data line: a .ts file needs a header ending with @data")
        text = lines[i].strip()
        i += 1
        if not text or text[0] in "#%":
            continue
        if text[0] != "@":
            raise DataFormatError(path, f"expected a header tag (@...) or @data before the data, got {text[:40]!r}",
                                  line=i)
        tag, *args = text.split()
        key = tag.lower()
        if key == "@data":
            if args:
                raise DataFormatError(path, "@data takes no value", line=i)
            break
        if key == "@timestamps":
            if _bool_tag(tag, args, path, i):
                raise DataFormatError(path, "@timeStamps true is not supported: only series of plain values "
                                            "(v1,v2,...) can be read, not (time,value) pairs", line=i)
        elif key == "@targetlabel":
            if _bool_tag(tag, args, path, i):
                raise DataFormatError(path, "@targetLabel true marks a regression problem; this loader reads "
                                            "classification problems only", line=i)
        elif key == "@classlabel":
            if not args or args[0].lower() not in ("true", "false"):
                raise DataFormatError(path, f"{tag} needs true <labels...> or false", line=i)
            if args[0].lower() == "false":
                raise DataFormatError(path, "@classLabel false: the cases carry no class label, and this loader "
                                            "reads classification problems only", line=i)
            if len(args) < 2:
                raise DataFormatError(path, "@classLabel true must list the class labels", line=i)
            if len(set(args[1:])) != len(args) - 1:
                raise DataFormatError(path, f"@classLabel lists a label twice: {args[1:]}", line=i)
            class_names = tuple(args[1:])
        elif key == "@univariate":
            univariate = _bool_tag(tag, args, path, i)
        elif key == "@missing":
            _bool_tag(tag, args, path, i)  # validated only: '?' is accepted wherever it appears
        elif key == "@equallength":
            equal_length = _bool_tag(tag, args, path, i)
        elif key == "@dimensions":
            dims = _int_tag(tag, args, path, i)
        elif key == "@serieslength":
            series_length = _int_tag(tag, args, path, i)
        # @problemName and tags unknown to this reader carry nothing it needs
    if univariate and dims is not None and dims != 1:
        raise DataFormatError(path, f"header says @univariate true but @dimensions {dims}")
    if univariate:
        dims = 1

    series, labels, where = [], [], []
    for n, raw in enumerate(lines[i:], start=i + 1):
        text = raw.strip()
        if not text or text[0] == "#":
            continue
        if text.startswith("("):
            raise DataFormatError(path, "value looks like a (time,value) pair; @timeStamps true data is not "
                                        "supported", line=n)
        parts = text.split(":")
        if len(parts) < 2:
            raise DataFormatError(path, "no class label: expected <values>[:<values>...]:<label>", line=n)
        if dims is None:
            dims = len(parts) - 1  # no @dimensions / @univariate: the first case decides
        if len(parts) - 1 != dims:
            raise DataFormatError(path, f"expected {dims} dimension(s) and a label, got {len(parts) - 1} "
                                        f"dimension(s) (dimensions are separated by ':')", line=n)
        label = parts[-1].strip()
        if not label:
            raise DataFormatError(path, "empty class label after the last ':'", line=n)
        if class_names is not None and label not in class_names:
            raise DataFormatError(path, f"class label {label!r} is not one of the @classLabel values "
                                        f"{list(class_names)}", line=n)
        chans = [_parse_values(p, path, n, f"dimension {d + 1}") for d, p in enumerate(parts[:-1])]
        length = chans[0].shape[0]
        if any(c.shape[0] != length for c in chans):
            raise DataFormatError(path, "the dimensions of one case have different lengths "
                                        f"{[c.shape[0] for c in chans]}", line=n)
        if equal_length and series_length is not None and length != series_length:
            raise DataFormatError(path, f"series has {length} values but the header says @seriesLength "
                                        f"{series_length}", line=n)
        if equal_length and series and length != series[0].shape[1]:
            raise DataFormatError(path, f"series has {length} values, the first case has {series[0].shape[1]}, "
                                        "but the header says @equalLength true", line=n)
        series.append(np.stack(chans))
        labels.append(label)
        where.append(n)
    if not series:
        raise DataFormatError(path, "no cases after @data")
    # NaN is a missing value here; +-inf, and values float32 (the stored dtype) cannot hold, are refused
    check_finite(series, path, rows=where, row_name="line", allow_nan=True)
    return _Parsed(path, tuple(series), tuple(labels), tuple(where), class_names, dims)


def _parse_old(path: Path) -> _Parsed:
    """UCR 2015 (.txt) / 2018 (.tsv): label first, then the values of one univariate series."""
    series, labels, where = [], [], []
    for n, raw in enumerate(_read_lines(path), start=1):
        text = raw.strip()
        if not text:
            continue
        if "\t" in text:
            tokens = text.split("\t")
        elif "," in text:
            tokens = text.split(",")
        else:
            tokens = text.split()
        label = tokens[0].strip()
        if not label:
            raise DataFormatError(path, "empty class label (the first field)", line=n)
        if len(tokens) < 2:
            raise DataFormatError(path, "expected a class label followed by the series values", line=n)
        values = _parse_values(",".join(tokens[1:]), path, n, "series")
        valid = np.flatnonzero(~np.isnan(values))
        if valid.size == 0:
            raise DataFormatError(path, "series has no values (all NaN)", line=n)
        # the archive pads variable-length series with trailing NaNs: those are padding, not missing values
        series.append(values[None, : valid[-1] + 1])
        labels.append(label)
        where.append(n)
    if not series:
        raise DataFormatError(path, "no cases in file")
    check_finite(series, path, rows=where, row_name="line", allow_nan=True)  # as in _parse_ts
    return _Parsed(path, tuple(series), tuple(labels), tuple(where), None, 1)


@functools.lru_cache(maxsize=4)  # train + test of two datasets
def _parse_cached(path: str, size: int, mtime_ns: int) -> _Parsed:
    p = Path(path)
    parsed = _parse_ts(p) if p.suffix == ".ts" else _parse_old(p)
    for s in parsed.series:  # shared between loads through the cache: nobody may modify them
        s.setflags(write=False)
    return parsed


def _parse(path: Path) -> _Parsed:
    try:
        st = path.stat()
    except OSError as e:
        raise DataFormatError(path, f"cannot read file ({e.strerror or e})") from e
    return _parse_cached(str(path.resolve()), st.st_size, st.st_mtime_ns)


# --------------------------------------------------------------------------------------------- discovery
def _names_in(folder: Path) -> List[Tuple[str, str]]:
    """(name, extension) of every ``<Name>_TRAIN.<ext>`` in ``folder``."""
    out = []
    for entry in sorted(os.listdir(folder)):
        for ext in FORMATS:
            if entry.endswith("_TRAIN" + ext):
                out.append((entry[: -len("_TRAIN" + ext)], ext))
    return out


def _find_files(root, name: Optional[str]) -> Tuple[str, Path, Path]:
    """(name, TRAIN path, TEST path) of the dataset ``name`` in ``root`` (or ``root/name``)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"UCR root {str(root)!r} is not a folder (expected a folder holding "
                                "<Name>_TRAIN.ts and <Name>_TEST.ts)")
    found = _names_in(root)
    if name is None:
        names = sorted({n for n, _ in found})
        if len(names) != 1:
            if names:
                raise ValueError(f"{root} holds several datasets {names}: pass name=<one of them>")
            subdirs = sorted(p.name for p in root.iterdir() if p.is_dir())[:20]
            raise DataFormatError(root, "no <Name>_TRAIN.ts/.tsv/.txt file here"
                                  + (f"; sub-folders {subdirs}: pass name=<Name> or root=<sub-folder>"
                                     if subdirs else ""))
        name = names[0]
    folder = root
    if not any(n == name for n, _ in found) and (root / name).is_dir():
        folder, found = root / name, _names_in(root / name)  # archive layout: <root>/<Name>/<Name>_TRAIN.ts
    exts = [e for n, e in found if n == name]
    if not exts:
        names = sorted({n for n, _ in found})
        raise DataFormatError(root, f"no {name}_TRAIN{{{','.join(FORMATS)}}} here or in {root / name}; "
                                    f"datasets present: {names}")
    ext = min(exts, key=FORMATS.index)
    train, test = folder / f"{name}_TRAIN{ext}", folder / f"{name}_TEST{ext}"
    if not test.is_file():
        raise FileNotFoundError(f"{train} has no matching {test.name} (TEST is needed for the common "
                                "sequence length and the test split)")
    return name, train, test


# ------------------------------------------------------------------------------------------------- labels
def _class_index(train: _Parsed) -> Tuple[Tuple[str, ...], Callable[[str], Optional[int]]]:
    """Class names in index order and a function raw label -> class index (None if unknown), from TRAIN."""
    if train.class_names is not None:
        table = {c: k for k, c in enumerate(train.class_names)}
        return train.class_names, table.get
    uniq = sorted(set(train.labels))
    try:
        values = sorted({float(u) for u in uniq})
    except ValueError:
        table = {u: k for k, u in enumerate(uniq)}
        return tuple(uniq), table.get
    # numeric labels ("1", "-1", "1.0000000e+00" in the 2015 files) are ordered and matched by value, so
    # that TRAIN's "1" and TEST's "1.0" are one class
    if any(np.isnan(v) for v in values):
        raise DataFormatError(train.path, "a class label is NaN")
    by_value = {v: k for k, v in enumerate(values)}

    def lookup(label: str) -> Optional[int]:
        try:
            return by_value.get(float(label))
        except ValueError:
            return None

    return tuple(str(int(v)) if v.is_integer() else repr(v) for v in values), lookup


def _encode_labels(parsed: _Parsed, lookup, names: Sequence[str], train_path: Path) -> np.ndarray:
    """y: (N,) int64 class indices of the cases of ``parsed``."""
    y = np.empty((len(parsed.labels),), dtype=np.int64)
    for j, (label, n) in enumerate(zip(parsed.labels, parsed.lines)):
        k = lookup(label)
        if k is None:
            raise DataFormatError(parsed.path, f"class label {label!r} does not occur in {train_path.name} "
                                               f"(classes: {list(names)[:20]})", line=n)
        y[j] = k
    return y


# ------------------------------------------------------------------------------------------ preprocessing
def _nan_stats(s: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Mean and scale (C, 1) over the non-missing values of s: (C, L); an all-missing dimension gets (0, 1).

    The scale is the standard deviation, or 1 when the dimension is (numerically) constant, so constant
    series are centred rather than blown up.
    """
    ok = ~np.isnan(s)
    cnt = np.maximum(ok.sum(axis=1, keepdims=True), 1)
    v = np.where(ok, s, 0.0)
    mean = v.sum(axis=1, keepdims=True) / cnt
    var = (np.where(ok, s - mean, 0.0) ** 2).sum(axis=1, keepdims=True) / cnt
    std = np.sqrt(var)
    return mean, np.where(std > _ZERO_STD, std, 1.0)


def _fill_missing(s: np.ndarray, how: str) -> np.ndarray:
    """s: (C, L) with NaN for missing -> (C, L) without NaN."""
    miss = np.isnan(s)
    if not miss.any():
        return s
    s = s.copy()
    if how == "zero":
        s[miss] = 0.0
        return s
    pos = np.arange(s.shape[1])
    for c in np.flatnonzero(miss.any(axis=1)):
        ok = ~miss[c]
        # np.interp holds the end values constant outside the valid range: edge runs take the nearest value
        s[c] = np.interp(pos, pos[ok], s[c, ok]) if ok.any() else 0.0
    return s


def load(root, split: str = "train", name: Optional[str] = None, val_fraction: float = 0.1, split_seed: int = 0,
         normalize: Union[str, bool, None] = "series", missing: str = "interpolate",
         return_lengths: bool = False) -> TaskDataset:
    """Load one split of a UCR/UEA classification dataset.

    root: folder holding ``<Name>_TRAIN.ts`` and ``<Name>_TEST.ts`` (or ``.tsv`` / ``.txt``), or the archive
        folder holding ``<Name>/`` sub-folders when ``name`` is given.
    split: ``"train"``, ``"val"`` (seeded ``val_fraction`` of TRAIN by ``split_seed``) or ``"test"``.
    name: the dataset name; may be omitted when ``root`` holds exactly one dataset.
    normalize: ``"series"`` (default; True means the same), ``"channel"`` or ``"none"`` (False/None) — see the
        module docstring.
    missing: ``"interpolate"`` (default) or ``"zero"``.

    Returns a :class:`TaskDataset` with x: (N, L, C) float32 (zero-padded after each series' end),
    y: (N,) int64 class indices, lengths: (N,) int64, and
    ``TaskInfo(task="ucr", num_classes=K, in_channels=C, seq_len=L, class_names=labels)``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if normalize is True:
        normalize = "series"
    elif normalize is False or normalize is None:
        normalize = "none"
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize must be one of {NORMALIZE} (or True/False), got {normalize!r}")
    if missing not in MISSING:
        raise ValueError(f"missing must be one of {MISSING}, got {missing!r}")

    _, train_path, test_path = _find_files(root, name)
    train, test = _parse(train_path), _parse(test_path)
    if test.dims != train.dims:
        raise DataFormatError(test_path, f"cases have {test.dims} dimension(s) but {train_path.name} has "
                                         f"{train.dims}")
    if len(train.series) < 2:
        raise DataFormatError(train_path, f"only {len(train.series)} case: at least 2 are needed to split off "
                                          "a validation subset")
    class_names, lookup = _class_index(train)
    y_train = _encode_labels(train, lookup, class_names, train_path)

    tr, va = seeded_split(len(train.series), val_fraction, split_seed)
    tr, va = tr.numpy(), va.numpy()
    if split == "test":
        src, y = test, _encode_labels(test, lookup, class_names, train_path)
        idx = np.arange(len(test.series))
    else:
        src, y = train, y_train
        idx = va if split == "val" else tr

    C = train.dims
    seq_len = max(s.shape[1] for s in train.series + test.series)
    if normalize == "channel":
        # statistics of the training portion only, so val/test never inform the preprocessing
        ch_mean, ch_scale = _nan_stats(np.concatenate([train.series[j] for j in tr], axis=1))

    x = np.zeros((len(idx), seq_len, C), dtype=np.float32)
    lengths = np.empty((len(idx),), dtype=np.int64)
    for row, j in enumerate(idx):
        s = src.series[j]  # (C, L_j) float64, NaN = missing
        if normalize == "series":
            mean, scale = _nan_stats(s)
            s = (s - mean) / scale
        elif normalize == "channel":
            s = (s - ch_mean) / ch_scale
        s = _fill_missing(s, missing)
        with np.errstate(over="ignore"):  # an overflow to inf is reported below, with its lines
            x[row, : s.shape[1]] = s.T
        lengths[row] = s.shape[1]
    # the values read fit float32 (checked by the parser), but scaling by the training portion's spread
    # (normalize="channel") can push a val/test value beyond it
    check_finite(x, src.path, rows=[src.lines[j] for j in idx], row_name="line",
                 stage=f"after normalize={normalize!r}")

    info = TaskInfo(task="ucr", num_classes=len(class_names), seq_len=seq_len, in_channels=C,
                    class_names=tuple(class_names))
    return TaskDataset(torch.from_numpy(x), torch.from_numpy(y[idx]), info, lengths=torch.from_numpy(lengths),
                       split=split, return_lengths=return_lengths)


__all__ = ["load", "FORMATS", "NORMALIZE", "MISSING"]
