"""Mutual exclusion for alias changes of one registered model.

Two layers, both released on exit:

- a registered-model tag ``promotion_lock`` holding an owner token and an expiry: written only
  when absent or expired, then re-read after a settle delay; the writer that reads its own token
  back holds the lock (the last writer wins, the others back off and retry). It works against any
  store, a remote ``mlflow server`` included, and a crashed holder's lock expires.
- for a SQLite store, an exclusive ``fcntl`` lock on ``<db>.promotion.lock`` beside the database,
  which is atomic between processes of this machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import random
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Self

from skysense.errors import RegistryError

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

LOCK_TAG = "promotion_lock"


def owner_identity() -> str:
    """``user@host:pid``: who holds a lock or made a change."""
    try:
        user = os.environ.get("USER") or pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}:{os.getpid()}"


class PromotionLock:
    """Lock on the aliases of registered model ``name`` (see module docstring).

    Args:
        client: MLflow client of the registry.
        name: registered model name.
        sqlite_db: the database file when the store is SQLite (adds the file lock).
        ttl_s: how long a held tag lock stays valid without release (crash recovery).
        settle_s: delay between writing the tag and reading it back.
        timeout_s: give up acquiring after this long.
    """

    def __init__(
        self,
        client: MlflowClient,
        name: str,
        sqlite_db: Path | None = None,
        ttl_s: float = 120.0,
        settle_s: float = 0.4,
        timeout_s: float = 120.0,
    ) -> None:
        self.client = client
        self.name = name
        self.sqlite_db = sqlite_db
        self.ttl_s = ttl_s
        self.settle_s = settle_s
        self.timeout_s = timeout_s
        self.token = f"{owner_identity()}/{uuid.uuid4().hex[:12]}"
        self._file = None

    # -- tag lock ----------------------------------------------------------------------------
    def _read(self) -> dict | None:
        tags = self.client.get_registered_model(self.name).tags
        raw = tags.get(LOCK_TAG)
        if not raw:
            return None
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None

    def holds(self) -> bool:
        """Whether this object's token is the one stored in the tag (and not expired)."""
        current = self._read()
        return bool(current and current.get("owner") == self.token
                    and float(current.get("expires", 0)) > time.time())

    def _acquire_tag(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        while True:
            current = self._read()
            if current is None or float(current.get("expires", 0)) <= time.time():
                value = json.dumps({"owner": self.token, "expires": time.time() + self.ttl_s})
                if self._write_tag(value):
                    time.sleep(self.settle_s)
                    if self.holds():
                        return
            if time.monotonic() > deadline:
                holder = (current or {}).get("owner", "?")
                raise RegistryError(
                    f"registered model {self.name!r}: promotion lock held by {holder} for more "
                    f"than {self.timeout_s:.0f} s; wait for it, or delete the tag {LOCK_TAG!r} "
                    "in the MLflow UI if that process died"
                )
            time.sleep(self.settle_s * (0.5 + random.random()))

    def _write_tag(self, value: str) -> bool:
        """Write the lock tag; False when a concurrent writer's insert of the same tag won (the
        store's unique constraint on (model, key) rejects the second insert: SQLite, PostgreSQL
        and a server in front of either report it as an error)."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.set_registered_model_tag(self.name, LOCK_TAG, value)
        except MlflowException as exc:
            text = str(exc)
            if not any(m in text for m in ("UNIQUE constraint", "IntegrityError", "duplicate key")):
                raise
            return False
        return True

    def _release_tag(self) -> None:
        with contextlib.suppress(Exception):
            if self.holds():
                self.client.delete_registered_model_tag(self.name, LOCK_TAG)

    # -- file lock ---------------------------------------------------------------------------
    def _acquire_file(self) -> None:
        if self.sqlite_db is None:
            return
        path = Path(str(self.sqlite_db) + ".promotion.lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a+")  # noqa: SIM115 - held until release
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self._file.close()
                    self._file = None
                    raise RegistryError(
                        f"{path}: locked by another promotion for more than "
                        f"{self.timeout_s:.0f} s; wait for it to finish"
                    ) from None
                time.sleep(0.05)

    def _release_file(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    # -- context -----------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self._acquire_file()
        try:
            self._acquire_tag()
        except BaseException:
            self._release_file()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._release_tag()
        finally:
            self._release_file()


@contextlib.contextmanager
def promotion_lock(client: MlflowClient, name: str, sqlite_db: Path | None = None,
                   **kwargs: float) -> Iterator[PromotionLock]:
    """Context manager form of :class:`PromotionLock`."""
    with PromotionLock(client, name, sqlite_db, **kwargs) as lock:
        yield lock
