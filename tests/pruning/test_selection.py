"""Finding prunable layers, choosing channels inside a layer, and pruning a whole model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from s4op_kernels import S4DLayer
from s4op_kernels._validate import ArgumentTypeError
from s4op_kernels.ops import s4d_kernel_ref
from s4op_kernels.pruning import (
    allocate,
    named_ssm_layers,
    prunable_spec,
    prunable_types,
    prune_model,
    register_prunable,
    select_channels,
    ssm_layers,
)
from s4op_kernels.pruning import selection
from factories import ToyPrunable, make_s4d

H, N = 12, 8


class Block(nn.Module):
    def __init__(self, ssm: nn.Module):
        super().__init__()
        self.norm = nn.LayerNorm(H)
        self.ssm = ssm

    def forward(self, x):  # x: (B, H, L)
        y, _ = self.ssm(self.norm(x.transpose(1, 2)).transpose(1, 2))
        return x + y


class TinyModel(nn.Module):
    """encoder -> 3 residual S4D blocks -> mean -> decoder; the layers are seeded and randomized."""

    def __init__(self, seed: int = 0, n_layers: int = 3):
        super().__init__()
        torch.manual_seed(seed)
        self.encoder = nn.Linear(2, H)
        self.blocks = nn.ModuleList(Block(make_s4d(H, N, seed + i)) for i in range(n_layers))
        self.decoder = nn.Linear(H, 3)

    def forward(self, x):  # x: (B, L, 2) -> (B, 3)
        h = self.encoder(x).transpose(1, 2)
        for block in self.blocks:
            h = block(h)
        return self.decoder(h.mean(-1))


def active_sets(model):
    return [layer.active_channels.tolist() for layer in ssm_layers(model)]


# ----------------------------------------------------------------------------- finding the layers
def test_ssm_layers_in_depth_order_with_names():
    model = TinyModel()
    model.tail = make_s4d(H, N, 9)  # registered last: deepest
    names = [name for name, _ in named_ssm_layers(model)]
    assert names == ["blocks.0.ssm", "blocks.1.ssm", "blocks.2.ssm", "tail"]
    assert ssm_layers(model) == [b.ssm for b in model.blocks] + [model.tail]


def test_shared_layer_listed_once_and_model_may_be_a_layer():
    layer = make_s4d(H, N, 0)
    model = nn.Sequential(layer, nn.Identity(), layer)
    assert named_ssm_layers(model) == [("0", layer)]
    assert named_ssm_layers(layer) == [("", layer)]
    assert ssm_layers(nn.Linear(3, 3)) == []
    with pytest.raises(TypeError, match="nn.Module"):
        ssm_layers([layer])


def test_subclasses_are_prunable():
    class MyS4D(S4DLayer):
        pass

    layer = MyS4D(H, N)
    assert ssm_layers(nn.Sequential(layer)) == [layer]
    assert prunable_spec(layer) is prunable_spec(make_s4d(H, N, 0))


class ToyLayer(ToyPrunable):
    """A minimal non-S4D prunable layer: per-channel weights (H, 3), channels along dim 0."""

    def __init__(self, d_model):
        super().__init__(d_model)
        self.weight = nn.Parameter(torch.arange(d_model * 3, dtype=torch.float32).view(d_model, 3))


def test_register_prunable_extends_the_set(monkeypatch):
    monkeypatch.setattr(selection, "_REGISTRY", dict(selection._REGISTRY))
    model = nn.Sequential(make_s4d(H, N, 0), ToyLayer(5))
    assert len(ssm_layers(model)) == 1
    spec = register_prunable(ToyLayer, ssm_tensors=["weight"])
    assert spec.ssm_tensors == (("weight", 0),) and spec.kernel is None
    assert ToyLayer in prunable_types()
    assert ssm_layers(model) == [model[0], model[1]]
    chosen = select_channels(model[1], 2, seed=0)
    assert chosen.numel() == 2 and chosen.max() < 5
    with pytest.raises(ValueError, match="no kernel function"):
        select_channels(model[1], 1, "kernel_norm", length=8)
    with pytest.raises(ValueError, match="already registered"):
        register_prunable(ToyLayer, ssm_tensors=["weight"])
    with pytest.raises(ValueError, match="at least one"):
        register_prunable(ToyLayer, ssm_tensors=[], overwrite=True)
    with pytest.raises(TypeError, match="nn.Module subclass"):
        register_prunable(int, ssm_tensors=["weight"])


# ----------------------------------------------------------------------------- random selection
@pytest.mark.parametrize("seed", [0, 42], ids=lambda s: f"seed{s}")
def test_random_chooses_only_active_channels(seed):
    layer = make_s4d(H, N, seed)
    layer.set_active_channels([0, 2, 3, 5, 8, 9, 11])
    for n_prune in range(8):
        chosen = select_channels(layer, n_prune, seed=seed + n_prune)
        assert chosen.dtype == torch.int64 and chosen.device.type == "cpu"
        assert chosen.tolist() == sorted(set(chosen.tolist())) and chosen.numel() == n_prune
        assert set(chosen.tolist()) <= {0, 2, 3, 5, 8, 9, 11}
    assert layer.active_channels.tolist() == [0, 2, 3, 5, 8, 9, 11]  # selection does not prune


@pytest.mark.parametrize("seed", [3], ids=["seed3"])
def test_random_is_reproducible_and_seed_equals_generator(seed):
    layer = make_s4d(64, N, seed)
    a = select_channels(layer, 20, seed=seed)
    b = select_channels(layer, 20, seed=seed)
    c = select_channels(layer, 20, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(a, b) and torch.equal(a, c)
    assert not torch.equal(a, select_channels(layer, 20, seed=seed + 1))
    # A shared generator advances: the next call draws differently.
    g = torch.Generator().manual_seed(seed)
    assert not torch.equal(select_channels(layer, 20, generator=g), select_channels(layer, 20, generator=g))


def test_random_with_the_global_generator():
    layer = make_s4d(H, N, 0)
    torch.manual_seed(5)
    a = select_channels(layer, 4)
    torch.manual_seed(5)
    assert torch.equal(a, select_channels(layer, 4))


# ----------------------------------------------------------------------------- importance selectors
@pytest.mark.parametrize("seed", [1, 2], ids=lambda s: f"seed{s}")
def test_kernel_norm_prunes_the_channels_with_scaled_down_C(seed):
    layer = make_s4d(H, N, seed)
    weak = [1, 4, 7, 10]
    with torch.no_grad():
        layer.kernel.C[weak] *= 1e-3  # K is linear in C: these kernels become 1000x smaller
    chosen = select_channels(layer, len(weak), "kernel_norm", length=64)
    assert chosen.tolist() == weak
    # And in general it is the argsort of the float64 kernel norms.
    k = layer.kernel
    K = s4d_kernel_ref(*(t.detach().double() for t in (k.C, k.log_dt, k.log_A_real, k.A_imag)), 64)
    expected = torch.argsort(K.norm(dim=-1))[:7].sort().values
    assert select_channels(layer, 7, "kernel_norm", length=64).tolist() == expected.tolist()


def test_kernel_norm_among_active_channels_dense_or_compacted():
    layer = make_s4d(H, N, 4)
    layer.set_active_channels([0, 1, 3, 6, 7, 9, 11])
    with torch.no_grad():
        layer.kernel.C[2] *= 1e-4  # already pruned: must not be chosen
        layer.kernel.C[9] *= 1e-3
    dense = select_channels(layer, 3, "kernel_norm", length=50)
    assert 2 not in dense.tolist() and 9 in dense.tolist()
    assert torch.equal(select_channels(layer.compact(), 3, "kernel_norm", length=50), dense)


def test_loss_delta_prunes_the_least_harmful_and_restores_the_layer():
    layer = make_s4d(H, N, 0)
    layer.set_active_channels([0, 1, 2, 4, 5, 6, 8, 9, 10, 11])
    importance = torch.tensor([5.0, 0.1, 3.0, 9.0, 0.2, 7.0, 0.3, 8.0, 1.0, 2.0, 6.0, 4.0])
    calls = []

    def loss():  # loss grows by importance[h] when channel h is pruned
        calls.append(1)
        return float(importance.sum() - importance[layer.active_channels].sum())

    chosen = select_channels(layer, 3, "loss_delta", loss_fn=loss)
    assert chosen.tolist() == [1, 4, 6]
    assert layer.active_channels.tolist() == [0, 1, 2, 4, 5, 6, 8, 9, 10, 11]
    assert len(calls) == 1 + 10  # the base loss, then one per active channel
    with pytest.raises(ValueError, match="uncompacted"):
        select_channels(layer.compact(), 3, "loss_delta", loss_fn=loss)


def test_loss_delta_restores_the_layer_when_the_loss_fails():
    layer = make_s4d(H, N, 0)
    count = iter(range(100))

    def loss():
        if next(count) == 3:
            raise RuntimeError("evaluation failed")
        return 0.0

    with pytest.raises(RuntimeError, match="evaluation failed"):
        select_channels(layer, 2, "loss_delta", loss_fn=loss)
    assert layer.num_active == H
    with pytest.raises(ValueError, match="real number"):
        select_channels(layer, 2, "loss_delta", loss_fn=lambda: float("nan"))


def test_score_function_selector():
    layer = make_s4d(H, N, 0)
    layer.set_active_channels([0, 3, 5, 7])
    chosen = select_channels(layer, 2, lambda l: torch.tensor([4.0, 1.0, 3.0, 1.0]))
    assert chosen.tolist() == [3, 7]  # the two lowest scores (tie -> lower channel first)
    with pytest.raises(ValueError, match="shape"):
        select_channels(layer, 2, lambda l: torch.zeros(H))


# ----------------------------------------------------------------------------- select_channels errors
def test_select_channels_errors():
    layer = make_s4d(H, N, 0)
    layer.set_active_channels(range(5))
    with pytest.raises(ValueError, match="0 <= n_prune <= 5"):
        select_channels(layer, 6)
    with pytest.raises(ValueError, match="n_prune"):
        select_channels(layer, -1)
    with pytest.raises(TypeError, match="n_prune"):
        select_channels(layer, 1.0)
    with pytest.raises(ValueError, match="unknown selector"):
        select_channels(layer, 1, "magnitude")
    with pytest.raises(ValueError, match="seed or generator"):
        select_channels(layer, 1, seed=1, generator=torch.Generator())
    with pytest.raises(ValueError, match="length"):
        select_channels(layer, 1, "kernel_norm")
    with pytest.raises(ValueError, match="loss_fn"):
        select_channels(layer, 1, "loss_delta")
    with pytest.raises(TypeError, match="not a prunable layer"):
        select_channels(nn.Linear(3, 3), 1)
    assert select_channels(layer, 5, seed=0).tolist() == [0, 1, 2, 3, 4]  # every active channel


def test_select_channels_seed_and_length_are_checked():
    # _validate.check_int: a wrong type is an ArgumentTypeError (TypeError and ValueError), a bad value ValueError
    layer = make_s4d(H, N, 0)
    for bad in (1.5, True, "1"):
        with pytest.raises(ArgumentTypeError, match=r"make_generator\(seed\): expected an integer, got"):
            select_channels(layer, 1, seed=bad)
    with pytest.raises(ArgumentTypeError, match=r"make_generator\(seed\)"):
        selection.make_generator(seed=2.0)
    assert torch.equal(select_channels(layer, 2, seed=np.int64(3)), select_channels(layer, 2, seed=3))
    with pytest.raises(ValueError, match=r"select_channels\(length\): selector='kernel_norm' needs .* got None"):
        select_channels(layer, 1, "kernel_norm")
    for bad in (0, -4):
        with pytest.raises(ValueError, match=rf"select_channels\(length\): expected an integer >= 1, got {bad}"):
            select_channels(layer, 1, "kernel_norm", length=bad)
    for bad in (8.0, True):
        with pytest.raises(ArgumentTypeError, match=r"select_channels\(length\): expected an integer >= 1"):
            select_channels(layer, 1, "kernel_norm", length=bad)
    assert torch.equal(select_channels(layer, 2, "kernel_norm", length=np.int64(8)),
                       select_channels(layer, 2, "kernel_norm", length=8))


# ----------------------------------------------------------------------------- prune_model
@pytest.mark.parametrize("seed", [7, 31650], ids=lambda s: f"seed{s}")
def test_prune_model_applies_counts_and_steps_are_nested(seed):
    model = TinyModel(seed)
    x = torch.randn(2, 40, 2, generator=torch.Generator().manual_seed(seed))
    previous = active_sets(model)
    for rate in (0.1, 0.3, 0.5, 0.7, 0.9):
        counts = allocate(rate, 3, H)
        newly = prune_model(model, counts, seed=seed)
        current = active_sets(model)
        assert [H - len(a) for a in current] == counts
        for before, after, new in zip(previous, current, newly):
            assert set(after) <= set(before)  # nested
            assert sorted(set(before) - set(after)) == new.tolist()
        previous = current
        with torch.no_grad():
            assert model.eval()(x).shape == (2, 3)


@pytest.mark.parametrize("seed", [123], ids=["seed123"])
def test_prune_model_seeding_is_one_generator_in_depth_order(seed):
    a, b = TinyModel(0), TinyModel(0)
    prune_model(a, [1, 0, 2], seed=seed)  # nothing (then a draw) for layer 1, too
    g = torch.Generator().manual_seed(seed)
    for layer, n in zip(ssm_layers(b), [1, 0, 2]):
        chosen = select_channels(layer, n, generator=g)
        layer.set_active_channels(sorted(set(range(H)) - set(chosen.tolist())))
    assert active_sets(a) == active_sets(b)
    c = TinyModel(0)
    prune_model(c, [1, 0, 2], seed=seed)
    assert active_sets(a) == active_sets(c)


def test_prune_model_with_kernel_norm_and_a_whole_layer():
    model = TinyModel(1)
    pruned = prune_model(model, [0, 3, H], "kernel_norm", length=32)
    assert [H - len(a) for a in active_sets(model)] == [0, 3, H]
    assert pruned[2].tolist() == list(range(H))


def test_prune_model_on_compacted_layers_continues_nested():
    model = TinyModel(2)
    prune_model(model, [1, 2, 3], seed=0)
    for block in model.blocks:
        block.ssm = block.ssm.compact()
    before = active_sets(model)
    prune_model(model, [2, 4, 6], seed=1)
    after = active_sets(model)
    assert all(set(a) <= set(b) for a, b in zip(after, before))
    assert [H - len(a) for a in after] == [2, 4, 6]


def test_prune_model_errors_leave_the_model_unchanged():
    model = TinyModel(0)
    prune_model(model, [2, 2, 2], seed=0)
    before = active_sets(model)
    with pytest.raises(ValueError, match="3 prunable layers"):
        prune_model(model, [2, 2], seed=0)
    with pytest.raises(ValueError, match="cannot be re-activated"):
        prune_model(model, [3, 1, 3], seed=0)  # layer 1 already has 2 pruned
    with pytest.raises(ValueError, match="outside 0..12"):
        prune_model(model, [3, 3, 13], seed=0)
    with pytest.raises(TypeError, match=r"counts\[0\]"):
        prune_model(model, [2.5, 3, 3], seed=0)
    for bad in (2.5, True, "3", None):
        with pytest.raises(ArgumentTypeError, match=r"prune_model\(counts\[1\]\): expected an integer, got"):
            prune_model(model, [3, bad, 3], seed=0)
    with pytest.raises(ArgumentTypeError, match=r"make_generator\(seed\)"):
        prune_model(model, [3, 3, 3], seed=0.5)
    with pytest.raises(TypeError, match="sequence"):
        prune_model(model, 3, seed=0)
    with pytest.raises(ValueError, match="no prunable layers"):
        prune_model(nn.Linear(2, 2), [1])
    assert active_sets(model) == before
    prune_model(model, torch.tensor([2, 3, 4]), seed=0)  # a tensor of counts works too
    assert [H - len(a) for a in active_sets(model)] == [2, 3, 4]
