"""Which modules are prunable, and which of a layer's channels to prune.

A *prunable layer* is a module whose channels ("SSM operators") can be switched to identity through the
pruning interface of :class:`~s4op_kernels.S4DLayer`: ``d_model``, ``active_channels`` (sorted int64),
``num_active``, ``is_compact``, ``set_active_channels(idx)``, ``compact()``.  The registry below says which
classes those are and where their per-channel SSM tensors live; :class:`~s4op_kernels.S4DLayer` is
registered here, other layers (S4) register themselves with :func:`register_prunable`.

Channel selection always chooses among the layer's *currently active* channels, so repeated pruning steps
are nested: a channel pruned at 30 % stays pruned at 50 %.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence, Union

import torch
from torch import nn

from s4op_kernels._validate import check_int
from s4op_kernels.layers._base import PrunableSSMLayer
from s4op_kernels.layers.s4 import S4Layer
from s4op_kernels.layers.s4d import S4DLayer

KernelFn = Callable[[nn.Module, int], torch.Tensor]
ScoreFn = Callable[[nn.Module], torch.Tensor]

SELECTORS = ("random", "kernel_norm", "loss_delta")


@dataclass(frozen=True)
class PrunableSpec:
    """How the pruner sees one prunable layer class.

    Attributes:
        ssm_tensors: ``(path, channel_dim)`` of every per-channel SSM tensor, ``path`` relative to the layer
            (``"kernel.C"``).  Pruning a channel removes its slice along ``channel_dim`` from each of them
            once the layer is compacted; :func:`~s4op_kernels.pruning.params.count_parameters` counts them.
        kernel: optional ``kernel(layer, L) -> K: (A, L)``, the convolution kernels of the layer's ``A``
            active channels in the order of ``active_channels``; needed by the ``"kernel_norm"`` selector.
    """

    ssm_tensors: tuple[tuple[str, int], ...]
    kernel: Optional[KernelFn] = None


_REGISTRY: dict[type, PrunableSpec] = {}


def register_prunable(cls: type, *, ssm_tensors: Sequence[Union[str, tuple[str, int]]],
                      kernel: Optional[KernelFn] = None, overwrite: bool = False) -> PrunableSpec:
    """Make instances of ``cls`` (and its subclasses) prunable layers.

    ``ssm_tensors``: paths of the per-channel SSM tensors, each a ``"path"`` (channels along dim 0) or a
    ``("path", channel_dim)`` pair.  ``kernel``: see :class:`PrunableSpec`.  Returns the stored spec.
    """
    if not isinstance(cls, type) or not issubclass(cls, nn.Module):
        raise TypeError(f"register_prunable(cls): expected an nn.Module subclass, got {cls!r}")
    if cls in _REGISTRY and not overwrite:
        raise ValueError(f"register_prunable: {cls.__name__} is already registered (pass overwrite=True to replace it)")
    entries = []
    for entry in ssm_tensors:
        path, dim = (entry, 0) if isinstance(entry, str) else tuple(entry)
        if not isinstance(path, str) or not path or isinstance(dim, bool) or not isinstance(dim, int):
            raise ValueError(f"register_prunable(ssm_tensors): expected 'path' or ('path', dim) entries, got {entry!r}")
        entries.append((path, dim))
    if not entries:
        raise ValueError("register_prunable(ssm_tensors): a prunable layer needs at least one per-channel SSM tensor")
    if kernel is not None and not callable(kernel):
        raise TypeError(f"register_prunable(kernel): expected a callable (layer, L) -> (A, L) or None, got {kernel!r}")
    spec = PrunableSpec(tuple(entries), kernel)
    _REGISTRY[cls] = spec
    return spec


def prunable_types() -> tuple[type, ...]:
    """The registered prunable layer classes."""
    return tuple(_REGISTRY)


def prunable_spec(layer: nn.Module) -> PrunableSpec:
    """The :class:`PrunableSpec` of ``layer``'s class (the nearest registered base class)."""
    for cls in type(layer).__mro__:
        spec = _REGISTRY.get(cls)
        if spec is not None:
            return spec
    raise TypeError(
        f"{type(layer).__name__} is not a prunable layer; registered: {[c.__name__ for c in _REGISTRY]} "
        "(see register_prunable)"
    )


