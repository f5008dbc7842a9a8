"""Exact snapshots of the tensors a cached value is computed from: the layers' inference caches.

A layer in inference caches what it derives from its parameters (the kernel spectra of the active channels,
the folded output weights).  Such a value is valid exactly when every tensor it came from still holds the
bytes it held when the value was built, however the tensor changed: an optimizer step, ``load_state_dict``,
an in-place edit through ``.data`` (which bypasses the autograd version counter, so no token of versions can
see it), ``.data = other``, weight surgery, another thread.  So the check compares contents, not versions:

1. :class:`TensorSnapshot` copies the sources' bytes *first*;
2. the cached value is then built from the copies, so it is exactly a function of what the snapshot holds,
   even if a source changes while it is being built (a token taken after the build could record the new
   state next to a value computed from the old one, and stay stale forever);
3. every lookup (:meth:`TensorSnapshot.matches`) checks that each source still views the same memory the
   same way (``Tensor.is_set_to``: storage, offset, sizes, strides; and its dtype), then compares its bytes
   with the copy's (``_C.same_bytes``: one
   ``memcmp`` per tensor, holding the GIL; ``torch.equal`` where the compiled core is missing or the
   tensors are not contiguous CPU tensors).

Cost: one copy of the source tensors per cached value, and a comparison of their bytes per lookup (measured
in benchmarks/RESULTS.md).  The snapshot holds views of the sources' storages, so their memory cannot be
reused by other tensors while the snapshot lives.
"""

from __future__ import annotations

import operator
from typing import Optional, Sequence

import numpy as np

import torch

from s4op_kernels import _ext

_is_set_to = torch.Tensor.is_set_to
_dtype = operator.attrgetter("dtype")


class TensorSnapshot:
    """Copies of ``tensors`` (in order) and the check that the same tensors still hold exactly those bytes.

    ``copies`` are detached tensors of the sources' shapes and dtypes, built as normal tensors even under
    ``inference_mode`` (a cached value outlives the call): clones by default, or, given, tensors the caller
    has just copied the sources into, which may be views into one larger tensor (the folded ``[W | b]`` of
    the output mixing holds W and b, so it needs no second copy).  Compute the cached value from
    ``copies``, never from the sources.
    """

    __slots__ = ("copies", "_aliases", "_dtypes", "_views", "_copy_views", "_same_bytes")

    def __init__(self, tensors: Sequence[torch.Tensor], copies: Optional[Sequence[torch.Tensor]] = None):
        with torch.inference_mode(False), torch.no_grad():
            # The aliases pin each source's storage, offset, sizes and strides as they are now, even if
            # ``.data`` is reassigned meanwhile; the copies are what the cached value is built from.
            self._aliases = tuple(t.detach() for t in tensors)
            if copies is None:
                copies = tuple(a.clone(memory_format=torch.contiguous_format) for a in self._aliases)
            elif len(copies) != len(self._aliases) or any(
                    c.shape != a.shape or c.dtype != a.dtype for a, c in zip(self._aliases, copies)):
                raise ValueError("TensorSnapshot(copies): expected one copy per tensor, of its shape and dtype")
            self.copies = tuple(c.detach() for c in copies)
        self._dtypes = [a.dtype for a in self._aliases]
        self._copy_views = None
        if _ext.extension_available():
            views = [_byte_rows(t) for t in self._aliases + self.copies]
            if all(v is not None for v in views):
                n = len(self._aliases)
                self._views, self._copy_views = views[:n], views[n:]
                self._same_bytes = _ext.C().same_bytes

    def matches(self, tensors: Sequence[torch.Tensor]) -> bool:
        """True iff ``tensors`` (the same list the snapshot was taken of) still hold the snapshot's bytes."""
        # is_set_to: the same storage, offset, sizes and strides, in one call (.data = other changes them
        # without a version bump); then the dtypes.  map() keeps the per-tensor Python overhead down: this runs
        # on every inference forward.
        if len(tensors) != len(self._aliases) or not all(map(_is_set_to, tensors, self._aliases)):
            return False
        if list(map(_dtype, tensors)) != self._dtypes:
            return False
        if self._copy_views is not None:
            return self._same_bytes(self._views, self._copy_views)
        # NaN never equals itself here, which only costs a rebuild.
        return all(torch.equal(a, c) for a, c in zip(self._aliases, self.copies))


def _byte_rows(t: torch.Tensor) -> Optional[np.ndarray]:
    """A (rows, bytes per row) uint8 NumPy view of CPU tensor ``t`` (one row per leading index), for
    ``_C.same_bytes``; None where no such view exists (another device, rows that are not contiguous)."""
    if t.device.type != "cpu":
        return None
    rows = t.shape[0] if t.dim() else 1
    if t.numel() == 0:
        return np.zeros((rows, 0), dtype=np.uint8)
    try:
        m = t.view(rows, t.numel() // rows)
        if m.shape[1] == 1:
            m = m.as_strided(m.shape, (m.stride(0), 1))  # a column: stride 1 within its one-element rows
        return m.view(torch.uint8).numpy()  # any dtype, bfloat16 included, which NumPy lacks
    except RuntimeError:
        return None
