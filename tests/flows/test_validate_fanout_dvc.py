"""With DVC, the validation fan-out runs only when ``dvc status validate`` says so, and records its
outputs in ``dvc.lock`` with ``dvc commit`` (so a second run, or ``dvc status``, finds it current).
"""

from __future__ import annotations

import hashlib
import subprocess

import yaml
from flow_project import bin_path
from prefect import flow

from flows.fanout import run_fanout_stage
from flows.stages import run_dvc_stage
from skysense.config import apply_overrides, load_config

SMALL = [
    "data.sample.locations=1",
    "data.sample.heldout_locations=1",
    "data.sample.size_px=32",
    "data.sample.s2_dates=3",
    "data.sample.s1_dates=2",
]


@flow
def validate_twice(root: str) -> list[dict]:
    """The validate fan-out stage with DVC, run twice in a row."""
    from pathlib import Path

    cfg = load_config(Path(root) / "params.yaml")
    return [run_fanout_stage("validate", Path(root), cfg, use_dvc=True) for _ in range(2)]


def test_validate_fanout_with_dvc_commits_its_outputs_and_is_then_up_to_date(project):
    params = project / "params.yaml"
    params.write_text(
        yaml.safe_dump(apply_overrides(yaml.safe_load(params.read_text()), SMALL), sort_keys=False)
    )
    assert run_dvc_stage("sample", project).ran  # dvc repro with this environment's scripts on PATH

    first, second = validate_twice(str(project))
    assert first["ran"] is True and first["extra"]["locations"] == {
        "total": 2,
        "quarantined": 0,
        "accepted": 2,
    }
    assert second["ran"] is False and second["command"] == ["dvc", "status", "validate"]

    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]["validate"]
    outs = {o["path"]: o["md5"] for o in lock["outs"]}
    for rel in (
        "reports/validation/accepted_catalog.yaml",
        "reports/validation/quarantine.parquet",
    ):
        assert outs[rel] == hashlib.md5((project / rel).read_bytes()).hexdigest(), rel
    tracked = lock["params"]["params.yaml"]
    assert tracked["validation.min_accepted"] == 1 and "validation.workers" not in tracked
    status = subprocess.run(
        [bin_path("dvc"), "status", "validate"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout + status.stderr
