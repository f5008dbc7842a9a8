"""Atomic file writes: readers see a file's old content or its new content, never a partial one.

Every file the package writes for the user (checkpoints, ``search.json``, reports) goes through here: the
data is first written in full to a temporary file in the destination folder and flushed to disk, then
``os.replace`` swaps it in, and the folder is flushed so the rename itself survives a crash.
(:mod:`s4op_kernels.checkpoint` composes these steps for its two-file pairs.)
"""

from __future__ import annotations

import functools
import os
import pathlib
import tempfile
from typing import Union

PathLike = Union[str, os.PathLike]


def atomic_write_bytes(path: PathLike, data: bytes) -> pathlib.Path:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, flushed to disk, then
    ``os.replace``.  Readers see the old content or the new one, never a partial file."""
    target = pathlib.Path(os.fspath(path))
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"atomic_write_bytes(data): expected bytes, got {type(data).__name__}")
    if not target.parent.is_dir():
        raise FileNotFoundError(f"atomic_write_bytes: the folder {target.parent} does not exist")
    tmp = write_temp(target, bytes(data))
    try:
        os.replace(tmp, target)
    finally:
        remove(tmp)
    fsync_dir(target.parent)
    return target


def write_temp(target: pathlib.Path, data: bytes) -> str:
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
        remove(tmp)
        raise
    return tmp


@functools.lru_cache(maxsize=None)
def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def fsync_dir(folder: pathlib.Path) -> None:
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


def remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
