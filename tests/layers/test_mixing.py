"""The inference output mixing (layers/_mixing.py): every method against the float64 formula, the
S4OP_MIXING override, the per-key cached automatic choice, the layers under each method, and the report.
No timing is asserted: which method wins is the machine's business; that the choice is one of the methods,
made once per key, and exact in its result is ours."""

from __future__ import annotations

import copy
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import s4op_kernels
from s4op_kernels import S4DLayer, S4Layer, info
from s4op_kernels.layers import _mixing
from factories import make_input, make_s4d, some_channels
from formulas import s4_layer64, s4d_layer64
from shapes import LAYER_SHAPES, PRUNE_FRACTIONS
from tolerances import assert_close

DTYPES = [pytest.param(torch.float32, id="fp32"), pytest.param(torch.float64, id="fp64")]
METHODS = list(_mixing.METHODS)
# (B, H, L): the layer shapes plus an empty batch, L = 1 with an odd H, and batch > 1 with H = 1.
MIX_SHAPES = [pytest.param((s.values[0][0], s.values[0][1], s.values[0][3]), id=s.id.replace("-N", "-n"))
              for s in LAYER_SHAPES] + [
    pytest.param((0, 5, 7), id="B0-H5-L7"),
    pytest.param((1, 33, 1), id="B1-H33-L1"),
    pytest.param((4, 1, 9), id="B4-H1-L9"),
    pytest.param((2, 64, 300), id="B2-H64-L300"),
]


@pytest.fixture(autouse=True)
def _auto_and_fresh(monkeypatch):
    """Each test starts with S4OP_MIXING unset and no choice recorded, and leaves torch's global RNG as it
    found it (later files draw unseeded inputs from it)."""
    monkeypatch.delenv(_mixing.ENV_VAR, raising=False)
    _mixing.reset()
    with torch.random.fork_rng(devices=[]):
        yield
    _mixing.reset()


def mixing64(W, b, y) -> np.ndarray:
    """glu(W y + b) over channels in float64: W (2H, H), b (2H,), y (B, H, L) -> (B, H, L)."""
    W, b, y = (t.detach().double().numpy() for t in (W, b, y))
    H = W.shape[1]
    z = np.einsum("oh,bhl->bol", W, y) + b[None, :, None]
    return z[:, :H] / (1.0 + np.exp(-z[:, H:]))


