"""UCR/UEA reader: .ts (univariate, multivariate, variable length, missing values) and the older .tsv/.txt
files, written by the tests in the archive's formats and read back value for value."""

import numpy as np
import pytest
import torch

import s4op_kernels.data as data
from s4op_kernels.data import ucr
from s4op_kernels.data.base import DataFormatError

SEED = 20240  # the fixture data; visible so a failure can be reproduced


def _fmt(values):
    return ",".join("?" if np.isnan(v) else repr(float(v)) for v in values)


def _write_ts(path, header, cases):
    """cases: list of (list of per-dimension value arrays, label); header: lines up to and including @data."""
    lines = list(header) + [":".join(_fmt(d) for d in dims) + ":" + label for dims, label in cases]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(header)  # the line number of the line before the first case


UNI_HEADER = [
    "# Toy univariate problem written by the tests",
    "# second comment line, then a blank line",
    "",
    "@problemName Toy",
    "@timeStamps false",
    "@missing false",
    "@univariate true",
    "@equalLength true",
    "@seriesLength 6",
    "@classLabel true b a",  # deliberately not sorted: the header order defines the class indices
    "@data",
]


@pytest.fixture
def uni(tmp_path):
    """Toy_TRAIN.ts (12 cases) / Toy_TEST.ts (5 cases), univariate, length 6; case i starts with 100 + i."""
    rng = np.random.default_rng(SEED)
    out = {}
    for split, n in (("TRAIN", 12), ("TEST", 5)):
        cases = []
        for i in range(n):
            v = rng.normal(3.0, 2.0, size=6)
            v[0] = 100.0 + i + (1000 if split == "TEST" else 0)  # identifies the case
            cases.append(([v], "a" if i % 3 == 0 else "b"))
        _write_ts(tmp_path / f"Toy_{split}.ts", UNI_HEADER, cases)
        out[split] = cases
    return tmp_path, out


MULTI_HEADER = [
    "@problemName Multi",
    "@timestamps false",  # lower case, as some archive files write it
    "@missing true",
    "@univariate false",
    "@dimensions 2",
    "@equalLength false",
    "@classLabel true up down flat",
    "@data",
]


@pytest.fixture
def multi(tmp_path):
    """Multi_TRAIN.ts (8 cases, lengths 3..10) / Multi_TEST.ts (3 cases, the longest 13), 2 dimensions,
    missing values ('?') at the start, middle and end of some series and one all-missing dimension."""
    rng = np.random.default_rng(SEED + 1)
    out = {}
    for split, lengths in (("TRAIN", [3, 4, 5, 6, 7, 8, 9, 10]), ("TEST", [5, 13, 4])):
        cases = []
        for i, n in enumerate(lengths):
            d0 = np.arange(n, dtype=float) * 2.0 + i  # a line: interpolated values are exact
            d1 = rng.normal(size=n)
            if i == 1:
                d0[1] = np.nan  # interior: interpolates to the mean of its neighbours
            if i == 2:
                d0[0] = d0[-1] = np.nan  # edges: take the nearest value
            if i == 3 and split == "TRAIN":
                d1[:] = np.nan  # a whole dimension missing: 0
            cases.append(([d0, d1], ("up", "down", "flat")[i % 3]))
        _write_ts(tmp_path / f"Multi_{split}.ts", MULTI_HEADER, cases)
        out[split] = cases
    return tmp_path, out


# --------------------------------------------------------------------------------------------- round trips
def test_univariate_round_trip(uni):
    root, cases = uni
    splits = {s: ucr.load(root, s, normalize="none") for s in ("train", "val", "test")}
    assert [len(splits[s]) for s in ("train", "val", "test")] == [11, 1, 5]  # val = round(12 * 0.1) = 1
    for s, ds in splits.items():
        assert ds.x.shape == (len(ds), 6, 1) and ds.x.dtype == torch.float32
        assert ds.info.task == "ucr" and ds.seq_len == 6 and ds.in_channels == 1 and ds.vocab_size is None
        assert ds.num_classes == 2 and tuple(ds.info.class_names) == ("b", "a")
        assert ds.lengths.tolist() == [6] * len(ds)
        file_cases = cases["TEST" if s == "test" else "TRAIN"]
        for x, y in zip(ds.x, ds.y):
            i = int(round(float(x[0, 0]))) - 100 - (1000 if s == "test" else 0)
            (v,), label = file_cases[i]
            np.testing.assert_allclose(x[:, 0].numpy(), v, rtol=1e-6)
            assert int(y) == ("b", "a").index(label)


