"""The ``"triton"`` backend: Triton kernels of the three ops and their launchers.

Imported only when the backend runs (never by ``import s4op_kernels``).  The kernels are plain functions here,
handed to ``triton.jit`` on first use and kept per mode (compiled for CUDA, or Triton's interpreter under
``TRITON_INTERPRET=1``, which runs them on CPU tensors), so which mode runs depends on the environment when a
kernel is first launched, never on when this module was imported.

sparse_fftconv (docs/design.md, "The Triton backend"):
  * fused path, n = n1 * n2 with padded tiles P1 x P2 <= ``FUSED_MAX_TILE`` elements (by default 8192 for
    fp16/bf16 and 4096 for float32: ``FUSED_DEFAULT_MAX_TILE``): one program per (batch row, channel).  An
    active channel's program loads u[:L] as a (P1, P2) tile (t = n2 j1 + j2, zero past L), and runs the
    length-n DFT as the four-step (Monarch) factorization entirely in registers: the n1-point DFT as a
    ``tl.dot`` with the (P1, P1) DFT matrix, the twiddle multiply, the n2-point DFT as a ``tl.dot`` with the
    (P2, P2) matrix (real and imaginary parts as separate tiles), the product with the spectrum k_f (read in
    the four-step's frequency order, the upper half by conjugate symmetry), the inverse the same way back,
    ``+ D u``, GELU if asked, and stores y[:L] only.  A pruned channel's program stores u (or gelu(u)); with
    ``append_ones`` the programs of the last channel also store the channel of ones.  One launch in all.
    Every tile rounded to fp16/bf16 for a tensor-core product is first scaled as by a unitary DFT
    (1/sqrt(n1), 1/sqrt(n2) in float32), so it stays at the input's scale (no fp16 overflow from the n-fold DC
    gain), while the DFT matrices themselves are not normalized (their 1, 0, +-1/2 entries stay exact).
  * fallback past the cut (or for float64): torch.fft on the gathered active channels (rfft, the product with
    k_f in place, irfft), then one Triton epilogue launch that adds D u, applies GELU, scatters the active rows
    and writes the pruned rows and the ones channel.
s4d_kernel: one program per (row, block of L); the modes summed one per step into the block's registers; the
  mode coefficients and the phase dt * A_imag * l (reduced to [-pi, pi] in turns) in float64, so a long kernel's
  phase has no float32 error.
dplr_spectrum: one program per (row, block of frequency bins); the Cauchy sums in float64, one mode per step.

The kernels use only Triton builtins (no ``tl.sum``, ``tl.zeros`` or other library functions that Triton jits
when it is imported: those stay compiled-mode functions if Triton was imported before ``TRITON_INTERPRET=1``
was set, and the interpreter cannot call them).
"""

from __future__ import annotations

import contextlib
import functools
import math
from typing import NamedTuple, Optional

import torch
import triton
import triton.language as tl

from s4op_kernels.ops import dispatch

# The fused path's size cut: the padded (P1, P2) tile of one sequence.  At 8192 elements (n = 8192, i.e. L up to
# 4096: every length of the paper) a program holds about four live float32 tiles (32 KB each) and reads DFT
# matrices of at most 128 x 128 from L2; past it the registers and shared memory one program can hold on an
# H100/H200-class SM (64 K registers, 228 KB shared) are exceeded and the FFT is better left to cuFFT.
FUSED_MAX_TILE = 8192
# The default cut per input dtype (the path= argument overrides it).  fp16/bf16 tiles run at the tensor cores'
# full rate.  float32 needs tf32x3 (three TF32 passes, about 6x the bf16 time) for float32 accuracy: at n = 8192
# one program's chain of dots is modelled slower than cuFFT (benchmarks/gpu/design_model.py), so float32 takes
# the fallback there until a GPU measurement (benchmarks/gpu/run_gpu_check.sh: ours vs ours_fallback) says more.
FUSED_DEFAULT_MAX_TILE = {torch.float16: 8192, torch.bfloat16: 8192, torch.float32: 4096}
MIN_DOT = 16  # tl.dot needs every dimension >= 16 on NVIDIA GPUs (the interpreter does not check it)
MAX_GRID = (2**31 - 1, 65535, 65535)  # CUDA grid limits per axis
INT32_MAX = 2**31 - 1
EPILOGUE_BLOCK = 1024
S4D_BLOCK_L = 128
DPLR_BLOCK_K = 128
FALLBACK_REASONS: dict[tuple, str] = {}  # shapes whose fused launch the GPU refused, and why (see _fused_ok)


