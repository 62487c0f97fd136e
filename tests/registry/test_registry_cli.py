"""``skysense promote`` / ``promote --rollback`` / ``registry status`` on a real SQLite store."""

from __future__ import annotations

import json

from registry_fixtures import register_projection
from typer.testing import CliRunner

from skysense.cli import app

NAME = "skysense-cli"
SET = [
    "--set",
    f"registry.model_name={NAME}",
    "--set",
    "registry.policy.decide={linear_acc: {min_improvement: 0.02}}",
    "--set",
    "registry.policy.no_regress={}",
]


def test_promote_refuse_rollback_status_cli(sqlite_store, tmp_path, monkeypatch):
    client, uri, exp, db = sqlite_store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    runner = CliRunner()
    register_projection(client, NAME, tmp_path, 1, {"linear_acc": 0.5}, exp, db)
    res = runner.invoke(app, ["promote", "--json", *SET])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["champion"] == "1"

    register_projection(client, NAME, tmp_path, 2, {"linear_acc": 0.51}, exp, db)
    res = runner.invoke(app, ["promote", *SET])
    assert res.exit_code == 1
    assert "REFUSED v2" in res.stdout and "improvement +0.0100 < required 0.0200" in res.stdout

    register_projection(client, NAME, tmp_path, 3, {"linear_acc": 0.6}, exp, db)
    assert runner.invoke(app, ["promote", *SET]).exit_code == 0
    res = runner.invoke(app, ["promote", "--rollback", "--reason", "drift alarm", *SET])
    assert res.exit_code == 0 and "rolled back to v1" in res.stdout

    res = runner.invoke(app, ["registry", "status", "--json", *SET])
    assert res.exit_code == 0, res.output
    status = json.loads(res.stdout)
    assert status["aliases"]["champion"] == "1"
    by_version = {v["version"]: v for v in status["versions"]}
    assert by_version["2"]["status"] == "refused" and by_version["3"]["status"] == "rolled_back"
    assert [h["action"] for h in status["history"]] == ["promote", "refuse", "promote", "rollback"]
    assert status["history"][-1]["reasons"] == ["drift alarm"]
    table = runner.invoke(app, ["registry", "status", *SET])
    assert table.exit_code == 0 and "rollback" in table.stdout

    res = runner.invoke(app, ["promote", "--rollback", *SET])
    assert res.exit_code == 2 and "no previous champion" in res.output