def test_series_normalisation(uni):
    root, cases = uni
    ds = ucr.load(root, "test")  # default: per-series z-normalisation
    raw = ucr.load(root, "test", normalize=False)
    for x, r in zip(ds.x[:, :, 0].double(), raw.x[:, :, 0].double()):
        np.testing.assert_allclose(x.numpy(), ((r - r.mean()) / r.std(unbiased=False)).numpy(), atol=1e-5)
        assert abs(float(x.mean())) < 1e-6 and abs(float(x.std(unbiased=False)) - 1) < 1e-5


def test_multivariate_variable_length_missing(multi):
    root, cases = multi
    tr = ucr.load(root, "train", normalize="none", missing="zero", val_fraction=0.25, split_seed=1)
    va = ucr.load(root, "val", normalize="none", missing="zero", val_fraction=0.25, split_seed=1)
    te = ucr.load(root, "test", normalize="none", missing="zero")
    assert (len(tr), len(va), len(te)) == (6, 2, 3)
    # the longest series (13) is in TEST; every split is padded to it
    assert tr.seq_len == va.seq_len == te.seq_len == 13 and tr.x.shape[1:] == (13, 2)
    assert te.lengths.tolist() == [5, 13, 4]
    assert sorted(tr.lengths.tolist() + va.lengths.tolist()) == [3, 4, 5, 6, 7, 8, 9, 10]
    assert tuple(tr.info.class_names) == ("up", "down", "flat")
    for ds, file_cases in ((tr, cases["TRAIN"]), (va, cases["TRAIN"]), (te, cases["TEST"])):
        for x, y, n in zip(ds.x, ds.y, ds.lengths):
            # the train case with length n is case n - 3 (TEST lengths are unique too)
            i = [len(c[0][0]) for c in file_cases].index(int(n))
            dims, label = file_cases[i]
            expect = np.nan_to_num(np.stack(dims, axis=1))  # missing -> 0
            np.testing.assert_allclose(x[:n].numpy(), expect, rtol=1e-6)
            assert bool((x[n:] == 0).all())  # zero padding after the valid length
            assert int(y) == ("up", "down", "flat").index(label)


def test_missing_values_interpolated(multi):
    root, cases = multi
    te = ucr.load(root, "test", normalize="none")  # missing="interpolate" is the default
    # TEST case 1 (length 13) has d0[1] missing, case 2 (length 4) has both ends of d0 missing; d0 is a line
    assert te.lengths.tolist() == [5, 13, 4]
    np.testing.assert_allclose(te.x[1, :13, 0].numpy(), np.arange(13) * 2.0 + 1, rtol=1e-6)
    d0 = np.arange(4) * 2.0 + 2
    np.testing.assert_allclose(te.x[2, :4, 0].numpy(), [d0[1], d0[1], d0[2], d0[2]], rtol=1e-6)
    assert not torch.isnan(te.x).any()
    # the all-missing train dimension (case 3, length 6) is 0 and does not disturb its neighbour dimension
    tr = ucr.load(root, "train", val_fraction=0.5, split_seed=0)
    va = ucr.load(root, "val", val_fraction=0.5, split_seed=0)
    x = torch.cat([tr.x, va.x])
    lengths = torch.cat([tr.lengths, va.lengths])
    row = x[lengths.tolist().index(6)]
    assert bool((row[:, 1] == 0).all())
    assert abs(float(row[:6, 0].mean())) < 1e-6 and abs(float(row[:6, 0].std(unbiased=False)) - 1) < 1e-5
    assert not torch.isnan(x).any()


