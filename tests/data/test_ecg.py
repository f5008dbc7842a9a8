"""CODE-15% reader, resampling/lead options, and the synthetic ECG generator (s4op_kernels.data.ecg)."""

import csv

import h5py
import numpy as np
import pytest
import torch

from s4op_kernels import data
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
    with pytest.raises(ValueError, match=message):
        ecg.load(None, "val", synthetic=True, n_val=1, **options)


# ------------------------------------------------------------------------------------------------
# synthetic generator
# ------------------------------------------------------------------------------------------------

def test_generate_is_reproducible_and_splits_are_independent(tmp_path):
    a = data.generate("ecg-synthetic", tmp_path / "a", train=5, val=3, test=2, seed=5)
    b = data.generate("ecg-synthetic", tmp_path / "b", train=5, val=3, test=2, seed=5)
    c = data.generate("ecg-synthetic", tmp_path / "c", train=5, val=3, test=2, seed=6)
    for split, n in (("train", 5), ("val", 3), ("test", 2)):
        with h5py.File(a / split / "exams_part0.hdf5") as fa, h5py.File(b / split / "exams_part0.hdf5") as fb, \
                h5py.File(c / split / "exams_part0.hdf5") as fc:
            assert fa["tracings"].shape == (n, ecg.N_SAMPLES, 12) and fa["tracings"].dtype == np.float32
            np.testing.assert_array_equal(fa["tracings"][()], fb["tracings"][()])
            np.testing.assert_array_equal(fa["exam_id"][()], fb["exam_id"][()])
            assert not np.array_equal(fa["tracings"][()], fc["tracings"][()])
        assert (a / split / "exams.csv").read_text() == (b / split / "exams.csv").read_text()
    with h5py.File(a / "train" / "exams_part0.hdf5") as ft, h5py.File(a / "val" / "exams_part0.hdf5") as fv:
        assert not np.allclose(ft["tracings"][0], fv["tracings"][0])
        assert not set(ft["exam_id"][()]) & set(fv["exam_id"][()])
    header = (a / "train" / "exams.csv").read_text().splitlines()[0]
    assert header == ",".join(ecg.CSV_COLUMNS)