def is_prunable(module: nn.Module) -> bool:
    return isinstance(module, prunable_types())


def named_ssm_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(qualified name, layer)`` of every prunable layer of ``model``, in depth order.

    Depth order is module registration order (``model.named_modules()``), which for the usual
    ``ModuleList``/``Sequential`` of blocks is input-to-output order.  A module reached by two paths is
    listed once (at its first path); the submodules of a prunable layer are not searched.  ``model`` may
    itself be a prunable layer (its name is then ``""``).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"named_ssm_layers(model): expected an nn.Module, got {type(model).__name__}")
    types = prunable_types()
    found: list[tuple[str, nn.Module]] = []
    for name, module in model.named_modules():
        if isinstance(module, types) and not any(_is_inside(name, outer) for outer, _ in found):
            found.append((name, module))
    return found


def ssm_layers(model: nn.Module) -> list[nn.Module]:
    """The prunable layers of ``model`` in depth order (see :func:`named_ssm_layers`)."""
    return [layer for _, layer in named_ssm_layers(model)]


def _is_inside(name: str, outer: str) -> bool:
    return outer == "" or name.startswith(outer + ".")


def resolve_tensor(layer: nn.Module, path: str) -> torch.Tensor:
    """The tensor (parameter or buffer) at ``path`` relative to ``layer``."""
    owner, _, attr = path.rpartition(".")
    try:
        tensor = getattr(layer.get_submodule(owner), attr)
    except AttributeError:
        raise AttributeError(f"{type(layer).__name__} has no SSM tensor {path!r} (see register_prunable)") from None
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{type(layer).__name__}.{path} is a {type(tensor).__name__}, expected a tensor")
    return tensor


# ---------------------------------------------------------------------------------------------- S4D, S4
def _active_kernels(layer: PrunableSSMLayer, L: int) -> torch.Tensor:
    """K: (A, L) of the active channels of an S4DLayer or S4Layer, in the order of ``active_channels``."""
    with torch.no_grad():
        return layer.active_kernels(L)


for _cls in (S4DLayer, S4Layer):
    register_prunable(_cls, ssm_tensors=tuple(zip(_cls.SSM_TENSORS, _cls.SSM_CHANNEL_DIMS)), kernel=_active_kernels)


# ---------------------------------------------------------------------------------------------- selection
def make_generator(seed: Optional[int] = None, generator: Optional[torch.Generator] = None) -> Optional[torch.Generator]:
    """The generator a selection consumes: ``generator`` itself, a new CPU generator seeded with ``seed``,
    or ``None`` (torch's global generator) when neither is given."""
    if seed is not None and generator is not None:
        raise ValueError("give either seed or generator, not both")
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator: expected a torch.Generator, got {type(generator).__name__}")
        if generator.device.type != "cpu":
            raise ValueError(f"generator: expected a CPU generator, got one on {generator.device}")
        return generator
    if seed is not None:
        return torch.Generator().manual_seed(check_int(seed, "seed", func="make_generator"))
    return None


