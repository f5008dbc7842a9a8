"""Pathfinder (Long Range Arena): are the two marker discs joined by one curve? 2 classes. The LRA-layout reader.

On-disk layout (the LRA release, e.g. ``lra_release/pathfinder32``, and what the generator
:func:`s4op_kernels.data.pathfinder_synthetic.generate` writes)::

    <root>/<difficulty>/imgs/<batch>/sample_<i>.png     grayscale size x size
    <root>/<difficulty>/metadata/<batch>.npy            one line per image

with ``<difficulty>`` one of ``curv_baseline`` (easy, contour length 6), ``curv_contour_length_9``
(intermediate) and ``curv_contour_length_14`` (hard) (:func:`difficulty_folder`). Despite the ``.npy``
suffix the LRA release's metadata files are text: one whitespace-separated line per image,
``<folder> <file> <index> <label> ...`` (the generator writes e.g.
``imgs/0 sample_0.png 0 1 1 14 4 2 0.5 1 1``): the image is ``<difficulty>/<folder>/<file>`` and the fourth
column the label (1 = connected). Only the first four columns are read. Image paths must stay inside
``<difficulty>``: an absolute ``<folder>`` or ``<file>``, or one leading out through ``..`` or a symlink
(checked on the resolved path), is a DataFormatError naming the metadata file and line. Text metadata must
be UTF-8. Files that really are NumPy arrays of strings (``np.save``, as the original generator's
``save_metadata`` writes them) are read too.

Splits. LRA ships no split files. The reference S4 (``state-spaces/s4``, ``PathFinderDataset``) orders the
samples by metadata file number and line, drops the one empty PNG of the release, and takes a seeded
``random_split`` into train/val/test of sizes ``N - 2 int(0.1 N)``, ``int(0.1 N)``, ``int(0.1 N)`` (seed 42).
:func:`load` does exactly that (``val_fraction``, ``test_fraction``, ``split_seed``), so on the real release
it yields the reference's split. The generator writes, next to ``imgs/`` and ``metadata/``, a
``split.json`` (:data:`SPLIT_FILE`) with the requested ``{"train", "val", "test", "split_seed"}`` counts,
which :func:`load` then uses instead of the fractions (same seeded permutation, exact counts); LRA tools
ignore the file. The split depends only on the number of samples and the seed, never on image contents or
labels.

Inputs are continuous, as in the reference S4 (``tokenize=False``, a linear encoder): x is
``(N, H*W, 1)`` float32, ``pixel / 255`` normalized with mean 0.5 and std 0.5 to ``[-1, 1]``, rows read
top to bottom. ``tokenize=True`` gives int64 tokens ``pixel + 1`` (vocabulary 257) so that a black pixel
does not collide with the padding index 0.

The image generator lives in :mod:`s4op_kernels.data.pathfinder_synthetic`; it uses the layout names
here (:data:`DIFFICULTIES`, :func:`difficulty_folder`, :data:`SPLIT_FILE`), and this module never imports it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from s4op_kernels.data.base import DataFormatError, TaskDataset, TaskInfo, decode_utf8

NUM_CLASSES = 2
SPLITS = ("train", "val", "test")
# difficulty -> (LRA's folder name, its contour length in steps)
DIFFICULTIES = {"easy": ("curv_baseline", 6), "intermediate": ("curv_contour_length_9", 9),
                "hard": ("curv_contour_length_14", 14)}
SPLIT_FILE = "split.json"
NPY_MAGIC = b"\x93NUMPY"
# the reference S4's split: 10 % validation, 10 % test, seed 42
DEFAULT_VAL_FRACTION, DEFAULT_TEST_FRACTION, DEFAULT_SPLIT_SEED = 0.1, 0.1, 42


def difficulty_folder(difficulty: str, contour_length: int) -> str:
    """LRA's folder name for ``difficulty``, or ``curv_contour_length_<n>`` when the contour length
    was changed from the difficulty's own."""
    folder, length = DIFFICULTIES[difficulty]
    return folder if contour_length == length else f"curv_contour_length_{contour_length}"


