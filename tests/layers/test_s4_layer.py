"""S4Layer: the DPLR block against the dense float64 recurrence, the reference's state_dict layout and kernel-length
logic, pruning, compaction, caches, training and bad input."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

import s4op_kernels
from s4op_kernels import S4Layer
from factories import s4_reference_state_dict as reference_state_dict
from formulas import dplr_kernel64, s4_layer64
from shapes import LAYER_SHAPES, PRUNE_FRACTIONS
from tolerances import assert_close

DTYPES = [pytest.param(torch.float32, id="fp32"), pytest.param(torch.float64, id="fp64")]
BACKENDS = ["auto", "reference"]
KERNEL_NAMES = ("inv_dt", "A_real", "A_imag", "B", "P", "C")


def _layer(H, N, dtype=torch.float32, sd=None, **kw) -> S4Layer:
    layer = S4Layer(H, d_state=N, **kw)
    if sd is not None:
        layer.load_state_dict(sd, strict=True)
    return layer.to(dtype).eval()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("prune", PRUNE_FRACTIONS)
@pytest.mark.parametrize("shape", LAYER_SHAPES)
def test_matches_the_dense_float64_recurrence(shape, prune, dtype, backend):
    B, H, N, L = shape
    sd = reference_state_dict(H, N, seed=H + L)
    layer = _layer(H, N, dtype, sd)
    active = torch.randperm(H, generator=torch.Generator().manual_seed(1))[: H - int(round(prune * H))]
    layer.set_active_channels(active)
    # Seeded: at H = 1, L = 1 a draw whose mixing output cancels to near zero makes the normwise error of any
    # float32 route large (2e-4) against its tiny reference; the global generator's state varied with test order.
    u = torch.randn(B, H, L, dtype=dtype, generator=torch.Generator().manual_seed(B * 1000 + H * 10 + L))
    with s4op_kernels.use_backend(backend), torch.no_grad():
        y, state = layer(u)
    assert state is None and y.dtype == dtype
    assert_close(y, s4_layer64(sd, u, active=active.sort().values.numpy()), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_active_kernels_and_dplr_parameters_match_the_recurrence(dtype):
    H, N, L = 5, 16, 300
    sd = reference_state_dict(H, N, seed=3, l_kernel=256)  # C holds C-tilde for 256: L = 300 doubles it
    layer = _layer(H, N, dtype, sd).set_active_channels([4, 0, 2])
    K = layer.active_kernels(L)
    expected = dplr_kernel64(*(sd["layer.kernel." + n] for n in KERNEL_NAMES), 256, L)[[0, 2, 4]]
    assert_close(K, expected, dtype, what="kernel")
    assert layer.l_kernel == 512
    p = layer.dplr_parameters()
    assert p.l_kernel == 512 and p.Lambda.shape == (3, N // 2) and p.dt.shape == (3,)
    torch.testing.assert_close(p.dt, torch.exp(sd["layer.kernel.inv_dt"][[0, 2, 4], 0]).to(dtype))
    torch.testing.assert_close(p.Lambda.imag, -sd["layer.kernel.A_imag"][[0, 2, 4]].to(dtype))


@pytest.mark.parametrize("l_kernel", [0, 64])
@pytest.mark.parametrize("L", [32, 64, 100, 200])
def test_kernel_length_logic_follows_the_reference(l_kernel, L):
    """Saved before the first forward (l_kernel 0: set up for this L) or after (C-tilde for 64): shorter,
    equal and longer inputs (doubling until the kernel covers L) all convolve with C_f dA^l dB."""
    H, N = 3, 8
    sd = reference_state_dict(H, N, seed=L, l_kernel=l_kernel)
    layer = _layer(H, N, torch.float64, sd)
    u = torch.randn(2, H, L, dtype=torch.float64)
    with torch.no_grad():
        y, _ = layer(u)
    assert_close(y, s4_layer64(sd, u))
    want = L if l_kernel == 0 else 64 * 2 ** max(0, math.ceil(math.log2(L / 64)))
    assert layer.l_kernel == want
    # C now holds C-tilde for the new length; a second forward (any length up to it) agrees again.
    u2 = torch.randn(1, H, max(1, L // 2), dtype=torch.float64)
    with torch.no_grad():
        y2, _ = layer(u2)
    assert_close(y2, s4_layer64(sd, u2))


def test_l_max_caps_the_kernel():
    H, N = 4, 8
    sd = reference_state_dict(H, N, seed=5)
    layer = _layer(H, N, torch.float64, sd, l_max=50)
    for L in (20, 50, 120):
        u = torch.randn(1, H, L, dtype=torch.float64)
        with torch.no_grad():
            y, _ = layer(u)
        assert_close(y, s4_layer64(sd, u, l_max=50))
        assert layer.l_kernel == 50


def test_state_dict_layout_tags_and_round_trip():
    layer = S4Layer(8, d_state=16)
    sd = layer.state_dict()
    ref = reference_state_dict(8, 16)
    assert list(sd) == list(layer.state_dict()) and set(sd) == set(ref)
    assert {k: tuple(v.shape) for k, v in sd.items()} == {k: tuple(v.shape) for k, v in ref.items()}
    assert sd["layer.kernel.l_kernel"].dtype == torch.int64
    tags = {n: getattr(p, "_optim", None) for n, p in layer.named_parameters()}
    assert tags["layer.kernel.C"] == {} and tags["layer.kernel.inv_dt"] == {"weight_decay": 0.0}
    assert tags["layer.D"] is None and tags["output_linear.0.weight"] is None
    assert getattr(S4Layer(4, 8, lr=1e-3).layer.kernel.C, "_optim") == {"lr": 1e-3}
    frozen = S4Layer(4, 8, lr=0.0)
    assert {n for n, _ in frozen.named_buffers()} == {"layer.kernel." + n for n in (*KERNEL_NAMES, "l_kernel")}
    # ours -> a fresh layer (after a forward: C-tilde and l_kernel travel together) gives the same outputs
    layer.eval()
    u = torch.randn(2, 8, 40)
    with torch.no_grad():
        y, _ = layer(u)
        other = S4Layer(8, d_state=16).eval()
        other.load_state_dict(layer.state_dict(), strict=True)
        torch.testing.assert_close(other(u)[0], y)


def test_legs_init_is_the_dplr_form_of_hippo_legs():
    from s4op_kernels.layers.s4 import hippo_legs_dplr

    N = 16
    Lambda, P, B = hippo_legs_dplr(N)
    assert torch.allclose(Lambda.real, torch.full((N // 2,), -0.5, dtype=torch.float64))
    assert bool((Lambda.imag < 0).all())
    n = torch.arange(N, dtype=torch.float64)
    A = -torch.tril(torch.outer(torch.sqrt(2 * n + 1), torch.sqrt(2 * n + 1)), -1) - torch.diag(n + 1)
    S = A + torch.outer(torch.sqrt(n + 0.5), torch.sqrt(n + 0.5))
    eig = torch.linalg.eigvals(S)
    for lam in Lambda:  # each kept eigenvalue is one of S's
        assert float((eig - lam).abs().min()) < 1e-8
    layer = S4Layer(3, d_state=N)
    assert torch.allclose(layer.layer.kernel.A_real, torch.log(torch.tensor(0.5)).expand(3, N // 2))
    torch.manual_seed(0)
    a = S4Layer(3, d_state=N).state_dict()
    torch.manual_seed(0)
    b = S4Layer(3, d_state=N).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pruned_channels_are_identity_and_compaction_is_equivalent(dtype):
    H, N, L = 6, 8, 37
    sd = reference_state_dict(H, N, seed=9)
    layer = _layer(H, N, dtype, sd).set_active_channels([1, 4])
    u = torch.randn(2, H, L, dtype=dtype)
    with torch.no_grad():
        y, _ = layer(u)
        small = layer.compact()
        assert small.is_compact and small.layer.kernel.C.shape == (1, 2, N // 2, 2) and small.layer.D.shape == (1, 2)
        torch.testing.assert_close(small(u)[0], y)
        fresh = S4Layer(H, d_state=N).to(dtype).eval()
        fresh.load_state_dict(small.state_dict(), strict=True)  # self-resizing load
        assert fresh.is_compact and fresh.active_channels.tolist() == [1, 4]
        torch.testing.assert_close(fresh(u)[0], y)
        none = copy.deepcopy(layer).set_active_channels([])
        assert_close(none(u)[0], s4_layer64(sd, u, active=[]), dtype)


def test_eval_cache_is_never_stale():
    layer = _layer(4, 8, torch.float64, reference_state_dict(4, 8, seed=2))
    u = torch.randn(1, 4, 50, dtype=torch.float64)
    with torch.no_grad():
        layer(u)
        for name in KERNEL_NAMES:
            t = getattr(layer.layer.kernel, name)
            t.data.mul_(1.01)
            sd = {k: v.clone() for k, v in layer.state_dict().items()}
            assert_close(layer(u)[0], s4_layer64(sd, u))
        layer.layer.D.data.add_(1.0)
        sd = {k: v.clone() for k, v in layer.state_dict().items()}
        assert_close(layer(u)[0], s4_layer64(sd, u))


def test_training_gives_no_gradient_to_pruned_rows():
    layer = S4Layer(5, d_state=8, dropout=0.1).set_active_channels([0, 3])
    layer.train()
    y, _ = layer(torch.randn(2, 5, 30))
    y.square().sum().backward()
    k = layer.layer.kernel
    for t, dim in ((k.C, 1), (k.B, 1), (k.P, 1), (k.inv_dt, 0), (k.A_real, 0), (k.A_imag, 0), (layer.layer.D, 1)):
        g = t.grad.index_select(dim, torch.tensor([1, 2, 4]))
        assert bool((g == 0).all()), "pruned rows got a gradient"
        assert float(t.grad.index_select(dim, torch.tensor([0, 3])).abs().sum()) > 0


def test_transposed_false_takes_B_L_H():
    sd = reference_state_dict(4, 8, seed=4)
    a = _layer(4, 8, torch.float64, sd)
    b = _layer(4, 8, torch.float64, sd, transposed=False)
    u = torch.randn(2, 4, 33, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(b(u.transpose(1, 2))[0].transpose(1, 2), a(u)[0])


@pytest.mark.parametrize("kwargs, match", [
    (dict(d_model=4, n_ssm=2), "n_ssm"),
    (dict(d_model=4, rank=2), "rank"),
    (dict(d_model=4, d_state=7), "d_state"),
    (dict(d_model=0), "d_model"),
    (dict(d_model=4, l_max=0), "l_max"),
    (dict(d_model=4, dropout=1.5), "dropout"),
    (dict(d_model=4, lr=-1.0), "lr"),
    (dict(d_model=4, lr=True), r"S4Layer\(lr\): expected a finite number >= 0.0, got True"),
    (dict(d_model=4, dt_min=0.2, dt_max=0.1), r"S4Layer\(dt_min, dt_max\): expected dt_min <= dt_max"),
    (dict(d_model=4, dt_min=float("nan")), r"S4Layer\(dt_min\)"),
    (dict(d_model=4, dtype=torch.float16), "dtype"),
])
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        S4Layer(**kwargs)


def test_bad_input_and_bad_state_dict():
    layer = S4Layer(4, d_state=8).eval()
    with pytest.raises(ValueError, match="d_model = 4"):
        layer(torch.randn(1, 5, 10))
    with pytest.raises(TypeError, match="float64"):
        layer(torch.randn(1, 4, 10, dtype=torch.float64))
    sd = reference_state_dict(4, 8)
    sd["layer.kernel.C"] = sd["layer.kernel.C"][:, :3]
    with pytest.raises(RuntimeError, match="layer.D|layer.kernel.C"):
        layer.load_state_dict(sd)
    assert torch.isfinite(layer(torch.randn(1, 4, 10))[0]).all()  # the failed load changed nothing usable