def _problem(B, H, L, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    W = (torch.randn(2 * H, H, generator=g, dtype=torch.float64) / H ** 0.5).to(dtype)
    b = torch.randn(2 * H, generator=g, dtype=torch.float64).to(dtype)
    y = torch.randn(B, H, L, generator=g, dtype=torch.float64).to(dtype)
    return W, b, y


def _with_ones(y):
    return torch.cat([y, y.new_ones(y.shape[0], 1, y.shape[2])], dim=1)


def _spy(monkeypatch) -> list[str]:
    """Record which methods run (through _mixing._FUNCS, which mix() and measure() both call)."""
    calls: list[str] = []
    for name, fn in list(_mixing._FUNCS.items()):
        def spy(w, y, _name=name, _fn=fn):
            calls.append(_name)
            return _fn(w, y)
        monkeypatch.setitem(_mixing._FUNCS, name, spy)
    return calls


# ----------------------------------------------------------------------------- each method, the formula
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", MIX_SHAPES)
@pytest.mark.parametrize("method", METHODS)
def test_every_method_matches_the_float64_formula(method, shape, dtype):
    B, H, L = shape
    W, b, y = _problem(B, H, L, dtype, seed=B + 3 * H + L)
    expected = mixing64(W, b, y)
    Wb = torch.cat([W, b.unsqueeze(1)], dim=1)
    arg = _with_ones(y) if _mixing.NEEDS_ONES[method] else y
    for weights in (_mixing.MixWeights(folded=Wb), _mixing.MixWeights.from_params(W.unsqueeze(-1), b)):
        with torch.inference_mode():
            out = _mixing.mix(method, weights, arg)
        assert out.shape == (B, H, L) and out.dtype == dtype and out.is_contiguous()
        assert_close(out, expected, dtype, what=f"{method} mixing")


@pytest.mark.parametrize("method", METHODS)
def test_every_method_gives_the_formula_gradient(method):
    # Forced in eval with autograd on, a method reads the parameters themselves and must backpropagate.
    B, H, L = 2, 5, 11
    W, b, y = _problem(B, H, L, torch.float64, seed=4)
    W.requires_grad_(True)
    b.requires_grad_(True)
    y.requires_grad_(True)
    weights = _mixing.MixWeights.from_params(W, b)
    arg = _with_ones(y) if _mixing.NEEDS_ONES[method] else y
    g = torch.randn(B, H, L, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    (_mixing.mix(method, weights, arg) * g).sum().backward()
    # The formula's gradient: z = W y + b, out = a * s(g'), with a, g' the two halves of z.
    with torch.no_grad():
        z = torch.einsum("oh,bhl->bol", W, y) + b[None, :, None]
        a, gate = z[:, :H], z[:, H:]
        s = torch.sigmoid(gate)
        dz = torch.cat([g * s, g * a * s * (1 - s)], dim=1)
        assert_close(W.grad, torch.einsum("bol,bhl->oh", dz, y), torch.float64, what="dW")
        assert_close(b.grad, dz.sum(dim=(0, 2)), torch.float64, what="db")
        assert_close(y.grad, torch.einsum("oh,bol->bhl", W, dz), torch.float64, what="dy")


def test_mix_refuses_an_unknown_method():
    with pytest.raises(ValueError, match=r"unknown mixing method 'fast'.*gemm, conv1d, linear, baddbmm"):
        _mixing.mix("fast", _mixing.MixWeights(folded=torch.zeros(2, 2)), torch.zeros(1, 1, 1))


# ----------------------------------------------------------------------------- the override
@pytest.mark.parametrize("method", METHODS)
def test_the_override_forces_each_method_and_times_nothing(method, monkeypatch):
    monkeypatch.setenv(_mixing.ENV_VAR, method.upper() if method == "conv1d" else method)  # case-insensitive
    calls = _spy(monkeypatch)
    layer = make_s4d(7, 4, 1).set_active_channels([0, 3, 6])
    u = make_input(2, 7, 40, 1)
    with torch.inference_mode():
        y = layer(u)[0]
    assert calls == [method] and _mixing.choices() == []
    assert_close(y, s4d_layer64(layer, u, [0, 3, 6]), torch.float32)


@pytest.mark.parametrize("value", ["fast", "gemm,conv1d", "onednn", "1"])
def test_a_bad_override_is_refused_with_the_variable_and_the_choices(value, monkeypatch):
    monkeypatch.setenv(_mixing.ENV_VAR, value)
    layer = make_s4d(4, 4, 2)
    with pytest.raises(ValueError, match=rf"S4OP_MIXING={value!r}.*auto, gemm, conv1d, linear, baddbmm"):
        with torch.no_grad():
            layer(make_input(1, 4, 8, 2))
    assert info.mixing_info()["override"].startswith("invalid: environment variable S4OP_MIXING")


@pytest.mark.parametrize("value", ["", "auto", " Auto "])
def test_auto_spellings(value, monkeypatch):
    monkeypatch.setenv(_mixing.ENV_VAR, value)
    assert _mixing.override() is None


# ----------------------------------------------------------------------------- the automatic choice
def test_the_auto_choice_is_a_method_made_once_per_key(monkeypatch):
    calls = _spy(monkeypatch)
    measured = []
    real_measure = _mixing.measure
    monkeypatch.setattr(_mixing, "measure", lambda key, w, y1: measured.append(key) or real_measure(key, w, y1))
    layer = make_s4d(16, 4, 3)
    u = make_input(1, 16, 200, 3)  # 2H (H + 1) B L = 108800 multiply-adds: timed
    with torch.no_grad():
        first = layer(u)[0]
        assert len(measured) == 1 and set(calls) == set(METHODS)  # every method timed on the first call
        (entry,) = _mixing.choices()
        assert entry["method"] in METHODS and set(entry["time_us"]) == set(METHODS)
        assert (entry["H"], entry["batch"], entry["B*L"], entry["dtype"]) == (16, "1", "(128, 256]", "float32")
        assert entry["threads"] == torch.get_num_threads() and entry["device"] == "cpu"
        calls.clear()
        again = layer(u)[0]
        layer(make_input(1, 16, 250, 3))  # the same bucket of B*L: no new timing
        assert len(measured) == 1 and calls == [entry["method"]] * 2
        assert torch.equal(again, first)  # the first call's result is the chosen method's, bit for bit
        layer(make_input(2, 16, 100, 3))  # batch > 1: another key
        make_s4d(20, 4, 3)(make_input(1, 20, 200, 3))  # another H
        layer.double()(make_input(1, 16, 200, 3, torch.float64))  # another dtype
        assert len(measured) == 4 and len(_mixing.choices()) == 4
    monkeypatch.setenv(_mixing.ENV_VAR, entry["method"])
    with torch.no_grad():
        assert torch.equal(layer.float()(u)[0], first)


class _FakeClock:
    """A clock that only the fake methods advance: each call costs what ``cost(method, call number)`` says."""

    def __init__(self, cost):
        self.now, self.cost, self.calls = 0.0, cost, {}

    def perf_counter(self):
        return self.now

    def method(self, name):
        def run(w, y):
            n = self.calls[name] = self.calls.get(name, 0) + 1
            self.now += self.cost(name, n)
            return torch.full((1, 1, 1), float(METHODS.index(name)))
        return run


@pytest.mark.parametrize("case, expected", [
    ("conv1d twice as fast", "conv1d"),
    ("conv1d 3 % faster", "gemm"),  # within 5 %: the default stays
    ("conv1d fast in a third of the rounds", "gemm"),  # a low quartile from noise: beaten in most rounds
    ("baddbmm fast in most rounds", "baddbmm"),
])
def test_the_timing_rule(case, expected, monkeypatch):
    # The decision alone, on a fake clock: the lower quartile wins, unless the default is within 5 % of it or
    # the winner lost to the default in more than a third of the paired rounds.
    def cost(name, n):  # call 1 is the untimed warm-up
        if case == "conv1d twice as fast":
            return 1.0 if name == "conv1d" else 2.0
        if case == "conv1d 3 % faster":
            return 0.97 if name == "conv1d" else 1.0 if name == "gemm" else 3.0
        if case == "conv1d fast in a third of the rounds":
            return (0.5 if n % 3 == 0 else 1.5) if name == "conv1d" else 1.0 if name == "gemm" else 3.0
        return (0.5 if n % 4 else 1.5) if name == "baddbmm" else 1.0 if name == "gemm" else 3.0
    clock = _FakeClock(cost)
    monkeypatch.setattr(_mixing, "time", clock)
    for name in METHODS:
        monkeypatch.setitem(_mixing._FUNCS, name, clock.method(name))
    Wb = torch.zeros(4, 3)
    out = _mixing.measure(("test",), _mixing.MixWeights(folded=Wb), torch.ones(1, 3, 1))
    assert _mixing._choices[("test",)] == expected and out.item() == METHODS.index(expected)
    assert min(clock.calls.values()) == max(clock.calls.values()) >= 1 + _mixing._MIN_ROUNDS


def test_the_auto_choice_is_per_thread_count(monkeypatch):
    threads = torch.get_num_threads()
    layer = make_s4d(16, 4, 4)
    u = make_input(1, 16, 300, 4)
    try:
        with torch.no_grad():
            torch.set_num_threads(1)
            layer(u)
            torch.set_num_threads(2)
            layer(u)
    finally:
        torch.set_num_threads(threads)
    assert sorted(c["threads"] for c in _mixing.choices()) == [1, 2]


def test_the_default_runs_untimed_with_autograd_on_small_problems_and_while_compiling(monkeypatch):
    calls = _spy(monkeypatch)
    layer = make_s4d(5, 4, 5)  # eval, parameters require grad
    u = make_input(2, 5, 12, 5)
    layer(u)[0].sum().backward()
    assert calls == ["gemm"] and layer.output_linear[0].weight.grad is not None
    calls.clear()
    with torch.no_grad():
        assert layer(make_input(0, 5, 12, 5))[0].shape == (0, 5, 12)
        layer(make_input(1, 5, 12, 5))  # 720 multiply-adds: too small to time
        layer.train()(make_input(1, 5, 4000, 5))  # training: the module's own mixing path, never timed
    assert calls == ["gemm", "gemm"] and _mixing.choices() == []
    # While tracing or compiling the graph must not depend on a timing or the environment: gemm.
    monkeypatch.setenv(_mixing.ENV_VAR, "not-a-method")
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert _mixing.lookup(1, 5, 12, torch.float32, True, False) == ("gemm", None)


@pytest.mark.parametrize("method", METHODS)
def test_a_forced_method_backpropagates_in_eval(method, monkeypatch):
    monkeypatch.setenv(_mixing.ENV_VAR, method)
    layer = make_s4d(5, 4, 6, torch.float64)
    ref = copy.deepcopy(layer)
    u = make_input(2, 5, 12, 6, torch.float64)
    layer(u)[0].square().sum().backward()
    monkeypatch.setenv(_mixing.ENV_VAR, "gemm")
    ref(u)[0].square().sum().backward()
    for (name, p), q in zip(layer.named_parameters(), ref.parameters()):
        assert_close(p.grad, q.grad, torch.float64, what=f"grad of {name}")


# ----------------------------------------------------------------------------- the layers under each method
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pruned", PRUNE_FRACTIONS)
@pytest.mark.parametrize("method", METHODS + ["auto"])
def test_s4d_layer_under_each_method_matches_the_formula_and_the_reference_backend(method, pruned, dtype, monkeypatch):
    B, H, N, L = 2, 13, 8, 100
    layer = make_s4d(H, N, 7, dtype)
    active = some_channels(H, pruned, 7)
    layer.set_active_channels(active)
    u = make_input(B, H, L, 7, dtype)
    with torch.no_grad(), s4op_kernels.use_backend("reference"):
        reference = layer(u)[0]  # auto (the default path's timing for this key)
    monkeypatch.setenv(_mixing.ENV_VAR, method)
    with torch.inference_mode():
        y = layer(u)[0]
        y_t = _transposed_twin(layer)(u.transpose(1, 2).contiguous())[0]
    assert_close(y, s4d_layer64(layer, u, active), dtype)
    assert_close(y, reference, dtype, what="against the reference backend")
    assert_close(y_t.transpose(1, 2), s4d_layer64(layer, u, active), dtype, what="transposed=False")


def _transposed_twin(layer: S4DLayer) -> S4DLayer:
    twin = make_s4d(layer.d_model, layer.kernel.C.shape[1] * 2, 0, transposed=False)
    twin = twin.to(layer.D.dtype)
    twin.load_state_dict(layer.state_dict())
    return twin.eval()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
def test_s4_layer_under_each_method_matches_the_formula(method, dtype, monkeypatch):
    monkeypatch.setenv(_mixing.ENV_VAR, method)
    torch.manual_seed(8)
    H, N, L = 6, 8, 37
    layer = S4Layer(H, d_state=N).to(dtype).eval().set_active_channels([1, 2, 5])
    sd = {k: v.clone() for k, v in layer.state_dict().items()}
    u = torch.randn(3, H, L, dtype=dtype, generator=torch.Generator().manual_seed(8))
    with torch.inference_mode():
        assert_close(layer(u)[0], s4_layer64(sd, u, active=[1, 2, 5]), dtype)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", ["output_linear.0.weight", "output_linear.0.bias"])
def test_the_cached_weights_are_never_stale_under_each_method(method, name, monkeypatch):
    # A method that reads W and b separately reads forms derived from the snapshot's copy: an edit that
    # bypasses the version counter must still reach it, through the one exact check.
    monkeypatch.setenv(_mixing.ENV_VAR, method)
    layer = make_s4d(6, 4, 9).set_active_channels([0, 4])
    u = make_input(2, 6, 24, 9)
    with torch.inference_mode():
        before = layer(u)[0]
        assert layer._folded_cache is not None
    with torch.no_grad():
        layer.get_parameter(name).data.mul_(1.5)
    with torch.inference_mode():
        after = layer(u)[0]
        fresh = copy.deepcopy(layer)(u)[0]
    assert not torch.equal(before, fresh)
    assert torch.equal(after, fresh)
    assert_close(after, s4d_layer64(layer, u, [0, 4]), torch.float32)


# ----------------------------------------------------------------------------- the report
def test_info_reports_the_override_and_the_choices(monkeypatch):
    report = info.mixing_info()
    assert report["override"].startswith("auto") and "none timed" in report["chosen"]
    monkeypatch.setenv(_mixing.ENV_VAR, "conv1d")
    assert info.mixing_info()["override"].startswith("conv1d (forced by S4OP_MIXING)")
    monkeypatch.delenv(_mixing.ENV_VAR)
    entry = _mixing.measure_shape(3, 8, 20, torch.float64)
    assert entry["method"] in METHODS and entry["dtype"] == "float64" and entry["batch"] == ">1"
    report = info.collect()["output_mixing"]
    line = [v for k, v in report.items() if k.startswith("float64") and "H=8 B>1 B*L in (32, 64]" in k]
    assert len(line) == 1 and line[0].split()[0] == entry["method"] and "(timed: " in line[0]


def test_info_command_times_the_mixing_when_asked(tmp_path):
    r = subprocess.run([sys.executable, "-m", "s4op_kernels.info", "--mixing"], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for shape in ("H=256 B=1 B*L in (2048, 4096]", "H=128 B>1 B*L in (4096, 8192]", "H=32 B=1 B*L in (128, 256]"):
        lines = [ln for ln in r.stdout.splitlines() if shape in ln]
        assert len(lines) == 1 and re.search(rf"  ({'|'.join(METHODS)})  \(timed: ", lines[0]), r.stdout


@pytest.mark.parametrize("args, exc", [((0, 4, 4), ValueError), ((1, 4.0, 4), TypeError), ((1, 4, True), TypeError)])
def test_measure_shape_refuses_bad_sizes(args, exc):
    with pytest.raises(exc, match=r"measure_shape\((B|H|L)\)"):
        _mixing.measure_shape(*args)
    with pytest.raises(TypeError, match=r"measure_shape\(dtype\)"):
        _mixing.measure_shape(1, 2, 3, torch.float16)


# ----------------------------------------------------------------------------- the fused route's binding
def _glu_mix_args(B=2, H=3, K=3, L=7):
    from s4op_kernels import _ext
    C = _ext.C()
    W, b, y = _problem(B, H, L, torch.float32, seed=11)
    packed = np.empty(C.glu_mix_packed_size(H, K), np.float32)
    C.glu_mix_pack(W.numpy(), b.numpy(), packed)
    return C, W, b, y, packed


def test_glu_mix_accumulates_into_out_when_asked():
    C, W, b, y, packed = _glu_mix_args()
    base = torch.randn(2, 3, 7, generator=torch.Generator().manual_seed(2))
    out = base.clone()
    C.glu_mix(packed, y.numpy(), 3, out.numpy(), True, 1)
    assert_close(out, base.double().numpy() + mixing64(W, b, y), torch.float32, what="glu_mix accumulate")
    fresh = torch.full_like(base, float("nan"))
    C.glu_mix(packed, y.numpy(), 3, fresh.numpy(), False, 2)
    assert torch.allclose(out - base, fresh, atol=1e-6)


@pytest.mark.parametrize("case, exc, match", [
    ("y float64", TypeError, r"y: expected float32"),
    ("out shape", ValueError, r"out: expected shape \(2, 3, 7\)"),
    ("packed size", ValueError, r"packed: expected shape"),
    ("H", ValueError, r"H must be >= 1"),
    ("threads", ValueError, r"num_threads must be >= 1"),
    ("overlap", ValueError, r"out must not overlap y"),
    ("readonly", ValueError, r"out: must be writeable"),
])
def test_glu_mix_binding_refuses_bad_arguments_before_writing(case, exc, match):
    C, W, b, y, packed = _glu_mix_args()
    out = np.full((2, 3, 7), 5.0, np.float32)
    args = dict(packed=packed, y=y.numpy(), H=3, out=out, accumulate=False, num_threads=1)
    if case == "y float64":
        args["y"] = y.double().numpy()
    elif case == "out shape":
        args["out"] = np.zeros((2, 3, 6), np.float32)
    elif case == "packed size":
        args["packed"] = packed[:-1].copy()
    elif case == "H":
        args["H"] = 0
    elif case == "threads":
        args["num_threads"] = 0
    elif case == "overlap":
        args["out"] = args["y"]
    elif case == "readonly":
        out.setflags(write=False)
    with pytest.raises(exc, match=match):
        C.glu_mix(**args)
    assert (out == 5.0).all()


def test_glu_mix_pack_refuses_odd_rows_and_a_short_output():
    from s4op_kernels import _ext
    C = _ext.C()
    with pytest.raises(ValueError, match=r"W: expected shape \(2H, K\)"):
        C.glu_mix_pack(np.zeros((3, 2), np.float32), np.zeros(3, np.float32), np.zeros(64, np.float32))
    with pytest.raises(ValueError, match=r"out: expected shape"):
        C.glu_mix_pack(np.zeros((4, 2), np.float32), np.zeros(4, np.float32), np.zeros(3, np.float32))
