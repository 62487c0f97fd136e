"""An exclusive lock on a file, held by one process of this machine at a time.

The primitive is ``flock(LOCK_EX)`` on a lock file: the kernel releases it when the holder
closes the file or dies (SIGKILL included), so a killed run never leaves a stale lock, and a
lock file that still exists means nothing by itself. The holder writes who it is (pid, host,
user, start time, what it does) into the file, so a process that does not get the lock can say
who has it. The descriptor is not inherited by child processes unless passed on purpose
(``subprocess`` ``pass_fds=(lock.fileno(),)``), in which case the lock is held until every
process that has it open is gone.

``flock`` excludes processes of one machine, and of several machines on a file system that
supports it (local disks; NFSv4 maps it onto byte-range locks). Two ``FileLock`` objects on the
same path exclude each other inside one process too (one open file description each).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import pwd
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from skysense.core.errors import SkySenseError

HOLDER_BYTES = 4096  # at most this much of a lock file is read back (its holder record)


class LockHeldError(SkySenseError):
    """Another process holds a lock; the message names the lock file and the holder."""

    def __init__(
        self, path: Path, holder: dict[str, Any] | None, waited_s: float, purpose: str
    ) -> None:
        self.path = path
        self.holder = holder
        self.waited_s = waited_s
        super().__init__(
            f"cannot start {purpose}: {path} is held by {describe_holder(holder)}"
            f"{f' (waited {waited_s:.0f} s)' if waited_s >= 1 else ''}. Wait for that run to "
            "finish or stop it, then retry (the lock of a process that died is released by itself: "
            "there is nothing to delete)"
        )


def holder_record(purpose: str) -> dict[str, Any]:
    """Who this process is: ``pid``, ``host``, ``user``, ``started`` (UTC, ISO 8601),
    ``purpose``.
    """
    try:
        user = os.environ.get("USER") or pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = str(os.getuid())
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "user": user,
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "purpose": purpose,
    }


def describe_holder(holder: dict[str, Any] | None) -> str:
    """``pid 123 on host (user), since 2026-11-27T10:00:00+00:00: skysense train`` or a fallback."""
    if not holder:
        return "a process that has not written its name yet (it is just starting)"
    text = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} ({holder.get('user', '?')})"
    if holder.get("started"):
        text += f", since {holder['started']}"
    if holder.get("purpose"):
        text += f": {holder['purpose']}"
    return text


def read_holder(path: Path) -> dict[str, Any] | None:
    """The holder record in a lock file (the last process that took it), or None."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(HOLDER_BYTES)
    except OSError:
        return None
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


class FileLock:
    """Exclusive ``flock`` on ``path``, as a context manager.

    Args:
        path: the lock file (created with its folder when missing; never deleted).
        purpose: what the holder does, in words (written for whoever waits, e.g. ``"skysense
            train --out checkpoints"``).
        wait_s: how long to wait for a held lock before :class:`LockHeldError`; 0 fails at once.
        poll_s: interval between attempts while waiting.
    """

    def __init__(
        self, path: str | Path, purpose: str, wait_s: float = 0.0, poll_s: float = 0.1
    ) -> None:
        self.path = Path(path)
        self.purpose = purpose
        self.wait_s = wait_s
        self.poll_s = poll_s
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def fileno(self) -> int:
        """The lock file's descriptor (to pass to a child process that must keep the lock)."""
        if self._fd is None:
            raise RuntimeError(f"{self.path}: lock not held")
        return self._fd

    def acquire(self) -> Self:
        """Take the lock, waiting up to ``wait_s``.

        Raises:
            LockHeldError: another process still holds it after ``wait_s``.
        """
        if self._fd is not None:
            raise RuntimeError(f"{self.path}: already held by this object")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        start = time.monotonic()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - start
                if waited >= self.wait_s:
                    os.close(fd)
                    raise LockHeldError(
                        self.path, read_holder(self.path), waited, self.purpose
                    ) from None
                time.sleep(min(self.poll_s, max(self.wait_s - waited, 0.0)))
        record = json.dumps(holder_record(self.purpose)).encode("utf-8")
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Release the lock (the file and its last holder record stay)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
