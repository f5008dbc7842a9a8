"""CODE-15% reader and its resampling/lead options (s4op_kernels.data.ecg); the synthetic ECG generator
is tested in test_ecg_synthetic.py."""

import ast
import csv
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import s4op_kernels
from s4op_kernels._validate import ArgumentTypeError
from s4op_kernels.data import DataFormatError, ecg

FS = ecg.FS


# ------------------------------------------------------------------------------------------------
# a tiny CODE-15% folder written here with h5py + csv, in the real column order (ST before AF)
# ------------------------------------------------------------------------------------------------

def _write_part(path, exam_ids, tracings):
    with h5py.File(path, "w") as f:
        f.create_dataset("tracings", data=np.asarray(tracings, dtype=np.float32))
        f.create_dataset("exam_id", data=np.asarray(exam_ids, dtype=np.int64))


def _write_csv(path, rows, columns=ecg.CSV_COLUMNS):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for row in rows:
            w.writerow([row.get(c, "") for c in columns])


def _row(exam_id, patient_id, labels):
    """labels: dict label -> bool; the others are False."""
    row = {"exam_id": exam_id, "age": 50, "is_male": True, "nn_predicted_age": 51.5, "patient_id": patient_id,
           "death": "", "timey": "", "normal_ecg": not any(labels.values()), "trace_file": "exams_part0.hdf5"}
    row.update({name: bool(labels.get(name, False)) for name in ecg.LABELS})
    return row


@pytest.fixture
def code15(tmp_path):
    """Two parts, 30 exams of 10 patients, distinct random tracings (seed 0); part 1 ends with two
    exam_id == 0 padding rows.  Returns (root, {exam_id: tracing (L, 12)}, {exam_id: labels (6,)},
    {exam_id: patient_id})."""
    rng = np.random.default_rng(0)
    L = 512  # shorter than CODE-15%'s 4096 to keep the fixture small; the reader takes any L
    ids = np.arange(1001, 1031)
    patients = {int(e): 500 + int(rng.integers(0, 12)) for e in ids}
    traces = {int(e): rng.standard_normal((L, 12)).astype(np.float32) for e in ids}
    labels = {int(e): rng.random(6) < 0.3 for e in ids}
    _write_part(tmp_path / "exams_part0.hdf5", ids[:18], [traces[int(e)] for e in ids[:18]])
    padded_ids = list(ids[18:]) + [0, 0]
    padded = [traces[int(e)] for e in ids[18:]] + [np.zeros((L, 12), np.float32)] * 2
    _write_part(tmp_path / "exams_part1.hdf5", padded_ids, padded)
    rows = [_row(int(e), patients[int(e)], dict(zip(ecg.LABELS, labels[int(e)]))) for e in ids]
    rows.append(_row(9999, 777, {}))  # in the CSV only (a part the user did not download): ignored
    _write_csv(tmp_path / "exams.csv", rows)
    return tmp_path, traces, labels, patients


def _load_all(root, **options):
    return {s: ecg.load(root, s, **options) for s in ecg.SPLITS}


def test_reader_round_trip_skips_padding_and_orders_labels(code15):
    root, traces, labels, patients = code15
    splits = _load_all(root, val_fraction=0.25, test_fraction=0.25)
    seen = []
    for ds in splits.values():
        assert ds.x.dtype == torch.float32 and ds.y.dtype == torch.float32
        assert ds.info.multilabel and ds.num_classes == 6 and tuple(ds.info.class_names) == ecg.LABELS
        assert ds.in_channels == 12 and ds.seq_len == 512
        for i, e in enumerate(ds.exam_ids.tolist()):
            torch.testing.assert_close(ds.x[i], torch.from_numpy(traces[e]), rtol=0, atol=0)
            assert ds.y[i].tolist() == labels[e].astype(np.float32).tolist()
            assert ds.patient_ids[i].item() == patients[e]
            seen.append(e)
    # every stored exam exactly once; padding rows (exam_id 0) and CSV-only exams are not data
    assert sorted(seen) == sorted(traces)


