"""s4d_kernel: the reference against the float64 formula, for every dtype and the shared shapes."""

from __future__ import annotations

import pytest
import torch

import s4op_kernels
from s4op_kernels.ops import dispatch, s4d_kernel, s4d_kernel_ref
from factories import make_s4d
from formulas import s4d_kernel64
from shapes import LAYER_SHAPES
from tolerances import assert_close


@pytest.mark.parametrize("backend", dispatch.backends_for("cpu"))  # the tests' tensors are on the CPU
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("shape", LAYER_SHAPES)
@pytest.mark.parametrize("seed", [0], ids=["seed0"])
def test_kernel_matches_formula(backend, shape, dtype, seed):
    _, H, N, L = shape
    k = make_s4d(H, N, seed, dtype).kernel
    with torch.no_grad(), s4op_kernels.use_backend(backend):
        K = s4d_kernel(k.C, k.log_dt, k.log_A_real, k.A_imag, L)
    assert K.shape == (H, L) and K.dtype == dtype
    assert_close(K, s4d_kernel64(k.C, k.log_dt, k.log_A_real, k.A_imag, L), dtype, what="kernel")


def test_kernel_of_no_rows_is_empty():
    k = make_s4d(3, 4, 0).kernel
    K = s4d_kernel_ref(k.C[:0], k.log_dt[:0], k.log_A_real[:0], k.A_imag[:0], 7)
    assert K.shape == (0, 7)


@pytest.mark.parametrize("moved", ["C", "log_dt", "log_A_real", "A_imag"])
def test_mixed_devices_are_an_error_in_the_op_itself(moved):
    k = make_s4d(3, 4, 1).kernel
    args = {name: getattr(k, name).detach() for name in ("C", "log_dt", "log_A_real", "A_imag")}
    args[moved] = args[moved].to("meta")
    # A meta C is refused by torch itself before any kernel runs; any other meta argument by the op.
    exc, match = ((RuntimeError, ValueError), "device") if moved == "C" else (ValueError, f"{moved} is on meta")
    with pytest.raises(exc, match=match):
        torch.ops.s4op.s4d_kernel(args["C"], args["log_dt"], args["log_A_real"], args["A_imag"], 5)
    with pytest.raises(exc, match=match):
        s4d_kernel(args["C"], args["log_dt"], args["log_A_real"], args["A_imag"], 5)
