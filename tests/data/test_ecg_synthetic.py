"""Synthetic ECG generator (s4op_kernels.data.ecg_synthetic): files in the CODE-15% layout, the in-memory
split loader, and the physiology of the records."""

import csv
import inspect

import h5py
import numpy as np
import pytest
import torch

from s4op_kernels import data
from s4op_kernels._validate import ArgumentTypeError
from s4op_kernels.data import ecg, ecg_synthetic

FS = ecg.FS


@pytest.mark.parametrize("options, message", [
    ({"sample_rate": 500}, "sample_rate"), ({"sample_rate": 0}, "sample_rate"),
    ({"duration": 11.0}, "duration"), ({"duration": -1}, "duration"),
])
def test_bad_rate_or_duration_are_rejected(options, message):
    with pytest.raises(ValueError, match=message):
        ecg_synthetic.load(None, "val", n_val=1, **options)


@pytest.mark.parametrize("options, message, exc", [
    ({"n_val": -1}, r"load\(n_val\): expected an integer >= 0, got -1", ValueError),
    ({"n_val": 2.5}, r"load\(n_val\): expected an integer >= 0, got 2.5", ArgumentTypeError),
    ({"n_val": True}, r"load\(n_val\)", ArgumentTypeError),
    ({"seed": -1}, r"load\(seed\): expected an integer >= 0, got -1", ValueError),
    ({"seed": 1.5}, r"load\(seed\): expected an integer >= 0, got 1.5", ArgumentTypeError),
    ({"seed": True}, r"load\(seed\)", ArgumentTypeError),
])
def test_bad_count_or_seed_name_the_function_and_argument(options, message, exc):
    with pytest.raises(exc, match=message):
        ecg_synthetic.load(None, "val", **({"n_val": 1} | options))


def test_numpy_count_and_seed_are_accepted():
    ref = ecg_synthetic.load(None, "val", n_val=2, seed=3, sample_rate=100, leads="II")
    ds = ecg_synthetic.load(None, "val", n_val=np.int64(2), seed=np.int32(3), sample_rate=100, leads="II")
    torch.testing.assert_close(ds.x, ref.x, rtol=0, atol=0)


@pytest.mark.parametrize("records_per_part, exc", [(0, ValueError), (-2, ValueError), (1.5, ArgumentTypeError),
                                                   (True, ArgumentTypeError), ("4", ArgumentTypeError)])
def test_bad_records_per_part_is_rejected_before_any_work(tmp_path, records_per_part, exc):
    with pytest.raises(exc, match=r"generate\(records_per_part\): expected an integer >= 1, got"):
        ecg_synthetic.generate(tmp_path / "out", train=1, val=1, test=1, records_per_part=records_per_part)
    assert not (tmp_path / "out").exists()


def test_generator_options_known_to_the_reader_match_the_loader():
    # the reader refuses these by name (ValueError, not TypeError); they must be exactly the synthetic
    # loader's own options, in its order
    params = inspect.signature(ecg_synthetic.load).parameters
    reader = inspect.signature(ecg.load).parameters
    own = tuple(n for n, p in params.items() if p.kind is p.KEYWORD_ONLY and n not in reader)
    assert own == ecg._GENERATOR_OPTIONS
    assert [n for n in params if n in reader] == [n for n, p in reader.items() if p.kind is not p.VAR_KEYWORD]


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
    # 2 chunks, 3 parts
    root = ecg_synthetic.generate(tmp_path, train=4, val=260, test=2, seed=11, records_per_part=128)
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
    root = ecg_synthetic.generate(tmp_path, train=3, val=0, test=0, seed=0)
    ds = ecg_synthetic.load(root, "val", sample_rate=100, leads="II")
    assert len(ds) == 0 and ds.x.shape == (0, 1024, 1) and ds.y.shape == (0, 6)
    assert len(ecg_synthetic.load(root, "train")) == 3


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
    tracings, labels = ecg_synthetic.synthesize(240, np.random.default_rng(2024), prevalence=prevalence)
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
        ecg_synthetic.load(None, "test", n_test=2, prevalence={"SB": 0.6, "ST": 0.6})
    with pytest.raises(ValueError, match="unknown label"):
        ecg_synthetic.load(None, "test", n_test=2, prevalence={"VT": 0.1})