def test_labels_are_read_by_column_name_not_position(code15, tmp_path):
    # CODE-15% writes ST before AF while the targets put AF before ST; a shuffled header must not matter
    root, traces, labels, patients = code15
    rows = [_row(e, patients[e], dict(zip(ecg.LABELS, labels[e]))) for e in traces]
    _write_csv(root / "exams.csv", rows, columns=tuple(reversed(ecg.CSV_COLUMNS)))
    ds = ecg.load(root, "train", val_fraction=0.0, test_fraction=0.0)
    assert len(ds) == len(traces)
    for i, e in enumerate(ds.exam_ids.tolist()):
        assert ds.y[i].tolist() == labels[e].astype(np.float32).tolist()


def test_exam_missing_from_csv_names_the_part_and_exam(code15):
    root, traces, labels, patients = code15
    rows = [_row(e, patients[e], {}) for e in traces if e != 1020]
    _write_csv(root / "exams.csv", rows)
    with pytest.raises(DataFormatError, match=r"exams_part1\.hdf5.*exam_id 1020.*no row in"):
        ecg.load(root, "train")


@pytest.mark.parametrize("field, value, message", [
    ("RBBB", "maybe", r"column RBBB must be True or False"),
    ("exam_id", "abc", r"exam_id must be a positive integer"),
    ("patient_id", "", r"patient_id must be an integer"),
])
def test_malformed_csv_row_names_file_and_line(code15, field, value, message):
    root, traces, labels, patients = code15
    rows = [_row(e, patients[e], {}) for e in traces]
    rows[4][field] = value  # the 5th data row is line 6 (after the header)
    _write_csv(root / "exams.csv", rows)
    with pytest.raises(DataFormatError, match=r"exams\.csv, line 6: " + message) as err:
        ecg.load(root, "train")
    assert err.value.line == 6


