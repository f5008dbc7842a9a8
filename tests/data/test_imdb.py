"""IMDb reader: a tiny aclImdb folder written by the tests, read back byte for byte."""

import shutil

import numpy as np
import pytest
import torch

import s4op_kernels.data as data
from s4op_kernels._validate import ArgumentTypeError
from s4op_kernels.data import imdb
from s4op_kernels.data.base import PAD, DataFormatError

N_TRAIN_PER_CLASS = 10


def _review(split, cls, i):
    """Distinct bytes per file (the first 12 bytes already identify it), some non-ASCII, some long."""
    head = f"{split[:2]}{cls}{i:03d}|".encode()  # e.g. b"trpos003|": unique within 9 bytes
    body = "café – naïve ".encode("utf-8") * (1 + (i * 7) % 5)  # multi-byte UTF-8 characters
    return head + body


@pytest.fixture
def acl(tmp_path):
    """<tmp>/aclImdb in the distributed layout, plus the distractions a real download has.

    train: 10 pos + 10 neg, test: 2 pos + 3 neg.  One train review holds bytes 0x00 and 0xFF, one is 600
    bytes long; ``files`` maps (split, label, file name) -> the bytes written.
    """
    base = tmp_path / "aclImdb"
    files = {}
    counts = {"train": N_TRAIN_PER_CLASS, "test": None}
    for split in ("train", "test"):
        for label, cls in enumerate(("neg", "pos")):
            d = base / split / cls
            d.mkdir(parents=True)
            n = counts[split] or (2 if cls == "pos" else 3)
            for i in range(n):
                name = f"{i * 13 + 1}_{(9 if cls == 'pos' else 2)}.txt"  # ids not contiguous, ratings in range
                content = _review(split, cls, i)
                if (split, cls, i) == ("train", "neg", 4):
                    content = content + b"\x00\xff\x7f"
                if (split, cls, i) == ("train", "pos", 5):
                    content = content + b"x" * 600
                (d / name).write_bytes(content)
                files[(split, label, name)] = content
    (base / "train" / "unsup").mkdir()
    (base / "train" / "unsup" / "0_0.txt").write_bytes(b"unlabelled")
    (base / "train" / "urls_pos.txt").write_text("http://example.invalid\n")
    (base / "train" / "pos" / ".DS_Store").write_bytes(b"\x00junk")
    (base / "imdb.vocab").write_text("the\na\n")
    return base, files


def _expected(content, max_len):
    n = min(len(content), max_len)
    row = np.zeros(max_len, dtype=np.int64)
    row[:n] = np.frombuffer(content[:n], dtype=np.uint8).astype(np.int64) + 1
    return row, n


def _rows_by_content(files, split, max_len):
    """expected token row (as bytes key) -> (label, length) for every file of ``split``."""
    out = {}
    for (sp, label, _), content in files.items():
        if sp == split:
            row, n = _expected(content, max_len)
            out[row.tobytes()] = (label, n)
    return out


@pytest.mark.parametrize("use_parent", [True, False], ids=["root=parent", "root=aclImdb"])
def test_sizes_labels_and_info(acl, use_parent):
    base, _ = acl
    root = base.parent if use_parent else base
    tr = imdb.load(root, "train", max_len=64)
    va = imdb.load(root, "val", max_len=64)
    te = imdb.load(root, "test", max_len=64)
    n_train = 2 * N_TRAIN_PER_CLASS
    n_val = round(n_train * 0.1)
    assert (len(tr), len(va), len(te)) == (n_train - n_val, n_val, 5)
    for ds in (tr, va, te):
        assert ds.x.shape == (len(ds), 64) and ds.x.dtype == torch.int16  # stored narrow
        assert ds[0][0].dtype == torch.int64  # handed out as int64
        assert ds.y.dtype == torch.int64 and ds.lengths.shape == (len(ds),)
        assert ds.info.task == "imdb" and ds.num_classes == 2 and ds.seq_len == 64
        assert ds.vocab_size == imdb.VOCAB_SIZE == 257 and ds.in_channels is None
        assert ds.info.class_names == ("neg", "pos")
    assert te.y.tolist() == [0, 0, 0, 1, 1]  # neg first, then pos
    assert int(tr.y.sum() + va.y.sum()) == N_TRAIN_PER_CLASS  # unsup/ and the stray files were not read
    assert tr.split == "train" and va.split == "val" and te.split == "test"


@pytest.mark.parametrize("max_len", [16, 64, 1024])
def test_byte_mapping_truncation_and_padding(acl, max_len):
    base, files = acl
    expect = {**_rows_by_content(files, "train", max_len), **_rows_by_content(files, "test", max_len)}
    seen = truncated = 0
    for split in ("train", "val", "test"):
        ds = imdb.load(base, split, max_len=max_len)
        for x, y, n in zip(ds.x.long(), ds.y, ds.lengths):
            label, length = expect[x.numpy().tobytes()]  # KeyError = a row that is no file's bytes + 1
            assert int(y) == label and int(n) == length
            assert bool((x[:length] >= imdb.BYTE_OFFSET).all()) and bool((x[length:] == PAD).all())
            seen += 1
            truncated += length == max_len
    assert seen == len(expect) == 25
    longest = max(len(c) for c in files.values())
    # 16: every review is cut; 64: some are; 1024: none is (the longest file is 600 + a few bytes)
    assert truncated == sum(len(c) >= max_len for c in files.values())
    assert (truncated == 25) == (max_len == 16) and (truncated == 0) == (max_len > longest)


