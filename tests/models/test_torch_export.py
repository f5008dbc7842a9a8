"""``torch.export.export`` of classifiers with our layers: the exported program runs and matches the eager model
(issue 16), for S4D and S4, pruned and compacted, continuous and token inputs, with a dynamic batch.

Exported in grad mode (the default), the layers take their training path: the reference ops, kernels generated
from the parameters in the graph.  Exported under ``torch.no_grad()`` / ``inference_mode`` the graph keeps our
custom ops (``s4op::s4d_kernel`` / ``s4op::dplr_spectrum``, ``s4op::sparse_fftconv``, through their fakes).  While
exporting, the layers bypass their inference caches (a cached tensor would be traced as a constant), S4 uses the
kernel length C-tilde was set up for by an eager forward (its ``l_kernel`` buffer is a fake tensor there), and
the token encoder does not branch on the batch size (which would fix the dynamic batch)."""

from __future__ import annotations

import pytest
import torch

from factories import KINDS, expected64, inputs, make_model
from tolerances import assert_close

CASES = {  # name -> (kind, rate, compact)
    "ecg-dense": ("ecg-layer-postnorm", 0.0, False),
    "ecg-pruned50-compact": ("ecg-layer-postnorm", 0.5, True),
    "tokens-pruned90": ("tokens-batch-prenorm", 0.9, False),
}


def _mode_context(mode):
    return {"grad": torch.enable_grad, "no_grad": torch.no_grad, "inference": torch.inference_mode}[mode]()


@pytest.mark.parametrize("mode", ["grad", "no_grad", "inference"])
@pytest.mark.parametrize("layer", ["s4d", "s4"])
@pytest.mark.parametrize("case", list(CASES))
def test_exported_program_runs_and_matches_the_eager_model(case, layer, mode):
    kind, rate, compact = CASES[case]
    info, kw = KINDS[kind]
    model = make_model(info, layer=layer, rate=rate, compact=compact, **kw)
    L = info.seq_len
    with torch.no_grad():
        model(inputs(info, 1, L))  # S4: C-tilde set up for L by an eager forward, as before any deployment
    batch = torch.export.Dim("batch")
    with _mode_context(mode):
        program = torch.export.export(model, (inputs(info, 2, L),), dynamic_shapes=({0: batch},))
    ops = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    if mode != "grad":  # the inference path: our custom ops, not the reference's FFTs
        assert any(op.startswith("s4op.") for op in ops), sorted(ops)
    exported = program.module()
    for B in (1, 3):
        x = inputs(info, B, L, seed=B)
        with torch.no_grad():
            out = exported(x)
            eager = model(x)
        assert_close(out, expected64(model, x), torch.float32, what=f"exported B={B}")
        assert_close(out, eager, torch.float32, what=f"exported B={B} vs eager")
