"""Pathfinder image generator (s4op_kernels.data.pathfinder_synthetic): the label rule checked on the
rendered pixels, the configuration, and the LRA layout it writes."""

import json

import numpy as np
import pytest
from PIL import Image

from s4op_kernels.data import pathfinder, pathfinder_synthetic
from factories import pathfinder_metadata_lines

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
    images, labels, markers = pathfinder_synthetic.sample(40, seed, difficulty=difficulty, paddle_gap=0.0)
    assert 0 < labels.sum() < len(labels)
    for img, label, mk in zip(images, labels, markers):
        lab = components(img > 0)
        (r1, c1), (r2, c2) = np.rint(mk).astype(int)
        assert img[r1, c1] == 255 and img[r2, c2] == 255  # the disc centres are drawn
        assert int(lab[r1, c1] == lab[r2, c2]) == label


def test_without_distractors_the_two_snakes_are_two_separate_curves():
    images, labels, markers = pathfinder_synthetic.sample(30, 5, difficulty="intermediate", paddle_gap=0.0,
                                                          num_distractors=0)
    for img in images:
        lab = components(img > 0)
        sizes = np.bincount(lab[lab >= 0])
        assert (sizes > 0).sum() == 2
        # each is a long curve, not a blob: an 8-connected chain of pixels covers at most sqrt(2) px of a
        # curve per pixel, and each snake is contour_length (9) steps of 3 px
        assert sizes[sizes > 0].min() >= 9 * 3 / np.sqrt(2)


def test_images_shape_range_and_reproducibility():
    a = pathfinder_synthetic.sample(12, 11)
    b = pathfinder_synthetic.sample(12, 11)
    c = pathfinder_synthetic.sample(12, 12)
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
    images, labels, markers = pathfinder_synthetic.sample(3, 0, size=size)
    assert images.shape == (3, size, size)
    assert (markers <= size - 1).all()


def test_label_balance():
    _, labels, _ = pathfinder_synthetic.sample(300, 21, difficulty="easy")
    assert 0.4 < labels.mean() < 0.6


def test_config_validation():
    with pytest.raises(ValueError, match="difficulty"):
        pathfinder_synthetic.make_config(difficulty="medium")
    with pytest.raises(ValueError, match="seed_distance"):
        pathfinder_synthetic.make_config(seed_distance=2.0)
    with pytest.raises(ValueError, match="continuity"):
        pathfinder_synthetic.make_config(continuity=0.1)
    cfg = pathfinder_synthetic.make_config(difficulty="hard")
    assert cfg.contour_length == 14 and cfg.distractor_length == 4 and cfg.num_distractors == 5
    assert pathfinder.difficulty_folder("hard", 14) == "curv_contour_length_14"
    assert pathfinder.difficulty_folder("easy", 6) == "curv_baseline"
    assert pathfinder.difficulty_folder("easy", 5) == "curv_contour_length_5"


# --------------------------------------------------------------------------------------------- on disk

# `generated`: tests/data/conftest.py




def test_generate_writes_lra_layout(generated):
    folder = generated / FOLDER_EASY
    assert sorted(p.name for p in (folder / "metadata").iterdir()) == ["0.npy", "1.npy", "2.npy"]
    lines = pathfinder_metadata_lines(folder)
    assert len(lines) == 20
    assert lines[0][:3] == ["imgs/0", "sample_0.png", "0"] and lines[8][:3] == ["imgs/1", "sample_0.png", "0"]
    for f in lines:
        assert len(f) == 11 and f[3] in ("0", "1")
        with Image.open(folder / f[0] / f[1]) as im:
            assert im.mode == "L" and im.size == (32, 32)
    assert json.loads((folder / "split.json").read_text())["train"] == 12
