"""The residual block's inference path (eval, grad mode off, stock norm and dropout, no hooks) against the
module path it replaces, and the dispatch between the two."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from s4op_kernels.data.base import TaskInfo
from s4op_kernels.models import ChannelLayerNorm, Config, ResidualBlock, build_model
from tolerances import assert_close

CONT = TaskInfo("cont", num_classes=3, seq_len=17, in_channels=2)
# Odd H, two blocks (the second reads the first one's output layout), dropout > 0 (identity in eval).
BASE = Config(name="fused", n_layers=3, d_model=5, d_state=4, dropout=0.2)
NORMS = [("layer", False), ("layer", True), ("batch", False), ("batch", True), ("none", False), ("none", True)]


def _model(norm: str, prenorm: bool, layer: str, pruned: bool, dtype: torch.dtype, seed: int = 0):
    model = build_model(BASE.replace(norm=norm, prenorm=prenorm, layer=layer), CONT, seed=seed)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():  # non-trivial norms: affine parameters and BatchNorm running statistics
        for block in model.blocks:
            for name, t in list(block.norm.named_parameters()) + list(block.norm.named_buffers()):
                if name == "running_var":
                    t.copy_(torch.rand(t.shape, generator=g) + 0.5)
                elif t.is_floating_point():
                    t.copy_(torch.rand(t.shape, generator=g) - 0.5 + (1.0 if name == "weight" else 0.0))
    if pruned:  # one block all identity, one pruned in place, one pruned and compacted
        model.blocks[0].ssm.set_active_channels([])
        model.blocks[1].ssm.set_active_channels([0, 2, 3])
        model.blocks[2].ssm.set_active_channels([1, 4])
        model.blocks[2].ssm = model.blocks[2].ssm.compact()
    return model.to(dtype).eval()


def _hidden(model, x: torch.Tensor, modules: bool = False) -> torch.Tensor:
    """The blocks' output (B, H, L), through the inference path or module by module."""
    h = model.encoder(x).transpose(1, 2) if modules else model._encode_rows(x)
    for block in model.blocks:
        h = block.forward_modules(h) if modules else block(h)
    return h


@pytest.fixture
def calls(monkeypatch):
    """Counts the inference path's calls."""
    count = {"fast": 0}
    inner = ResidualBlock._forward_inference

    def spy(self, x, kind):
        count["fast"] += 1
        return inner(self, x, kind)

    monkeypatch.setattr(ResidualBlock, "_forward_inference", spy)
    return count