# ----------------------------------------------------------------------------------------------------- kernels
def _fftconv_fused_kernel(
    u_ptr, y_ptr, kf_ptr, d_ptr, act_ptr, f1_ptr, f2_ptr, tw_ptr,
    H, L, H_OUT, A, SEARCH_STEPS, NBINS, N, S1, S2,
    N1: tl.constexpr, N2: tl.constexpr, P1: tl.constexpr, P2: tl.constexpr,
    GELU: tl.constexpr, ONES: tl.constexpr, INDEX_64: tl.constexpr, PRECISION: tl.constexpr,
):
    pid = tl.program_id(0)
    if INDEX_64:
        pid = pid.to(tl.int64)
    h = pid % H
    b = pid // H
    r = tl.arange(0, P1)[:, None]  # j1 (time) or k1 (frequency)
    c = tl.arange(0, P2)[None, :]  # j2 (time) or k2 (frequency)
    t = r * N2 + c
    in_seq = (r < N1) & (c < N2)
    valid = in_seq & (t < L)
    x = tl.load(u_ptr + (b * H + h) * L + t, mask=valid, other=0.0)
    xf = x.to(tl.float32)
    # This channel's row in the active list (binary search of the sorted ``active``; -1: pruned).  Every index
    # formed below is j in [0, A) or h in [0, H), whatever ``active`` holds: never out of bounds.
    lo = h * 0
    hi = lo + A
    for _ in range(0, SEARCH_STEPS):
        mid = (lo + hi) // 2
        v = tl.load(act_ptr + mid, mask=mid < A, other=0)
        right = v < h
        lo = tl.where(right, mid + 1, lo)
        hi = tl.where(right, hi, mid)
    hit = tl.load(act_ptr + lo, mask=lo < A, other=-1) == h
    slot = tl.where(hit, lo, -1)
    if slot >= 0:
        dot_t = f1_ptr.dtype.element_ty
        i1 = tl.arange(0, P1)
        i2 = tl.arange(0, P2)
        o1 = i1[:, None] * P1 + i1[None, :]
        o2 = i2[:, None] * P2 + i2[None, :]
        # The tables are exactly (2, P, P) and (2, P1, P2), padded with zeros on the host: every load is in bounds.
        f1r = tl.load(f1_ptr + o1)
        f1i = tl.load(f1_ptr + P1 * P1 + o1)
        f2r = tl.load(f2_ptr + o2)
        f2i = tl.load(f2_ptr + P2 * P2 + o2)
        twr = tl.load(tw_ptr + r * P2 + c)
        twi = tl.load(tw_ptr + P1 * P2 + r * P2 + c)
        # Forward: Y = F1 x (x real), twiddle, Z = Y F2.  Z[k1, k2] is bin k1 + n1 k2.  The DFT matrices are not
        # normalized (their entries 1, 0, +-1/2 stay exact in fp16/bf16); the scales 1/sqrt(n1) (S1) and
        # 1/sqrt(n2) (S2) are applied in float32 before each rounding to the dot dtype, twice each: 1/n in all.
        xd = x.to(dot_t)
        yr = tl.dot(f1r, xd, input_precision=PRECISION)
        yi = tl.dot(f1i, xd, input_precision=PRECISION)
        ar = ((yr * twr - yi * twi) * S1).to(dot_t)
        ai = ((yr * twi + yi * twr) * S1).to(dot_t)
        zr = tl.dot(ar, f2r, input_precision=PRECISION) - tl.dot(ai, f2i, input_precision=PRECISION)
        zi = tl.dot(ar, f2i, input_precision=PRECISION) + tl.dot(ai, f2r, input_precision=PRECISION)
        # The kernel's spectrum at bin k = k1 + n1 k2 (bins past n/2 by conjugate symmetry).
        k = r + N1 * c
        upper = k > N // 2
        kk = tl.where(upper, N - k, k)
        kbase = kf_ptr + slot * NBINS * 2
        kr = tl.load(kbase + 2 * kk, mask=in_seq, other=0.0)
        ki = tl.load(kbase + 2 * kk + 1, mask=in_seq, other=0.0)
        ki = tl.where(upper, -ki, ki)
        pr = ((zr * kr - zi * ki) * S2).to(dot_t)
        pi = ((zr * ki + zi * kr) * S2).to(dot_t)
        # Inverse: V = P conj(F2), conjugate twiddle, y = Re(conj(F1) W).
        vr = tl.dot(pr, f2r, input_precision=PRECISION) + tl.dot(pi, f2i, input_precision=PRECISION)
        vi = tl.dot(pi, f2r, input_precision=PRECISION) - tl.dot(pr, f2i, input_precision=PRECISION)
        wr = ((vr * twr + vi * twi) * S2).to(dot_t)
        wi = ((vi * twr - vr * twi) * S2).to(dot_t)
        conv = (tl.dot(f1r, wr, input_precision=PRECISION) + tl.dot(f1i, wi, input_precision=PRECISION)) * S1
        y = conv + tl.load(d_ptr + slot).to(tl.float32) * xf
    else:
        y = xf
    if GELU:
        y = 0.5 * y * (1.0 + tl.math.erf(y * 0.7071067811865476))
    out_row = y_ptr + (b * H_OUT + h) * L
    tl.store(out_row + t, y.to(y_ptr.dtype.element_ty), mask=valid)
    if ONES:
        if h == H - 1:
            ones = tl.full((P1, P2), 1.0, tl.float32)
            tl.store(y_ptr + (b * H_OUT + H) * L + t, ones.to(y_ptr.dtype.element_ty), mask=valid)


