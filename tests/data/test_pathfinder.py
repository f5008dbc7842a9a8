"""Pathfinder (LRA): the label rule checked on the rendered pixels, the generator, the LRA-layout reader."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from s4op_kernels import data
from s4op_kernels.data import pathfinder
from s4op_kernels.data.base import DataFormatError

FOLDER_EASY = "curv_baseline"


def components(mask):
    """8-connected component labels of a boolean image (H, W), computed here by flooding, independent of
    the generator: -1 on background, otherwise the smallest flat index of the component."""
    H, W = mask.shape
    big = H * W
    lab = np.where(mask, np.arange(big).reshape(H, W), big)
    while True:
        padded = np.pad(lab, 1, constant_values=big)
        neigh = np.min([padded[1 + dy:1 + dy + H, 1 + dx:1 + dx + W] for dy in (-1, 0, 1) for dx in (-1, 0, 1)],
                       axis=0)
        new = np.where(mask, np.minimum(lab, neigh), big)
        if np.array_equal(new, lab):
            return np.where(mask, lab, -1)
        lab = new


def test_components_helper():
    m = np.zeros((6, 6), dtype=bool)
    m[0, 0] = m[1, 1] = m[2, 2] = True  # a diagonal is one 8-connected piece
    m[5, 0] = m[5, 1] = True
    m[0, 5] = True
    lab = components(m)
    assert lab[0, 0] == lab[2, 2] and lab[5, 0] == lab[5, 1] and len({lab[0, 0], lab[5, 0], lab[0, 5]}) == 3


@pytest.mark.parametrize("seed, difficulty", [(3, "easy"), (4, "hard")])
def test_label_is_connectivity_of_the_discs_in_the_pixels(seed, difficulty):
    # Unbroken strokes (no gap between paddles): then "both discs on one snake" is exactly "the discs are
    # joined by non-black pixels", which we check by flooding the image. Distractors stay on: they must not
    # touch the targets either.
    images, labels, markers = pathfinder.sample(40, seed, difficulty=difficulty, paddle_gap=0.0)
    assert 0 < labels.sum() < len(labels)
    for img, label, mk in zip(images, labels, markers):
        lab = components(img > 0)
        (r1, c1), (r2, c2) = np.rint(mk).astype(int)
        assert img[r1, c1] == 255 and img[r2, c2] == 255  # the disc centres are drawn
        assert int(lab[r1, c1] == lab[r2, c2]) == label


def test_without_distractors_the_two_snakes_are_two_separate_curves():
    images, labels, markers = pathfinder.sample(30, 5, difficulty="intermediate", paddle_gap=0.0, num_distractors=0)
    for img in images:
        lab = components(img > 0)
        sizes = np.bincount(lab[lab >= 0])
        assert (sizes > 0).sum() == 2
        # each is a long curve, not a blob: an 8-connected chain of pixels covers at most sqrt(2) px of a
        # curve per pixel, and each snake is contour_length (9) steps of 3 px
        assert sizes[sizes > 0].min() >= 9 * 3 / np.sqrt(2)


def test_images_shape_range_and_reproducibility():
    a = pathfinder.sample(12, 11)
    b = pathfinder.sample(12, 11)
    c = pathfinder.sample(12, 12)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])
    images, labels, markers = a
    assert images.shape == (12, 32, 32) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and set(np.unique(labels)) <= {0, 1}
    assert markers.shape == (12, 2, 2) and (markers >= 0).all() and (markers <= 31).all()
    assert images.max() == 255 and images.min() == 0
    lit = (images > 0).mean()
    assert 0.05 < lit < 0.5  # curves on a black background, not an empty or a filled image


@pytest.mark.parametrize("size", [64, 128])
def test_larger_sizes(size):
    images, labels, markers = pathfinder.sample(3, 0, size=size)
    assert images.shape == (3, size, size)
    assert (markers <= size - 1).all()


def test_label_balance():
    _, labels, _ = pathfinder.sample(300, 21, difficulty="easy")
    assert 0.4 < labels.mean() < 0.6


def test_config_validation():
    with pytest.raises(ValueError, match="difficulty"):
        pathfinder.make_config(difficulty="medium")
    with pytest.raises(ValueError, match="seed_distance"):
        pathfinder.make_config(seed_distance=2.0)
    with pytest.raises(ValueError, match="continuity"):
        pathfinder.make_config(continuity=0.1)
    cfg = pathfinder.make_config(difficulty="hard")
    assert cfg.contour_length == 14 and cfg.distractor_length == 4 and cfg.num_distractors == 5
    assert pathfinder.difficulty_folder("hard", 14) == "curv_contour_length_14"
    assert pathfinder.difficulty_folder("easy", 6) == "curv_baseline"
    assert pathfinder.difficulty_folder("easy", 5) == "curv_contour_length_5"


# --------------------------------------------------------------------------------------------- on disk

@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("pf")
    return data.generate("pathfinder", root, train=12, val=4, test=4, seed=0, difficulty="easy",
                         images_per_batch=8)


def _metadata_lines(folder):
    files = sorted((folder / "metadata").glob("*.npy"), key=lambda p: int(p.stem))
    return [line.split() for f in files for line in f.read_text().splitlines()]


def test_generate_writes_lra_layout(generated):
    folder = generated / FOLDER_EASY
    assert sorted(p.name for p in (folder / "metadata").iterdir()) == ["0.npy", "1.npy", "2.npy"]
    lines = _metadata_lines(folder)
    assert len(lines) == 20
    assert lines[0][:3] == ["imgs/0", "sample_0.png", "0"] and lines[8][:3] == ["imgs/1", "sample_0.png", "0"]
    for f in lines:
        assert len(f) == 11 and f[3] in ("0", "1")
        with Image.open(folder / f[0] / f[1]) as im:
            assert im.mode == "L" and im.size == (32, 32)
    assert json.loads((folder / "split.json").read_text())["train"] == 12


def test_load_round_trip(generated):
    folder = generated / FOLDER_EASY
    lines = _metadata_lines(folder)
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
    labels = [int(f[3]) for f in _metadata_lines(folder)]
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
    root = pathfinder.generate(tmp_path, 4, 0, 2, seed=1, difficulty="easy", size=48)
    ds = pathfinder.load(root, "val")
    assert len(ds) == 0 and ds.seq_len == 48 * 48 and ds.x.shape == (0, 48 * 48, 1)
    assert len(pathfinder.load(root, "train")) == 4
