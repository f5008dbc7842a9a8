"""Pathfinder (LRA): the LRA-layout reader (s4op_kernels.data.pathfinder), on folders the generator writes
and edits of them; the generator itself is tested in test_pathfinder_synthetic.py."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import s4op_kernels
from s4op_kernels import data
from s4op_kernels.data import pathfinder, pathfinder_synthetic
from s4op_kernels.data.base import DataFormatError
from factories import pathfinder_metadata_lines

FOLDER_EASY = "curv_baseline"


# --------------------------------------------------------------------------------------------- on disk

# `generated`: tests/data/conftest.py




def test_load_round_trip(generated):
    folder = generated / FOLDER_EASY
    lines = pathfinder_metadata_lines(folder)
    seen = []
    for split, n in (("train", 12), ("val", 4), ("test", 4)):
        ds = data.load("pathfinder", generated, split)
        assert len(ds) == n and ds.seq_len == 1024 and ds.in_channels == 1 and ds.num_classes == 2
        assert ds.x.shape == (n, 1024, 1) and ds.x.dtype == torch.float32
        assert float(ds.x.min()) >= -1.0 and float(ds.x.max()) <= 1.0
        idx = pathfinder.split_indices(20, [12, 4, 4], seed=0)[("train", "val", "test").index(split)]
        seen += list(idx)
        for row, i in enumerate(idx):
            f = lines[i]
            with Image.open(folder / f[0] / f[1]) as im:
                pix = np.asarray(im, dtype=np.float32).reshape(-1)
            np.testing.assert_allclose(ds.x[row, :, 0].numpy(), (pix / 255 - 0.5) / 0.5, atol=1e-6)
            assert int(ds.y[row]) == int(f[3])
    assert sorted(seen) == list(range(20))  # the three splits partition the samples


def test_split_is_the_reference_random_split():
    got = pathfinder.split_indices(50, [40, 5, 5], seed=42)
    ref = torch.utils.data.random_split(range(50), [40, 5, 5], generator=torch.Generator().manual_seed(42))
    for g, r in zip(got, ref):
        assert g.tolist() == sorted(r.indices)


def _copy_tree(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return dst


def test_real_layout_without_split_file(generated, tmp_path):
    # the LRA release: lra_release/pathfinder32/curv_baseline/..., no split.json -> 80/10/10, seed 42
    folder = _copy_tree(generated / FOLDER_EASY, tmp_path / "lra" / "pathfinder32" / FOLDER_EASY)
    (folder / "split.json").unlink()
    sizes = [len(data.load("pathfinder", tmp_path / "lra", s, resolution=32)) for s in ("train", "val", "test")]
    assert sizes == [16, 2, 2]
    ds = pathfinder.load(folder, "val")  # the difficulty folder itself is accepted too
    idx = pathfinder.split_indices(20, [16, 2, 2], seed=42)[1]
    labels = [int(f[3]) for f in pathfinder_metadata_lines(folder)]
    assert ds.y.tolist() == [labels[i] for i in idx]
    assert len(pathfinder.load(folder, "val", val_fraction=0.25)) == 5


def test_metadata_as_numpy_string_array(generated, tmp_path):
    folder = _copy_tree(generated / FOLDER_EASY, tmp_path / "npy")
    for f in (folder / "metadata").glob("*.npy"):
        rows = [line.split() for line in f.read_text().splitlines()]
        np.save(f, np.array(rows))  # np.save appends nothing: the name already ends with .npy
    a, b = pathfinder.load(folder, "train"), pathfinder.load(generated, "train")
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


def test_tokenized_pixels(generated):
    ds = pathfinder.load(generated, "test", tokenize=True)
    assert ds.vocab_size == 257 and ds.in_channels is None and ds.x.dtype == torch.int64
    assert int(ds.x.min()) >= 1 and int(ds.x.max()) <= 256  # 0 stays the padding index
    cont = pathfinder.load(generated, "test")
    assert torch.allclose(((ds.x - 1).float() / 255 - 0.5) / 0.5, cont.x[..., 0], atol=1e-6)


def test_empty_png_is_skipped(generated, tmp_path):
    folder = _copy_tree(generated / FOLDER_EASY, tmp_path / "empty")
    (folder / "split.json").unlink()
    (folder / "imgs" / "0" / "sample_3.png").write_bytes(b"")  # the release has one such file
    paths, labels = pathfinder.read_metadata(folder)
    assert len(paths) == 19 and folder / "imgs" / "0" / "sample_3.png" not in paths


@pytest.mark.parametrize("edit, line, match", [
    (lambda ls: ls[:2] + [" ".join(ls[2].split()[:3])] + ls[3:], 3, "at least 4 fields"),
    (lambda ls: ls[:4] + [ls[4].replace(" sample_4.png 4 " + ls[4].split()[3], " sample_4.png 4 2")] + ls[5:], 5,
     "label"),
    (lambda ls: ls[:1] + [ls[1].replace("sample_1.png", "sample_99.png")] + ls[2:], 2, "does not exist"),
])
def test_malformed_metadata_names_file_and_line(generated, tmp_path, edit, line, match):
    folder = _copy_tree(generated / FOLDER_EASY, tmp_path / "bad")
    meta = folder / "metadata" / "1.npy"
    meta.write_text("\n".join(edit(meta.read_text().splitlines())) + "\n")
    with pytest.raises(DataFormatError, match=match) as err:
        pathfinder.load(folder, "train")
    assert err.value.path == str(meta) and err.value.line == line
    assert f"1.npy, line {line}" in str(err.value)


def _outside_png(tmp_path):
    """A valid 32x32 PNG outside the dataset folder: without the containment check it would load silently."""
    out = tmp_path / "outside"
    out.mkdir()
    Image.fromarray(np.full((32, 32), 7, np.uint8)).save(out / "evil.png")
    return out


def _point_line_at(meta, k, folder_field, file_field):
    lines = meta.read_text().splitlines()
    fields = lines[k].split()
    lines[k] = " ".join([folder_field, file_field] + fields[2:])
    meta.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("how", ["absolute-folder", "absolute-file", "dotdot", "dotdot-in-file"])
def test_metadata_path_outside_the_dataset_is_refused(generated, tmp_path, how):
    folder = _copy_tree(generated / FOLDER_EASY, tmp_path / "pf")
    out = _outside_png(tmp_path)
    fields = {"absolute-folder": (str(out), "evil.png"),  # like '/etc hostname 2 1'
              "absolute-file": ("imgs/0", str(out / "evil.png")),
              "dotdot": ("imgs/../../outside", "evil.png"),
              "dotdot-in-file": ("imgs/0", "../../../outside/evil.png")}[how]
    meta = folder / "metadata" / "1.npy"
    _point_line_at(meta, 2, *fields)
    match = "is absolute; paths in metadata must be relative" if how.startswith("absolute") else \
        r"leads to .*evil\.png, outside the dataset folder"
    with pytest.raises(DataFormatError, match=match) as err:
        pathfinder.load(folder, "train")
    assert err.value.path == str(meta) and err.value.line == 3 and "1.npy, line 3:" in str(err.value)


def test_metadata_path_through_symlink_out_of_the_dataset_is_refused(generated, tmp_path):
    folder = _copy_tree(generated / FOLDER_EASY, tmp_path / "pf")
    out = _outside_png(tmp_path)
    meta = folder / "metadata" / "0.npy"
    # a symlinked image file leading out
    img = folder / "imgs" / "0" / "sample_1.png"
    img.unlink()
    img.symlink_to(out / "evil.png")
    with pytest.raises(DataFormatError, match=r"'imgs/0/sample_1.png' leads to .*outside/evil\.png, outside") as err:
        pathfinder.read_metadata(folder)
    assert err.value.path == str(meta) and err.value.line == 2
    # a symlinked folder leading out
    img.unlink()
    img.symlink_to(folder / "imgs" / "1" / "sample_0.png")  # inside the dataset: accepted
    (folder / "imgs" / "link").symlink_to(out, target_is_directory=True)
    assert len(pathfinder.read_metadata(folder)[0]) == 20
    _point_line_at(meta, 4, "imgs/link", "evil.png")
    with pytest.raises(DataFormatError, match=r"'imgs/link/evil.png' leads to .*outside") as err:
        pathfinder.read_metadata(folder)
    assert err.value.line == 5


def test_non_utf8_metadata_names_file_and_line(generated, tmp_path):
    folder = _copy_tree(generated / FOLDER_EASY, tmp_path / "latin1")
    meta = folder / "metadata" / "2.npy"
    lines = meta.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b"sample_", b"sampl\xe9_")
    meta.write_bytes(b"\n".join(lines))
    with pytest.raises(DataFormatError, match=r"bytes b'\\xe9' .* not valid UTF-8; the file must be UTF-8") as err:
        pathfinder.load(folder, "train")
    assert err.value.path == str(meta) and err.value.line == 3


def test_split_file_must_match_metadata(generated, tmp_path):
    folder = _copy_tree(generated / FOLDER_EASY, tmp_path / "split")
    (folder / "split.json").write_text(json.dumps({"train": 12, "val": 4, "test": 5}))
    with pytest.raises(DataFormatError, match="add up to 21"):
        pathfinder.load(folder, "train")


def test_wrong_image_size_and_missing_folders(generated, tmp_path):
    with pytest.raises(DataFormatError, match="expected 64x64"):
        pathfinder.load(generated, "test", resolution=64)
    with pytest.raises(FileNotFoundError, match="LRA layout"):
        data.load("pathfinder", tmp_path / "nowhere", "train")
    (tmp_path / "empty_root").mkdir()
    with pytest.raises(FileNotFoundError, match="metadata"):
        pathfinder.load(tmp_path / "empty_root", "train")
    with pytest.raises(FileNotFoundError, match="hard"):
        pathfinder.load(generated, "train", difficulty="hard")


def test_corrupt_png_names_the_image(generated, tmp_path):
    folder = _copy_tree(generated / FOLDER_EASY, tmp_path / "corrupt")
    bad = folder / "imgs" / "0" / "sample_0.png"
    bad.write_bytes(b"not a png")
    # sample 0 is in the training split of this folder's split.json (seed 0); read every split to be sure
    with pytest.raises(DataFormatError, match="cannot be read as an image") as err:
        for split in ("train", "val", "test"):
            pathfinder.load(folder, split)
    assert err.value.path == str(bad)


def test_empty_split(tmp_path):
    root = pathfinder_synthetic.generate(tmp_path, 4, 0, 2, seed=1, difficulty="easy", size=48)
    ds = pathfinder.load(root, "val")
    assert len(ds) == 0 and ds.seq_len == 48 * 48 and ds.x.shape == (0, 48 * 48, 1)
    assert len(pathfinder.load(root, "train")) == 4


def test_reader_does_not_import_the_generator():
    code = ("import sys, s4op_kernels.data.pathfinder; "
            "print(sorted(m for m in sys.modules if m.startswith('s4op_kernels.data')))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(s4op_kernels.__file__).resolve().parent.parent)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    loaded = set(ast.literal_eval(out.stdout.strip().splitlines()[-1]))
    assert "s4op_kernels.data.pathfinder" in loaded and "s4op_kernels.data.pathfinder_synthetic" not in loaded
    assert not any(hasattr(pathfinder, name) for name in ("generate", "sample", "make_config", "PathfinderConfig"))
