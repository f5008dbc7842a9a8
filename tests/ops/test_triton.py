"""The ``"triton"`` backend (ops/_triton_kernels.py) against the float64 reference.

Without a CUDA device the kernels run in Triton's interpreter on CPU tensors: this module turns
``TRITON_INTERPRET=1`` on for its own tests only (a module fixture; the backend hands its kernels to
``triton.jit`` per mode when they are first launched, so the order in which modules import Triton does not
matter, and the other test modules never see the variable).  On a CUDA machine the same tests run compiled,
on CUDA tensors (benchmarks/gpu/run_gpu_check.py).  Guards for what the interpreter does not check: masks
(sentinel buffers around every input and the output), tl.dot tile sizes, grid limits, int64 offsets.
"""

from __future__ import annotations

import bisect
import importlib.util
import math
import os

import pytest
import torch

if importlib.util.find_spec("triton") is None:
    pytest.skip("Triton is not installed (it comes with the [test] and [gpu] extras on Linux)", allow_module_level=True)

import s4op_kernels
from s4op_kernels.ops import dispatch, dplr_spectrum, s4d_kernel, sparse_fftconv, sparse_fftconv_ref
from factories import dplr_args, make_conv_args, make_input, make_s4d, some_channels
from formulas import dplr_op_kernel64, gelu64, s4_layer64, s4d_kernel64, s4d_layer64
from shapes import LAYER_SHAPES, PRUNE_FRACTIONS
from tolerances import assert_close

ON_GPU = torch.cuda.is_available() and not dispatch.triton_interpreting()
DEVICE = torch.device("cuda" if ON_GPU else "cpu")
INTERPRETER_BF16 = ("bfloat16 is broken in Triton's interpreter (numpy has no bfloat16: its tl.dot is wrong and its "
                    "stores truncate); checked on a GPU")
HALF = (torch.float16, torch.bfloat16)


@pytest.fixture(scope="module", autouse=True)
def triton_mode():
    """Triton's interpreter for this module's tests when there is no GPU; nothing changes on a GPU."""
    with pytest.MonkeyPatch.context() as mp:
        if not ON_GPU:
            mp.setenv("TRITON_INTERPRET", "1")
        yield


@pytest.fixture
def tk():
    from s4op_kernels.ops import _triton_kernels

    return _triton_kernels


def _skip_bf16_in_interpreter(dtype):
    if dtype == torch.bfloat16 and not ON_GPU:
        pytest.skip(INTERPRETER_BF16)


def conv_case(B, H, L, n, pruned, dtype, seed=0):
    return make_conv_args(B, H, L, n, pruned, dtype, seed, DEVICE)


# (L, n_fft): n from 16 to 8192 (the fused path's cut), powers of two and 2^a 3^b 5^c, L not a multiple of a tile.
CONV_SIZES = [(8, 16), (13, 27), (100, 200), (300, 640), (500, 1024), (1000, 2000), (2048, 4096), (4096, 8192)]
DTYPES = [pytest.param(torch.float32, id="fp32"), pytest.param(torch.float16, id="fp16"),
          pytest.param(torch.bfloat16, id="bf16")]


