"""Checkpoints of (possibly pruned) classifiers: ``<path>.safetensors`` + a ``<path>.json`` sidecar.

The weights file holds ``model.state_dict()``; a pruned S4D layer's entry includes its ``active_channels``
(and a compacted layer's SSM tensors hold only the active rows), so loading resizes each layer by itself.
The sidecar holds what is needed to rebuild the model without the code that trained it: the config, the
task description, the metrics, the active channels of every SSM layer (also readable without torch), the
package version, and the SHA-256 of the weights file.

Integrity (sidecar ``format_version`` 2).  The sidecar carries two digests:

- ``weights.sha256``: the SHA-256 of the weights file's bytes;
- ``digest``: ``{"algorithm": "sha256", "covers": [...], "value": ...}``, the SHA-256 of the canonical JSON
  (``json.dumps(entries, sort_keys=True, separators=(",", ":"), ensure_ascii=True)``, UTF-8) of the
  entries named in ``covers``: every other entry of the sidecar (``format``, ``format_version``,
  ``weights`` with its SHA-256, ``config``, ``task_info``, ``active_channels``, ``metrics``, ``extra``,
  ``s4op_kernels``, ``saved_at``).  Through ``weights.sha256`` it covers the weights too.

:func:`load_checkpoint`, :func:`load_weights` and :func:`read_meta` require the ``digest`` and check it
(so a hand-edited ``prenorm`` or ``active_channels`` is refused, not loaded as another model); the first two
also require ``weights.sha256`` and check it against the weights file (so a weights file and a sidecar from
different saves are never paired silently).  A sidecar without either digest, with an entry the digest does
not cover, or with a malformed entry (``format_version`` not an integer, ``config`` not a valid config,
``active_channels`` not a dict of integer lists, ...) raises :class:`CheckpointError` naming the file and
the entry.  :func:`load_weights` needs the sidecar: without one it refuses (read a bare safetensors file
with ``safetensors.torch.load_file``).  The digests detect corruption, hand edits and mismatched pairs; they
are not signatures (whoever can write both files can write a consistent pair), so :func:`load_checkpoint`
also refuses, before building anything, a config whose model would be far larger than the weights file
(sizes above fixed limits, or more than ``_SIZE_FACTOR`` times the stored elements plus ``_SIZE_SLACK``).

Version-1 sidecars (written before this format) are refused: their ``weights.sha256`` covered the weights
only, not the config, and reading them would let anyone bypass the digest by writing ``"format_version":
1``.  :func:`upgrade_checkpoint` rewrites a version-1 sidecar you trust as version 2 once (it checks the
weights' SHA-256 and that the weights fit the config first).

Nothing is overwritten in place: both files are first written in full to temporary files in the destination
folder and flushed to disk, then each replaces its old file with ``os.replace``; if the second replacement
fails, the old weights are put back.  A failure at any point leaves the previous checkpoint as it was.
:func:`atomic_write_bytes` (from :mod:`s4op_kernels._atomic`) does the same for any single file (run summaries, reports).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import hmac
import json
import math
import os
import pathlib
import tempfile
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

import torch
from torch import nn

from s4op_kernels._atomic import atomic_write_bytes, fsync_dir as _fsync_dir, remove as _remove, write_temp as _write_temp

FORMAT = "s4op-checkpoint"
FORMAT_VERSION = 2
_SUFFIXES = (".safetensors", ".json")
DIGEST_ALGORITHM = "sha256"
# Every sidecar entry save_checkpoint writes; version 2 requires each, covered by the digest.
_ENTRIES = ("format", "format_version", "s4op_kernels", "saved_at", "weights", "config", "task_info",
            "active_channels", "metrics", "extra")
# Sizes a sidecar may declare (checked before anything is built): far above any model this package trains.
_SIZE_LIMITS = {"n_layers": 4096, "d_model": 65536, "d_state": 1 << 20, "num_classes": 1 << 20,
                "in_channels": 1 << 20, "vocab_size": 1 << 26}
# load_checkpoint refuses a config implying more than _SIZE_FACTOR * (elements in the weights file) +
# _SIZE_SLACK elements.  Compacting an S4D layer to no channels keeps its output mixing (2H^2 + 2H), so a
# fully compacted model holds about 1 / (1 + N/H) of its dense size: a factor of 16 leaves room for N/H up
# to 15, and the slack (64 MB of float32) lets small models of any shape through.
_SIZE_FACTOR = 16
_SIZE_SLACK = 1 << 24

PathLike = Union[str, os.PathLike]


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, malformed, inconsistent or fails its digest; the message
    names the file (and the sidecar entry, where one is at fault)."""

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
        text = _sidecar_text(sidecar)
    except (TypeError, ValueError) as err:
        raise TypeError(f"save_checkpoint: metrics/extra must be JSON-serializable: {err}") from None

    # Both temporary files are complete before either old file is replaced, so a failure while writing
    # leaves the previous pair intact.  Between the two replacements a hard link keeps the old weights, so
    # a failure to replace the sidecar puts them back (where hard links are unsupported, the sidecar's
    # weights SHA-256 still makes load_checkpoint reject the mismatched pair).
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
    """The parsed sidecar of checkpoint ``path``, its digest checked (no weights are read, so the weights
    file's SHA-256 is not)."""
    return _parse_sidecar(checkpoint_paths(path)[1])[0]


