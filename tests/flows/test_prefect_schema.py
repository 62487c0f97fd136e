"""The Prefect schema template: built with Prefect's own migrations, copied into new homes only,
and a flow runs on a seeded home (real ephemeral Prefect in a subprocess) without migrating.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from flows import prefect_schema

FLOW = """
from prefect import flow

@flow
def ping() -> int:
    return 7

print("result", ping())
"""


def tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as con:
        return {r[0] for r in con.execute("select name from sqlite_master where type='table'")}


@pytest.fixture()
def no_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for key in prefect_schema.ELSEWHERE:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SKYSENSE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def test_template_is_built_by_prefect_and_a_flow_runs_on_a_seeded_home(no_server: Path) -> None:
    template = prefect_schema.build_template()
    assert template == no_server / "cache" / f"prefect-{prefect_schema.prefect_version()}.db"
    assert not list(template.parent.glob("*-wal")) and not list(template.parent.glob(".*partial"))
    head = prefect_schema.schema_revision(template)
    assert {"flow", "flow_run", "task_run", "deployment"} <= tables(template)

    home = no_server / "home"
    assert prefect_schema.seed_home(home, build=False) == "seeded"
    assert prefect_schema.schema_revision(home / "prefect.db") == head
    assert prefect_schema.at_template_revision(home)
    # as flows.environment.configure sets it for such a home: the server skips its migration check
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "PREFECT_SERVER_DATABASE_MIGRATE_ON_START": "false",
    }
    proc = subprocess.run(
        [sys.executable, "-c", FLOW],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "result 7" in proc.stdout
    assert (
        prefect_schema.schema_revision(home / "prefect.db") == head
    )  # nothing to migrate: same revision
    with sqlite3.connect(home / "prefect.db") as con:
        assert (
            con.execute("select count(*) from flow_run where state_type='COMPLETED'").fetchone()[0]
            == 1
        )


def test_seed_never_touches_an_existing_database_or_a_server_setup(
    no_server: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = no_server / "home"
    home.mkdir()
    (home / "prefect.db").write_bytes(b"the user's runs")
    assert prefect_schema.seed_home(home, build=False) == "exists"
    assert (home / "prefect.db").read_bytes() == b"the user's runs"

    fresh = no_server / "fresh"
    assert prefect_schema.seed_home(fresh, build=False) == "no-template"  # nothing built yet
    assert not (fresh / "prefect.db").exists()
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert prefect_schema.seed_home(fresh) == "server"  # builds nothing, copies nothing
    assert not (fresh / "prefect.db").exists() and not (no_server / "cache").exists()


def test_failed_migrations_name_the_command_and_leave_no_template(
    no_server: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = no_server / "bin"
    bin_dir.mkdir()
    fake_python = bin_dir / "python"
    fake_python.symlink_to(sys.executable)
    broken = bin_dir / "prefect"
    broken.write_text("#!/bin/sh\necho 'sqlite3.OperationalError: disk I/O error' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake_python))
    with pytest.raises(prefect_schema.SchemaBuildError, match="disk I/O error") as err:
        prefect_schema.build_template()
    assert "prefect server database upgrade" in str(err.value)
    assert not prefect_schema.template_path().exists()


def test_configure_skips_the_migration_check_only_for_a_home_at_the_template_revision(
    no_server: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows import environment

    prefect_schema.build_template()
    for key in ("PREFECT_HOME", "PREFECT_SERVER_DATABASE_MIGRATE_ON_START"):
        monkeypatch.delenv(key, raising=False)
    environment.configure(no_server / "project")
    assert (no_server / "project" / ".prefect" / "prefect.db").exists()
    assert os.environ["PREFECT_SERVER_DATABASE_MIGRATE_ON_START"] == "false"

    old = no_server / "old" / ".prefect"  # a home from another Prefect version: migrate it
    old.mkdir(parents=True)
    with sqlite3.connect(old / "prefect.db") as con:
        con.execute("create table alembic_version (version_num varchar(32))")
        con.execute("insert into alembic_version values ('0123456789ab')")
    monkeypatch.delenv("PREFECT_HOME")
    monkeypatch.delenv("PREFECT_SERVER_DATABASE_MIGRATE_ON_START")
    environment.configure(no_server / "old")
    assert not prefect_schema.at_template_revision(old)
    assert "PREFECT_SERVER_DATABASE_MIGRATE_ON_START" not in os.environ