def test_channel_normalisation_uses_training_portion(multi):
    root, cases = multi
    kw = dict(normalize="channel", missing="zero", val_fraction=0.25, split_seed=1)
    tr, va = ucr.load(root, "train", **kw), ucr.load(root, "val", **kw)
    # TRAIN case i has length i + 3: recover which cases form the training portion, then compute the
    # statistics of dimension 0 over their non-missing values here
    portion = [int(n) - 3 for n in tr.lengths]
    d0 = np.concatenate([cases["TRAIN"][i][0][0] for i in portion])
    mean, std = np.nanmean(d0), np.nanstd(d0)
    for ds in (tr, va):  # val is scaled with the training statistics too
        for x, n in zip(ds.x, ds.lengths):
            v = cases["TRAIN"][int(n) - 3][0][0]
            np.testing.assert_allclose(x[:n, 0].numpy(), np.nan_to_num((v - mean) / std), atol=1e-5)
    te = ucr.load(root, "test", **kw)
    assert te.seq_len == 13 and not torch.isnan(te.x).any()


def test_val_split_seeded_and_disjoint(uni):
    root, _ = uni

    def ids(split, seed):
        ds = ucr.load(root, split, normalize="none", val_fraction=0.25, split_seed=seed)
        return [int(round(float(v))) - 100 for v in ds.x[:, 0, 0]]

    tr, va = ids("train", 5), ids("val", 5)
    assert len(va) == 3 and len(tr) == 9
    assert not set(tr) & set(va) and set(tr) | set(va) == set(range(12))
    assert va == ids("val", 5)
    assert set(va) != set(ids("val", 6))  # fixed seeds 5 and 6 choose different cases out of 12


@pytest.mark.parametrize("ext,sep", [(".tsv", "\t"), (".txt", ","), (".txt", "   ")], ids=["tsv", "txt-comma",
                                                                                          "txt-space"])
def test_old_format_round_trip(tmp_path, ext, sep):
    """label first, then values; variable length padded with trailing NaN as the archive does."""
    rng = np.random.default_rng(SEED + 2)
    labels = {"TRAIN": ["1", "-1", "2", "1", "-1", "2", "1"], "TEST": ["2", "-1", "1"]}
    series = {}
    for split, labs in labels.items():
        rows, series[split] = [], []
        for i, lab in enumerate(labs):
            n = 4 + i % 3
            v = rng.normal(size=n)
            v[0] = 50.0 + i
            if i == 2:
                v[1] = np.nan  # an interior missing value stays missing, not end-of-series
            series[split].append(v)
            # 2015 files write labels in scientific notation ("1.0000000e+00"); TEST spells them differently
            lab_text = f"{float(lab):.7e}" if (ext == ".txt" and split == "TRAIN") else lab
            padded = list(v) + [np.nan] * (6 - n)  # the 2018 archive pads to the longest series with NaN
            rows.append(sep.join([lab_text] + ["NaN" if np.isnan(x) else repr(float(x)) for x in padded]))
        (tmp_path / f"Old_{split}{ext}").write_text("\n".join(rows) + "\n")
    tr = ucr.load(tmp_path, "train", normalize="none", missing="zero", val_fraction=0.3, split_seed=0)
    va = ucr.load(tmp_path, "val", normalize="none", missing="zero", val_fraction=0.3, split_seed=0)
    te = ucr.load(tmp_path, "test", normalize="none", missing="zero")
    assert (len(tr), len(va), len(te)) == (5, 2, 3)
    assert tuple(te.info.class_names) == ("-1", "1", "2")  # sorted numerically, not as text
    assert te.seq_len == 6 and te.in_channels == 1
    assert te.y.tolist() == [2, 0, 1]
    for ds, split in ((tr, "TRAIN"), (va, "TRAIN"), (te, "TEST")):
        for x, y, n in zip(ds.x, ds.y, ds.lengths):
            i = int(round(float(x[0, 0]))) - 50
            v = series[split][i]
            assert int(n) == len(v)  # trailing NaN padding is not counted
            np.testing.assert_allclose(x[: len(v), 0].numpy(), np.nan_to_num(v), rtol=1e-6)
            assert int(y) == ["-1", "1", "2"].index(labels[split][i])


def test_dispatch_and_return_lengths(multi):
    root, _ = multi
    ds = data.load("ucr", root, "test", return_lengths=True)
    x, y, n = ds[1]
    assert x.shape == (13, 2) and int(n) == 13 and int(y) == 1


# ------------------------------------------------------------------------------------------ malformed data
def _line_of_case(k):
    """1-based line number of case k (0-based) in a file written with UNI_HEADER."""
    return len(UNI_HEADER) + k + 1


