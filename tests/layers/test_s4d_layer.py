"""S4DLayer: semantics against the float64 formulas, pruning, compaction, state dicts, caching, errors."""

from __future__ import annotations

import copy
import io
import math

import numpy as np
import pytest
import torch
from torch import nn

import s4op_kernels
from s4op_kernels import S4DLayer
from s4op_kernels.ops import dispatch
from factories import make_input, make_s4d, some_channels
from formulas import s4d_layer64
from shapes import LAYER_SHAPES, PRUNE_FRACTIONS
from tolerances import assert_close

SSM_KEYS = ["D", "kernel.C", "kernel.log_dt", "kernel.log_A_real", "kernel.A_imag"]
REFERENCE_KEYS = SSM_KEYS + ["output_linear.0.weight", "output_linear.0.bias"]


# ----------------------------------------------------------------------------- formula
@pytest.mark.parametrize("backend", dispatch.backends_for("cpu"))  # the tests' tensors are on the CPU
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("pruned", PRUNE_FRACTIONS)
@pytest.mark.parametrize("shape", LAYER_SHAPES)
@pytest.mark.parametrize("seed", [0], ids=["seed0"])
@pytest.mark.parametrize("mode", ["train", "eval"])  # eval: fused GELU and the bias folded into the GEMM
def test_matches_float64_formula(shape, pruned, dtype, backend, seed, mode):
    B, H, N, L = shape
    layer = make_s4d(H, N, seed, dtype).train(mode == "train")
    active = some_channels(H, pruned, seed)
    layer.set_active_channels(active)
    u = make_input(B, H, L, seed, dtype)
    with torch.no_grad(), s4op_kernels.use_backend(backend):
        y, state = layer(u)
    assert state is None
    assert y.dtype == dtype and y.shape == (B, H, L)
    assert_close(y, s4d_layer64(layer, u, active), dtype)


@pytest.mark.parametrize("seed", [1], ids=["seed1"])
def test_transposed_false_takes_and_returns_BLH(seed):
    H, N, L = 6, 8, 33
    a = make_s4d(H, N, seed)
    b = make_s4d(H, N, seed, transposed=False)
    a.set_active_channels([0, 2, 3])
    b.set_active_channels([0, 2, 3])
    u = make_input(2, H, L, seed)
    with torch.no_grad():
        ya, _ = a(u)
        yb, _ = b(u.transpose(1, 2).contiguous())
    assert yb.shape == (2, L, H)
    torch.testing.assert_close(yb.transpose(1, 2), ya, rtol=0, atol=0)


def test_same_seed_same_init_and_reference_init_values():
    torch.manual_seed(3)
    a = S4DLayer(5, 6)
    torch.manual_seed(3)
    b = S4DLayer(5, 6)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    k = a.kernel
    assert k.C.shape == (5, 3, 2) and a.D.shape == (5,)
    assert torch.allclose(k.log_A_real, torch.full((5, 3), math.log(0.5)))
    assert torch.allclose(k.A_imag, math.pi * torch.arange(3.0).repeat(5, 1))
    assert (k.log_dt >= math.log(0.001) - 1e-6).all() and (k.log_dt <= math.log(0.1) + 1e-6).all()
    assert a.output_linear[0].weight.shape == (10, 5, 1)


def test_lr_tags_and_buffers():
    frozen = S4DLayer(4, 4, lr=0.0)
    names = dict(frozen.named_buffers())
    assert {"kernel.log_dt", "kernel.log_A_real", "kernel.A_imag"} <= set(names)
    assert "kernel.C" in dict(frozen.named_parameters())
    tagged = S4DLayer(4, 4, lr=1e-3)
    for name in ("log_dt", "log_A_real", "A_imag"):
        assert getattr(tagged.kernel, name)._optim == {"weight_decay": 0.0, "lr": 1e-3}
    assert S4DLayer(4, 4).kernel.log_dt._optim == {"weight_decay": 0.0}
    assert list(frozen.state_dict()) == REFERENCE_KEYS


# ----------------------------------------------------------------------------- pruning
@pytest.mark.parametrize("seed", [2], ids=["seed2"])
def test_pruned_channels_are_identity_before_gelu(seed):
    H, N, L = 9, 8, 40
    layer = make_s4d(H, N, seed)
    layer.set_active_channels([1, 4])
    u = make_input(1, H, L, seed)
    with torch.no_grad():
        y = layer._ssm(u)
    pruned = [h for h in range(H) if h not in (1, 4)]
    assert torch.equal(y[:, pruned], u[:, pruned])
    assert not torch.allclose(y[:, [1, 4]], u[:, [1, 4]])


