"""A real ``mlflow server`` process on 127.0.0.1, for tests, benchmarks and local review.

One worker and no job execution keep it at two processes (about 0.5 GB). The backend store is any
SQLAlchemy URI MLflow accepts (``sqlite:///...``, ``postgresql://...``); artifacts are served by
the server itself (``--artifacts-destination``), so clients need no access to the folder.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from skysense.core.credentials import strip_credentials
from skysense.core.errors import RegistryError, RegistryUnavailable


@dataclass(frozen=True)
class MlflowServer:
    """A running tracking server: its URL and the process serving it."""

    url: str
    port: int
    process: subprocess.Popen
    log_path: Path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_health(
    url: str, timeout_s: float = 90.0, process: subprocess.Popen | None = None
) -> None:
    """Poll ``url/health`` until it answers 200.

    Raises:
        RegistryError: its process exited before it was healthy.
        RegistryUnavailable: the server did not answer 200 within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    last: str = ""
    url = strip_credentials(url, marker=False)  # /health needs no login; urllib takes none
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RegistryError(
                f"mlflow server at {strip_credentials(url)} exited with code "
                f"{process.returncode} before it was healthy; see its log for the cause (bad "
                "backend URI, port in use)"
            )
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            last = f"{type(exc).__name__}: {exc}"  # refused, reset, not HTTP, bad URL
        time.sleep(0.3)
    error = RegistryUnavailable(
        f"mlflow server at {strip_credentials(url)} was not healthy after {timeout_s:.0f} s "
        f"(last answer: {strip_credentials(last)}); raise the timeout or check the server log"
    )
    error.last_answer = last
    raise error


@contextlib.contextmanager
def start_mlflow_server(
    backend_uri: str,
    artifacts_dir: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    timeout_s: float = 90.0,
    log_dir: str | Path | None = None,
    app_name: str | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[MlflowServer]:
    """Start ``mlflow server`` (one worker, no job execution), yield it when healthy, stop it.

    The backend URI reaches the server through ``MLFLOW_BACKEND_STORE_URI``, not its command
    line, so a password in it does not show in the process list.

    Args:
        backend_uri: backend store URI, e.g. ``sqlite:////tmp/x/mlflow.db`` or
            ``postgresql://user:pw@127.0.0.1:5432/mlflow``.
        artifacts_dir: folder (or URI) where the server stores artifacts it proxies.
        host: interface to bind; keep the loopback for tests.
        port: TCP port; a free one when ``None``.
        timeout_s: how long to wait for ``/health``.
        log_dir: where ``mlflow-server.log`` goes (default: next to the artifacts).
        app_name: ``basic-auth`` for MLflow's login and permissions app (it reads
            ``MLFLOW_AUTH_CONFIG_PATH`` and ``MLFLOW_FLASK_SERVER_SECRET_KEY`` from ``env``).
        env: more environment for the server process.

    Yields:
        The running :class:`MlflowServer`; its ``url`` is a tracking and registry URI.
    """
    port = port or free_port(host)
    artifacts = str(artifacts_dir)
    if "://" not in artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        artifacts = str(Path(artifacts).resolve())
    log_path = Path(log_dir or (Path(artifacts).parent if "://" not in str(artifacts_dir) else "."))
    log_path = log_path / f"mlflow-server-{port}.log"
    extra_env, env = env, dict(os.environ)
    env.update(
        {
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "1",
            "MLFLOW_BACKEND_STORE_URI": backend_uri,
            **(extra_env or {}),
        }
    )
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    cmd = [
        str(mlflow_bin) if mlflow_bin.exists() else "mlflow",
        "server",
        "--artifacts-destination",
        artifacts,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
        *(["--app-name", app_name] if app_name else []),
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    url = f"http://{host}:{port}"
    try:
        wait_for_health(url, timeout_s, proc)
        yield MlflowServer(url=url, port=port, process=proc, log_path=log_path)
    except RegistryError as exc:
        tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
        raise RegistryError(
            strip_credentials(f"{exc}\n--- {log_path} (tail) ---\n{tail}")
        ) from None
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """Terminate the server's process group (the server and its one worker)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.wait(timeout=grace_s)
