"""Test helper: start a process, SIGKILL it at a chosen point, and wait for it (crash tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


def kill_when_ready(
    cmd: Sequence[str],
    ready: Path,
    *,
    what: str,
    env: dict[str, str] | None = None,
    timeout_s: float = 120.0,
) -> int:
    """Run ``cmd`` and SIGKILL it as soon as the file ``ready`` exists (the process writes it at
    the point to crash); returns the process's exit status (``-SIGKILL``).

    Args:
        cmd: the command line.
        ready: the file whose appearance means "kill now".
        what: the process in words, for the failure messages.
        env: its environment (default: this process's).
        timeout_s: how long to wait for ``ready``.
    """
    proc = subprocess.Popen(list(cmd), env=env)
    try:
        deadline = time.monotonic() + timeout_s
        while not ready.exists():
            assert proc.poll() is None, f"{what} ended before it could be killed"
            assert time.monotonic() < deadline, f"{what} never reached the point to kill it"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode
