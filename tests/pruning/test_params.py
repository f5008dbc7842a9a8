"""count_parameters and compact_model: the compacted size without compacting, against real compacted copies."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from s4op_kernels import S4DLayer
from s4op_kernels.pruning import allocate, compact_model, count_parameters, prune_model, register_prunable, ssm_layers
from s4op_kernels.pruning import selection
from factories import ToyPrunable, make_s4d

H, N = 12, 8


class TinyModel(nn.Module):
    """encoder -> 3 S4D layers with norms -> decoder (written here so the test does not need the backbone)."""

    def __init__(self, seed=0, lr=None, norm="layer"):
        super().__init__()
        torch.manual_seed(seed)
        self.encoder = nn.Linear(2, H)
        self.layers = nn.ModuleList(S4DLayer(H, N, lr=lr) for _ in range(3))
        make = (lambda: nn.LayerNorm(H)) if norm == "layer" else (lambda: nn.BatchNorm1d(H))
        self.norms = nn.ModuleList(make() for _ in range(3))
        self.decoder = nn.Linear(H, 3)

    def forward(self, x):  # x: (B, L, 2) -> (B, 3)
        h = self.encoder(x).transpose(1, 2)
        for layer, norm in zip(self.layers, self.norms):
            y, _ = layer(h)
            h = h + y
            h = norm(h.transpose(1, 2)).transpose(1, 2) if isinstance(norm, nn.LayerNorm) else norm(h)
        return self.decoder(h.mean(-1))


def numel_of_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def per_channel(n_state: int) -> int:
    return 2 * n_state + 2  # C (N reals) + log_dt + log_A_real (N/2) + A_imag (N/2) + D


def test_unpruned_count_is_the_parameter_count():
    model = TinyModel()
    assert count_parameters(model) == numel_of_parameters(model) == count_parameters(model, compact=False)


@pytest.mark.parametrize("seed", [0, 5], ids=lambda s: f"seed{s}")
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9, 1.0])
def test_pruned_count_equals_an_actually_compacted_copy(rate, seed):
    model = TinyModel(seed)
    dense = numel_of_parameters(model)
    counts = allocate(rate, 3, H, "uniform")
    prune_model(model, counts, seed=seed)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    n = count_parameters(model)
    compacted = compact_model(model)
    assert n == numel_of_parameters(compacted) == count_parameters(compacted, compact=False)
    assert n == dense - sum(counts) * per_channel(N)
    # Counting compacted nothing: same tensors, no layer compacted, pruned rows still stored.
    assert all(not layer.is_compact for layer in ssm_layers(model))
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert count_parameters(model, compact=False) == dense


def test_frozen_ssm_buffers_count_and_other_buffers_do_not():
    frozen = TinyModel(0, lr=0.0, norm="batch")
    trained = TinyModel(0, lr=None, norm="batch")
    assert isinstance(frozen.layers[0].kernel.log_dt, torch.Tensor) and "log_dt" in dict(frozen.layers[0].kernel.named_buffers())
    # BatchNorm running stats are buffers of both models but not parameters.
    assert count_parameters(frozen) == count_parameters(trained) == numel_of_parameters(trained)
    prune_model(frozen, [3, 4, 5], seed=1)
    expected = numel_of_parameters(trained) - 12 * per_channel(N)
    assert count_parameters(frozen) == expected
    compacted = compact_model(frozen)
    buffers = sum(b.numel() for layer in ssm_layers(compacted) for _, b in layer.kernel.named_buffers())
    assert numel_of_parameters(compacted) + buffers == expected


def test_shared_parameters_count_once():
    layer = make_s4d(H, N, 0)
    model = nn.Sequential(layer, nn.Identity(), layer)
    layer.set_active_channels(range(4))
    assert count_parameters(model) == count_parameters(layer) == numel_of_parameters(layer) - 8 * per_channel(N)


@pytest.mark.parametrize("inplace", [False, True], ids=["copy", "inplace"])
def test_compact_model_same_function_and_inplace_semantics(inplace):
    model = TinyModel(3).eval()
    prune_model(model, [2, 5, 11], seed=3)
    x = torch.randn(2, 30, 2, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        before = model(x)
        out = compact_model(model, inplace=inplace)
        after = out(x)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)
    assert all(layer.is_compact for layer in ssm_layers(out))
    assert (out is model) == inplace
    assert all(layer.is_compact for layer in ssm_layers(model)) == inplace
    single = make_s4d(H, N, 0)
    single.set_active_channels([1, 2])
    assert compact_model(single).is_compact and not single.is_compact


def test_paper_ecg_s4d_parameter_counts():
    # Table II, ECG S4D: 4 layers, H=128, N=64, Linear(12 leads) encoder, LayerNorm, 6 labels.
    torch.manual_seed(0)
    model = nn.ModuleDict({
        "encoder": nn.Linear(12, 128),
        "layers": nn.ModuleList(S4DLayer(128, 64) for _ in range(4)),
        "norms": nn.ModuleList(nn.LayerNorm(128) for _ in range(4)),
        "decoder": nn.Linear(128, 6),
    })
    assert count_parameters(model) == 202_118
    for rate, published in [(0.1, 195_488), (0.5, 168_838), (0.7, 155_578)]:
        prune_model(model, allocate(rate, 4, 128), seed=42)
        assert count_parameters(model) == published


class ChannelsLast(ToyPrunable):
    """A toy prunable layer whose per-channel tensor has its channels along dim 1: weight (3, H)."""

    def __init__(self, d_model):
        super().__init__(d_model)
        self.weight = nn.Parameter(torch.zeros(3, d_model))
        self.mix = nn.Linear(d_model, d_model)


def test_registered_layer_with_channels_on_another_dim(monkeypatch):
    monkeypatch.setattr(selection, "_REGISTRY", dict(selection._REGISTRY))
    register_prunable(ChannelsLast, ssm_tensors=[("weight", 1)])
    layer = ChannelsLast(10)
    full = 3 * 10 + 10 * 10 + 10
    assert count_parameters(layer) == full
    layer.set_active_channels([0, 4, 9])
    assert count_parameters(layer) == full - 3 * 7
    assert count_parameters(layer, compact=False) == full


def test_count_parameters_rejects_non_modules():
    with pytest.raises(TypeError, match="nn.Module"):
        count_parameters([make_s4d(H, N, 0)])
    with pytest.raises(TypeError, match="nn.Module"):
        compact_model(None)
