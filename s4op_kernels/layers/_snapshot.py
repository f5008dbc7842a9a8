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

from typing import Sequence

import torch

from s4op_kernels import _ext


class TensorSnapshot:
    """Copies of ``tensors`` (in order) and the check that the same tensors still hold exactly those bytes.

    ``copies`` are detached, contiguous tensors, built as normal tensors even under ``inference_mode`` (a
    cached value outlives the call).  Compute the cached value from ``copies``, never from the sources.
    """

    __slots__ = ("copies", "_aliases", "_views", "_copy_views", "_same_bytes")

    def __init__(self, tensors: Sequence[torch.Tensor]):
        with torch.inference_mode(False), torch.no_grad():
            # The aliases pin each source's storage, offset, sizes and strides as they are now, even if
            # ``.data`` is reassigned meanwhile; the copies are what the cached value is built from.
            self._aliases = tuple(t.detach() for t in tensors)
            self.copies = tuple(a.clone(memory_format=torch.contiguous_format) for a in self._aliases)
        self._copy_views = None
        if _ext.extension_available() and all(a.device.type == "cpu" and a.is_contiguous() for a in self._aliases):
            # Byte views (any dtype, bfloat16 included, which NumPy lacks).
            self._views = [a.reshape(-1).view(torch.uint8).numpy() for a in self._aliases]
            self._copy_views = [c.reshape(-1).view(torch.uint8).numpy() for c in self.copies]
            self._same_bytes = _ext.C().same_bytes

    def matches(self, tensors: Sequence[torch.Tensor]) -> bool:
        """True iff ``tensors`` (the same list the snapshot was taken of) still hold the snapshot's bytes."""
        if len(tensors) != len(self._aliases):
            return False
        for x, a in zip(tensors, self._aliases):
            # is_set_to: the same storage, offset, sizes and strides (one call; .data = other changes them).
            if not x.is_set_to(a) or x.dtype != a.dtype:
                return False
        if self._copy_views is not None:
            return self._same_bytes(self._views, self._copy_views)
        # NaN never equals itself here, which only costs a rebuild.
        return all(torch.equal(a, c) for a, c in zip(self._aliases, self.copies))
