"""12-lead ECG classification: the CODE-15% reader (task ``ecg``).

On-disk layout (CODE-15%, Ribeiro et al., Nat. Commun. 2020; Zenodo record 4916206)::

    <root>/exams.csv              exam_id, age, is_male, nn_predicted_age, 1dAVb, RBBB, LBBB, SB, ST, AF,
                                  patient_id, death, timey, normal_ecg, trace_file  (labels are True/False)
    <root>/exams_part{i}.hdf5     tracings: (N, 4096, 12) float, 400 Hz, leads I II III aVR aVL aVF V1..V6;
                                  exam_id: (N,) int.  7 s and 10 s records are zero-padded, centred.
                                  Rows with exam_id == 0 are padding and skipped.

CODE-15% ships no train/val/test split.  :func:`load` therefore accepts either

* a root with ``train/``, ``val/`` and ``test/`` subfolders, each in the layout above (what the synthetic
  generator :func:`s4op_kernels.data.ecg_synthetic.generate` writes), used as they are; or
* a flat root as downloaded, split by **patient**: each patient_id is hashed with ``split_seed`` to a
  uniform number in [0, 1) and goes to test below ``test_fraction``, to val below
  ``test_fraction + val_fraction`` and to train otherwise.  One patient's exams never land in two splits,
  and a patient's split does not depend on which ``exams_part`` files are present.

Targets are multi-label float 0/1 of shape (N, 6) in the fixed order :data:`LABELS`
(1dAVb, RBBB, LBBB, SB, AF, ST), as in the S4oP paper.

The synthetic task (``ecg-synthetic``) lives in :mod:`s4op_kernels.data.ecg_synthetic`: it draws
records, writes them in this layout and loads them (in memory, or from its folder through this reader).
It builds on the format constants, option checks and record preparation here; this module never imports
it.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from s4op_kernels._validate import check_float, check_int
from s4op_kernels.data.base import DataFormatError, TaskDataset, TaskInfo, check_finite, open_utf8

TASK = "ecg"
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

# Options of the ecg-synthetic task's in-memory generation (the keyword-only options of
# s4op_kernels.data.ecg_synthetic.load beyond the reader's, in its order; a test keeps the two in step).
# A reader given one of them says that it only applies to generated data, as the task's loaders always
# have, instead of a bare "unexpected keyword" error.
_GENERATOR_OPTIONS = ("n_train", "n_val", "n_test", "seed", "prevalence", "short_fraction", "noise")


# ----------------------------------------------------------------------------------------------------
# options and record preparation, shared with the synthetic generator (s4op_kernels.data.ecg_synthetic)
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
    return check_int(sample_rate, "sample_rate", func="load", minimum=1, maximum=FS)  # Hz; the files are at FS Hz


def _output_length(n_stored: int, sample_rate: int, duration: Optional[float]) -> int:
    """Samples per record after resampling to ``sample_rate`` and the centred ``duration`` crop."""
    g = math.gcd(sample_rate, FS)
    n_resampled = -(-n_stored * (sample_rate // g) // (FS // g))  # ceil(n * p / q)
    if duration is None:
        return n_resampled
    check_float(duration, "duration", func="load", minimum=0.0, min_open=True)  # seconds
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
# entry point (the parts the ecg-synthetic loader shares: option checks, reading a root, the dataset)
# ----------------------------------------------------------------------------------------------------

def _check_options(split: str, leads, sample_rate, duration, max_records) -> Tuple[List[int], int]:
    """Validate the options every ECG loader takes, before any work; returns (lead indices, sample rate)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    lead_idx = lead_indices(leads)
    sample_rate = _check_sample_rate(sample_rate)
    _output_length(N_SAMPLES, sample_rate, duration)  # validate duration before any work
    if max_records is not None:
        check_int(max_records, "max_records", func="load", minimum=0)
    return lead_idx, sample_rate


def _refuse_generator_options(options: Mapping[str, object], root) -> None:
    """ValueError naming the generator options (:data:`_GENERATOR_OPTIONS`) set in ``options`` (None is unset)."""
    given = [k for k in _GENERATOR_OPTIONS if options.get(k) is not None]
    if given:
        raise ValueError(f"{given} only apply when generating in memory (root=None); root={str(root)!r} is read "
                         "from disk")


