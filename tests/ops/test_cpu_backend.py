"""The compiled CPU backend: custom-op registration, thread-count independence, the binding's argument
checks, dispatch, and torch.compile."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import s4op_kernels
from s4op_kernels import _ext, S4DLayer
from s4op_kernels.ops import dispatch, fft_size, s4d_kernel, sparse_fftconv
from factories import make_input, make_s4d, some_channels
from formulas import s4d_layer64
from tolerances import assert_close

pytestmark = pytest.mark.skipif("cpu" not in s4op_kernels.available_backends(), reason="compiled core not built")


def _conv_args(B=2, H=7, L=50, pruned=0.5, seed=0, dtype=torch.float32):
    active = torch.tensor(some_channels(H, pruned, seed), dtype=torch.int64)
    n = fft_size(L)
    g = torch.Generator().manual_seed(seed)
    K = torch.randn(len(active), L, generator=g, dtype=torch.float64).to(dtype)
    k_f = torch.fft.rfft(K, n=n) if len(active) else torch.zeros(0, n // 2 + 1, dtype=dtype.to_complex())
    D = torch.randn(len(active), generator=g, dtype=torch.float64).to(dtype)
    return make_input(B, H, L, seed, dtype), k_f, D, active, n


def test_auto_selects_cpu_for_inference_and_reference_for_training():
    assert s4op_kernels.available_backends()[0] == "cpu"
    assert dispatch.resolve(torch.device("cpu"), needs_grad=False) == "cpu"
    assert dispatch.resolve(torch.device("cpu"), needs_grad=True) == "reference"
    assert dispatch.resolve(torch.device("meta"), needs_grad=False) == "reference"
    with s4op_kernels.use_backend("cpu"):
        with pytest.raises(RuntimeError, match="inference-only"):
            dispatch.resolve(torch.device("cpu"), needs_grad=True)
        with pytest.raises(ValueError, match="CPU tensors"):
            dispatch.resolve(torch.device("meta"), needs_grad=False)


def test_layer_in_eval_uses_the_compiled_ops(monkeypatch):
    calls = []
    real = _ext.C()

    class Spy:
        def __getattr__(self, name):
            calls.append(name)
            return getattr(real, name)

    monkeypatch.setattr(_ext, "C", lambda: Spy())
    layer = make_s4d(6, 8, 0).set_active_channels([0, 2, 5])
    u = make_input(1, 6, 40, 0)
    with torch.no_grad():
        y = layer(u)[0]
    assert [c for c in calls if c != "same_bytes"] == ["s4d_kernel", "sparse_fftconv"]  # same_bytes: the cache
    assert_close(y, s4d_layer64(layer, u, [0, 2, 5]), torch.float32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
def test_thread_counts_give_identical_results(dtype):
    # Our ops only: torch's own conv1d/GELU need not be bitwise stable across thread counts.
    layer = make_s4d(13, 16, 1, dtype).set_active_channels(some_channels(13, 0.3, 1))
    u = make_input(3, 13, 300, 1, dtype)
    old = torch.get_num_threads()
    try:
        outs = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            layer._invalidate()
            with torch.no_grad():
                k = layer.kernel
                outs.append((layer._ssm(u), s4d_kernel(k.C, k.log_dt, k.log_A_real, k.A_imag, 300), sparse_fftconv(*_conv_args(dtype=dtype))))
    finally:
        torch.set_num_threads(old)
    for a, b in zip(*outs):
        assert torch.equal(a, b)


def test_opcheck_sparse_fftconv():
    for args in (_conv_args(), _conv_args(pruned=0.0, dtype=torch.float64), _conv_args(B=1, H=3, L=1, pruned=1.0)):
        torch.library.opcheck(torch.ops.s4op.sparse_fftconv.default, args)
        torch.library.opcheck(torch.ops.s4op.sparse_fftconv.default, args + ("gelu",))
        torch.library.opcheck(torch.ops.s4op.sparse_fftconv.default, args + ("gelu", True))


def test_opcheck_s4d_kernel():
    for dtype in (torch.float32, torch.float64):
        k = make_s4d(5, 8, 2, dtype).kernel
        args = tuple(t.detach() for t in (k.C, k.log_dt, k.log_A_real, k.A_imag)) + (33,)
        torch.library.opcheck(torch.ops.s4op.s4d_kernel.default, args)
        torch.library.opcheck(torch.ops.s4op.s4d_kernel.default, args + (torch.tensor([4, 0, 2]),))


def _wrong(args: dict, **changes) -> dict:
    return {**args, **changes}


@pytest.mark.parametrize("mode", ["fake", "compile"])
@pytest.mark.parametrize("bad", ["k_f_rows", "k_f_freqs", "D_rows", "k_f_dtype", "short_n_fft"])
def test_the_fake_refuses_wrong_shapes_and_dtypes_at_trace_time(bad, mode):
    # The fake (meta) implementation validates what the kernels rely on, so a traced program with a
    # wrong-shaped k_f fails while tracing, before any kernel runs.
    from torch._subclasses.fake_tensor import FakeTensorMode

    u, k_f, D, active, n = _conv_args(B=2, H=6, L=10, pruned=0.5)
    A, F = k_f.shape
    args = dict(u=u, k_f=k_f, D=D, active=active, n_fft=n)
    args = {"k_f_rows": _wrong(args, k_f=k_f[: A - 1]), "k_f_freqs": _wrong(args, k_f=k_f[:, : F - 1]),
            "D_rows": _wrong(args, D=D[:-1]), "k_f_dtype": _wrong(args, k_f=k_f.to(torch.complex128)),
            "short_n_fft": _wrong(args, k_f=k_f[:, :8], n_fft=14)}[bad]
    exc = TypeError if bad == "k_f_dtype" else ValueError
    match = {"k_f_rows": "k_f must be", "k_f_freqs": "k_f must be", "D_rows": "D must be", "k_f_dtype": "k_f must be",
             "short_n_fft": "too short"}[bad]
    if mode == "fake":
        with FakeTensorMode() as fake, pytest.raises(exc, match=match):
            fake_args = {k: fake.from_tensor(v) if isinstance(v, torch.Tensor) else v for k, v in args.items()}
            torch.ops.s4op.sparse_fftconv(*fake_args.values())
    else:
        torch._dynamo.reset()
        fn = torch.compile(lambda *a: torch.ops.s4op.sparse_fftconv(*a), backend="eager", fullgraph=True)
        with pytest.raises(Exception, match=match):  # dynamo wraps the fake's error in its own exception type
            fn(*args.values())


def test_s4d_kernel_reads_the_rows_it_is_given():
    k = make_s4d(7, 8, 4).kernel
    rows = torch.tensor([5, 1, 1, 6])
    full = (k.C, k.log_dt, k.log_A_real, k.A_imag)
    with torch.no_grad():
        for backend in dispatch.backends_for("cpu"):
            with s4op_kernels.use_backend(backend):
                got = s4d_kernel(*full, 40, rows)
                want = s4d_kernel(*(t.index_select(0, rows) for t in full), 40)
            assert torch.equal(got, want), backend
        with pytest.raises(TypeError, match="rows must be int64"):
            torch.ops.s4op.s4d_kernel(*full, 40, rows.int())


def test_torch_compile_of_a_model_with_s4d_layers():
    torch._dynamo.reset()
    model = torch.nn.Sequential(torch.nn.Identity())
    layer = make_s4d(8, 8, 3).set_active_channels([1, 4, 6])

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer

        def forward(self, x):
            return self.layer(x)[0] + x

    model = Block().eval()
    u = make_input(2, 8, 64, 3)
    compiled = torch.compile(model)
    with torch.no_grad():
        expected = model(u)
        for _ in range(2):
            assert_close(compiled(u), expected.double(), torch.float32, what="compiled output")


# ----------------------------------------------------------------------------- the binding boundary
def _np_args(B=1, H=4, L=10, A=2, dtype=np.float32):
    n = fft_size(L)
    ctype = np.complex64 if dtype == np.float32 else np.complex128
    return dict(
        u=np.zeros((B, H, L), dtype), k_f=np.zeros((A, n // 2 + 1), ctype), D=np.zeros(A, dtype),
        active=np.arange(A, dtype=np.int64), n_fft=n, out=np.zeros((B, H, L), dtype), num_threads=1,
    )


def _call(**overrides):
    args = _np_args()
    args.update(overrides)
    return _ext.C().sparse_fftconv(*args.values())


@pytest.mark.parametrize(
    "overrides, exc, match",
    [
        (dict(u=np.zeros((4, 10), np.float32)), ValueError, r"u.*3-D"),
        (dict(u=np.zeros((1, 4, 10), np.float16)), TypeError, r"u.*float32"),
        (dict(k_f=np.zeros((2, 11), np.complex128)), TypeError, r"k_f.*complex64"),
        (dict(k_f=np.zeros((3, 11), np.complex64)), ValueError, r"k_f"),
        (dict(k_f=np.zeros((2, 12), np.complex64)), ValueError, r"k_f"),
        (dict(D=np.zeros(3, np.float32)), ValueError, r"D"),
        (dict(active=np.array([0, 4])), ValueError, r"active.*out of range"),
        (dict(active=np.array([-1, 2])), ValueError, r"active.*out of range"),
        (dict(active=np.array([1, 1])), ValueError, r"active.*increasing"),
        (dict(active=np.array([2, 1])), ValueError, r"active.*increasing"),
        (dict(active=np.array([0, 1], np.int32)), TypeError, r"active.*int64"),
        (dict(n_fft=10, k_f=np.zeros((2, 6), np.complex64)), ValueError, r"n_fft.*too short"),
        (dict(n_fft=22, k_f=np.zeros((2, 12), np.complex64)), ValueError, r"n_fft.*2\^a 3\^b 5\^c"),
        (dict(u=np.zeros((1, 4, 20), np.float32)[:, :, ::2]), ValueError, r"u.*contiguous"),
        (dict(out=np.zeros((1, 4, 11), np.float32)), ValueError, r"out"),
        (dict(num_threads=0), ValueError, r"num_threads"),
        (dict(u=[[1.0]]), TypeError, r"u"),
    ],
    ids=["u-rank", "u-dtype", "kf-dtype", "kf-rows", "kf-bins", "D-len", "active-high", "active-neg",
         "active-dup", "active-unsorted", "active-int32", "nfft-short", "nfft-slow", "u-strided", "out-shape",
         "threads", "u-list"],
)
def test_binding_rejects_bad_arguments(overrides, exc, match):
    with pytest.raises(exc, match=match):
        _call(**overrides)


def test_binding_rejects_aliasing_and_readonly_output():
    args = _np_args()
    args["out"] = args["u"]
    with pytest.raises(ValueError, match="overlap"):
        _ext.C().sparse_fftconv(*args.values())
    args = _np_args()
    args["out"].setflags(write=False)
    with pytest.raises(ValueError, match="out.*writeable"):
        _ext.C().sparse_fftconv(*args.values())


def test_binding_kernel_rejects_bad_arguments():
    C = np.zeros((3, 4, 2), np.float32)
    good = dict(C=C, log_dt=np.zeros(3, np.float32), log_A_real=np.zeros((3, 4), np.float32),
                A_imag=np.zeros((3, 4), np.float32), rows=np.arange(3, dtype=np.int64), L=5,
                out=np.zeros((3, 5), np.float32), num_threads=1)
    _ext.C().s4d_kernel(*good.values())
    for key, value, match in [
        ("C", np.zeros((3, 4, 3), np.float32), r"C"),
        ("log_dt", np.zeros(2, np.float32), r"log_dt"),
        ("A_imag", np.zeros((3, 4), np.float64), r"A_imag"),
        ("rows", np.array([0, 1, 3]), r"rows\[2\] = 3 is outside \[0, H\)"),
        ("out", np.zeros((3, 4), np.float32), r"out"),
        ("L", -1, r"L"),
    ]:
        args = dict(good, **{key: value})
        with pytest.raises((ValueError, TypeError), match=match):
            _ext.C().s4d_kernel(*args.values())


def test_unsupported_dtype_through_the_op():
    u, k_f, D, active, n = _conv_args()
    with s4op_kernels.use_backend("cpu"), pytest.raises(TypeError, match="float32 or float64"):
        sparse_fftconv(u.half(), k_f, D.half(), active, n)


def test_binding_rejects_an_unknown_activation():
    u, k_f, D, active, n = _conv_args()
    out = torch.empty_like(u)
    with pytest.raises(ValueError, match="activation: expected 'none' or 'gelu'"):
        _ext.C().sparse_fftconv(u.numpy(), k_f.numpy(), D.numpy(), active.numpy(), n, out.numpy(), 1, activation="tanh")


def test_binding_out_may_have_extra_channels_but_not_fewer():
    u, k_f, D, active, n = _conv_args(B=2, H=5, L=9)
    C = _ext.C()
    big = torch.full((2, 6, 9), 3.0)
    C.sparse_fftconv(u.numpy(), k_f.numpy(), D.numpy(), active.numpy(), n, big.numpy(), 2)
    assert torch.equal(big[:, :5], sparse_fftconv(u, k_f, D, active, n)) and torch.all(big[:, 5] == 3.0)
    with pytest.raises(ValueError, match=r"out: expected shape \(2, H' >= 5, 9\)"):
        C.sparse_fftconv(u.numpy(), k_f.numpy(), D.numpy(), active.numpy(), n, torch.empty(2, 4, 9).numpy(), 1)


def test_binding_extra_value_fills_the_extra_channels_and_a_refused_call_writes_nothing():
    u, k_f, D, active, n = _conv_args(B=2, H=5, L=9)
    C = _ext.C()
    big = torch.full((2, 7, 9), 3.0)
    C.sparse_fftconv(u.numpy(), k_f.numpy(), D.numpy(), active.numpy(), n, big.numpy(), 2, extra_value=1.0)
    assert torch.equal(big[:, :5], sparse_fftconv(u, k_f, D, active, n)) and torch.all(big[:, 5:] == 1.0)
    untouched = torch.full((2, 7, 9), 3.0)
    bad_active = active.flip(0).numpy().copy()  # not increasing: refused by the core
    with pytest.raises(ValueError, match="increasing"):
        C.sparse_fftconv(u.numpy(), k_f.numpy(), D.numpy(), bad_active, n, untouched.numpy(), 2, extra_value=1.0)
    assert torch.all(untouched == 3.0)


def test_layer_fuses_gelu_only_when_it_is_the_standard_unhooked_gelu():
    layer = make_s4d(6, 8, 3, torch.float32).set_active_channels([1, 4]).eval()
    u = make_input(2, 6, 40, 3, torch.float32)
    with torch.inference_mode():
        fused = layer(u)[0]
        seen = []
        handle = layer.activation.register_forward_hook(lambda m, i, o: seen.append(o.shape))
        hooked = layer(u)[0]
        handle.remove()
        layer.activation = torch.nn.GELU(approximate="tanh")  # a different function: never fused
        tanh = layer(u)[0]
    assert seen == [torch.Size([2, 6, 40])]  # the hook ran: the unfused path was taken
    assert_close(fused, s4d_layer64(layer, u, [1, 4]), torch.float32)
    assert torch.allclose(fused, hooked, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(fused, tanh, rtol=1e-7, atol=0)


def test_eager_fast_path_equals_the_registered_op():
    # Eager CPU inference calls the op's CPU kernel directly (no custom-op dispatch); traced code and
    # direct users of torch.ops.s4op.sparse_fftconv get the very same kernel.
    args = _conv_args(B=3, H=9, L=40, pruned=0.4, seed=2)
    with torch.inference_mode():
        assert torch.equal(sparse_fftconv(*args), torch.ops.s4op.sparse_fftconv(*args))
        assert torch.equal(sparse_fftconv(*args, "gelu"), torch.ops.s4op.sparse_fftconv(*args, "gelu"))
