"""sparse_fftconv: active channels are conv(u, K) + D u, pruned channels are copied (the pruning invariant)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import s4op_kernels
from s4op_kernels.ops import dispatch, fft_size, sparse_fftconv, sparse_fftconv_ref
from factories import make_input, some_channels
from shapes import LAYER_SHAPES, PRUNE_FRACTIONS
from formulas import gelu64
from tolerances import assert_close


def direct_conv64(u, K, D, active):
    """Float64 causal convolution by the definition, y[t] = sum_{j<=t} K[j] u[t-j] + D u[t]."""
    u = u.double().numpy()
    y = u.copy()
    L = u.shape[-1]
    for j, h in enumerate(active):
        for b in range(u.shape[0]):
            y[b, h] = np.convolve(u[b, h], K[j].double().numpy())[:L] + float(D[j]) * u[b, h]
    return y


@pytest.mark.parametrize("activation", ["none", "gelu"])
@pytest.mark.parametrize("backend", dispatch.backends_for("cpu"))  # the tests' tensors are on the CPU
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("pruned", PRUNE_FRACTIONS)
@pytest.mark.parametrize("shape", LAYER_SHAPES)
@pytest.mark.parametrize("seed", [0], ids=["seed0"])
def test_matches_direct_convolution(backend, shape, pruned, dtype, seed, activation):
    B, H, _, L = shape
    g = torch.Generator().manual_seed(seed)
    active = torch.tensor(some_channels(H, pruned, seed), dtype=torch.int64)
    K = (torch.randn(len(active), L, generator=g, dtype=torch.float64) * torch.exp(-torch.arange(L) / 20.0)).to(dtype)
    D = torch.randn(len(active), generator=g, dtype=torch.float64).to(dtype)
    u = make_input(B, H, L, seed, dtype)
    n = fft_size(L)
    k_f = torch.fft.rfft(K, n=n) if len(active) else torch.zeros(0, n // 2 + 1, dtype=K.dtype.to_complex())
    with s4op_kernels.use_backend(backend):
        y = sparse_fftconv(u, k_f, D, active, n, activation)
    assert y.shape == u.shape and y.dtype == dtype
    expected = direct_conv64(u, K, D, active.tolist())
    if activation == "none":
        pruned_idx = [h for h in range(H) if h not in set(active.tolist())]
        assert torch.equal(y[:, pruned_idx], u[:, pruned_idx])
    else:
        expected = gelu64(expected)
    assert_close(y, expected, dtype, what=f"sparse_fftconv[{activation}]")


def test_unknown_activation_is_refused():
    u = torch.randn(1, 2, 4)
    none = torch.zeros(0, dtype=torch.int64)
    for backend in dispatch.backends_for("cpu"):
        with s4op_kernels.use_backend(backend), pytest.raises(ValueError, match="activation must be one of"):
            sparse_fftconv(u, torch.zeros(0, 5, dtype=torch.complex64), torch.zeros(0), none, 8, "relu")


def test_output_does_not_alias_input():
    u = torch.randn(1, 3, 5)
    y = sparse_fftconv_ref(u, torch.zeros(0, 6, dtype=torch.complex64), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 10)
    assert torch.equal(y, u) and y.data_ptr() != u.data_ptr()


@pytest.mark.parametrize("L", [1, 2, 7, 17, 100, 257, 1000, 4096])
def test_fft_size_is_fast_and_long_enough(L):
    from s4op_kernels.ops import fft_size, next_fast_size

    n = fft_size(L)
    assert n >= 2 * L - 1 and next_fast_size(n) == n
    r = n
    for p in (2, 3, 5):
        while r % p == 0:
            r //= p
    assert r == 1


@pytest.mark.parametrize("backend", dispatch.backends_for("cpu"))  # the tests' tensors are on the CPU
@pytest.mark.parametrize("activation", ["none", "gelu"])
def test_append_ones_adds_a_channel_of_ones_and_changes_nothing_else(backend, activation):
    B, H, L = 3, 7, 33
    g = torch.Generator().manual_seed(5)
    active = torch.tensor([0, 2, 3, 6])
    n = fft_size(L)
    k_f = torch.fft.rfft(torch.randn(len(active), L, generator=g), n=n)
    D = torch.randn(len(active), generator=g)
    u = make_input(B, H, L, 5, torch.float32)
    with s4op_kernels.use_backend(backend):
        y = sparse_fftconv(u, k_f, D, active, n, activation)
        y1 = sparse_fftconv(u, k_f, D, active, n, activation, append_ones=True)
    assert y1.shape == (B, H + 1, L) and y1.is_contiguous()
    assert torch.equal(y1[:, :H], y) and torch.equal(y1[:, H], torch.ones(B, L))


@pytest.mark.parametrize("moved", ["u", "k_f", "D", "active"])
def test_mixed_devices_are_an_error_in_the_op_itself(moved):
    # A meta argument beside CPU ones selects the fake kernel, which returned uninitialized memory.
    g = torch.Generator().manual_seed(9)
    args = dict(u=torch.randn(1, 4, 8, generator=g), k_f=torch.randn(2, 9, generator=g, dtype=torch.complex64),
                D=torch.randn(2, generator=g), active=torch.tensor([0, 2]))
    args[moved] = args[moved].to("meta")
    # A meta u is refused by torch itself before any kernel runs; any other meta argument by the op.
    exc, match = ((RuntimeError, ValueError), "device") if moved == "u" else (ValueError, f"{moved} is on meta")
    with pytest.raises(exc, match=match):
        torch.ops.s4op.sparse_fftconv(args["u"], args["k_f"], args["D"], args["active"], 16)
    with pytest.raises(exc, match=match):
        sparse_fftconv(args["u"], args["k_f"], args["D"], args["active"], 16)


@pytest.mark.skipif("cpu" not in s4op_kernels.available_backends(), reason="compiled core not built")
def test_python_next_fast_size_agrees_with_the_core():
    from s4op_kernels import _ext
    from s4op_kernels.ops import next_fast_size

    for n in list(range(0, 2000)) + [4095, 4097, 8191, 65537, 10**6 + 1]:
        assert next_fast_size(n) == _ext.C().next_fast_size(max(n, 1)), n


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_half_inputs_on_the_reference_are_computed_in_float32(dtype):
    # Half u (the triton backend's fast path; the reference takes it too, on any device): k_f complex64 and
    # D float32, the result rounded once to u's dtype.  The compiled engine refuses it (test_cpu_backend).
    B, H, L = 2, 5, 30
    n = fft_size(L)
    g = torch.Generator().manual_seed(3)
    active = torch.tensor([0, 3, 4])
    k_f = torch.fft.rfft(torch.randn(3, L, generator=g), n=n)
    D = torch.randn(3, generator=g)
    u = make_input(B, H, L, 3).to(dtype)
    with s4op_kernels.use_backend("reference"):
        y = sparse_fftconv(u, k_f, D, active, n, "gelu", True)
    assert y.dtype == dtype and y.shape == (B, H + 1, L)
    assert torch.equal(y, sparse_fftconv_ref(u.float(), k_f, D, active, n, "gelu", True).to(dtype))
    from torch._subclasses.fake_tensor import FakeTensorMode

    D_half = D.to(dtype)
    with FakeTensorMode() as fake:  # the fake (what a trace and every non-CPU device check) states the rule
        args = [fake.from_tensor(t) for t in (u, k_f, D, active)]
        assert torch.ops.s4op.sparse_fftconv(*args, n).dtype == dtype
        with pytest.raises(TypeError, match="D must be torch.float32 for u of"):
            torch.ops.s4op.sparse_fftconv(args[0], args[1], fake.from_tensor(D_half), args[3], n)
