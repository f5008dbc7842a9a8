"""IMDb movie reviews (LRA "text" task): byte-level sentiment classification.

Reads the layout of the Stanford Large Movie Review Dataset as distributed (``aclImdb_v1.tar.gz``)::

    aclImdb/train/pos/<id>_<rating>.txt     12,500 files   label 1
    aclImdb/train/neg/<id>_<rating>.txt     12,500 files   label 0
    aclImdb/test/{pos,neg}/<id>_<rating>.txt               (same)

Other entries (``train/unsup``, ``imdb.vocab``, ``*.feat``, ``urls_*.txt``) are ignored.

Tokens follow LRA: each review is its raw UTF-8 bytes. Index 0 is :data:`~s4op_kernels.data.base.PAD`
(the backbone's ``Embedding`` uses ``padding_idx=0``), so byte ``b`` becomes token ``b + BYTE_OFFSET``
(``BYTE_OFFSET = 1``) and the vocabulary has ``VOCAB_SIZE = 257`` entries. PAD is the only special token:
bytes cover every input, so no UNK is needed, and the classifier pools over the sequence, so no BOS/EOS.
Reviews are truncated to ``max_len`` bytes (LRA uses 1000-4096; S4 uses 4096) and right-padded with PAD.

The files carry no validation split: ``val`` is a seeded subset of ``train`` (:func:`seeded_split`), never
of ``test``. Loading ``train`` or ``val`` lists and reads ``train/`` only, and reads only the files of the
requested subset.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import List, Tuple, Union

import numpy as np
import torch

from s4op_kernels._validate import check_int
from s4op_kernels.data.base import PAD, DataFormatError, TaskDataset, TaskInfo, seeded_split, token_dtype

BYTE_OFFSET = 1  # token = byte + BYTE_OFFSET, so no byte (not even 0x00) becomes PAD = 0
VOCAB_SIZE = 256 + BYTE_OFFSET
CLASS_NAMES = ("neg", "pos")  # label = index: neg = 0, pos = 1
SPLITS = ("train", "val", "test")

# "<id>_<rating>.txt": id and rating are non-negative integers (ratings are 1-4 for neg, 7-10 for pos)
_FILE_NAME = re.compile(r"^(\d+)_(\d+)\.txt$")


def encode(text: Union[str, bytes], max_len: int) -> Tuple[np.ndarray, int]:
    """Token indices of one review as the loader builds them.

    text: a ``str`` (encoded as UTF-8) or raw ``bytes``.
    Returns ``(tokens, length)``: tokens ``(max_len,)`` int64, ``byte + BYTE_OFFSET`` for the first
    ``length = min(len(bytes), max_len)`` positions and PAD after.
    """
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    out = np.full((max_len,), PAD, dtype=np.int64)
    n = min(len(data), max_len)
    out[:n] = np.frombuffer(data, dtype=np.uint8, count=n).astype(np.int64) + BYTE_OFFSET
    return out, n


def decode(tokens) -> bytes:
    """Inverse of :func:`encode`: tokens ``(L,)`` (tensor or array) -> the bytes before the first PAD."""
    t = np.asarray(tokens, dtype=np.int64).reshape(-1)
    pad = np.flatnonzero(t == PAD)
    t = t[: pad[0]] if pad.size else t
    if t.size and (t.min() < BYTE_OFFSET or t.max() >= VOCAB_SIZE):
        raise ValueError(f"tokens must be in [{BYTE_OFFSET}, {VOCAB_SIZE}) before the first PAD")
    return (t - BYTE_OFFSET).astype(np.uint8).tobytes()


def _resolve_root(root, folder: str) -> Path:
    """The ``aclImdb`` folder: ``root`` itself when it holds ``<folder>/{pos,neg}``, else ``root/aclImdb``.

    Only ``folder`` ("train" or "test") is required, so train/val load without a test folder.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"IMDb root {str(root)!r} is not a folder (expected the aclImdb folder or its parent)")
    candidates = (root, root / "aclImdb")
    for cand in candidates:
        if all((cand / folder / label).is_dir() for label in CLASS_NAMES):
            return cand
    found = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())[:20]
    raise DataFormatError(
        root,
        f"no IMDb {folder!r} split here: expected either {root / folder}/{{pos,neg}}/ (root = the aclImdb "
        f"folder) or {root / 'aclImdb' / folder}/{{pos,neg}}/ (root = its parent); found {found}")


