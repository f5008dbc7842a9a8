"""TaskDataset / TaskInfo: the common description every task's data shares."""

from __future__ import annotations

import pytest
import torch

from s4op_kernels.data.base import TaskDataset, TaskInfo, seeded_split, token_dtype

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
