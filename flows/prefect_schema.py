"""Prefect's database schema, built once per Prefect version instead of once per project.

A fresh ``PREFECT_HOME`` makes Prefect's ephemeral server run every alembic migration of its
SQLite database before the first flow can start (about 10 s on 2 cores, more on a loaded host):
the same work, with the same result, in every new clone and every test project. This module builds
that migrated, empty database once per Prefect version (``make setup`` does it; else the first
pipeline run) and copies it into a new ``PREFECT_HOME``; Prefect then finds its schema at the head
revision and migrates nothing. Nothing is copied when the home already has a database or when the
platform talks to a Prefect server (``PREFECT_API_URL``) or to another database.

    python -m flows.prefect_schema        # build the template now (what ``make setup`` runs)
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

#: Settings that mean Prefect does not use ``$PREFECT_HOME/prefect.db``.
ELSEWHERE = (
    "PREFECT_API_URL",
    "PREFECT_API_DATABASE_CONNECTION_URL",
    "PREFECT_SERVER_DATABASE_CONNECTION_URL",
)
DATABASE = "prefect.db"


class SchemaBuildError(RuntimeError):
    """Prefect's migrations failed while building the template database."""


def prefect_version() -> str:
    """The installed Prefect's version, read without importing Prefect (its import takes ~1 s)."""
    from importlib.metadata import version

    return version("prefect")


def cache_dir() -> Path:
    """Where templates live: ``$SKYSENSE_CACHE_DIR``, else ``$XDG_CACHE_HOME/skysense``, else
    ``~/.cache/skysense``.
    """
    if os.environ.get("SKYSENSE_CACHE_DIR"):
        return Path(os.environ["SKYSENSE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "skysense"


def template_path(version: str | None = None) -> Path:
    """The template database of Prefect ``version`` (default: the installed one)."""
    return cache_dir() / f"prefect-{version or prefect_version()}.db"


def build_template(dest: Path | None = None) -> Path:
    """Run Prefect's migrations on an empty SQLite database and store it as the template.

    Uses Prefect's own command (``prefect server database upgrade``) in a scratch home, then
    writes a compacted single-file copy (no WAL side files) and moves it into place atomically,
    so concurrent builders never leave a half-written template.

    Raises:
        SchemaBuildError: the migrations failed (the message carries Prefect's output).
    """
    dest = dest or template_path()
    dest.parent.mkdir(parents=True, exist_ok=True)
    prefect = Path(sys.executable).with_name("prefect")
    argv = [str(prefect) if prefect.exists() else "prefect", "server", "database", "upgrade", "-y"]
    with tempfile.TemporaryDirectory(prefix="prefect-schema-") as scratch:
        env = {k: v for k, v in os.environ.items() if k not in ELSEWHERE}
        env.update(PREFECT_HOME=scratch, PREFECT_SERVER_ANALYTICS_ENABLED="false")
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        built = Path(scratch) / DATABASE
        if proc.returncode != 0 or not built.exists():
            raise SchemaBuildError(
                f"building Prefect's database schema failed (`{' '.join(argv)}`):\n"
                f"{(proc.stdout + proc.stderr)[-2000:]}\nRemove {dest.parent} and retry, or set "
                "PREFECT_API_URL to use a Prefect server."
            )
        partial = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
        partial.unlink(missing_ok=True)
        with sqlite3.connect(built) as db:
            db.execute(f"VACUUM INTO '{partial}'")
        os.replace(partial, dest)
    return dest


def schema_revision(db: Path) -> str | None:
    """The alembic revision of a Prefect SQLite database (None when unreadable or not Prefect's)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            row = con.execute("select version_num from alembic_version").fetchone()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


def at_template_revision(home: Path) -> bool:
    """Whether ``home``'s database is at the schema revision of this Prefect version's template
    (nothing to migrate: the server can skip its migration check on start).
    """
    template = template_path()
    db = Path(home) / DATABASE
    if not template.exists() or not db.exists():
        return False
    head = schema_revision(template)
    return head is not None and schema_revision(db) == head


def uses_home_database() -> bool:
    """True when Prefect will use the SQLite database in ``$PREFECT_HOME`` (ephemeral mode)."""
    return not any(os.environ.get(key) for key in ELSEWHERE)


def seed_home(home: Path, build: bool = True) -> str:
    """Give ``home`` (a ``PREFECT_HOME``) the migrated empty database, when it has none.

    Args:
        home: the Prefect home folder (created when missing).
        build: build the template first when this Prefect version has none yet.

    Returns:
        What happened: ``seeded``, ``exists`` (the home has a database), ``server`` (Prefect uses
        a server or another database), or ``no-template`` (none built, ``build`` False).
    """
    if not uses_home_database():
        return "server"
    home = Path(home)
    target = home / DATABASE
    if target.exists():
        return "exists"
    template = template_path()
    if not template.exists():
        if not build:
            return "no-template"
        build_template(template)
    home.mkdir(parents=True, exist_ok=True)
    partial = home / f".{DATABASE}.{os.getpid()}.partial"
    shutil.copyfile(template, partial)
    try:
        os.link(partial, target)  # create-if-absent: never replaces a database another process made
    except FileExistsError:
        return "exists"
    finally:
        partial.unlink(missing_ok=True)
    return "seeded"


if __name__ == "__main__":  # pragma: no cover - exercised by ``make setup``
    try:
        print(f"Prefect {prefect_version()} schema template: {build_template()}")
    except (SchemaBuildError, OSError) as exc:  # an optimisation: never fail an install over it
        print(
            f"warning: no Prefect schema template ({exc}); new projects migrate their own",
            file=sys.stderr,
        )
