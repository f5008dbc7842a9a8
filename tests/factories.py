"""Layers and inputs with seeded random parameters, shared by tests and benchmarks."""

from __future__ import annotations

import math

import torch

from s4op_kernels import S4DLayer


def make_s4d(H: int, N: int, seed: int, dtype=torch.float32, **kwargs) -> S4DLayer:
    """An S4DLayer with every SSM tensor randomized (not the structured init), so tests exercise
    arbitrary parameters: dt in [1e-3, 1e-1], Re(A) in [-1.4, -0.2], A_imag near pi*n."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    layer = S4DLayer(H, N, **kwargs)
    with torch.no_grad():
        k = layer.kernel
        k.C.copy_(torch.randn(k.C.shape, generator=g) * 0.5)
        k.log_dt.copy_(torch.rand(H, generator=g) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        k.log_A_real.copy_(math.log(0.5) + 0.4 * torch.randn(k.log_A_real.shape, generator=g))
        k.A_imag.copy_(k.A_imag + 0.3 * torch.randn(k.A_imag.shape, generator=g))
        layer.D.copy_(torch.randn(H, generator=g))
    return layer.to(dtype).eval()


def s4_reference_state_dict(H: int, N: int, seed: int = 0, l_kernel: int = 0) -> dict:
    """A state_dict in the reference S4Block(H, d_state=N) layout, built here (not by the package): realistic
    random values; with l_kernel > 0, C is read as C-tilde for that length."""
    g = torch.Generator().manual_seed(seed)
    N2 = N // 2
    cplx = lambda *s: torch.view_as_real(torch.randn(*s, dtype=torch.cfloat, generator=g)).clone()  # noqa: E731
    dt = torch.exp(torch.rand(H, 1, generator=g) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
    return {
        "layer.D": torch.randn(1, H, generator=g),
        "layer.kernel.inv_dt": torch.log(dt),
        "layer.kernel.C": cplx(1, H, N2),
        "layer.kernel.B": cplx(1, H, N2),
        "layer.kernel.A_real": torch.log(0.5 + 0.1 * torch.rand(H, N2, generator=g)),
        "layer.kernel.A_imag": torch.rand(H, N2, generator=g) * 3 * N2,
        "layer.kernel.P": cplx(1, H, N2) * 0.5,
        "layer.kernel.l_kernel": torch.tensor(l_kernel),
        "output_linear.0.weight": torch.randn(2 * H, H, generator=g) / math.sqrt(H),
        "output_linear.0.bias": torch.randn(2 * H, generator=g) * 0.1,
    }


def make_input(B: int, H: int, L: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed + 1_000_003)
    return torch.randn(B, H, L, generator=g, dtype=torch.float64).to(dtype)


def some_channels(H: int, fraction_pruned: float, seed: int) -> list[int]:
    """A seeded random set of channels to keep, pruning round(fraction * H) of them."""
    g = torch.Generator().manual_seed(seed + 7)
    n_keep = H - int(round(fraction_pruned * H))
    return sorted(torch.randperm(H, generator=g)[:n_keep].tolist())


class ToyPrunable(torch.nn.Module):
    """The pruning protocol without any SSM: what a third-party layer must offer to be registered with
    ``s4op_kernels.pruning.register_prunable`` (``d_model``, ``active_channels``, ``num_active``,
    ``is_compact``, ``set_active_channels``).  Subclasses add their per-channel tensors."""

    is_compact = False

    def __init__(self, d_model: int):
        super().__init__()
        self.d_model = d_model
        self._active = torch.arange(d_model)

    active_channels = property(lambda self: self._active.clone())
    num_active = property(lambda self: int(self._active.numel()))

    def set_active_channels(self, idx):
        self._active = torch.as_tensor(idx, dtype=torch.int64).sort().values
        return self


def pathfinder_metadata_lines(folder) -> list[list[str]]:
    """The fields of every line of a Pathfinder difficulty folder's metadata files, in batch order."""
    files = sorted((folder / "metadata").glob("*.npy"), key=lambda p: int(p.stem))
    return [line.split() for f in files for line in f.read_text().splitlines()]
