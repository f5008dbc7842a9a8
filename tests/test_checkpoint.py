"""Checkpoints: round trips (dense, pruned, compacted), atomic replacement, digests, clear errors."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
import torch

from s4op_kernels import checkpoint
from s4op_kernels.checkpoint import (CheckpointError, checkpoint_paths, load_checkpoint, load_weights, read_meta,
                                     save_checkpoint, upgrade_checkpoint)
from s4op_kernels.data.base import TaskInfo
from s4op_kernels.models import Config, build_model

CFG = Config(name="tiny", n_layers=3, d_model=8, d_state=4, norm="batch", dropout=0.1)
INFO = TaskInfo("ecg-synthetic", num_classes=6, seq_len=16, in_channels=2, multilabel=True,
                class_names=("1dAVb", "RBBB", "LBBB", "SB", "AF", "ST"))


def _model(seed=0):
    model = build_model(CFG, INFO, seed=seed)
    model(torch.randn(4, 16, 2))  # one training-mode batch: BatchNorm running stats differ from init
    return model.eval()


def _outputs(model, seed=1):
    x = torch.randn(3, 16, 2, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        return model(x)


def _canonical_sha256(entries):
    # the sidecar digest as the module docstring specifies it, written out independently of the module
    return hashlib.sha256(json.dumps(entries, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()).hexdigest()


def _write_sidecar(sidecar, raw, *, resign=True):
    """Write ``raw`` as the sidecar; ``resign`` recomputes its digest over every other entry (what a
    hostile or careless editor who read the docstring would do), so the checks behind the digest are hit."""
    if resign:
        body = {k: v for k, v in raw.items() if k != "digest"}
        raw = {**body, "digest": {"algorithm": "sha256", "covers": sorted(body), "value": _canonical_sha256(body)}}
    sidecar.write_text(json.dumps(raw, indent=2))


def _edit(sidecar, change, *, resign=True):
    raw = json.loads(sidecar.read_text())
    change(raw)
    _write_sidecar(sidecar, raw, resign=resign)


def test_round_trip_rebuilds_the_model_and_its_metadata(tmp_path):
    model = _model()
    metrics = {"val": {"micro_f1": np.float32(0.75)}, "test": torch.tensor(0.5), "curve": (1, 2.5)}
    path = save_checkpoint(tmp_path / "run", model, config=CFG, task_info=INFO, metrics=metrics, extra={"seed": 7})
    assert path == tmp_path / "run.safetensors" and (tmp_path / "run.json").is_file()
    loaded, meta = load_checkpoint(tmp_path / "run")
    assert not loaded.training
    torch.testing.assert_close(_outputs(loaded), _outputs(model), rtol=0, atol=0)
    assert meta.config == CFG and meta.task_info == INFO and meta.extra == {"seed": 7}
    assert meta.metrics == {"val": {"micro_f1": 0.75}, "test": 0.5, "curve": [1, 2.5]}
    assert meta.active_channels == {f"blocks.{i}.ssm": list(range(8)) for i in range(3)}
    assert meta.version and meta.saved_at
    # either file, or the stem, names the checkpoint
    assert read_meta(tmp_path / "run.json").config == CFG
    assert load_checkpoint(str(tmp_path / "run.safetensors"))[1].task_info == INFO


def test_pruned_and_compacted_model_round_trip(tmp_path):
    model = _model()
    model.blocks[0].ssm.set_active_channels([1, 2, 6])
    model.blocks[1].ssm.set_active_channels([5])
    model.blocks[1].ssm = model.blocks[1].ssm.compact()
    model.blocks[2].ssm.set_active_channels([])
    save_checkpoint(tmp_path / "pruned", model, config=CFG, task_info=INFO, metrics={})
    sidecar = json.loads((tmp_path / "pruned.json").read_text())
    assert sidecar["active_channels"] == {"blocks.0.ssm": [1, 2, 6], "blocks.1.ssm": [5], "blocks.2.ssm": []}
    loaded, meta = load_checkpoint(tmp_path / "pruned")
    layers = loaded.ssm_layers()
    assert [m.active_channels.tolist() for m in layers] == [[1, 2, 6], [5], []]
    assert not layers[0].is_compact and layers[1].is_compact and layers[1].kernel.C.shape[0] == 1
    torch.testing.assert_close(_outputs(loaded), _outputs(model), rtol=0, atol=0)


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("fail_at", ["weights_temp", "sidecar_temp", "first_replace", "second_replace"])
def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch, fail_at):
    save_checkpoint(tmp_path / "ckpt", _model(0), config=CFG, task_info=INFO, metrics={"round": 1})
    before = _snapshot(tmp_path)
    newer = _model(1)
    real_fsync, real_replace = os.fsync, os.replace
    calls = {"fsync": 0, "replace": 0}

    def fsync(fd):  # called once per temporary file, after its bytes are written
        calls["fsync"] += 1
        if (fail_at, calls["fsync"]) in (("weights_temp", 1), ("sidecar_temp", 2)):
            raise OSError(28, "No space left on device")
        return real_fsync(fd)

    def replace(src, dst):
        calls["replace"] += 1
        if (fail_at, calls["replace"]) in (("first_replace", 1), ("second_replace", 2)):
            raise OSError(5, "Input/output error")
        return real_replace(src, dst)

    monkeypatch.setattr(checkpoint.os, "fsync", fsync)
    monkeypatch.setattr(checkpoint.os, "replace", replace)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "ckpt", newer, config=CFG, task_info=INFO, metrics={"round": 2})
    monkeypatch.undo()
    assert _snapshot(tmp_path) == before  # same files, same bytes, no temporary files left behind
    loaded, meta = load_checkpoint(tmp_path / "ckpt")
    assert meta.metrics == {"round": 1}


def test_unserializable_metrics_fail_before_anything_is_written(tmp_path):
    with pytest.raises(TypeError, match="JSON-serializable"):
        save_checkpoint(tmp_path / "x", _model(), config=CFG, task_info=INFO, metrics={"f": object()})
    assert list(tmp_path.iterdir()) == []


def test_missing_and_corrupt_files_are_named_in_the_error(tmp_path):
    with pytest.raises(CheckpointError, match=r"nothing\.json: checkpoint sidecar not found"):
        load_checkpoint(tmp_path / "nothing")
    save_checkpoint(tmp_path / "a", _model(0), config=CFG, task_info=INFO, metrics={})
    save_checkpoint(tmp_path / "b", _model(1), config=CFG, task_info=INFO, metrics={})
    weights, sidecar = checkpoint_paths(tmp_path / "a")

    os.replace(tmp_path / "b.safetensors", weights)  # a weights file from another save
    with pytest.raises(CheckpointError, match=r"a\.safetensors: the weights file does not match its sidecar"):
        load_checkpoint(tmp_path / "a")

    garbage = b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage"
    weights.write_bytes(garbage)  # with a sidecar that vouches for the bytes, the reader itself must reject them
    _edit(sidecar, lambda raw: raw["weights"].update(sha256=hashlib.sha256(garbage).hexdigest()))
    with pytest.raises(CheckpointError, match=r"a\.safetensors: not a readable safetensors file"):
        load_checkpoint(tmp_path / "a")

    weights.unlink()
    with pytest.raises(CheckpointError, match=r"a\.safetensors: the weights file is missing"):
        load_checkpoint(tmp_path / "a")

    sidecar.write_text('{"format": "s4op-checkpoint", ')
    with pytest.raises(CheckpointError, match=r"a\.json: corrupt sidecar \(invalid JSON at line 1"):
        load_checkpoint(tmp_path / "a")
    sidecar.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(CheckpointError, match="not an s4op-checkpoint sidecar"):
        read_meta(tmp_path / "a")


def test_weights_that_do_not_fit_the_config_are_reported(tmp_path):
    save_checkpoint(tmp_path / "c", _model(), config=CFG, task_info=INFO, metrics={})
    sidecar = tmp_path / "c.json"
    _edit(sidecar, lambda raw: raw["config"].update(d_model=16))  # digest recomputed: only the shapes disagree
    with pytest.raises(CheckpointError, match=r"c\.safetensors: the weights do not fit the model described by c\.json"):
        load_checkpoint(tmp_path / "c")


def test_saving_into_a_missing_folder_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_checkpoint(tmp_path / "no" / "such" / "x", _model(), config=CFG, task_info=INFO, metrics={})


def test_without_hard_links_a_half_replaced_pair_is_refused_at_load(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "ckpt", _model(0), config=CFG, task_info=INFO, metrics={})
    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith(".json"):
            raise OSError(5, "Input/output error")
        return real_replace(src, dst)

    def no_link(src, dst):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(checkpoint.os, "replace", replace)
    monkeypatch.setattr(checkpoint.os, "link", no_link)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "ckpt", _model(1), config=CFG, task_info=INFO, metrics={})
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.json", "ckpt.safetensors"]
    with pytest.raises(CheckpointError, match="does not match its sidecar"):
        load_checkpoint(tmp_path / "ckpt")


def test_weights_only_checkpoint_and_atomic_write_bytes(tmp_path):
    model = _model()
    save_checkpoint(tmp_path / "w", model, config=None, task_info=None, metrics={"val": 0.5})
    assert read_meta(tmp_path / "w").config is None
    with pytest.raises(CheckpointError, match="cannot be rebuilt"):
        load_checkpoint(tmp_path / "w")
    fresh = build_model(CFG, INFO, seed=3).eval()
    fresh.load_state_dict(checkpoint.load_weights(tmp_path / "w"))
    torch.testing.assert_close(_outputs(fresh), _outputs(model), rtol=0, atol=0)
    # a config given as its dict is accepted too
    save_checkpoint(tmp_path / "d", model, config=CFG.to_dict(), task_info=INFO)
    assert load_checkpoint(tmp_path / "d")[1].config == CFG

    target = tmp_path / "summary.json"
    checkpoint.atomic_write_bytes(target, b"old")
    with pytest.raises(TypeError, match="expected bytes"):
        checkpoint.atomic_write_bytes(target, "text")
    assert target.read_bytes() == b"old"
    checkpoint.atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would make it, not mkstemp's 0600


# ---------------------------------------------------------------------- digests (issue 10, item 8)
def test_the_sidecar_carries_a_digest_over_its_entries_and_the_weights(tmp_path):
    save_checkpoint(tmp_path / "c", _model(), config=CFG, task_info=INFO, metrics={"val": 0.5})
    raw = json.loads((tmp_path / "c.json").read_text())
    assert raw["format_version"] == checkpoint.FORMAT_VERSION == 2
    assert raw["weights"]["sha256"] == hashlib.sha256((tmp_path / "c.safetensors").read_bytes()).hexdigest()
    digest = raw.pop("digest")
    assert digest["algorithm"] == "sha256" and digest["covers"] == sorted(raw)
    assert {"format_version", "weights", "config", "task_info", "active_channels"} <= set(digest["covers"])
    assert digest["value"] == _canonical_sha256(raw)


TAMPERED = {
    "prenorm": lambda raw: raw["config"].update(prenorm=True),  # same shapes: would load as another model
    "norm": lambda raw: raw["config"].update(norm="layer"),
    "dt_max": lambda raw: raw["config"].update(dt_max=0.2),
    "multilabel": lambda raw: raw["task_info"].update(multilabel=False),
    "active_channels": lambda raw: raw.update(active_channels={}),
    "weights_sha256": lambda raw: raw["weights"].update(sha256="0" * 64),
    "class_names": lambda raw: raw["task_info"].update(class_names=["AF", "RBBB", "LBBB", "SB", "1dAVb", "ST"]),
    "saved_at": lambda raw: raw.update(saved_at="2020-01-01T00:00:00+00:00"),
    "metrics": lambda raw: raw["metrics"].update(val=0.99),
    "extra": lambda raw: raw.update(extra={"rate": 0.9}),
}


@pytest.mark.parametrize("edit", sorted(TAMPERED))
def test_an_edited_sidecar_fails_its_digest(tmp_path, edit):
    save_checkpoint(tmp_path / "c", _model(), config=CFG, task_info=INFO, metrics={"val": 0.5}, extra={"rate": 0.3})
    _edit(tmp_path / "c.json", TAMPERED[edit], resign=False)
    for load in (load_checkpoint, load_weights, read_meta):
        with pytest.raises(CheckpointError, match=r"c\.json: the sidecar does not match its digest"):
            load(tmp_path / "c")


def test_a_weights_file_from_another_save_with_its_sha256_copied_fails_the_digest(tmp_path):
    save_checkpoint(tmp_path / "a", _model(0), config=CFG, task_info=INFO, metrics={})
    save_checkpoint(tmp_path / "b", _model(1), config=CFG, task_info=INFO, metrics={})
    other = json.loads((tmp_path / "b.json").read_text())["weights"]["sha256"]
    os.replace(tmp_path / "b.safetensors", tmp_path / "a.safetensors")
    _edit(tmp_path / "a.json", lambda raw: raw["weights"].update(sha256=other), resign=False)
    for load in (load_checkpoint, load_weights):
        with pytest.raises(CheckpointError, match=r"a\.json: the sidecar does not match its digest"):
            load(tmp_path / "a")


MISSING = {
    "digest": (lambda raw: raw.pop("digest"), False, r"no 'digest' entry"),
    "weights.sha256": (lambda raw: raw["weights"].pop("sha256"), True, r"invalid sidecar entry 'weights': no 'sha256'"),
    "weights": (lambda raw: raw.pop("weights"), True, r"no 'weights' entry"),
    "config": (lambda raw: raw.pop("config"), True, r"no 'config' entry"),
    "format_version": (lambda raw: raw.pop("format_version"), True, r"no 'format_version' entry"),
}


@pytest.mark.parametrize("entry", sorted(MISSING))
def test_a_sidecar_without_its_digests_is_refused(tmp_path, entry):
    save_checkpoint(tmp_path / "c", _model(), config=CFG, task_info=INFO, metrics={})
    change, resign, message = MISSING[entry]
    _edit(tmp_path / "c.json", change, resign=resign)
    for load in (load_checkpoint, load_weights):
        with pytest.raises(CheckpointError, match=r"c\.json: .*" + message):
            load(tmp_path / "c")


def test_entries_outside_the_digest_and_a_forged_digest_are_refused(tmp_path):
    save_checkpoint(tmp_path / "c", _model(), config=CFG, task_info=INFO, metrics={})
    sidecar = tmp_path / "c.json"
    original = sidecar.read_text()
    _edit(sidecar, lambda raw: raw.update(prenorm=True), resign=False)  # a new entry the digest does not cover
    with pytest.raises(CheckpointError, match=r"c\.json: sidecar entries \['prenorm'\] are not covered by its digest"):
        load_checkpoint(tmp_path / "c")

    def narrow(raw):  # a digest re-made over fewer entries, then the uncovered config edited
        body = {k: v for k, v in raw.items() if k not in ("digest", "config")}
        raw["config"]["prenorm"] = True
        raw["digest"] = {"algorithm": "sha256", "covers": sorted(body), "value": _canonical_sha256(body)}

    sidecar.write_text(original)
    _edit(sidecar, narrow, resign=False)
    with pytest.raises(CheckpointError, match=r"c\.json: sidecar entries \['config'\] are not covered by its digest"):
        load_checkpoint(tmp_path / "c")
    sidecar.write_text(original)
    _edit(sidecar, lambda raw: raw["digest"].update(algorithm="md5"), resign=False)
    with pytest.raises(CheckpointError, match=r"c\.json: invalid sidecar entry 'digest': algorithm 'md5'"):
        load_checkpoint(tmp_path / "c")


def test_load_weights_needs_the_sidecar_and_checks_the_weights(tmp_path):
    # what `s4op prune` resume reads: a tampered rate checkpoint must not load
    model = _model()
    save_checkpoint(tmp_path / "rate_30", model, config=CFG, task_info=INFO, metrics={})
    weights, sidecar = checkpoint_paths(tmp_path / "rate_30")
    blob = bytearray(weights.read_bytes())
    blob[-1] ^= 0x01  # one bit of the last tensor
    weights.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match=r"rate_30\.safetensors: the weights file does not match its sidecar"):
        load_weights(tmp_path / "rate_30")
    sidecar.unlink()
    with pytest.raises(CheckpointError, match=r"rate_30\.json: checkpoint sidecar not found"):
        load_weights(tmp_path / "rate_30")


def test_version_1_sidecars_are_refused_until_upgraded(tmp_path):
    model = _model()
    model.blocks[0].ssm.set_active_channels([0, 3])
    save_checkpoint(tmp_path / "old", model, config=CFG, task_info=INFO, metrics={"val": 0.5})
    sidecar = tmp_path / "old.json"

    def downgrade(raw):  # what version 1 wrote: no digest
        raw.pop("digest")
        raw["format_version"] = 1

    _edit(sidecar, downgrade, resign=False)
    v1 = sidecar.read_text()
    for load in (load_checkpoint, load_weights, read_meta):  # also closes the downgrade route around the digest
        with pytest.raises(CheckpointError, match=r"old\.json: format_version 1 .*upgrade_checkpoint\(path\)"):
            load(tmp_path / "old")

    _edit(sidecar, lambda raw: raw["weights"].update(sha256="0" * 64), resign=False)
    with pytest.raises(CheckpointError, match="does not match its sidecar"):  # upgrade checks the weights first
        upgrade_checkpoint(tmp_path / "old")
    assert json.loads(sidecar.read_text())["format_version"] == 1
    _edit(sidecar, lambda raw: raw["config"].update(d_model=16), resign=False)
    _edit(sidecar, lambda raw: raw["weights"].update(sha256=json.loads(v1)["weights"]["sha256"]), resign=False)
    with pytest.raises(CheckpointError, match="do not fit the model"):  # ... and that they fit the config
        upgrade_checkpoint(tmp_path / "old")

    sidecar.write_text(v1)
    assert upgrade_checkpoint(tmp_path / "old") == tmp_path / "old.safetensors"
    raw = json.loads(sidecar.read_text())
    assert raw["format_version"] == 2 and raw["digest"]["value"] == _canonical_sha256({k: v for k, v in raw.items() if k != "digest"})
    loaded, meta = load_checkpoint(tmp_path / "old")
    torch.testing.assert_close(_outputs(loaded), _outputs(model), rtol=0, atol=0)
    assert meta.metrics == {"val": 0.5} and meta.active_channels["blocks.0.ssm"] == [0, 3]
    before = sidecar.read_bytes()
    upgrade_checkpoint(tmp_path / "old")  # a version-2 checkpoint is left as it is
    assert sidecar.read_bytes() == before


# ---------------------------------------------------------------------- malformed entries, sizes (item 15)
MALFORMED = {
    "format_version_str": ("format_version", lambda raw: raw.update(format_version="1")),
    "format_version_bool": ("format_version", lambda raw: raw.update(format_version=True)),
    "format_version_zero": ("format_version", lambda raw: raw.update(format_version=0)),
    "config_list": ("config", lambda raw: raw.update(config=[1, 2])),
    "config_field_type": ("config", lambda raw: raw["config"].update(d_model="8")),
    "config_unknown_field": ("config", lambda raw: raw["config"].update(width=8)),
    "task_info_str": ("task_info", lambda raw: raw.update(task_info="ecg")),
    "task_info_num_classes": ("task_info", lambda raw: raw["task_info"].update(num_classes="6")),
    "task_info_multilabel": ("task_info", lambda raw: raw["task_info"].update(multilabel="yes")),
    "task_info_unknown": ("task_info", lambda raw: raw["task_info"].update(colour="red")),
    "task_info_class_names": ("task_info", lambda raw: raw["task_info"].update(class_names="AF")),
    "task_info_both_inputs": ("task_info", lambda raw: raw["task_info"].update(vocab_size=10)),
    "active_channels_list": ("active_channels", lambda raw: raw.update(active_channels=[[0, 1]])),
    "active_channels_str": ("active_channels", lambda raw: raw["active_channels"].update({"blocks.0.ssm": [0, "1"]})),
    "active_channels_bool": ("active_channels", lambda raw: raw["active_channels"].update({"blocks.0.ssm": [True]})),
    "active_channels_negative": ("active_channels", lambda raw: raw["active_channels"].update({"blocks.0.ssm": [-1]})),
    "metrics_list": ("metrics", lambda raw: raw.update(metrics=[0.5])),
    "extra_number": ("extra", lambda raw: raw.update(extra=5)),
    "weights_str": ("weights", lambda raw: raw.update(weights="c.safetensors")),
    "weights_sha256_format": ("weights", lambda raw: raw["weights"].update(sha256="ABC")),
    "weights_file": ("weights", lambda raw: raw["weights"].update(file=None)),
    "version_number": ("s4op_kernels", lambda raw: raw.update(s4op_kernels=1)),
    "digest_str": ("digest", lambda raw: raw.update(digest="abc")),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_sidecar_entry_is_named_with_its_file(tmp_path, case):
    entry, change = MALFORMED[case]
    save_checkpoint(tmp_path / "c", _model(), config=CFG, task_info=INFO, metrics={})
    raw = json.loads((tmp_path / "c.json").read_text())
    change(raw)
    _write_sidecar(tmp_path / "c.json", raw, resign=entry != "digest")
    for load in (load_checkpoint, load_weights, read_meta):
        with pytest.raises(CheckpointError, match=rf"c\.json: invalid sidecar entry '{entry}': "):
            load(tmp_path / "c")


def test_non_finite_numbers_in_the_sidecar_are_refused(tmp_path):
    save_checkpoint(tmp_path / "c", _model(), config=CFG, task_info=INFO, metrics={})
    text = (tmp_path / "c.json").read_text().replace('"metrics": {}', '"metrics": {"val": NaN}')
    (tmp_path / "c.json").write_text(text)
    with pytest.raises(CheckpointError, match=r"c\.json: corrupt sidecar \(NaN is not valid JSON\)"):
        read_meta(tmp_path / "c")
    (tmp_path / "c.json").write_text(text.replace("NaN", "1e999"))  # parses as inf in plain json.loads
    with pytest.raises(CheckpointError, match=r"c\.json: corrupt sidecar \(1e999 is out of range\)"):
        read_meta(tmp_path / "c")


ABSURD = {
    "d_model": (lambda raw: raw["config"].update(d_model=10**6), r"entry 'config': d_model = 1000000 exceeds the limit"),
    "n_layers": (lambda raw: raw["config"].update(n_layers=10**6), r"entry 'config': n_layers = 1000000 exceeds the limit"),
    "d_state": (lambda raw: raw["config"].update(d_state=10**9), r"entry 'config': d_state = 1000000000 exceeds the limit"),
    "in_channels": (lambda raw: raw["task_info"].update(in_channels=10**9), r"entry 'task_info': in_channels = 1000000000 exceeds"),
    "num_classes": (lambda raw: raw["task_info"].update(num_classes=10**9), r"entry 'task_info': num_classes = 1000000000 exceeds"),
    # within every limit, but 64 blocks of 2 x 4096^2 output weights: about 2e9 elements for a 2 KB weights file
    "implied_size": (lambda raw: raw["config"].update(d_model=4096, n_layers=64),
                     r"entries 'config' \(n_layers=64, d_model=4096, d_state=4\) and 'task_info' describe a model of "
                     r"[\d,]+ elements, but c\.safetensors holds [\d,]+; refusing to build it"),
}


@pytest.mark.parametrize("case", sorted(ABSURD))
def test_absurd_sizes_are_refused_before_the_model_is_built(tmp_path, monkeypatch, case):
    import s4op_kernels.models

    real_build = s4op_kernels.models.build_model

    def build_only_on_meta(config, info, **kwargs):  # a real build here would try to allocate gigabytes or more
        if torch.get_default_device().type != "meta":
            raise AssertionError(f"a real model of {config.n_layers} x {config.d_model} was built")
        return real_build(config, info, **kwargs)

    save_checkpoint(tmp_path / "c", _model(), config=CFG, task_info=INFO, metrics={})
    change, message = ABSURD[case]
    _edit(tmp_path / "c.json", change)  # a consistent digest: the size checks alone must stop it
    monkeypatch.setattr(s4op_kernels.models, "build_model", build_only_on_meta)
    with pytest.raises(CheckpointError, match=r"c\.json: .*" + message):
        load_checkpoint(tmp_path / "c")


def test_the_size_check_lets_a_fully_compacted_model_through(tmp_path):
    info = TaskInfo("listops", num_classes=10, seq_len=16, vocab_size=20)
    cfg = CFG.replace(d_model=64, d_state=512, n_layers=8, norm="none")  # N/H = 8: compaction keeps 1/9
    model = build_model(cfg, info, seed=0).eval()
    for block in model.blocks:
        block.ssm.set_active_channels([])
        block.ssm = block.ssm.compact()
    save_checkpoint(tmp_path / "c", model, config=cfg, task_info=info, metrics={})
    loaded, meta = load_checkpoint(tmp_path / "c")
    assert all(m.is_compact and m.num_active == 0 for m in loaded.ssm_layers())
