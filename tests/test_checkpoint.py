"""Checkpoints: round trips (dense, pruned, compacted), atomic replacement, clear errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from s4op_kernels import checkpoint
from s4op_kernels.checkpoint import CheckpointError, checkpoint_paths, load_checkpoint, read_meta, save_checkpoint
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

    weights.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    raw = json.loads(sidecar.read_text())
    raw["weights"].pop("sha256")  # without the hash, the reader itself must reject the bytes
    sidecar.write_text(json.dumps(raw))
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
    raw = json.loads(sidecar.read_text())
    raw["config"]["d_model"] = 16
    sidecar.write_text(json.dumps(raw))
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
