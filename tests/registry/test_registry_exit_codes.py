"""Exit statuses of the registry commands: an unreachable or failing store is 4, never 1.

1 means "the promotion policy refused"; a server that is down, a port where no MLflow answers or a
store file that is not a database used to exit 1 with a traceback, or 2 with a misleading "no
challenger" (a failed read taken for a missing alias), with the URI's credentials printed.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from skysense.cli import app
from skysense.tracking.server import free_port

SKYSENSE = str(Path(sys.executable).with_name("skysense"))


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["COLUMNS"] = "80"
    return subprocess.run(
        [SKYSENSE, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_promote_against_a_closed_port_exits_4_with_one_line_naming_the_uri(tmp_path: Path) -> None:
    port = free_port()
    uri = f"http://alice:s3cret@127.0.0.1:{port}"
    res = _run(["promote", "--tracking-uri", uri], tmp_path)
    assert res.returncode == 4, res.stdout + res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert (
        f"http://127.0.0.1:{port}" in lines[0]
        and "cannot reach the MLflow tracking server" in lines[0]
    )
    assert "Traceback" not in res.stderr
    assert "alice" not in res.stdout + res.stderr and "s3cret" not in res.stdout + res.stderr


def test_promote_on_a_store_file_that_is_not_a_database_exits_4(tmp_path: Path) -> None:
    """A real SQLite store that cannot be opened: was a sqlalchemy traceback and exit 1."""
    db = tmp_path / "mlflow.db"
    db.write_text("not a database\n")
    for args in (["promote"], ["promote", "--rollback"], ["registry", "status"]):
        res = _run([*args, "--tracking-uri", f"sqlite:///{db}"], tmp_path)
        assert res.returncode == 4, res.stdout + res.stderr
        assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
        assert f"sqlite:///{db}" in res.stderr and "file is not a database" in res.stderr


class _HealthOnly(http.server.BaseHTTPRequestHandler):
    """A web service that is not MLflow (say, the wrong port): /health answers, the API does not."""

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b"OK" if self.path == "/health" else b"<html>not found</html>")

    do_POST = do_PATCH = do_DELETE = do_GET

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture()
def not_mlflow() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HealthOnly)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_promote_against_a_server_that_is_not_mlflow_exits_4_not_no_challenger(
    not_mlflow: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"http://bob:hunter2@127.0.0.1:{not_mlflow}"
    for args in (["promote"], ["registry", "status"]):
        res = CliRunner().invoke(app, [*args, "--tracking-uri", uri])
        assert res.exit_code == 4, res.output
        text = " ".join(res.output.split())
        assert f"MLflow tracking store http://***@127.0.0.1:{not_mlflow} failed" in text
        assert "hunter2" not in text and "bob" not in text
        assert "404" in text and "<html>" not in text  # the first line, not the error page
        assert "no 'challenger' alias" not in text and "no registered model" not in text
        assert "hunter2" not in res.output and "bob" not in res.output