def _list_split(base: Path, folder: str) -> Tuple[List[Path], np.ndarray]:
    """All review files of ``base/folder`` in a fixed order (neg then pos, each by numeric id), and labels (N,).

    Names are validated while listing, so a stray file fails here with its name rather than later.
    """
    paths: List[Path] = []
    labels: List[int] = []
    for label, cls in enumerate(CLASS_NAMES):
        d = base / folder / cls
        entries = []
        with os.scandir(d) as it:  # scandir: one syscall per directory block, fast for 12,500 entries
            for e in it:
                if e.name.startswith("."):  # .DS_Store and editor droppings are not reviews
                    continue
                m = _FILE_NAME.match(e.name)
                if m is None:
                    raise DataFormatError(d / e.name, "file name is not <id>_<rating>.txt with integer id and rating")
                entries.append((int(m.group(1)), int(m.group(2)), e.name))
        if not entries:
            raise DataFormatError(d, f"no <id>_<rating>.txt reviews in the {folder}/{cls} folder")
        entries.sort()  # scandir order is file-system dependent; sort so splits are reproducible
        paths.extend(d / name for _, _, name in entries)
        labels.extend([label] * len(entries))
    return paths, np.asarray(labels, dtype=np.int64)


def _read_tokens(paths: List[Path], max_len: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """x: (N, max_len) int16 tokens (see ``TaskDataset``) and lengths: (N,) int64 of the files ``paths``."""
    x = torch.full((len(paths), max_len), PAD, dtype=token_dtype(VOCAB_SIZE))
    xn = x.numpy()  # shares memory: filled in place, no second (N, max_len) buffer
    lengths = np.empty((len(paths),), dtype=np.int64)
    for i, p in enumerate(paths):
        try:
            # only the first max_len bytes are needed; reviews average ~1.3 kB so this is one read
            with open(p, "rb") as f:
                data = f.read(max_len)
        except OSError as e:
            raise DataFormatError(p, f"cannot read review file ({e.strerror or e})") from e
        if not data:
            # aclImdb has no empty review; an empty file means a truncated download or extraction
            raise DataFormatError(p, "empty review file")
        n = len(data)
        row = xn[i, :n]
        row[:] = np.frombuffer(data, dtype=np.uint8)  # widen to int16 first: 255 + 1 must not wrap in uint8
        row += BYTE_OFFSET
        lengths[i] = n
    return x, torch.from_numpy(lengths)


def load(root, split: str = "train", max_len: int = 4096, val_fraction: float = 0.1, split_seed: int = 0,
         return_lengths: bool = False) -> TaskDataset:
    """Load one split of IMDb as byte tokens.

    root: the ``aclImdb`` folder or the folder that contains it.
    split: ``"train"``, ``"val"`` (a seeded ``val_fraction`` of the train files, chosen by ``split_seed``;
        ``train`` is the rest) or ``"test"``.
    max_len: sequence length L; longer reviews are truncated, shorter ones padded with PAD (0).

    Returns a :class:`TaskDataset` with x: (N, max_len) tokens (``byte + 1``, 0 = PAD; stored as int16,
    ``ds[i]`` gives int64),
    y: (N,) int64 (neg = 0, pos = 1), lengths: (N,) valid lengths, and
    ``TaskInfo(task="imdb", num_classes=2, vocab_size=257, seq_len=max_len)``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    max_len = check_int(max_len, "max_len", func="load", minimum=1)
    folder = "test" if split == "test" else "train"
    base = _resolve_root(root, folder)
    paths, labels = _list_split(base, folder)
    if split != "test":
        tr, va = seeded_split(len(paths), val_fraction, split_seed)
        keep = (va if split == "val" else tr).numpy()
        paths = [paths[i] for i in keep]
        labels = labels[keep]
    x, lengths = _read_tokens(paths, max_len)
    info = TaskInfo(task="imdb", num_classes=2, seq_len=max_len, vocab_size=VOCAB_SIZE, class_names=CLASS_NAMES)
    return TaskDataset(x, torch.from_numpy(labels), info, lengths=lengths, split=split, return_lengths=return_lengths)


__all__ = ["load", "encode", "decode", "BYTE_OFFSET", "VOCAB_SIZE", "CLASS_NAMES"]
