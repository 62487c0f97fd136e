"""The MLflow server behind its basic-auth app, and credentials that never show (issue #21, 13).

A real ``mlflow server --app-name basic-auth`` (users and permissions in SQLite, no default
permission): requests without a login are refused; a tracking URI that carries the login
(``http://user:password@host``) works, but the password appears in no MLflow param, tag or
artifact of a run, in no ``run.json``, and in no CLI output or error message.
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from skysense.cli import app
from skysense.config import load_config, training_job
from skysense.tracking.server import start_mlflow_server
from skysense.training.engine import Runtime
from skysense.training.tracking import RunTracker

PASSWORD = "S3cr3t-admin-pw"
LOCK_SECRET = "S3cr3t-lock-pw"
DVC_SECRET = "S3cr3t-dvc-token"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """``(server, login_uri)``: a basic-auth MLflow server and its URI with the admin login."""
    root = tmp_path_factory.mktemp("mlflow-auth")
    ini = root / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\n"
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = sqlite:///{root / 'basic_auth.db'}\n"
        "admin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_PASSWORD": PASSWORD,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
    }
    with start_mlflow_server(
        f"sqlite:///{root / 'backend.db'}",
        root / "artifacts",
        app_name="basic-auth",
        env=env,
        timeout_s=120,
    ) as srv:
        yield srv, srv.url.replace("http://", f"http://admin:{PASSWORD}@")


@pytest.fixture()
def clean_env(monkeypatch):
    """No tracking login or URI inherited from the environment; connect() may set the login, so
    each variable is recorded first and restored after the test.
    """
    for key in (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "SKYSENSE_REGISTRY_LOCK_URL",
    ):
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    return monkeypatch


def test_requests_without_login_are_refused(auth_server, clean_env):
    srv, _ = auth_server
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{srv.url}/api/2.0/mlflow/experiments/search?max_results=1")
    assert refused.value.code == 401
    with urllib.request.urlopen(f"{srv.url}/health") as resp:  # health checks need no login
        assert resp.status == 200
    clean_env.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    clean_env.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    assert MlflowClient(tracking_uri=srv.url).search_experiments()


def test_run_params_tags_artifacts_and_run_json_hold_no_credentials(
    auth_server, clean_env, tmp_path, capsys
):
    srv, login_uri = auth_server
    clean_env.setenv("MLFLOW_TRACKING_URI", login_uri)
    cfg = load_config(
        None,
        [
            f"registry.tracking_uri={login_uri}",
            f"registry.lock_url=postgresql://locker:{LOCK_SECRET}@db.example:5432/mlflow",
            f"pipeline.dvc_remote_url=https://dvc:{DVC_SECRET}@dvc.example/store",
            "train.experiment=auth-test",
        ],
    )
    out = tmp_path / "ckpt"
    out.mkdir()
    tracker = RunTracker(training_job(cfg), out, chips_dir=None, resume=False)
    tracker.start(
        {"train_batch_size": 4, "note": f"remote {cfg.pipeline.dvc_remote_url}"},
        Runtime(device="cpu", backend="gloo", precision="fp32"),
    )
    tracker.log_step(1, {"loss": 1.0})
    tracker.finish("FINISHED")

    client = MlflowClient(tracking_uri=srv.url)  # the login is in the environment now
    run = client.get_run(tracker.run_id)
    assert run.data.params["registry.tracking_uri"] == srv.url.replace("http://", "http://***@")
    assert run.data.params["registry.lock_url"] == "postgresql://***@db.example:5432/mlflow"
    assert run.data.params["pipeline.dvc_remote_url"] == "https://***@dvc.example/store"
    ds_config = Path(
        client.download_artifacts(tracker.run_id, "deepspeed/ds_config.json", str(tmp_path))
    ).read_text()
    recorded = json.dumps([run.data.params, run.data.tags]) + ds_config
    recorded += (out / "run.json").read_text() + capsys.readouterr().out
    for secret in (PASSWORD, LOCK_SECRET, DVC_SECRET):
        assert secret not in recorded
    assert "remote https://***@dvc.example/store" in ds_config


def test_cli_output_and_errors_hold_no_credentials(auth_server, clean_env, tmp_path):
    srv, login_uri = auth_server
    clean_env.chdir(tmp_path)
    runner = CliRunner()
    status = runner.invoke(
        app,
        [
            "registry",
            "status",
            "--tracking-uri",
            login_uri,
            "--set",
            "registry.model_name=no-such-model",
        ],
    )
    assert status.exit_code == 2
    assert f"no registered model 'no-such-model' in {srv.url}" in " ".join(status.output.split())
    lock_url = f"postgresql://locker:{LOCK_SECRET}@127.0.0.1:1/mlflow"
    promote = runner.invoke(
        app,
        [
            "promote",
            "--version",
            "1",
            "--tracking-uri",
            login_uri,
            "--set",
            f"registry.lock_url={lock_url}",
        ],
    )
    assert promote.exit_code == 2
    text = " ".join(promote.output.split())
    assert "promotion-lock database postgresql://***@127.0.0.1:1/mlflow" in text
    for output in (status.output, promote.output):
        assert PASSWORD not in output and LOCK_SECRET not in output


def test_admin_grants_a_pipeline_user_one_experiment(auth_server, clean_env):
    """The steps of docs/security.md: a user per client, permissions per resource."""
    from mlflow.server import get_app_client

    srv, _ = auth_server
    clean_env.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    clean_env.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    admin = MlflowClient(tracking_uri=srv.url)
    granted = admin.create_experiment("granted-to-pipeline")
    other = admin.create_experiment("not-granted")
    auth = get_app_client("basic-auth", tracking_uri=srv.url)
    auth.create_user("skysense-pipeline", "pipeline-pw-1234")
    auth.grant_user_permission("skysense-pipeline", "experiment", granted, "EDIT")

    clean_env.setenv("MLFLOW_TRACKING_USERNAME", "skysense-pipeline")
    clean_env.setenv("MLFLOW_TRACKING_PASSWORD", "pipeline-pw-1234")
    pipeline = MlflowClient(tracking_uri=srv.url)
    assert pipeline.create_run(granted).info.experiment_id == granted
    with pytest.raises(Exception, match="403|PERMISSION_DENIED|Permission denied"):
        pipeline.create_run(other)
