"""Failed validations post to the alerts' webhook through GX's checkpoint actions (issue #20).

The bad-input corpus is validated with ``validation.failure_webhook`` pointing at a receiver on
127.0.0.1: each failed checkpoint posts a JSON report naming its failed expectations and the
first unexpected ids; a receiver that is down is logged and the validation still completes.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

from skysense.tracking.server import free_port
from skysense.validation.gate import validate_catalog
from skysense.validation.settings import ValidationConfig

from .conftest import TODAY


class Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Receiver.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_failed_checkpoints_post_their_failures(corpus, tmp_path):
    catalog, expected = corpus
    Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/validation"
    try:
        report = validate_catalog(
            catalog, tmp_path / "out", ValidationConfig(failure_webhook=url), today=TODAY
        )
    finally:
        server.shutdown()
    assert report.summary["quarantine_reasons"]  # the corpus has bad items: checkpoints failed
    assert Receiver.received, "no failure was posted"
    for body in Receiver.received:
        assert body["alert"] == "skysense-validation-failed" and body["success"] is False
        assert body["checkpoint"].startswith("skysense-") and body["failed"]
    posted = {
        json.dumps(u) for body in Receiver.received for f in body["failed"] for u in f["unexpected"]
    }
    assert any(item in text for item in expected for text in posted)
    # the webhook URL (often carrying a token) is not written into the stored GX project
    stored = [
        p for p in (tmp_path / "out").rglob("*") if p.is_file() and p.suffix in (".json", ".yml")
    ]
    assert stored and not [p for p in stored if url in p.read_text(errors="ignore")]


def test_a_receiver_that_is_down_does_not_stop_validation(corpus, tmp_path, caplog):
    catalog, _ = corpus
    url = f"http://127.0.0.1:{free_port()}/nobody"
    report = validate_catalog(
        catalog, tmp_path / "out", ValidationConfig(failure_webhook=url), today=TODAY
    )
    assert (tmp_path / "out" / "quarantine.parquet").is_file() and report.summary
    assert "validation alert to http://127.0.0.1" in caplog.text
