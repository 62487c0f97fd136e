"""Failed and late runs notify a webhook through Prefect automations; promotion emits an event.

Issue #20, through real components: a ``prefect server start`` on 127.0.0.1 (late runs marked
after 1 s), an HTTP receiver on 127.0.0.1 started here, and a client process that creates the
automations (:func:`flows.alerts.ensure_alerts`), fails a flow run, leaves a scheduled run
unstarted and emits ``skysense.model.promoted``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from skysense.tracking.server import _stop, free_port

ROOT = Path(__file__).resolve().parents[2]


class Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Receiver.received.append(json.loads(body or b"{}"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def _healthy(url: str, proc, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "prefect server exited"
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail("prefect server not healthy")


def _events(api: str, name: str) -> list[dict]:
    body = json.dumps({"filter": {"event": {"name": [name]}}, "limit": 10}).encode()
    request = urllib.request.Request(
        f"{api}/events/filter", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())["events"]


def test_failed_and_late_runs_call_the_webhook_and_promotion_emits_an_event(tmp_path):
    Receiver.received = []
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{receiver.server_address[1]}/alerts"
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS": "1",
        "PREFECT_SERVER_SERVICES_LATE_RUNS_LOOP_SECONDS": "1",
        "PREFECT_SERVER_DATABASE_MIGRATE_ON_START": "true",
        "PYTHONPATH": str(ROOT),
    }
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("prefect")), "server", "start", "--host",
         "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        _healthy(api, server)
        client = subprocess.run(
            [sys.executable, str(Path(__file__).with_name("alert_client.py")), hook],
            env=env, capture_output=True, text=True, timeout=180, check=False, cwd=tmp_path,
        )  # fmt: skip
        assert client.returncode == 0, client.stderr[-3000:]
        report = json.loads(client.stdout.strip().splitlines()[-1])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            alerts = {r.get("alert") for r in Receiver.received}
            if {"skysense-run-failed", "skysense-run-late"} <= alerts:
                break
            time.sleep(1)
        by_alert = {r["alert"]: r for r in Receiver.received}
        assert by_alert["skysense-run-failed"]["event"] == "prefect.flow-run.Failed"
        assert by_alert["skysense-run-failed"]["state"] == "Failed"
        assert by_alert["skysense-run-late"]["event"] == "prefect.flow-run.Late"
        assert by_alert["skysense-run-late"]["flow_run_id"].endswith(report["late_run"])
        assert len([r for r in Receiver.received if r["alert"] == "skysense-run-failed"]) == 1
        deadline = time.monotonic() + 30  # the server persists events in batches
        while not (found := _events(api, "skysense.model.promoted")):
            assert time.monotonic() < deadline, "no skysense.model.promoted event"
            time.sleep(1)
        (promoted,) = found
        assert promoted["resource"]["prefect.resource.id"] == "mlflow.model.skysense-encoder"
        assert promoted["payload"]["model_uri"] == "models:/skysense-encoder/7"
        assert "secret" not in json.dumps(promoted)
    finally:
        _stop(server)
        log.close()
        receiver.shutdown()