def _fftconv_epilogue_kernel(
    u_ptr, ya_ptr, y_ptr, d_ptr, act_ptr, H, L, H_OUT, A, SEARCH_STEPS, YA_ROW,
    BLOCK: tl.constexpr, GELU: tl.constexpr, ONES: tl.constexpr, INDEX_64: tl.constexpr, F64: tl.constexpr,
):
    pid = tl.program_id(0)
    if INDEX_64:
        pid = pid.to(tl.int64)
    h = pid % H
    b = pid // H
    t = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    m = t < L
    cdt = tl.float64 if F64 else tl.float32
    x = tl.load(u_ptr + (b * H + h) * L + t, mask=m, other=0.0).to(cdt)
    # This channel's row in the active list (binary search of the sorted ``active``; -1: pruned).  Every index
    # formed below is j in [0, A) or h in [0, H), whatever ``active`` holds: never out of bounds.
    lo = h * 0
    hi = lo + A
    for _ in range(0, SEARCH_STEPS):
        mid = (lo + hi) // 2
        v = tl.load(act_ptr + mid, mask=mid < A, other=0)
        right = v < h
        lo = tl.where(right, mid + 1, lo)
        hi = tl.where(right, hi, mid)
    hit = tl.load(act_ptr + lo, mask=lo < A, other=-1) == h
    slot = tl.where(hit, lo, -1)
    if slot >= 0:
        conv = tl.load(ya_ptr + (b * A + slot) * YA_ROW + t, mask=m, other=0.0).to(cdt)
        y = conv + tl.load(d_ptr + slot).to(cdt) * x
    else:
        y = x
    if GELU:
        y = 0.5 * y * (1.0 + tl.math.erf(y * 0.7071067811865476))
    tl.store(y_ptr + (b * H_OUT + h) * L + t, y.to(y_ptr.dtype.element_ty), mask=m)
    if ONES:
        if h == H - 1:
            ones = tl.full((BLOCK,), 1.0, tl.float32)
            tl.store(y_ptr + (b * H_OUT + H) * L + t, ones.to(y_ptr.dtype.element_ty), mask=m)


