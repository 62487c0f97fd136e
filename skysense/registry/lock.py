"""Mutual exclusion for alias changes of one registered model, on an atomic primitive.

The primitive depends on where the registry's database is:

- **PostgreSQL** (a ``postgresql://`` tracking store, or an ``mlflow server`` whose backend
  database ``registry.lock_url`` / ``SKYSENSE_REGISTRY_LOCK_URL`` names): a session-level advisory
  lock, ``pg_advisory_lock(namespace, key of the model name)``, on a connection of its own that
  stays open for the whole critical section. PostgreSQL grants it to one session at a time and
  frees it when that session ends, so a holder that crashes or loses its connection releases it
  at once, and a slow holder keeps it for as long as it works: there is no lease that could
  expire under a slow write, hence none to renew. The connection's ``application_name`` names
  the holder (``user@host:pid``), which a waiter that times out reports.
- **SQLite** (a ``sqlite:///`` store, or a lock URL ``sqlite:///db`` / ``file:///path`` for a
  server on SQLite on this host): an exclusive ``flock`` on ``<db>.promotion.lock`` beside the
  database; the kernel frees it when the holder's process dies.
- An ``http(s)`` server without a lock URL is refused with the setting that fixes it. A lock
  made of MLflow tags (the earlier design) cannot be exclusive: a tag write is an upsert with no
  compare-and-set, so a slow write lands after another holder has entered. A Prefect global
  concurrency limit was not chosen either: it needs a Prefect server reachable from every
  promoter (``skysense promote`` runs without one) and frees a crashed holder's slot only when
  its lease runs out.

Holders re-check before every write that they still hold the lock (:meth:`PromotionLock.
ensure_held`): a lost database connection or a lock file replaced on disk stops the promotion
before its next write instead of letting it write unprotected.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pwd
import socket
import time
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from skysense.core.credentials import strip_credentials
from skysense.core.errors import RegistryError

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

LOCK_URL_ENV = "SKYSENSE_REGISTRY_LOCK_URL"
FILE_LOCK_SUFFIX = ".promotion.lock"
# First key of every SkySense advisory lock (the second is the model's): keeps them apart from
# other users of advisory locks on the same database.
ADVISORY_NAMESPACE = zlib.crc32(b"skysense.registry.promotion") & 0x7FFFFFFF

logger = logging.getLogger(__name__)


class PromotionLockError(RegistryError):
    """The promotion lock cannot be taken (held elsewhere, no primitive for this store), or was
    lost while held; nothing more is written.
    """


def owner_identity() -> str:
    """``user@host:pid``: who holds a lock or made a change."""
    try:
        user = os.environ.get("USER") or pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}:{os.getpid()}"


def advisory_key(name: str) -> int:
    """The second advisory-lock key of registered model ``name`` (31-bit CRC of the name)."""
    return zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF


def _is_postgres(url: str) -> bool:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    return scheme.split("+", 1)[0] in ("postgresql", "postgres")


def lock_target(
    registry_uri: str, lock_url: str | None = None, sqlite_db: Path | None = None
) -> tuple[str, str]:
    """Which primitive locks the registry at ``registry_uri``: ``("postgres", url)`` or
    ``("file", lock file path)``.

    Args:
        registry_uri: the MLflow registry URI.
        lock_url: ``registry.lock_url``; default: ``SKYSENSE_REGISTRY_LOCK_URL``.
        sqlite_db: the SQLite database of a local store, when the caller knows it.

    Raises:
        PromotionLockError: no primitive for this store (a server without a lock URL, MySQL).
    """
    lock_url = lock_url or os.environ.get(LOCK_URL_ENV) or None
    if lock_url:
        if _is_postgres(lock_url):
            return "postgres", lock_url
        if lock_url.startswith("sqlite:///"):
            return "file", lock_url[len("sqlite:///") :] + FILE_LOCK_SUFFIX
        if lock_url.startswith("file://"):
            return "file", lock_url[len("file://") :]
        raise PromotionLockError(
            f"registry.lock_url / {LOCK_URL_ENV} is {strip_credentials(lock_url)!r}: use the "
            "registry's PostgreSQL database (postgresql://user@host:5432/mlflow) or, for a "
            "server on SQLite on this host, sqlite:////path/to/mlflow.db"
        )
    if sqlite_db is not None:
        return "file", str(sqlite_db) + FILE_LOCK_SUFFIX
    if registry_uri.startswith("sqlite:///"):
        return "file", registry_uri[len("sqlite:///") :] + FILE_LOCK_SUFFIX
    if _is_postgres(registry_uri):
        return "postgres", registry_uri
    if registry_uri.startswith(("http://", "https://")):
        raise PromotionLockError(
            f"the registry {strip_credentials(registry_uri)} is an MLflow server: promotions "
            f"need its backend database for an exclusive lock; set {LOCK_URL_ENV} (or "
            "registry.lock_url) to it, e.g. postgresql://skysense_lock@db-host:5432/mlflow "
            "(a role with CONNECT only; password from PGPASSWORD or ~/.pgpass), or "
            "sqlite:////path/to/mlflow.db for a server on SQLite on this host"
        )
    raise PromotionLockError(
        f"no exclusive lock for the registry {strip_credentials(registry_uri)}: use a "
        f"PostgreSQL or SQLite store, or set {LOCK_URL_ENV} to a PostgreSQL database"
    )


def _pg_connect(url: str, application_name: str) -> Any:
    """A libpq connection (autocommit, TCP keepalives) to the database of SQLAlchemy URL ``url``."""
    import psycopg2
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    kwargs: dict[str, Any] = {
        "host": parsed.host,
        "port": parsed.port,
        "user": parsed.username,
        "password": parsed.password,
        "dbname": parsed.database,
    }
    for key, value in parsed.query.items():
        kwargs[key] = value if isinstance(value, str) else value[-1]
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    kwargs.setdefault("connect_timeout", 10)
    try:
        conn = psycopg2.connect(
            application_name=application_name[:63],
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
            **kwargs,
        )
    except psycopg2.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PromotionLockError(
            f"cannot reach the promotion-lock database {strip_credentials(url)}: "
            f"{strip_credentials(first)}; check {LOCK_URL_ENV} / registry.lock_url"
        ) from None
    conn.autocommit = True
    return conn


class PromotionLock:
    """Exclusive lock on the aliases of registered model ``name`` (see the module docstring).

    Use it as a context manager; call :meth:`ensure_held` before every registry write.

    Args:
        client: MLflow client of the registry (its registry URI picks the primitive).
        name: registered model name.
        sqlite_db: the database file when the store is SQLite (else taken from the client).
        lock_url: ``registry.lock_url``; default ``SKYSENSE_REGISTRY_LOCK_URL``.
        timeout_s: give up acquiring after this long (the error names the holder).
    """

    def __init__(
        self,
        client: MlflowClient,
        name: str,
        sqlite_db: Path | None = None,
        *,
        lock_url: str | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        registry_uri = getattr(client, "_registry_uri", None) or client.tracking_uri
        self.kind, self.where = lock_target(registry_uri, lock_url, sqlite_db)
        self.name = name
        self.timeout_s = timeout_s
        self.owner = owner_identity()
        self.key = advisory_key(name)
        self._conn: Any = None
        self._fd: int | None = None
        self.acquired_at: float | None = None

    # -- PostgreSQL advisory lock --------------------------------------------------------------
    def _pg_holder(self, conn: Any) -> str:
        with contextlib.suppress(Exception), conn.cursor() as cur:
            cur.execute(
                "SELECT a.application_name, a.client_addr::text, a.backend_start "
                "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.classid = %s::oid AND l.objid = %s::oid "
                "AND l.objsubid = 2 AND l.granted",
                (ADVISORY_NAMESPACE, self.key),
            )
            row = cur.fetchone()
            if row:
                app, addr, since = row
                return (
                    f"{app or 'another session'} (from {addr or 'local'}, since {since:%H:%M:%S})"
                )
        return "another session"

    def _acquire_pg(self) -> None:
        import psycopg2

        conn = _pg_connect(self.where, f"skysense-promotion {self.owner}")
        try:
            with conn.cursor() as cur:
                cur.execute("SET lock_timeout = %s", (f"{max(1, int(self.timeout_s * 1000))}ms",))
                cur.execute("SELECT pg_advisory_lock(%s, %s)", (ADVISORY_NAMESPACE, self.key))
                cur.execute("SET lock_timeout = 0")
        except psycopg2.errors.LockNotAvailable:
            holder = self._pg_holder(conn)
            conn.close()
            raise PromotionLockError(
                f"registered model {self.name!r}: promotion lock held by {holder} for more than "
                f"{self.timeout_s:.0f} s; wait for it to finish (a crashed holder releases it "
                "when its connection closes; a hung one can be ended with pg_terminate_backend)"
            ) from None
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _held_pg(self) -> bool:
        if self._conn is None or self._conn.closed:
            return False
        try:
            with self._conn.cursor() as cur:
                cur.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND pid = pg_backend_pid() AND classid = %s::oid AND objid = %s::oid "
                    "AND objsubid = 2 AND granted",
                    (ADVISORY_NAMESPACE, self.key),
                )
                return int(cur.fetchone()[0]) == 1
        except Exception:  # noqa: BLE001 - a broken connection means the lock is gone
            return False

    def _release_pg(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(Exception), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s, %s)", (ADVISORY_NAMESPACE, self.key))
        with contextlib.suppress(Exception):
            conn.close()  # ending the session frees the lock in any case

    # -- file lock ---------------------------------------------------------------------------
    def _acquire_file(self) -> None:
        path = Path(self.where)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "?"
                    os.close(fd)
                    raise PromotionLockError(
                        f"{path}: locked by another promotion ({holder}) for more than "
                        f"{self.timeout_s:.0f} s; wait for it to finish"
                    ) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{self.owner}\n".encode(), 0)
        self._fd = fd

    def _held_file(self) -> bool:
        if self._fd is None:
            return False
        try:
            return os.fstat(self._fd).st_ino == os.stat(self.where).st_ino
        except OSError:
            return False

    def _release_file(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # -- public ------------------------------------------------------------------------------
    def holds(self) -> bool:
        """Whether this object holds the lock now (asks the database or the file system)."""
        return self._held_pg() if self.kind == "postgres" else self._held_file()

    def ensure_held(self) -> None:
        """Check, right before a registry write, that the lock is still held.

        Raises:
            PromotionLockError: the lock was lost (database connection gone, lock file replaced).
        """
        if not self.holds():
            where = strip_credentials(self.where)
            raise PromotionLockError(
                f"registered model {self.name!r}: the promotion lock ({self.kind} {where}) was "
                "lost before the next write; nothing more was written, run the command again"
            )

    def __enter__(self) -> Self:
        if self.kind == "postgres":
            self._acquire_pg()
        else:
            self._acquire_file()
        self.acquired_at = time.time()
        logger.info(
            "promotion lock on %s acquired by %s",
            self.name,
            self.owner,
            extra={
                "lock_event": "acquired",
                "lock_model": self.name,
                "lock_time": self.acquired_at,
            },
        )
        return self

    def __exit__(self, *exc: object) -> None:
        released = time.time()
        # logged before the release itself: a waiter may enter as soon as it is released
        logger.info(
            "promotion lock on %s released by %s",
            self.name,
            self.owner,
            extra={"lock_event": "released", "lock_model": self.name, "lock_time": released},
        )
        if self.kind == "postgres":
            self._release_pg()
        else:
            self._release_file()