def load_weights(path: PathLike) -> dict[str, torch.Tensor]:
    """The state dict stored at checkpoint ``path``, checked against its sidecar: the sidecar's digest and
    the weights file's SHA-256.  The sidecar is required (a weights file without one raises
    :class:`CheckpointError`; read a bare safetensors file with ``safetensors.torch.load_file``).  For
    models that :func:`load_checkpoint` cannot rebuild: ``model.load_state_dict(load_weights(p))``."""
    weights_path, sidecar_path = checkpoint_paths(path)
    _, raw = _parse_sidecar(sidecar_path)
    return _read_weights(weights_path, sidecar_path, raw["weights"]["sha256"])


def load_checkpoint(path: PathLike, *, map_location: Union[str, torch.device] = "cpu") -> tuple[nn.Module, CheckpointMeta]:
    """Rebuild the model saved at ``path`` and load its weights (pruned layers resize themselves from their
    ``active_channels``).  Returns ``(model, meta)`` with the model in eval mode on ``map_location``.

    Both digests are checked first, and the config's size against the weights file's before the model is
    built; any failure raises :class:`CheckpointError` naming the file."""
    weights_path, sidecar_path = checkpoint_paths(path)
    meta, raw = _parse_sidecar(sidecar_path)
    if meta.config is None or meta.task_info is None:
        raise CheckpointError(sidecar_path, "saved without a config or task_info, so the model cannot be rebuilt; "
                                            "build it yourself and call model.load_state_dict(load_weights(path))")
    state = _read_weights(weights_path, sidecar_path, raw["weights"]["sha256"])
    model = _rebuild(meta, state, weights_path, sidecar_path)
    return model.to(map_location).eval(), meta


def upgrade_checkpoint(path: PathLike) -> pathlib.Path:
    """Rewrite the version-1 sidecar of checkpoint ``path`` as version 2 (same entries, plus the digest);
    the weights file is left as it is.  Version 1 covered only the weights with its SHA-256, so run this
    only on checkpoints you trust: it checks that SHA-256 and, when the sidecar has a config and task_info,
    that the weights load into the model they describe, but it cannot tell an edited config that still fits
    (e.g. ``prenorm``).  A version-2 checkpoint is checked and left unchanged.  Returns the weights path."""
    weights_path, sidecar_path = checkpoint_paths(path)
    meta, raw = _parse_sidecar(sidecar_path, allow_v1=True)
    state = _read_weights(weights_path, sidecar_path, raw["weights"]["sha256"])
    if meta.config is not None and meta.task_info is not None:
        _rebuild(meta, state, weights_path, sidecar_path)
    if raw["format_version"] != FORMAT_VERSION:
        upgraded = {k: v for k, v in raw.items() if k != "digest"}
        upgraded["format_version"] = FORMAT_VERSION
        atomic_write_bytes(sidecar_path, _sidecar_text(upgraded).encode("utf-8"))
    return weights_path


