"""One process per run folder: an exclusive lock on ``<folder>/.s4op.lock`` while a command writes there.

Two searches into one folder would each rewrite ``search.json``, the rate checkpoints and the report, and
the last to finish would silently discard the other's results.  :func:`lock_run_folder` takes an exclusive,
non-blocking lock on a file in the folder (``fcntl.flock``; ``msvcrt.locking`` on Windows) and refuses a
second holder with :class:`RunFolderBusyError`, naming the process that holds it.  The operating system
releases the lock when its process ends, however it ends (a SIGKILL included), so a lock left by a killed
process is never mistaken for a live one: the file's stale content is simply overwritten.

Taking the lock also checks, before any work starts, that the folder can be created and written (a
read-only ``--out`` used to fail only after the baseline had been trained).  Re-entrant within one thread
(the search inside ``s4op prune`` takes it again); another thread of the same process is refused like
another process.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Iterator

LOCK_FILE = ".s4op.lock"

_guard = threading.Lock()
_held: dict[str, list] = {}  # realpath of the folder -> [owning thread id, depth, fd]


class RunFolderBusyError(RuntimeError):
    """Another s4op process (or thread) is writing into this run folder."""


def prepare_run_folder(folder) -> Path:
    """Create ``folder`` (and its parents) if missing; a clear error if it is a file or cannot be created."""
    path = Path(os.fspath(folder))
    if not str(folder):
        raise ValueError("the run folder path is empty")
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{path}: exists and is not a folder; choose a folder for the run's files")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(f"{path}: cannot create the run folder ({err.strerror or err})") from None
    return path


@contextlib.contextmanager
def lock_run_folder(folder) -> Iterator[Path]:
    """Hold the exclusive lock of run folder ``folder`` (created if missing) for the ``with`` block."""
    path = prepare_run_folder(folder)
    key = os.path.realpath(path)
    me = threading.get_ident()
    with _guard:
        held = _held.get(key)
        if held is not None:
            if held[0] != me:
                raise RunFolderBusyError(f"{path}: another thread of this process is running a command in this run "
                                         "folder; use another folder")
            held[1] += 1
    if held is not None:
        try:
            yield path
        finally:
            with _guard:
                held[1] -= 1
        return

    fd = _open_lock_file(path)
    try:
        if not _try_lock(fd):
            holder = _read_holder(fd)
            raise RunFolderBusyError(f"{path}: another s4op process is writing into this run folder ({holder}); wait "
                                     "for it to finish, or use another folder")
        _write_holder(fd)
        with _guard:
            _held[key] = [me, 1, fd]
        try:
            yield path
        finally:
            with _guard:
                _held.pop(key, None)
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # released: no holder to name (the file stays; see _try_lock)
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _open_lock_file(path: Path) -> int:
    try:
        return os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise OSError(f"{path}: cannot write into the run folder ({err.strerror or err}); choose a writable "
                      "folder") from None


def _try_lock(fd: int) -> bool:
    # The lock file is never deleted: unlinking it on release would let a process that opened the old file
    # and one that creates a new file both hold "the" lock.
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _write_holder(fd: int) -> None:
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    text = f"pid {os.getpid()} on {socket.gethostname()}, since {started}: {' '.join(sys.argv)[:200]}\n"
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode(), 0) if hasattr(os, "pwrite") else os.write(fd, text.encode())


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 400).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "holder unknown"