def select_channels(
    layer: nn.Module,
    n_prune: int,
    selector: Union[str, ScoreFn] = "random",
    *,
    seed: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
    length: Optional[int] = None,
    loss_fn: Optional[Callable[[], float]] = None,
) -> torch.Tensor:
    """Choose ``n_prune`` of ``layer``'s active channels to prune.  The layer is left as it was.

    Args:
        layer: a prunable layer (:func:`prunable_types`).
        n_prune: how many of its currently active channels to choose, ``0 <= n_prune <= num_active``.
        selector:
            ``"random"`` -- uniformly at random (the paper, section III-B).  Consumes exactly one
            ``torch.randperm(num_active)`` draw from the generator per call, whatever ``n_prune`` is, so a
            sequence of calls sharing one generator is reproducible.
            ``"kernel_norm"`` -- the channels whose SSM convolution kernel ``K_h`` (``length`` taps, the
            task's sequence length) has the smallest L2 norm.  ``D`` is not part of the kernel.
            ``"loss_delta"`` -- the channels whose removal alone increases ``loss_fn()`` the least: each
            active channel is pruned in turn, ``loss_fn()`` evaluated under ``torch.no_grad()``, and the
            layer restored.  One evaluation per active channel; not available on compacted layers (their
            pruned rows are gone, so a channel could not be restored).
            a callable ``score(layer) -> (num_active,)`` -- importance of each active channel in the
            order of ``active_channels``; the lowest ``n_prune`` are chosen.
        seed, generator: randomness of ``"random"`` (see :func:`make_generator`); ignored by the others.
        length: kernel length ``L`` for ``"kernel_norm"``.
        loss_fn: ``() -> float`` for ``"loss_delta"``, evaluating the model that contains ``layer``.

    Ties in a score are broken toward the lower channel index.

    Returns:
        Sorted int64 CPU tensor of ``n_prune`` channel indices (0..d_model-1), all currently active.
    """
    spec = prunable_spec(layer)
    active = layer.active_channels
    n_active = int(active.numel())
    n_prune = check_int(n_prune, "n_prune", func="select_channels")
    if not 0 <= n_prune <= n_active:
        raise ValueError(
            f"select_channels(n_prune): cannot prune {n_prune} channels of a layer with {n_active} active "
            f"(of {layer.d_model}); expected 0 <= n_prune <= {n_active}"
        )

    if selector == "random":
        gen = make_generator(seed, generator)
        order = torch.randperm(n_active, generator=gen)
        return active[order[:n_prune]].sort().values

    if selector == "kernel_norm":
        if spec.kernel is None:
            raise ValueError(f"select_channels: {type(layer).__name__} registered no kernel function, so "
                             "selector='kernel_norm' is not available for it")
        if length is None:
            raise ValueError("select_channels(length): selector='kernel_norm' needs the kernel length L >= 1 "
                             "(the task's sequence length), got None")
        length = check_int(length, "length", func="select_channels", minimum=1)
        scores = _kernel_norms(layer, spec, length) if n_prune else torch.zeros(n_active)
    elif selector == "loss_delta":
        if not callable(loss_fn):
            raise ValueError(f"select_channels(loss_fn): selector='loss_delta' needs a callable () -> float, got {loss_fn!r}")
        scores = _loss_deltas(layer, loss_fn) if n_prune else torch.zeros(n_active)
    elif callable(selector) and not isinstance(selector, str):
        scores = selector(layer)
        if not isinstance(scores, torch.Tensor) or scores.shape != (n_active,):
            raise ValueError(f"select_channels(selector): the score function must return a tensor of shape "
                             f"({n_active},) (one score per active channel), got "
                             f"{tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__}")
        if scores.is_complex() or bool(torch.isnan(scores).any()):
            raise ValueError("select_channels(selector): scores must be real and not NaN")
    else:
        raise ValueError(f"select_channels(selector): unknown selector {selector!r}; choose one of "
                         f"{list(SELECTORS)} or pass a score function")
    # Stable sort on channel order: equal scores prune the lower channel index first.
    lowest = torch.sort(scores.detach().to("cpu", torch.float64), stable=True).indices[:n_prune]
    return active[lowest].sort().values


def _kernel_norms(layer: nn.Module, spec: PrunableSpec, L: int) -> torch.Tensor:
    K = spec.kernel(layer, L)  # (A, L)
    if K.shape != (layer.num_active, L):
        raise RuntimeError(f"{type(layer).__name__}'s kernel function returned shape {tuple(K.shape)}, "
                           f"expected ({layer.num_active}, {L})")
    return torch.linalg.vector_norm(K.detach().to(torch.float64), dim=-1)


