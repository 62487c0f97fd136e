"""``skysense pipeline``: bad input is refused before any flow starts, with the fix named."""

from __future__ import annotations

import shutil
from pathlib import Path

from flow_project import run_cli

ROOT = Path(__file__).resolve().parents[2]


def test_serve_refuses_a_malformed_cron(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    result = run_cli(tmp_path, "pipeline", "serve", "--cron", "every monday", timeout=120)
    assert result.returncode == 2
    assert "not a 5-field cron expression" in result.stderr and "0 2 * * 1" in result.stderr


def test_run_refuses_an_unknown_setting(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    result = run_cli(tmp_path, "pipeline", "run", "--set", "pipeline.task_runnr=dask", timeout=120)
    assert result.returncode == 2
    assert "pipeline.task_runnr" in result.stderr and "task_runner" in result.stderr
    assert not (tmp_path / ".prefect" / "prefect.db").exists()  # no flow was started
