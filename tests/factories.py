"""Layers and inputs with seeded random parameters, shared by tests and benchmarks."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch

from s4op_kernels import S4DLayer
from s4op_kernels.data.base import TaskDataset, TaskInfo
from s4op_kernels.models import Config


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


# ---------------------------------------------------------------------- a toy task for the pruning search
TOY_INFO = TaskInfo(task="toy", num_classes=2, seq_len=32, in_channels=1)
TOY_CONFIG = Config(name="toy", n_layers=3, d_model=8, d_state=4, norm="layer", epochs=1, batch_size=8)


def toy_dataset(n: int, seed: int, split: str, poison: bool = False) -> TaskDataset:
    """``n`` seeded sequences of TOY_INFO whose class is the sign of their mean (``poison``: labels that have
    nothing to do with the inputs, and absurd inputs)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, TOY_INFO.seq_len, 1, generator=g)
    y = (x.mean(dim=(1, 2)) > 0).long()
    if poison:
        y = torch.randint(0, 2, (n,), generator=g)
        x = x * 1e6
    return TaskDataset(x, y, TOY_INFO, split=split)


def toy_pruner(out, executor, fine_tune=None, log=None, rates=(0.3, 0.7), seeds=(7, 42)):
    """The S4oP search on the toy task with the pipeline's own (picklable) callbacks: one epoch of real
    fine-tuning per candidate (``fine_tune`` replaces it), accuracy; latency probed once."""
    from s4op_kernels.app.pipeline import _callbacks
    from s4op_kernels.models import build_model
    from s4op_kernels.pruning import IncrementalPruner

    ft, ev, _ = _callbacks(TOY_CONFIG, "accuracy", False, 1, 1e-3)
    return IncrementalPruner(build_model(TOY_CONFIG, TOY_INFO, seed=0), toy_dataset(64, 1, "train"),
                             toy_dataset(48, 2, "val"), toy_dataset(48, 3, "test"), evaluate=ev,
                             fine_tune=ft if fine_tune is None else fine_tune, rates=rates, seeds=seeds,
                             latency_warmup=1, latency_repeats=1, latency_batch_size=2, out_dir=out, progress=False,
                             log=log, executor=executor)


def toy_fine_tune():
    """The fine-tuning :func:`toy_pruner` uses (to wrap it)."""
    from s4op_kernels.app.pipeline import _callbacks

    return _callbacks(TOY_CONFIG, "accuracy", False, 1, 1e-3)[0]


def _claim(folder, name: str) -> bool:
    """Create ``folder/name`` exclusively: True for the one caller, in any process, that created it."""
    try:
        os.close(os.open(Path(folder) / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


class StallingFineTune:
    """A search's ``fine_tune`` whose first ``after`` calls (in all processes together, counted with marker
    files in ``folder``) run ``inner`` and whose later calls never return: a driver can be killed while its
    next rate's tasks are certainly in flight."""

    def __init__(self, inner, folder, after: int):
        self.inner, self.folder, self.after = inner, str(folder), after

    def __call__(self, model, train_ds, val_ds, *, seed):
        if not any(_claim(self.folder, f"call-{k}") for k in range(self.after)):
            while True:
                time.sleep(0.1)
        return self.inner(model, train_ds, val_ds, seed=seed)


class FlakyFineTune:
    """A search's ``fine_tune`` that raises on its first ``failures`` calls for ``seed`` (``crash``: ends its
    process instead, as a worker lost to the OOM killer would), then runs ``inner``.

    The failures are counted with marker files in ``folder`` (created exclusively), so they are counted once
    across every process that runs a candidate: the executors' workers get a pickled copy of this object,
    not a shared one.  A module-level class, so the process pool can pickle it."""

    def __init__(self, inner, folder, seed: int, failures: int = 1, crash: bool = False):
        self.inner, self.folder, self.seed, self.failures, self.crash = inner, str(folder), seed, failures, crash

    def __call__(self, model, train_ds, val_ds, *, seed):
        if seed == self.seed:
            for k in range(self.failures):
                if _claim(self.folder, f"failure-{seed}-{k}"):
                    if self.crash:
                        os._exit(3)
                    raise RuntimeError(f"injected failure {k + 1} of {self.failures} (seed {seed})")
        return self.inner(model, train_ds, val_ds, seed=seed)

    def failed(self) -> int:
        """How many failures were injected so far."""
        return len(list(Path(self.folder).glob(f"failure-{self.seed}-*")))