@pytest.mark.parametrize("activation, ones", [("none", False), ("gelu", True)], ids=["none", "gelu-ones"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pruned", PRUNE_FRACTIONS)
@pytest.mark.parametrize("L, n", CONV_SIZES, ids=[f"L{L}-n{n}" for L, n in CONV_SIZES])
def test_fused_conv_matches_the_float64_reference(L, n, pruned, dtype, activation, ones, tk):
    _skip_bf16_in_interpreter(dtype)
    assert tk.fft_plan(n) is not None
    B, H = (2, 5) if n <= 2048 else (1, 3)  # odd H; fewer programs where the interpreter's tiles are large
    args, args64 = conv_case(B, H, L, n, pruned, dtype, seed=L)
    with torch.no_grad():
        y = tk.sparse_fftconv(*args, n, activation, ones, path="fused")
    assert y.shape == (B, H + ones, L) and y.dtype == dtype and y.device == DEVICE
    expected = sparse_fftconv_ref(*args64, n, activation, ones)
    assert_close(y, expected, dtype, what=f"fused n={n}")
    if ones:
        assert torch.all(y[:, H] == 1)


@pytest.mark.parametrize("dtype", DTYPES + [pytest.param(torch.float64, id="fp64")])
@pytest.mark.parametrize("pruned", PRUNE_FRACTIONS)
@pytest.mark.parametrize("L, n", [(8, 16), (1000, 2000), (4097, 8194), (5000, 10000)],
                         ids=["L8-n16", "L1000-n2000", "L4097-n8194", "L5000-n10000"])
def test_fallback_conv_matches_the_float64_reference(L, n, pruned, dtype, tk):
    # Past the cut (n > 8192, or no factorization into tiles of at most 8192) and for float64: torch.fft on the
    # gathered active rows plus the Triton epilogue.  Forced on small n too.
    _skip_bf16_in_interpreter(dtype)
    B, H = 2, 3
    args, args64 = conv_case(B, H, L, n, pruned, dtype, seed=L + 1)
    if n > 8192:
        assert tk.fft_plan(n) is None
    with torch.no_grad():
        y = tk.sparse_fftconv(*args, n, "gelu", True, path="fallback")
    assert_close(y, sparse_fftconv_ref(*args64, n, "gelu", True), dtype, what=f"fallback n={n}")


def test_the_backend_picks_the_fused_path_up_to_the_cut_and_the_fallback_past_it(tk, monkeypatch):
    calls = []
    real = tk._kernel
    monkeypatch.setattr(tk, "_kernel", lambda name: calls.append(name) or real(name))
    cases = [((2048, 4096), torch.float32, "fused"), ((4096, 8192), torch.float16, "fused"),
             ((4096, 8192), torch.float32, "epilogue"),  # float32 past its default cut (tf32x3: see FUSED_DEFAULT_MAX_TILE)
             ((4097, 8194), torch.float16, "epilogue"), ((100, 200), torch.float64, "epilogue")]
    for (L, n), dtype, want in cases:
        args, _ = conv_case(1, 2, L, n, 0.5, dtype)
        calls.clear()
        with torch.no_grad(), s4op_kernels.use_backend("triton"):
            sparse_fftconv(*args, n)
        assert calls == [want], (L, n, dtype)


def test_pruned_rows_are_copied_exactly_and_gelu_is_exact(tk):
    args, _ = conv_case(2, 7, 50, 99, 0.6, torch.float32, seed=3)
    u, active = args[0], args[3]
    pruned = [h for h in range(7) if h not in set(active.tolist())]
    for path in ("fused", "fallback"):
        y = tk.sparse_fftconv(*args, 99, path=path)
        assert torch.equal(y[:, pruned], u[:, pruned])
        g = tk.sparse_fftconv(*args, 99, "gelu", path=path)
        assert_close(g[:, pruned], gelu64(u[:, pruned].double().numpy()), torch.float32, what="gelu(u)")


def _in_sentinels(t: torch.Tensor, pad: int = 64, fill: float = float("nan")):
    """(a copy of t placed inside a flat buffer of ``fill``, the buffer): any read past t's ends meets
    ``fill`` and any write past them changes it."""
    flat = torch.full((t.numel() + 2 * pad,), fill, dtype=t.dtype, device=t.device)
    if t.is_complex():
        flat = torch.full((t.numel() + 2 * pad,), complex(fill, fill), dtype=t.dtype, device=t.device)
    view = flat[pad:pad + t.numel()].view(t.shape)
    view.copy_(t)
    return view, flat


@pytest.mark.parametrize("path", ["fused", "fallback"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_masks_no_read_or_write_outside_the_tensors(path, dtype, tk):
    # Sizes that are multiples of no block: L = 37, n = 75 (tile 16 x 16 padded from 3 x 25 or 5 x 15), H = 5.
    _skip_bf16_in_interpreter(dtype)
    B, H, L, n = 3, 5, 37, 75
    args, args64 = conv_case(B, H, L, n, 0.4, dtype, seed=11)
    u, k_f, D, active = (_in_sentinels(t)[0] if t.is_floating_point() or t.is_complex() else t for t in args)
    out, buf = _in_sentinels(torch.empty(B, H + 1, L, dtype=dtype, device=DEVICE), fill=7.0)
    y = tk.sparse_fftconv(u, k_f, D, active, n, "gelu", True, path=path, out=out)
    assert y.data_ptr() == out.data_ptr()
    assert torch.isfinite(y).all()
    assert_close(y, sparse_fftconv_ref(*args64, n, "gelu", True), dtype, what=f"{path} in sentinels")
    outside = torch.cat([buf[:64], buf[-64:]])
    assert torch.all(outside == 7.0), "a store outside the output"


def test_tile_plan_every_n_up_to_the_cut(tk):
    # tl.dot needs tiles >= 16 on a GPU; the interpreter accepts smaller ones, so the plan is checked for every n.
    for n in range(1, 8193):
        plan = tk.fft_plan(n)
        if plan is None:
            continue
        assert plan.n1 * plan.n2 == n and plan.n1 <= plan.P1 and plan.n2 <= plan.P2
        assert min(plan.P1, plan.P2) >= tk.MIN_DOT and plan.P1 * plan.P2 <= tk.FUSED_MAX_TILE
        assert plan.P1 & (plan.P1 - 1) == 0 and plan.P2 & (plan.P2 - 1) == 0
    for n in (16, 64, 1024, 2048, 4096, 8192):  # the lengths the paper's layers use all fit
        assert tk.fft_plan(n).P1 * tk.fft_plan(n).P2 == max(256, n)
    assert tk.fft_plan(8194) is None and tk.fft_plan(10000) is None


def test_grid_limits_are_refused_before_a_launch(tk):
    assert tk.check_grid((2**31 - 1, 65535, 65535), "x")
    with pytest.raises(ValueError, match="axis 0"):
        tk.check_grid((2**31,), "x")
    with pytest.raises(ValueError, match="axis 1"):
        tk.check_grid((1, 65536), "x")
    # Through a launcher: a kernel of 65535 * 64 + 1 taps needs 65536 blocks along axis 1.
    k = make_s4d(1, 2, 0).kernel
    with torch.no_grad(), pytest.raises(ValueError, match="s4d_kernel: the launch grid"):
        tk.s4d_kernel(*(t.detach().to(DEVICE) for t in (k.C, k.log_dt, k.log_A_real, k.A_imag)),
                      65535 * tk.S4D_BLOCK_L + 1)


def test_int64_offsets_past_int32(tk, monkeypatch):
    assert not tk.needs_int64(2**31 - 1) and tk.needs_int64(2**31)
    # The int64 code paths give the same results (INDEX_64 forced by lowering the threshold), and the launchers
    # turn it on from the tensors' sizes.
    args, _ = conv_case(2, 3, 40, 80, 0.5, torch.float32)
    k = make_s4d(3, 8, 1).kernel
    kargs = [t.detach().to(DEVICE) for t in (k.C, k.log_dt, k.log_A_real, k.A_imag)]
    largs = [t.to(DEVICE) for t in dplr_args(3, 4, dtype=torch.float32)]
    runs = {}
    for limit in (2**31 - 1, 0):
        monkeypatch.setattr(tk, "INT32_MAX", limit)
        flags = []
        real = tk._kernel

        def spy(name, real=real, flags=flags):
            launcher = real(name)

            class Grid:
                def __getitem__(self, grid):
                    def launch(*a, **kw):
                        flags.append(kw["INDEX_64"])
                        return launcher[grid](*a, **kw)
                    return launch
            return Grid()

        monkeypatch.setattr(tk, "_kernel", spy)
        runs[limit] = [tk.sparse_fftconv(*args, 80, "gelu", True, path=p) for p in ("fused", "fallback")]
        runs[limit] += [tk.s4d_kernel(*kargs, 70), tk.dplr_spectrum(*largs, 33)]
        monkeypatch.setattr(tk, "_kernel", real)
        assert flags == [limit == 0] * 4
    for a, b in zip(runs[2**31 - 1], runs[0]):
        assert torch.equal(a, b)


def test_a_gpu_that_cannot_hold_the_tile_falls_back_once(tk, monkeypatch):
    import triton

    args, args64 = conv_case(1, 3, 30, 60, 0.3, torch.float32)
    real = tk._kernel

    def refuse(name):
        if name == "fused":
            class Refused:
                def __getitem__(self, grid):
                    def launch(*a, **kw):
                        raise triton.runtime.errors.OutOfResources(300000, 232448, "shared memory")
                    return launch
            return Refused()
        return real(name)

    monkeypatch.setattr(tk, "_kernel", refuse)
    monkeypatch.setattr(tk, "FALLBACK_REASONS", {})
    y = tk.sparse_fftconv(*args, 60)
    assert_close(y, sparse_fftconv_ref(*args64, 60), torch.float32)
    assert list(tk.FALLBACK_REASONS) == [(tk.fft_plan(60), torch.float32, DEVICE.type)]
    assert not tk._fused_ok(tk.fft_plan(60), args[0])


def test_active_is_checked_on_cpu_tensors(tk):
    if ON_GPU:
        pytest.skip("the value checks are the CPU tensors' (on a GPU they would cost a synchronization per call)")
    args, _ = conv_case(1, 4, 10, 20, 0.5, torch.float32)
    u, k_f, D, active = args
    for bad, match in ((active.flip(0), "strictly increasing"), (active + 10, "outside"), (active - 5, "outside")):
        with pytest.raises(ValueError, match=match):
            tk.sparse_fftconv(u, k_f, D, bad, 20)


@pytest.mark.parametrize("path", ["fused", "fallback"])
def test_a_bad_active_never_makes_the_kernels_read_out_of_bounds(path, tk, monkeypatch):
    # What a GPU call gets (no value check there): channels the binary search does not find are treated as pruned,
    # and k_f / D are read only at rows j < A.  k_f and D sit inside NaN sentinels: a read past them would show.
    monkeypatch.setattr(tk, "check_active", lambda *a: None)
    B, H, L, n = 2, 5, 21, 41
    args, _ = conv_case(B, H, L, n, 0.4, torch.float32, seed=8)
    u, k_f, D, _ = args
    k_f, D = _in_sentinels(k_f)[0], _in_sentinels(D)[0]
    bad = torch.tensor([-3, 2, 99], device=DEVICE)[: k_f.shape[0]]  # h = 2 is found (row 1); the others never match
    if path == "fallback":  # the gather is torch's (index_select refuses out-of-range rows itself)
        bad = torch.tensor([2, 1, 4], device=DEVICE)[: k_f.shape[0]]  # unsorted: the search finds 4 only
    y = tk.sparse_fftconv(u, k_f, D, bad, n, path=path)
    assert torch.isfinite(y).all()
    order = bad.tolist()
    found = {h: bisect.bisect_left(order, h) for h in range(H)}  # the kernels' binary search, as on sorted input
    found = {h: j for h, j in found.items() if j < len(order) and order[j] == h}
    assert found == ({2: 1} if path == "fused" else {4: 2})
    for h in range(H):
        if h in found:
            j = found[h]
            want = sparse_fftconv_ref(u[:, h:h + 1].double().cpu(), k_f[j:j + 1].cpu().to(torch.complex128),
                                      D[j:j + 1].double().cpu(), torch.tensor([0]), n)
            assert_close(y[:, h:h + 1], want, torch.float32, what=f"channel {h}")
        else:
            assert torch.equal(y[:, h], u[:, h]), h


def test_the_kernels_call_only_triton_builtins(tk):
    # Library functions that Triton jits itself at import (tl.sum, tl.zeros, ...) stay compiled-mode functions
    # when Triton was imported before TRITON_INTERPRET=1 was set, and the interpreter then cannot call them.
    import re

    import triton.language as tl
    from triton.runtime.jit import KernelInterface

    used = set()
    for fn in tk._KERNEL_FUNCTIONS.values():
        used |= set(re.findall(r"\btl\.((?:math\.)?\w+)\(", inspect_source(fn)))
    jitted = [name for name in sorted(used) if isinstance(_resolve(tl, name), KernelInterface)]
    assert used and not jitted, f"kernels call Triton library functions that are themselves jitted: {jitted}"


def inspect_source(fn) -> str:
    import inspect

    return inspect.getsource(fn)


def _resolve(module, dotted: str):
    for part in dotted.split("."):
        module = getattr(module, part)
    return module


@pytest.mark.skipif(ON_GPU, reason="the interpreter's import order matters only without a GPU")
def test_the_interpreter_works_when_triton_was_imported_before_it_was_asked_for():
    import subprocess
    import sys

    code = (
        "import os, torch, triton\n"  # imported before TRITON_INTERPRET is set (as torch.compile's inductor does)
        "os.environ['TRITON_INTERPRET'] = '1'\n"
        "import s4op_kernels\n"
        "from s4op_kernels.ops import s4d_kernel, dplr_spectrum, sparse_fftconv\n"
        "with torch.no_grad(), s4op_kernels.use_backend('triton'):\n"
        "    K = s4d_kernel(torch.randn(2, 3, 2), torch.zeros(2), torch.zeros(2, 3), torch.ones(2, 3), 20)\n"
        "    kf = dplr_spectrum(torch.full((2,), -3.0), torch.zeros(2, 3), torch.ones(2, 3), "
        "*(torch.randn(2, 3, 2) for _ in range(3)), M=20)\n"
        "    y = sparse_fftconv(torch.randn(1, 2, 20), torch.fft.rfft(K, n=40), torch.ones(2), torch.arange(2), 40, "
        "'gelu', True)\n"
        "assert torch.isfinite(y).all() and torch.isfinite(kf).all()\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       cwd=os.path.dirname(__file__), env={k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"})
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]


# ------------------------------------------------------------------------------------------ kernel generation
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("shape", LAYER_SHAPES)
def test_s4d_kernel_matches_the_formula(shape, dtype):
    _, H, N, L = shape
    k = make_s4d(H, N, 0, dtype).kernel
    with torch.no_grad(), s4op_kernels.use_backend("triton"):
        K = s4d_kernel(*(t.to(DEVICE) for t in (k.C, k.log_dt, k.log_A_real, k.A_imag)), L)
    assert K.shape == (H, L) and K.dtype == dtype
    assert_close(K, s4d_kernel64(k.C, k.log_dt, k.log_A_real, k.A_imag, L), dtype, what="s4d kernel")


def test_s4d_kernel_long_phase_is_reduced_exactly():
    # dt * A_imag * l up to 3e5 rad: a float32 phase is off by ~0.01 rad there (the float32 reference fails the
    # float32 bound); the kernel's float64 phase keeps the float32 result within it.
    H, N2, L = 3, 4, 4096
    g = torch.Generator().manual_seed(5)
    C = torch.randn(H, N2, 2, generator=g)
    log_dt = torch.full((H,), math.log(0.1))
    log_A_real = torch.full((H, N2), math.log(1e-3))  # slow decay: the late taps matter
    A_imag = 500.0 + 200.0 * torch.rand(H, N2, generator=g)
    expected = s4d_kernel64(C, log_dt, log_A_real, A_imag, L)
    with torch.no_grad(), s4op_kernels.use_backend("triton"):
        K = s4d_kernel(*(t.to(DEVICE) for t in (C, log_dt, log_A_real, A_imag)), L)
    assert_close(K, expected, torch.float32, what="long phase")
    with s4op_kernels.use_backend("reference"):
        ref32 = s4d_kernel(C, log_dt, log_A_real, A_imag, L)
    with pytest.raises(AssertionError, match="relative error"):  # what the reduction buys
        assert_close(ref32, expected, torch.float32, what="float32 reference")


def test_s4d_kernel_rows_any_order_and_masks(tk):
    # N2 = 5 and L = 70: multiples of no block; the parameters inside NaN sentinels; rows in any order, repeats.
    k = make_s4d(6, 10, 4).kernel
    params = [_in_sentinels(t.detach().to(DEVICE))[0] for t in (k.C, k.log_dt, k.log_A_real, k.A_imag)]
    rows = torch.tensor([5, 0, 3, 3], device=DEVICE)
    out = tk.s4d_kernel(*params, 70, rows)
    assert torch.isfinite(out).all()
    assert_close(out, s4d_kernel64(k.C, k.log_dt, k.log_A_real, k.A_imag, 70)[[5, 0, 3, 3]], torch.float32)
    assert tk.s4d_kernel(*params, 70, rows[:0]).shape == (0, 70)
    if not ON_GPU:
        with pytest.raises(IndexError, match="rows"):
            tk.s4d_kernel(*params, 70, torch.tensor([6]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("H, N2, M", [(1, 1, 1), (3, 8, 7), (5, 16, 100), (2, 32, 1000), (7, 8, 255)])
def test_dplr_spectrum_matches_the_dense_recurrence(H, N2, M, dtype):
    args = dplr_args(H, N2, seed=H * M, dtype=dtype)
    with torch.no_grad(), s4op_kernels.use_backend("triton"):
        kf = dplr_spectrum(*(t.to(DEVICE) for t in args), M)
    assert kf.shape == (H, M // 2 + 1) and kf.dtype == dtype.to_complex()
    assert_close(torch.fft.irfft(kf, n=M), dplr_op_kernel64(args, M), dtype, what="dplr kernel")


def test_dplr_spectrum_rows_truncation_and_masks(tk):
    args = dplr_args(4, 5, seed=9, dtype=torch.float32)
    params = [_in_sentinels(t.to(DEVICE))[0] for t in args]
    rows = torch.tensor([2, 0, 2], device=DEVICE)
    kf = tk.dplr_spectrum(*params, 100, rows, L=37, n_fft=75)
    expected = torch.fft.rfft(torch.from_numpy(dplr_op_kernel64([a.double() for a in args], 100, 37)[[2, 0, 2]]), n=75)
    assert kf.shape == (3, 38)
    assert_close(torch.view_as_real(kf), torch.view_as_real(expected), torch.float32, what="truncated spectrum")


# ------------------------------------------------------------------------------------------ backend and layers
def test_the_backend_is_listed_resolved_and_inference_only():
    assert "triton" in s4op_kernels.available_backends()
    cuda = torch.device("cuda")
    assert dispatch.resolve(cuda, needs_grad=False) == "triton"  # auto: CUDA tensors take Triton
    assert dispatch.resolve(cuda, needs_grad=True) == "reference"
    assert dispatch.backends_for(cuda)[0] == "triton" and "cpu" not in dispatch.backends_for(cuda)
    assert ("triton" in dispatch.backends_for("cpu")) == (not ON_GPU)  # CPU tensors: only under the interpreter
    u = torch.randn(1, 2, 8, device=DEVICE, requires_grad=True)
    k_f = torch.zeros(1, 9, dtype=torch.complex64, device=DEVICE)
    with s4op_kernels.use_backend("triton"), pytest.raises(RuntimeError, match="'triton' is inference-only"):
        sparse_fftconv(u, k_f, torch.zeros(1, device=DEVICE), torch.tensor([0], device=DEVICE), 16)
    with s4op_kernels.use_backend("reference"):  # still there on the same tensors
        assert sparse_fftconv(u, k_f, torch.zeros(1, device=DEVICE), torch.tensor([0], device=DEVICE), 16).requires_grad


def test_cuda_implementations_of_the_custom_ops_are_registered():
    for op in ("s4op::sparse_fftconv", "s4op::s4d_kernel", "s4op::dplr_spectrum"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(op, "CUDA"), op


@pytest.mark.skipif(not ON_GPU, reason="needs a CUDA device (the custom ops' CUDA kernels)")
def test_opcheck_on_cuda():
    args, _ = conv_case(2, 5, 30, 60, 0.4, torch.float32)
    torch.library.opcheck(torch.ops.s4op.sparse_fftconv.default, args + (60, "gelu", True))
    k = make_s4d(5, 8, 2).kernel
    kargs = tuple(t.detach().to(DEVICE) for t in (k.C, k.log_dt, k.log_A_real, k.A_imag)) + (33,)
    torch.library.opcheck(torch.ops.s4op.s4d_kernel.default, kargs)
    torch.library.opcheck(torch.ops.s4op.dplr_spectrum.default, tuple(t.to(DEVICE) for t in dplr_args(3, 4, dtype=torch.float32)) + (20,))


@pytest.mark.parametrize("pruned", PRUNE_FRACTIONS)
def test_s4d_layer_on_the_triton_backend(pruned):
    B, H, N, L = 2, 7, 16, 200
    layer = make_s4d(H, N, 1)
    active = some_channels(H, pruned, 1)
    layer.set_active_channels(active)
    u = make_input(B, H, L, 1)
    layer = layer.to(DEVICE)
    with torch.inference_mode(), s4op_kernels.use_backend("triton"):
        y, _ = layer(u.to(DEVICE))
    assert_close(y, s4d_layer64(layer.cpu(), u, active), torch.float32, what="S4DLayer")


def test_s4_layer_on_the_triton_backend():
    from s4op_kernels import S4Layer

    torch.manual_seed(0)
    layer = S4Layer(5, d_state=8).eval()
    active = [0, 2, 3]
    layer.set_active_channels(active)
    sd = {k: v.clone() for k, v in layer.state_dict().items()}  # before the first forward sets C-tilde up
    u = make_input(2, 5, 100, 2)
    layer = layer.to(DEVICE)
    with torch.inference_mode(), s4op_kernels.use_backend("triton"):
        y, _ = layer(u.to(DEVICE))
    assert_close(y, s4_layer64(sd, u, active=active), torch.float32, what="S4Layer")