@pytest.mark.parametrize("bad,match", [
    ("1,2,3,4,5,6:7,8,9,10,11,12:a", r"expected 1 dimension\(s\) and a label, got 2"),
    ("1,2,x3,4,5,6:a", r"value 3 is not a number: 'x3'"),
    ("1,2,3,4,5,6:c", r"class label 'c' is not one of the @classLabel values"),
    ("1,2,3,4,5,6:", r"empty class label"),
    ("1,2,3,4,5:a", r"5 values but the header says @seriesLength 6"),
    ("1,2,,4,5,6:a", r"value 3 is not a number: '<empty>'"),
    ("1,2,3,inf,5,6:a", r"1 non-finite value \(1 infinite"),
    ("1,2,3,4,5,6", r"no class label"),
    ("(2007-01-01 00:00:00,1.0),(2007-01-01 00:01:00,2.0):a", r"\(time,value\) pair"),
], ids=["dims", "non-numeric", "unknown-label", "empty-label", "series-length", "empty-value", "inf", "no-label",
        "timestamps-data"])
def test_malformed_line_names_file_and_line(uni, bad, match):
    root, _ = uni
    path = root / "Toy_TRAIN.ts"
    lines = path.read_text().splitlines()
    k = 4  # replace case 4
    lines[_line_of_case(k) - 1] = bad
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=match) as e:
        ucr.load(root, "test")  # TRAIN is parsed for every split (labels, common length)
    assert e.value.path == str(path.resolve()) and e.value.line == _line_of_case(k)
    assert f"line {_line_of_case(k)}" in str(e.value)


def test_values_beyond_float32_are_refused_with_count_and_lines(uni):
    # 1e308 is finite as parsed (float64) but inf in the float32 x: refused for every normalisation, also
    # "series", where it would otherwise overflow the statistics into NaN and be filled as "missing"
    root, _ = uni
    path = root / "Toy_TRAIN.ts"
    lines = path.read_text().splitlines()
    lines[_line_of_case(4) - 1] = "1,2,1e308,4,-1e300,6:a"
    lines[_line_of_case(7) - 1] = "1,2,3,4,5,3.5e38:b"
    path.write_text("\n".join(lines) + "\n")
    for normalize in ("none", "series"):
        with pytest.raises(DataFormatError) as e:
            ucr.load(root, "train", normalize=normalize)
        assert e.value.path == str(path.resolve()) and e.value.line == _line_of_case(4)
        assert (f"3 non-finite values (3 infinite: inf, or beyond float32's range +-3.403e+38) in 2 lines "
                f"(lines {_line_of_case(4)}, {_line_of_case(7)})") in str(e.value)


def test_missing_values_are_not_non_finite(multi):
    root, _ = multi  # '?' (NaN) marks a missing value in the format; it is filled, not refused
    assert torch.isfinite(ucr.load(root, "train", normalize="none").x).all()


def test_channel_normalisation_overflow_is_refused(tmp_path):
    # the values fit float32, but scaled by TRAIN's tiny spread a TEST value does not
    (tmp_path / "C_TRAIN.tsv").write_text("".join(f"{k % 2}\t{1e-7 * k}\t{-1e-7 * k}\n" for k in range(10)))
    (tmp_path / "C_TEST.tsv").write_text("0\t0.0\t0.0\n1\t1e37\t0.0\n")
    assert torch.isfinite(ucr.load(tmp_path, "test", normalize="series").x).all()
    with pytest.raises(DataFormatError, match=r"C_TEST\.tsv, line 2: 1 non-finite value after "
                                              r"normalize='channel' \(1 infinite") as e:
        ucr.load(tmp_path, "test", normalize="channel")
    assert e.value.line == 2


def test_non_utf8_bytes_outside_comments_are_refused(uni, tmp_path):
    root, _ = uni
    path = root / "Toy_TRAIN.ts"
    # a Latin-1 comment (author names) is tolerated...
    path.write_bytes(path.read_bytes().replace(b"written by the tests", "written by Fran\xe7ois".encode("latin-1")))
    assert len(ucr.load(root, "train")) == 11
    # ...but labels 'caf\xe9' and 'caf\xe8' in Latin-1 would both decode to 'caf\ufffd': one class, silently
    old = tmp_path / "old"
    old.mkdir()
    rows = ["caf\xe9\t0.1\t0.2\n", "caf\xe8\t0.3\t0.4\n", "caf\xe9\t0.5\t0.6\n"]
    (old / "L_TRAIN.tsv").write_bytes("".join(rows).encode("latin-1"))
    (old / "L_TEST.tsv").write_bytes(rows[1].encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"L_TRAIN\.tsv, line 1: bytes b'\\xe9' \(byte 4 of the line\) are not "
                                              r"valid UTF-8; the file must be UTF-8") as e:
        ucr.load(old, "train")
    assert e.value.line == 1


