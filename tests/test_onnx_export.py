"""The ONNX export (s4op_kernels/onnx_export.py) against the PyTorch classifier evaluated in float64, run by ONNX
Runtime: every kind of task (continuous multi-label, continuous multi-class with BatchNorm, tokens with padding;
prenorm and postnorm), S4D and S4, pruning 0 / 50 / 90 % / all but one / none kept, compacted, both forms of the
convolution, opsets 17 and 20, batch 1 and > 1; that pruned channels cost no compute in the graph (its per-layer
sizes are proportional to the active count); the fixed length and batch; the model left unchanged; a checkpoint;
``s4op export --format onnx``; bad arguments."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from factories import ECG, KINDS, RATES, TOKENS, expected64, inputs, make_model
from s4op_kernels.checkpoint import CheckpointError, save_checkpoint
from s4op_kernels.models import SequenceClassifier, build_model, get_config
from tolerances import assert_close

onnx = pytest.importorskip("onnx", reason="ONNX export tests need onnx: pip install \"s4op-kernels[onnx]\"")
ort = pytest.importorskip("onnxruntime", reason="ONNX export tests need onnxruntime: pip install \"s4op-kernels[onnx]\"")

from s4op_kernels.onnx_export import (  # noqa: E402  (after the skips: the module needs onnx)
    DEFAULT_OPSET, MIN_OPSET, block_size, export_onnx, fft_length, onnx_model,
)


def session(model_or_path) -> "ort.InferenceSession":
    blob = model_or_path.SerializeToString() if isinstance(model_or_path, onnx.ModelProto) else str(model_or_path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1  # the test machine is shared
    return ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"])


def run(sess, x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(sess.run(None, {"x": x.numpy()})[0])


# ---------------------------------------------------------------------------------------------- equality
@pytest.mark.parametrize("layer", ["s4d", "s4"])
@pytest.mark.parametrize("rate", list(RATES.values()), ids=list(RATES))
@pytest.mark.parametrize("kind", list(KINDS))
def test_onnx_runtime_matches_pytorch(tmp_path, kind, rate, layer):
    info, kw = KINDS[kind]
    model = make_model(info, layer=layer, rate=rate, compact=rate == 0.5, **kw)
    path = tmp_path / "m.onnx"
    res = export_onnx(model, path, seq_len=info.seq_len)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    assert res["conv"] == "direct" and res["batch"] is None and res["seq_len"] == info.seq_len
    assert res["active_channels"] == [layer.num_active for layer in model.ssm_layers()]
    sess = session(path)
    for B in (1, 3):  # one graph, any batch
        x = inputs(info, B, info.seq_len, seed=B)
        out = run(sess, x)
        assert_close(out, expected64(model, x), torch.float32, what=f"ONNX logits B={B}")
        with torch.no_grad():
            assert_close(out, model(x), torch.float32, what=f"ONNX logits B={B} vs the float32 model")


@pytest.mark.parametrize("opset", [MIN_OPSET, DEFAULT_OPSET])
@pytest.mark.parametrize("conv", ["direct", "fft"])
@pytest.mark.parametrize("layer", ["s4d", "s4"])
@pytest.mark.parametrize("rate", [0.0, 0.5, 0.9], ids=["rate0", "rate50", "rate90"])
def test_both_convolution_forms_and_opsets(rate, layer, conv, opset):
    info, kw = KINDS["tokens-batch-prenorm" if layer == "s4" else "ecg-layer-postnorm"]
    model = make_model(info, layer=layer, rate=rate, **kw)
    m = onnx_model(model, seq_len=info.seq_len, conv=conv, opset=opset)
    ops = {n.op_type for n in m.graph.node}
    assert m.opset_import[0].version == opset
    assert ("DFT" in ops) == (conv == "fft") and "Conv" not in ops
    assert ("Gelu" in ops) == (opset >= 20) and ("Erf" in ops) == (opset < 20)
    x = inputs(info, 2, info.seq_len)
    assert_close(run(session(m), x), expected64(model, x), torch.float32, what=f"{conv} opset {opset}")


def test_long_input_and_s4_kernel_set_up_on_a_copy():
    """L above the direct form's one-block size (several blocks, L not a multiple of the block); an S4 model
    whose C-tilde was set up for a shorter input by an earlier forward: the export sets it up for L on a
    copy and leaves the model as it was."""
    L = 150
    for layer in ("s4d", "s4"):
        model = make_model(ECG, layer=layer, rate=0.5)
        with torch.no_grad():
            model(inputs(ECG, 1, 20))  # S4: l_kernel = 20
        state = copy.deepcopy(model.state_dict())
        assert L % block_size(L) != 0 and L > block_size(L)
        for conv in ("direct", "fft"):
            m = onnx_model(model, seq_len=L, conv=conv)
            x = inputs(ECG, 2, L)
            assert_close(run(session(m), x), expected64(model, x), torch.float32, what=f"{layer} {conv} L={L}")
        after = model.state_dict()
        assert state.keys() == after.keys() and all(torch.equal(state[k], after[k]) for k in state)


def test_token_ids_all_padding_pool_to_zeros_like_the_model():
    model = make_model(TOKENS, rate=0.5, norm="layer", prenorm=True)
    x = inputs(TOKENS, 3, TOKENS.seq_len)
    x[1] = 0  # every position padding: the mean is over no position
    assert_close(run(session(onnx_model(model, seq_len=TOKENS.seq_len)), x), expected64(model, x), torch.float32)


def test_a_module_in_training_mode_exports_its_eval_computation():
    info, kw = KINDS["ucr-batch-postnorm"]  # BatchNorm: batch statistics in training, running ones in eval
    model = make_model(info, rate=0.5, **kw).train()
    m = onnx_model(model, seq_len=info.seq_len)
    assert model.training  # the module is left as it was
    x = inputs(info, 3, info.seq_len)
    assert_close(run(session(m), x), expected64(model.eval(), x), torch.float32)


# ---------------------------------------------------------------------------------------------- no compute for pruned
def _shapes(m) -> dict[str, list]:
    """Every node output's inferred shape (symbolic dims as their names)."""
    inferred = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    out = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        out[vi.name] = [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]
    return out


