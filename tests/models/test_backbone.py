"""The classifier backbone, its layer registry and the named configurations."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from s4op_kernels import S4DLayer
from s4op_kernels.data.base import TaskInfo
from s4op_kernels.models import (
    ChannelLayerNorm,
    Config,
    SequenceClassifier,
    available_layers,
    build_model,
    default_config,
    get_config,
    list_configs,
)
from s4op_kernels.models import backbone

TINY = Config(name="tiny", n_layers=2, d_model=8, d_state=4, dropout=0.0)
TOKENS = TaskInfo("tok", num_classes=3, seq_len=16, vocab_size=10)
CONT = TaskInfo("cont", num_classes=4, seq_len=16, in_channels=3)
MULTI = TaskInfo("multi", num_classes=6, seq_len=16, in_channels=2, multilabel=True)


def _tokens(B, L, seed, pad_from=None):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(1, 10, (B, L), generator=g)
    if pad_from is not None:
        for b, start in enumerate(pad_from):
            x[b, start:] = 0
    return x


# ---------------------------------------------------------------------- shapes
@pytest.mark.parametrize("norm,prenorm", [("layer", False), ("layer", True), ("batch", False), ("batch", True),
                                          ("none", False)])
def test_token_model_logits_shape_and_norm_kind(norm, prenorm):
    model = build_model(TINY.replace(norm=norm, prenorm=prenorm), TOKENS, seed=0)
    assert isinstance(model.encoder, nn.Embedding) and model.encoder.padding_idx == 0
    expected = {"layer": ChannelLayerNorm, "batch": nn.BatchNorm1d, "none": nn.Identity}[norm]
    assert all(type(b.norm) is expected and b.prenorm == prenorm for b in model.blocks)
    out = model(_tokens(3, 16, seed=1))
    assert out.shape == (3, 3) and out.dtype == torch.float32
    out.sum().backward()  # trains through the reference path
    assert model.blocks[0].ssm.kernel.C.grad is not None


def test_continuous_and_multilabel_models_use_a_linear_encoder():
    model = build_model(TINY, CONT, seed=0)
    assert isinstance(model.encoder, nn.Linear) and model.encoder.in_features == 3
    assert model(torch.randn(2, 16, 3)).shape == (2, 4)
    multi = build_model(TINY, MULTI, seed=0)
    assert multi(torch.randn(5, 7, 2)).shape == (5, 6)  # any length, one logit per label
    assert len(multi.ssm_layers()) == 2 and all(isinstance(m, S4DLayer) for m in multi.ssm_layers())


def test_ssm_layers_receive_the_config_hyperparameters():
    cfg = TINY.replace(d_state=6, dropout=0.25, ssm_lr=3e-4)
    model = build_model(cfg, CONT, seed=0)
    layer = model.ssm_layers()[0]
    assert layer.d_state == 6 and layer.transposed
    assert layer.dropout.p == 0.25 and model.blocks[0].dropout.p == 0.25
    assert layer.kernel.log_dt._optim == {"weight_decay": 0.0, "lr": 3e-4}


def test_eval_mode_uses_no_transposes_beyond_the_encoder_and_is_deterministic():
    model = build_model(TINY.replace(dropout=0.3), CONT, seed=0).eval()
    x = torch.randn(2, 16, 3)
    with torch.inference_mode():
        a, b = model(x), model(x)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_build_model_seed_is_reproducible_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    m1, m2 = build_model(TINY, CONT, seed=5), build_model(TINY, CONT, seed=5)
    assert torch.equal(torch.get_rng_state(), before)
    for (k, v), (_, w) in zip(m1.state_dict().items(), m2.state_dict().items()):
        assert torch.equal(v, w), k
    m3 = build_model(TINY, CONT, seed=6)
    assert not torch.equal(m1.decoder.weight, m3.decoder.weight)


# ---------------------------------------------------------------------- pooling over valid positions
@pytest.mark.parametrize("norm", ["layer", "batch"])
def test_mean_pooling_ignores_continuous_padding_beyond_lengths(norm):
    model = build_model(TINY.replace(norm=norm), CONT, seed=0).eval()
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 16, 3, generator=g)
    lengths = torch.tensor([16, 9, 1])
    changed = x.clone()
    changed[1, 9:] = 100.0 * torch.randn(7, 3, generator=g)
    changed[2, 1:] = -50.0
    with torch.inference_mode():
        ref = model(x, lengths)
        out = model(changed, lengths)
        unmasked = model(changed)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(unmasked[1:], ref[1:], atol=1e-3)  # without lengths the padding does count


def test_mean_pooling_ignores_token_padding():
    model = build_model(TINY, TOKENS, seed=0).eval()
    x = _tokens(3, 12, seed=2, pad_from=[12, 7, 3])
    longer = torch.cat([x, torch.zeros(3, 9, dtype=torch.int64)], dim=1)  # more padding on the right
    with torch.inference_mode():
        ref, out = model(x), model(longer)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    # the pooled mean is over the valid positions only: equal to the model run on the unpadded prefix
    with torch.inference_mode():
        alone = model(x[2:3, :3])
    torch.testing.assert_close(ref[2:3], alone, rtol=1e-5, atol=1e-5)


def test_all_padding_sequence_gives_finite_logits():
    model = build_model(TINY, TOKENS, seed=0).eval()
    with torch.inference_mode():
        out = model(torch.zeros(2, 8, dtype=torch.int64))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, model.decoder.bias.detach().expand(2, -1))  # pooled features are zero


# ---------------------------------------------------------------------- norms
def test_channel_layer_norm_equals_layer_norm_over_h():
    torch.manual_seed(0)
    norm = ChannelLayerNorm(5)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-1, 1)
    ref = nn.LayerNorm(5)
    ref.load_state_dict(norm.state_dict())  # same keys as nn.LayerNorm
    x = torch.randn(2, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(norm.double()(x), ref.double()(x.transpose(1, 2)).transpose(1, 2))


def test_batch_norm_variant_tracks_running_statistics_in_training():
    model = build_model(TINY.replace(norm="batch"), CONT, seed=0)
    bn = model.blocks[0].norm
    assert bn.num_batches_tracked == 0
    model(torch.randn(4, 16, 3))
    assert bn.num_batches_tracked == 1 and not torch.equal(bn.running_mean, torch.zeros(8))


# ---------------------------------------------------------------------- pruned layers inside the backbone
def test_pruned_and_compacted_layers_work_inside_the_backbone():
    model = build_model(TINY.replace(n_layers=3), CONT, seed=0).eval()
    x = torch.randn(2, 16, 3)
    with torch.inference_mode():
        dense = model(x)
    model.blocks[0].ssm.set_active_channels([])  # every channel identity
    model.blocks[1].ssm.set_active_channels([0, 3, 5])
    with torch.inference_mode():
        masked = model(x)
    assert not torch.allclose(masked, dense, atol=1e-4)
    model.blocks[1].ssm = model.blocks[1].ssm.compact()
    assert model.blocks[1].ssm.kernel.C.shape[0] == 3
    with torch.inference_mode():
        compacted = model(x)
    torch.testing.assert_close(compacted, masked, rtol=1e-5, atol=1e-5)
    # a fresh model loads the pruned state dict and resizes the compacted layer itself
    fresh = build_model(TINY.replace(n_layers=3), CONT, seed=1).eval()
    fresh.load_state_dict(model.state_dict())
    assert fresh.blocks[1].ssm.active_channels.tolist() == [0, 3, 5] and fresh.blocks[0].ssm.num_active == 0
    with torch.inference_mode():
        torch.testing.assert_close(fresh(x), masked, rtol=1e-5, atol=1e-5)
    # and trains (reference path with gradients) while pruned
    trainable = build_model(TINY.replace(n_layers=3), CONT, seed=1)
    trainable.load_state_dict(model.state_dict())
    trainable(x).sum().backward()
    assert trainable.blocks[1].ssm.kernel.C.grad.shape[0] == 3


# ---------------------------------------------------------------------- input checks and layer registry
def test_inputs_of_the_wrong_kind_are_rejected_with_the_expected_shape():
    tok, cont = build_model(TINY, TOKENS, seed=0), build_model(TINY, CONT, seed=0)
    with pytest.raises(ValueError, match=r"\(B, L\) integer"):
        tok(torch.randn(2, 16, 3))
    with pytest.raises(ValueError, match=r"\(B, L, 3\) float"):
        cont(torch.randn(2, 16, 4))
    with pytest.raises(ValueError, match="lengths"):
        cont(torch.randn(2, 16, 3), torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="exactly one of vocab_size"):
        SequenceClassifier(2, vocab_size=5, in_channels=3)


def test_a_registered_layer_kind_is_buildable(monkeypatch):
    class Mixer(nn.Module):  # any module with the S4D call convention
        def __init__(self, d_model, **kw):
            super().__init__()
            self.conv = nn.Conv1d(d_model, d_model, 1)
            self.kw = kw

        def forward(self, u):
            return self.conv(u), None

    monkeypatch.setitem(backbone._LAYERS, "mixer", Mixer)
    assert "mixer" in available_layers() and "s4d" in available_layers()
    model = build_model(TINY.replace(layer="mixer"), CONT, seed=0)
    assert isinstance(model.blocks[0].ssm, Mixer) and model.blocks[0].ssm.kw["d_state"] == 4
    assert model(torch.randn(2, 16, 3)).shape == (2, 4)
    with pytest.raises(ValueError, match="layer must be one of"):
        Config(layer="s5")


# ---------------------------------------------------------------------- configs
# facts.md: the authors' per-task S4D settings (layers, H, norm, prenorm, dropout, lr, batch, epochs, wd)
# and fine-tuning (epochs, lr; wd 1e-5)
PAPER = {
    "ecg": (4, 128, "layer", False, 0.2, 1e-3, 32, 200, 0.0, 20, 1e-4),
    "listops": (8, 128, "batch", False, 0.0, 1e-3, 50, 40, 0.05, 5, 1e-4),
    "imdb": (6, 256, "batch", True, 0.0, 1e-2, 16, 32, 0.05, 4, 1e-5),
    "pathfinder": (6, 256, "batch", True, 0.1, 4e-3, 64, 200, 0.03, 20, 1e-4),
}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_configs_match_the_authors_settings(name):
    c = get_config(name)
    got = (c.n_layers, c.d_model, c.norm, c.prenorm, c.dropout, c.lr, c.batch_size, c.epochs, c.weight_decay,
           c.finetune_epochs, c.finetune_lr)
    assert got == PAPER[name]
    assert c.d_state == 64 and c.finetune_weight_decay == 1e-5 and c.layer == "s4d"


def test_registry_lists_paper_and_small_configs_and_task_defaults():
    names = list_configs()
    for n in ("ecg", "listops", "imdb", "pathfinder", "ecg-small", "listops-small", "pathfinder-small",
              "imdb-small", "ucr-small"):
        assert n in names
    assert default_config("ecg-synthetic").name == "ecg-embedded"
    assert default_config("ucr").name == "ucr-small"
    with pytest.raises(ValueError, match="unknown config 'nope'"):
        get_config("nope")


def test_config_json_round_trip_and_validated_overrides():
    c = get_config("ecg-small").replace(epochs=3, lr=1)  # ints for float fields become floats
    assert c.epochs == 3 and c.lr == 1.0 and isinstance(c.lr, float)
    assert get_config("ecg-small").epochs != 3  # the registered config is untouched (frozen)
    assert Config.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    assert c.data_options == {"sample_rate": 100, "leads": "II", "normalize": True}
    with pytest.raises(TypeError):
        c.data_options["sample_rate"] = 400  # read-only: the registered config cannot change underneath
    with pytest.raises(TypeError, match=r"unknown field\(s\) \['epoch'\]"):
        c.replace(epoch=3)
    with pytest.raises(ValueError, match="unknown field"):
        Config.from_dict({**c.to_dict(), "extra": 1})
    for bad in ({"norm": "group"}, {"d_state": 5}, {"dropout": 1.0}, {"lr": 0}, {"epochs": 0},
                {"dt_min": 0.5, "dt_max": 0.1}, {"patience": 0}, {"prenorm": 1}):
        with pytest.raises(ValueError):
            c.replace(**bad)


def test_narrow_integer_tokens_give_the_same_logits():
    model = build_model(TINY, TOKENS, seed=0).eval()
    x = torch.randint(1, TOKENS.vocab_size, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert torch.equal(model(x), model(x.to(torch.int16)))


@pytest.mark.parametrize("config", ["ecg-embedded", "listops-small", "imdb-small"])
def test_empty_batch_in_training_and_inference(config):
    # A batch of 0 is served everywhere (the reference path once failed inside MKL's FFT).
    from s4op_kernels.models import build_model, get_config

    token = config != "ecg-embedded"
    info = TaskInfo("t", 5, 32, vocab_size=20) if token else TaskInfo("t", 5, 32, in_channels=2)
    model = build_model(get_config(config), info, seed=0)
    x = torch.zeros(0, 32, dtype=torch.int64) if token else torch.zeros(0, 32, 2)
    y = model.train()(x)
    assert y.shape == (0, 5)
    y.sum().backward()
    with torch.no_grad():
        assert model.eval()(x).shape == (0, 5)


# ---------------------------------------------------------------------- the S4 layer and the S4 configs
def test_s4_layer_is_built_with_the_config_hyperparameters():
    from s4op_kernels.layers import s4

    assert "s4" in available_layers()
    cfg = TINY.replace(layer="s4", dropout=0.1, dt_min=0.01, dt_max=0.05, ssm_lr=2e-3)
    model = build_model(cfg, CONT, seed=0)
    layers = model.ssm_layers()
    assert len(layers) == 2 and all(isinstance(m, s4.S4Layer) for m in layers)
    assert all(m.d_model == 8 and m.d_state == 4 and m.transposed for m in layers)
    dt = torch.exp(layers[0].layer.kernel.inv_dt.detach())
    assert float(dt.min()) >= 0.01 - 1e-7 and float(dt.max()) <= 0.05 + 1e-7
    assert layers[0].layer.kernel.inv_dt._optim == {"weight_decay": 0.0, "lr": 2e-3}
    out = model.train()(torch.randn(3, 16, 3))
    assert out.shape == (3, 4)
    out.sum().backward()  # trains through the reference path
    assert layers[0].layer.kernel.C.grad is not None
    # the same seed gives the same initial weights, and the S4 model is not the S4D one
    again = build_model(cfg, CONT, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(),
                                                 build_model(cfg, CONT, seed=0).state_dict().values()))
    assert set(model.state_dict()) != set(build_model(TINY, CONT, seed=0).state_dict())


# facts.md: the paper's S4 (DPLR) models, layers x H, d_state 64; the rest is the task's S4D setting
PAPER_S4 = {"ecg": (4, 128), "listops": (6, 128), "imdb": (4, 64), "pathfinder": (6, 256)}
SMALL = ("ecg-small", "ecg-embedded", "listops-small", "imdb-small", "pathfinder-small", "ucr-small")


def _without(config, *names):
    return {k: v for k, v in config.to_dict().items() if k not in names}


@pytest.mark.parametrize("task", sorted(PAPER_S4))
def test_paper_s4_configs_have_the_papers_shapes_and_the_s4d_settings(task):
    c, twin = get_config(f"{task}-s4"), get_config(task)
    assert c.layer == "s4" and (c.n_layers, c.d_model) == PAPER_S4[task] and c.d_state == 64
    assert _without(c, "name", "description", "layer", "n_layers", "d_model") == \
        _without(twin, "name", "description", "layer", "n_layers", "d_model")
    assert "S4 (DPLR)" in c.description


@pytest.mark.parametrize("name", SMALL)
def test_small_s4_configs_differ_from_their_s4d_twin_only_in_the_layer(name):
    c = get_config(f"{name}-s4")
    assert c.layer == "s4" and get_config(name).layer == "s4d"
    assert _without(c, "name", "description", "layer") == _without(get_config(name), "name", "description", "layer")
    assert "S4D" not in c.description


def test_with_layer_maps_a_config_to_its_twin():
    from s4op_kernels.models import with_layer

    assert with_layer(get_config("listops"), "s4") is get_config("listops-s4")  # 6x128, not 8x128
    assert with_layer(get_config("listops-s4"), "s4d") is get_config("listops")
    assert with_layer(get_config("ecg-embedded"), "s4").name == "ecg-embedded-s4"
    assert with_layer(get_config("ecg"), "s4d") is get_config("ecg")  # already that layer
    # a custom or a modified config keeps every setting, the layer swapped
    custom = with_layer(TINY, "s4")
    assert custom.layer == "s4" and _without(custom, "layer") == _without(TINY, "layer")
    modified = with_layer(get_config("listops").replace(epochs=2), "s4")
    assert (modified.layer, modified.n_layers, modified.epochs, modified.name) == ("s4", 8, 2, "listops")
    with pytest.raises(ValueError, match=r"with_layer\(layer\): expected one of \['s4', 's4d'\], got 's5'"):
        with_layer(TINY, "s5")
    with pytest.raises(TypeError, match="expected a Config"):
        with_layer("listops", "s4")


@pytest.mark.parametrize("change,message", [
    ({"epochs": 0}, r"Config 'tiny': epochs: expected an integer >= 1, got 0"),
    ({"d_state": 0}, r"Config 'tiny': d_state: expected an integer >= 2, got 0"),
    ({"patience": -1}, r"Config 'tiny': patience: expected an integer >= 1, got -1"),
    ({"finetune_epochs": -1}, r"Config 'tiny': finetune_epochs: expected an integer >= 0, got -1"),
    ({"dropout": 1.0}, r"Config 'tiny': dropout: expected a finite number >= 0.0 and < 1.0, got 1.0"),
    ({"lr": 0}, r"Config 'tiny': lr: expected a finite number > 0.0, got 0.0"),
    ({"clip": float("inf")}, r"Config 'tiny': clip: expected a finite number > 0.0, got inf"),
    ({"weight_decay": -0.1}, r"Config 'tiny': weight_decay: expected a finite number >= 0.0, got -0.1"),
])
def test_config_numeric_checks_name_the_config_and_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        TINY.replace(**change)


@pytest.mark.parametrize("change", [{"epochs": True}, {"epochs": 2.0}, {"lr": "0.1"}, {"ssm_lr": True}])
def test_config_fields_of_the_wrong_type_are_type_errors(change):
    from s4op_kernels._validate import ArgumentTypeError

    with pytest.raises(ArgumentTypeError, match=f"Config 'tiny': {next(iter(change))}: expected"):
        TINY.replace(**change)


def test_config_accepts_numpy_numbers_and_stores_python_ones():
    np = pytest.importorskip("numpy")
    c = TINY.replace(epochs=np.int64(3), lr=np.float32(0.5), clip=2)
    assert (c.epochs, c.lr, c.clip) == (3, 0.5, 2.0)
    assert type(c.epochs) is int and type(c.lr) is float and type(c.clip) is float
    assert Config.from_dict(json.loads(json.dumps(c.to_dict()))) == c


# ---------------------------------------------------------------------- streaming
def _stream_model(info, layer, norm, prenorm, prune, seed=0, compact=False):
    from s4op_kernels.pruning import compact_model

    model = build_model(TINY.replace(layer=layer, norm=norm, prenorm=prenorm, d_model=10, d_state=8, n_layers=3),
                        info, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():  # BatchNorm with non-trivial statistics, as after training
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    for ssm in model.ssm_layers():
        ssm.set_active_channels(sorted(torch.randperm(10, generator=g)[: 10 - round(prune * 10)].tolist()))
    model.eval()
    return compact_model(model).eval() if compact else model


def _stream_in_chunks(model, x, seed):
    """Pushes x in random chunks (1 sample often, longer ones too); returns the logits after every chunk and the
    positions they follow."""
    import random

    rng = random.Random(seed)
    stream, pos, out = model.stream(x.shape[0]), 0, []
    while pos < x.shape[1]:
        n = min(x.shape[1] - pos, rng.choice([1, 1, 2, 7, 31]))
        out.append((pos + n, stream.push(x[:, pos:pos + n]).logits()))
        pos += n
    assert stream.samples == x.shape[1]
    return out


@pytest.mark.parametrize("layer", ["s4d", "s4"])
@pytest.mark.parametrize("info,norm,prenorm,prune", [
    (MULTI, "layer", False, 0.0),
    (CONT, "batch", False, 0.5),
    (TOKENS, "layer", True, 0.5),
    (TOKENS, "batch", True, 0.9),
    (CONT, "none", True, 0.5),
], ids=["multi-layer-post", "cont-batch-post-50", "tok-layer-pre-50", "tok-batch-pre-90", "cont-none-pre-50"])
def test_a_stream_gives_the_forward_of_the_samples_so_far(layer, info, norm, prenorm, prune):
    import copy

    from tolerances import assert_close

    model = _stream_model(info, layer, norm, prenorm, prune, compact=prune == 0.5)
    L = 120
    if info.vocab_size is not None:
        x = _tokens(2, L, seed=3, pad_from=[70, L])  # padding after 70 in the first sequence: left out of the mean
    else:
        x = torch.randn(2, L, info.in_channels, generator=torch.Generator().manual_seed(3))
    m64 = copy.deepcopy(model).double()
    for end, logits in _stream_in_chunks(model, x, seed=4):
        if end in (1, 2, 50, L) or end % 37 == 0:
            with torch.no_grad():
                want = m64(x[:, :end] if info.vocab_size is not None else x[:, :end].double())
            assert_close(logits, want, torch.float32, what=f"logits after {end} samples")


def test_a_stream_can_restart_and_runs_past_any_length():
    model = _stream_model(CONT, "s4d", "layer", False, 0.5)
    x = torch.randn(1, 40, 3)
    stream = model.stream()
    first = stream.push(x).logits()
    stream.reset()
    assert stream.samples == 0
    torch.testing.assert_close(stream.push(x[:, :20]).push(x[:, 20:]).logits(), first)
    # no maximum length: the state carries everything before
    for _ in range(5):
        stream.push(torch.randn(1, 1000, 3))
    assert stream.samples == 5040 and torch.isfinite(stream.logits()).all()
    empty = model.stream(2).logits()  # nothing pushed: the decoder of zero features
    torch.testing.assert_close(empty, model.decoder.bias.detach().expand(2, -1))


def test_what_cannot_stream_is_refused_clearly():
    model = _stream_model(CONT, "s4d", "batch", False, 0.0)
    with pytest.raises(RuntimeError, match="training mode"):
        model.train().stream()
    model.eval()
    stream = model.stream(2)
    model.train()
    with pytest.raises(RuntimeError, match="training mode"):
        stream.push(torch.randn(2, 1, 3))
    model.eval()
    with pytest.raises(ValueError, match=r"\(B=2, T >= 1, C=3\) floats"):
        stream.push(torch.randn(1, 1, 3))
    with pytest.raises(ValueError, match=r"\(B=2, T >= 1, C=3\) floats"):
        stream.push(torch.randn(2, 3))
    model.blocks[1].norm = nn.GroupNorm(2, 10)
    with pytest.raises(ValueError, match="block 1's norm GroupNorm is not known to act on each position"):
        model.stream()
    model.blocks[1].norm = nn.Identity()
    model.blocks[0].ssm = backbone._LAYERS["s4d"](10, d_state=8, dropout=0.0, lr=None, dt_min=1e-3, dt_max=0.1)
    model.blocks[0].ssm.step = None
    with pytest.raises(ValueError, match="block 0's layer S4DLayer has no recurrent form"):
        model.stream()
    tok = _stream_model(TOKENS, "s4d", "layer", True, 0.0)
    with pytest.raises(ValueError, match="token model takes"):
        tok.stream().push(torch.randn(1, 4))
