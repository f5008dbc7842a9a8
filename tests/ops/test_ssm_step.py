"""ssm_step and its companions: the step coefficients (compiled core against the float64 references), the step and
a chunk's state part (core against reference, and against the float64 recurrence they define), custom-op checks,
fakes, and the binding's argument checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import s4op_kernels
from s4op_kernels import _ext
from s4op_kernels.ops import (
    dplr_step_coefficients, dplr_step_coefficients_ref, s4d_step_coefficients, s4d_step_coefficients_ref,
    ssm_chunk_state, ssm_chunk_state_ref, ssm_step, ssm_step_ref,
)
from factories import make_s4d
from tolerances import assert_close

DTYPES = [pytest.param(torch.float32, id="fp32"), pytest.param(torch.float64, id="fp64")]
BACKENDS = s4op_kernels.available_backends()


def dplr_params(H: int, N2: int, seed: int, dtype=torch.float32, legs: bool = True):
    """(log_dt, A_real, A_imag, B, P, C_f, D) of H channels: LegS-like |P_n| ~ sqrt(n + 1/2) (the rank-1 term's
    cancellation is largest there) or small random P."""
    g = torch.Generator().manual_seed(seed)
    r = torch.sqrt(torch.arange(N2) + 0.5) if legs else torch.full((N2,), 0.5)
    cplx = lambda scale: torch.randn(H, N2, 2, generator=g) * scale  # noqa: E731
    log_dt = torch.rand(H, generator=g) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3)
    A_real = torch.log(0.5 + 0.1 * torch.rand(H, N2, generator=g))
    A_imag = math.pi * torch.arange(N2) + torch.rand(H, N2, generator=g)
    P = cplx(1.0) * (r / math.sqrt(2)).view(1, N2, 1)
    return tuple(t.to(dtype) for t in (log_dt, A_real, A_imag, cplx(1.0), P, cplx(0.5), torch.randn(H, generator=g)))


def s4d_params(H: int, N2: int, seed: int, dtype=torch.float32):
    layer = make_s4d(H, 2 * N2, seed, dtype)
    k = layer.kernel
    return tuple(t.detach() for t in (k.C, k.log_dt, k.log_A_real, k.A_imag, layer.D))


def coefficients(kind: str, H: int, N2: int, seed: int, dtype, rows=None):
    if kind == "s4d":
        return s4d_step_coefficients_ref(*s4d_params(H, N2, seed, dtype), rows)
    return dplr_step_coefficients_ref(*dplr_params(H, N2, seed, dtype), rows)


def recurrence64(modes, scalars, active, u, x0):
    """The step of the module docstring in complex128, sample by sample: (y (B, H, L), x_end (B, A, N2) complex)."""
    m = torch.complex(modes[:, :, 0].double(), modes[:, :, 1].double())  # (A, F, N2)
    sc = scalars.double()
    x = torch.complex(x0[..., 0].double(), x0[..., 1].double())
    u = u.double()
    y = u.clone()
    for t in range(u.shape[-1]):
        ua = u[:, active, t]
        xn = m[:, 0] * x + m[:, 1] * ua[..., None]
        if m.shape[1] == 7:
            s1 = 2 * (m[:, 5] * x).sum(-1).real
            tt = 2 * (m[:, 6] * x).sum(-1).real + sc[:, 1] * s1 + sc[:, 2] * ua
            xn = xn + m[:, 3] * s1[..., None] + m[:, 4] * tt[..., None]
        x = xn
        y[:, active, t] = 2 * (m[:, 2] * x).sum(-1).real + sc[:, 0] * ua
    return y, x


# ---------------------------------------------------------------------------------------------- coefficients
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["s4d", "dplr"])
def test_core_coefficients_match_the_reference(kind, dtype):
    rows = torch.tensor([4, 0, 2, 2])  # any order, repeats
    H, N2 = 5, 7
    if kind == "s4d":
        params = s4d_params(H, N2, 1, dtype)
        ref, fn = s4d_step_coefficients_ref(*params, rows), s4d_step_coefficients
    else:
        params = dplr_params(H, N2, 1, dtype)
        ref, fn = dplr_step_coefficients_ref(*params, rows), dplr_step_coefficients
    with torch.no_grad(), s4op_kernels.use_backend("cpu"):
        got = fn(*params, rows)
    for g, r in zip(got, ref):
        assert g.dtype == dtype and g.shape == r.shape
        # both compute in float64 and round: equal to a few ulps of the dtype
        assert_close(g, r, dtype, what=f"{kind} coefficients", rtol=4 * torch.finfo(dtype).eps)


def test_s4d_coefficients_are_the_zoh_discretization():
    C, log_dt, log_A_real, A_imag, D = s4d_params(3, 4, 2, torch.float64)
    modes, scalars = s4d_step_coefficients_ref(C, log_dt, log_A_real, A_imag, D)
    A = torch.complex(-torch.exp(log_A_real), A_imag)
    dtA = A * torch.exp(log_dt)[:, None]
    m = torch.complex(modes[:, :, 0], modes[:, :, 1])
    assert torch.allclose(m[:, 0], torch.exp(dtA), rtol=1e-14, atol=0)
    assert torch.allclose(m[:, 1], (torch.exp(dtA) - 1) / A, rtol=1e-12, atol=0)
    assert torch.equal(scalars[:, 0], D) and not scalars[:, 1:].any()


def test_dplr_coefficients_step_the_bilinear_system():
    """One step from a random conjugate-symmetric state equals (I - h A_f)^-1 ((I + h A_f) x + dt B_f u)."""
    H, N2 = 2, 5
    log_dt, A_real, A_imag, B, P, C_f, D = dplr_params(H, N2, 3, torch.float64)
    modes, scalars = dplr_step_coefficients_ref(log_dt, A_real, A_imag, B, P, C_f, D)
    g = torch.Generator().manual_seed(4)
    x0 = torch.randn(1, H, N2, 2, generator=g, dtype=torch.float64)
    u = torch.randn(1, H, generator=g, dtype=torch.float64)
    y, x1 = ssm_step_ref(modes, scalars, torch.arange(H), u, x0)
    for h in range(H):
        dt = math.exp(float(log_dt[h]))
        lam = torch.complex(-torch.exp(A_real[h]), -A_imag[h])
        Pf = torch.cat([torch.complex(P[h, :, 0], P[h, :, 1]), torch.complex(P[h, :, 0], -P[h, :, 1])])
        Bf = torch.cat([torch.complex(B[h, :, 0], B[h, :, 1]), torch.complex(B[h, :, 0], -B[h, :, 1])])
        Af = torch.diag(torch.cat([lam, lam.conj()])) - torch.outer(Pf, Pf.conj())
        xf = torch.complex(x0[0, h, :, 0], x0[0, h, :, 1])
        xf = torch.cat([xf, xf.conj()])
        eye = torch.eye(2 * N2, dtype=torch.complex128)
        want = torch.linalg.solve(eye - dt / 2 * Af, (eye + dt / 2 * Af) @ xf + dt * Bf * u[0, h])
        got = torch.complex(x1[0, h, :, 0], x1[0, h, :, 1])
        assert torch.allclose(got, want[:N2], rtol=1e-12, atol=1e-12)
        Cf = torch.complex(C_f[h, :, 0], C_f[h, :, 1])
        assert abs(float(y[0, h]) - float((torch.cat([Cf, Cf.conj()]) @ want).real + D[h] * u[0, h])) < 1e-12


# ---------------------------------------------------------------------------------------------- step and chunk state
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["s4d", "dplr"])
def test_steps_and_chunk_state_match_the_float64_recurrence(kind, dtype, backend):
    B, H, N2, L1, L2 = 3, 7, 6, 29, 41
    active = torch.tensor([0, 3, 4, 6])
    modes, scalars = coefficients(kind, H, N2, 5, dtype, active)
    g = torch.Generator().manual_seed(6)
    u = torch.randn(B, H, L1 + L2, generator=g).to(dtype)
    x = torch.zeros(B, 4, N2, 2, dtype=dtype)
    y_want, x_want = recurrence64(modes, scalars, active, u, x)
    with torch.no_grad(), s4op_kernels.use_backend(backend):
        ys = []
        for t in range(L1):
            y, x = ssm_step(modes, scalars, active, u[:, :, t], x)
            ys.append(y)
        y_free, x_end = ssm_chunk_state(modes, scalars, active, u[:, :, L1:], x)
    assert_close(torch.stack(ys, -1), y_want[..., :L1], dtype, what="steps")
    # the chunk's outputs are its zero-state response (the recurrence from zero) plus y_free
    y_zero, _ = recurrence64(modes, scalars, active, u[:, :, L1:], torch.zeros_like(x))
    y_chunk = y_zero.clone()
    y_chunk[:, active] += y_free.double()
    assert_close(y_chunk, y_want[..., L1:], dtype, what="chunk")
    assert_close(x_end, torch.view_as_real(x_want), dtype, what="state after the chunk")


@pytest.mark.parametrize("dtype", DTYPES)
def test_gelu_epilogue_and_pruned_channels(dtype):
    modes, scalars = coefficients("dplr", 6, 4, 7, dtype, torch.tensor([1, 2]))
    u = torch.randn(2, 6, dtype=dtype)
    x = torch.randn(2, 2, 4, 2, dtype=dtype)
    for backend in BACKENDS:
        with torch.no_grad(), s4op_kernels.use_backend(backend):
            y, x1 = ssm_step(modes, scalars, torch.tensor([1, 2]), u, x)
            yg, x2 = ssm_step(modes, scalars, torch.tensor([1, 2]), u, x, "gelu")
        keep = torch.tensor([0, 3, 4, 5])
        assert torch.equal(y[:, keep], u[:, keep])  # pruned: identity
        assert_close(yg, torch.nn.functional.gelu(y.double()), dtype, what="gelu")
        assert torch.equal(x1, x2)
    with pytest.raises(ValueError, match="activation"):
        ssm_step(modes, scalars, torch.tensor([1, 2]), u, x, "relu")


def test_no_active_channel_passes_everything_through():
    modes, scalars = coefficients("s4d", 4, 3, 8, torch.float32, torch.tensor([], dtype=torch.int64))
    u = torch.randn(2, 4, 5)
    x = torch.zeros(2, 0, 3, 2)
    for backend in BACKENDS:
        with torch.no_grad(), s4op_kernels.use_backend(backend):
            y, x1 = ssm_step(modes, scalars, torch.tensor([], dtype=torch.int64), u[..., 0], x)
            y_free, x2 = ssm_chunk_state(modes, scalars, torch.tensor([], dtype=torch.int64), u, x)
        assert torch.equal(y, u[..., 0]) and x1.shape == x2.shape == (2, 0, 3, 2) and y_free.shape == (2, 0, 5)


def test_the_step_does_not_modify_its_inputs():
    modes, scalars = coefficients("dplr", 3, 4, 9, torch.float32)
    u, x = torch.randn(1, 3), torch.randn(1, 3, 4, 2)
    before = x.clone()
    with torch.no_grad():
        ssm_step(modes, scalars, torch.arange(3), u, x)
        ssm_chunk_state(modes, scalars, torch.arange(3), u[..., None].expand(1, 3, 4).contiguous(), x)
    assert torch.equal(x, before)


def test_opcheck():
    for dtype in (torch.float32, torch.float64):
        s4d = s4d_params(4, 3, 10, dtype)
        dplr = dplr_params(4, 3, 10, dtype)
        rows = torch.tensor([3, 1])
        torch.library.opcheck(torch.ops.s4op.s4d_step_coefficients.default, s4d)
        torch.library.opcheck(torch.ops.s4op.s4d_step_coefficients.default, s4d + (rows,))
        torch.library.opcheck(torch.ops.s4op.dplr_step_coefficients.default, dplr + (rows,))
        for modes, scalars in (s4d_step_coefficients_ref(*s4d, rows), dplr_step_coefficients_ref(*dplr, rows)):
            u, x = torch.randn(2, 4, 6, dtype=dtype), torch.randn(2, 2, 3, 2, dtype=dtype)
            torch.library.opcheck(torch.ops.s4op.ssm_step.default, (modes, scalars, rows.sort().values, u[..., 0], x))
            torch.library.opcheck(torch.ops.s4op.ssm_step.default,
                                  (modes, scalars, rows.sort().values, u[..., 0], x, "gelu"))
            torch.library.opcheck(torch.ops.s4op.ssm_chunk_state.default, (modes, scalars, rows.sort().values, u, x))


@pytest.mark.parametrize("bad, match", [
    ("x_shape", r"x must be \(B, A, N2, 2\)"),
    ("modes_fields", r"modes must be \(A, 3 or 7, 2, N2\)"),
    ("u_dtype", r"must be torch.float32 like u|must be float32 or float64"),
    ("scalars_shape", r"scalars must be"),
])
def test_the_fake_refuses_wrong_shapes(bad, match):
    modes, scalars = coefficients("s4d", 4, 3, 11, torch.float32)
    args = dict(modes=modes, scalars=scalars, active=torch.arange(4), u=torch.randn(2, 4), x=torch.zeros(2, 4, 3, 2))
    if bad == "x_shape":
        args["x"] = torch.zeros(2, 4, 2, 2)
    elif bad == "modes_fields":
        args["modes"] = torch.zeros(4, 5, 2, 3)
    elif bad == "u_dtype":
        args["u"] = args["u"].to(torch.float16)
    else:
        args["scalars"] = torch.zeros(4, 2)
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode() as mode, pytest.raises((ValueError, TypeError, RuntimeError), match=match):
        torch.ops.s4op.ssm_step.default(*(mode.from_tensor(t) for t in args.values()))


# ---------------------------------------------------------------------------------------------- binding
def _np_step_args(**over):
    modes, scalars = (t.numpy() for t in coefficients("s4d", 4, 3, 12, torch.float32, torch.tensor([0, 2])))
    args = dict(modes=modes, scalars=scalars, active=np.array([0, 2]), u=np.zeros((2, 4), np.float32),
                x=np.zeros((2, 2, 3, 2), np.float32), x_out=np.zeros((2, 2, 3, 2), np.float32),
                y=np.zeros((2, 4), np.float32), num_threads=1)
    args.update(over)
    return args


@pytest.mark.parametrize("over, exc, match", [
    (dict(u=np.zeros((2, 4), np.float64)), TypeError, r"u.*float32"),
    (dict(x=np.zeros((2, 3, 3, 2), np.float32)), ValueError, r"x: expected shape"),
    (dict(y=np.zeros((2, 5), np.float32)), ValueError, r"y: expected shape"),
    (dict(active=np.array([2, 0])), ValueError, r"active.*increasing"),
    (dict(active=np.array([0, 4])), ValueError, r"active.*increasing"),
    (dict(active=np.array([0, 2], np.int32)), TypeError, r"active.*int64"),
    (dict(modes=np.zeros((2, 4, 2, 3), np.float32)), ValueError, r"modes.*3 or 7"),
    (dict(num_threads=0), ValueError, r"num_threads"),
    (dict(u=[[0.0]]), TypeError, r"u"),
], ids=["u-dtype", "x-shape", "y-shape", "active-unsorted", "active-range", "active-int32", "fields", "threads",
        "u-list"])
def test_binding_rejects_bad_arguments(over, exc, match):
    with pytest.raises(exc, match=match):
        _ext.C().ssm_step(*_np_step_args(**over).values())


def test_binding_aliasing_rules():
    args = _np_step_args()
    _ext.C().ssm_step(*dict(args, x_out=args["x"]).values())  # in place is allowed
    flat = np.zeros(24 + 4, np.float32)
    with pytest.raises(ValueError, match="x_out must be x itself or not overlap it"):
        _ext.C().ssm_step(*dict(args, x=flat[:24].reshape(2, 2, 3, 2), x_out=flat[4:].reshape(2, 2, 3, 2)).values())
    with pytest.raises(ValueError, match="overlap"):
        _ext.C().ssm_step(*dict(args, y=args["u"]).values())
    ro = np.zeros((2, 4), np.float32)
    ro.setflags(write=False)
    with pytest.raises(ValueError, match="writeable"):
        _ext.C().ssm_step(*dict(args, y=ro).values())


def test_binding_setup_rejects_bad_arguments():
    C, log_dt, log_A_real, A_imag, D = (t.numpy() for t in s4d_params(3, 2, 13))
    good = dict(C=C, log_dt=log_dt, log_A_real=log_A_real, A_imag=A_imag, D=D, rows=np.arange(3),
                modes=np.zeros((3, 3, 2, 2), np.float32), scalars=np.zeros((3, 3), np.float32))
    _ext.C().s4d_step_setup(*good.values())
    for key, value, match in [
        ("rows", np.array([0, 3]), r"rows\[1\] = 3 is outside"),
        ("modes", np.zeros((3, 7, 2, 2), np.float32), r"modes: expected shape"),
        ("D", np.zeros(3, np.float64), r"D.*float32"),
        ("log_A_real", np.zeros((3, 3), np.float32), r"log_A_real"),
    ]:
        args = dict(good, **{key: value})
        if key == "rows":
            args["modes"], args["scalars"] = np.zeros((2, 3, 2, 2), np.float32), np.zeros((2, 3), np.float32)
        with pytest.raises((ValueError, TypeError), match=match):
            _ext.C().s4d_step_setup(*args.values())


def test_a_mode_that_decays_in_one_sample_and_an_empty_chunk():
    """alpha = exp(dt A) underflowing to 0 (a mode forgotten at once) and a chunk of 0 samples, on both backends."""
    C, log_dt, log_A_real, A_imag, D = s4d_params(2, 3, 14, torch.float64)
    log_A_real = log_A_real.clone()
    log_A_real[0, 1] = 12.0  # Re A = -1.6e5: exp(dt A) = 0 in float64 for any dt >= 5e-3
    log_dt = log_dt.clone().fill_(-1.0)
    modes, scalars = s4d_step_coefficients_ref(C, log_dt, log_A_real, A_imag, D)
    u, x = torch.randn(1, 2, 9, dtype=torch.float64), torch.randn(1, 2, 3, 2, dtype=torch.float64)
    y_want, x_want = recurrence64(modes, scalars, torch.arange(2), u, x)
    y_zero, _ = recurrence64(modes, scalars, torch.arange(2), u, torch.zeros_like(x))
    for backend in BACKENDS:
        with torch.no_grad(), s4op_kernels.use_backend(backend):
            y_free, x_end = ssm_chunk_state(modes, scalars, torch.arange(2), u, x)
            y_empty, x_same = ssm_chunk_state(modes, scalars, torch.arange(2), u[..., :0], x)
        assert torch.isfinite(y_free).all() and torch.isfinite(x_end).all()
        assert_close(y_zero + y_free, y_want, what=f"{backend} chunk with a vanishing mode")
        assert_close(x_end, torch.view_as_real(x_want), what=f"{backend} state")
        assert y_empty.shape == (1, 2, 0) and torch.equal(x_same, x)