def _s4d_kernel_kernel(
    c_ptr, log_dt_ptr, lar_ptr, ai_ptr, rows_ptr, out_ptr, H, N2, L,
    BLOCK_L: tl.constexpr, F64: tl.constexpr, INDEX_64: tl.constexpr,
):
    j = tl.program_id(0)
    if INDEX_64:
        j = j.to(tl.int64)
    row = tl.load(rows_ptr + j)  # int64
    row_ok = (row >= 0) & (row < H)  # a row out of range reads row 0 and yields NaN: never out of bounds
    row = tl.where(row_ok, row, 0)
    l = tl.program_id(1) * BLOCK_L + tl.arange(0, BLOCK_L)
    lm = l < L
    lf = l.to(tl.float64)
    dt = tl.exp(tl.load(log_dt_ptr + row).to(tl.float64))
    cdt = tl.float64 if F64 else tl.float32
    acc = tl.full((BLOCK_L,), 0.0, cdt)
    # One mode per step, summed into the block's registers (no cross-lane reduction).
    for n in range(0, N2):
        off = row * N2 + n
        a_re = -tl.exp(tl.load(lar_ptr + off).to(tl.float64))
        a_im = tl.load(ai_ptr + off).to(tl.float64)
        cr = tl.load(c_ptr + 2 * off).to(tl.float64)
        ci = tl.load(c_ptr + 2 * off + 1).to(tl.float64)
        dar = dt * a_re
        dai = dt * a_im
        # Cd = C (exp(dt A) - 1) / A, in float64.
        e = tl.exp(dar)
        er = e * tl.cos(dai) - 1.0
        ei = e * tl.sin(dai)
        nr = cr * er - ci * ei
        ni = cr * ei + ci * er
        den = a_re * a_re + a_im * a_im
        cdr = ((nr * a_re + ni * a_im) / den).to(cdt)
        cdi = ((ni * a_re - nr * a_im) / den).to(cdt)
        # exp(dt A l): the decay from a float64 exponent, the phase dt A_imag l reduced in turns in float64.
        decay = tl.exp((dar * lf).to(cdt))
        turns = dai * lf * 0.15915494309189535
        turns = turns - tl.floor(turns + 0.5)
        phase = (turns * 6.283185307179586).to(cdt)
        acc += decay * (cdr * tl.cos(phase) - cdi * tl.sin(phase))
    acc = tl.where(row_ok, 2.0 * acc, float("nan"))
    tl.store(out_ptr + j * L + l, acc.to(out_ptr.dtype.element_ty), mask=lm)