def test_set_active_channels_accepts_sequences_and_tensors():
    layer = S4DLayer(8, 4)
    for idx in ([5, 1, 3], (3, 5, 1), torch.tensor([5, 3, 1]), torch.tensor([1, 3, 5], dtype=torch.int32), range(1, 6, 2)):
        layer.set_active_channels(idx)
        assert torch.equal(layer.active_channels, torch.tensor([1, 3, 5]))
        assert layer.active_channels.dtype == torch.int64
    layer.set_active_channels([])
    assert layer.num_active == 0 and layer.is_pruned
    layer.set_active_channels(range(8))
    assert not layer.is_pruned
    assert list(layer.state_dict()) == REFERENCE_KEYS


def test_all_pruned_layer_mixes_gelu_of_input():
    layer = make_s4d(5, 4, 0)
    layer.set_active_channels([])
    u = make_input(2, 5, 11, 0)
    with torch.no_grad():
        y, _ = layer(u)
        expected = layer.output_linear(torch.nn.functional.gelu(u))
    torch.testing.assert_close(y, expected)  # the layer mixes by GEMM, the module by convolution: rounding differs


# ----------------------------------------------------------------------------- compaction
@pytest.mark.parametrize("pruned", PRUNE_FRACTIONS)
@pytest.mark.parametrize("seed", [4], ids=["seed4"])
def test_compact_equals_masked_and_reloads_into_fresh_layer(pruned, seed):
    H, N, L = 11, 8, 50
    layer = make_s4d(H, N, seed)
    active = some_channels(H, pruned, seed)
    layer.set_active_channels(active)
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    small = layer.compact()
    # The original is unchanged.
    assert all(torch.equal(before[k], v) for k, v in layer.state_dict().items())
    assert small.is_compact == (len(active) < H) and small.kernel.C.shape == (len(active), N // 2, 2) and small.D.shape == (len(active),)
    u = make_input(3, H, L, seed)
    with torch.no_grad():
        y_masked, _ = layer(u)
        y_small, _ = small(u)
    torch.testing.assert_close(y_small, y_masked, rtol=0, atol=0)

    sd = small.state_dict()
    if small.is_pruned:
        assert torch.equal(sd["active_channels"], torch.tensor(active, dtype=torch.int64))
    else:  # nothing pruned: the reference format, exactly
        assert list(sd) == REFERENCE_KEYS
    fresh = S4DLayer(H, N)
    fresh.load_state_dict(sd)
    fresh.eval()
    assert fresh.is_compact == small.is_compact and torch.equal(fresh.active_channels, small.active_channels)
    with torch.no_grad():
        torch.testing.assert_close(fresh(u)[0], y_small, rtol=0, atol=0)


def test_compact_parameter_count():
    H, N = 10, 8
    layer = S4DLayer(H, N).set_active_channels([0, 5, 7])
    small = layer.compact()
    per_channel = 1 + N // 2 * 2 + 1 + N // 2 + N // 2  # D, C, log_dt, log_A_real, A_imag
    dense = sum(p.numel() for p in layer.parameters())
    assert sum(p.numel() for p in small.parameters()) == dense - 7 * per_channel


def test_compacted_layer_can_shrink_further_but_not_grow():
    layer = make_s4d(8, 4, 5).set_active_channels([1, 2, 6])
    small = layer.compact()
    small.set_active_channels([2, 6])
    layer.set_active_channels([2, 6])
    u = make_input(1, 8, 20, 5)
    with torch.no_grad():
        torch.testing.assert_close(small(u)[0], layer(u)[0], rtol=0, atol=0)
    with pytest.raises(ValueError, match="compact"):
        small.set_active_channels([0, 2])


# ----------------------------------------------------------------------------- state dicts
def _reference_state_dict(H: int, N: int, seed: int) -> dict:
    """A state_dict in the reference standalone S4D's format (its 7 keys, shapes, dtypes)."""
    g = torch.Generator().manual_seed(seed)
    return {
        "D": torch.randn(H, generator=g),
        "kernel.C": torch.randn(H, N // 2, 2, generator=g),
        "kernel.log_dt": torch.rand(H, generator=g) * (math.log(0.1) - math.log(0.001)) + math.log(0.001),
        "kernel.log_A_real": torch.log(0.5 * torch.ones(H, N // 2)),
        "kernel.A_imag": math.pi * torch.arange(N // 2, dtype=torch.float32).repeat(H, 1),
        "output_linear.0.weight": torch.randn(2 * H, H, 1, generator=g) / math.sqrt(H),
        "output_linear.0.bias": torch.randn(2 * H, generator=g) * 0.1,
    }


def test_reference_state_dict_loads_strict_and_matches_formula():
    H, N, L = 6, 8, 64
    sd = _reference_state_dict(H, N, 0)
    layer = S4DLayer(H, N)
    layer.set_active_channels([0])  # loading a reference checkpoint restores the full active set
    result = layer.load_state_dict(sd, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert not layer.is_pruned and list(layer.state_dict()) == REFERENCE_KEYS
    layer.eval()
    u = make_input(2, H, L, 0)
    with torch.no_grad():
        assert_close(layer(u)[0], s4d_layer64(layer, u), torch.float32)


@pytest.mark.parametrize("seed", [6], ids=["seed6"])
def test_pruned_state_dict_round_trip(seed):
    H, N, L = 7, 8, 30
    layer = make_s4d(H, N, seed).set_active_channels([0, 3, 6])
    sd = layer.state_dict()
    assert list(sd) == ["D", "active_channels", *REFERENCE_KEYS[1:]]
    fresh = S4DLayer(H, N)
    fresh.load_state_dict(sd, strict=True)
    fresh.eval()
    assert torch.equal(fresh.active_channels, torch.tensor([0, 3, 6])) and not fresh.is_compact
    u = make_input(1, H, L, seed)
    with torch.no_grad():
        torch.testing.assert_close(fresh(u)[0], layer(u)[0], rtol=0, atol=0)


def test_safetensors_round_trip(tmp_path):
    from safetensors.torch import load_file, save_file

    H, N, L = 9, 8, 25
    u = make_input(2, H, L, 7)
    for layer in (make_s4d(H, N, 7), make_s4d(H, N, 7).set_active_channels([2, 4, 8]), make_s4d(H, N, 7).set_active_channels([2, 4]).compact()):
        path = tmp_path / "layer.safetensors"
        save_file(layer.state_dict(), str(path))
        fresh = S4DLayer(H, N)
        fresh.load_state_dict(load_file(str(path)), strict=True)
        fresh.eval()
        assert torch.equal(fresh.active_channels, layer.active_channels) and fresh.is_compact == layer.is_compact
        with torch.no_grad():
            torch.testing.assert_close(fresh(u)[0], layer(u)[0], rtol=0, atol=0)


def test_bad_checkpoint_gives_clear_errors():
    H, N = 6, 4
    layer = S4DLayer(H, N)
    sd = S4DLayer(H, N).set_active_channels([1, 2]).state_dict()
    sd["active_channels"] = torch.tensor([1, 9])
    with pytest.raises(RuntimeError, match="active_channels"):
        layer.load_state_dict(sd)
    sd = S4DLayer(H, N).state_dict()
    sd["D"] = torch.zeros(4)  # neither dense (6) nor compact (no active set)
    with pytest.raises(RuntimeError, match="D"):
        layer.load_state_dict(sd)
    sd = S4DLayer(H, N).state_dict()
    sd["kernel.C"] = torch.zeros(H, N, 2)  # wrong d_state
    with pytest.raises(RuntimeError, match="kernel.C"):
        layer.load_state_dict(sd)


class TinyResidualModel(nn.Module):
    """A small model of the kind users have: encoder, residual SSM blocks with LayerNorm, decoder."""

    def __init__(self, layer_cls, d_input=3, H=8, N=8, n_layers=2, n_classes=4):
        super().__init__()
        self.encoder = nn.Linear(d_input, H)
        self.layers = nn.ModuleList(layer_cls(H, N, transposed=True) for _ in range(n_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(H) for _ in range(n_layers))
        self.decoder = nn.Linear(H, n_classes)

    def forward(self, x):  # x: (B, L, d_input)
        x = self.encoder(x).transpose(-1, -2)  # (B, H, L)
        for layer, norm in zip(self.layers, self.norms):
            z, _ = layer(x)
            x = norm((z + x).transpose(-1, -2)).transpose(-1, -2)
        return self.decoder(x.mean(dim=-1))


class ReferenceFormatS4D(nn.Module):
    """Holds the reference standalone S4D's tensors under its names; used to write a checkpoint the way a
    user's existing model would.  Its forward is the float64 formula."""

    def __init__(self, H, N, transposed=True):
        super().__init__()
        self.D = nn.Parameter(torch.randn(H))
        self.kernel = nn.Module()
        self.kernel.C = nn.Parameter(torch.randn(H, N // 2, 2) * 0.5)
        self.kernel.log_dt = nn.Parameter(torch.rand(H) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
        self.kernel.log_A_real = nn.Parameter(torch.log(0.5 * torch.ones(H, N // 2)))
        self.kernel.A_imag = nn.Parameter(math.pi * torch.arange(N // 2, dtype=torch.float32).repeat(H, 1))
        self.output_linear = nn.Sequential(nn.Conv1d(H, 2 * H, 1), nn.GLU(dim=-2))

    def forward(self, u):
        return torch.from_numpy(s4d_layer64(self, u)).to(u.dtype), None


def test_drop_in_replacement_loads_users_checkpoint(tmp_path):
    torch.manual_seed(0)
    theirs = TinyResidualModel(ReferenceFormatS4D).eval()
    path = tmp_path / "model.pt"
    torch.save(theirs.state_dict(), path)
    ours = TinyResidualModel(S4DLayer).eval()
    ours.load_state_dict(torch.load(path), strict=True)
    x = torch.randn(2, 40, 3)
    with torch.no_grad():
        assert_close(ours(x), theirs(x), torch.float32, what="model logits")


# ----------------------------------------------------------------------------- training
@pytest.mark.parametrize("seed", [8], ids=["seed8"])
def test_gradients_flow_and_pruned_parameters_get_none(seed):
    H, N, L = 7, 8, 20
    layer = make_s4d(H, N, seed).train()
    active = [1, 2, 5]
    layer.set_active_channels(active)
    u = make_input(2, H, L, seed).requires_grad_()
    y, _ = layer(u)
    y.square().sum().backward()
    pruned = [h for h in range(H) if h not in active]
    for name in SSM_KEYS:
        grad = layer.get_parameter(name).grad
        assert grad is not None, name
        assert torch.count_nonzero(grad[pruned]) == 0, f"{name}: pruned rows got gradient"
        assert torch.count_nonzero(grad[active]) > 0, f"{name}: active rows got no gradient"
    assert u.grad is not None and torch.isfinite(u.grad).all()


def test_gradcheck_float64():
    layer = make_s4d(3, 4, 9, torch.float64).train().set_active_channels([0, 2])
    u = make_input(2, 3, 6, 9, torch.float64).requires_grad_()
    params = [layer.D, layer.kernel.C, layer.kernel.log_dt, layer.kernel.log_A_real, layer.kernel.A_imag]

    def f(u, *ps):
        return torch.func.functional_call(layer, dict(zip(SSM_KEYS, ps)), (u,))[0]

    assert torch.autograd.gradcheck(f, (u, *params))


def test_one_optimizer_step_changes_only_active_rows():
    layer = make_s4d(6, 4, 10).train().set_active_channels([0, 4])
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    layer(make_input(2, 6, 16, 10))[0].sum().backward()
    opt.step()
    for name in SSM_KEYS:
        new = layer.state_dict()[name]
        assert torch.equal(new[[1, 2, 3, 5]], before[name][[1, 2, 3, 5]]), name


def test_tied_dropout_one_mask_per_batch_and_channel():
    layer = S4DLayer(16, 4, dropout=0.5).train()
    x = torch.ones(4, 16, 30)
    torch.manual_seed(0)
    y = layer.dropout(x)
    assert set(torch.unique(y).tolist()) <= {0.0, 2.0}
    assert torch.equal(y, y[..., :1].expand_as(y))  # tied over L
    assert 0 < y.count_nonzero() < y.numel()
    assert torch.equal(layer.eval().dropout(x), x)


# ----------------------------------------------------------------------------- caching
class _CountingKernel:
    def __init__(self, monkeypatch):
        import s4op_kernels.layers.s4d as mod

        self.calls = 0
        real = mod.s4d_kernel

        def counting(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(mod, "s4d_kernel", counting)


def test_eval_caches_spectrum_and_invalidates(monkeypatch):
    counter = _CountingKernel(monkeypatch)
    layer = make_s4d(5, 4, 11)
    u = make_input(1, 5, 32, 11)
    with torch.no_grad():
        y1 = layer(u)[0]
        layer(u)
        assert counter.calls == 1
        layer(make_input(1, 5, 20, 11))  # another length: its own entry
        assert counter.calls == 2
        layer(u)
        assert counter.calls == 2
        layer.kernel.log_dt.add_(0.1)  # in-place parameter change
        y2 = layer(u)[0]
        assert counter.calls == 3 and not torch.equal(y1, y2)
        assert_close(y2, s4d_layer64(layer, u), torch.float32)
        layer.set_active_channels([0, 1])
        layer(u)
        assert counter.calls == 4
        layer.load_state_dict(layer.state_dict())
        layer(u)
        assert counter.calls == 5
        layer.train()
        layer(u)
        layer(u)
        assert counter.calls == 7  # no caching while training
        layer.eval()
        layer(u)
        assert counter.calls == 8


def test_eval_caches_notice_replaced_data_and_mixing_weights(monkeypatch):
    counter = _CountingKernel(monkeypatch)
    layer = make_s4d(5, 4, 13)
    u = make_input(2, 5, 24, 13)
    with torch.inference_mode():
        layer(u)
    with torch.no_grad():
        layer.D.data = layer.D.data + 1.0  # new storage, same Parameter object, no version bump
    with torch.inference_mode():
        y = layer(u)[0]
        assert counter.calls == 2
        assert_close(y, s4d_layer64(layer, u), torch.float32)
    conv = layer.output_linear[0]
    with torch.no_grad():
        conv.bias.add_(0.5)  # the folded [W | b] must follow
        y = layer(u)[0]
        assert_close(y, s4d_layer64(layer, u), torch.float32)
        conv.weight.data = conv.weight.data * 2.0
        y = layer(u)[0]
        assert_close(y, s4d_layer64(layer, u), torch.float32)
    assert counter.calls == 2  # the mixing weights do not touch the kernel cache


def test_eval_caches_notice_parameters_replaced_again_and_again():
    # Replacing a parameter by a fresh one of the same size, repeatedly, recycles storage addresses (A, B,
    # A, ...) with every version counter at 0: the cache must still see a different tensor each time.
    layer = make_s4d(6, 4, 15)
    u = make_input(1, 6, 16, 15)
    g = torch.Generator().manual_seed(15)
    for _ in range(4):
        layer.D = nn.Parameter(torch.randn(6, generator=g))
        layer.output_linear[0].bias = nn.Parameter(torch.randn(12, generator=g))
        with torch.inference_mode():
            assert_close(layer(u)[0], s4d_layer64(layer, u), torch.float32)
    # Parameters made under inference_mode have no version counter: never cached, always right.
    with torch.inference_mode():
        for _ in range(3):
            layer.D = nn.Parameter(torch.randn(6, generator=g))
            layer.output_linear[0].bias = nn.Parameter(torch.randn(12, generator=g))
            assert_close(layer(u)[0], s4d_layer64(layer, u), torch.float32)
            layer.D.add_(1.0)
            assert_close(layer(u)[0], s4d_layer64(layer, u), torch.float32)


def test_saved_and_copied_layers_leave_the_caches_behind():
    layer = make_s4d(16, 8, 16).set_active_channels(list(range(0, 16, 2)))
    u = make_input(1, 16, 512, 16)
    before = len(_saved(layer))
    with torch.inference_mode():
        y = layer(u)[0]
    assert layer._conv_cache and len(_saved(layer)) == before
    for clone in (copy.deepcopy(layer), torch.load(io.BytesIO(_saved(layer)), weights_only=False)):
        assert not clone._conv_cache and clone._folded_cache is None
        with torch.inference_mode():
            assert torch.equal(clone(u)[0], y)
    assert layer._conv_cache  # the original keeps its own


def _saved(module) -> bytes:
    buf = io.BytesIO()
    torch.save(module, buf)
    return buf.getvalue()


def test_cached_inference_state_serves_a_later_forward_with_grad():
    # Frozen parameters, input that needs grad: after an inference-mode forward filled the caches, a forward
    # under autograd must still run and backpropagate to the input (no inference tensors saved for backward).
    layer = make_s4d(6, 4, 14).set_active_channels([0, 2, 5])
    for p in layer.parameters():
        p.requires_grad_(False)
    u = make_input(2, 6, 30, 14)
    with torch.inference_mode():
        y0 = layer(u)[0]
    x = u.clone().requires_grad_(True)
    y = layer(x)[0]
    y.sum().backward()
    assert torch.allclose(y.detach(), y0, rtol=1e-5, atol=1e-6) and x.grad is not None
    x64 = u.double().requires_grad_(True)
    layer64 = copy.deepcopy(layer).double()
    layer64(x64)[0].sum().backward()
    assert torch.allclose(x.grad.double(), x64.grad, rtol=1e-4, atol=1e-5)


def test_eval_with_grad_does_not_reuse_graph(monkeypatch):
    layer = make_s4d(4, 4, 12)  # eval mode, parameters require grad
    u = make_input(1, 4, 10, 12)
    for _ in range(2):
        layer(u)[0].sum().backward()  # a cached graph would fail the second time
    assert layer.kernel.C.grad is not None


# ----------------------------------------------------------------------------- errors
@pytest.fixture
def layer():
    return S4DLayer(6, 4)


@pytest.mark.parametrize(
    "make_u, exc, match",
    [
        (lambda: torch.randn(6, 10), ValueError, r"u.*3-D"),
        (lambda: torch.randn(1, 2, 6, 10), ValueError, r"u.*3-D"),
        (lambda: torch.randn(2, 5, 10), ValueError, r"u.*d_model = 6"),
        (lambda: torch.randn(2, 6, 0), ValueError, r"u.*length"),
        (lambda: torch.randn(2, 6, 10).half(), TypeError, r"u.*float16"),
        (lambda: torch.randint(0, 3, (2, 6, 10)), TypeError, r"u.*int64"),
        (lambda: torch.randn(2, 6, 10).double(), TypeError, r"u is torch.float64"),
        (lambda: [[1.0]], TypeError, r"u.*Tensor"),
    ],
    ids=["rank2", "rank4", "wrong-H", "L0", "fp16", "int", "dtype-mismatch", "not-tensor"],
)
def test_bad_input(layer, make_u, exc, match):
    with pytest.raises(exc, match=match):
        layer(make_u())


@pytest.mark.parametrize(
    "idx, exc, match",
    [
        ([0, 6], IndexError, r"idx.*6 out of range"),
        ([-1], IndexError, r"idx.*-1 out of range"),
        ([1, 1, 2], ValueError, r"idx.*duplicated.*\[1\]"),
        ([0.0, 1.0], TypeError, r"idx.*integer"),
        (torch.tensor([0.0, 1.0]), TypeError, r"idx.*float32"),
        (torch.tensor([True, False]), TypeError, r"idx.*bool.*nonzero"),
        ([True], TypeError, r"idx.*bool"),
        ("01", TypeError, r"idx.*sequence"),
        (3, TypeError, r"idx.*sequence"),
        (torch.tensor([[0, 1]]), ValueError, r"idx.*1-D"),
        (torch.tensor([0, 1], device="meta"), ValueError, r"idx.*meta"),
    ],
    ids=["too-large", "negative", "duplicate", "float-list", "float-tensor", "bool-tensor", "bool", "str", "int", "2-D", "wrong-device"],
)
def test_bad_channel_indices(layer, idx, exc, match):
    before = layer.active_channels
    with pytest.raises(exc, match=match):
        layer.set_active_channels(idx)
    assert torch.equal(layer.active_channels, before)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(d_model=4, d_state=5), ValueError, r"S4DLayer\(d_state\): must be even"),
        (dict(d_model=4, d_state=0), ValueError, r"S4DLayer\(d_state\): expected an integer >= 2, got 0"),
        (dict(d_model=0), ValueError, "d_model"),
        (dict(d_model=4.0), ValueError, "d_model"),
        (dict(d_model=4, dropout=1.0), ValueError, "dropout"),
        (dict(d_model=4, dt_min=0.1, dt_max=0.01), ValueError, "dt_min"),
        (dict(d_model=4, lr=-1.0), ValueError, "lr"),
        (dict(d_model=4, lr=True), TypeError, r"S4DLayer\(lr\): expected a finite number >= 0.0, got True"),
        (dict(d_model=4, lr=float("nan")), ValueError, r"S4DLayer\(lr\)"),
        (dict(d_model=4, dt_min=0.0), ValueError, r"S4DLayer\(dt_min\): expected a finite number > 0.0"),
        (dict(d_model=4, dt_max=float("inf")), ValueError, r"S4DLayer\(dt_max\)"),
        (dict(d_model=4, dt_min="0.1"), TypeError, r"S4DLayer\(dt_min\)"),
        (dict(d_model=4, dtype=torch.float16), TypeError, "dtype"),
    ],
)
def test_bad_construction(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        S4DLayer(**kwargs)


def test_unknown_kernel_argument_is_rejected():
    with pytest.raises(TypeError, match="bogus"):
        S4DLayer(4, bogus=1)


def test_nan_input_propagates_without_crash():
    layer = make_s4d(4, 4, 13)
    u = make_input(2, 4, 16, 13)
    u[1, 2, 5] = float("nan")
    with torch.no_grad():
        y, _ = layer(u)
    assert torch.isnan(y[1]).any() and torch.isfinite(y[0]).all()


# ----------------------------------------------------------------------------- backends
def test_backend_seam():
    assert "reference" in s4op_kernels.available_backends()
    assert s4op_kernels.current_backend() == "auto"
    with s4op_kernels.use_backend("reference"):
        assert s4op_kernels.current_backend() == "reference"
        with s4op_kernels.use_backend("auto"):
            assert s4op_kernels.current_backend() == "auto"
        assert s4op_kernels.current_backend() == "reference"
    assert s4op_kernels.current_backend() == "auto"
    with pytest.raises(ValueError, match="unknown or unavailable backend 'nope'"):
        with s4op_kernels.use_backend("nope"):
            pass


def test_reference_backend_gives_formula_result():
    layer = make_s4d(5, 8, 14).set_active_channels([0, 3])
    u = make_input(2, 5, 40, 14)
    with torch.no_grad(), s4op_kernels.use_backend("reference"):
        assert_close(layer(u)[0], s4d_layer64(layer, u, [0, 3]), torch.float32)


def test_output_mixing_fast_path_equals_module_and_respects_hooks():
    layer = make_s4d(6, 4, 15, torch.float64)
    y = make_input(3, 6, 20, 15, torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(layer._mix(y), layer.output_linear(y), rtol=1e-12, atol=1e-12)
        seen = []
        handle = layer.output_linear.register_forward_hook(lambda m, i, o: seen.append(o.shape))
        layer._mix(y)
        handle.remove()
    assert seen == [(3, 6, 20)]  # a user's hook on output_linear still runs


def test_compact_layer_trains_after_an_inference_mode_forward():
    # The per-device index cache must not hold inference tensors that a later training forward saves.
    layer = make_s4d(8, 4, 0, torch.float32).set_active_channels([0, 3]).compact().eval()
    u = make_input(2, 8, 16, 0, torch.float32)
    with torch.inference_mode():
        layer(u)
    layer.train()
    y, _ = layer(u)
    y.sum().backward()
    assert layer.kernel.log_dt.grad is not None or layer.D.grad is not None


@pytest.mark.parametrize("where", ["output_linear", "conv", "glu"])
def test_hooks_anywhere_in_the_mixing_keep_the_module_path_in_inference(where):
    layer = make_s4d(6, 4, 16, torch.float32).eval()
    u = make_input(2, 6, 20, 16, torch.float32)
    target = {"output_linear": layer.output_linear, "conv": layer.output_linear[0], "glu": layer.output_linear[1]}[where]
    seen = []
    handle = target.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
    with torch.inference_mode():
        hooked = layer(u)[0]
    handle.remove()
    with torch.inference_mode():
        fused = layer(u)[0]
    assert len(seen) == 1
    torch.testing.assert_close(hooked, fused, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------- the inference cache is never stale
_CACHED_SOURCES = ["D", "kernel.C", "kernel.log_dt", "kernel.log_A_real", "kernel.A_imag", "output_linear.0.weight",
                   "output_linear.0.bias"]
_EDITS = {
    "data_mul": lambda p: p.data.mul_(3.0),
    "data_copy": lambda p: p.data.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(3)) * 0.3),
    "ema": lambda p: p.data.mul_(0.5).add_(torch.full_like(p, 0.2), alpha=0.5),
    "one_row": lambda p: p.data[-1].add_(0.7),
    "numpy": lambda p: np.multiply(p.detach().numpy(), 1.5, out=p.detach().numpy()),
}


@pytest.mark.parametrize("compact", [False, True], ids=["pruned", "compact"])
@pytest.mark.parametrize("edit", list(_EDITS))
@pytest.mark.parametrize("name", _CACHED_SOURCES)
def test_eval_cache_is_never_stale_whatever_edits_a_source(name, edit, compact):
    # In-place edits through .data or NumPy bypass the version counter (an EMA update, weight surgery): the
    # cached spectra and folded weights must still follow.  A deep copy has no caches: the fresh answer.
    layer = make_s4d(6, 4, 21).set_active_channels([0, 2, 5])
    layer = layer.compact() if compact else layer
    u = make_input(2, 6, 24, 21)
    with torch.no_grad():
        before = layer(u)[0]
        with torch.inference_mode():
            layer(u)  # both modes fill and read the same caches
        _EDITS[edit](layer.get_parameter(name))
        after = layer(u)[0]
        fresh = copy.deepcopy(layer)(u)[0]
    assert not torch.equal(before, fresh), "the edit must change the output for this test to mean anything"
    assert torch.equal(after, fresh)
    with torch.inference_mode():
        assert torch.equal(layer(u)[0], fresh)


def test_eval_cache_built_while_a_source_changes_is_not_kept(monkeypatch):
    # A parameter updated by another thread while the cached value is being built: the value must describe
    # one state of the parameters, and the next forward must see the change (a token taken after the build
    # recorded the new state beside a value computed from the old one: stale forever).  Deterministic: the
    # kernel generation itself performs the update, once.
    from s4op_kernels.layers import s4d as mod

    layer = make_s4d(5, 4, 22).set_active_channels([1, 3, 4])
    u = make_input(1, 5, 16, 22)
    real, done = mod.s4d_kernel, []

    def updating_during_build(*args, **kwargs):
        if not done:
            done.append(True)
            layer.kernel.log_dt.data.add_(0.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(mod, "s4d_kernel", updating_during_build)
    with torch.no_grad():
        first = layer(u)[0]
        second = layer(u)[0]
        fresh = copy.deepcopy(layer)(u)[0]
    assert done and not torch.equal(first, fresh)
    assert torch.equal(second, fresh)


# ---------------------------------------------------------------------- factory keywords
@pytest.mark.parametrize("kwargs", [dict(dtype=torch.float64), dict(dtype=torch.float32), dict(device="cpu"),
                                    dict(device=torch.device("cpu")), dict(device="cpu", dtype=torch.float64)],
                         ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_factory_keywords(kwargs):
    torch.manual_seed(23)
    layer = S4DLayer(6, 4, **kwargs)
    torch.manual_seed(23)
    plain = S4DLayer(6, 4)
    dtype = kwargs.get("dtype", torch.float32)
    for (name, t), (_, t0) in zip(layer.state_dict().items(), plain.state_dict().items()):
        assert t.dtype == dtype and t.device.type == "cpu", name
        assert torch.equal(t, t0.to(dtype)), name  # the same seed gives the same values
    u = make_input(2, 6, 10, 23, dtype)
    with torch.no_grad():
        assert_close(layer.eval()(u)[0], s4d_layer64(layer, u), dtype)


def test_factory_keyword_meta_device_builds_shapes_only():
    layer = S4DLayer(6, 4, device="meta")
    assert all(t.device.type == "meta" for t in layer.state_dict().values())
    assert layer.kernel.C.shape == (6, 2, 2)


# ---------------------------------------------------------------------- loading with keys missing
def test_non_strict_load_with_ssm_keys_missing_never_leaves_uninitialized_rows():
    layer = make_s4d(6, 4, 24).set_active_channels([1, 4])
    compact = layer.compact().state_dict()
    u = make_input(1, 6, 12, 24)
    # Into a dense layer: the missing SSM tensors cannot be resized from nothing; refused, not left empty.
    for missing in ("kernel.log_dt", "D", "kernel.C"):
        partial = {k: v for k, v in compact.items() if k != missing}
        fresh = make_s4d(6, 4, 25)
        fresh.set_active_channels([0, 1, 2])
        fresh = fresh.compact()  # stores channels 0, 1, 2: channel 4 is not there to keep
        with pytest.raises(RuntimeError, match=f"{missing}.*missing"):
            fresh.load_state_dict(partial, strict=False)
    # Where the layer still holds the channels, a missing tensor keeps the layer's own values (strict=False).
    target = make_s4d(6, 4, 26)
    own = target.kernel.log_dt.detach().clone()
    result = target.load_state_dict({k: v for k, v in compact.items() if k != "kernel.log_dt"}, strict=False)
    assert result.missing_keys == ["kernel.log_dt"]
    assert target.is_compact and torch.equal(target.kernel.log_dt.detach(), own[[1, 4]])
    assert torch.isfinite(target.eval()(u)[0]).all()


# ---------------------------------------------------------------------- absurd indices, empty batches
@pytest.mark.parametrize("idx", [[2**70], [-(2**70)], torch.tensor([2**62])], ids=["huge", "hugely-negative", "tensor"])
def test_set_active_channels_refuses_huge_indices_clearly(idx):
    with pytest.raises(IndexError, match="out of range for d_model=4"):
        S4DLayer(4, 4).set_active_channels(idx)


@pytest.mark.parametrize("backend", ["auto", "reference"])
@pytest.mark.parametrize("mode", ["train", "eval", "eval-grad"])
def test_empty_batch_everywhere(mode, backend):
    layer = make_s4d(5, 4, 27).set_active_channels([0, 3])
    layer.train(mode == "train")
    u = torch.zeros(0, 5, 16, requires_grad=mode != "eval")
    with s4op_kernels.use_backend(backend), torch.set_grad_enabled(mode != "eval"):
        y = layer(u)[0]
    assert y.shape == (0, 5, 16)
    if mode != "eval":
        y.sum().backward()
        assert u.grad.shape == u.shape


def test_failed_resizing_load_leaves_the_layer_unchanged():
    layer = make_s4d(6, 4, 28).set_active_channels([1, 4])
    bad = layer.compact().state_dict()
    bad["kernel.C"] = bad["kernel.C"][:1]  # one row where two are due
    target = make_s4d(6, 4, 29)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(RuntimeError, match="size mismatch for kernel.C"):
        target.load_state_dict(bad)
    after = target.state_dict()
    # The SSM tensors are as they were (torch still loads the other submodules' tensors, as for any module).
    ssm = ["D", "kernel.C", "kernel.log_dt", "kernel.log_A_real", "kernel.A_imag"]
    assert set(after) == set(before) and all(torch.equal(after[k], before[k]) for k in ssm)
    assert not target.is_compact and not target.is_pruned
