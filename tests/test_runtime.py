"""The model file (export.py) and the torch-free runtime (csrc/runtime through s4op_kernels.runtime) against the
PyTorch classifier evaluated in float64: every kind of task (continuous multi-label, continuous multi-class with
BatchNorm, tokens with padding; prenorm and postnorm), S4D and S4, pruning 0 / 50 / 90 % / all but one / none
kept, compacted, L = 1 and odd L, batch 1 and > 1; the file's checks (corrupted, truncated, future version);
the runtime's argument checks; s4op-infer."""

from __future__ import annotations

import gc
import shutil
import struct
import subprocess
import zlib

import numpy as np
import pytest
import torch

from factories import ECG, KINDS, RATES, TOKENS, expected64, inputs, make_model
from s4op_kernels import runtime
from s4op_kernels.export import FORMAT_VERSION, ModelFileError, export_model, footprint, read_model_file
from tolerances import assert_close

@pytest.mark.parametrize("layer", ["s4d", "s4"])
@pytest.mark.parametrize("rate", list(RATES.values()), ids=list(RATES))
@pytest.mark.parametrize("kind", list(KINDS))
def test_runtime_matches_pytorch(tmp_path, kind, rate, layer):
    info, kw = KINDS[kind]
    model = make_model(info, layer=layer, rate=rate, compact=rate == 0.5, **kw)
    path = tmp_path / "m.s4m"
    export_model(model, info, path)
    rt = runtime.load(path, max_batch=3)
    for B, L in ((1, info.seq_len), (3, info.seq_len), (2, 1), (1, 17)):
        x = inputs(info, B, L, seed=B * 100 + L)
        assert_close(torch.from_numpy(rt(x)), expected64(model, x), torch.float32, what=f"logits B={B} L={L}")


def test_lengths_mask_the_pooling_of_continuous_inputs(tmp_path):
    model = make_model(ECG, rate=0.5)
    export_model(model, ECG, tmp_path / "m.s4m")
    rt = runtime.load(tmp_path / "m.s4m", max_batch=3)
    x = inputs(ECG, 3, 40)
    lengths = torch.tensor([40, 7, 0])
    assert_close(torch.from_numpy(rt(x, lengths)), expected64(model, x, lengths), torch.float32)


def test_export_leaves_the_model_unchanged_and_s4_kernels_cover_max_len(tmp_path):
    model = make_model(ECG, layer="s4", rate=0.5)
    with torch.no_grad():
        model(inputs(ECG, 1, 16))  # C-tilde set up for 16 taps
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_model(model, ECG, tmp_path / "m.s4m", max_len=64)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    e = read_model_file(tmp_path / "m.s4m")
    assert int(e["layers.0.l_kernel"]) == 64 and int(e["layers.0.taps"]) == 64 and int(e["arch.max_len"]) == 64
    rt = runtime.load(tmp_path / "m.s4m")
    x = inputs(ECG, 1, 64)
    assert_close(torch.from_numpy(rt(x)), expected64(model, x), torch.float32)


