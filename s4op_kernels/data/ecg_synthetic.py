"""Synthetic 12-lead ECG (task ``ecg-synthetic``): a physiological generator writing the CODE-15% layout.

:func:`synthesize` draws physiologically motivated 12-lead records with the six CODE-15% labels, so that
a small model on a CPU can learn all six from lead II alone at 100 Hz.  :func:`generate` (the ``s4op data
ecg-synthetic`` command) writes them as ``<out>/{train,val,test}/`` folders in the CODE-15% format that
:mod:`s4op_kernels.data.ecg` reads, and :func:`load` gives one split of the task: generated in memory when
``root`` is None (exactly the records :func:`generate` would write for the same seed and options), or read
from a folder by the CODE-15% reader.

The format (labels, leads, rate, record length, ``exams.csv`` columns), the loader options shared with the
reader and the preparation of records into model inputs (lead selection, resampling, crop, normalisation)
come from :mod:`s4op_kernels.data.ecg`; that module does not import this one.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Dict, Iterator, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from s4op_kernels._validate import check_int
from s4op_kernels.data.base import TaskDataset
from s4op_kernels.data.ecg import (CSV_COLUMNS, FS, LABELS, LEADS, N_SAMPLES, SPLITS, _check_options, _dataset,
                                   _output_length, _prepare, _read_root, _refuse_generator_options)

TASK = "ecg-synthetic"

# Marginal probability of each label (see synthesize()).
DEFAULT_PREVALENCE = {"1dAVb": 0.12, "RBBB": 0.10, "LBBB": 0.10, "SB": 0.12, "AF": 0.10, "ST": 0.12}
_SYNTH_CHUNK = 256  # records per random stream; fixed so files and in-memory data are identical
_DEFAULT_COUNTS = {"train": 2000, "val": 500, "test": 500}
_RECORDS_PER_PART = 20000  # as in CODE-15% (about 20k exams per exams_part file)


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
    the same ``seed`` gives the same files, and ``load(None, split, seed=seed, ...)`` (:func:`load`) gives
    the same data without touching the disk.  age, is_male and nn_predicted_age are drawn for the format's
    sake and carry no signal; death and timey are left empty.
    """
    records_per_part = check_int(records_per_part, "records_per_part", func="generate", minimum=1)
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

def load(root=None, split: str = "train", *, sample_rate: int = FS,
         leads: Union[None, str, int, Sequence[Union[str, int]]] = None, duration: Optional[float] = None,
         normalize: bool = False, max_records: Optional[int] = None,
         val_fraction: Optional[float] = None, test_fraction: Optional[float] = None,
         split_seed: Optional[int] = None,
         n_train: Optional[int] = None, n_val: Optional[int] = None, n_test: Optional[int] = None,
         seed: Optional[int] = None, prevalence: Optional[Mapping[str, float]] = None,
         short_fraction: Optional[float] = None, noise: Optional[float] = None) -> TaskDataset:
    """Load one split of the synthetic ECG task (``ecg-synthetic``) as a :class:`TaskDataset`.

    x: (N, L, C) float32, C = number of ``leads``; y: (N, 6) float32 0/1 in :data:`LABELS` order; the
    dataset also carries ``exam_ids`` and ``patient_ids``, (N,) int64 each (one exam per synthetic patient).

    ``sample_rate``, ``leads``, ``duration``, ``normalize`` and ``max_records`` are the reader's options
    (:func:`s4op_kernels.data.ecg.load`), applied in the same way to generated records.

    With ``root=None`` the split is generated in memory, exactly as :func:`generate` would write it, from
    ``seed`` (default 0) with ``n_train``/``n_val``/``n_test`` records (default 2000 / 500 / 500; only the
    requested split is generated) and :func:`synthesize`'s ``prevalence``, ``short_fraction`` (default 0.2)
    and ``noise`` (default 1.0); ``val_fraction``, ``test_fraction`` and ``split_seed`` are rejected there
    (generated data has its own splits).  With a root (a folder written by :func:`generate`, or any folder
    in the CODE-15% layout), the files are read by the CODE-15% reader, split options included, and the
    generator options are rejected.
    """
    lead_idx, sample_rate = _check_options(split, leads, sample_rate, duration, max_records)
    if root is not None:
        _refuse_generator_options({"n_train": n_train, "n_val": n_val, "n_test": n_test, "seed": seed,
                                   "prevalence": prevalence, "short_fraction": short_fraction, "noise": noise},
                                  root)
        return _read_root(root, split, TASK, leads=lead_idx, sample_rate=sample_rate, duration=duration,
                          normalize=normalize, max_records=max_records, val_fraction=val_fraction,
                          test_fraction=test_fraction, split_seed=split_seed)

    split_opts = {"val_fraction": val_fraction, "test_fraction": test_fraction, "split_seed": split_seed}
    given = [k for k, v in split_opts.items() if v is not None]
    if given:
        raise ValueError(f"{given} apply to reading an unsplit CODE-15% folder; generated data has its own "
                         "splits (set n_train/n_val/n_test instead)")
    n = {"train": n_train, "val": n_val, "test": n_test}[split]
    n = _DEFAULT_COUNTS[split] if n is None else n
    n = check_int(n, f"n_{split}", func="load", minimum=0)
    seed = 0 if seed is None else seed
    seed = check_int(seed, "seed", func="load", minimum=0)
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
    return _dataset(TASK, split, x, y, exam_ids, exam_ids.clone(), len(lead_idx))


__all__ = ["DEFAULT_PREVALENCE", "synthesize", "generate", "load"]