def _dplr_spectrum_kernel(
    log_dt_ptr, ar_ptr, ai_ptr, b_ptr, p_ptr, c_ptr, rows_ptr, out_ptr, H, N2, M, K,
    BLOCK_K: tl.constexpr, INDEX_64: tl.constexpr,
):
    j = tl.program_id(0)
    if INDEX_64:
        j = j.to(tl.int64)
    row = tl.load(rows_ptr + j)
    row_ok = (row >= 0) & (row < H)  # a row out of range reads row 0 and yields NaN: never out of bounds
    row = tl.where(row_ok, row, 0)
    k = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    km = k < K
    phi = k.to(tl.float64) * 3.141592653589793 / M  # float64 throughout (a float literal / int32 M is float32)
    cb = tl.cos(phi)
    sb = tl.sin(phi)
    rot_r = cb
    rot_i = sb
    cb = tl.where(2 * k == M, 0.0, cb)  # exact zero at the Nyquist bin of an even M
    dt = tl.exp(tl.load(log_dt_ptr + row).to(tl.float64))
    zero = tl.full((BLOCK_K,), 0.0, tl.float64)
    r00r, r00i, r01r, r01i, r10r, r10i, r11r, r11i = zero, zero, zero, zero, zero, zero, zero, zero
    c2 = cb * cb
    s2 = 4.0 * sb * sb
    sc = 4.0 * sb * cb
    # One mode per step, summed into the block's registers (no cross-lane reduction).
    for n in range(0, N2):
        off = row * N2 + n
        wr = -tl.exp(tl.load(ar_ptr + off).to(tl.float64)) * dt
        wi = -tl.load(ai_ptr + off).to(tl.float64) * dt
        br = tl.load(b_ptr + 2 * off).to(tl.float64)
        bi = tl.load(b_ptr + 2 * off + 1).to(tl.float64)
        pr = tl.load(p_ptr + 2 * off).to(tl.float64)
        pim = tl.load(p_ptr + 2 * off + 1).to(tl.float64)
        cr = tl.load(c_ptr + 2 * off).to(tl.float64)
        ci = tl.load(c_ptr + 2 * off + 1).to(tl.float64)
        qr = pr
        qi = -pim
        # 1 / den, den = (|w|^2 c^2 - 4 s^2) - 4 i Re(w) s c, per bin.
        den_r = (wr * wr + wi * wi) * c2 - s2
        den_i = -wr * sc
        mag = den_r * den_r + den_i * den_i
        inv_r = den_r / mag
        inv_i = -den_i / mag
        # v = dt (row i of [B; P]) (row j of [C; Q]); num = -2 Re(v conj(w)) c + 4 i Re(v) s.
        v00r = dt * (br * cr - bi * ci)
        v00i = dt * (br * ci + bi * cr)
        v01r = dt * (br * qr - bi * qi)
        v01i = dt * (br * qi + bi * qr)
        v10r = dt * (pr * cr - pim * ci)
        v10i = dt * (pr * ci + pim * cr)
        v11r = dt * (pr * qr - pim * qi)
        v11i = dt * (pr * qi + pim * qr)
        beta = -2.0 * (v00r * wr + v00i * wi) * cb
        alpha = 4.0 * v00r * sb
        r00r += beta * inv_r - alpha * inv_i
        r00i += beta * inv_i + alpha * inv_r
        beta = -2.0 * (v01r * wr + v01i * wi) * cb
        alpha = 4.0 * v01r * sb
        r01r += beta * inv_r - alpha * inv_i
        r01i += beta * inv_i + alpha * inv_r
        beta = -2.0 * (v10r * wr + v10i * wi) * cb
        alpha = 4.0 * v10r * sb
        r10r += beta * inv_r - alpha * inv_i
        r10i += beta * inv_i + alpha * inv_r
        beta = -2.0 * (v11r * wr + v11i * wi) * cb
        alpha = 4.0 * v11r * sb
        r11r += beta * inv_r - alpha * inv_i
        r11i += beta * inv_i + alpha * inv_r
    # kf = exp(i phi) (R00 - c R01 R10 / (1 + c R11))
    tr = r01r * r10r - r01i * r10i
    ti = r01r * r10i + r01i * r10r
    dr = 1.0 + cb * r11r
    di = cb * r11i
    dm = dr * dr + di * di
    qr_ = (tr * dr + ti * di) / dm
    qi_ = (ti * dr - tr * di) / dm
    sr = r00r - cb * qr_
    si = r00i - cb * qi_
    outr = tl.where(row_ok, rot_r * sr - rot_i * si, float("nan"))
    outi = tl.where(row_ok, rot_r * si + rot_i * sr, float("nan"))
    base = out_ptr + (j * K + k) * 2
    tl.store(base, outr.to(out_ptr.dtype.element_ty), mask=km)
    tl.store(base + 1, outi.to(out_ptr.dtype.element_ty), mask=km)


_KERNEL_FUNCTIONS = {
    "fused": _fftconv_fused_kernel, "epilogue": _fftconv_epilogue_kernel, "s4d": _s4d_kernel_kernel,
    "dplr": _dplr_spectrum_kernel,
}


def interpreting() -> bool:
    """Triton's interpreter is on (read as Triton reads it when a kernel is jitted: ``triton.knobs`` from
    Triton 3.4, the environment before)."""
    knobs = getattr(triton, "knobs", None)
    return bool(knobs.runtime.interpret) if knobs is not None else dispatch.triton_interpreting()


@functools.lru_cache(maxsize=None)
def _compiled(interpret: bool) -> dict:
    """The kernels as Triton functions for one mode (``interpret`` must equal :func:`interpreting` now:
    ``triton.jit`` reads the mode when it is applied).  The fused FFT kernel is autotuned over the warp count
    on a GPU; the interpreter gets one configuration."""
    jitted = {name: triton.jit(fn) for name, fn in _KERNEL_FUNCTIONS.items()}
    warps = (4,) if interpret else (4, 8)
    jitted["fused"] = triton.autotune([triton.Config({}, num_warps=w, num_stages=1) for w in warps],
                                      key=["P1", "P2", "GELU"])(jitted["fused"])
    return jitted


