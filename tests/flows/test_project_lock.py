"""One pipeline run per project folder: a second ``skysense pipeline run`` while another holds
the project lock fails with a message naming the lock file and the holder, before it rewrites
params.yaml with its ``--set`` overrides or writes any output.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from flow_project import ROOT, run_cli

from flows.pipeline import PROJECT_LOCK, project_lock


def test_second_pipeline_run_is_refused_and_leaves_params_untouched(project: Path) -> None:
    params = (project / "params.yaml").read_bytes()
    with project_lock(project):  # the first run (this process) holds the project
        second = run_cli(
            project,
            "pipeline",
            "run",
            "--set",
            "train.steps=3",
            "--set",
            "data.sample.locations=2",
            timeout=300,
        )
    output = second.stdout + second.stderr
    assert second.returncode == 1, output[-4000:]
    lock = project / PROJECT_LOCK
    assert str(lock) in " ".join(output.split()), output[-4000:]  # rich may wrap long lines
    assert f"pid {os.getpid()} on {socket.gethostname()}" in output
    assert (project / "params.yaml").read_bytes() == params  # the overrides were not written
    assert not (project / "data").exists() and not (project / "dvc.lock").exists()


def test_pipeline_waits_for_the_lock_within_its_bound(project: Path) -> None:
    """With --lock-wait the second run waits for the first; here the first never ends, so the
    second gives up after the bound and says how long it waited.
    """
    with project_lock(project):
        second = run_cli(project, "pipeline", "run", "--lock-wait", "3", timeout=300)
    output = " ".join((second.stdout + second.stderr).split())
    assert second.returncode == 1, output[-4000:]
    assert "waited 3 s" in output and str(project / PROJECT_LOCK) in output


def test_ingest_is_refused_before_it_writes_the_merged_catalog(project: Path) -> None:
    new = project / "new-scenes.yaml"
    new.write_text("version: 1\nname: new\nlocations: []\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_HOME", "MLFLOW_TRACKING_URI")}
    with project_lock(project):
        proc = subprocess.run(
            [sys.executable, str(ROOT / "flows" / "ingest.py"), str(new)],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    output = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode != 0, output[-3000:]
    assert "LockHeldError" in output and str(project / PROJECT_LOCK) in output, output[-3000:]
    assert not (project / "data").exists()  # no merged catalog (data/ingest/catalog.yaml)
