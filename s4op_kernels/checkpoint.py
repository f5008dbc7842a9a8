"""Checkpoints of (possibly pruned) classifiers: ``<path>.safetensors`` + a ``<path>.json`` sidecar.

The weights file holds ``model.state_dict()``; a pruned S4D layer's entry includes its ``active_channels``
(and a compacted layer's SSM tensors hold only the active rows), so loading resizes each layer by itself.
The sidecar holds what is needed to rebuild the model without the code that trained it: the config, the
task description, the metrics, the active channels of every SSM layer (also readable without torch), the
package version, and the SHA-256 of the weights file, which :func:`load_checkpoint` checks so a weights
file and a sidecar from different saves are never paired silently.

Nothing is overwritten in place: both files are first written in full to temporary files in the destination
folder and flushed to disk, then each replaces its old file with ``os.replace``; if the second replacement
fails, the old weights are put back.  A failure at any point leaves the previous checkpoint as it was.
:func:`atomic_write_bytes` does the same for any single file (run summaries, reports).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import json
import math
import os
import pathlib
import tempfile
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

import torch
from torch import nn

FORMAT = "s4op-checkpoint"
FORMAT_VERSION = 1
_SUFFIXES = (".safetensors", ".json")

PathLike = Union[str, os.PathLike]


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable or inconsistent; the message names the file."""

    def __init__(self, path, message: str):
        super().__init__(f"{path}: {message}")
        self.path = str(path)


@dataclass
class CheckpointMeta:
    """The sidecar of a checkpoint, parsed: ``config`` (models.Config), ``task_info`` (data.TaskInfo),
    ``metrics``, ``active_channels`` (SSM layer name -> active channel indices), ``extra``, and the
    package ``version`` and ``saved_at`` time of the save."""

    config: Any
    task_info: Any
    metrics: dict = field(default_factory=dict)
    active_channels: dict[str, list[int]] = field(default_factory=dict)
    extra: Optional[dict] = None
    version: str = ""
    saved_at: str = ""


def checkpoint_paths(path: PathLike) -> tuple[pathlib.Path, pathlib.Path]:
    """(weights, sidecar) paths of the checkpoint ``path``; a trailing ``.safetensors``/``.json`` is ignored,
    so the weights file or the sidecar may be passed as well as the common stem."""
    p = pathlib.Path(os.fspath(path))
    if p.suffix in _SUFFIXES:
        p = p.with_suffix("")
    if not p.name:
        raise ValueError(f"checkpoint path {os.fspath(path)!r} has no file name")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def active_channels_of(model: nn.Module) -> dict[str, list[int]]:
    """Active channels of every pruning-aware SSM layer of ``model``, by module name."""
    return {name: m.active_channels.tolist() for name, m in model.named_modules()
            if name and isinstance(getattr(m, "active_channels", None), torch.Tensor)}


