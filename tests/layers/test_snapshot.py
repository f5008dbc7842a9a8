"""TensorSnapshot (layers/_snapshot.py): the exact check behind the layers' inference caches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from s4op_kernels import _ext
from s4op_kernels.layers import _snapshot
from s4op_kernels.layers._snapshot import TensorSnapshot


def _params(seed: int) -> list[nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [nn.Parameter(torch.randn(6, generator=g)), nn.Parameter(torch.randn(6, 3, 2, generator=g))]


def _edit_data_mul(p):
    p.data.mul_(3.0)


def _edit_data_copy(p):
    p.data.copy_(torch.full_like(p, 0.25))


def _edit_ema(p):
    p.data.mul_(0.9).add_(torch.ones_like(p), alpha=0.1)


def _edit_one_element(p):
    p.data.view(-1)[-1] += 1.0


def _edit_numpy(p):
    p.detach().numpy().reshape(-1)[0] *= -2.0


def _edit_versioned(p):
    with torch.no_grad():
        p.add_(1.0)


def _edit_new_storage(p):
    p.data = p.data + 0.0 + 1.0


def _edit_reshaped_view(p):
    p.data = p.data.reshape(-1) if p.dim() > 1 else p.data.reshape(2, -1)  # same bytes, other shape


def _edit_reinterpreted(p):
    p.requires_grad_(False)  # as a buffer (lr=0 SSM tensors): an int dtype is refused on a trainable parameter
    p.data = p.data.view(torch.int32)  # same bytes and shape, other dtype


EDITS = [_edit_data_mul, _edit_data_copy, _edit_ema, _edit_one_element, _edit_numpy, _edit_versioned,
         _edit_new_storage, _edit_reshaped_view, _edit_reinterpreted]


@pytest.fixture(params=["same_bytes", "torch_equal"])
def path(request, monkeypatch):
    """Both comparisons: the compiled memcmp and the pure-torch fallback (no extension)."""
    if request.param == "torch_equal":
        monkeypatch.setattr(_snapshot._ext, "extension_available", lambda: False)
    elif not _ext.extension_available():
        pytest.skip(f"compiled extension unavailable: {_ext.unavailable_reason()}")
    return request.param


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("edit", EDITS, ids=lambda f: f.__name__[len("_edit_"):])
def test_any_edit_of_any_source_is_seen(path, edit, which):
    params = _params(1)
    snap = TensorSnapshot(params)
    assert (snap._copy_views is not None) == (path == "same_bytes")
    assert snap.matches(params)
    edit(params[which])
    assert not snap.matches(params)


def test_unchanged_sources_match_under_every_mode(path):
    params = _params(2)
    snap = TensorSnapshot(params)
    with torch.inference_mode():
        assert snap.matches(params)
    with torch.no_grad():
        params[0].mul_(1.0)  # a version bump, the same bytes: still valid
    assert snap.matches(params)
    assert not snap.matches(params[:1])
    assert not snap.matches([params[0], params[1].detach().clone()])  # equal values elsewhere: not the source


def test_copies_are_independent_normal_tensors(path):
    params = _params(3)
    with torch.inference_mode():
        snap = TensorSnapshot(params)
    for p, c in zip(params, snap.copies):
        assert torch.equal(p.detach(), c) and not c.is_inference() and not c.requires_grad
        assert c.data_ptr() != p.data_ptr()
    params[0].data.zero_()
    assert not torch.equal(params[0].detach(), snap.copies[0])


def test_inference_tensors_and_non_contiguous_sources():
    with torch.inference_mode():
        t = torch.randn(4, 5)
    snap = TensorSnapshot([t])
    assert snap.matches([t])
    with torch.inference_mode():
        t.add_(1.0)
    assert not snap.matches([t])
    s = torch.randn(5, 4).t()  # non-contiguous: the torch.equal comparison
    snap = TensorSnapshot([s])
    assert snap._copy_views is None and snap.matches([s])
    s.data.mul_(2.0)
    assert not snap.matches([s])


def test_copies_inside_a_larger_tensor(path):
    # The folded [W | b] of the output mixing is itself the copy of W and b: no second copy is kept.
    W, b = nn.Parameter(torch.randn(6, 3, 1)), nn.Parameter(torch.randn(6))
    Wb = torch.cat([W.detach().squeeze(-1), b.detach().unsqueeze(1)], dim=1)
    snap = TensorSnapshot((W, b), copies=(Wb[:, :3].view(W.shape), Wb[:, 3]))
    assert (snap._copy_views is not None) == (path == "same_bytes")
    assert snap.matches((W, b)) and snap.copies[0].data_ptr() == Wb.data_ptr()
    b.data[-1] += 1.0
    assert not snap.matches((W, b))
    b.data[-1] -= 1.0
    W.data[2, 1, 0] = -W.data[2, 1, 0] - 1.0
    assert not snap.matches((W, b))
    with pytest.raises(ValueError, match="one copy per tensor"):
        TensorSnapshot((W, b), copies=(Wb[:, :3], Wb[:, 3]))  # W's copy without its trailing dimension


@pytest.mark.skipif(not _ext.extension_available(), reason="compiled extension unavailable")
def test_same_bytes_binding():
    same = _ext.C().same_bytes
    a = np.arange(48, dtype=np.uint8).reshape(4, 12)
    assert same([a, a[:1]], [a.copy(), a[:1].copy()])
    assert same([], [])
    assert not same([a], [])
    assert not same([a], [a[:3].copy()])
    b = a.copy()
    b[-1, -1] ^= 1
    assert not same([a], [b])
    wide = np.zeros((4, 20), dtype=np.uint8)
    wide[:, :12] = a
    assert same([a], [wide[:, :12]])  # rows inside a larger matrix: compared row by row
    wide[3, 11] ^= 1
    assert not same([a], [wide[:, :12]])
    with pytest.raises(TypeError, match="numpy arrays"):
        same([a], [a.tolist()])
    for bad in (a.reshape(-1), a[:, ::2], a.astype(np.float32)):
        with pytest.raises(ValueError, match="2-D uint8 arrays with contiguous rows"):
            same([bad], [bad.copy()])