def test_unequal_length_with_equal_length_header(uni):
    root, _ = uni
    path = root / "Toy_TEST.ts"
    text = path.read_text().replace("@seriesLength 6\n", "")  # without @seriesLength, case 0 sets the length
    lines = text.splitlines()
    lines[-1] = "1,2,3:a"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match="@equalLength true") as e:
        ucr.load(root, "train")
    assert e.value.line == len(lines) and e.value.path == str(path.resolve())


def test_dimension_lengths_differ_within_a_case(multi):
    root, _ = multi
    path = root / "Multi_TEST.ts"
    with path.open("a") as f:
        f.write("1,2,3:4,5:up\n")
    with pytest.raises(DataFormatError, match=r"different lengths \[3, 2\]") as e:
        ucr.load(root, "test")
    assert e.value.line == len(MULTI_HEADER) + 4


def test_test_label_not_in_train(tmp_path):
    (tmp_path / "L_TRAIN.tsv").write_text("1\t0.1\t0.2\n2\t0.3\t0.4\n1\t0.5\t0.6\n")
    (tmp_path / "L_TEST.tsv").write_text("1\t0.1\t0.2\n3\t0.3\t0.4\n")
    assert len(ucr.load(tmp_path, "train")) == 2  # train/val do not need TEST's labels to be known...
    with pytest.raises(DataFormatError, match=r"class label '3' does not occur in L_TRAIN.tsv") as e:
        ucr.load(tmp_path, "test")  # ...the test split does
    assert e.value.line == 2 and e.value.path.endswith("L_TEST.tsv")


def test_old_format_malformed_lines(tmp_path):
    (tmp_path / "B_TEST.tsv").write_text("1\t0.1\t0.2\n")
    cases = {
        "1\t0.1\t0.2\n2\tabc\t0.4\n": (2, "value 1 is not a number: 'abc'"),
        "1\t0.1\t0.2\n\n2\n": (3, "label followed by the series values"),
        "1\t0.1\t0.2\n2\tNaN\tNaN\n": (2, "all NaN"),
    }
    for text, (line, match) in cases.items():
        (tmp_path / "B_TRAIN.tsv").write_text(text)
        with pytest.raises(DataFormatError, match=match) as e:
            ucr.load(tmp_path, "train")
        assert e.value.line == line


@pytest.mark.parametrize("edit,match,line", [
    (("@timeStamps false", "@timeStamps true"), "@timeStamps true is not supported", 5),
    (("@classLabel true b a", "@targetLabel true"), "regression problem", 10),
    (("@classLabel true b a", "@classLabel false"), "carry no class label", 10),
    (("@classLabel true b a", "@classLabel true"), "must list the class labels", 10),
    (("@classLabel true b a", "@classLabel true a b a"), "lists a label twice", 10),
    (("@missing false", "@missing maybe"), "@missing needs one value, true or false", 6),
    (("@seriesLength 6", "@seriesLength 0"), "@seriesLength needs one positive integer", 9),
    (("@data", "@data now"), "@data takes no value", 11),
    (("@data", "@comment"), r"expected a header tag \(@...\) or @data before the data", 12),
    (("@problemName Toy", "problemName Toy"), "expected a header tag", 4),
    (("@univariate true", "@univariate true\n@dimensions 3"), "@univariate true but @dimensions 3", None),
], ids=["timestamps", "regression", "unlabelled", "no-labels", "duplicate-label", "bad-bool", "bad-int",
        "data-value", "no-data", "untagged", "univariate-dims"])
def test_header_errors(uni, edit, match, line):
    root, _ = uni
    path = root / "Toy_TRAIN.ts"
    old, new = edit
    text = path.read_text()
    assert old + "\n" in text
    path.write_text(text.replace(old + "\n", new + "\n", 1))
    with pytest.raises(DataFormatError, match=match) as e:
        ucr.load(root, "train")
    assert e.value.line == line and e.value.path == str(path.resolve())