def test_pruned_channels_cost_no_bytes(tmp_path):
    sizes = {}
    for rate in (0.0, 0.5, 0.9):
        model = make_model(ECG, rate=rate)
        sizes[rate] = export_model(model, ECG, tmp_path / f"m{rate}.s4m")
    per_channel = 4 * (1 + 8 + 1 + 4 + 4) + 8  # D, C (N2 x 2), log_dt, log_A_real, A_imag, the index
    assert sizes[0.0]["file_bytes"] - sizes[0.5]["file_bytes"] == pytest.approx(3 * 5 * per_channel, abs=8 * 3 * 6)
    assert sizes[0.9]["active_channels"] == 3 and sizes[0.0]["active_channels"] == 30
    assert sizes[0.9]["spectra_bytes"] < sizes[0.5]["spectra_bytes"] < sizes[0.0]["spectra_bytes"]
    fp = footprint(tmp_path / "m0.0.s4m", batch=4)
    assert fp["activation_bytes"] > sizes[0.0]["activation_bytes"] and fp["batch"] == 4
    assert fp["activation_bytes"] == runtime.load(tmp_path / "m0.0.s4m", max_batch=4).info["arena_bytes"]
    # the dense counterpart of a pruned file is the unpruned file's footprint
    dense = footprint(tmp_path / "m0.9.s4m", dense=True)
    assert {k: dense[k] for k in ("weight_bytes", "spectra_bytes", "activation_bytes")} == \
        {k: sizes[0.0][k] for k in ("weight_bytes", "spectra_bytes", "activation_bytes")}
    assert abs(dense["file_bytes"] - sizes[0.0]["file_bytes"]) <= 8 * 3 * 6  # entries' alignment padding
    assert dense["active_channels"] == dense["channels"] == 30


def test_model_info(tmp_path):
    export_model(make_model(TOKENS, rate=0.5), TOKENS, tmp_path / "m.s4m")
    rt = runtime.load(tmp_path / "m.s4m", max_batch=2, max_len=20)
    i = rt.info
    assert i["tokens"] and i["vocab_size"] == 20 and i["num_classes"] == 10 and not i["multilabel"]
    assert (i["d_model"], i["n_layers"], i["max_len"], i["max_batch"]) == (10, 3, 20, 2)
    assert i["active_channels"] == 15 and i["channels"] == 30 and i["format_version"] == FORMAT_VERSION
    assert "active=15/30" in repr(rt) and runtime.simd()


# ---------------------------------------------------------------------------------------------- bad files
def _rewrite(path, blob):
    path.write_bytes(bytes(blob))
    return path


@pytest.fixture
def good_file(tmp_path):
    path = tmp_path / "m.s4m"
    export_model(make_model(ECG, rate=0.5), ECG, path)
    return path


def _header_with(blob, *, version=None, payload=None):
    magic, v, flags, size, crc, count = struct.unpack_from("<8sIIQII", blob)
    payload = bytes(blob[32:]) if payload is None else payload
    return struct.pack("<8sIIQII", magic, v if version is None else version, flags, len(payload),
                       zlib.crc32(payload) & 0xFFFFFFFF, count) + payload


@pytest.mark.parametrize("damage, match", [
    (lambda b: b[:20], "truncated"),
    (lambda b: b[:-8], "truncated or padded"),
    (lambda b: b[:100] + bytes([b[100] ^ 0x40]) + b[101:], "CRC-32"),
    (lambda b: b"NOTMODEL" + b[8:], "bad magic"),
    (lambda b: _header_with(b, version=FORMAT_VERSION + 1), "newer than this runtime|not supported"),
    (lambda b: _header_with(b, payload=b[32:-16]), "truncated|after the last entry|runs past"),
    (lambda b: b"", "truncated"),
])
def test_a_damaged_file_is_a_clear_error_never_a_crash(good_file, damage, match):
    blob = damage(good_file.read_bytes())
    _rewrite(good_file, blob)
    with pytest.raises(ValueError, match=match):
        runtime.load(good_file)
    with pytest.raises(ModelFileError):
        read_model_file(good_file)


def test_a_file_missing_an_entry_or_with_a_wrong_shape_is_refused(tmp_path):
    from s4op_kernels.export import encode, model_entries

    entries = model_entries(make_model(ECG, rate=0.5), ECG)
    missing = dict(entries)
    del missing["layers.1.W"]
    _rewrite(tmp_path / "a.s4m", encode(missing))
    with pytest.raises(ValueError, match="missing entry 'layers.1.W'"):
        runtime.load(tmp_path / "a.s4m")
    wrong = dict(entries, **{"layers.0.D": np.zeros(3, np.float32)})
    _rewrite(tmp_path / "b.s4m", encode(wrong))
    with pytest.raises(ValueError, match="entry 'layers.0.D': expected float32 of shape"):
        runtime.load(tmp_path / "b.s4m")
    unsorted = dict(entries, **{"layers.0.active": entries["layers.0.active"][::-1].copy()})
    _rewrite(tmp_path / "c.s4m", encode(unsorted))
    with pytest.raises(ValueError, match="increasing"):
        runtime.load(tmp_path / "c.s4m")
    with pytest.raises(ValueError, match="cannot open"):
        runtime.load(tmp_path / "nothing.s4m")


