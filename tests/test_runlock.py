"""runlock: one command per run folder, released however its process ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from s4op_kernels import runlock
from s4op_kernels.runlock import RunFolderBusyError, lock_run_folder

_HOLD = ("import sys, time\n"
         "from s4op_kernels.runlock import lock_run_folder\n"
         "with lock_run_folder(sys.argv[1]):\n"
         "    print('held', flush=True)\n"
         "    time.sleep(120)\n")


@pytest.fixture
def holder(tmp_path):
    """A separate process holding the lock of tmp_path / 'run' until killed."""
    folder = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder)], stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(__file__))
    assert proc.stdout.readline().strip() == "held"
    yield folder, proc
    proc.kill()
    proc.wait()


def test_a_second_process_is_refused_and_told_who_holds_the_folder(holder):
    folder, proc = holder
    with pytest.raises(RunFolderBusyError, match=f"another s4op process .*pid {proc.pid}"):
        with lock_run_folder(folder):
            pass


def test_a_lock_left_by_a_killed_process_is_not_mistaken_for_a_live_one(holder):
    folder, proc = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (folder / runlock.LOCK_FILE).read_text().startswith(f"pid {proc.pid}")  # the stale record remains
    with lock_run_folder(folder):
        assert (folder / runlock.LOCK_FILE).read_text().startswith(f"pid {os.getpid()}")


def test_two_searches_into_one_folder_the_second_exits_1(holder, capsys):
    from s4op_kernels.app import cli

    folder, _ = holder
    assert cli.main(["run", "--out", str(folder), "--no-progress"]) == 1
    assert "another s4op process is writing into this run folder" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == [runlock.LOCK_FILE]  # nothing was written


def test_report_is_refused_while_a_search_writes_the_folder(holder, capsys):
    from s4op_kernels.app import cli

    folder, _ = holder
    (folder / "search.json").write_text("{}")
    assert cli.main(["report", str(folder)]) == 1
    assert "another s4op process" in capsys.readouterr().err


def test_reentrant_in_one_thread_refused_in_another(tmp_path):
    folder = tmp_path / "run"
    errors = []
    with lock_run_folder(folder):
        with lock_run_folder(folder):  # the search inside a pipeline
            pass

        def other():
            try:
                with lock_run_folder(folder):
                    pass
            except RunFolderBusyError as err:
                errors.append(str(err))

        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert errors and "another thread" in errors[0]
    with lock_run_folder(folder):  # released after the outer block
        pass


def test_released_after_an_exception_and_creates_missing_folders(tmp_path):
    folder = tmp_path / "a" / "b"
    with pytest.raises(KeyError):
        with lock_run_folder(folder):
            raise KeyError("boom")
    assert folder.is_dir()
    with lock_run_folder(folder):
        pass


def test_a_file_or_an_empty_path_is_refused(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(NotADirectoryError, match="exists and is not a folder"):
        with lock_run_folder(target):
            pass
    with pytest.raises(ValueError, match="empty"):
        with lock_run_folder(""):
            pass