def test_csv_row_with_wrong_field_count_and_missing_column(code15):
    root, traces, labels, patients = code15
    rows = [_row(e, patients[e], {}) for e in traces]
    _write_csv(root / "exams.csv", rows)
    text = (root / "exams.csv").read_text().splitlines()
    text[3] += ",extra"
    (root / "exams.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(DataFormatError, match=r"line 4: expected 15 fields"):
        ecg.load(root, "train")
    _write_csv(root / "exams.csv", rows, columns=tuple(c for c in ecg.CSV_COLUMNS if c != "LBBB"))
    with pytest.raises(DataFormatError, match=r"line 1: header lacks column\(s\) \['LBBB'\]"):
        ecg.load(root, "train")


def test_non_utf8_csv_names_file_and_line(code15):
    root, traces, labels, patients = code15
    rows = [_row(e, patients[e], {}) for e in traces]
    rows[4]["death"] = "@@"  # the 5th data row is line 6
    _write_csv(root / "exams.csv", rows)
    path = root / "exams.csv"
    path.write_bytes(path.read_bytes().replace(b"@@", "é".encode("latin-1")))
    with pytest.raises(DataFormatError, match=r"exams\.csv, line 6: bytes b'\\xe9' .* not valid UTF-8; .*UTF-8") as err:
        ecg.load(root, "train")
    assert err.value.line == 6 and err.value.path == str(path)


def _rewrite_tracing(path, row, edit):
    with h5py.File(path, "r+") as f:
        t = f["tracings"][row]
        edit(t)
        f["tracings"][row] = t


def test_non_finite_tracings_are_refused_naming_part_rows_and_exams(code15):
    root = code15[0]
    part0 = root / "exams_part0.hdf5"
    _rewrite_tracing(part0, 2, lambda t: t.__setitem__((10, 1), np.nan))  # exam 1003, lead II
    _rewrite_tracing(part0, 7, lambda t: t.__setitem__((slice(0, 3), 1), np.inf))  # exam 1008: 3 values
    with pytest.raises(DataFormatError) as err:
        ecg.load(root, "train", val_fraction=0.0, test_fraction=0.0)
    msg = str(err.value)
    assert err.value.path == str(part0)
    assert "4 non-finite values in dataset 'tracings' (1 NaN, 3 infinite" in msg
    assert "2 rows (rows 2 (exam_id 1003), 7 (exam_id 1008))" in msg
    # only what x would hold is checked: the other leads of those exams are finite
    ds = ecg.load(root, "train", val_fraction=0.0, test_fraction=0.0, leads=["I", "V1"])
    assert len(ds) == 30 and torch.isfinite(ds.x).all()


def test_tracings_beyond_float32_are_refused(code15):
    root = code15[0]
    part1 = root / "exams_part1.hdf5"
    with h5py.File(part1, "r") as f:  # rewrite part 1 in float64, as some converters store it
        t, ids = f["tracings"][()].astype(np.float64), f["exam_id"][()]
    t[4, 100, 0] = 1e308  # finite in float64, inf in float32
    with h5py.File(part1, "w") as f:
        f.create_dataset("tracings", data=t)
        f.create_dataset("exam_id", data=ids)
    with pytest.raises(DataFormatError, match=r"1 non-finite value in dataset 'tracings' \(1 infinite.*"
                                              r"1 row \(row 4 \(exam_id 1023\)\)") as err:
        ecg.load(root, "train", val_fraction=0.0, test_fraction=0.0)
    assert err.value.path == str(part1)


def test_resampling_overflow_is_refused(code15):
    # 3.4e38 is a float32 value, but low-pass filtering a record of such values overflows to inf
    root = code15[0]
    _rewrite_tracing(root / "exams_part0.hdf5", 5, lambda t: t.__setitem__(slice(None), 3.4e38))
    assert torch.isfinite(ecg.load(root, "train", val_fraction=0.0, test_fraction=0.0).x).all()  # 400 Hz
    with pytest.raises(DataFormatError, match=r"after resampling/normalisation.*row 5 \(exam_id 1006\)"):
        ecg.load(root, "train", val_fraction=0.0, test_fraction=0.0, sample_rate=100)


def test_bad_hdf5_layout_is_a_format_error(code15):
    root = code15[0]
    with h5py.File(root / "exams_part1.hdf5", "w") as f:
        f.create_dataset("signals", data=np.zeros((2, 512, 12), np.float32))
    with pytest.raises(DataFormatError, match=r"exams_part1\.hdf5.*'tracings' and 'exam_id'"):
        ecg.load(root, "train")


def test_patient_split_is_disjoint_seeded_and_stable_under_missing_parts(code15):
    root, traces, labels, patients = code15
    opts = dict(val_fraction=0.3, test_fraction=0.3, split_seed=1)
    splits = _load_all(root, **opts)
    by_split = {s: set(ds.patient_ids.tolist()) for s, ds in splits.items()}
    assert not (by_split["train"] & by_split["val"] or by_split["train"] & by_split["test"]
                or by_split["val"] & by_split["test"])
    assert all(by_split.values())  # 10 patients, 30 % each: with split_seed 1 every split gets some
    # every exam of a patient lands where its patient is
    for s, ds in splits.items():
        assert {patients[e] for e in ds.exam_ids.tolist()} == by_split[s]
    # deterministic; another split_seed moves patients
    again = ecg.load(root, "val", **opts)
    assert again.exam_ids.tolist() == splits["val"].exam_ids.tolist()
    other = {s: set(ecg.load(root, s, val_fraction=0.3, test_fraction=0.3, split_seed=2).patient_ids.tolist())
             for s in ecg.SPLITS}
    assert other != by_split
    # a patient's split does not depend on which parts are present
    (root / "exams_part1.hdf5").unlink()
    for s, ds in _load_all(root, **opts).items():
        assert set(ds.patient_ids.tolist()) <= by_split[s]


def test_split_options_are_validated(code15, tmp_path):
    root = code15[0]
    with pytest.raises(ValueError, match="val_fraction and test_fraction"):
        ecg.load(root, "train", val_fraction=0.6, test_fraction=0.5)
    with pytest.raises(ValueError, match="n_train"):
        ecg.load(root, "train", n_train=10)
    with pytest.raises(ValueError, match=r"load\(split_seed\): expected an integer >= 0, got -1"):
        ecg.load(root, "train", split_seed=-1)
    for bad in (1.5, True, "1"):
        with pytest.raises(ArgumentTypeError, match=r"load\(split_seed\): expected an integer >= 0, got"):
            ecg.load(root, "train", split_seed=bad)
    assert ecg.load(root, "train", split_seed=np.int64(1)).exam_ids.tolist() == \
        ecg.load(root, "train", split_seed=1).exam_ids.tolist()
    with pytest.raises(ValueError, match="pass root"):
        ecg.load(None, "train")
    with pytest.raises(FileNotFoundError, match="no exams_part"):
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "exams.csv").write_text(",".join(ecg.CSV_COLUMNS) + "\n")
        ecg.load(tmp_path / "empty", "train")


