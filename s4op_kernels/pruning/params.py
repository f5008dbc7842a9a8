"""Parameter counts of pruned models, and compaction of a whole model.

What :func:`count_parameters` counts (the convention of the paper's Table II, "#parameters"):

* every parameter of the model (``model.parameters()``: each tensor once, even if shared; frozen ones
  included), plus
* the per-channel SSM tensors of the prunable layers that are stored as *buffers* (``S4DLayer(lr=0.0)``
  freezes its SSM tensors as buffers: they are still model parameters a deployment must ship).

Other buffers (BatchNorm running statistics and counters, caches) are not parameters and are not counted.

With ``compact=True`` a pruned channel's per-channel SSM tensors do not count -- the size after
:func:`compact_model`.  For S4D with state size ``N`` a pruned channel drops ``C`` (N/2 complex = N reals),
``log_dt`` (1), ``log_A_real`` (N/2), ``A_imag`` (N/2) and ``D`` (1): ``2N + 2`` numbers (130 for N = 64).
The output mixing and everything outside the SSM layers are never pruned.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from s4op_kernels.pruning.selection import named_ssm_layers, prunable_spec, resolve_tensor


def count_parameters(model: nn.Module, *, compact: bool = True) -> int:
    """Number of parameters of ``model`` (see the module docstring for exactly what counts).

    Args:
        model: any module; its prunable layers are found with :func:`~s4op_kernels.pruning.ssm_layers`.
        compact: count only the active channels' rows of the per-channel SSM tensors (the compacted
            size); ``False`` counts the tensors as stored (a pruned but uncompacted layer still stores all
            ``H`` rows).

    The model is not modified.  ``count_parameters(m) == count_parameters(compact_model(m), compact=False)``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"count_parameters(model): expected an nn.Module, got {type(model).__name__}")
    # id(tensor) -> how many of its numbers count; filled for the per-channel SSM tensors only.
    ssm_sizes: dict[int, int] = {}
    ssm_buffers: dict[int, torch.Tensor] = {}
    for name, layer in named_ssm_layers(model):
        for path, dim in prunable_spec(layer).ssm_tensors:
            t = resolve_tensor(layer, path)
            stored = t.shape[dim]
            rows = layer.num_active if compact else stored
            if compact and not layer.is_compact and stored != layer.d_model:
                raise ValueError(f"count_parameters: {name or type(layer).__name__}.{path} has {stored} channels along "
                                 f"dim {dim}, expected d_model = {layer.d_model}")
            ssm_sizes[id(t)] = t.numel() // stored * rows if stored else 0
            if not isinstance(t, nn.Parameter):
                ssm_buffers[id(t)] = t
    total = sum(ssm_sizes.get(id(p), p.numel()) for p in model.parameters())
    total += sum(ssm_sizes[key] for key in ssm_buffers)
    return int(total)


def compact_model(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """``model`` with every prunable layer replaced by its ``compact()`` form (per-channel SSM tensors hold
    only the active rows), for deployment or to check :func:`count_parameters`.

    The compacted model computes the same function.  Without ``inplace`` the model is deep-copied first
    and left unchanged; with it the layers are swapped inside ``model`` itself.  A layer reached by several
    paths is replaced at every one of them by the same compacted layer.  Returns the compacted model.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"compact_model(model): expected an nn.Module, got {type(model).__name__}")
    if not inplace:
        model = copy.deepcopy(model)
    replaced = {id(layer): layer.compact() for _, layer in named_ssm_layers(model)}
    if id(model) in replaced:
        return replaced[id(model)]
    for name, module in list(model.named_modules(remove_duplicate=False)):
        if id(module) in replaced:
            parent_name, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent_name), attr, replaced[id(module)])
    return model