# ---------------------------------------------------------------------- same math as the modules
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("pruned", [False, True], ids=["dense", "pruned"])
@pytest.mark.parametrize("layer", ["s4d", "s4"])
@pytest.mark.parametrize("norm,prenorm", NORMS, ids=[f"{n}-{'pre' if p else 'post'}" for n, p in NORMS])
def test_inference_path_matches_the_module_path_and_float64(norm, prenorm, layer, pruned, dtype, calls):
    model = _model(norm, prenorm, layer, pruned, dtype)
    ref64 = copy.deepcopy(model).double()
    x = torch.randn(2, 17, 2, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        fast = _hidden(model, x.to(dtype))
        logits = model(x.to(dtype))
        assert calls["fast"] == 2 * len(model.blocks)
        same_dtype = _hidden(model, x.to(dtype), modules=True)
        expected = _hidden(ref64, x.double(), modules=True)
        expected_logits = ref64.decoder(expected.mean(-1))
    assert fast.dtype == dtype and fast.shape == (2, 5, 17)
    assert_close(fast, expected, dtype, what="blocks' output vs the float64 module path")
    assert_close(fast, same_dtype, dtype, what="blocks' output vs the module path")
    assert_close(logits, expected_logits, dtype, what="logits vs the float64 module path")


@pytest.mark.parametrize("shape", [(0, 17), (1, 1), (3, 1)], ids=["B0", "B1-L1", "B3-L1"])
@pytest.mark.parametrize("layer", ["s4d", "s4"])
@pytest.mark.parametrize("norm,prenorm", NORMS, ids=[f"{n}-{'pre' if p else 'post'}" for n, p in NORMS])
def test_empty_batch_and_length_one(norm, prenorm, layer, shape, calls):
    model = _model(norm, prenorm, layer, pruned=False, dtype=torch.float64)
    B, L = shape
    x = torch.randn(B, L, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.inference_mode():
        fast = _hidden(model, x)
        ref = _hidden(model, x, modules=True)
        assert model(x).shape == (B, 3)
    assert calls["fast"] == 2 * len(model.blocks)
    assert fast.shape == (B, 5, L)
    assert_close(fast, ref, torch.float64, what="blocks' output vs the module path")


@pytest.mark.parametrize("norm,prenorm", NORMS, ids=[f"{n}-{'pre' if p else 'post'}" for n, p in NORMS])
def test_residual_stream_stays_in_the_ssm_layers_layout(norm, prenorm):
    # (B, H, L) rows from the encoder to the pooling: the SSM layers read them without a transposing copy.
    model = _model(norm, prenorm, "s4d", pruned=False, dtype=torch.float32)
    x = torch.randn(2, 17, 2)
    with torch.no_grad():  # grad mode off is enough, as inference mode
        encoded = model._encode_rows(x)
        h = _hidden(model, x)
    assert encoded.is_contiguous() and h.is_contiguous()
    torch.testing.assert_close(encoded, model.encoder(x).transpose(1, 2))


def test_block_called_alone_on_strided_and_aliased_inputs():
    # A block used outside the classifier: any (B, H, L) layout in, the caller's tensor left untouched.
    model = _model("layer", False, "s4d", pruned=False, dtype=torch.float64)
    block = model.blocks[0]
    base = torch.randn(2, 9, 5, dtype=torch.float64)
    for x in (base.transpose(1, 2), base.transpose(1, 2).contiguous(), torch.randn(2, 5, 20, dtype=torch.float64)[..., ::2]):
        before = x.clone()
        with torch.inference_mode():
            out = block(x)
            ref = block.forward_modules(x)
        assert torch.equal(x, before)
        assert_close(out, ref, torch.float64)


# ---------------------------------------------------------------------- dispatch: what must run the modules
def test_training_and_grad_mode_run_the_modules(calls):
    model = _model("layer", False, "s4d", pruned=True, dtype=torch.float32)
    x = torch.randn(2, 17, 2)
    model.eval()(x).sum().backward()  # eval with grad mode on: module path, and differentiable
    assert calls["fast"] == 0 and model.blocks[1].ssm.kernel.C.grad is not None
    model.train()(x)
    with torch.no_grad():
        model(x)  # training mode, even without grad
    assert calls["fast"] == 0
    with torch.no_grad():
        model.eval()(x)
    assert calls["fast"] == len(model.blocks)


@pytest.mark.parametrize("where", ["norm", "dropout"])
@pytest.mark.parametrize("hook", ["forward", "pre"])
def test_hooks_on_the_norm_or_dropout_run_the_modules(where, hook, calls):
    model = _model("batch", False, "s4d", pruned=False, dtype=torch.float32)
    x = torch.randn(2, 17, 2)
    with torch.inference_mode():
        expected = model(x)
    seen = []
    module = getattr(model.blocks[1], where)
    if hook == "forward":
        handle = module.register_forward_hook(lambda m, args, out: seen.append(out.shape) or out * 2.0)
    else:
        handle = module.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape) or (args[0] * 2.0,))
    calls["fast"] = 0
    with torch.inference_mode():
        got = model(x)
    assert seen == [(2, 5, 17)] and calls["fast"] == len(model.blocks) - 1  # only the hooked block
    assert not torch.allclose(got, expected)  # the hook's change reached the output
    handle.remove()
    with torch.inference_mode():
        torch.testing.assert_close(model(x), expected, rtol=0, atol=0)


def test_global_hooks_run_the_modules(calls):
    model = _model("layer", True, "s4d", pruned=False, dtype=torch.float32)
    seen = []
    handle = nn.modules.module.register_module_forward_hook(lambda m, args, out: seen.append(type(m)))
    try:
        with torch.inference_mode():
            model(torch.randn(1, 17, 2))
    finally:
        handle.remove()
    assert calls["fast"] == 0 and seen.count(ChannelLayerNorm) == len(model.blocks)


class ShiftedLayerNorm(ChannelLayerNorm):  # a subclass with its own forward: not the stock module
    def forward(self, x):
        return super().forward(x) + 1.0


@pytest.mark.parametrize("replace", ["norm-subclass", "group-norm", "bn-batch-stats", "bn-in-training",
                                     "dropout-in-training", "other-dropout"])