# ------------------------------------------------------------------------------------------------
# resampling, leads, crop
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rate", [100, 250, 128])
def test_resample_keeps_in_band_tone_and_timing(rate):
    t = np.arange(4096) / FS
    x = torch.from_numpy(np.sin(2 * np.pi * 5.0 * t + 0.3)).float()[None]
    y = ecg.resample(x, rate)[0]
    assert y.shape[-1] == -(-4096 * rate // FS)
    expected = np.sin(2 * np.pi * 5.0 * np.arange(y.shape[-1]) / rate + 0.3)
    inner = slice(rate // 10, -rate // 10)  # away from the zero-padded ends
    np.testing.assert_allclose(y.numpy()[inner], expected[inner], atol=2e-3)


def test_resample_removes_what_would_alias():
    t = np.arange(4096) / FS
    x = torch.from_numpy(np.sin(2 * np.pi * 130.0 * t)).float()  # above 100 Hz's Nyquist (50 Hz)
    y = ecg.resample(x, 100)
    # a bare x[::4] would fold 130 Hz onto 30 Hz at full amplitude; the filter must attenuate it > 40 dB
    assert y[20:-20].pow(2).mean().sqrt() < 0.01 * x.pow(2).mean().sqrt()


def test_leads_rate_and_duration_options(code15):
    root, traces, labels, patients = code15
    full = ecg.load(root, "train", val_fraction=0.0, test_fraction=0.0)
    picked = ecg.load(root, "train", val_fraction=0.0, test_fraction=0.0, leads=["V1", "i"])
    assert picked.in_channels == 2
    torch.testing.assert_close(picked.x, full.x[:, :, [6, 0]], rtol=0, atol=0)
    low = ecg.load(root, "train", val_fraction=0.0, test_fraction=0.0, leads="II", sample_rate=100)
    assert low.x.shape == (len(traces), 128, 1) and low.seq_len == 128
    crop = ecg.load(root, "train", val_fraction=0.0, test_fraction=0.0, leads=1, sample_rate=100, duration=0.5)
    assert crop.x.shape == (len(traces), 50, 1)
    torch.testing.assert_close(crop.x, low.x[:, 39:89], rtol=0, atol=0)  # centred: (128 - 50) // 2 = 39
    norm = ecg.load(root, "train", val_fraction=0.0, test_fraction=0.0, leads=["I", "II"], normalize=True)
    torch.testing.assert_close(norm.x.pow(2).mean(dim=(1, 2)), torch.ones(len(traces)))
    few = ecg.load(root, "train", val_fraction=0.0, test_fraction=0.0, max_records=7)
    assert few.exam_ids.tolist() == full.exam_ids[:7].tolist()


@pytest.mark.parametrize("leads, message", [
    ("V7", "lead names"), ([0, 0], "once"), (12, "out of range"), ([], "at least"), (True, "lead names")])
def test_bad_leads_are_rejected(leads, message):
    with pytest.raises(ValueError, match=message):
        ecg.lead_indices(leads)


@pytest.mark.parametrize("options, message", [
    ({"sample_rate": 500}, "sample_rate"), ({"sample_rate": 0}, "sample_rate"),
    ({"duration": 11.0}, "duration"), ({"duration": -1}, "duration"),
])
def test_bad_rate_or_duration_are_rejected(options, message):
    # checked before the root is looked at (the synthetic loader's checks: test_ecg_synthetic.py)
    with pytest.raises(ValueError, match=message):
        ecg.load(None, "val", **options)


@pytest.mark.parametrize("options, message, exc", [
    ({"sample_rate": 401}, r"load\(sample_rate\): expected an integer in \[1, 400\], got 401", ValueError),
    ({"sample_rate": -100}, r"load\(sample_rate\): expected an integer in \[1, 400\], got -100", ValueError),
    ({"sample_rate": 100.5}, r"load\(sample_rate\): expected an integer in \[1, 400\], got 100.5", ArgumentTypeError),
    ({"sample_rate": True}, r"load\(sample_rate\)", ArgumentTypeError),
    ({"sample_rate": "100"}, r"load\(sample_rate\)", ArgumentTypeError),
    ({"duration": 0}, r"load\(duration\): expected a finite number > 0.0, got 0.0", ValueError),
    ({"duration": -1}, r"load\(duration\): expected a finite number > 0.0, got -1.0", ValueError),
    ({"duration": float("nan")}, r"load\(duration\)", ValueError),
    ({"duration": float("inf")}, r"load\(duration\)", ValueError),
    ({"duration": True}, r"load\(duration\)", ArgumentTypeError),
    ({"duration": "2"}, r"load\(duration\)", ArgumentTypeError),
    ({"max_records": -1}, r"load\(max_records\): expected an integer >= 0, got -1", ValueError),
    ({"max_records": 2.5}, r"load\(max_records\): expected an integer >= 0, got 2.5", ArgumentTypeError),
    ({"max_records": True}, r"load\(max_records\)", ArgumentTypeError),
])
def test_bad_options_name_the_function_and_argument(options, message, exc):
    with pytest.raises(exc, match=message):
        ecg.load(None, "val", **options)


def test_integral_float_sample_rate_and_numpy_counts_are_accepted(code15):
    root = code15[0]
    opts = dict(val_fraction=0.0, test_fraction=0.0, leads="II")
    ref = ecg.load(root, "train", sample_rate=100, max_records=3, **opts)
    for sample_rate, max_records in ((100.0, 3), (np.int64(100), np.int64(3))):
        ds = ecg.load(root, "train", sample_rate=sample_rate, max_records=max_records, **opts)
        torch.testing.assert_close(ds.x, ref.x, rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------
# the reader alone: no synthetic switch, no import of the generator
# ------------------------------------------------------------------------------------------------

def test_reader_has_no_synthetic_switch(code15):
    root = code15[0]
    for call in (lambda: ecg.load(None, "val", synthetic=True, n_val=1),
                 lambda: ecg.load(root, "train", synthetic=False)):
        with pytest.raises(TypeError, match=r"unexpected keyword argument 'synthetic'.*ecg_synthetic\.load"):
            call()
    with pytest.raises(TypeError, match="positional"):
        ecg.load(root, "train", True)  # the former third positional parameter
    with pytest.raises(TypeError, match="unexpected keyword argument 'sampel_rate'"):
        ecg.load(root, "train", sampel_rate=100)
    # generator options still get the ValueError saying where they apply (as data.load("ecg", root) always did)
    with pytest.raises(ValueError, match=r"\['n_val', 'noise'\] only apply when generating in memory"):
        ecg.load(root, "train", noise=0.5, n_val=3)


def _modules_after_import(module):
    """The s4op_kernels.data modules loaded by ``import <module>`` in a fresh interpreter."""
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith('s4op_kernels.data')))"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(s4op_kernels.__file__).resolve().parent.parent)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return set(ast.literal_eval(out.stdout.strip().splitlines()[-1]))


def test_reader_does_not_import_the_generator():
    loaded = _modules_after_import("s4op_kernels.data.ecg")
    assert "s4op_kernels.data.ecg" in loaded and "s4op_kernels.data.ecg_synthetic" not in loaded
    assert not hasattr(ecg, "synthesize") and not hasattr(ecg, "generate")  # no re-export shim
