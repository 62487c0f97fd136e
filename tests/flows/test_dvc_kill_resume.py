"""Fault test: ``dvc repro`` of the pipeline killed with SIGKILL during training, then rerun.

A real git + DVC project runs the real stages (sample, validate, chip, train, evaluate) with a
tiny configuration. The whole process group of the first ``dvc repro`` (DVC and the training
process under it) is SIGKILLed as soon as a checkpoint exists; a second ``dvc repro`` must keep
every earlier output (the checkpoints of the killed run included: same files, same inodes),
resume training from the last checkpoint (same MLflow run, no step logged twice) and end with
export weights bitwise equal to an uninterrupted ``skysense train`` of the same chips and params.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml
from flow_project import SMALL, bin_path, git

from skysense.config import apply_overrides

pytestmark = pytest.mark.slow

STEPS = 6
SETTINGS = [
    *[s for s in SMALL if not s.startswith(("train.steps=", "train.checkpoint_every="))],
    f"train.steps={STEPS}",
    "train.checkpoint_every=2",
    "train.keep_checkpoints=10",  # keep the killed run's checkpoint to compare it afterwards
    "data.sample.workers=1",
    "data.chip.workers=1",
    "validation.workers=1",
]


def _env(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_HOME", "MLFLOW_TRACKING_URI")}
    env.update(
        DVC_NO_ANALYTICS="1",
        OMP_NUM_THREADS="1",
        PATH=f"{Path(bin_path('dvc')).parent}:{env['PATH']}",
        DVC_SITE_CACHE_DIR=str(project.parent / "dvc-site-cache"),
    )
    return env


def _files(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every file under ``folder``: relative path -> (inode, mtime_ns, size)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            st = path.stat()
            found[str(path.relative_to(folder))] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return found


def _lock_outs(project: Path, stage: str) -> list[dict]:
    return yaml.safe_load((project / "dvc.lock").read_text())["stages"][stage]["outs"]


def _weights(export: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(export / "model.safetensors"))


def test_dvc_repro_killed_during_training_resumes_to_the_same_weights(project: Path) -> None:
    params_file = project / "params.yaml"
    params = apply_overrides(yaml.safe_load(params_file.read_text()), SETTINGS)
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    git(project, "commit", "-qam", "tiny settings")
    checkpoints = project / params["paths"]["checkpoints"]
    export = project / params["paths"]["export"]
    env = _env(project)

    first = subprocess.Popen(
        [bin_path("dvc"), "repro"],
        cwd=project,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 600
    while not (checkpoints / "latest").is_file():
        assert first.poll() is None, (
            f"dvc repro ended before any checkpoint:\n{first.stdout.read()[-4000:]}"
        )
        assert time.monotonic() < deadline, "no checkpoint within 600 s"
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)  # DVC, the training process and anything under them
    first.wait(timeout=60)
    first.stdout.close()
    assert first.returncode == -signal.SIGKILL

    killed_at = (checkpoints / "latest").read_text().strip()
    assert killed_at.startswith("step-") and int(killed_at[5:]) < STEPS, killed_at
    assert not (export / "model.safetensors").exists(), "training had finished before the kill"
    kept = _files(checkpoints / killed_at)
    run_json = (checkpoints / "run.json").read_text()
    upstream = {stage: _lock_outs(project, stage) for stage in ("sample", "validate", "chip")}

    second = subprocess.run(
        [bin_path("dvc"), "repro"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = second.stdout + second.stderr
    assert second.returncode == 0, output[-6000:]
    for stage in ("sample", "validate", "chip"):
        assert f"Stage '{stage}' didn't change, skipping" in output, output[-4000:]
        assert _lock_outs(project, stage) == upstream[stage]
    assert f"resuming from {killed_at}" in output, output[-4000:]
    # the killed run's checkpoint survived the rerun untouched: same files, inodes and mtimes
    assert _files(checkpoints / killed_at) == kept
    assert (checkpoints / "run.json").read_text() == run_json  # the same MLflow run continued
    assert (checkpoints / "latest").read_text().strip() == f"step-{STEPS:08d}"
    log = (checkpoints / "train_log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == [str(s) for s in range(1, STEPS + 1)]
    assert yaml.safe_load((project / "dvc.lock").read_text())["stages"]["evaluate"]["outs"]
    status = subprocess.run(
        [bin_path("dvc"), "status", "--json"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert status.strip() in ("{}", ""), status

    # an uninterrupted run of the same chips and params, outside DVC
    reference = project.parent / "uninterrupted"
    ref = subprocess.run(
        [
            bin_path("skysense"),
            "train",
            "--chips",
            str(project / params["paths"]["chips"]),
            "--out",
            str(reference / "checkpoints"),
            "--export",
            str(reference / "export"),
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert ref.returncode == 0, (ref.stdout + ref.stderr)[-4000:]
    resumed, uninterrupted = _weights(export), _weights(reference / "export")
    assert resumed.keys() == uninterrupted.keys() and resumed
    for key in resumed:
        assert torch.equal(resumed[key], uninterrupted[key]), key
