"""Layers and inputs with seeded random parameters, shared by tests and benchmarks."""

from __future__ import annotations

import copy
import math
import os
import time
from pathlib import Path

import torch

from s4op_kernels import S4DLayer
from s4op_kernels.data.base import TaskDataset, TaskInfo
from s4op_kernels.models import Config, build_model
from s4op_kernels.pruning import compact_model


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


def make_conv_args(B: int, H: int, L: int, n: int, fraction_pruned: float, dtype, seed: int = 0, device="cpu"):
    """sparse_fftconv arguments (u, k_f, D, active) for u of ``dtype`` (k_f and D in the dtypes the op takes for
    it: complex64 and float32 for half u) on ``device``, and the same values in float64 on the CPU (the
    reference's oracle inputs).  Kernels decay over about L / 8 taps; n >= 2L - 1 is the FFT length."""
    g = torch.Generator().manual_seed(seed)
    active = torch.tensor(some_channels(H, fraction_pruned, seed), dtype=torch.int64)
    A = len(active)
    K = torch.randn(A, L, generator=g, dtype=torch.float64) * torch.exp(-torch.arange(L) / max(4.0, L / 8))
    real = torch.float64 if dtype == torch.float64 else torch.float32
    k_f = (torch.fft.rfft(K, n=n) if A else torch.zeros(0, n // 2 + 1, dtype=torch.complex128)).to(real.to_complex())
    D = torch.randn(A, generator=g, dtype=torch.float64).to(real)
    u = make_input(B, H, L, seed, dtype)
    args = tuple(t.to(device) for t in (u, k_f, D, active))
    return args, (u.double(), k_f.to(torch.complex128), D.double(), active)


def dplr_args(H: int, N2: int, seed: int = 0, dtype=torch.float64, imag_max: float = None):
    """DPLR kernel tensors in the op's layout (log_dt (H,), A_real/A_imag (H, N2), B/P/C (H, N2, 2)): LegS-like
    values (Re Lambda about -1/2, Im Lambda up to a few hundred, dt log-uniform in [1e-3, 1e-1])."""
    g = torch.Generator().manual_seed(seed)
    imag_max = 10.0 * N2 if imag_max is None else imag_max
    log_dt = torch.rand(H, generator=g, dtype=torch.float64) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3)
    A_real = torch.log(0.5 + 0.05 * torch.rand(H, N2, generator=g, dtype=torch.float64))
    A_imag = torch.exp(torch.rand(H, N2, generator=g, dtype=torch.float64) * math.log(imag_max / 0.1)) * 0.1
    B, P, C = (torch.randn(H, N2, 2, generator=g, dtype=torch.float64) for _ in range(3))
    return tuple(t.to(dtype) for t in (log_dt, A_real, A_imag, B, P * 0.5, C))


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


# ---------------------------------------------------------------------------------------------- classifiers
# Small classifiers of every kind the exports support (tests/test_runtime.py: the .s4m file and the C++ runtime;
# tests/test_onnx_export.py: ONNX): continuous multi-label, continuous multi-class with BatchNorm, tokens with
# padding; prenorm and postnorm; and pruning rates from none to all.
ECG = TaskInfo("ecg-synthetic", 6, 40, multilabel=True, in_channels=2)
UCR = TaskInfo("ucr", 4, 33, in_channels=3)
TOKENS = TaskInfo("listops", 10, 37, vocab_size=20)
KINDS = {
    "ecg-layer-postnorm": (ECG, dict(norm="layer", prenorm=False)),
    "ucr-batch-postnorm": (UCR, dict(norm="batch", prenorm=False)),
    "tokens-layer-prenorm": (TOKENS, dict(norm="layer", prenorm=True)),
    "tokens-batch-prenorm": (TOKENS, dict(norm="batch", prenorm=True)),
    "ecg-none": (ECG, dict(norm="none", prenorm=True)),
}
RATES = {"rate0": 0.0, "rate50": 0.5, "rate90": 0.9, "all-but-one": "one", "none-kept": "none"}


def make_model(info, layer="s4d", seed=0, rate=0.0, compact=False, **kw):
    """A small classifier (3 x 10, N = 8) for ``info``, pruned at ``rate`` (a fraction, ``"one"``: one channel
    kept per layer, ``"none"``: none kept), in eval mode, with non-trivial BatchNorm statistics."""
    cfg = Config(name="t", n_layers=3, d_model=10, d_state=8, layer=layer, **kw)
    model = build_model(cfg, info, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():  # BatchNorm with non-trivial statistics, as after training
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g))
    H = cfg.d_model
    for i, ssm in enumerate(model.ssm_layers()):
        if rate == "one":
            keep = [i % H]
        elif rate == "none":
            keep = []
        else:
            keep = sorted(torch.randperm(H, generator=g)[: H - round(rate * H)].tolist())
        ssm.set_active_channels(keep)
    model.eval()
    return compact_model(model).eval() if compact else model


def inputs(info, B, L, seed=0, pad=True):
    """Seeded inputs for ``info``: (B, L, C) floats, or (B, L) token ids with the first example's second half
    padding."""
    g = torch.Generator().manual_seed(seed)
    if info.vocab_size is not None:
        x = torch.randint(1, info.vocab_size, (B, L), generator=g)
        if pad and L > 2:
            x[0, L // 2:] = 0  # padding at the end of the first example
        return x
    return torch.randn(B, L, info.in_channels, generator=g)


def expected64(model, x, lengths=None):
    """The logits of a float64 copy of ``model`` (the reference the exports are compared with)."""
    m64 = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        return m64(x if not x.is_floating_point() else x.double(), lengths)


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
