"""dplr_spectrum: the reference and the compiled core against the dense float64 recurrence, the conv-spectrum
variant, opcheck, the fake's shape checks, bad input."""

from __future__ import annotations

import pytest
import torch

import s4op_kernels
from s4op_kernels.ops import dplr_spectrum, dplr_spectrum_ref, fft_size
from factories import dplr_args
from formulas import dplr_op_kernel64
from tolerances import assert_close

DTYPES = [pytest.param(torch.float32, id="fp32"), pytest.param(torch.float64, id="fp64")]
BACKENDS = ["auto", "reference"]
needs_core = pytest.mark.skipif("cpu" not in s4op_kernels.available_backends(), reason="compiled core not built")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("H, N2, M", [(1, 1, 1), (1, 4, 2), (3, 8, 7), (5, 16, 100), (2, 32, 1000), (7, 8, 255)])
def test_spectrum_matches_the_dense_recurrence(H, N2, M, dtype, backend):
    args = dplr_args(H, N2, seed=H * M, dtype=dtype)
    with s4op_kernels.use_backend(backend):
        kf = dplr_spectrum(*args, M)
    assert kf.shape == (H, M // 2 + 1) and kf.dtype == dtype.to_complex()
    assert_close(torch.fft.irfft(kf, n=M), dplr_op_kernel64(args, M), dtype, what="kernel")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_rows_any_order_repeats_none_some_all(dtype, backend):
    args = dplr_args(6, 8, seed=2, dtype=dtype)
    full = dplr_spectrum_ref(*(a.double() for a in args), 64)
    for rows in ([], [3], [5, 0, 3, 3], list(range(6))):
        r = torch.tensor(rows, dtype=torch.int64)
        with s4op_kernels.use_backend(backend):
            kf = dplr_spectrum(*args, 64, r)
        assert kf.shape == (len(rows), 33)
        if rows:
            assert_close(torch.view_as_real(kf), torch.view_as_real(full[r]), dtype, what="spectrum")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("M, L", [(64, 64), (64, 40), (100, 100), (97, 50), (4096, 4096)])
def test_conv_spectrum_is_the_truncated_kernels_rfft(M, L, backend):
    args = dplr_args(3, 16, seed=M + L, dtype=torch.float32)
    n = fft_size(L)
    with s4op_kernels.use_backend(backend):
        kf = dplr_spectrum(*args, M, torch.tensor([2, 0]), L=L, n_fft=n)
    expected = torch.fft.rfft(torch.from_numpy(dplr_op_kernel64([a.double() for a in args], M, L)[[2, 0]]), n=n)
    assert kf.shape == (2, n // 2 + 1)
    assert_close(torch.view_as_real(kf), torch.view_as_real(expected), torch.float32, what="conv spectrum")


@needs_core
@pytest.mark.parametrize("M", [4096, 16384])
def test_core_float32_is_accurate_at_long_lengths(M):
    """float32 within the tolerance table's bound of float64 up to M = 16384, also with tiny dt (|Re w| ~ 5e-4:
    the resonance cancellation) and large |w| (Im Lambda up to 2000)."""
    for seed, imag_max in ((0, 300.0), (1, 2000.0)):
        args64 = dplr_args(8, 32, seed=seed, imag_max=imag_max)
        k64 = torch.fft.irfft(dplr_spectrum_ref(*args64, M), n=M)
        k32 = torch.fft.irfft(dplr_spectrum(*(a.float() for a in args64), M), n=M)
        assert_close(k32, k64, torch.float32, what="kernel")


def test_reference_is_differentiable():
    args = [a.requires_grad_() for a in dplr_args(2, 4, dtype=torch.float64)]
    kf = dplr_spectrum(*args, 16)
    torch.fft.irfft(kf, n=16).square().sum().backward()
    assert all(a.grad is not None and torch.isfinite(a.grad).all() for a in args)


@needs_core
def test_opcheck():
    args = dplr_args(3, 4, dtype=torch.float32)
    torch.library.opcheck(torch.ops.s4op.dplr_spectrum.default, args + (16,))
    torch.library.opcheck(torch.ops.s4op.dplr_spectrum.default, args + (16, torch.tensor([2, 0])))
    torch.library.opcheck(torch.ops.s4op.dplr_spectrum.default, args + (16, None, 10, 20))


@pytest.mark.parametrize("change, exc, match", [
    (lambda a: (a[0][:2], *a[1:]), ValueError, "log_dt must have shape"),
    (lambda a: (*a[:5], a[5][..., 0]), ValueError, "C must be"),
    (lambda a: (a[0].double(), *a[1:]), TypeError, "log_dt must be torch.float32"),
])
def test_fake_rejects_wrong_shapes_at_trace_time(change, exc, match):
    from torch._subclasses.fake_tensor import FakeTensorMode

    args = change(dplr_args(3, 4, dtype=torch.float32))
    with FakeTensorMode() as fake, pytest.raises(exc, match=match):
        torch.ops.s4op.dplr_spectrum.default(*(fake.from_tensor(a) for a in args), 16)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_arguments(backend):
    args = dplr_args(3, 4, dtype=torch.float32)
    with s4op_kernels.use_backend(backend):
        with pytest.raises(ValueError, match="M must be >= 1"):
            dplr_spectrum(*args, 0)
        with pytest.raises(ValueError, match="L must satisfy"):
            dplr_spectrum(*args, 16, None, 20, 64)
        with pytest.raises(TypeError, match="rows must be int64"):
            dplr_spectrum(*args, 16, torch.tensor([0.0]))
