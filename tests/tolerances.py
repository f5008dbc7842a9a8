"""The one tolerance table: outputs in each dtype against the float64 evaluation of the formulas.

Error measure: normwise relative error, max|actual - expected| / max|expected| over the compared tensor
(elementwise relative error is meaningless where a convolution output crosses zero).
"""

from __future__ import annotations

import os

import numpy as np
import torch

# float32: FFT convolution of length-L sequences accumulates O(log L) roundings of size 2^-24, and the
# reference kernel forms exp(dt A) - 1 and the phase dt*A_imag*l in float32 (as state-spaces/s4 does).
# The largest error seen over tests/shapes.py is 3.4e-6 (kernel, tiny dt: cancellation in exp - 1);
# 2e-5 leaves a margin of about 6x.
RTOL = {
    torch.float32: 2e-5,
    torch.float64: 1e-11,
    # Half inputs (sparse_fftconv on the Triton backend: fp16/bf16 tiles into tensor-core products with float32
    # accumulation, the result rounded to u's dtype; the oracle gets the same rounded inputs).  Rounding the
    # output alone costs up to 2^-11 = 4.9e-4 (fp16); the fused four-step FFT rounds a tile to fp16 four times
    # and the DFT matrices' entries once: 1.2e-3 is the largest seen (interpreter, n 16..8192, 6 seeds), so
    # 2e-3.  bf16 has 3 fewer mantissa bits: 8x (checked on a GPU only; the interpreter has no bf16).
    torch.float16: 2e-3,
    torch.bfloat16: 1.6e-2,
}

# Largest error seen per dtype in this test session, reported at the end of the run (conftest.py).
LARGEST: dict[torch.dtype, tuple[float, str]] = {}


def relative_error(actual: torch.Tensor, expected) -> float:
    a = actual.detach().cpu().double().numpy()
    e = np.asarray(expected.detach().cpu().double() if isinstance(expected, torch.Tensor) else expected, dtype=np.float64)
    scale = float(np.max(np.abs(e))) if e.size else 0.0
    diff = float(np.max(np.abs(a - e))) if e.size else 0.0
    return diff / scale if scale > 0 else diff


def assert_close(actual: torch.Tensor, expected, dtype: torch.dtype = None, what: str = "output", rtol: float = None) -> float:
    """Assert ``actual`` matches the float64 ``expected`` within the table's bound for ``dtype``.

    NaN/Inf must appear in the same places.  On failure, reports where the largest difference is.
    Returns the relative error (and records it for the end-of-run summary).
    """
    dtype = dtype or actual.dtype
    bound = RTOL[dtype] if rtol is None else rtol
    a = actual.detach().cpu().double().numpy()
    e = np.asarray(expected.detach().cpu().double() if isinstance(expected, torch.Tensor) else expected, dtype=np.float64)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != expected {e.shape}"
    bad_a, bad_e = ~np.isfinite(a), ~np.isfinite(e)
    if (bad_a != bad_e).any():
        where = np.argwhere(bad_a != bad_e)[0]
        raise AssertionError(f"{what}: NaN/Inf mismatch, first at index {tuple(where)}: got {a[tuple(where)]}, expected {e[tuple(where)]}")
    a, e = np.where(bad_a, 0.0, a), np.where(bad_e, 0.0, e)
    err = relative_error(torch.from_numpy(a), e)
    if err > bound:
        where = np.unravel_index(np.argmax(np.abs(a - e)), a.shape)
        raise AssertionError(
            f"{what}: relative error {err:.3e} > {bound:.1e} ({dtype}); largest difference at index {tuple(int(i) for i in where)}: "
            f"got {a[where]:.9g}, expected {e[where]:.9g} (max |expected| = {np.max(np.abs(e)):.6g})"
        )
    test_id = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
    if err > LARGEST.get(dtype, (-1.0, ""))[0]:
        LARGEST[dtype] = (err, f"{test_id} [{what}]")
    return err