# ---------------------------------------------------------------------- helpers
def _rebuild(meta: CheckpointMeta, state: dict, weights_path: pathlib.Path, sidecar_path: pathlib.Path) -> nn.Module:
    """The model ``meta`` describes with ``state`` loaded, after checking that its size fits the weights."""
    from s4op_kernels.models import build_model

    _check_size(meta, state, weights_path, sidecar_path)
    try:
        model = build_model(meta.config, meta.task_info)
    except (TypeError, ValueError) as err:
        raise CheckpointError(sidecar_path, f"cannot build the model of entries 'config' and 'task_info': {err}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(weights_path, f"the weights do not fit the model described by {sidecar_path.name}: {err}") from None
    loaded = active_channels_of(model)
    if loaded != meta.active_channels:
        differing = sorted(k for k in set(loaded) | set(meta.active_channels) if loaded.get(k) != meta.active_channels.get(k))
        raise CheckpointError(sidecar_path, f"active channels of {differing} differ from those stored in {weights_path.name}")
    return model


def _check_size(meta: CheckpointMeta, state: dict, weights_path: pathlib.Path, sidecar_path: pathlib.Path) -> None:
    """Refuse a config/task_info implying a model far larger than the weights file holds (before building
    it: a hostile sidecar could otherwise ask for terabytes).  The dense model is built on the meta device
    (no memory) with one and two blocks; every block is the same, so that gives the size of any depth."""
    from s4op_kernels.models import build_model

    stored = sum(t.numel() for t in state.values())
    config, info = meta.config, meta.task_info

    def numel(n_layers: int) -> int:
        with torch.device("meta"):
            model = build_model(config.replace(n_layers=n_layers), info, seed=0)
        return sum(t.numel() for t in model.state_dict().values())

    try:
        one, two = numel(1), numel(2)
    except Exception:  # a registered layer that cannot be built on the meta device: the entry limits still hold
        return
    implied = one + (config.n_layers - 1) * (two - one)
    if implied > _SIZE_FACTOR * stored + _SIZE_SLACK:
        sizes = ", ".join(f"{k}={getattr(config, k)}" for k in ("n_layers", "d_model", "d_state"))
        raise CheckpointError(sidecar_path, f"entries 'config' ({sizes}) and 'task_info' describe a model of {implied:,} "
                                            f"elements, but {weights_path.name} holds {stored:,}; refusing to build it")


def _read_weights(weights_path: pathlib.Path, sidecar_path: pathlib.Path, expected_sha256: str) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load as safetensors_load

    try:
        blob = weights_path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(weights_path, "the weights file is missing"
                                            + (f" (its sidecar {sidecar_path.name} exists)" if sidecar_path.exists() else "")) from None
    except OSError as err:
        raise CheckpointError(weights_path, f"cannot read the weights file: {err}") from None
    if not hmac.compare_digest(hashlib.sha256(blob).hexdigest(), expected_sha256):
        raise CheckpointError(weights_path, f"the weights file does not match its sidecar {sidecar_path.name} "
                                            "(SHA-256 differs: corrupt, or the two files come from different saves)")
    try:
        return safetensors_load(blob)
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise CheckpointError(weights_path, f"not a readable safetensors file: {err}") from None


def _canonical(entries: Mapping[str, Any]) -> bytes:
    """The bytes the sidecar digest is the SHA-256 of: canonical JSON (sorted keys, no whitespace, ASCII)."""
    return json.dumps(entries, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("utf-8")


def _digest_value(raw: Mapping[str, Any], covers) -> str:
    return hashlib.sha256(_canonical({k: raw[k] for k in covers})).hexdigest()


def _sidecar_text(sidecar: dict) -> str:
    """The sidecar's JSON text with its ``digest`` (over every other entry).  The digest is computed over
    the entries as a reader parses them back, so it verifies whatever the float formatting."""
    body = json.loads(json.dumps(_jsonable(sidecar), allow_nan=False))
    body.pop("digest", None)
    covers = sorted(body)
    body["digest"] = {"algorithm": DIGEST_ALGORITHM, "covers": covers, "value": _digest_value(body, covers)}
    return json.dumps(body, indent=2, allow_nan=False) + "\n"


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_sha256(v) -> bool:
    return isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # e.g. 1e999: JSON has no infinity, and the digest's canonical form neither
        raise ValueError(f"{text} is out of range")
    return value


def _parse_sidecar(sidecar_path: pathlib.Path, *, allow_v1: bool = False) -> tuple[CheckpointMeta, dict]:
    """Read, verify (digest) and validate the sidecar; ``allow_v1`` (upgrade_checkpoint only) accepts a
    version-1 sidecar, which has no digest."""
    try:
        raw = json.loads(sidecar_path.read_text(encoding="utf-8"), parse_constant=_reject_constant,
                         parse_float=_finite_float)
    except FileNotFoundError:
        raise CheckpointError(sidecar_path, "checkpoint sidecar not found (a checkpoint is <path>.safetensors + "
                                            "<path>.json; the sidecar holds the digests the weights are checked "
                                            "against)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise CheckpointError(sidecar_path, f"cannot read the sidecar: {err}") from None
    except json.JSONDecodeError as err:
        raise CheckpointError(sidecar_path, f"corrupt sidecar (invalid JSON at line {err.lineno}: {err.msg})") from None
    except (ValueError, RecursionError) as err:
        raise CheckpointError(sidecar_path, f"corrupt sidecar ({err})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(sidecar_path, f"not an {FORMAT} sidecar (no \"format\": \"{FORMAT}\")")

    def bad(entry: str, message: str):
        raise CheckpointError(sidecar_path, f"invalid sidecar entry {entry!r}: {message}")

    if "format_version" not in raw:
        raise CheckpointError(sidecar_path, "the sidecar has no 'format_version' entry")
    version = raw["format_version"]
    if not _is_int(version) or version < 1:
        bad("format_version", f"expected an integer >= 1, got {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(sidecar_path, f"format_version {version} is newer than this package reads "
                                            f"({FORMAT_VERSION}); upgrade s4op-kernels")
    if version < FORMAT_VERSION and not allow_v1:
        raise CheckpointError(sidecar_path, f"format_version {version} sidecars have no digest over the config, so "
                                            "this package does not read them; if you trust this checkpoint, "
                                            "rewrite its sidecar once with s4op_kernels.checkpoint."
                                            "upgrade_checkpoint(path) (it checks the weights' SHA-256 and that "
                                            "they fit the config first)")
    missing = [k for k in _ENTRIES if k not in raw]
    if missing:
        raise CheckpointError(sidecar_path, f"the sidecar has no {missing[0]!r} entry")
    if version == FORMAT_VERSION:
        _verify_digest(raw, sidecar_path)

    weights = raw["weights"]
    if not isinstance(weights, dict):
        bad("weights", f"expected a dict with 'file' and 'sha256', got {type(weights).__name__}")
    if "sha256" not in weights:
        bad("weights", "no 'sha256' (the weights file's digest)")
    if not _is_sha256(weights["sha256"]):
        bad("weights", f"'sha256' must be 64 lowercase hex digits, got {weights['sha256']!r}")
    if not isinstance(weights.get("file"), str):
        bad("weights", f"'file' must be a str, got {weights.get('file')!r}")
    for entry in ("s4op_kernels", "saved_at"):
        if not isinstance(raw[entry], str):
            bad(entry, f"expected a str, got {raw[entry]!r}")
    if not isinstance(raw["metrics"], dict):
        bad("metrics", f"expected a dict, got {type(raw['metrics']).__name__}")
    if raw["extra"] is not None and not isinstance(raw["extra"], dict):
        bad("extra", f"expected a dict or null, got {type(raw['extra']).__name__}")
    active = raw["active_channels"]
    if not isinstance(active, dict):
        bad("active_channels", f"expected a dict of layer name -> list of channel indices, got {type(active).__name__}")
    for name, channels in active.items():
        if not isinstance(channels, list) or not all(_is_int(c) and c >= 0 for c in channels):
            bad("active_channels", f"{name!r} must be a list of integers >= 0, got {channels!r:.200}")
    config = None if raw["config"] is None else _parse_config(raw["config"], bad)
    task_info = None if raw["task_info"] is None else _parse_task_info(raw["task_info"], bad)
    meta = CheckpointMeta(config=config, task_info=task_info, metrics=raw["metrics"], active_channels=active,
                          extra=raw["extra"], version=raw["s4op_kernels"], saved_at=raw["saved_at"])
    return meta, raw


def _verify_digest(raw: dict, sidecar_path: pathlib.Path) -> None:
    digest = raw.get("digest")
    if digest is None:
        raise CheckpointError(sidecar_path, "the sidecar has no 'digest' entry (format_version 2 requires the digest "
                                            "over its entries; re-save the checkpoint)")
    if not isinstance(digest, dict) or set(digest) != {"algorithm", "covers", "value"}:
        raise CheckpointError(sidecar_path, "invalid sidecar entry 'digest': expected {\"algorithm\", \"covers\", \"value\"}")
    if digest["algorithm"] != DIGEST_ALGORITHM:
        raise CheckpointError(sidecar_path, f"invalid sidecar entry 'digest': algorithm {digest['algorithm']!r} is not "
                                            f"{DIGEST_ALGORITHM!r}")
    covers = digest["covers"]
    if not isinstance(covers, list) or not all(isinstance(k, str) for k in covers) or len(set(covers)) != len(covers):
        raise CheckpointError(sidecar_path, "invalid sidecar entry 'digest': 'covers' must be a list of distinct entry names")
    uncovered = sorted(set(raw) - {"digest"} - set(covers))
    if uncovered:
        raise CheckpointError(sidecar_path, f"sidecar entries {uncovered} are not covered by its digest")
    absent = sorted(set(covers) - set(raw))
    if absent:
        raise CheckpointError(sidecar_path, f"sidecar entries {absent} are covered by its digest but missing")
    if not _is_sha256(digest["value"]):
        raise CheckpointError(sidecar_path, "invalid sidecar entry 'digest': 'value' must be 64 lowercase hex digits")
    if not hmac.compare_digest(_digest_value(raw, covers), digest["value"]):
        raise CheckpointError(sidecar_path, "the sidecar does not match its digest (edited by hand or corrupt): its "
                                            "config, task, active channels or weights SHA-256 cannot be trusted")


def _parse_config(data, bad):
    from s4op_kernels.models import Config

    if not isinstance(data, dict):
        bad("config", f"expected a dict or null, got {type(data).__name__}")
    try:
        config = Config.from_dict(data)
    except (TypeError, ValueError) as err:
        bad("config", str(err))
    for key in ("n_layers", "d_model", "d_state"):
        if getattr(config, key) > _SIZE_LIMITS[key]:
            bad("config", f"{key} = {getattr(config, key)} exceeds the limit {_SIZE_LIMITS[key]}")
    return config


_TASK_FIELDS = {"task": str, "num_classes": int, "seq_len": int, "multilabel": bool, "vocab_size": int,
                "in_channels": int, "class_names": list}


def _parse_task_info(data, bad):
    from s4op_kernels.data.base import TaskInfo

    if not isinstance(data, dict):
        bad("task_info", f"expected a dict or null, got {type(data).__name__}")
    unknown = sorted(set(data) - set(_TASK_FIELDS))
    if unknown:
        bad("task_info", f"unknown field(s) {unknown}; valid fields: {sorted(_TASK_FIELDS)}")
    for key in ("task", "num_classes", "seq_len"):
        if key not in data:
            bad("task_info", f"no {key!r}")
    info = dict(data)
    if not isinstance(info["task"], str):
        bad("task_info", f"task must be a str, got {info['task']!r}")
    for key, minimum in (("num_classes", 1), ("seq_len", 1), ("vocab_size", 2), ("in_channels", 1)):
        v = info.get(key)
        if v is None and key in ("vocab_size", "in_channels"):
            continue
        if not _is_int(v) or v < minimum:
            bad("task_info", f"{key} must be an integer >= {minimum}, got {v!r}")
        if v > _SIZE_LIMITS.get(key, v):
            bad("task_info", f"{key} = {v} exceeds the limit {_SIZE_LIMITS[key]}")
    if not isinstance(info.get("multilabel", False), bool):
        bad("task_info", f"multilabel must be a bool, got {info['multilabel']!r}")
    names = info.get("class_names")
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            bad("task_info", f"class_names must be a list of str or null, got {names!r:.200}")
        info["class_names"] = tuple(names)
    try:
        return TaskInfo(**info)
    except (TypeError, ValueError) as err:
        bad("task_info", str(err))


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


__all__ = ["save_checkpoint", "load_checkpoint", "load_weights", "read_meta", "upgrade_checkpoint", "atomic_write_bytes",
           "checkpoint_paths", "active_channels_of",
           "CheckpointMeta", "CheckpointError", "FORMAT", "FORMAT_VERSION"]
