"""The output mixing of the layers' inference fast path, ``z = W y + b`` then GLU over channels, by the torch
route that is fastest on this machine.

``W (2H, H)`` and ``b (2H,)`` are the reference's ``Conv1d(H, 2H, 1)`` (S4D) or ``Linear(H, 2H)`` (S4),
``y (B, H, L)``; the result is ``glu(z, dim=channels) (B, H, L)``, contiguous.  Every method below computes
exactly that map by a different library path; the results differ only by rounding:

- ``gemm``: ``matmul([W | b], [y; 1])``, one MKL GEMM per batch element that adds the bias itself (the
  convolution kernel writes the ones channel for free: ``_ssm(..., append_ones=True)``).  The default.
- ``conv1d``: ``F.conv1d(y, W[:, :, None], b)``: oneDNN's 1x1 convolution (with two or more threads; torch
  sends a small-batch 1x1 convolution at one thread to its own GEMM path).
- ``linear``: ``F.linear`` on the transposed layout, ``z^T = y^T W^T + b``, (B, L, 2H), GLU over its last dim,
  then one copy back to (B, H, L).
- ``baddbmm``: ``baddbmm(b, W, y)``, MKL's GEMM after the bias is broadcast into the output.
- ``fused``: the core's ``glu_mix`` (csrc/src/glu_mix.cpp, the torch-free runtime's mixing): a GEMM of our own
  with the bias and the GLU in its epilogue, one pass that writes only the (B, H, L) result instead of the
  (B, 2H, L) product and a GLU pass over it.  float32 CPU tensors only, with the compiled extension, and no autograd (the core has none): anywhere
  else (float64, another device, a forced method where autograd needs the gradient) ``fused`` runs ``gemm``.

Which is fastest depends on the CPU and its BLAS: on an AMD EPYC Zen 5 (2 threads) MKL's GEMM ran at about
150 GFLOP/s at B=1 H=256 L=4096 and oneDNN's 1x1 convolution was much faster; on an Intel Xeon the order was
reversed (issue 13).  So the method is chosen once per (dtype, thread count, H, B == 1, B*L rounded up to a
power of two) on the CPU, by timing the methods on the first call's own tensors (interleaved rounds, 3-9
calls each, compared by their lower quartile; the default stays unless another is 5 % faster and beat it in
2/3 of the rounds), cached for the process, and reported by ``python -m s4op_kernels.info``.  The
environment variable ``S4OP_MIXING`` (``auto``, the default, or one of :data:`METHODS`) forces one.

Never timed: while tracing or compiling (torch.jit.trace, torch.compile, torch.export), where autograd needs
the mixing weights' gradient, off the CPU, and for problems under 65536 multiply-adds (an empty batch
included: see ``_MIN_TIMED_MACS``).  There ``gemm`` runs unless ``S4OP_MIXING`` names a method (except
while tracing or compiling, where a graph must not depend on the environment: always ``gemm``).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from s4op_kernels import _ext

ENV_VAR = "S4OP_MIXING"
METHODS = ("gemm", "conv1d", "linear", "baddbmm", "fused")
DEFAULT = "gemm"
# The methods that take y with the ones channel appended: (B, H + 1, L).
NEEDS_ONES = {"gemm": True, "conv1d": False, "linear": False, "baddbmm": False, "fused": False}

# The timing run: one untimed call of each method (oneDNN builds its primitive on the first call), then
# rounds in rotating order until at least _MIN_ROUNDS are done and _BUDGET_S is spent, at most _MAX_ROUNDS.
# Each method's time is the lower quartile of its calls, not the median: on a shared machine the delays are
# additive and frequent (with 2 threads on 2 busy cores, most calls of a 2-thread op wait for a descheduled
# thread): at load 8 on 2 cores, in 5 fresh timings of B=1 H=128 L=4096, the median picked 3 different
# methods, the lower quartile the same one 4 times (issue 13).
_MIN_ROUNDS = 3
_MAX_ROUNDS = 9
_BUDGET_S = 0.02
# Problems below this many multiply-adds (2H (H + 1) B L) run the default untimed.  They take a few
# microseconds by any route, so a timing would measure dispatch noise; and at such sizes (H of 1 or 2) the
# folded GEMM is also the most accurate route: it adds the bias inside its FMA chain, where the others round
# W y first, which shows when b cancels W y (H = 1: a normwise error of 2e-4 in float32 against 5e-7).
_MIN_TIMED_MACS = 1 << 16
# The default is kept unless another method's time is this much shorter (and it won 2/3 of the rounds
# against the default): timings on a shared machine are noisy, and a flip that gains a few percent is not
# worth a choice that may differ between runs.
_KEEP_DEFAULT_WITHIN = 0.05


class MixWeights:
    """The mixing weights in the forms the methods read: ``folded`` ``[W | b]`` (2H, H + 1) and ``separate()``
    ``(W (2H, H) contiguous, b (2H,))``.

    The layer caches one per weight state (``_folded_cache``): ``folded`` is then the copy its TensorSnapshot
    checks, and the separate form is derived from it on first use, so one exact check covers both.  Built
    from the parameters themselves (``from_params``) where autograd needs their gradient: nothing cached.
    """

    __slots__ = ("_folded", "_separate", "_cached", "_packed")

    def __init__(self, folded: Optional[torch.Tensor] = None,
                 separate: Optional[tuple[torch.Tensor, torch.Tensor]] = None, cached: bool = True):
        self._folded = folded
        self._separate = separate
        self._cached = cached  # True: built under no_grad from snapshot copies; derive forms as normal tensors
        self._packed: Optional[torch.Tensor] = None

    @classmethod
    def from_params(cls, W: torch.Tensor, b: torch.Tensor) -> "MixWeights":
        """Differentiable views of the module's weight (2H, H[, 1]) and bias (2H,); nothing copied up front."""
        return cls(separate=(W.reshape(W.shape[0], -1), b), cached=False)

    @property
    def folded(self) -> torch.Tensor:
        if self._folded is None:
            W, b = self._separate
            self._folded = torch.cat([W, b.unsqueeze(1)], dim=1)
        return self._folded

    def separate(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._separate is None:
            Wb = self._folded
            H = Wb.shape[1] - 1
            # Outlives the call: normal tensors even under inference_mode.  Two threads racing here build
            # the same values from the same copy.
            with torch.inference_mode(False), torch.no_grad():
                self._separate = (Wb[:, :H].contiguous(), Wb[:, H].contiguous())
        return self._separate

    def packed(self) -> torch.Tensor:
        """``W`` and ``b`` (float32) in the blocked layout of the core's ``glu_mix`` (``glu_mix_pack``)."""
        if self._packed is None:
            W, b = self.separate()
            W, b = W.detach(), b.detach()
            C = _ext.C()
            with torch.inference_mode(False), torch.no_grad():
                out = torch.empty(C.glu_mix_packed_size(W.shape[0] // 2, W.shape[1]), dtype=torch.float32)
                C.glu_mix_pack(W.numpy(), b.numpy(), out.numpy())
            self._packed = out
        return self._packed


# ---------------------------------------------------------------------------- the methods
def _gemm(w: MixWeights, y1: torch.Tensor) -> torch.Tensor:
    """y1: (B, H + 1, L) whose last channel is ones."""
    return F.glu(torch.matmul(w.folded, y1), dim=-2)


def _conv1d(w: MixWeights, y: torch.Tensor) -> torch.Tensor:
    W, b = w.separate()
    return F.glu(F.conv1d(y, W.unsqueeze(-1), b), dim=-2)


def _linear(w: MixWeights, y: torch.Tensor) -> torch.Tensor:
    W, b = w.separate()
    B = y.shape[0]
    if B == 1:
        z = F.linear(y[0].mT, W, b).unsqueeze(0)  # addmm on the transposed view: no copy of y
    else:
        # F.linear on a (B, L, H) view that is not contiguous would copy y first; the batched GEMM takes the
        # transposed operands as they are.
        z = torch.baddbmm(b, y.mT, W.mT.expand(B, -1, -1))  # (B, L, 2H)
    # GLU on the contiguous (B, L, 2H), then one transposing copy: writing the GLU straight into the transposed
    # result (glu(..., out=result.mT)) took twice as long at B=1 H=128 L=4096 (TensorIterator's strided writes).
    return F.glu(z, dim=-1).mT.contiguous()


def _baddbmm(w: MixWeights, y: torch.Tensor) -> torch.Tensor:
    W, b = w.separate()
    return F.glu(torch.baddbmm(b.view(1, -1, 1), W.expand(y.shape[0], -1, -1), y), dim=-2)


def _fused(w: MixWeights, y: torch.Tensor) -> torch.Tensor:
    if (y.dtype != torch.float32 or not y.is_cpu or not _ext.extension_available()
            or (torch.is_grad_enabled() and (y.requires_grad or not w._cached))):
        return _gemm(w, torch.cat([y, y.new_ones(y.shape[0], 1, y.shape[2])], dim=1))
    B, _, L = y.shape
    H = w.folded.shape[0] // 2
    out = y.new_empty(B, H, L)
    _ext.C().glu_mix(w.packed().numpy(), y.contiguous().numpy(), H, out.numpy(), False, torch.get_num_threads())
    return out


_FUNCS: dict[str, Callable[[MixWeights, torch.Tensor], torch.Tensor]] = {
    "gemm": _gemm, "conv1d": _conv1d, "linear": _linear, "baddbmm": _baddbmm, "fused": _fused}


def candidates(dtype: torch.dtype) -> tuple[str, ...]:
    """The methods ``auto`` times for a forward in ``dtype`` (``fused`` only in float32 with the extension)."""
    if dtype == torch.float32 and _ext.extension_available():
        return METHODS
    return tuple(m for m in METHODS if m != "fused")


def mix(method: str, weights: MixWeights, y: torch.Tensor) -> torch.Tensor:
    """The output mixing + GLU by ``method``: y (B, H + 1, L) with a last channel of ones for the methods in
    :data:`NEEDS_ONES`, else (B, H, L); returns (B, H, L) contiguous."""
    try:
        fn = _FUNCS[method]
    except KeyError:
        raise ValueError(
            f"mix(method): unknown mixing method {method!r}; expected one of {', '.join(METHODS)}") from None
    return fn(weights, y)


# ---------------------------------------------------------------------------- the choice
_lock = threading.Lock()
_choices: dict[tuple, str] = {}
_timings: dict[tuple, dict[str, float]] = {}  # key -> method -> lower-quartile seconds
_env_parsed: tuple[object, Optional[str]] = (None, None)  # (raw value, parsed method or None = auto)


def _environ_lookup() -> Callable[[], object]:
    """A reader of ``S4OP_MIXING``'s raw value: os.environ's own dict where CPython has one (this runs on
    every inference forward, and ``os.environ.get`` of an unset name costs about a microsecond: it raises
    and catches a KeyError), else ``os.environ.get``."""
    data, encode = getattr(os.environ, "_data", None), getattr(os.environ, "encodekey", None)
    if isinstance(data, dict) and callable(encode):
        key = encode(ENV_VAR)
        return lambda: data.get(key)
    return lambda: os.environ.get(ENV_VAR)


_raw_env = _environ_lookup()


def override() -> Optional[str]:
    """The method ``S4OP_MIXING`` forces, or None for ``auto`` (unset or empty).  A bad value raises
    ValueError naming the variable and the choices."""
    global _env_parsed
    raw = _raw_env()
    if raw == _env_parsed[0]:
        return _env_parsed[1]
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    value = (text or "").strip().lower()
    if value in ("", "auto"):
        parsed = None
    elif value in METHODS:
        parsed = value
    else:
        raise ValueError(
            f"environment variable {ENV_VAR}={text!r} is not a mixing method; expected one of "
            f"auto, {', '.join(METHODS)} (or leave it unset for auto)")
    _env_parsed = (raw, parsed)
    return parsed


def shape_key(B: int, H: int, L: int, dtype: torch.dtype) -> tuple:
    """The class of CPU problems one choice serves: (dtype, threads, H, B == 1, ceil(log2(B*L)))."""
    return (dtype, torch.get_num_threads(), H, B == 1, (B * L - 1).bit_length())


def lookup(B: int, H: int, L: int, dtype: torch.dtype, on_cpu: bool,
           needs_grad: bool) -> tuple[Optional[str], Optional[tuple]]:
    """(method, None) for a forward of y (B, H, L) (``on_cpu``: ``y.is_cpu``), or (None, key) when ``auto``
    has not timed this key yet: then run :func:`measure` with that key."""
    if torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing():
        return DEFAULT, None
    forced = override()
    if forced is not None:
        return forced, None
    if needs_grad or 2 * H * (H + 1) * B * L < _MIN_TIMED_MACS or not on_cpu:  # B = 0 included
        return DEFAULT, None
    key = (dtype, torch.get_num_threads(), H, B == 1, (B * L - 1).bit_length())  # shape_key, inlined
    method = _choices.get(key)
    return (method, None) if method is not None else (None, key)


def measure(key: tuple, weights: MixWeights, y1: torch.Tensor) -> torch.Tensor:
    """Time every method on y1 (B, H + 1, L, last channel ones), record the fastest for ``key``, and return
    the mixing of y1 by it (B, H, L)."""
    with _lock:  # one timing at a time: two at once would time each other
        method = _choices.get(key)
        if method is not None:
            return mix(method, weights, y1 if NEEDS_ONES[method] else y1[:, :-1].contiguous())
        y = y1[:, :-1].contiguous()
        methods = candidates(y1.dtype)
        inputs = {m: (y1 if NEEDS_ONES[m] else y) for m in methods}
        outputs = {m: _FUNCS[m](weights, inputs[m]) for m in methods}  # untimed: primitives, caches, pages
        times: dict[str, list[float]] = {m: [] for m in methods}
        start = time.perf_counter()
        for r in range(_MAX_ROUNDS):
            for i in range(len(methods)):
                m = methods[(i + r) % len(methods)]
                t0 = time.perf_counter()
                outputs[m] = _FUNCS[m](weights, inputs[m])
                times[m].append(time.perf_counter() - t0)
            if r + 1 >= _MIN_ROUNDS and time.perf_counter() - start > _BUDGET_S:
                break
        quartiles = {m: _lower_quartile(t) for m, t in times.items()}
        best = min(methods, key=quartiles.__getitem__)
        # Paired by round (the calls of one round ran back to back): the winner must also have beaten the
        # default in at least two thirds of the rounds, else the difference is the machine's noise.
        wins = sum(a < d for a, d in zip(times[best], times[DEFAULT]))
        if quartiles[DEFAULT] <= quartiles[best] * (1.0 + _KEEP_DEFAULT_WITHIN) or 3 * wins < 2 * len(times[best]):
            best = DEFAULT
        _timings[key] = quartiles
        _choices[key] = best
        return outputs[best]


def _lower_quartile(values: list[float]) -> float:
    """The ((n - 1) // 4)-th smallest of n values: the least of 3-6 calls, the second least of 7-9."""
    return sorted(values)[(len(values) - 1) // 4]


def choices() -> list[dict]:
    """What ``auto`` chose in this process so far, one dict per key: device, dtype, threads, H, batch
    (``"1"`` or ``">1"``), B*L range, the method and each method's time in microseconds (the lower quartile
    of its timed calls)."""
    with _lock:
        return [_describe(k, m, _timings.get(k, {})) for k, m in _choices.items()]


def _describe(key: tuple, method: str, times: dict[str, float]) -> dict:
    dtype, threads, H, b1, bits = key
    return {"device": "cpu", "dtype": str(dtype).replace("torch.", ""), "threads": threads, "H": H,
            "batch": "1" if b1 else ">1", "B*L": f"({2 ** (bits - 1) if bits else 0}, {2 ** bits}]",
            "method": method, "time_us": {m: round(t * 1e6, 1) for m, t in times.items()}}


def reset() -> None:
    """Forget every choice (the next forward of each key times the methods again)."""
    with _lock:
        _choices.clear()
        _timings.clear()


def measure_shape(B: int, H: int, L: int, dtype: torch.dtype = torch.float32, seed: int = 0) -> dict:
    """Run ``auto``'s timing for a (B, H, L) problem on seeded random weights and data (what a layer's first
    forward of that shape would do, unless already done in this process); returns its entry of
    :func:`choices`."""
    for name, v in (("B", B), ("H", H), ("L", L)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"measure_shape({name}): expected an int, got {v!r} ({type(v).__name__})")
        if v < 1:
            raise ValueError(f"measure_shape({name}): expected an int >= 1, got {v}")
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"measure_shape(dtype): expected torch.float32 or torch.float64, got {dtype}")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        Wb = torch.randn(2 * H, H + 1, generator=g, dtype=dtype) / (H ** 0.5)
        y1 = torch.randn(B, H + 1, L, generator=g, dtype=dtype)
        y1[:, H] = 1.0
        key = shape_key(B, H, L, dtype)
        measure(key, MixWeights(folded=Wb), y1)
    with _lock:
        return _describe(key, _choices[key], _timings.get(key, {}))
