"""TaskDataset / TaskInfo: the common description every task's data shares."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from s4op_kernels.data.base import (DataFormatError, TaskDataset, TaskInfo, check_finite, decode_utf8, open_utf8,
                                    seeded_split, token_dtype)

TOK = TaskInfo(task="toy", num_classes=3, seq_len=5, vocab_size=20)
CONT = TaskInfo(task="toy", num_classes=2, seq_len=5, in_channels=2)


def test_tokens_stored_narrow_are_handed_out_as_int64():
    x = torch.randint(1, 20, (4, 5), generator=torch.Generator().manual_seed(0)).to(token_dtype(20))
    ds = TaskDataset(x, torch.tensor([0, 1, 2, 0]), TOK)
    assert ds.x.dtype == torch.int16 and ds.x.element_size() == 2
    xi, yi = ds[1]
    assert xi.dtype == torch.int64 and torch.equal(xi, x[1].long()) and int(yi) == 1
    xb, yb = ds[[0, 3]]  # batch fetch by index list, as the trainer does
    assert xb.dtype == torch.int64 and xb.shape == (2, 5)


def test_token_dtype_widens_for_large_vocabularies():
    assert token_dtype(257) == torch.int16 and token_dtype(32767) == torch.int16
    assert token_dtype(100_000) == torch.int64


def test_return_lengths_and_attributes():
    ds = TaskDataset(torch.randn(3, 5, 2), torch.tensor([0, 1, 1]), CONT, lengths=torch.tensor([5, 3, 1]),
                     return_lengths=True)
    x, y, n = ds[2]
    assert x.shape == (5, 2) and int(n) == 1
    assert (ds.num_classes, ds.seq_len, ds.multilabel, ds.vocab_size, ds.in_channels) == (2, 5, False, None, 2)


@pytest.mark.parametrize("x, info, match", [
    (torch.randn(3, 5), TOK, "integer dtype"),
    (torch.randint(0, 5, (3, 5, 1)), TOK, r"\(N, L\)"),
    (torch.randn(3, 5, 3), CONT, r"\(N, L, 2\)"),
])
def test_bad_inputs_are_refused(x, info, match):
    with pytest.raises(ValueError, match=match):
        TaskDataset(x, torch.zeros(3, dtype=torch.int64), info)


def test_taskinfo_needs_exactly_one_input_kind():
    with pytest.raises(ValueError, match="exactly one"):
        TaskInfo(task="t", num_classes=2, seq_len=3)
    with pytest.raises(ValueError, match="exactly one"):
        TaskInfo(task="t", num_classes=2, seq_len=3, vocab_size=4, in_channels=1)


def test_seeded_split_is_disjoint_complete_and_reproducible():
    tr, va = seeded_split(50, 0.2, seed=3)
    assert len(va) == 10 and set(tr.tolist()).isdisjoint(va.tolist()) and len(tr) + len(va) == 50
    tr2, va2 = seeded_split(50, 0.2, seed=3)
    assert torch.equal(va, va2) and not torch.equal(va, seeded_split(50, 0.2, seed=4)[1])
    with pytest.raises(ValueError, match="val_fraction"):
        seeded_split(10, 1.0, seed=0)


def test_check_finite_refuses_nan_inf_and_float32_overflow_naming_source_count_and_rows():
    x = np.zeros((10, 4, 2))  # float64, as a reader parses it
    x[3, 1, 0] = 1e308  # finite in float64, inf in float32
    x[7, 0, 1], x[7, 2, 0] = np.nan, -np.inf
    for i in range(10):
        x[i, 3, 1] = i  # the ordinary values are kept as they are
    with pytest.raises(DataFormatError) as e:
        check_finite(x, "part0.hdf5", rows=[f"{i} (exam {100 + i})" for i in range(10)], row_name="row")
    msg = str(e.value)
    assert e.value.path == "part0.hdf5" and e.value.line is None and isinstance(e.value, ValueError)
    assert msg.startswith("part0.hdf5: 3 non-finite values (1 NaN, 2 infinite")
    assert "in 2 rows (rows 3 (exam 103), 7 (exam 107))" in msg
    x[3, 1, 0] = x[7, 0, 1] = x[7, 2, 0] = 3.0e38  # within float32's range
    out = check_finite(x, "part0.hdf5")
    assert out.dtype == np.float32 and np.array_equal(out, x.astype(np.float32))


def test_check_finite_lists_the_first_rows_lines_and_allows_nan_when_told():
    x = torch.zeros(20, 3)
    x[2:14, 1] = float("inf")  # 12 records: the message counts all and names the first 5
    with pytest.raises(DataFormatError, match=r"12 non-finite values \(12 infinite.* in 12 records "
                                              r"\(records 2, 3, 4, 5, 6, \.\.\.\)"):
        check_finite(x, "f")
    series = [np.array([[1.0, np.nan]]), np.array([[np.inf, 2.0, 3.0]])]  # ragged records
    with pytest.raises(DataFormatError, match=r"f\.ts, line 12: 1 non-finite value \(1 infinite") as e:
        check_finite(series, "f.ts", rows=[11, 12], row_name="line", allow_nan=True)
    assert e.value.line == 12
    assert check_finite(series[:1], "f.ts", allow_nan=True)[0].dtype == np.float32  # NaN alone: allowed
    with pytest.raises(DataFormatError, match=r"1 non-finite value \(1 NaN\) in 1 record \(record 0\)"):
        check_finite(series[:1], "f.ts")


def test_utf8_helpers_name_the_line_of_bad_bytes(tmp_path):
    raw = "line one\nsecond: caf".encode() + b"\xe9" + b"\nthird\n"
    with pytest.raises(DataFormatError, match=r"f\.txt, line 2: bytes b'\\xe9' \(byte 12 of the line\) are not "
                                              r"valid UTF-8; the file must be UTF-8") as e:
        decode_utf8(raw, "f.txt")
    assert e.value.line == 2
    assert decode_utf8("é\n".encode(), "f.txt") == "é\n"
    path = tmp_path / "big.txt"
    path.write_bytes(b"ok\n" * 5000 + b"\xc3(\n" + b"ok\n" * 10)  # bad bytes far beyond the first read-ahead
    with pytest.raises(DataFormatError, match=r"big\.txt, line 5001: bytes b'\\xc3'") as e:
        with open_utf8(path) as f:
            for _ in f:
                pass
    assert e.value.path == str(path)
    with open_utf8(path) as f:
        assert f.readline() == "ok\n"  # reading only the good part is fine