def _kernel(name: str):
    return _compiled(interpreting())[name]


# ----------------------------------------------------------------------------------------------------- plans
def _pow2_tile(m: int) -> int:
    """The tile size that holds m points: a power of two, at least the tl.dot minimum."""
    return max(MIN_DOT, 1 << max(0, m - 1).bit_length())


class FFTPlan(NamedTuple):
    n: int
    n1: int
    n2: int
    P1: int
    P2: int


@functools.lru_cache(maxsize=256)
def fft_plan(n: int) -> Optional[FFTPlan]:
    """The fused path's factorization n = n1 * n2 with the smallest padded tile P1 x P2 (ties: the fewest
    multiply-adds, P1 P2 (P1 + 2 P2) per direction), or None when even that tile exceeds FUSED_MAX_TILE."""
    best = None
    for n1 in range(1, n + 1):
        if n % n1:
            continue
        n2 = n // n1
        P1, P2 = _pow2_tile(n1), _pow2_tile(n2)
        score = (P1 * P2, P1 * P2 * (P1 + 2 * P2), abs(P1 - P2))
        if best is None or score < best[0]:
            best = (score, FFTPlan(n, n1, n2, P1, P2))
    plan = best[1]
    if plan.P1 * plan.P2 > FUSED_MAX_TILE:
        return None
    assert min(plan.P1, plan.P2) >= MIN_DOT, "tl.dot needs every tile dimension >= 16"
    return plan


def check_grid(grid: tuple, what: str) -> tuple:
    """Refuse a launch grid beyond CUDA's per-axis limits (the interpreter does not check them)."""
    for axis, (size, limit) in enumerate(zip(grid, MAX_GRID)):
        if size > limit:
            raise ValueError(f"{what}: the launch grid needs {size} programs along axis {axis}, more than the GPU's "
                             f"limit of {limit}; split the call (fewer rows or a shorter sequence)")
    return grid


def needs_int64(*extents: int) -> bool:
    """Element offsets past int32: the kernels then compute them in int64 (``INDEX_64``)."""
    return max(extents, default=0) > INT32_MAX


@functools.lru_cache(maxsize=32)
def _dft_tables(plan: FFTPlan, dot_dtype: torch.dtype, device: torch.device):
    """(F1 (2, P1, P1), F2 (2, P2, P2) in the dot dtype, twiddles (2, P1, P2) float32), zero-padded, not
    normalized (a 1/sqrt(m) factor would round the same way in every entry: a coherent error of 4 roundings in
    fp16).  Built in float64 with exact integer reduction of the angles."""
    n, n1, n2, P1, P2 = plan

    def dft(m: int, P: int) -> torch.Tensor:
        i = torch.arange(m, dtype=torch.int64)
        ang = (torch.outer(i, i) % m).double() * (-2 * math.pi / m)
        out = torch.zeros(2, P, P, dtype=torch.float64)
        out[0, :m, :m], out[1, :m, :m] = torch.cos(ang), torch.sin(ang)
        return out

    k1, j2 = torch.arange(n1, dtype=torch.int64), torch.arange(n2, dtype=torch.int64)
    ang = (torch.outer(k1, j2) % n).double() * (-2 * math.pi / n)
    tw = torch.zeros(2, P1, P2, dtype=torch.float64)
    tw[0, :n1, :n2], tw[1, :n1, :n2] = torch.cos(ang), torch.sin(ang)
    return (dft(n1, P1).to(device=device, dtype=dot_dtype), dft(n2, P2).to(device=device, dtype=dot_dtype),
            tw.to(device=device, dtype=torch.float32))


def _check_device(t: torch.Tensor, what: str) -> None:
    if not dispatch.triton_runs_on(t.device):
        raise ValueError(f"{what}: the Triton kernels run on CUDA tensors, or on CPU tensors under TRITON_INTERPRET=1, "
                         f"got tensors on {t.device}")
    if t.device.type == "cpu" and not interpreting():
        raise RuntimeError(f"{what}: CPU tensors need Triton's interpreter, but triton.knobs.runtime.interpret is off")


