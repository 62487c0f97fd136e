"""The shared file lock: exclusive between processes, named holder, bounded wait, and no stale
lock after its holder is SIGKILLed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from skysense.core.file_lock import FileLock, LockHeldError, read_holder

HOLDER = """
import sys, time
from skysense.core.file_lock import FileLock
lock = FileLock(sys.argv[1], purpose="test holder").acquire()
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _holder(path: Path, hold_s: float) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), str(hold_s)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_process_is_refused_with_the_lock_file_and_its_holder(tmp_path: Path) -> None:
    path = tmp_path / "locks" / "run.lock"
    proc = _holder(path, 60)
    try:
        start = time.monotonic()
        with pytest.raises(LockHeldError) as caught:
            FileLock(path, purpose="a second run").acquire()
        assert time.monotonic() - start < 2  # wait_s=0: at once
        message = str(caught.value)
        assert str(path) in message
        assert f"pid {proc.pid} on {socket.gethostname()}" in message and "test holder" in message
        assert caught.value.holder["pid"] == proc.pid and caught.value.holder["started"]
    finally:
        proc.kill()
        proc.wait()


def test_sigkilled_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    path = tmp_path / "run.lock"
    proc = _holder(path, 60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert path.exists() and read_holder(path)["pid"] == proc.pid  # the file stays, the lock not
    with FileLock(path, purpose="after the kill") as lock:
        assert lock.held and read_holder(path)["pid"] == os.getpid()
    assert not lock.held


def test_bounded_wait_gets_the_lock_when_the_holder_finishes(tmp_path: Path) -> None:
    path = tmp_path / "run.lock"
    proc = _holder(path, 1.5)
    start = time.monotonic()
    with FileLock(path, purpose="waiter", wait_s=60):
        waited = time.monotonic() - start
    proc.wait()
    assert 0.5 < waited < 30
    proc = _holder(path, 60)
    try:
        start = time.monotonic()
        with pytest.raises(LockHeldError, match="waited 1 s"):
            FileLock(path, purpose="waiter", wait_s=1.0).acquire()
        assert time.monotonic() - start >= 1.0
    finally:
        proc.kill()
        proc.wait()


def test_two_locks_on_one_file_exclude_each_other_in_one_process(tmp_path: Path) -> None:
    path = tmp_path / "run.lock"
    with FileLock(path, purpose="first"), pytest.raises(LockHeldError, match="first"):
        FileLock(path, purpose="second").acquire()
    with FileLock(path, purpose="third"):
        pass