def test_non_default_modules_run_as_they_are(replace, calls):
    model = _model("batch" if replace.startswith("bn") else "layer", False, "s4d", pruned=False,
                   dtype=torch.float32)
    block = model.blocks[1]
    torch.manual_seed(3)
    if replace == "norm-subclass":
        block.norm = ShiftedLayerNorm(5).eval()
    elif replace == "group-norm":
        block.norm = nn.GroupNorm(1, 5)
    elif replace == "bn-batch-stats":
        block.norm = nn.BatchNorm1d(5, track_running_stats=False).eval()  # normalizes with the batch's statistics
    elif replace == "bn-in-training":
        block.norm.train()
    elif replace == "dropout-in-training":
        block.dropout = nn.Dropout(0.5)  # in training mode inside an eval block: drops
    else:
        block.dropout = nn.AlphaDropout(0.0).eval()
    x = torch.randn(2, 17, 2)
    with torch.inference_mode():
        h = model.encoder(x).transpose(1, 2)
        h = model.blocks[0](h)
        torch.manual_seed(4)
        got = block(h)
        torch.manual_seed(4)
        expected = block.forward_modules(h)
    assert calls["fast"] == 1  # block 0 only
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    if replace == "bn-in-training":
        assert int(block.norm.num_batches_tracked) == 2  # the module ran (twice) and updated its statistics


class EchoLayer(nn.Module):
    """A registered-layer stand-in that returns its input itself, or a broadcastable (B, H, 1) summary."""

    def __init__(self, summary: bool):
        super().__init__()
        self.summary = summary

    def forward(self, u):
        return (u.mean(-1, keepdim=True) if self.summary else u), None


@pytest.mark.parametrize("prenorm", [False, True])
@pytest.mark.parametrize("norm", ["layer", "batch", "none"])
@pytest.mark.parametrize("summary", [False, True], ids=["aliased", "broadcast"])
def test_layers_with_other_output_conventions(norm, prenorm, summary, calls):
    model = _model(norm, prenorm, "s4d", pruned=False, dtype=torch.float64)
    for block in model.blocks:
        block.ssm = EchoLayer(summary)
    x = torch.randn(2, 17, 2, dtype=torch.float64)
    with torch.inference_mode():
        got = _hidden(model, x)
        expected = _hidden(model, x, modules=True)
    assert calls["fast"] == len(model.blocks)
    assert_close(got, expected, torch.float64)


@pytest.mark.parametrize("B", [3, 9])  # few sequences: one 2-D transposing copy each; more: one 3-D copy
@pytest.mark.parametrize("norm,prenorm", [("batch", True), ("layer", False)])
def test_token_model_logits_match_the_module_path(norm, prenorm, B, calls):
    # Embedding encoder: its (B, L, H) output is transposed into (B, H, L) rows once, before the blocks.
    tokens = TaskInfo("tok", num_classes=3, seq_len=70, vocab_size=11)
    model = build_model(BASE.replace(norm=norm, prenorm=prenorm, d_model=67), tokens, seed=0).double().eval()
    x = torch.randint(1, 11, (B, 70), generator=torch.Generator().manual_seed(5))
    x[1, 40:] = 0  # padding, masked out of the mean
    with torch.inference_mode():
        got = model(x)
        assert model._encode_rows(x).is_contiguous()
    assert calls["fast"] == len(model.blocks)
    with torch.enable_grad():  # eval with grad mode on: the module path all the way
        expected = model(x)
    assert calls["fast"] == len(model.blocks)
    assert_close(got, expected, torch.float64, what="logits vs the module path")


@pytest.mark.parametrize("B", [1, 2], ids=["B1", "B2"])
@pytest.mark.parametrize("affine", ["weight", "bias", "neither"])
@pytest.mark.parametrize("norm,prenorm", [("layer", False), ("layer", True), ("batch", False), ("batch", True)])
def test_norms_without_their_affine_parameters(norm, prenorm, affine, B, calls):
    model = _model(norm, prenorm, "s4d", pruned=False, dtype=torch.float64)
    for block in model.blocks:
        for name in ("weight", "bias") if affine == "neither" else ("bias" if affine == "weight" else "weight",):
            setattr(block.norm, name, None)  # as nn.LayerNorm(bias=False) / nn.BatchNorm1d(affine=False) hold it
    x = torch.randn(B, 17, 2, dtype=torch.float64)
    with torch.inference_mode():
        got = _hidden(model, x)
        expected = _hidden(model, x, modules=True)
    assert calls["fast"] == len(model.blocks)
    assert_close(got, expected, torch.float64)


