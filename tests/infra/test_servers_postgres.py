"""The servers a team runs, on the real PostgreSQL at 127.0.0.1:5432 (own database per test).

- ``mlflow server`` on PostgreSQL: register (idempotent), promote, a refused challenger,
  rollback and loading ``models:/NAME@champion`` over HTTP with the registry's functions.
- ``prefect server`` on PostgreSQL (asyncpg): healthy, and a flow run against it is recorded in
  the database as COMPLETED.

Skipped only where no PostgreSQL answers and ``CI`` is not set (see conftest.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import numpy as np
import psycopg2
import pytest
from scaled_band_model import ScaledBandMean, example_input, write_scale

from skysense.core.lineage import file_sha256
from skysense.registry.lock import LOCK_URL_ENV
from skysense.registry.promotion import alias_version, promote, read_history, rollback
from skysense.registry.register import register_pyfunc
from skysense.registry.settings import MetricRule, PromotionPolicy
from skysense.tracking.server import free_port, start_mlflow_server
from skysense.tracking.store import connect, ensure_experiment

NAME = "skysense-pg"
ROOT = Path(__file__).resolve().parents[2]
POLICY = PromotionPolicy(decide={"linear_acc": MetricRule(min_improvement=0.01)}, no_regress={})


def _register(client, folder: Path, scale: float, acc: float, experiment_id: str):
    weights = write_scale(folder / f"scale-{scale}.npy", scale)
    return register_pyfunc(
        client,
        NAME,
        python_model=ScaledBandMean(),
        checkpoint_sha256=file_sha256(weights),
        artifacts={"scale": str(weights)},
        input_example=example_input(),
        pip_requirements=["mlflow", "numpy"],
        tags={"data_version": "md5:pgtest", "git_commit": "test"},
        metrics={"linear_acc": acc},
        experiment_id=experiment_id,
    )


def _count(db, sql: str) -> int:
    with (
        psycopg2.connect(host=db.host, port=db.port, dbname=db.name, user=db.user) as conn,
        conn.cursor() as cur,
    ):
        cur.execute(sql)
        return int(cur.fetchone()[0])


@pytest.mark.postgres
def test_mlflow_server_on_postgres_register_promote_rollback_load(
    pg_database, tmp_path, monkeypatch
):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # Promotions lock on the server's backend database (PostgreSQL advisory lock).
    monkeypatch.setenv(LOCK_URL_ENV, pg_database.url("postgresql+psycopg2"))
    with start_mlflow_server(
        pg_database.url("postgresql+psycopg2"), tmp_path / "artifacts", timeout_s=120
    ) as srv:
        client = connect(srv.url)
        exp = ensure_experiment(client, "pg-test", None, srv.url)

        first = _register(client, tmp_path, 1.0, 0.60, exp)
        again = _register(client, tmp_path, 1.0, 0.60, exp)
        assert first.created and not again.created and first.version == again.version == "1"
        assert promote(client, NAME, POLICY).action == "promote"

        _register(client, tmp_path, 2.0, 0.70, exp)
        assert promote(client, NAME, POLICY).action == "promote"
        _register(client, tmp_path, 3.0, 0.705, exp)
        assert promote(client, NAME, POLICY).action == "refuse"
        assert str(alias_version(client, NAME, "champion").version) == "2"

        rollback(client, NAME, reason="pg test")
        assert str(alias_version(client, NAME, "champion").version) == "1"
        assert [h["action"] for h in read_history(client, NAME)] == [
            "promote",
            "promote",
            "refuse",
            "rollback",
        ]

        model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
        out = model.predict(example_input())
        assert out.shape == (1, 1, 4, 4)
        np.testing.assert_allclose(out, 0.25)  # scale 1.0 (v1) after the rollback

    # The registry lives in PostgreSQL, not in a file.
    assert _count(pg_database, f"SELECT count(*) FROM model_versions WHERE name = '{NAME}'") == 3
    assert _count(pg_database, "SELECT count(*) FROM runs") >= 3


FLOW_SCRIPT = textwrap.dedent(
    """
    from prefect import flow, task

    @task(retries=1)
    def area_km2(side_px: int) -> float:
        return (side_px * 10.0 / 1000.0) ** 2

    @flow(name="pg-smoke")
    def smoke(sides: list[int]) -> float:
        return sum(f.result() for f in area_km2.map(sides))

    state = smoke([64, 128], return_state=True)
    print("RUN", state.state_details.flow_run_id, state.type.value, state.result())
    """
)


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"prefect server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"prefect server not healthy at {url} after {timeout_s} s")


def _wait_for_deployment(port: int, name: str, proc: subprocess.Popen, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/deployments/filter",
        data=b"{}",
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"`skysense pipeline serve` exited with {proc.returncode}")
        with urllib.request.urlopen(request, timeout=5) as resp:
            found = [d for d in json.loads(resp.read()) if d["name"] == name]
        if found:
            return found[0]
        time.sleep(1.0)
    raise AssertionError(f"no deployment {name!r} after {timeout_s} s")


@pytest.mark.postgres
def test_prefect_server_on_postgres_runs_a_flow(pg_database, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        {
            "PREFECT_HOME": str(tmp_path / "prefect-home"),
            "PREFECT_API_DATABASE_CONNECTION_URL": pg_database.url("postgresql+asyncpg"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        }
    )
    prefect = str(Path(sys.executable).with_name("prefect"))
    with open(tmp_path / "prefect-server.log", "wb") as log:  # the server keeps its own handle
        proc = subprocess.Popen(
            [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/api/health", proc, 150)
        client_env = {**env, "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}
        client_env.pop("PREFECT_API_DATABASE_CONNECTION_URL")
        run = subprocess.run(
            [sys.executable, "-c", FLOW_SCRIPT],
            env=client_env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
        line = next(ln for ln in run.stdout.splitlines() if ln.startswith("RUN "))
        _, run_id, state, result = line.split()
        assert state == "COMPLETED" and float(result) == pytest.approx(0.4096 + 1.6384)
        # The run is recorded in PostgreSQL, with its two mapped task runs.
        assert (
            _count(
                pg_database,
                f"SELECT count(*) FROM flow_run WHERE id = '{run_id}' AND state_type = 'COMPLETED'",
            )
            == 1
        )
        assert (
            _count(pg_database, f"SELECT count(*) FROM task_run WHERE flow_run_id = '{run_id}'")
            == 2
        )

        # `skysense pipeline serve --cron` registers a scheduled deployment on this server.
        project = tmp_path / "project"
        project.mkdir()
        shutil.copy(ROOT / "params.yaml", project / "params.yaml")
        serve = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("skysense")),
                "pipeline",
                "serve",
                "--cron",
                "0 2 * * 1",
                "--name",
                "pg-weekly",
            ],
            cwd=project,
            env=client_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deployment = _wait_for_deployment(port, "pg-weekly", serve, 150)
        finally:
            os.killpg(serve.pid, 15)
            serve.wait(timeout=30)
        crons = [s["schedule"]["cron"] for s in deployment["schedules"]]
        assert crons == ["0 2 * * 1"]
        assert _count(pg_database, "SELECT count(*) FROM deployment WHERE name = 'pg-weekly'") == 1
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=10)