def test_extreme_bytes_and_decode(acl):
    base, files = acl
    content = files[("train", 0, f"{4 * 13 + 1}_2.txt")]  # the review ending in 0x00 0xFF 0x7F
    tr = imdb.load(base, "train", max_len=256, val_fraction=0.5, split_seed=0)
    va = imdb.load(base, "val", max_len=256, val_fraction=0.5, split_seed=0)
    x = torch.cat([tr.x, va.x]).long()
    lengths = torch.cat([tr.lengths, va.lengths])
    hits = [i for i in range(len(x)) if imdb.decode(x[i]) == content]
    assert len(hits) == 1
    row = x[hits[0]]
    n = int(lengths[hits[0]])
    assert row[n - 3:n].tolist() == [0 + 1, 255 + 1, 0x7F + 1]  # 0x00 is not PAD, 0xFF does not wrap
    tokens, length = imdb.encode(content, 256)
    assert length == n and torch.equal(torch.from_numpy(tokens), row)
    assert imdb.encode("é", 4)[0].tolist() == [0xC3 + 1, 0xA9 + 1, PAD, PAD]  # UTF-8 bytes, not code points


def test_val_split_is_seeded_and_disjoint(acl):
    base, files = acl
    all_train = _rows_by_content(files, "train", 32)

    def keys(ds):
        return [r.numpy().tobytes() for r in ds.x.long()]

    tr = keys(imdb.load(base, "train", max_len=32, val_fraction=0.25, split_seed=7))
    va = keys(imdb.load(base, "val", max_len=32, val_fraction=0.25, split_seed=7))
    assert len(va) == 5 and len(tr) == 15
    assert not set(tr) & set(va) and set(tr) | set(va) == set(all_train)
    assert va == keys(imdb.load(base, "val", max_len=32, val_fraction=0.25, split_seed=7))  # same seed, same rows
    other = keys(imdb.load(base, "val", max_len=32, val_fraction=0.25, split_seed=8))
    assert set(other) != set(va)  # fixed seeds 7 and 8 pick different subsets of these 20 files


def test_train_and_val_never_touch_test(acl):
    base, _ = acl
    # a file name that would be rejected if the test folder were listed
    (base / "test" / "pos" / "not-a-review.txt").write_text("x")
    assert len(imdb.load(base, "train", max_len=8)) == 18
    shutil.rmtree(base / "test")
    assert len(imdb.load(base, "train", max_len=8)) == 18
    assert len(imdb.load(base.parent, "val", max_len=8)) == 2
    with pytest.raises(DataFormatError, match=r"no IMDb 'test' split"):
        imdb.load(base, "test")


@pytest.mark.parametrize("bad", ["review.txt", "12.txt", "3_8.text", "3_x.txt", "a_8.txt", "3_8_1.txt"])
def test_malformed_file_name(acl, bad):
    base, _ = acl
    path = base / "train" / "pos" / bad
    path.write_text("fine text")
    with pytest.raises(DataFormatError, match=r"<id>_<rating>\.txt") as e:
        imdb.load(base, "val")
    assert e.value.path == str(path) and bad in str(e.value)


def test_unreadable_and_empty_files(acl):
    base, _ = acl
    # root can read any file, so unreadability is a directory where a review should be
    unreadable = base / "test" / "neg" / "500_1.txt"
    unreadable.mkdir()
    with pytest.raises(DataFormatError, match="cannot read") as e:
        imdb.load(base, "test")
    assert e.value.path == str(unreadable)
    unreadable.rmdir()
    empty = base / "test" / "pos" / "501_10.txt"
    empty.write_bytes(b"")
    with pytest.raises(DataFormatError, match="empty review") as e:
        imdb.load(base, "test")
    assert e.value.path == str(empty)


def test_root_errors(tmp_path, acl):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        imdb.load(tmp_path / "missing", "train")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "train" / "pos").mkdir(parents=True)  # pos without neg: neither layout matches
    with pytest.raises(DataFormatError) as e:
        imdb.load(elsewhere, "train")
    msg = str(e.value)
    assert str(elsewhere / "train") in msg and str(elsewhere / "aclImdb" / "train") in msg and "train/" in msg
    base, _ = acl
    (base / "train" / "neg").rename(base / "train" / "negative")
    with pytest.raises(DataFormatError, match="no IMDb 'train' split"):
        imdb.load(base, "train")


def test_argument_errors(acl):
    base, _ = acl
    with pytest.raises(ValueError, match="split"):
        imdb.load(base, "dev")
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="max_len"):
            imdb.load(base, "test", max_len=bad)
    with pytest.raises(ValueError, match=r"load\(max_len\): expected an integer >= 1, got 0"):
        imdb.load(base, "test", max_len=0)
    for bad in (2.5, True, "16"):
        with pytest.raises(ArgumentTypeError, match=r"load\(max_len\): expected an integer >= 1, got"):
            imdb.load(base, "test", max_len=bad)
    assert imdb.load(base, "test", max_len=np.int64(16)).seq_len == 16
    with pytest.raises(ValueError, match="val_fraction"):
        imdb.load(base, "val", val_fraction=1.0)


def test_dispatch_through_data_load(acl):
    base, _ = acl
    ds = data.load("imdb", base.parent, "test", max_len=32, return_lengths=True)
    x, y, n = ds[0]
    assert x.shape == (32,) and int(y) == 0 and int(n) == int(ds.lengths[0])
