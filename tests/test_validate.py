"""_validate: one rule and one message format for argument checks across the package."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from s4op_kernels._validate import ArgumentTypeError, check_float, check_int


def test_check_int_accepts_integers_of_any_kind_and_refuses_bools_and_floats():
    assert check_int(3, "n") == 3 and check_int(np.int64(3), "n") == 3 and check_int(torch.tensor(3), "n") == 3
    for bad in (True, 3.0, "3", None):
        with pytest.raises(ArgumentTypeError, match=r"f\(n\): expected an integer >= 1, got"):
            check_int(bad, "n", func="f", minimum=1)
    err = pytest.raises(TypeError, check_int, 2.5, "n").value
    assert isinstance(err, ValueError)  # a wrong type is also an invalid value, for callers catching either


def test_check_int_bounds():
    with pytest.raises(ValueError, match=r"allocate\(H\): expected an integer >= 1, got 0"):
        check_int(0, "H", func="allocate", minimum=1)
    with pytest.raises(ValueError, match=r"seed: expected an integer in \[0, 9\], got 10"):
        check_int(10, "seed", minimum=0, maximum=9)
    assert check_int(2**70, "big") == 2**70


def test_check_float():
    assert check_float(1, "p") == 1.0 and check_float(np.float32(0.5), "p") == 0.5
    with pytest.raises(ArgumentTypeError, match=r"S4DLayer\(dropout\): expected a finite number >= 0.0 and < 1.0"):
        check_float(True, "dropout", func="S4DLayer", minimum=0.0, maximum=1.0, max_open=True)
    for bad in (1.0, -0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="dropout"):
            check_float(bad, "dropout", minimum=0.0, maximum=1.0, max_open=True)
    with pytest.raises(ValueError, match=r"lr: expected a finite number > 0.0, got 0.0"):
        check_float(0.0, "lr", minimum=0.0, min_open=True)
