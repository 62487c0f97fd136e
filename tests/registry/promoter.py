"""Run one promotion in its own process (for the concurrent-promoters tests).

Usage: python promoter.py TRACKING_URI NAME VERSION GO_FILE EVENTS_FILE [--sqlite-db]

Connects, writes ``GO_FILE.ready-VERSION`` and waits until ``GO_FILE`` exists, so that several
promoters start together; then promotes VERSION and prints the result as JSON.

Every registry write and every lock acquisition and release is appended to EVENTS_FILE as a JSON
line ``{"pid", "version", "event", "t0", "t1"}``: the lock's own log records
(``skysense.registry.lock``) for ``acquired``/``released``, and a real MlflowClient subclass for
the writes. ``SKYSENSE_TEST_WRITE_DELAY_S`` makes this promoter a slow writer: each write waits
that long before it is sent (as over a slow network), inside the critical section.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

from mlflow import MlflowClient

from skysense.registry.promotion import promote
from skysense.registry.settings import MetricRule, PromotionPolicy
from skysense.tracking.store import connect, sqlite_path

uri, name, version = sys.argv[1], sys.argv[2], sys.argv[3]
go_file, events_file = Path(sys.argv[4]), Path(sys.argv[5])
DELAY_S = float(os.environ.get("SKYSENSE_TEST_WRITE_DELAY_S", "0"))


def record(event: str, t0: float, t1: float | None = None, **more: object) -> None:
    """Append one event line (O_APPEND, one write: lines of concurrent processes never mix)."""
    line = (
        json.dumps(
            {
                "pid": os.getpid(),
                "version": version,
                "event": event,
                "t0": t0,
                "t1": t0 if t1 is None else t1,
                **more,
            }
        )
        + "\n"
    )
    fd = os.open(events_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


class LockEvents(logging.Handler):
    """Records the lock's ``acquired``/``released`` log records with their own timestamps."""

    def emit(self, rec: logging.LogRecord) -> None:
        event = getattr(rec, "lock_event", None)
        if event:
            record(event, float(rec.lock_time))


class SlowWriterClient(MlflowClient):
    """The real MLflow client; each registry write is timed, and delayed by DELAY_S first."""

    def _write(self, what: str, call, *args):
        t0 = time.time()
        time.sleep(DELAY_S)
        result = call(*args)
        record("write", t0, time.time(), what=what)
        return result

    def set_registered_model_alias(self, *args):
        return self._write("alias", super().set_registered_model_alias, *args)

    def set_registered_model_tag(self, *args):
        return self._write(f"model_tag {args[1]}", super().set_registered_model_tag, *args)

    def delete_registered_model_tag(self, *args):
        return self._write(
            f"delete_model_tag {args[1]}", super().delete_registered_model_tag, *args
        )

    def set_model_version_tag(self, *args):
        return self._write(f"version_tag {args[2]}", super().set_model_version_tag, *args)


lock_logger = logging.getLogger("skysense.registry.lock")
lock_logger.setLevel(logging.INFO)
lock_logger.addHandler(LockEvents())

connect(uri)
client = SlowWriterClient(tracking_uri=uri, registry_uri=uri)
client.get_registered_model(name)  # warm the connection before the race
policy = PromotionPolicy(decide={"linear_acc": MetricRule(min_improvement=0.01)}, no_regress={})
db = sqlite_path(uri) if "--sqlite-db" in sys.argv else None
Path(f"{go_file}.ready-{version}").touch()
while not go_file.exists():
    time.sleep(0.01)
result = promote(
    client, name, policy, version=version, sqlite_db=db, what=f"test promoter {version}"
)
print(json.dumps(result.to_dict()))