def _has_split_folders(root: Path) -> bool:
    present = [s for s in SPLITS if (root / s).is_dir()]
    if present and len(present) != len(SPLITS):
        raise FileNotFoundError(f"{root}: has {present} but not {[s for s in SPLITS if s not in present]}; "
                                "expected all of train/ val/ test/ or a flat CODE-15% folder")
    return bool(present)


def _dataset(task: str, split: str, x: torch.Tensor, y: torch.Tensor, exam_ids: torch.Tensor,
             patient_ids: torch.Tensor, n_leads: int) -> TaskDataset:
    """The :class:`TaskDataset` of one ECG split: x (N, L, n_leads), y (N, 6), with exam and patient ids."""
    info = TaskInfo(task=task, num_classes=len(LABELS), seq_len=x.shape[1], multilabel=True,
                    in_channels=n_leads, class_names=LABELS)
    ds = TaskDataset(x, y, info, split=split)
    ds.exam_ids, ds.patient_ids = exam_ids, patient_ids
    return ds


def _read_root(root, split: str, task: str, *, leads: List[int], sample_rate: int, duration: Optional[float],
               normalize: bool, max_records: Optional[int], val_fraction: Optional[float],
               test_fraction: Optional[float], split_seed: Optional[int]) -> TaskDataset:
    """One split of the folder ``root`` (split subfolders, or a flat CODE-15% folder split by patient) as
    task ``task``; the options are already checked by :func:`_check_options` except the split options."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder (expected exams.csv + exams_part*.hdf5, or "
                                "train/ val/ test/ subfolders in that layout)")
    common = dict(leads=leads, sample_rate=sample_rate, duration=duration, normalize=normalize,
                  max_records=max_records)
    split_opts = {"val_fraction": val_fraction, "test_fraction": test_fraction, "split_seed": split_seed}
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
        split_seed = check_int(split_seed, "split_seed", func="load", minimum=0)
        x, y, exam_ids, patient_ids = _read_folder(root, split, val_fraction, test_fraction, split_seed,
                                                   **common)
    return _dataset(task, split, x, y, exam_ids, patient_ids, len(leads))


def load(root, split: str = "train", *, sample_rate: int = FS,
         leads: Union[None, str, int, Sequence[Union[str, int]]] = None, duration: Optional[float] = None,
         normalize: bool = False, max_records: Optional[int] = None,
         val_fraction: Optional[float] = None, test_fraction: Optional[float] = None,
         split_seed: Optional[int] = None, **generator_options) -> TaskDataset:
    """Load one split of a CODE-15% folder (task ``ecg``) as a :class:`TaskDataset`.

    x: (N, L, C) float32, C = number of ``leads``; y: (N, 6) float32 0/1 in :data:`LABELS` order.
    The dataset also carries ``exam_ids`` and ``patient_ids``, (N,) int64 each.

    Options:
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

    ``root`` is required (None is a ValueError).  Synthetic data (task ``ecg-synthetic``, in memory or from
    a folder it wrote) is loaded by :func:`s4op_kernels.data.ecg_synthetic.load`; its generator options
    (``n_train``, ``n_val``, ``n_test``, ``seed``, ``prevalence``, ``short_fraction``, ``noise``) are
    refused here with a ValueError, and any other unknown option (``synthetic=`` included) is a TypeError.
    """
    unknown = [k for k in generator_options if k not in _GENERATOR_OPTIONS]
    if "synthetic" in unknown:
        raise TypeError("load() got an unexpected keyword argument 'synthetic': s4op_kernels.data.ecg.load reads "
                        "CODE-15% folders only; load the synthetic task with s4op_kernels.data.ecg_synthetic.load "
                        "(or s4op_kernels.data.load('ecg-synthetic', root_or_None, split, ...))")
    if unknown:
        raise TypeError(f"load() got an unexpected keyword argument {unknown[0]!r}")
    lead_idx, sample_rate = _check_options(split, leads, sample_rate, duration, max_records)
    if root is None:
        raise ValueError("task 'ecg' reads CODE-15% files: pass root=<folder with exams.csv and "
                         "exams_part*.hdf5> (or use task 'ecg-synthetic' to generate data)")
    _refuse_generator_options(generator_options, root)
    return _read_root(root, split, TASK, leads=lead_idx, sample_rate=sample_rate, duration=duration,
                      normalize=normalize, max_records=max_records, val_fraction=val_fraction,
                      test_fraction=test_fraction, split_seed=split_seed)


__all__ = ["LABELS", "LEADS", "FS", "N_SAMPLES", "CSV_COLUMNS", "load", "resample", "lead_indices", "read_exams_csv"]