@pytest.mark.parametrize("norm,prenorm", NORMS, ids=[f"{n}-{'pre' if p else 'post'}" for n, p in NORMS])
def test_wrong_inputs_are_reported_by_the_modules(norm, prenorm):
    block = _model(norm, prenorm, "s4d", pruned=False, dtype=torch.float32).blocks[0]
    for bad in (torch.randn(2, 4, 17), torch.randn(5, 17), torch.randn(2, 5, 17, dtype=torch.float64)):
        with torch.inference_mode(), pytest.raises(Exception) as fast_err:
            block(bad)
        with torch.enable_grad(), pytest.raises(Exception) as module_err:
            block(bad)
        assert type(fast_err.value) is type(module_err.value) and str(fast_err.value) == str(module_err.value)


# ---------------------------------------------------------------------- the compiled residual + LayerNorm
def _ln64(x, z, norm):
    s = (x if z is None else x + z).double()
    w = None if norm.weight is None else norm.weight.double()
    b = None if norm.bias is None else norm.bias.double()
    return nn.functional.layer_norm(s.transpose(1, 2), norm.normalized_shape, w, b, norm.eps).transpose(1, 2)


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("with_z", [True, False], ids=["residual", "norm-only"])
def test_core_layer_norm_over_several_tiles_matches_float64_for_any_thread_count(with_z, affine):
    from s4op_kernels.models.backbone import _core_layer_norm
    g = torch.Generator().manual_seed(9)
    x, z = torch.randn(3, 7, 1300, generator=g), torch.randn(3, 7, 1300, generator=g)  # 3 tiles, the last partial
    norm = ChannelLayerNorm(7) if affine else nn.LayerNorm(7, elementwise_affine=False)
    if affine:
        with torch.no_grad():
            norm.weight.copy_(torch.rand(7, generator=g) + 0.5)
            norm.bias.copy_(torch.rand(7, generator=g) - 0.5)
    outs = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            with torch.inference_mode():
                outs.append(_core_layer_norm(norm, x, z if with_z else None))
    finally:
        torch.set_num_threads(threads)
    assert outs[0] is not None and torch.equal(outs[0], outs[1])
    assert_close(outs[0], _ln64(x, z if with_z else None, norm), torch.float32, what="residual layer norm")


def test_core_layer_norm_leaves_other_inputs_to_torch():
    from s4op_kernels.models.backbone import _core_layer_norm
    norm = ChannelLayerNorm(4)
    x = torch.randn(2, 4, 9)
    assert _core_layer_norm(norm, x.double(), None) is None  # float64: the torch ops
    assert _core_layer_norm(norm, x.transpose(0, 1).contiguous().transpose(0, 1), None) is None  # strided
    assert _core_layer_norm(norm, x, x.double()) is None
    assert _core_layer_norm(norm, x, x.transpose(0, 1).contiguous().transpose(0, 1)) is None


@pytest.mark.parametrize("case, exc, match", [
    ("x dtype", TypeError, r"x: expected float32"),
    ("z shape", ValueError, r"z: expected shape \(2, 4, 9\)"),
    ("weight shape", ValueError, r"weight: expected shape \(4,\)"),
    ("partial overlap", ValueError, r"out must be x itself or not overlap it"),
    ("eps", ValueError, r"eps must be >= 0"),
    ("threads", ValueError, r"num_threads must be >= 1"),
])
def test_the_residual_layer_norm_binding_refuses_bad_arguments(case, exc, match):
    import numpy as np
    from s4op_kernels import _ext
    C = _ext.C()
    x = np.random.default_rng(0).standard_normal((2, 4, 9)).astype(np.float32)
    out = np.full_like(x, 5.0)
    args = dict(x=x, z=None, out=out, weight=None, bias=None, eps=1e-5, num_threads=1)
    if case == "x dtype":
        args["x"] = x.astype(np.float64)
    elif case == "z shape":
        args["z"] = np.zeros((2, 4, 8), np.float32)
    elif case == "weight shape":
        args["weight"] = np.ones(5, np.float32)
    elif case == "partial overlap":
        big = np.zeros((2 * 4 * 9 + 1,), np.float32)
        args["x"], args["out"] = big[1:].reshape(2, 4, 9), big[:-1].reshape(2, 4, 9)
    elif case == "eps":
        args["eps"] = -1.0
    elif case == "threads":
        args["num_threads"] = 0
    with pytest.raises(exc, match=match):
        C.residual_layer_norm(**args)
    assert (out == 5.0).all()