def test_header_without_data_tag(uni):
    root, _ = uni
    (root / "Toy_TEST.ts").write_text("\n".join(UNI_HEADER[:-1]) + "\n")
    with pytest.raises(DataFormatError, match="no @data line"):
        ucr.load(root, "train")
    (root / "Toy_TEST.ts").write_text("\n".join(UNI_HEADER) + "\n# nothing after the header\n")
    with pytest.raises(DataFormatError, match="no cases after @data"):
        ucr.load(root, "train")


def test_header_tags_are_case_insensitive_and_optional(tmp_path):
    """No @classLabel / @dimensions / @univariate: labels sorted from TRAIN, dimensions from the first case."""
    header = ["%  ARFF-style comment", "@PROBLEMNAME x", "@TIMESTAMPS FALSE", "@DATA"]
    _write_ts(tmp_path / "X_TRAIN.ts", header, [([np.ones(3), np.zeros(3)], "z"), ([np.ones(4), np.ones(4)], "y")])
    _write_ts(tmp_path / "X_TEST.ts", header, [([np.ones(2), np.ones(2)], "y")])
    te = ucr.load(tmp_path, "test", normalize="none")
    assert te.in_channels == 2 and te.seq_len == 4 and tuple(te.info.class_names) == ("y", "z")
    assert te.y.tolist() == [0] and te.lengths.tolist() == [2]


# ---------------------------------------------------------------------------------------------- discovery
def test_discovery(tmp_path, uni):
    root, _ = uni
    # archive layout <root>/<Name>/<Name>_TRAIN.ts, reached with name=
    archive = tmp_path / "archive"
    (archive / "Toy").mkdir(parents=True)
    for f in ("Toy_TRAIN.ts", "Toy_TEST.ts"):
        (archive / "Toy" / f).write_bytes((root / f).read_bytes())
    assert len(ucr.load(archive, "test", name="Toy")) == 5
    with pytest.raises(DataFormatError, match=r"sub-folders \['Toy'\]"):
        ucr.load(archive, "test")
    # two datasets in one folder: name= is required and the error lists them
    (root / "Other_TRAIN.tsv").write_text("1\t0.1\n2\t0.2\n")
    (root / "Other_TEST.tsv").write_text("1\t0.1\n")
    with pytest.raises(ValueError, match=r"several datasets \['Other', 'Toy'\]"):
        ucr.load(root, "test")
    assert ucr.load(root, "test", name="Other").seq_len == 1
    assert ucr.load(root, "test", name="Toy").seq_len == 6
    with pytest.raises(DataFormatError, match=r"no Nope_TRAIN.*datasets present: \['Other', 'Toy'\]"):
        ucr.load(root, "test", name="Nope")
    # .ts wins over the old form when both exist
    (root / "Toy_TRAIN.tsv").write_text("1\t0.1\n2\t0.2\n")
    (root / "Toy_TEST.tsv").write_text("1\t0.1\n")
    assert ucr.load(root, "test", name="Toy").seq_len == 6
    (root / "Other_TEST.tsv").unlink()
    with pytest.raises(FileNotFoundError, match="no matching Other_TEST.tsv"):
        ucr.load(root, "train", name="Other")
    with pytest.raises(FileNotFoundError, match="not a folder"):
        ucr.load(tmp_path / "absent", "train")


def test_train_and_test_dimensions_must_agree(uni):
    root, _ = uni
    _write_ts(root / "Toy_TEST.ts", MULTI_HEADER[:-2] + ["@classLabel true a b", "@data"],
              [([np.ones(6), np.ones(6)], "a")])
    with pytest.raises(DataFormatError, match=r"2 dimension\(s\) but Toy_TRAIN.ts has 1"):
        ucr.load(root, "train")


def test_argument_errors(uni):
    root, _ = uni
    with pytest.raises(ValueError, match="split"):
        ucr.load(root, "dev")
    with pytest.raises(ValueError, match="normalize"):
        ucr.load(root, "train", normalize="global")
    with pytest.raises(ValueError, match="missing"):
        ucr.load(root, "train", missing="drop")
    with pytest.raises(ValueError, match="val_fraction"):
        ucr.load(root, "val", val_fraction=0.0)