def _loss_deltas(layer: nn.Module, loss_fn: Callable[[], float]) -> torch.Tensor:
    if layer.is_compact:
        raise ValueError("select_channels: selector='loss_delta' needs an uncompacted layer (it prunes each channel "
                         "temporarily, and a compacted layer cannot re-activate a channel); select before compact()")
    active = layer.active_channels
    deltas = torch.empty(active.numel(), dtype=torch.float64)
    try:
        with torch.no_grad():
            base = _loss_value(loss_fn)
            for j in range(active.numel()):
                layer.set_active_channels(torch.cat([active[:j], active[j + 1:]]))
                deltas[j] = _loss_value(loss_fn) - base
    finally:
        layer.set_active_channels(active)
    return deltas


def _loss_value(loss_fn: Callable[[], float]) -> float:
    value = loss_fn()
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"select_channels(loss_fn): must return a scalar, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(float(value)):
        raise ValueError(f"select_channels(loss_fn): must return a real number, got {value!r}")
    return float(value)


# ---------------------------------------------------------------------------------------------- model
def prune_model(
    model: nn.Module,
    counts: Sequence[int],
    selector: Union[str, ScoreFn] = "random",
    *,
    seed: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
    length: Optional[int] = None,
    loss_fn: Optional[Callable[[], float]] = None,
) -> list[torch.Tensor]:
    """Prune ``model``'s prunable layers (depth order, :func:`ssm_layers`) to ``counts``.

    ``counts[i]`` is the TOTAL number of channels pruned in layer ``i`` after this call (as returned by
    :func:`~s4op_kernels.pruning.allocation.allocate`), so a layer that already has ``p`` pruned
    channels loses ``counts[i] - p`` more, chosen among its active channels by ``selector`` (see
    :func:`select_channels`).  Successive calls with growing counts therefore give nested pruning.

    Seeding: one generator (``generator``, or a fresh one seeded with ``seed``, or torch's global one) is
    shared by the layers, visited in depth order, each drawing once -- ``prune_model(m, c, seed=s)`` is
    reproducible and equals calling :func:`select_channels` layer by layer with
    ``torch.Generator().manual_seed(s)``.  With ``"loss_delta"`` each layer is scored after the
    shallower layers have been pruned (greedy, in depth order).

    All counts are checked before any layer changes.  Returns the newly pruned channels of each layer
    (sorted int64 CPU tensors, empty where nothing was pruned).
    """
    layers = ssm_layers(model)
    if not layers:
        raise ValueError(f"prune_model(model): {type(model).__name__} has no prunable layers "
                         f"({[c.__name__ for c in prunable_types()]})")
    if isinstance(counts, torch.Tensor):
        counts = counts.tolist()
    if isinstance(counts, (str, bytes)) or not isinstance(counts, Iterable):
        raise TypeError(f"prune_model(counts): expected a sequence of ints, got {type(counts).__name__}")
    counts = list(counts)
    if len(counts) != len(layers):
        raise ValueError(f"prune_model(counts): got {len(counts)} counts for {len(layers)} prunable layers")
    todo = []
    for i, (layer, count) in enumerate(zip(layers, counts)):
        count = check_int(count, f"counts[{i}]", func="prune_model")
        already = layer.d_model - layer.num_active
        if not 0 <= count <= layer.d_model:
            raise ValueError(f"prune_model(counts): counts[{i}] = {count} is outside 0..{layer.d_model} "
                             f"(layer {i} has {layer.d_model} channels)")
        if count < already:
            raise ValueError(
                f"prune_model(counts): counts[{i}] = {count} but layer {i} already has {already} pruned channels; "
                "counts are totals and pruned channels cannot be re-activated (start from a less pruned model)"
            )
        todo.append(count - already)
    if selector == "loss_delta" and any(layer.is_compact for layer, n in zip(layers, todo) if n):
        raise ValueError("prune_model: selector='loss_delta' needs uncompacted layers; prune before compact()")

    gen = make_generator(seed, generator) if selector == "random" else None
    pruned = []
    for layer, n_new in zip(layers, todo):
        chosen = select_channels(layer, n_new, selector, generator=gen, length=length, loss_fn=loss_fn)
        if n_new:
            active = layer.active_channels
            layer.set_active_channels(active[~torch.isin(active, chosen)])
        pruned.append(chosen)
    return pruned
