"""12-lead ECG classification: the CODE-15% reader and a synthetic generator writing the same layout.

On-disk layout (CODE-15%, Ribeiro et al., Nat. Commun. 2020; Zenodo record 4916206)::

    <root>/exams.csv              exam_id, age, is_male, nn_predicted_age, 1dAVb, RBBB, LBBB, SB, ST, AF,
                                  patient_id, death, timey, normal_ecg, trace_file  (labels are True/False)
    <root>/exams_part{i}.hdf5     tracings: (N, 4096, 12) float, 400 Hz, leads I II III aVR aVL aVF V1..V6;
                                  exam_id: (N,) int.  7 s and 10 s records are zero-padded, centred.
                                  Rows with exam_id == 0 are padding and skipped.

CODE-15% ships no train/val/test split.  :func:`load` therefore accepts either

* a root with ``train/``, ``val/`` and ``test/`` subfolders, each in the layout above (what
  :func:`generate` writes), used as they are; or
* a flat root as downloaded, split by **patient**: each patient_id is hashed with ``split_seed`` to a
  uniform number in [0, 1) and goes to test below ``test_fraction``, to val below
  ``test_fraction + val_fraction`` and to train otherwise.  One patient's exams never land in two splits,
  and a patient's split does not depend on which ``exams_part`` files are present.

Targets are multi-label float 0/1 of shape (N, 6) in the fixed order :data:`LABELS`
(1dAVb, RBBB, LBBB, SB, AF, ST), as in the S4oP paper.

The synthetic task (``ecg-synthetic``) draws physiologically motivated 12-lead records (see
:func:`synthesize`) so that a small model on a CPU can learn all six labels from lead II alone at 100 Hz.
"""

from __future__ import annotations

import csv
import math
import numbers
import re
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from s4op_kernels.data.base import DataFormatError, TaskDataset, TaskInfo, check_finite, open_utf8

LABELS = ("1dAVb", "RBBB", "LBBB", "SB", "AF", "ST")
LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
FS = 400  # Hz, CODE-15% sampling rate
N_SAMPLES = 4096  # samples per stored record (10.24 s at 400 Hz)
SPLITS = ("train", "val", "test")

# exams.csv columns in the order CODE-15% writes them; the reader only needs exam_id, patient_id and
# the six labels, and finds them by name.
CSV_COLUMNS = ("exam_id", "age", "is_male", "nn_predicted_age", "1dAVb", "RBBB", "LBBB", "SB", "ST", "AF",
               "patient_id", "death", "timey", "normal_ecg", "trace_file")
_REQUIRED_COLUMNS = ("exam_id", "patient_id") + LABELS
_TRUE = frozenset({"true", "1", "1.0"})
_FALSE = frozenset({"false", "0", "0.0"})
_PART_RE = re.compile(r"^exams_part(\d+)\.hdf5$")

_READ_ROWS = 256  # HDF5 rows per read: 256 x 4096 x 12 float32 = 50 MB at most in flight

# Synthetic defaults: marginal probability of each label (see synthesize()).
DEFAULT_PREVALENCE = {"1dAVb": 0.12, "RBBB": 0.10, "LBBB": 0.10, "SB": 0.12, "AF": 0.10, "ST": 0.12}
_SYNTH_CHUNK = 256  # records per random stream; fixed so files and in-memory data are identical
_DEFAULT_COUNTS = {"train": 2000, "val": 500, "test": 500}
_RECORDS_PER_PART = 20000  # as in CODE-15% (about 20k exams per exams_part file)


# ----------------------------------------------------------------------------------------------------
# options shared by the reader and the in-memory generator
# ----------------------------------------------------------------------------------------------------

def lead_indices(leads: Union[None, str, int, Sequence[Union[str, int]]]) -> List[int]:
    """Positions in :data:`LEADS` of ``leads``: None (all 12), one name/index, or a sequence of them.

    Names are case-insensitive (``"avr"`` is aVR); indices count from 0 in the order of :data:`LEADS`.
    """
    if leads is None:
        return list(range(len(LEADS)))
    if isinstance(leads, (str, int)):
        leads = [leads]
    by_name = {name.lower(): i for i, name in enumerate(LEADS)}
    out = []
    for lead in leads:
        if isinstance(lead, (bool, np.bool_)):
            raise ValueError(f"leads: expected lead names {list(LEADS)} or indices 0..11, got {lead!r}")
        if isinstance(lead, (int, np.integer)):
            if not 0 <= int(lead) < len(LEADS):
                raise ValueError(f"leads: index {int(lead)} is out of range 0..{len(LEADS) - 1}")
            out.append(int(lead))
        elif isinstance(lead, str) and lead.strip().lower() in by_name:
            out.append(by_name[lead.strip().lower()])
        else:
            raise ValueError(f"leads: expected lead names {list(LEADS)} or indices 0..11, got {lead!r}")
    if not out:
        raise ValueError("leads: select at least one lead")
    if len(set(out)) != len(out):
        raise ValueError(f"leads: each lead may appear once, got {list(leads)!r}")
    return out


def _check_sample_rate(sample_rate) -> int:
    if isinstance(sample_rate, float) and sample_rate.is_integer():
        sample_rate = int(sample_rate)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or not 0 < sample_rate <= FS:
        raise ValueError(f"sample_rate must be an int in 1..{FS} (Hz; the files are at {FS} Hz), got {sample_rate!r}")
    return int(sample_rate)