def test_bad_calls_are_clear_errors(good_file):
    rt = runtime.load(good_file, max_batch=2)
    with pytest.raises(ValueError, match="batch 3 is outside"):
        rt(inputs(ECG, 3, 10))
    with pytest.raises(ValueError, match="length 41 is outside"):
        rt(inputs(ECG, 1, 41))
    with pytest.raises(ValueError, match=r"\(B, L, 2\) floats"):
        rt(torch.zeros(1, 10, 3))
    with pytest.raises(ValueError, match=r"lengths\[0\] = 11 is outside"):
        rt(inputs(ECG, 1, 10), torch.tensor([11]))
    with pytest.raises(TypeError, match="NumPy array or a torch.Tensor"):
        rt([[0.0]])
    with pytest.raises(ValueError, match="longer than the file's kernels"):
        runtime.load(good_file, max_len=41)
    with pytest.raises(ValueError, match="max_batch"):
        runtime.load(good_file, max_batch=0)


def test_token_ids_out_of_range_are_refused(tmp_path):
    export_model(make_model(TOKENS), TOKENS, tmp_path / "m.s4m")
    rt = runtime.load(tmp_path / "m.s4m")
    with pytest.raises(ValueError, match=r"x\[3\] = 20 is not a token id in \[0, 20\)"):
        rt(torch.tensor([[1, 2, 3, 20]]))