def _launch(name: str, device: torch.device, grid: tuple, *args, **kwargs) -> None:
    """Launch kernel ``name`` on ``device`` (Triton launches on the current CUDA device: made ``device`` here)."""
    with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
        _kernel(name)[grid](*args, **kwargs)


# ----------------------------------------------------------------------------------------------------- launchers
def check_active(active: torch.Tensor, H: int, what: str) -> None:
    """On CPU tensors (the interpreter), the op's contract on ``active``: sorted, distinct, in [0, H).  Not on a
    GPU (it would cost a host synchronization per call): there the kernels' binary search treats a channel it
    does not find as pruned, and every index they form stays in bounds whatever ``active`` holds."""
    A = active.shape[0]
    if active.device.type == "cpu" and A:
        if int(active.min()) < 0 or int(active.max()) >= H:
            raise ValueError(f"{what}: active holds channel indices outside [0, {H})")
        if A > 1 and not bool((active[1:] > active[:-1]).all()):
            raise ValueError(f"{what}: active must be strictly increasing (sorted, distinct channel indices)")


def _fused_ok(plan: Optional[FFTPlan], u: torch.Tensor) -> bool:
    """The default path is the fused one: a plan within the dtype's cut, and no earlier refusal by this GPU."""
    if plan is None or plan.P1 * plan.P2 > FUSED_DEFAULT_MAX_TILE.get(u.dtype, 0):
        return False
    return (plan, u.dtype, u.device.type) not in FALLBACK_REASONS