def _output_length(n_stored: int, sample_rate: int, duration: Optional[float]) -> int:
    """Samples per record after resampling to ``sample_rate`` and the centred ``duration`` crop."""
    g = math.gcd(sample_rate, FS)
    n_resampled = -(-n_stored * (sample_rate // g) // (FS // g))  # ceil(n * p / q)
    if duration is None:
        return n_resampled
    if isinstance(duration, bool) or not isinstance(duration, numbers.Real) or not duration > 0:
        raise ValueError(f"duration must be a positive number of seconds, got {duration!r}")
    n_out = int(round(duration * sample_rate))
    if n_out < 1 or n_out > n_resampled:
        raise ValueError(f"duration={duration} s gives {n_out} samples at {sample_rate} Hz; records hold "
                         f"{n_stored / FS:.2f} s ({n_resampled} samples)")
    return n_out


def _lowpass_taps(p: int, q: int) -> torch.Tensor:
    """Kaiser-windowed sinc for resampling by p/q: cut-off at the lower of the two Nyquist rates.

    h: (2K+1,) float32, applied at the rate ``FS * p`` (after inserting p-1 zeros between samples), with
    gain p so the zero insertion keeps the amplitude.  Stop-band attenuation about 50 dB (beta = 5).
    """
    r = max(p, q)
    half = 10 * r  # 10 zero crossings of the sinc on each side
    n = np.arange(-half, half + 1, dtype=np.float64)
    h = np.sinc(n / r) / r * np.kaiser(2 * half + 1, 5.0)
    h *= p / h.sum()  # DC gain p: zero insertion divides the mean by p
    return torch.from_numpy(h.astype(np.float32))


def resample(x: torch.Tensor, sample_rate: int, from_rate: int = FS) -> torch.Tensor:
    """Anti-aliased rational resampling along the last axis (polyphase FIR, zero phase).

    x: (..., L) float -> (..., ceil(L * p / q)) with p / q = sample_rate / from_rate in lowest terms.
    Output sample j sits at input time ``j * q / p`` (no delay), so centred padding stays centred.
    """
    g = math.gcd(int(sample_rate), int(from_rate))
    p, q = int(sample_rate) // g, int(from_rate) // g
    if p == q:
        return x
    batch_shape, L = x.shape[:-1], x.shape[-1]
    flat = x.reshape(-1, 1, L)
    if p > 1:
        up = flat.new_zeros(flat.shape[0], 1, L * p)
        up[..., ::p] = flat
        flat = up
    taps = _lowpass_taps(p, q).to(dtype=x.dtype, device=x.device)
    half = (taps.numel() - 1) // 2
    # the taps are symmetric, so conv1d's cross-correlation is the convolution; padding by half keeps
    # output j centred on (upsampled) input j * q
    y = torch.nn.functional.conv1d(flat, taps.view(1, 1, -1), padding=half, stride=q)
    return y.reshape(*batch_shape, y.shape[-1])


def _prepare(tracings: np.ndarray, leads: List[int], sample_rate: int, duration: Optional[float],
             normalize: bool) -> torch.Tensor:
    """Stored records -> model inputs.

    tracings: (B, L, 12) at 400 Hz -> (B, L_out, C) float32: the selected leads, resampled to
    ``sample_rate``, centred crop of ``duration`` seconds, optionally scaled to unit RMS per record.
    """
    x = torch.from_numpy(np.ascontiguousarray(tracings[:, :, leads], dtype=np.float32))
    n_out = _output_length(x.shape[1], sample_rate, duration)
    x = resample(x.transpose(1, 2), sample_rate)  # (B, C, L')
    start = (x.shape[-1] - n_out) // 2  # records are centred in the stored window, so crop the centre
    x = x[..., start:start + n_out]
    if normalize:
        # one scale per record over all its selected leads: amplitude ratios between leads carry
        # diagnostic information (e.g. bundle branch blocks), so leads are not scaled separately
        rms = x.pow(2).mean(dim=(1, 2), keepdim=True).sqrt()
        x = x / rms.clamp_min(1e-6)
    return x.transpose(1, 2).contiguous()


# ----------------------------------------------------------------------------------------------------
# reader
# ----------------------------------------------------------------------------------------------------

def _parse_bool(text: str) -> Optional[bool]:
    t = text.strip().lower()
    return True if t in _TRUE else False if t in _FALSE else None


def _parse_int(text: str) -> Optional[int]:
    try:
        return int(text.strip())
    except ValueError:
        try:  # some CSV writers emit ids as "123.0"
            f = float(text)
        except ValueError:
            return None
        return int(f) if f.is_integer() else None


def read_exams_csv(path) -> Dict[int, Tuple[int, np.ndarray]]:
    """Parse a CODE-15% ``exams.csv``: exam_id -> (patient_id, labels (6,) bool in :data:`LABELS` order).

    Columns are found by name; other columns (age, death, trace_file, ...) are ignored.  A missing
    column, a row with the wrong number of fields, a non-integer id, a label that is not True/False, a
    repeated exam_id, or bytes that are not UTF-8 raise :class:`DataFormatError` naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: exams.csv not found (CODE-15% layout: exams.csv + exams_part*.hdf5)")
    exams: Dict[int, Tuple[int, np.ndarray]] = {}
    with open_utf8(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise DataFormatError(path, "empty file; expected a header with " + ", ".join(_REQUIRED_COLUMNS), line=1)
        header = [h.strip() for h in header]
        missing = [c for c in _REQUIRED_COLUMNS if c not in header]
        if missing:
            raise DataFormatError(path, f"header lacks column(s) {missing}; got {header}", line=1)
        i_exam, i_patient = header.index("exam_id"), header.index("patient_id")
        i_labels = [header.index(name) for name in LABELS]
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line (e.g. a trailing newline)
            if len(row) != len(header):
                raise DataFormatError(path, f"expected {len(header)} fields as in the header, got {len(row)}", line)
            exam_id, patient_id = _parse_int(row[i_exam]), _parse_int(row[i_patient])
            if exam_id is None or exam_id <= 0:
                raise DataFormatError(path, f"exam_id must be a positive integer, got {row[i_exam]!r}", line)
            if patient_id is None:
                raise DataFormatError(path, f"patient_id must be an integer, got {row[i_patient]!r}", line)
            labels = np.empty(len(LABELS), dtype=bool)
            for k, i in enumerate(i_labels):
                value = _parse_bool(row[i])
                if value is None:
                    raise DataFormatError(path, f"column {LABELS[k]} must be True or False, got {row[i]!r}", line)
                labels[k] = value
            if exam_id in exams:
                raise DataFormatError(path, f"exam_id {exam_id} appears twice", line)
            exams[exam_id] = (patient_id, labels)
    return exams


def _part_files(folder: Path) -> List[Path]:
    parts = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _PART_RE.match(p.name)) and p.is_file()]
    if not parts:
        raise FileNotFoundError(f"{folder}: no exams_part<i>.hdf5 files (CODE-15% layout: exams.csv + "
                                "exams_part*.hdf5, or train/ val/ test/ subfolders in that layout)")
    return [p for _, p in sorted(parts)]


def _read_exam_ids(h5, path: Path) -> np.ndarray:
    if "tracings" not in h5 or "exam_id" not in h5:
        raise DataFormatError(path, f"expected datasets 'tracings' and 'exam_id', found {sorted(h5.keys())}")
    tr, ids = h5["tracings"], h5["exam_id"]
    if tr.ndim != 3 or tr.shape[2] != len(LEADS):
        raise DataFormatError(path, f"'tracings' must have shape (N, L, 12), got {tr.shape}")
    if ids.ndim != 1 or ids.shape[0] != tr.shape[0]:
        raise DataFormatError(path, f"'exam_id' must have shape ({tr.shape[0]},) to match 'tracings', got {ids.shape}")
    raw = np.asarray(ids[()])
    if not np.issubdtype(raw.dtype, np.number):
        raise DataFormatError(path, f"'exam_id' must be numeric, got dtype {raw.dtype}")
    return raw.astype(np.int64)


def _patient_split(patient_ids: np.ndarray, val_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """Split code (0 train, 1 val, 2 test) per patient from a seeded hash of the patient id.

    patient_ids: (N,) int64 -> (N,) int8.  splitmix64 of (id, seed): a pure function of the id, so a patient
    keeps its split whatever subset of the data is present.
    """
    with np.errstate(over="ignore"):
        z = patient_ids.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15) * np.uint64(seed + 1)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return np.where(u < test_fraction, 2, np.where(u < test_fraction + val_fraction, 1, 0)).astype(np.int8)


def _read_folder(folder: Path, split: Optional[str], val_fraction: float, test_fraction: float, split_seed: int,
                 leads: List[int], sample_rate: int, duration: Optional[float], normalize: bool,
                 max_records: Optional[int]):
    """Read the exams of one folder in the CODE-15% layout; with ``split`` set, only that patient split.

    Returns x: (N, L_out, C) float32, y: (N, 6) float32, exam_ids: (N,) int64, patient_ids: (N,) int64,
    in file order (part 0 first, rows in stored order).
    """
    import h5py  # imported here so that `import s4op_kernels.data` does not need h5py

    csv_path = folder / "exams.csv"
    exams = read_exams_csv(csv_path)
    # pass 1: which rows of which part belong to this split (only exam ids are read)
    plan = []  # (path, sorted row indices, their exam ids)
    chosen_ids, chosen_patients, chosen_labels = [], [], []
    n_total = 0
    n_stored = None
    for path in _part_files(folder):
        try:
            h5 = h5py.File(path, "r")
        except OSError as e:
            raise DataFormatError(path, f"not a readable HDF5 file ({e})") from None
        with h5:
            ids = _read_exam_ids(h5, path)
            length = h5["tracings"].shape[1]
        if n_stored is None:
            n_stored = length
        elif length != n_stored:
            raise DataFormatError(path, f"records have {length} samples but earlier parts have {n_stored}")
        rows = np.flatnonzero(ids != 0)  # exam_id 0 marks padding rows at the end of some parts
        patients = np.empty(rows.size, dtype=np.int64)
        labels = np.empty((rows.size, len(LABELS)), dtype=bool)
        for k, r in enumerate(rows):
            entry = exams.get(int(ids[r]))
            if entry is None:
                raise DataFormatError(path, f"exam_id {int(ids[r])} (row {int(r)} of dataset 'exam_id') has no "
                                            f"row in {csv_path}")
            patients[k], labels[k] = entry
        if split is not None:
            keep = _patient_split(patients, val_fraction, test_fraction, split_seed) == SPLITS.index(split)
            rows, patients, labels = rows[keep], patients[keep], labels[keep]
        if max_records is not None:
            room = max_records - n_total
            rows, patients, labels = rows[:room], patients[:room], labels[:room]
        if rows.size:
            plan.append((path, rows, ids[rows]))
            chosen_ids.append(ids[rows])
            chosen_patients.append(patients)
            chosen_labels.append(labels)
            n_total += rows.size
        if max_records is not None and n_total >= max_records:
            break
    if n_stored is None:  # unreachable: _part_files raises on an empty folder
        raise FileNotFoundError(folder)
    n_out = _output_length(n_stored, sample_rate, duration)
    x = torch.empty(n_total, n_out, len(leads), dtype=torch.float32)
    # pass 2: read only the chosen rows, a block at a time, and reduce each block right away so memory
    # holds the prepared split, not the 12-lead 400 Hz tracings
    at = 0
    for path, rows, row_ids in plan:
        with h5py.File(path, "r") as h5:
            tracings = h5["tracings"]
            for s in range(0, rows.size, _READ_ROWS):
                block = rows[s:s + _READ_ROWS]
                if block[-1] - block[0] + 1 == block.size:  # contiguous: one hyperslab read
                    raw = tracings[int(block[0]):int(block[-1]) + 1]
                else:
                    raw = tracings[block]  # h5py point selection; rows are sorted as it requires
                # the selected leads as stored in x (float32), checked before any filtering spreads a NaN
                where = [f"{int(r)} (exam_id {int(e)})" for r, e in zip(block, row_ids[s:s + _READ_ROWS])]
                raw = check_finite(np.asarray(raw)[:, :, leads], path, rows=where, row_name="row",
                                   stage="in dataset 'tracings'")
                out = _prepare(raw, list(range(len(leads))), sample_rate, duration, normalize)
                # resampling or normalising huge (yet float32) values can overflow
                check_finite(out, path, rows=where, row_name="row", stage="after resampling/normalisation")
                x[at:at + block.size] = out
                at += block.size

    def cat(parts, shape, dtype):
        return np.concatenate(parts) if parts else np.empty(shape, dtype=dtype)

    y = torch.from_numpy(cat(chosen_labels, (0, len(LABELS)), bool).astype(np.float32))
    return (x, y, torch.from_numpy(cat(chosen_ids, (0,), np.int64)),
            torch.from_numpy(cat(chosen_patients, (0,), np.int64)))


# ----------------------------------------------------------------------------------------------------
# synthetic records
# ----------------------------------------------------------------------------------------------------

def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _lead_matrix() -> np.ndarray:
    """(3, 12): projection of the cardiac dipole (x: patient's left, y: inferior, z: anterior) on each lead.

    Limb leads follow Einthoven's triangle and Goldberger's augmented leads, so III = II - I and
    aVR + aVL + aVF = 0 hold exactly; precordial leads look from the horizontal plane, V1 right-anterior to
    V6 left-lateral (angles from the left axis towards anterior), with a larger gain (closer to the heart).
    """
    lead_i = np.array([1.0, 0.0, 0.0])
    lead_ii = np.array([math.cos(math.radians(60)), math.sin(math.radians(60)), 0.0])
    limb = [lead_i, lead_ii, lead_ii - lead_i, -(lead_i + lead_ii) / 2, lead_i - lead_ii / 2, lead_ii - lead_i / 2]
    precordial = [1.3 * np.array([math.cos(math.radians(a)), 0.1, math.sin(math.radians(a))])
                  for a in (120, 95, 75, 55, 30, 5)]
    return np.stack(limb + precordial, axis=1)


_LEAD_MATRIX = _lead_matrix()

# Wave components of one beat; each is a Gaussian in time with a per-record direction (dipole) and width.
_COMPONENTS = ("P", "q", "R", "S", "R2", "T")


def _check_prevalence(prevalence: Optional[Mapping[str, float]]) -> Dict[str, float]:
    prev = dict(DEFAULT_PREVALENCE)
    if prevalence is not None:
        unknown = set(prevalence) - set(LABELS)
        if unknown:
            raise ValueError(f"prevalence: unknown label(s) {sorted(unknown)}; labels are {list(LABELS)}")
        prev.update({k: float(v) for k, v in prevalence.items()})
    for k, v in prev.items():
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"prevalence[{k!r}] must be in [0, 1], got {v}")
    if prev["SB"] + prev["ST"] + prev["AF"] > 1.0:
        raise ValueError("prevalence: SB, ST and AF are exclusive rhythms, their sum must be <= 1")
    if prev["RBBB"] + prev["LBBB"] > 1.0:
        raise ValueError("prevalence: RBBB and LBBB are exclusive, their sum must be <= 1")
    if prev["AF"] < 1.0 and prev["1dAVb"] > 1.0 - prev["AF"]:
        raise ValueError("prevalence: 1dAVb needs sinus rhythm (no AF), so it must be <= 1 - prevalence['AF']")
    if prev["AF"] == 1.0 and prev["1dAVb"] > 0.0:
        raise ValueError("prevalence: 1dAVb needs sinus rhythm, impossible with prevalence['AF'] == 1")
    return prev


def synthesize(n: int, rng: np.random.Generator, prevalence: Optional[Mapping[str, float]] = None,
               short_fraction: float = 0.2, noise: float = 1.0):
    """Draw ``n`` synthetic 12-lead ECG records in the CODE-15% format.

    Returns ``tracings: (n, 4096, 12) float32`` (mV, 400 Hz, 10 s or 7 s centred with zero padding) and
    ``labels: (n, 6) bool`` in :data:`LABELS` order.

    The model: a heart dipole whose P, QRS and T waves are sums of Gaussians in time (after McSharry et al.,
    IEEE TBME 2003, but placed on explicit beat times instead of integrating the ODE), each with its own
    direction, projected on the 12 leads by :func:`_lead_matrix`.  Labels (marginal probabilities
    ``prevalence``, default :data:`DEFAULT_PREVALENCE`):

    * rhythm: one of sinus (60-100 bpm, drawn 64-96), SB (sinus < 60, drawn 40-55), ST (sinus > 100, drawn
      106-145) and AF (60-120 bpm on average; RR intervals independent log-normal, i.e. irregularly
      irregular; no P waves; a 4-9 Hz fibrillatory baseline);
    * 1dAVb: PR interval 230-330 ms instead of 130-190 ms; drawn only in sinus rhythm (AF has no PR);
    * RBBB / LBBB (exclusive): QRS 130-170 ms instead of 75-100 ms.  RBBB: normal early QRS plus a late,
      wide rightward-anterior-superior wave (rsR' in V1, wide S in I, V6 and II).  LBBB: no septal q, the
      left ventricle activated late and slowly as two overlapping leftward-posterior waves (broad notched R
      in I, aVL, V5-V6, II; deep QS in V1) and a T wave opposite to the QRS.

    Every condition is visible in lead II (rate, RR regularity, P wave and PR, QRS width and shape, T
    polarity).  Nuisances: electrical axis, wave amplitudes and widths, respiratory sinus arrhythmia and
    amplitude modulation, per-record and per-lead gain, white noise and baseline wander (both scaled by
    ``noise``; 0 gives clean records).  ``short_fraction`` of the records last 7 s, the rest 10 s.
    """
    if not 0.0 <= short_fraction <= 1.0:
        raise ValueError(f"short_fraction must be in [0, 1], got {short_fraction}")
    if not noise >= 0.0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    prev = _check_prevalence(prevalence)
    fs, margin = float(FS), 1.0  # generate 1 s beyond each end so no beat is cut short at the edges

    # --- labels
    u = rng.random(n)
    sb = u < prev["SB"]
    st = (u >= prev["SB"]) & (u < prev["SB"] + prev["ST"])
    af = (u >= prev["SB"] + prev["ST"]) & (u < prev["SB"] + prev["ST"] + prev["AF"])
    p_avb = prev["1dAVb"] / (1.0 - prev["AF"]) if prev["AF"] < 1.0 else 0.0  # so the marginal is prev
    avb = (rng.random(n) < p_avb) & ~af
    v = rng.random(n)
    rbbb = v < prev["RBBB"]
    lbbb = (v >= prev["RBBB"]) & (v < prev["RBBB"] + prev["LBBB"])
    labels = np.stack([avb, rbbb, lbbb, sb, af, st], axis=1)
    bbb = rbbb | lbbb

    # --- record timing
    duration = np.where(rng.random(n) < short_fraction, 7.0, 10.0)
    hr = np.select([sb, st, af], [rng.uniform(40, 55, n), rng.uniform(106, 145, n), rng.uniform(60, 120, n)],
                   rng.uniform(64, 96, n))
    rr_mean = 60.0 / hr
    span = duration + 2 * margin
    n_beats = int(np.ceil((span / np.where(af, 0.3, rr_mean)).max())) + 2
    # sinus: respiratory sinus arrhythmia (a few percent at 0.15-0.4 Hz) plus small jitter;
    # AF: independent log-normal RR intervals (irregularly irregular), clipped to plausible values
    approx_t = np.arange(n_beats) * rr_mean[:, None]  # (n, beats) beat times before modulation
    resp_f, resp_ph = rng.uniform(0.15, 0.4, n), rng.uniform(0, 2 * np.pi, n)
    rsa = 1.0 + rng.uniform(0.01, 0.04, n)[:, None] * np.sin(2 * np.pi * resp_f[:, None] * approx_t + resp_ph[:, None])
    rr_sinus = rr_mean[:, None] * (rsa + 0.01 * rng.standard_normal((n, n_beats)))
    sigma_af = rng.uniform(0.15, 0.3, n)[:, None]
    rr_af = np.clip(rr_mean[:, None] * np.exp(sigma_af * rng.standard_normal((n, n_beats)) - sigma_af ** 2 / 2),
                    0.3, 2.0)
    rr = np.where(af[:, None], rr_af, rr_sinus)
    onset = -margin + rng.random(n)[:, None] * rr[:, :1] + np.concatenate(
        [np.zeros((n, 1)), np.cumsum(rr[:, :-1], axis=1)], axis=1)  # (n, beats): QRS onset, s from record start

    # --- per-record intervals (s)
    qrs = np.where(bbb, rng.uniform(0.13, 0.17, n), rng.uniform(0.075, 0.10, n))
    pr = np.where(avb, rng.uniform(0.23, 0.33, n), rng.uniform(0.13, 0.19, n))
    sig_p = rng.uniform(0.017, 0.022, n)
    sig_t = rng.uniform(0.04, 0.055, n)
    qt = rng.uniform(0.38, 0.42, n)[:, None] * np.sqrt(rr) + np.maximum(qrs - 0.09, 0)[:, None]  # Bazett

    # --- per-record dipole directions (x left, y inferior, z anterior)
    def frontal(angle_deg, z):
        a = np.radians(angle_deg)
        return _unit(np.stack([np.cos(a), np.sin(a), z], axis=-1))

    axis = rng.uniform(20, 75, n)
    d_r = frontal(axis, rng.uniform(-0.45, -0.2, n))
    d_p = frontal(rng.uniform(40, 70, n), np.full(n, 0.1))
    d_q = _unit(np.tile([-0.7, 0.2, 0.7], (n, 1)) + 0.1 * rng.standard_normal((n, 3)))  # septum, left to right
    d_s = _unit(np.tile([-0.3, -0.6, -0.7], (n, 1)) + 0.1 * rng.standard_normal((n, 3)))  # basal, terminal
    d_rbbb = _unit(np.tile([-0.6, -0.25, 0.75], (n, 1)) + 0.1 * rng.standard_normal((n, 3)))  # late right ventricle
    d_lbbb = frontal(rng.uniform(-10, 50, n), rng.uniform(-0.7, -0.45, n))  # slow left ventricle
    d_t = frontal(axis + rng.uniform(-20, 20, n), np.full(n, 0.15))
    # secondary repolarisation changes: LBBB's T opposes its QRS; RBBB's T turns away from the late wave
    d_t = np.where(lbbb[:, None], -d_lbbb, np.where(rbbb[:, None], _unit(d_t - 0.8 * d_rbbb), d_t))

    gain = rng.uniform(0.7, 1.3, n)  # body habitus / electrode contact
    a_r = rng.uniform(1.0, 1.6, n)
    zeros = np.zeros(n)
    #                 P                          q                        R (or RBBB early R / LBBB R1)
    amp = np.stack([np.where(af, 0.0, rng.uniform(0.12, 0.22, n)), np.where(lbbb, 0.0, rng.uniform(0.1, 0.2, n)),
                    np.where(lbbb, rng.uniform(0.7, 1.0, n), a_r),
                    # S                                  R2 (RBBB R' / LBBB R2)
                    np.where(lbbb, 0.0, rng.uniform(0.2, 0.35, n)),
                    np.select([rbbb, lbbb], [rng.uniform(0.6, 0.9, n), rng.uniform(0.8, 1.1, n)], zeros),
                    # T
                    rng.uniform(0.25, 0.4, n) * np.where(bbb, 1.3, 1.0)], axis=1) * gain[:, None]
    dirs = np.stack([d_p, d_q, np.where(lbbb[:, None], d_lbbb, d_r), d_s,
                     np.where(lbbb[:, None], d_lbbb, d_rbbb), d_t], axis=1)  # (n, K, 3)
    # centre of each component relative to QRS onset (s), and its width (s)
    centre = np.stack([
        np.broadcast_to((-pr + 2.5 * sig_p)[:, None], rr.shape),  # P: begins PR before the QRS
        np.broadcast_to((0.15 * qrs)[:, None], rr.shape),
        np.broadcast_to(np.where(lbbb, 0.3, np.where(rbbb, 0.28, 0.45))[:, None] * qrs[:, None], rr.shape),
        np.broadcast_to(np.where(rbbb, 0.5, 0.75)[:, None] * qrs[:, None], rr.shape),
        np.broadcast_to(np.where(lbbb, 0.66, 0.74)[:, None] * qrs[:, None], rr.shape),
        qt - 2.2 * sig_t[:, None],  # T: ends about QT after QRS onset
    ], axis=2)  # (n, beats, K)
    width = np.stack([sig_p, 0.07 * qrs, np.where(bbb, np.where(lbbb, 0.12 * qrs, 0.011), 0.12 * qrs),
                      np.where(rbbb, 0.011, 0.09 * qrs), np.where(lbbb, 0.12, 0.1) * qrs, sig_t], axis=1)  # (n, K)
    beat_amp = 1.0 + rng.uniform(0.0, 0.08, n)[:, None] * np.sin(2 * np.pi * resp_f[:, None] * onset
                                                               + resp_ph[:, None])
    beat_amp = beat_amp * (1.0 + 0.02 * rng.standard_normal(beat_amp.shape))  # (n, beats)

    # --- Gaussian trains, evaluated only within 4 widths of each centre and summed by one bincount over
    # the beats that touch the kept span (the longest record; shorter ones are cut below)
    n_keep = int(round(duration.max() * fs))
    n_comp = len(_COMPONENTS)
    rec, beat = np.nonzero((onset > -0.7) & (onset < duration[:, None] + 0.4))  # (E,) visible beats
    flat_parts, val_parts = [], []
    for k in range(n_comp):
        half = int(np.ceil(4 * width[:, k].max() * fs))
        when = ((onset[rec, beat] + centre[rec, beat, k]) * fs).astype(np.float32)  # (E,) centre, samples
        idx = np.rint(when).astype(np.int64)[:, None] + np.arange(-half, half + 1)  # (E, W)
        z = (idx - when[:, None]) / (width[rec, k] * fs).astype(np.float32)[:, None]
        vals = beat_amp[rec, beat].astype(np.float32)[:, None] * np.exp(-0.5 * z * z)
        ok = (idx >= 0) & (idx < n_keep)
        flat_parts.append((((rec * n_comp + k) * n_keep)[:, None] + idx)[ok])
        val_parts.append(vals[ok])
    trains = np.bincount(np.concatenate(flat_parts), weights=np.concatenate(val_parts), minlength=n * n_comp * n_keep)
    waves = trains.reshape(n, n_comp, n_keep).astype(np.float32)  # (n, K, T), unit-peak trains
    lead_amp = np.einsum("nk,nkd,dl->nkl", amp, dirs, _LEAD_MATRIX)  # (n, K, 12)
    t = (np.arange(n_keep) / fs).astype(np.float32)

    # --- extra sources, each a time course with its own lead weights, mixed in the same product:
    # AF fibrillatory waves (two 4-9 Hz oscillations with slow frequency drift, atrial direction) and
    # baseline wander (respiration and electrode drift, < 0.5 Hz, one course per dipole axis)
    # (float32 phases: at most 2 pi 9 Hz 10 s = 570 rad, where float32 still resolves 1e-4 rad)
    fib_f, fib_ph = rng.uniform(4, 9, (n, 2, 1)).astype(np.float32), rng.uniform(0, 2 * np.pi, (n, 2, 1))
    fib_drift, fib_drift_f = rng.uniform(0, 3, (n, 2, 1)), rng.uniform(0.1, 0.3, (n, 2, 1)).astype(np.float32)
    fib_amp = rng.uniform(0.03, 0.07, (n, 2, 1))
    d_f = _unit(np.tile([-0.2, 0.6, 0.75], (n, 1)) + 0.1 * rng.standard_normal((n, 3)))
    fib = np.zeros((n, 1, n_keep), dtype=np.float32)
    a = np.flatnonzero(af)  # only AF records have f waves
    tt = 2 * np.pi * t
    phase = fib_f[a] * tt + (fib_drift[a] * np.sin(fib_drift_f[a] * tt) + fib_ph[a]).astype(np.float32)
    fib[a, 0] = (fib_amp[a].astype(np.float32) * np.sin(phase)).sum(1)
    w_amp, w_f = rng.uniform(0.0, 0.15, (n, 3, 1)), rng.uniform(0.05, 0.5, (n, 3, 1)).astype(np.float32)
    w_ph = rng.uniform(0, 2 * np.pi, (n, 3, 1)).astype(np.float32)
    wander = (noise * w_amp).astype(np.float32) * np.sin(w_f * tt + w_ph)  # (n, 3, T)
    sources = np.concatenate([waves, fib, wander], axis=1)  # (n, K + 4, T)
    weights = np.concatenate([lead_amp, (gain[:, None] * (d_f @ _LEAD_MATRIX))[:, None, :],
                              np.broadcast_to(_LEAD_MATRIX, (n, 3, len(LEADS)))], axis=1)  # (n, K + 4, 12)
    # electrode placement: each precordial lead's gain varies; limb leads share the record's gain so
    # Einthoven's law (III = II - I) still holds
    weights[:, :, 6:] *= rng.uniform(0.85, 1.15, (n, 1, 6))
    signal = torch.bmm(torch.from_numpy(sources).transpose(1, 2),
                       torch.from_numpy(weights.astype(np.float32))).numpy()  # (n, T, 12)

    # --- amplifier noise on the 8 recorded channels (I, II, V1-V6); III, aVR, aVL, aVF are computed
    # from I and II, as an electrocardiograph does
    white = rng.standard_normal((n, n_keep, 8), dtype=np.float32)
    white *= (noise * rng.uniform(0.005, 0.03, (n, 1, 1))).astype(np.float32)
    n_i, n_ii = white[:, :, 0], white[:, :, 1]
    signal[:, :, 0:2] += white[:, :, 0:2]
    signal[:, :, 6:12] += white[:, :, 2:8]
    signal[:, :, 2] += n_ii - n_i
    signal[:, :, 3] -= (n_i + n_ii) / 2
    signal[:, :, 4] += n_i - n_ii / 2
    signal[:, :, 5] += n_ii - n_i / 2

    # --- cut the record (7 s or 10 s) and centre it in the 4096-sample window with zero padding, as
    # CODE-15% stores them
    tracings = np.zeros((n, N_SAMPLES, len(LEADS)), dtype=np.float32)
    for d in np.unique(duration):
        sel = np.flatnonzero(duration == d)
        n_rec = int(round(d * fs))
        pad = (N_SAMPLES - n_rec) // 2
        tracings[sel, pad:pad + n_rec] = signal[sel, :n_rec]
    return tracings, labels


def _check_synth_options(prevalence, short_fraction, noise):
    # validate once up front so a bad option fails before any work (synthesize re-checks per chunk)
    _check_prevalence(prevalence)
    if not 0.0 <= short_fraction <= 1.0:
        raise ValueError(f"short_fraction must be in [0, 1], got {short_fraction}")
    if not noise >= 0.0:
        raise ValueError(f"noise must be >= 0, got {noise}")


def _synthetic_chunks(n: int, seed: int, split: str, **synth_options) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """Records of one synthetic split in chunks of :data:`_SYNTH_CHUNK`, each chunk from its own stream
    ``(seed, split, chunk)``: the splits are independent and files and memory hold identical records."""
    for c, start in enumerate(range(0, n, _SYNTH_CHUNK)):
        rng = np.random.default_rng([int(seed), SPLITS.index(split), c])
        yield synthesize(min(_SYNTH_CHUNK, n - start), rng, **synth_options)


def _synthetic_ids(split: str, n: int) -> np.ndarray:
    # distinct across splits; one exam per synthetic patient, so patient_id = exam_id
    return SPLITS.index(split) * 100_000_000 + 1 + np.arange(n, dtype=np.int64)


def generate(out, train: int, val: int, test: int, seed: int = 0, *, prevalence: Optional[Mapping[str, float]] = None,
             short_fraction: float = 0.2, noise: float = 1.0, records_per_part: int = _RECORDS_PER_PART) -> Path:
    """Write a synthetic ECG dataset as ``<out>/{train,val,test}/`` each holding ``exams.csv`` and
    ``exams_part{i}.hdf5`` (``records_per_part`` exams per file) in the CODE-15% format; returns ``out``.

    The records are those of :func:`synthesize` (options ``prevalence``, ``short_fraction``, ``noise``);
    the same ``seed`` gives the same files, and ``load(None, split, synthetic=True, seed=seed, ...)`` gives
    the same data without touching the disk.  age, is_male and nn_predicted_age are drawn for the format's
    sake and carry no signal; death and timey are left empty.
    """
    if isinstance(records_per_part, bool) or not isinstance(records_per_part, int) or records_per_part < 1:
        raise ValueError(f"records_per_part must be a positive int, got {records_per_part!r}")
    _check_synth_options(prevalence, short_fraction, noise)
    out = Path(out)
    synth = dict(prevalence=prevalence, short_fraction=short_fraction, noise=noise)
    for split, n in zip(SPLITS, (train, val, test)):
        _write_split(out / split, split, n, seed, records_per_part, synth)
    return out


def _write_split(folder: Path, split: str, n: int, seed: int, records_per_part: int, synth: dict) -> None:
    import h5py

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("exams_part*.hdf5"):  # a smaller rewrite must not leave stale parts behind
        old.unlink()
    ids = _synthetic_ids(split, n)
    labels = np.zeros((n, len(LABELS)), dtype=bool)
    n_parts = max(1, -(-n // records_per_part))  # an empty split still gets an (empty) part
    files = [h5py.File(folder / f"exams_part{j}.hdf5", "w") for j in range(n_parts)]
    try:
        for j, h5 in enumerate(files):
            rows = ids[j * records_per_part:(j + 1) * records_per_part]
            h5.create_dataset("tracings", shape=(rows.size, N_SAMPLES, len(LEADS)), dtype="f4")
            h5.create_dataset("exam_id", data=rows)
        for c, (tracings, lab) in enumerate(_synthetic_chunks(n, seed, split, **synth)):
            start = c * _SYNTH_CHUNK
            labels[start:start + lab.shape[0]] = lab
            i, stop = start, start + lab.shape[0]
            while i < stop:  # a chunk may straddle two parts
                part, row = divmod(i, records_per_part)
                take = min(stop - i, records_per_part - row)
                files[part]["tracings"][row:row + take] = tracings[i - start:i - start + take]
                i += take
    finally:
        for h5 in files:
            h5.close()

    # metadata the format has; drawn from its own stream so it does not touch the signals
    meta = np.random.default_rng([int(seed), SPLITS.index(split), 1 << 20])
    age = meta.integers(18, 91, n)
    is_male = meta.random(n) < 0.4
    nn_age = age + meta.normal(0.0, 8.0, n)
    with open(folder / "exams.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for i in range(n):
            row = {"exam_id": ids[i], "age": age[i], "is_male": bool(is_male[i]),
                   "nn_predicted_age": f"{nn_age[i]:.2f}", "patient_id": ids[i], "death": "", "timey": "", "normal_ecg": not labels[i].any(),
                   "trace_file": f"exams_part{i // records_per_part}.hdf5"}
            row.update({name: bool(labels[i, k]) for k, name in enumerate(LABELS)})
            w.writerow([row[c] for c in CSV_COLUMNS])


# ----------------------------------------------------------------------------------------------------
# entry point
# ----------------------------------------------------------------------------------------------------

def _has_split_folders(root: Path) -> bool:
    present = [s for s in SPLITS if (root / s).is_dir()]
    if present and len(present) != len(SPLITS):
        raise FileNotFoundError(f"{root}: has {present} but not {[s for s in SPLITS if s not in present]}; "
                                "expected all of train/ val/ test/ or a flat CODE-15% folder")
    return bool(present)


def load(root, split: str = "train", synthetic: bool = False, *, sample_rate: int = FS,
         leads: Union[None, str, int, Sequence[Union[str, int]]] = None, duration: Optional[float] = None,
         normalize: bool = False, max_records: Optional[int] = None,
         val_fraction: Optional[float] = None, test_fraction: Optional[float] = None,
         split_seed: Optional[int] = None,
         n_train: Optional[int] = None, n_val: Optional[int] = None, n_test: Optional[int] = None,
         seed: Optional[int] = None, prevalence: Optional[Mapping[str, float]] = None,
         short_fraction: Optional[float] = None, noise: Optional[float] = None) -> TaskDataset:
    """Load one split of CODE-15% (``synthetic=False``, task ``ecg``) or of the synthetic ECG task
    (``synthetic=True``, task ``ecg-synthetic``) as a :class:`TaskDataset`.

    x: (N, L, C) float32, C = number of ``leads``; y: (N, 6) float32 0/1 in :data:`LABELS` order.
    The dataset also carries ``exam_ids`` and ``patient_ids``, (N,) int64 each.

    Reader options (both tasks):
        sample_rate: output rate in Hz (default 400, no resampling); lower rates use an anti-aliased
            polyphase FIR (:func:`resample`).  100 Hz keeps the ECG's diagnostic band (< 40 Hz).
        leads: lead names (``"II"``, ``["I", "V1"]``, case-insensitive) or indices into :data:`LEADS`;
            default all 12, in the stored order.
        duration: seconds kept, a centred crop (records are centred in their window); default the whole
            stored window (4096 samples = 10.24 s).  Note 7 s records are zero beyond +-3.5 s.
        normalize: scale each record to unit RMS over its selected leads and samples (default False).
        max_records: keep at most this many exams of the split, the first in file order.

    A record whose selected leads hold a NaN or an infinity (after conversion to float32, so float64 values
    beyond +-3.4e38 count), or overflow when resampled, is refused: :class:`DataFormatError` naming the part
    file, the number of such values and the first rows with their exam ids
    (:func:`~s4op_kernels.data.base.check_finite`; nothing is repaired).  ``exams.csv`` must be UTF-8.

    Unsplit CODE-15% folder: ``val_fraction`` (default 0.1), ``test_fraction`` (default 0.1) and
    ``split_seed`` (default 0) define the seeded patient split (module docstring).  With ``train/ val/
    test/`` subfolders these options are rejected: the folder's own split is used.

    Synthetic task with ``root=None``: the split is generated in memory, exactly as :func:`generate` would
    write it, from ``seed`` (default 0) with ``n_train``/``n_val``/``n_test`` records (default 2000 / 500
    / 500; only the requested split is generated) and :func:`synthesize`'s ``prevalence``,
    ``short_fraction`` and ``noise``.  With a root, the generated files are read like CODE-15%.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    lead_idx = lead_indices(leads)
    sample_rate = _check_sample_rate(sample_rate)
    _output_length(N_SAMPLES, sample_rate, duration)  # validate duration before any work
    if max_records is not None and (isinstance(max_records, bool) or not isinstance(max_records, int)
                                    or max_records < 0):
        raise ValueError(f"max_records must be a non-negative int, got {max_records!r}")
    task = "ecg-synthetic" if synthetic else "ecg"
    generator_opts = {"n_train": n_train, "n_val": n_val, "n_test": n_test, "seed": seed, "prevalence": prevalence,
                      "short_fraction": short_fraction, "noise": noise}
    split_opts = {"val_fraction": val_fraction, "test_fraction": test_fraction, "split_seed": split_seed}

    if root is None:
        if not synthetic:
            raise ValueError("task 'ecg' reads CODE-15% files: pass root=<folder with exams.csv and "
                             "exams_part*.hdf5> (or use task 'ecg-synthetic' to generate data)")
        given = [k for k, v in split_opts.items() if v is not None]
        if given:
            raise ValueError(f"{given} apply to reading an unsplit CODE-15% folder; generated data has its own "
                             "splits (set n_train/n_val/n_test instead)")
        n = {"train": n_train, "val": n_val, "test": n_test}[split]
        n = _DEFAULT_COUNTS[split] if n is None else n
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n_{split} must be a non-negative int, got {n!r}")
        seed = 0 if seed is None else seed
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        synth = {"prevalence": prevalence, "short_fraction": 0.2 if short_fraction is None else short_fraction,
                 "noise": 1.0 if noise is None else noise}
        _check_synth_options(**synth)
        keep = n if max_records is None else min(n, max_records)
        xs, ys, have = [], [], 0
        # chunks are drawn as for all n records, so max_records gives the same first records as the files
        for tracings, labels in _synthetic_chunks(n, seed, split, **synth):
            if have >= keep:
                break
            take = min(keep - have, labels.shape[0])
            xs.append(_prepare(tracings[:take], lead_idx, sample_rate, duration, normalize))
            ys.append(torch.from_numpy(labels[:take].astype(np.float32)))
            have += take
        n_out = _output_length(N_SAMPLES, sample_rate, duration)
        x = torch.cat(xs) if xs else torch.empty(0, n_out, len(lead_idx))
        y = torch.cat(ys) if ys else torch.empty(0, len(LABELS))
        exam_ids = torch.from_numpy(_synthetic_ids(split, keep))
        patient_ids = exam_ids.clone()
    else:
        given = [k for k, v in generator_opts.items() if v is not None]
        if given:
            raise ValueError(f"{given} only apply when generating in memory (root=None); root={str(root)!r} is read "
                             "from disk")
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: not a folder (expected exams.csv + exams_part*.hdf5, or "
                                    "train/ val/ test/ subfolders in that layout)")
        common = dict(leads=lead_idx, sample_rate=sample_rate, duration=duration, normalize=normalize,
                      max_records=max_records)
        if _has_split_folders(root):
            given = [k for k, v in split_opts.items() if v is not None]
            if given:
                raise ValueError(f"{given} apply to an unsplit folder, but {root} has train/ val/ test/ "
                                 "subfolders whose split is used as it is")
            x, y, exam_ids, patient_ids = _read_folder(root / split, None, 0.0, 0.0, 0, **common)
        else:
            val_fraction = 0.1 if val_fraction is None else float(val_fraction)
            test_fraction = 0.1 if test_fraction is None else float(test_fraction)
            split_seed = 0 if split_seed is None else split_seed
            if not (0.0 <= val_fraction < 1.0 and 0.0 <= test_fraction < 1.0
                    and val_fraction + test_fraction < 1.0):
                raise ValueError(f"val_fraction and test_fraction must be in [0, 1) with a sum < 1, got "
                                 f"{val_fraction} and {test_fraction}")
            if isinstance(split_seed, bool) or not isinstance(split_seed, (int, np.integer)) or split_seed < 0:
                raise ValueError(f"split_seed must be a non-negative int, got {split_seed!r}")
            x, y, exam_ids, patient_ids = _read_folder(root, split, val_fraction, test_fraction, int(split_seed),
                                                       **common)

    info = TaskInfo(task=task, num_classes=len(LABELS), seq_len=x.shape[1], multilabel=True,
                    in_channels=len(lead_idx), class_names=LABELS)
    ds = TaskDataset(x, y, info, split=split)
    ds.exam_ids, ds.patient_ids = exam_ids, patient_ids
    return ds


__all__ = ["LABELS", "LEADS", "FS", "N_SAMPLES", "DEFAULT_PREVALENCE", "load", "generate", "synthesize", "resample",
           "lead_indices", "read_exams_csv"]
