"""Quick start: drop S4DLayer into a model, prune half of its operators, compact, save, reload, compare.

Run: python examples/quickstart.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

import s4op_kernels
from s4op_kernels import S4DLayer


class Classifier(nn.Module):
    """Linear encoder -> residual S4D blocks with LayerNorm -> mean over time -> linear decoder."""

    def __init__(self, d_input=1, H=128, n_layers=4, n_classes=6):
        super().__init__()
        self.encoder = nn.Linear(d_input, H)
        self.layers = nn.ModuleList(S4DLayer(H, d_state=64) for _ in range(n_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(H) for _ in range(n_layers))
        self.decoder = nn.Linear(H, n_classes)

    def forward(self, x):  # x: (B, L, d_input)
        x = self.encoder(x).transpose(-1, -2)  # (B, H, L)
        for layer, norm in zip(self.layers, self.norms):
            z, _ = layer(x)
            x = norm((z + x).transpose(-1, -2)).transpose(-1, -2)
        return self.decoder(x.mean(dim=-1))


def median_ms(model, x, repeats=50):
    times = []
    with torch.inference_mode():
        model(x)  # warm-up (fills the kernel-spectrum cache)
        for _ in range(repeats):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    return 1e3 * sorted(times)[len(times) // 2]


def main():
    torch.manual_seed(0)
    model = Classifier().eval()
    x = torch.randn(1, 2048, 1)
    print(f"backends: {s4op_kernels.available_backends()}")
    dense_ms = median_ms(model, x)

    # Prune half of every layer's SSM operators (seeded random choice, as in the paper).
    g = torch.Generator().manual_seed(42)
    for layer in model.layers:
        keep = torch.randperm(layer.d_model, generator=g)[: layer.d_model // 2]
        layer.set_active_channels(keep)
    pruned_ms = median_ms(model, x)
    with torch.inference_mode():
        y_pruned = model(x)

    # Compact: keep only the active rows of the SSM tensors; the state_dict carries the active sets.
    for i, layer in enumerate(model.layers):
        model.layers[i] = layer.compact()
    n_params = sum(p.numel() for p in model.parameters())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pruned.safetensors"
        save_file(model.state_dict(), str(path))
        reloaded = Classifier().eval()
        reloaded.load_state_dict(load_file(str(path)))  # layers resize themselves from the saved sets
    with torch.inference_mode():
        diff = (reloaded(x) - y_pruned).abs().max().item()

    print(f"dense model:  {dense_ms:7.2f} ms per forward (B=1, L=2048, 4 x S4D(H=128, N=64))")
    print(f"50% pruned:   {pruned_ms:7.2f} ms per forward")
    print(f"compacted:    {n_params} parameters; reloaded from safetensors, max |difference| = {diff:.2e}")
    assert diff == 0.0


if __name__ == "__main__":
    main()
