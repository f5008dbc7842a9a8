"""layers/_base.py's streaming form of S4DLayer and S4Layer: step-by-step and chunked outputs against the
convolutional forward of the whole sequence, evaluated in float64 (L up to 16384, random chunk boundaries, pruned
and compacted layers, batch > 1, both backends), the state API and its checks, S4's kernel length (C-tilde set up,
doubled or capped by l_max while streaming), hooks, training mode and gradients."""

from __future__ import annotations

import copy
import random

import pytest
import torch

import s4op_kernels
from s4op_kernels import S4DLayer, S4Layer
from factories import make_input, make_s4d, s4_reference_state_dict, some_channels
from tolerances import assert_close

DTYPES = [pytest.param(torch.float32, id="fp32"), pytest.param(torch.float64, id="fp64")]


def make_layer(kind: str, H: int, N: int, seed: int, prune: float, dtype=torch.float32, compact=False, **kw):
    """A layer with random parameters (S4D: make_s4d; S4: the reference layout's random state dict, or the LegS
    init with ``kind="s4-legs"``), pruned at ``prune``, in eval mode."""
    if kind == "s4d":
        layer = make_s4d(H, N, seed, **kw)
    else:
        torch.manual_seed(seed)
        layer = S4Layer(H, d_state=N, **kw)
        if kind == "s4":
            layer.load_state_dict(s4_reference_state_dict(H, N, seed=seed))
    layer.set_active_channels(some_channels(H, prune, seed))
    layer = layer.to(dtype).eval()
    return layer.compact() if compact else layer


def expected64(layer, u):
    """The whole sequence through the float64 copy of the layer's (dtype-rounded) weights: the convolutional
    forward, itself checked against the float64 formulas in test_s4d_layer.py / test_s4_layer.py."""
    m = copy.deepcopy(layer).double()
    with torch.no_grad():
        return m(u.double())[0]


def run_steps(layer, u):
    state = layer.default_state(u.shape[0])
    ys = []
    with torch.no_grad():
        for t in range(u.shape[-1]):
            y, state = layer.step(u[:, :, t], state)
            ys.append(y)
    return torch.stack(ys, -1), state


def run_chunks(layer, u, seed: int, longest: int):
    """u in chunks of random lengths (1 .. longest), seeded."""
    rng = random.Random(seed)
    state = layer.default_state(u.shape[0])
    ys, pos, L = [], 0, u.shape[-1]
    with torch.no_grad():
        while pos < L:
            n = min(L - pos, rng.randint(1, longest))
            y, state = layer(u[:, :, pos:pos + n], state=state)
            ys.append(y)
            pos += n
    return torch.cat(ys, -1), state


