"""The promotion lock on the PostgreSQL-backed ``mlflow server`` a team runs (issue #21, item 11).

Four promoter processes race on one model through the real server, each registry write delayed
(0.2 s; 0.8 s for the slow writer) as over a slow network; the lock is PostgreSQL's advisory lock
on the server's backend database. (The tag lock this replaced fails this race: its slow writer's
lock tag landed after a fast promoter had entered, and both were inside together for 2.4 s.) The
event log the promoters write (lock
acquired/released, every registry write, with timestamps) shows no two of them inside at once
and every write inside its writer's section; the promotion history keeps all five entries, each
naming the champion of its time. A holder killed with SIGKILL frees the lock at once (no lease).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg2
import pytest
from mlflow import MlflowClient
from scaled_band_model import ScaledBandMean, example_input, write_scale

from skysense.core.lineage import file_sha256
from skysense.registry.lock import (
    ADVISORY_NAMESPACE,
    LOCK_URL_ENV,
    PromotionLock,
    PromotionLockError,
    advisory_key,
)
from skysense.registry.promotion import HISTORY_ENTRY_PREFIX, alias_version, promote, read_history
from skysense.registry.register import register_pyfunc
from skysense.registry.settings import MetricRule, PromotionPolicy
from skysense.tracking.server import start_mlflow_server
from skysense.tracking.store import connect, ensure_experiment

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "registry"))
from promotion_race import assert_history_chain, assert_mutual_exclusion, race

NAME = "skysense-pg-race"
POLICY = PromotionPolicy(decide={"linear_acc": MetricRule(min_improvement=0.01)}, no_regress={})


def _register(client, folder: Path, scale: float, acc: float, experiment_id: str) -> str:
    weights = write_scale(folder / f"scale-{scale}.npy", scale)
    return register_pyfunc(
        client,
        NAME,
        python_model=ScaledBandMean(),
        checkpoint_sha256=file_sha256(weights),
        artifacts={"scale": str(weights)},
        input_example=example_input(),
        pip_requirements=["mlflow", "numpy"],
        tags={"data_version": "md5:race"},
        metrics={"linear_acc": acc},
        experiment_id=experiment_id,
    ).version


def _advisory_locks_held(db, name: str) -> int:
    with (
        psycopg2.connect(host=db.host, port=db.port, dbname=db.name, user=db.user) as conn,
        conn.cursor() as cur,
    ):
        cur.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s::oid "
            "AND objid = %s::oid AND granted",
            (ADVISORY_NAMESPACE, advisory_key(name)),
        )
        return int(cur.fetchone()[0])


@pytest.mark.postgres
def test_four_promoters_and_a_slow_writer_on_postgres_server(pg_database, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv(LOCK_URL_ENV, pg_database.url("postgresql+psycopg2"))
    with start_mlflow_server(
        pg_database.url("postgresql+psycopg2"), tmp_path / "artifacts", timeout_s=120
    ) as srv:
        client = connect(srv.url)
        exp = ensure_experiment(client, "pg-race", None, srv.url)
        accs = {"1": 0.60, "2": 0.70, "3": 0.72, "4": 0.74, "5": 0.80}
        for version, acc in accs.items():
            assert _register(client, tmp_path, float(version), acc, exp) == version
        assert promote(client, NAME, POLICY, version="1").champion == "1"

        results, events = race(
            srv.url,
            NAME,
            ["2", "3", "4", "5"],
            tmp_path / "race",
            slow={"2": 0.2, "3": 0.8, "4": 0.2, "5": 0.2},
        )
        sections = assert_mutual_exclusion(events, promoters=4)
        slow_pid = next(e["pid"] for e in events if e["version"] == "3")
        assert sections[slow_pid][1] - sections[slow_pid][0] > 3.0  # it really was slow inside

        assert str(alias_version(client, NAME, "champion").version) == "5"
        history = read_history(client, NAME)
        assert_history_chain(history, set(accs), "5")
        tags = client.get_registered_model(NAME).tags
        assert sorted(k for k in tags if k.startswith(HISTORY_ENTRY_PREFIX)) == [
            f"{HISTORY_ENTRY_PREFIX}{i:06d}" for i in range(1, 6)
        ]
        assert {r["action"] for r in results} <= {"promote", "refuse"}
        for r in results:  # each promoter's own record is in the history as it returned it
            assert r["record"] in history
    assert _advisory_locks_held(pg_database, NAME) == 0


HOLDER = textwrap.dedent(
    """
    import sys, time
    from mlflow import MlflowClient
    from skysense.registry.lock import PromotionLock
    client = MlflowClient(tracking_uri="http://127.0.0.1:9", registry_uri="http://127.0.0.1:9")
    with PromotionLock(client, sys.argv[1]):
        print("HELD", flush=True)
        time.sleep(600)
    """
)


@pytest.mark.postgres
def test_killed_holder_frees_the_advisory_lock_at_once(pg_database, monkeypatch):
    monkeypatch.setenv(LOCK_URL_ENV, pg_database.url("postgresql+psycopg2"))
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, NAME],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        assert holder.stdout.readline().strip() == "HELD"
        client = MlflowClient(tracking_uri="http://127.0.0.1:9", registry_uri="http://127.0.0.1:9")
        with (
            pytest.raises(PromotionLockError, match=rf"held by skysense-promotion .*:{holder.pid}"),
            PromotionLock(client, NAME, timeout_s=1.0),
        ):
            pass
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        start = time.monotonic()
        with PromotionLock(client, NAME, timeout_s=30.0) as lock:
            waited = time.monotonic() - start
            assert lock.kind == "postgres" and lock.holds()
            lock.ensure_held()
        assert waited < 5.0  # freed when the killed session ended, not after a lease
        assert _advisory_locks_held(pg_database, NAME) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
