"""One pipeline run per project folder: a second ``skysense pipeline run`` while another holds
the project lock fails with a message naming the lock file and the holder, before it rewrites
params.yaml with its ``--set`` overrides or writes any output."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from flow_project import run_cli

from flows.pipeline import PROJECT_LOCK, project_lock


def test_second_pipeline_run_is_refused_and_leaves_params_untouched(project: Path) -> None:
    params = (project / "params.yaml").read_bytes()
    with project_lock(project):  # the first run (this process) holds the project
        second = run_cli(project, "pipeline", "run", "--set", "train.steps=3", "--set", "data.sample.locations=2",
                         timeout=300)
    output = second.stdout + second.stderr
    assert second.returncode == 1, output[-4000:]
    lock = project / PROJECT_LOCK
    assert str(lock) in " ".join(output.split()), output[-4000:]  # rich may wrap long lines
    assert f"pid {os.getpid()} on {socket.gethostname()}" in output
    assert (project / "params.yaml").read_bytes() == params  # the overrides were not written
    assert not (project / "data").exists() and not (project / "dvc.lock").exists()


def test_pipeline_waits_for_the_lock_within_its_bound(project: Path) -> None:
    """With --lock-wait the second run waits for the first; here the first never ends, so the
    second gives up after the bound and says how long it waited."""
    with project_lock(project):
        second = run_cli(project, "pipeline", "run", "--lock-wait", "3", timeout=300)
    output = " ".join((second.stdout + second.stderr).split())
    assert second.returncode == 1, output[-4000:]
    assert "waited 3 s" in output and str(project / PROJECT_LOCK) in output