def test_generate_then_load_equals_in_memory_generation(tmp_path):
    root = ecg.generate(tmp_path, train=4, val=260, test=2, seed=11, records_per_part=128)  # 2 chunks, 3 parts
    assert sorted(p.name for p in (root / "val").glob("*.hdf5")) == [f"exams_part{i}.hdf5" for i in range(3)]
    opts = dict(sample_rate=100, leads=["II", "V1"], duration=5.0)
    from_disk = data.load("ecg-synthetic", root, "val", **opts)
    in_memory = data.load("ecg-synthetic", None, "val", n_train=4, n_val=260, n_test=2, seed=11, **opts)
    assert from_disk.info == in_memory.info
    assert from_disk.info.task == "ecg-synthetic" and from_disk.x.shape == (260, 500, 2)
    torch.testing.assert_close(from_disk.x, in_memory.x, rtol=0, atol=0)
    torch.testing.assert_close(from_disk.y, in_memory.y, rtol=0, atol=0)
    assert from_disk.exam_ids.tolist() == in_memory.exam_ids.tolist()
    # max_records keeps the first records, whether read or generated
    few_disk = data.load("ecg-synthetic", root, "val", max_records=5, **opts)
    few_memory = data.load("ecg-synthetic", None, "val", n_val=260, seed=11, max_records=5, **opts)
    torch.testing.assert_close(few_disk.x, from_disk.x[:5], rtol=0, atol=0)
    torch.testing.assert_close(few_memory.x, from_disk.x[:5], rtol=0, atol=0)
    # the CSV labels are the targets, in LABELS order (the CSV has ST before AF)
    with open(root / "val" / "exams.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    y = np.array([[r[name] == "True" for name in ecg.LABELS] for r in rows], dtype=np.float32)
    np.testing.assert_array_equal(from_disk.y.numpy(), y)
    assert [r["normal_ecg"] == "True" for r in rows] == (~y.any(1)).tolist()
    with pytest.raises(ValueError, match="val_fraction"):
        ecg.load(root, "val", val_fraction=0.2)


def test_empty_generated_split_loads_as_empty(tmp_path):
    root = ecg.generate(tmp_path, train=3, val=0, test=0, seed=0)
    ds = ecg.load(root, "val", synthetic=True, sample_rate=100, leads="II")
    assert len(ds) == 0 and ds.x.shape == (0, 1024, 1) and ds.y.shape == (0, 6)
    assert len(ecg.load(root, "train", synthetic=True)) == 3


# physiology: estimate from the waveforms what the labels claim, with simple detectors written here
# (slope-energy R-peak detection on lead II, spatial-velocity QRS width, P peak before R)

def _smooth(x, w):
    return np.convolve(x, np.ones(w) / w, mode="same")


def _peaks(energy, fs, refractory=0.25):
    thr = 0.3 * np.percentile(energy, 99)
    cand = np.flatnonzero((energy > thr) & (energy >= np.roll(energy, 1)) & (energy >= np.roll(energy, -1)))
    kept = []
    for c in cand[np.argsort(-energy[cand])]:
        if all(abs(c - p) > refractory * fs for p in kept):
            kept.append(c)
    return np.sort(np.array(kept))


def _r_peaks(lead, fs=FS):
    d = np.diff(_smooth(lead, 5), prepend=lead[0])
    return _peaks(_smooth(d * d, int(0.05 * fs)), fs)


def _qrs_width(rec, fs=FS):
    """Median over beats of the span holding the central 90 % of the spatial slope energy around each
    QRS (the 8 recorded leads I, II, V1-V6)."""
    ind = rec[:, [0, 1, 6, 7, 8, 9, 10, 11]]
    d = np.diff(np.stack([_smooth(ind[:, i], 5) for i in range(8)], 1), axis=0)
    v = _smooth((d * d).sum(1), int(0.01 * fs))
    widths = []
    for p in _peaks(v, fs)[1:-1]:
        seg = v[p - int(0.15 * fs):p + int(0.2 * fs)]
        c = np.cumsum(seg) / seg.sum()
        widths.append((np.searchsorted(c, 0.95) - np.searchsorted(c, 0.05)) / fs)
    return float(np.median(widths))


def _p_to_r(lead, peaks, fs=FS):
    """Median time from the P-wave peak (the largest deflection 80-360 ms before R) to the R peak."""
    sm = _smooth(lead, 9)
    out = []
    for p in peaks[(peaks > 0.45 * fs) & (peaks < len(lead) - 0.06 * fs)]:  # whole windows only
        r = p - int(0.06 * fs) + int(np.argmax(lead[p - int(0.06 * fs):p + int(0.06 * fs)]))
        seg = sm[r - int(0.36 * fs):r - int(0.08 * fs)]
        out.append((len(seg) - int(np.argmax(seg - np.median(seg)))) / fs + 0.08)
    return float(np.median(out))


@pytest.fixture(scope="module")
def physiology():
    """240 records at 400 Hz (seed 2024) with raised prevalences so each condition appears alone often
    enough; per record: label name ('normal', a label, or 'multi'), and measurements from the waveform."""
    prevalence = {"SB": 0.2, "ST": 0.2, "AF": 0.2, "1dAVb": 0.15, "RBBB": 0.2, "LBBB": 0.2}
    tracings, labels = ecg.synthesize(240, np.random.default_rng(2024), prevalence=prevalence)
    records = []
    for rec, lab in zip(tracings, labels):
        nz = np.flatnonzero(np.abs(rec).sum(1) > 0)
        rec = rec[nz[0]:nz[-1] + 1]  # the recorded span, without the zero padding
        peaks = _r_peaks(rec[:, 1])
        rr = np.diff(peaks) / FS
        name = "normal" if not lab.any() else ecg.LABELS[int(np.argmax(lab))] if lab.sum() == 1 else "multi"
        records.append(dict(name=name, labels=lab, hr=60.0 / np.median(rr), cv=rr.std() / rr.mean(),
                            qrs=_qrs_width(rec), pr=_p_to_r(rec[:, 1], peaks), rec=rec))
    return records


def _group(records, name, key):
    values = np.array([r[key] for r in records if r["name"] == name])
    assert len(values) >= 8, f"too few single-label {name} records ({len(values)}) for a statistic"
    return values


def test_synthetic_labels_are_consistent(physiology):
    lab = np.array([r["labels"] for r in physiology])
    k = {name: i for i, name in enumerate(ecg.LABELS)}
    assert lab[:, [k["SB"], k["ST"], k["AF"]]].sum(1).max() <= 1  # one rhythm per record
    assert not (lab[:, k["RBBB"]] & lab[:, k["LBBB"]]).any()
    assert not (lab[:, k["1dAVb"]] & lab[:, k["AF"]]).any()  # no PR interval in AF


def test_synthetic_heart_rate_from_r_peaks_on_lead_ii(physiology):
    sb, normal, st = (_group(physiology, n, "hr") for n in ("SB", "normal", "ST"))
    assert sb.max() < 60 < normal.min() and normal.max() < 100 < st.min()


def test_synthetic_af_rhythm_is_irregular(physiology):
    af, sinus = _group(physiology, "AF", "cv"), np.concatenate(
        [_group(physiology, n, "cv") for n in ("normal", "SB", "ST")])
    assert np.mean(af > 0.06) >= 0.9 and np.mean(sinus < 0.06) >= 0.95


def test_synthetic_bundle_branch_blocks_widen_the_qrs(physiology):
    bbb = np.array([r["qrs"] for r in physiology if r["labels"][1] or r["labels"][2]])
    other = np.array([r["qrs"] for r in physiology if not (r["labels"][1] or r["labels"][2])])
    assert len(bbb) >= 20
    assert np.median(bbb) - np.median(other) > 0.04
    assert np.mean(bbb > 0.09) >= 0.9 and np.mean(other < 0.09) >= 0.9


def test_synthetic_first_degree_av_block_lengthens_pr(physiology):
    avb, normal = _group(physiology, "1dAVb", "pr"), _group(physiology, "normal", "pr")
    assert np.median(avb) - np.median(normal) > 0.06
    assert np.mean(avb > 0.2) >= 0.9 and np.mean(normal < 0.2) >= 0.9


def test_synthetic_lead_morphology(physiology):
    # Einthoven / Goldberger: III = II - I, aVR + aVL + aVF = 0 (noise included, as an ECG machine derives them)
    rec = physiology[0]["rec"]
    np.testing.assert_allclose(rec[:, 2], rec[:, 1] - rec[:, 0], atol=1e-5)
    np.testing.assert_allclose(rec[:, 3] + rec[:, 4] + rec[:, 5], 0.0, atol=1e-5)

    # V1 around each QRS: RBBB ends with a positive R' (terminal QRS part up), LBBB is a deep QS (mostly down)
    def v1_terminal_and_area(rec):
        peaks = _r_peaks(rec[:, 1])[1:-1]
        v1 = rec[:, 6] - np.median(rec[:, 6])
        term = [v1[p + int(0.04 * FS):p + int(0.12 * FS)].max() for p in peaks]
        area = [v1[p - int(0.06 * FS):p + int(0.1 * FS)].mean() for p in peaks]
        return np.median(term), np.median(area)

    rbbb = [v1_terminal_and_area(r["rec"]) for r in physiology if r["name"] == "RBBB"]
    lbbb = [v1_terminal_and_area(r["rec"]) for r in physiology if r["name"] == "LBBB"]
    normal = [v1_terminal_and_area(r["rec"]) for r in physiology if r["name"] == "normal"]
    assert len(rbbb) >= 5 and len(lbbb) >= 5
    assert np.median([t for t, _ in rbbb]) > 0.3 > np.median([t for t, _ in normal])
    assert np.median([a for _, a in lbbb]) < np.median([a for _, a in normal]) - 0.1


def test_in_memory_synthetic_load_shapes_and_defaults():
    ds = data.load("ecg-synthetic", None, "test", n_test=20, sample_rate=100, leads="II", duration=2.56, seed=1)
    assert ds.x.shape == (20, 256, 1) and ds.y.shape == (20, 6) and ds.info.in_channels == 1
    assert ds.info.task == "ecg-synthetic" and ds.info.multilabel and ds.seq_len == 256
    assert set(ds.y.unique().tolist()) <= {0.0, 1.0}
    assert torch.isfinite(ds.x).all()
    again = data.load("ecg-synthetic", None, "test", n_test=20, sample_rate=100, leads="II", duration=2.56, seed=1)
    torch.testing.assert_close(ds.x, again.x, rtol=0, atol=0)
    with pytest.raises(ValueError, match="prevalence"):
        ecg.load(None, "test", synthetic=True, n_test=2, prevalence={"SB": 0.6, "ST": 0.6})
    with pytest.raises(ValueError, match="unknown label"):
        ecg.load(None, "test", synthetic=True, n_test=2, prevalence={"VT": 0.1})