# ---------------------------------------------------------------------------------------------- s4op-infer
def test_s4op_infer_prints_the_logits(good_file, tmp_path):
    exe = shutil.which("s4op-infer")
    if exe is None:
        pytest.skip("s4op-infer is not on PATH (pip install . puts it in the environment's bin)")
    x = inputs(ECG, 2, 40).numpy()
    np.save(tmp_path / "x.npy", x)
    out = subprocess.run([exe, str(good_file), str(tmp_path / "x.npy")], capture_output=True, text=True, check=True)
    got = np.array([[float(v) for v in line.split()] for line in out.stdout.strip().splitlines()])
    np.testing.assert_allclose(got, runtime.load(good_file, max_batch=2)(x), rtol=0, atol=1e-6)
    probs = subprocess.run([exe, str(good_file), str(tmp_path / "x.npy"), "--probs"], capture_output=True, text=True,
                           check=True)
    p = np.array([[float(v) for v in line.split()] for line in probs.stdout.strip().splitlines()])
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-got)), atol=1e-6)  # multi-label: sigmoid per label
    bad = subprocess.run([exe, str(good_file), str(tmp_path / "nothing.npy")], capture_output=True, text=True)
    assert bad.returncode == 1 and "cannot open" in bad.stderr
    usage = subprocess.run([exe], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage: s4op-infer" in usage.stderr


# ---------------------------------------------------------------------------------------------- streaming
@pytest.mark.parametrize("layer", ["s4d", "s4"])
@pytest.mark.parametrize("rate", [0.0, 0.5, 0.9, "none"], ids=["rate0", "rate50", "rate90", "none-kept"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_runtime_stream_matches_pytorch(tmp_path, kind, rate, layer):
    """Sample by sample (and in chunks), the runtime's stream gives the float64 PyTorch logits of the samples so
    far, up to and past the file's max_len."""
    info, kw = KINDS[kind]
    model = make_model(info, layer=layer, rate=rate, compact=rate == 0.5, **kw)
    export_model(model, info, tmp_path / "m.s4m")
    rt = runtime.load(tmp_path / "m.s4m")
    L = info.seq_len + 9
    x = inputs(info, 2, L, seed=7)
    stream = rt.stream(2)
    for end in range(1, L + 1):
        stream.push(x[:, end - 1:end])
        if end in (1, 2, info.seq_len, L) or end % 11 == 0:
            assert_close(torch.from_numpy(stream.logits()), expected64(model, x[:, :end]), torch.float32,
                         what=f"logits after {end} samples")
    assert stream.samples == L
    chunks = rt.stream(2)
    for a, b in ((0, 5), (5, 6), (6, L)):
        chunks.push(x[:, a:b])
    np.testing.assert_allclose(chunks.logits(), stream.logits(), rtol=0, atol=1e-6)


def test_runtime_stream_api_and_errors(good_file):
    rt = runtime.load(good_file)
    stream = rt.stream()
    assert stream.samples == 0
    np.testing.assert_allclose(stream.logits(), read_model_file(good_file)["decoder.bias"][None], atol=0)
    with pytest.raises(ValueError, match=r"\(B=1, T, 2\) floats"):
        stream.push(np.zeros((2, 1, 2), np.float32))
    with pytest.raises(ValueError, match="batch_size"):
        rt.stream(0)
    stream.push(np.zeros((1, 0, 2), np.float32))  # nothing
    stream.push(inputs(ECG, 1, 3)).reset()
    assert stream.samples == 0
    orphan = runtime.load(good_file).stream()  # the stream keeps its model alive
    gc.collect()
    assert np.isfinite(orphan.push(inputs(ECG, 1, 3)).logits()).all()
    tokens = good_file.parent / "t.s4m"
    export_model(make_model(TOKENS), TOKENS, tokens)
    ts = runtime.load(tokens).stream()
    with pytest.raises(ValueError, match=r"x\[1\] = 20 is not a token id"):
        ts.push(np.array([[1, 20]]))


def test_an_s4_file_without_c_f_runs_in_batch_but_cannot_stream(tmp_path):
    from s4op_kernels.export import encode, model_entries

    entries = model_entries(make_model(ECG, layer="s4", rate=0.5), ECG)
    for i in range(3):
        del entries[f"layers.{i}.C_f"]  # as written before streaming existed
    (tmp_path / "old.s4m").write_bytes(encode(entries))
    rt = runtime.load(tmp_path / "old.s4m")
    rt(inputs(ECG, 1, 10))
    with pytest.raises(ValueError, match="no 'C_f' entry.*export the model again"):
        rt.stream()


def test_s4op_infer_stream_prints_the_batch_logits(good_file, tmp_path):
    exe = shutil.which("s4op-infer")
    if exe is None:
        pytest.skip("s4op-infer is not on PATH (pip install . puts it in the environment's bin)")
    x = inputs(ECG, 2, 40).numpy()
    np.save(tmp_path / "x.npy", x)
    out = subprocess.run([exe, str(good_file), str(tmp_path / "x.npy"), "--stream"], capture_output=True, text=True,
                         check=True)
    got = np.array([[float(v) for v in line.split()] for line in out.stdout.strip().splitlines()])
    want = runtime.load(good_file, max_batch=2)(x)
    assert np.abs(got - want).max() <= 2e-5 * np.abs(want).max()
    long = inputs(ECG, 1, 100).numpy()  # longer than the file's max_len (40): a stream has no limit
    np.save(tmp_path / "long.npy", long)
    out = subprocess.run([exe, str(good_file), str(tmp_path / "long.npy"), "--stream"], capture_output=True, text=True,
                         check=True)
    got = np.array([float(v) for v in out.stdout.split()])
    stream = runtime.load(good_file).stream()
    np.testing.assert_allclose(got, stream.push(long).logits()[0], rtol=0, atol=1e-6)