@pytest.mark.parametrize("conv", ["direct", "fft"])
def test_per_layer_convolution_sizes_are_proportional_to_the_active_count(conv):
    """Layers with 10, 5, 1 and 0 of 10 channels active: the kernels (or spectra) initializer, the convolution's
    batch dimension (the MatMul's or the DFT's) and so its work are A / H of the dense layer's; the layer with
    no active channel has no convolution; the mixing stays H x 2H (it acts on all channels, as in the model)."""
    model = SequenceClassifier(ECG.num_classes, in_channels=2, d_model=10, n_layers=4, d_state=8).eval()
    active = [10, 5, 1, 0]
    for layer, a in zip(model.ssm_layers(), active):
        layer.set_active_channels(range(0, 10, 10 // a) if a else [])
        assert layer.num_active == a
    L, H = ECG.seq_len, 10
    m = onnx_model(model, seq_len=L, conv=conv)
    inits = {t.name: list(t.dims) for t in m.graph.initializer}
    shapes = _shapes(m)
    nodes = {n.name: n for n in m.graph.node}
    work = []
    for i, a in enumerate(active):
        p = f"layers.{i}."
        assert inits[p + "mix.weight"] == [H, 2 * H]
        if a == 0:
            assert not any(name.startswith(p + "conv") or name.startswith(p + "fft") for name in nodes)
            assert p + "gather" not in nodes and not any(k.startswith(p + "conv") for k in inits)
            work.append(0)
            continue
        if a < H:
            split = onnx.numpy_helper.to_array(next(t for t in m.graph.initializer if t.name == p + "split.sizes"))
            assert split.tolist() == [a, H - a]
        if conv == "direct":
            c = block_size(L)
            nb = math.ceil(L / c)
            assert inits[p + "conv.kernels"] == [a, L + 1]  # the kernels with a zero tap in front
            assert shapes[p + "conv.matmul"] == ["batch", a, nb, c]
            assert shapes[p + "conv.rows"] == ["batch", a, nb, nb * c]
            work.append(a * nb * nb * c * c)  # multiply-adds per example
        else:
            n = fft_length(L, L)
            assert inits[p + "fft.kernel_re"] == [a, n, 2] and inits[p + "fft.kernel_im"] == [a, n, 2]
            for name in ("fft.forward", "fft.inverse"):
                assert shapes[p + name] == ["batch", a, n, 2]
            work.append(a * n)  # signals x length of the DFTs
    assert [w / work[0] for w in work] == [a / H for a in active]


# ---------------------------------------------------------------------------------------------- the graph's contract
def test_fixed_batch_and_length_are_declared_and_enforced(tmp_path):
    model = make_model(ECG, rate=0.5)
    res = export_onnx(model, tmp_path / "m.onnx", seq_len=ECG.seq_len, batch=2)
    m = onnx.load(tmp_path / "m.onnx")
    dims = lambda vi: [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]  # noqa: E731
    assert m.graph.input[0].name == "x" and dims(m.graph.input[0]) == [2, ECG.seq_len, 2]
    assert m.graph.output[0].name == "logits" and dims(m.graph.output[0]) == [2, ECG.num_classes]
    assert res["batch"] == 2
    sess = session(tmp_path / "m.onnx")
    x = inputs(ECG, 2, ECG.seq_len)
    assert_close(run(sess, x), expected64(model, x), torch.float32)
    for bad in (inputs(ECG, 3, ECG.seq_len), inputs(ECG, 2, ECG.seq_len - 1)):
        with pytest.raises(Exception, match="dimension"):  # ONNX Runtime refuses another batch or length
            run(sess, bad)
    dynamic = onnx_model(model, seq_len=ECG.seq_len)
    assert dims(dynamic.graph.input[0]) == ["batch", ECG.seq_len, 2]
    props = {p.key: p.value for p in dynamic.metadata_props}
    assert props["s4op.seq_len"] == str(ECG.seq_len) and props["s4op.multilabel"] == "0"
    assert props["s4op.active_channels"] == ",".join(str(layer.num_active) for layer in model.ssm_layers())


def _checkpoint(tmp_path):
    """A saved 2 x 8 ecg-embedded-shaped model with 2 of 8 channels active per layer: (stem, model)."""
    config = get_config("ecg-embedded").replace(n_layers=2, d_model=8, d_state=4)
    model = build_model(config, ECG, seed=0).eval()
    for layer in model.ssm_layers():
        layer.set_active_channels([1, 6])
    save_checkpoint(tmp_path / "rate_75", model, config=config, task_info=ECG)
    return str(tmp_path / "rate_75"), model


def test_export_of_a_checkpoint_uses_its_task(tmp_path):
    ckpt, model = _checkpoint(tmp_path)
    res = export_onnx(ckpt, tmp_path / "m.onnx")
    assert res["seq_len"] == ECG.seq_len and res["active_channels"] == [2, 2] and res["channels"] == [8, 8]
    props = {p.key: p.value for p in onnx.load(tmp_path / "m.onnx").metadata_props}
    assert props["s4op.multilabel"] == "1"  # from the checkpoint's task
    x = inputs(ECG, 2, ECG.seq_len)
    assert_close(run(session(tmp_path / "m.onnx"), x), expected64(model, x), torch.float32)


def test_cli_export_format_onnx(tmp_path, capsys):
    from s4op_kernels.app import cli

    ckpt, model = _checkpoint(tmp_path)
    out = tmp_path / "m.onnx"
    assert cli.main(["export", ckpt, "--format", "onnx", "-o", str(out), "--conv", "fft", "--opset", "18"]) == 0
    text = capsys.readouterr().out
    assert f"wrote {out}" in text and "4 of 16 SSM operators active" in text and "any batch" in text
    assert "input length 40" in text and "opset 18" in text and "convolution: fft" in text
    x = inputs(ECG, 2, ECG.seq_len)
    assert_close(run(session(out), x), expected64(model, x), torch.float32)
    assert cli.main(["export", ckpt, "--format", "onnx", "-o", str(out), "--seq-len", "64", "--batch", "2"]) == 0
    assert "input length 64, batch 2" in capsys.readouterr().out
    x = inputs(ECG, 2, 64)
    assert_close(run(session(out), x), expected64(model, x), torch.float32)
    # bad combinations are usage errors (status 2) that say what to do
    for argv, expected in (
        (["--format", "onnx", "-o", str(tmp_path / "a.onnx"), "--max-len", "64"], "--seq-len"),
        (["-o", str(tmp_path / "a.s4m"), "--opset", "18"], "--format onnx"),
        (["-o", str(tmp_path / "a.s4m"), "--seq-len", "64"], "--format onnx"),
        (["--format", "onnx", "-o", str(tmp_path / "a.s4m")], "ends in .s4m"),
        (["-o", str(tmp_path / "a.onnx")], "ends in .onnx"),
        (["--format", "onnx", "-o", str(tmp_path)], "is a folder"),
    ):
        assert cli.main(["export", ckpt, *argv]) == 2, argv
        assert expected in capsys.readouterr().err
    # a bad value the library refuses (status 1, named), a missing checkpoint; the default format is still .s4m
    assert cli.main(["export", ckpt, "--format", "onnx", "-o", str(tmp_path / "b.onnx"), "--opset", "16"]) == 1
    assert "export_onnx(opset)" in capsys.readouterr().err
    assert cli.main(["export", str(tmp_path / "nothing"), "--format", "onnx", "-o", str(tmp_path / "b.onnx")]) == 1
    assert "nothing" in capsys.readouterr().err
    assert not (tmp_path / "b.onnx").exists()
    assert cli.main(["export", ckpt, "-o", str(tmp_path / "m.s4m")]) == 0
    assert (tmp_path / "m.s4m").read_bytes()[:8] == b"S4OPMDL\0"


def test_bad_arguments_are_refused_with_their_names(tmp_path):
    model = make_model(ECG, rate=0.5)
    path = tmp_path / "m.onnx"
    latest = onnx.defs.onnx_opset_version()
    cases = [
        (dict(seq_len=None), ValueError, "seq_len"),
        (dict(seq_len=0), ValueError, r"export_onnx\(seq_len\)"),
        (dict(seq_len=4.0), TypeError, r"export_onnx\(seq_len\)"),
        (dict(batch=0), ValueError, r"export_onnx\(batch\)"),
        (dict(opset=MIN_OPSET - 1), ValueError, r"export_onnx\(opset\)"),
        (dict(opset=latest + 1), ValueError, r"export_onnx\(opset\)"),
        (dict(conv="winograd"), ValueError, r"export_onnx\(conv\)"),
    ]
    for kw, err, match in cases:
        kw = {"seq_len": ECG.seq_len, **kw}
        with pytest.raises(err, match=match):
            export_onnx(model, path, **kw)
    with pytest.raises(TypeError, match="export_onnx\\(model\\)"):
        export_onnx(42, path, seq_len=8)
    with pytest.raises(TypeError, match="SequenceClassifier"):
        export_onnx(model.ssm_layers()[0], path, seq_len=8)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        export_onnx(model, tmp_path, seq_len=8)
    with pytest.raises(CheckpointError, match="no-such-checkpoint"):
        export_onnx(tmp_path / "no-such-checkpoint", path)
    odd = copy.deepcopy(model)
    odd.blocks[0].norm = torch.nn.GroupNorm(1, 10)
    with pytest.raises(ValueError, match="norm GroupNorm"):
        export_onnx(odd, path, seq_len=8)
    assert not path.exists()  # nothing written by a refused call