# (kind, H, N, L, B, prune): long sequences with few channels and a small state; the paper's state size on shorter
# ones; the LegS init of S4 (the rank-1 term's cancellation is largest there).
CASES = [
    pytest.param(("s4d", 3, 8, 16384, 2, 1 / 3), id="s4d-H3-N8-L16384-B2"),
    pytest.param(("s4", 3, 8, 16384, 1, 1 / 3), id="s4-H3-N8-L16384"),
    pytest.param(("s4d", 13, 64, 1000, 2, 0.5), id="s4d-H13-N64-L1000-B2-prune50"),
    pytest.param(("s4", 13, 16, 1000, 3, 0.5), id="s4-H13-N16-L1000-B3-prune50"),
    pytest.param(("s4-legs", 8, 64, 2048, 1, 0.0), id="s4legs-H8-N64-L2048"),
    pytest.param(("s4-legs", 2, 64, 16384, 1, 0.0), id="s4legs-H2-N64-L16384"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_steps_and_chunks_equal_the_convolutional_forward(case, dtype):
    kind, H, N, L, B, prune = case
    layer = make_layer(kind, H, N, seed=L + H, prune=prune, dtype=dtype)
    u = make_input(B, H, L, seed=H, dtype=dtype)
    want = expected64(layer, u)
    y_steps, s_steps = run_steps(layer, u)
    assert_close(y_steps, want, dtype, what=f"{kind} steps")
    y_chunks, s_chunks = run_chunks(layer, u, seed=L, longest=max(2, L // 5))
    assert_close(y_chunks, want, dtype, what=f"{kind} chunks")
    assert_close(s_chunks, s_steps.double(), dtype, what="state after the stream")


@pytest.mark.parametrize("kind", ["s4d", "s4"])
def test_the_reference_backend_streams_the_same(kind):
    layer = make_layer(kind, 6, 8, seed=1, prune=0.5, dtype=torch.float64)
    u = make_input(2, 6, 300, seed=2, dtype=torch.float64)
    want = expected64(layer, u)
    with s4op_kernels.use_backend("reference"):
        y_steps, _ = run_steps(layer, u[..., :40])
        y_chunks, _ = run_chunks(layer, u, seed=3, longest=120)
    assert_close(y_steps, want[..., :40], what="reference steps")
    assert_close(y_chunks, want, what="reference chunks")


@pytest.mark.parametrize("kind", ["s4d", "s4"])
def test_a_compacted_layer_streams_as_the_masked_one(kind):
    masked = make_layer(kind, 9, 8, seed=4, prune=0.5, dtype=torch.float64)
    compact = masked.compact()
    u = make_input(2, 9, 200, seed=5, dtype=torch.float64)
    want = expected64(masked, u)
    assert compact.default_state(2).shape == (2, masked.num_active, 4, 2)
    assert_close(run_steps(compact, u)[0], want, what="compact steps")
    assert_close(run_chunks(compact, u, seed=6, longest=64)[0], want, what="compact chunks")


@pytest.mark.parametrize("kind", ["s4d", "s4"])
def test_every_channel_pruned_streams_as_identity_ssm(kind):
    layer = make_layer(kind, 5, 4, seed=7, prune=1.0, dtype=torch.float64)
    u = make_input(2, 5, 30, seed=8, dtype=torch.float64)
    assert layer.default_state(2).shape == (2, 0, 2, 2)
    assert_close(run_steps(layer, u)[0], expected64(layer, u), what="steps")
    assert_close(run_chunks(layer, u, seed=9, longest=10)[0], expected64(layer, u), what="chunks")


def test_transposed_false_chunks_take_and_give_B_L_H():
    layer = make_s4d(4, 8, 10, transposed=False).double()
    u = torch.randn(2, 50, 4, dtype=torch.float64)
    want = layer(u)[0]
    s = layer.default_state(2)
    y1, s = layer(u[:, :20], state=s)
    y2, s = layer(u[:, 20:], state=s)
    assert_close(torch.cat([y1, y2], 1), want)
    y, _ = layer.step(u[:, 0], layer.default_state(2))  # a sample is (B, H) in either layout
    assert_close(y, want[:, 0])


def test_the_state_is_not_modified_and_a_state_can_be_branched():
    layer = make_s4d(4, 8, 11).double()
    u = torch.randn(1, 4, 20, dtype=torch.float64)
    _, s = layer(u[..., :10], state=layer.default_state(1))
    before = s.clone()
    y_a, _ = layer(u[..., 10:], state=s)
    y_b, _ = layer.step(u[..., 10], s)
    assert torch.equal(s, before)
    assert_close(y_b, y_a[..., 0])
    y, none = layer(u)
    assert none is None  # without a state the forward is unchanged


def test_s4_streams_across_the_kernel_length_logic():
    """Before any forward (l_kernel 0: C is C_f itself), across a doubling of l_kernel mid-stream (C-tilde
    rewritten), and after: the stream equals the forward of the whole sequence."""
    H, N = 4, 8
    sd = s4_reference_state_dict(H, N, seed=12)
    layer = S4Layer(H, d_state=N).double().eval()
    layer.load_state_dict(sd)
    u = make_input(1, H, 200, seed=13, dtype=torch.float64)
    ref = copy.deepcopy(layer)
    want = ref(u)[0]  # the reference copy sets its own C-tilde up for 200
    assert layer.l_kernel == 0
    y0, s = run_steps(layer, u[..., :30])  # l_kernel still 0
    assert layer.l_kernel == 0
    y1, s = layer(u[..., 30:60], state=s)  # sets C-tilde up for 30
    assert layer.l_kernel == 30
    y2, s = layer(u[..., 60:200], state=s)  # 140 > 30: doubles to 240
    assert layer.l_kernel == 240
    assert_close(torch.cat([y0, y1, y2], -1), want, what="stream across l_kernel")


def test_s4_with_l_max_streams_its_untruncated_system_and_refuses_longer_chunks():
    H, N = 3, 8
    layer = S4Layer(H, d_state=N, l_max=64).double().eval()
    layer.load_state_dict(s4_reference_state_dict(H, N, seed=14))
    u = make_input(1, H, 64, seed=15, dtype=torch.float64)
    want = expected64(layer, u)
    assert_close(run_chunks(layer, u, seed=16, longest=64)[0], want, what="up to l_max")
    with pytest.raises(ValueError, match="longer than l_max=64"):
        layer(make_input(1, H, 65, seed=0, dtype=torch.float64), state=layer.default_state(1))


def test_hooks_and_a_replaced_activation_run_as_in_forward():
    layer = make_s4d(4, 8, 17).double()
    layer.output_linear.register_forward_hook(lambda m, i, o: o * 2.0)
    layer.activation = torch.nn.Tanh()
    u = torch.randn(2, 4, 25, dtype=torch.float64)
    want = layer(u)[0]
    assert_close(run_steps(layer, u)[0], want, what="hooked steps")
    assert_close(run_chunks(layer, u, seed=18, longest=8)[0], want, what="hooked chunks")


def test_training_mode():
    """Without dropout, a training-mode layer streams the same function (the reference path, with gradients
    through chunks); with dropout, a step is refused (there is no per-sample form of forward's tied mask)."""
    layer = make_s4d(3, 8, 19).double().train()
    u = torch.randn(1, 3, 40, dtype=torch.float64)
    y_full = layer(u)[0]
    y1, s = layer(u[..., :15], state=layer.default_state(1))
    y2, _ = layer(u[..., 15:], state=s)
    y_chunks = torch.cat([y1, y2], -1)
    assert_close(y_chunks, y_full.detach(), what="training chunks")
    g_full = torch.autograd.grad(y_full.square().sum(), layer.kernel.C)[0]
    g_chunks = torch.autograd.grad(y_chunks.square().sum(), layer.kernel.C)[0]
    assert_close(g_chunks, g_full, what="gradient through the chunks")
    with pytest.raises(RuntimeError, match="training mode with dropout"):
        make_s4d(3, 8, 20, dropout=0.1).train().step(torch.randn(1, 3), torch.zeros(1, 3, 4, 2))


@pytest.mark.parametrize("layer_cls", [S4DLayer, S4Layer])
def test_bad_states_and_inputs_are_clear_errors(layer_cls):
    layer = layer_cls(6, d_state=8).eval()
    s = layer.default_state(2)
    assert s.shape == (2, 6, 4, 2) and s.dtype == torch.float32 and not s.requires_grad
    with pytest.raises(ValueError, match=r"expected shape \(B, A, N2, 2\) = \(3, 6, 4, 2\)"):
        layer.step(torch.randn(3, 6), s)
    with pytest.raises(TypeError, match="default_state"):
        layer.step(torch.randn(2, 6), None)
    with pytest.raises(TypeError, match="float64"):
        layer.step(torch.randn(2, 6), s.double())
    with pytest.raises(ValueError, match=r"one sample \(B, H\)"):
        layer.step(torch.randn(2, 6, 1), s)
    with pytest.raises(TypeError, match="u is torch.float64"):
        layer.step(torch.randn(2, 6, dtype=torch.float64), s)
    with pytest.raises(ValueError, match="batch_size"):
        layer.default_state(0)
    layer.set_active_channels([0, 1, 2])
    with pytest.raises(ValueError, match="active set does not fit"):
        layer(torch.randn(2, 6, 5), state=s)