# ---------------------------------------------------------------------------------------------------
# Reader
# ---------------------------------------------------------------------------------------------------

def _layout_hint(root: Path) -> str:
    return (f"Pathfinder expects the LRA layout <root>/<difficulty>/metadata/<batch>.npy and "
            f"<root>/<difficulty>/imgs/<batch>/sample_<i>.png with <difficulty> one of "
            f"{[f for f, _ in DIFFICULTIES.values()]} (root = the release's pathfinder32 folder, or its parent "
            f"with resolution=32), or a folder written by `s4op_kernels.data.generate('pathfinder', root, ...)`; "
            f"got root={root}")


def _difficulty_dirs(root: Path) -> List[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "metadata").is_dir()) if root.is_dir() else []


def resolve_root(root, difficulty: Optional[str] = None, resolution: Optional[int] = None) -> Path:
    """The ``<difficulty>`` folder (the one holding ``metadata/``) that ``load`` reads.

    ``root`` may be that folder itself, a ``pathfinder<N>`` folder holding difficulty folders, or the
    parent of ``pathfinder<resolution>``. ``difficulty`` is ``"easy"``, ``"intermediate"``, ``"hard"`` or a
    folder name; None picks the only difficulty present, or ``hard`` (what the reference S4 trains on)
    when several are.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist. " + _layout_hint(root))
    if (root / "metadata").is_dir():
        return root
    base = root
    if not _difficulty_dirs(base):
        cands = ([root / f"pathfinder{resolution}"] if resolution is not None
                 else sorted(root.glob("pathfinder*")))
        cands = [c for c in cands if _difficulty_dirs(c)]
        if len(cands) > 1:
            raise ValueError(f"{root} holds several resolutions {[c.name for c in cands]}; pass resolution=")
        if not cands:
            raise FileNotFoundError(f"no <difficulty>/metadata folder under {root}. " + _layout_hint(root))
        base = cands[0]
    dirs = {p.name: p for p in _difficulty_dirs(base)}
    if difficulty is None:
        if len(dirs) == 1:
            return next(iter(dirs.values()))
        hard = DIFFICULTIES["hard"][0]
        if hard in dirs:
            return dirs[hard]
        raise ValueError(f"{base} holds several difficulties {sorted(dirs)}; pass difficulty=")
    name = DIFFICULTIES[difficulty][0] if difficulty in DIFFICULTIES else difficulty
    if name not in dirs:
        raise FileNotFoundError(f"difficulty {difficulty!r} (folder {name}) not found under {base}; "
                                f"found {sorted(dirs)}. " + _layout_hint(root))
    return dirs[name]


def _metadata_rows(path: Path) -> List[Tuple[int, List[str]]]:
    """(line number, fields) of one metadata file, text (the LRA release) or a NumPy string array."""
    raw = path.read_bytes()
    if raw.startswith(NPY_MAGIC):
        import io
        try:
            arr = np.load(io.BytesIO(raw), allow_pickle=False)
        except ValueError as e:
            raise DataFormatError(path, f"not a NumPy array of strings ({e})") from None
        arr = np.atleast_2d(arr)
        return [(i + 1, [str(v) for v in row]) for i, row in enumerate(arr)]
    text = decode_utf8(raw, path)  # not an .npy array, so UTF-8 text lines: bad bytes name their line
    return [(i + 1, line.split()) for i, line in enumerate(text.splitlines()) if line.strip()]


def _batch_key(path: Path):
    return (0, int(path.stem), "") if path.stem.isdigit() else (1, 0, path.stem)


class _Containment:
    """Checks that image paths named in metadata stay inside the dataset folder ``root``.

    A path is refused when one of its two fields is absolute, or when it resolves (following ``..`` and
    symlinks) to a place outside ``root`` resolved.  Parent folders are resolved once each (a release has
    a few hundred of them for 200k images); the image itself is resolved only when it is a symlink.
    """

    def __init__(self, root: Path):
        self.root, self.real_root = root, root.resolve()
        self._parents = {}

    def check(self, fields: Sequence[str], mf: Path, lineno: int) -> Path:
        shown = f"{fields[0]}/{fields[1]}"
        if any(Path(f).is_absolute() for f in fields[:2]):
            raise DataFormatError(mf, f"image path {shown!r} is absolute; paths in metadata must be relative to "
                                      f"the dataset folder {self.root}", line=lineno)
        img = self.root / fields[0] / fields[1]
        real_parent = self._parents.get(img.parent)
        if real_parent is None:
            real_parent = self._parents[img.parent] = img.parent.resolve()
        real = real_parent / img.name
        if img.name == ".." or real.is_symlink():
            real = img.resolve()
        if not real.is_relative_to(self.real_root):
            raise DataFormatError(mf, f"image path {shown!r} leads to {real}, outside the dataset folder "
                                      f"{self.real_root}; paths in metadata must stay inside it (no '..' or "
                                      "symlink leading out)", line=lineno)
        return img


def read_metadata(folder) -> Tuple[List[Path], np.ndarray]:
    """All samples of one difficulty folder in the reference order (metadata files by batch number, then
    line order). Returns the image paths and the labels (N,) int64. Zero-byte images are skipped, as the
    reference S4 and LRA skip the release's one empty PNG; a missing image, an image path that is absolute
    or leads outside ``folder`` (through ``..`` or a symlink), or a malformed line raises
    :class:`DataFormatError` naming the metadata file and line."""
    folder = Path(folder)
    files = sorted((folder / "metadata").glob("*.npy"), key=_batch_key)
    if not files:
        raise FileNotFoundError(f"no metadata/*.npy in {folder}. " + _layout_hint(folder))
    inside = _Containment(folder)
    paths, labels = [], []
    for mf in files:
        for lineno, fields in _metadata_rows(mf):
            if len(fields) < 4:
                raise DataFormatError(mf, f"expected at least 4 fields '<folder> <file> <index> <label>', "
                                          f"got {len(fields)}: {' '.join(fields)[:80]!r}", line=lineno)
            if fields[3] not in ("0", "1"):
                raise DataFormatError(mf, f"label (4th field) must be 0 or 1, got {fields[3]!r}", line=lineno)
            img = inside.check(fields, mf, lineno)
            try:
                size = img.stat().st_size
            except FileNotFoundError:
                raise DataFormatError(mf, f"image {img} listed here does not exist", line=lineno) from None
            if size == 0:
                continue
            paths.append(img)
            labels.append(int(fields[3]))
    return paths, np.asarray(labels, dtype=np.int64)


def split_indices(n: int, sizes: Sequence[int], seed: int) -> List[np.ndarray]:
    """Seeded split of ``range(n)`` into parts of ``sizes`` (train, val, test), as
    ``torch.utils.data.random_split(range(n), sizes, torch.Generator().manual_seed(seed))``; each part sorted."""
    if sum(sizes) != n or min(sizes) < 0:
        raise ValueError(f"split sizes {list(sizes)} do not add up to {n} samples")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    bounds = np.cumsum([0] + list(sizes))
    return [np.sort(perm[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def _split_sizes(folder: Path, n: int, val_fraction, test_fraction, split_seed):
    spec = folder / SPLIT_FILE
    if spec.is_file() and val_fraction is None and test_fraction is None:
        try:
            d = json.loads(spec.read_text(encoding="utf-8"))
            sizes = [int(d["train"]), int(d["val"]), int(d["test"])]
        except (ValueError, KeyError, TypeError) as e:
            raise DataFormatError(spec, f"expected JSON with integer 'train', 'val', 'test' ({e})") from None
        if sum(sizes) != n:
            raise DataFormatError(spec, f"split sizes {sizes} add up to {sum(sizes)}, but the metadata lists "
                                        f"{n} images")
        seed = int(d.get("split_seed", DEFAULT_SPLIT_SEED)) if split_seed is None else split_seed
        return sizes, seed
    vf = DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction
    tf = DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction
    if not (0.0 <= vf < 1.0 and 0.0 <= tf < 1.0 and vf + tf < 1.0):
        raise ValueError(f"need 0 <= val_fraction, test_fraction and their sum < 1; got {vf}, {tf}")
    n_val, n_test = int(vf * n), int(tf * n)
    return [n - n_val - n_test, n_val, n_test], DEFAULT_SPLIT_SEED if split_seed is None else split_seed


def load(root, split: str = "train", difficulty: Optional[str] = None, resolution: Optional[int] = None, *,
         val_fraction: Optional[float] = None, test_fraction: Optional[float] = None,
         split_seed: Optional[int] = None, tokenize: bool = False) -> TaskDataset:
    """Load one split of a Pathfinder folder (LRA layout) as a :class:`TaskDataset`.

    x: (N, H*W, 1) float32 in [-1, 1] (``(pixel / 255 - 0.5) / 0.5``, rows top to bottom), or with
    ``tokenize=True`` (N, H*W) int64 ``pixel + 1`` (vocab 257, 0 stays padding). y: (N,) int64, 1 = connected.

    ``root``/``difficulty``/``resolution``: see :func:`resolve_root`; ``resolution`` also checks the image
    size (None: taken from the first image; every image must have it). The split is the reference S4's
    seeded split (``val_fraction``/``test_fraction`` default 0.1, ``split_seed`` 42), or the exact sizes of a
    generated folder's ``split.json`` unless fractions are passed (see the module docstring).
    """
    from PIL import Image

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    folder = resolve_root(root, difficulty, resolution)
    paths, labels = read_metadata(folder)
    sizes, seed = _split_sizes(folder, len(paths), val_fraction, test_fraction, split_seed)
    idx = split_indices(len(paths), sizes, seed)[SPLITS.index(split)]

    side = resolution
    pixels = None
    for row, i in enumerate(idx):
        try:
            with Image.open(paths[i]) as im:
                a = np.asarray(im.convert("L"))
        except OSError as e:
            raise DataFormatError(paths[i], f"cannot be read as an image ({e})") from None
        if side is None:
            side = a.shape[0]
        if a.shape != (side, side):
            raise DataFormatError(paths[i], f"image is {a.shape[1]}x{a.shape[0]}, expected {side}x{side}")
        if pixels is None:
            pixels = np.empty((idx.size, side * side), dtype=np.uint8)
        pixels[row] = a.reshape(-1)
    if side is None:  # an empty split: take the size from any image of the folder
        if paths:
            with Image.open(paths[0]) as im:
                side = im.size[0]
        else:
            side = 32
    if pixels is None:
        pixels = np.empty((0, side * side), dtype=np.uint8)
    y = torch.from_numpy(labels[idx])
    if tokenize:
        x = torch.from_numpy(pixels.astype(np.int64) + 1)
        info = TaskInfo(task="pathfinder", num_classes=NUM_CLASSES, seq_len=side * side, vocab_size=257,
                        class_names=("disconnected", "connected"))
    else:
        x = torch.from_numpy((pixels.astype(np.float32) / 255.0 - 0.5) / 0.5).unsqueeze(-1)
        info = TaskInfo(task="pathfinder", num_classes=NUM_CLASSES, seq_len=side * side, in_channels=1,
                        class_names=("disconnected", "connected"))
    return TaskDataset(x, y, info, split=split)


__all__ = ["NUM_CLASSES", "DIFFICULTIES", "SPLIT_FILE", "difficulty_folder", "resolve_root", "read_metadata",
           "split_indices", "load"]
