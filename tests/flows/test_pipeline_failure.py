"""A failing stage fails the flow with the stage's own message and registers nothing."""

from __future__ import annotations

import sqlite3

from flow_project import run_cli


def test_corrupt_catalog_fails_the_flow_with_the_validation_message(project):
    bad = project / "incoming" / "catalog.yaml"
    bad.parent.mkdir()
    # A location without its modalities: the catalog schema rejects it.
    bad.write_text("version: 1\nname: broken\nlocations:\n  - id: ch-broken\n    split: pretrain\n")
    result = run_cli(
        project,
        "pipeline",
        "run",
        "--no-dvc",
        "--no-sample",
        "--set",
        "paths.catalog=incoming/catalog.yaml",
    )
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-3000:]
    message = result.stderr
    assert "stage 'validate' failed" in message
    assert "catalog unusable" in message and "modalities" in message
    assert "Failed" in message

    with sqlite3.connect(project / ".prefect" / "prefect.db") as db:
        states = dict(
            db.execute(
                "SELECT f.name, r.state_type FROM flow_run r JOIN flow f ON f.id = r.flow_id"
            ).fetchall()
        )
        tasks = dict(db.execute("SELECT name, state_type FROM task_run").fetchall())
    assert states["skysense-pipeline"] == "FAILED"
    assert tasks.get("validate") == "FAILED"
    assert not any(name.startswith(("chip", "train", "evaluate", "register")) for name in tasks)

    # Nothing registered: no MLflow store was even created.
    assert not (project / "mlflow.db").exists()