def save_checkpoint(path: PathLike, model: nn.Module, *, config, task_info, metrics: Optional[dict] = None,
                    extra: Optional[dict] = None) -> pathlib.Path:
    """Save ``model`` as ``<path>.safetensors`` + ``<path>.json`` (each replaced atomically).

    ``config`` (a ``models.Config`` or its dict) and ``task_info`` (a ``TaskInfo``) describe ``model`` so that
    :func:`load_checkpoint` can rebuild it; either may be None for a model built otherwise (the checkpoint
    then holds weights and metadata only: read them with :func:`load_weights` / :func:`read_meta`).
    ``metrics`` and ``extra`` are JSON-serializable dicts (tensors, numpy scalars, tuples and paths are
    converted; NaN/Inf become null).  Returns the weights path.
    """
    from safetensors.torch import save as safetensors_save

    from s4op_kernels import __version__
    from s4op_kernels.models import Config

    if isinstance(config, Mapping):
        config = Config.from_dict(config)
    if config is not None and not isinstance(config, Config):
        raise TypeError(f"save_checkpoint(config): expected a models.Config, its dict or None, got {type(config).__name__}")
    if task_info is not None and (not dataclasses.is_dataclass(task_info) or not hasattr(task_info, "num_classes")):
        raise TypeError(f"save_checkpoint(task_info): expected a TaskInfo or None, got {type(task_info).__name__}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"save_checkpoint(model): expected an nn.Module, got {type(model).__name__}")
    weights_path, sidecar_path = checkpoint_paths(path)
    if not weights_path.parent.is_dir():
        raise FileNotFoundError(f"save_checkpoint: the folder {weights_path.parent} does not exist")

    # safetensors wants contiguous tensors that share no storage; state_dict views may do both.
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    weights = safetensors_save(state, metadata={"format": "pt", "producer": FORMAT})
    sidecar = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "s4op_kernels": __version__,
        "saved_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "weights": {"file": weights_path.name, "sha256": hashlib.sha256(weights).hexdigest()},
        "config": None if config is None else config.to_dict(),
        "task_info": None if task_info is None else _info_to_dict(task_info),
        "active_channels": active_channels_of(model),
        "metrics": metrics or {},
        "extra": extra,
    }
    try:
        text = json.dumps(_jsonable(sidecar), indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as err:
        raise TypeError(f"save_checkpoint: metrics/extra must be JSON-serializable: {err}") from None

    # Both temporary files are complete before either old file is replaced, so a failure while writing
    # leaves the previous pair intact.  Between the two replacements a hard link keeps the old weights, so
    # a failure to replace the sidecar puts them back (where hard links are unsupported, the sidecar's
    # SHA-256 still makes load_checkpoint reject the mismatched pair).
    tmp_weights = _write_temp(weights_path, weights)
    try:
        tmp_sidecar = _write_temp(sidecar_path, text.encode("utf-8"))
    except BaseException:
        _remove(tmp_weights)
        raise
    backup = _link_backup(weights_path)
    try:
        os.replace(tmp_weights, weights_path)
        try:
            os.replace(tmp_sidecar, sidecar_path)
        except BaseException:
            if backup is not None:
                os.replace(backup, weights_path)
                backup = None
            raise
    finally:
        _remove(tmp_weights)
        _remove(tmp_sidecar)
        if backup is not None:
            _remove(backup)
    _fsync_dir(weights_path.parent)  # make the renames themselves durable
    return weights_path


def read_meta(path: PathLike) -> CheckpointMeta:
    """The parsed sidecar of checkpoint ``path`` (no weights are read)."""
    return _parse_sidecar(checkpoint_paths(path)[1])[0]


def load_weights(path: PathLike) -> dict[str, torch.Tensor]:
    """The state dict stored at checkpoint ``path``, checked against its sidecar's SHA-256 (when the sidecar
    exists).  For models that :func:`load_checkpoint` cannot rebuild: ``model.load_state_dict(load_weights(p))``."""
    weights_path, sidecar_path = checkpoint_paths(path)
    expected = None
    if sidecar_path.exists():
        expected = (_parse_sidecar(sidecar_path)[1].get("weights") or {}).get("sha256")
    return _read_weights(weights_path, sidecar_path, expected)


def load_checkpoint(path: PathLike, *, map_location: Union[str, torch.device] = "cpu") -> tuple[nn.Module, CheckpointMeta]:
    """Rebuild the model saved at ``path`` and load its weights (pruned layers resize themselves from their
    ``active_channels``).  Returns ``(model, meta)`` with the model in eval mode on ``map_location``."""
    from s4op_kernels.models import build_model

    weights_path, sidecar_path = checkpoint_paths(path)
    meta, raw = _parse_sidecar(sidecar_path)
    if meta.config is None or meta.task_info is None:
        raise CheckpointError(sidecar_path, "saved without a config or task_info, so the model cannot be rebuilt; "
                                            "build it yourself and call model.load_state_dict(load_weights(path))")
    state = _read_weights(weights_path, sidecar_path, (raw.get("weights") or {}).get("sha256"))
    model = build_model(meta.config, meta.task_info)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(weights_path, f"the weights do not fit the model described by {sidecar_path.name}: {err}") from None
    loaded = active_channels_of(model)
    if meta.active_channels and loaded != meta.active_channels:
        differing = sorted(k for k in set(loaded) | set(meta.active_channels) if loaded.get(k) != meta.active_channels.get(k))
        raise CheckpointError(sidecar_path, f"active channels of {differing} differ from those stored in {weights_path.name}")
    return model.to(map_location).eval(), meta


def atomic_write_bytes(path: PathLike, data: bytes) -> pathlib.Path:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, flushed to disk, then
    ``os.replace``.  Readers see the old content or the new one, never a partial file."""
    target = pathlib.Path(os.fspath(path))
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"atomic_write_bytes(data): expected bytes, got {type(data).__name__}")
    if not target.parent.is_dir():
        raise FileNotFoundError(f"atomic_write_bytes: the folder {target.parent} does not exist")
    tmp = _write_temp(target, bytes(data))
    try:
        os.replace(tmp, target)
    finally:
        _remove(tmp)
    _fsync_dir(target.parent)
    return target


# ---------------------------------------------------------------------- helpers
def _read_weights(weights_path: pathlib.Path, sidecar_path: pathlib.Path, expected_sha256: Optional[str]) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load as safetensors_load

    try:
        blob = weights_path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(weights_path, "the weights file is missing"
                                            + (f" (its sidecar {sidecar_path.name} exists)" if sidecar_path.exists() else "")) from None
    except OSError as err:
        raise CheckpointError(weights_path, f"cannot read the weights file: {err}") from None
    if expected_sha256 is not None and hashlib.sha256(blob).hexdigest() != expected_sha256:
        raise CheckpointError(weights_path, f"the weights file does not match its sidecar {sidecar_path.name} "
                                            "(SHA-256 differs: corrupt, or the two files come from different saves)")
    try:
        return safetensors_load(blob)
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise CheckpointError(weights_path, f"not a readable safetensors file: {err}") from None


def _parse_sidecar(sidecar_path: pathlib.Path) -> tuple[CheckpointMeta, dict]:
    from s4op_kernels.data.base import TaskInfo
    from s4op_kernels.models import Config

    try:
        raw = json.loads(sidecar_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(sidecar_path, "checkpoint sidecar not found (a checkpoint is <path>.safetensors + "
                                            "<path>.json)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise CheckpointError(sidecar_path, f"cannot read the sidecar: {err}") from None
    except json.JSONDecodeError as err:
        raise CheckpointError(sidecar_path, f"corrupt sidecar (invalid JSON at line {err.lineno}: {err.msg})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(sidecar_path, f"not an {FORMAT} sidecar (no \"format\": \"{FORMAT}\")")
    if raw.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(sidecar_path, f"format_version {raw['format_version']} is newer than this package "
                                            f"reads ({FORMAT_VERSION}); upgrade s4op-kernels")
    try:
        config = None if raw["config"] is None else Config.from_dict(raw["config"])
        task_info = None
        if raw["task_info"] is not None:
            info = dict(raw["task_info"])
            if info.get("class_names") is not None:
                info["class_names"] = tuple(info["class_names"])
            task_info = TaskInfo(**info)
    except KeyError as err:
        raise CheckpointError(sidecar_path, f"the sidecar has no {err.args[0]!r} entry") from None
    except (TypeError, ValueError) as err:
        raise CheckpointError(sidecar_path, f"invalid config or task_info: {err}") from None
    meta = CheckpointMeta(config=config, task_info=task_info, metrics=raw.get("metrics") or {},
                          active_channels=raw.get("active_channels") or {}, extra=raw.get("extra"),
                          version=str(raw.get("s4op_kernels", "")), saved_at=str(raw.get("saved_at", "")))
    return meta, raw


def _info_to_dict(info) -> dict:
    d = dataclasses.asdict(info)
    if d.get("class_names") is not None:
        d["class_names"] = list(d["class_names"])
    return d


def _jsonable(obj):
    """Plain JSON types from tensors, numpy scalars/arrays, tuples and paths; non-finite floats become None."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return _jsonable(obj.tolist())
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tolist") and type(obj).__module__.startswith("numpy"):
        return _jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None  # JSON has no NaN/Inf
    return obj


def _write_temp(target: pathlib.Path, data: bytes) -> str:
    """Write ``data`` to a new temporary file next to ``target``, flushed to disk; returns its path."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            # mkstemp makes the file private (0600); give it the permissions a plain open() would have.
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        _remove(tmp)
        raise
    return tmp


@functools.lru_cache(maxsize=None)
def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def _link_backup(path: pathlib.Path) -> Optional[str]:
    """A hard link to the existing file ``path`` under a temporary name (None if there is no file or the
    file system has no hard links)."""
    if not path.exists():
        return None
    fd, backup = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent)
    os.close(fd)
    os.unlink(backup)  # mkstemp reserved a unique name; link() needs it free
    try:
        os.link(path, backup)
    except OSError:
        return None
    return backup


def _fsync_dir(folder: pathlib.Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. platforms where folders cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


__all__ = ["save_checkpoint", "load_checkpoint", "load_weights", "read_meta", "atomic_write_bytes", "checkpoint_paths", "active_channels_of",
           "CheckpointMeta", "CheckpointError", "FORMAT", "FORMAT_VERSION"]