def sparse_fftconv(u: torch.Tensor, k_f: torch.Tensor, D: torch.Tensor, active: torch.Tensor, n_fft: int,
                   activation: str = "none", append_ones: bool = False, *, path: Optional[str] = None,
                   out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The op on the Triton kernels (arguments already checked by the op's ``_check_args``).

    ``path``: None (the fused path when :func:`fft_plan` has a plan for n_fft within the dtype's
    ``FUSED_DEFAULT_MAX_TILE``, else the fallback), ``"fused"`` or ``"fallback"`` (tests and benchmarks).
    ``out``: the (B, H [+ 1], L) output to write (tests place it inside a larger sentinel buffer)."""
    what = "sparse_fftconv"
    _check_device(u, what)
    B, H, L = u.shape
    H_out = H + 1 if append_ones else H
    if out is None:
        out = torch.empty((B, H_out, L), dtype=u.dtype, device=u.device)
    elif tuple(out.shape) != (B, H_out, L) or out.dtype != u.dtype or not out.is_contiguous():
        raise ValueError(f"{what}: out must be a contiguous {(B, H_out, L)} {u.dtype} tensor")
    if out.numel() == 0:
        return out
    u = u.contiguous()
    A = active.shape[0]
    check_active(active, H, what)
    active = active.contiguous()
    steps = A.bit_length()  # binary search steps over A sorted entries
    gelu = activation == "gelu"
    plan = fft_plan(n_fft)
    if path is None:
        path = "fused" if _fused_ok(plan, u) else "fallback"
    if path == "fused" and (plan is None or u.dtype == torch.float64):
        raise ValueError(f"{what}: no fused plan for n_fft={n_fft} and {u.dtype} (padded tile > {FUSED_MAX_TILE} "
                         "elements, or float64)")
    compute = torch.float64 if u.dtype == torch.float64 else torch.float32
    kf_real = torch.view_as_real(k_f.contiguous())  # (A, bins, 2)
    D = D.to(compute).contiguous()
    if path == "fused":
        dot_dtype = torch.float32 if u.dtype == torch.float32 else u.dtype
        f1, f2, tw = _dft_tables(plan, dot_dtype, u.device)
        index_64 = needs_int64(u.numel(), out.numel(), kf_real.numel())
        grid = check_grid((B * H,), what)
        try:
            _launch(
                "fused", u.device, grid,
                u, out, kf_real, D, active, f1, f2, tw, H, L, H_out, A, steps, n_fft // 2 + 1, n_fft,
                1 / math.sqrt(plan.n1), 1 / math.sqrt(plan.n2),
                N1=plan.n1, N2=plan.n2, P1=plan.P1, P2=plan.P2, GELU=gelu, ONES=append_ones, INDEX_64=index_64,
                PRECISION="tf32x3" if u.dtype == torch.float32 else "tf32",  # (only fp32 operands read it)
            )
            return out
        except triton.runtime.errors.OutOfResources as err:  # this GPU cannot hold the tile: fall back, once
            FALLBACK_REASONS[(plan, u.dtype, u.device.type)] = str(err)
    # Fallback: torch.fft on the gathered active rows, then the fused epilogue.
    if A and B:
        ua = u.index_select(1, active).to(compute)  # (B, A, L)
        spec = torch.fft.rfft(ua, n=n_fft)
        spec.mul_(k_f.to(spec.dtype))
        ya = torch.fft.irfft(spec, n=n_fft)  # (B, A, n_fft): the first L of each row are read
    else:
        ya = u.new_empty((0,), dtype=compute)
    index_64 = needs_int64(u.numel(), out.numel(), ya.numel())
    grid = check_grid((B * H, triton.cdiv(L, EPILOGUE_BLOCK)), what)
    _launch(
        "epilogue", u.device, grid,
        u, ya if ya.numel() else u, out, D, active, H, L, H_out, A, steps, n_fft,
        BLOCK=EPILOGUE_BLOCK, GELU=gelu, ONES=append_ones, INDEX_64=index_64, F64=compute == torch.float64,
    )
    return out


def s4d_kernel(C: torch.Tensor, log_dt: torch.Tensor, log_A_real: torch.Tensor, A_imag: torch.Tensor, L: int,
               rows: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The op on the Triton kernel (arguments already checked): K (A, L) of C's dtype."""
    what = "s4d_kernel"
    _check_device(C, what)
    H, N2 = C.shape[0], C.shape[1]
    rows = _rows(rows, H, C.device, what)
    A = rows.shape[0]
    out = torch.empty((A, L), dtype=C.dtype, device=C.device)
    if out.numel() == 0:
        return out
    if N2 == 0:
        return out.zero_()
    grid = check_grid((A, triton.cdiv(L, S4D_BLOCK_L)), what)
    _launch(
        "s4d", C.device, grid,
        C.contiguous(), log_dt.contiguous(), log_A_real.contiguous(), A_imag.contiguous(), rows, out, H, N2, L,
        BLOCK_L=S4D_BLOCK_L, F64=C.dtype == torch.float64,
        INDEX_64=needs_int64(out.numel(), C.numel()),
    )
    return out


def dplr_spectrum(log_dt, A_real, A_imag, B, P, C, M: int, rows=None, L=None, n_fft: int = 0) -> torch.Tensor:
    """The op on the Triton kernel (arguments already checked): the Cauchy sums per (row, bin) in float64;
    with ``n_fft`` the truncation round trip in torch.fft."""
    what = "dplr_spectrum"
    _check_device(C, what)
    H, N2 = C.shape[0], C.shape[1]
    rows = _rows(rows, H, C.device, what)
    A, K = rows.shape[0], M // 2 + 1
    out = torch.empty((A, K, 2), dtype=C.dtype, device=C.device)
    if A and N2 == 0:
        out.zero_()
    elif A:
        grid = check_grid((A, triton.cdiv(K, DPLR_BLOCK_K)), what)
        _launch(
            "dplr", C.device, grid,
            *(t.contiguous() for t in (log_dt, A_real, A_imag, B, P, C)), rows, out, H, N2, M, K,
            BLOCK_K=DPLR_BLOCK_K, INDEX_64=needs_int64(out.numel(), B.numel()),
        )
    kf = torch.view_as_complex(out)
    if n_fft:
        kf = torch.fft.rfft(torch.fft.irfft(kf, n=M)[..., :L], n=n_fft)
    return kf


def _rows(rows: Optional[torch.Tensor], H: int, device: torch.device, what: str) -> torch.Tensor:
    """The rows to compute as a contiguous int64 tensor; on CPU tensors checked to lie in [0, H).  On a GPU
    (no host synchronization per call) the kernels themselves never read out of bounds: a row outside
    [0, H) gives a row of NaN."""
    if rows is None:
        return torch.arange(H, dtype=torch.int64, device=device)
    rows = rows.contiguous()
    if rows.device.type == "cpu" and rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= H):
        raise IndexError(f"{what}: rows holds indices outside [0, {H})")
    return rows
