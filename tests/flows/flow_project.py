"""Helpers of the flow tests: small settings, a temp git + DVC project, running the CLI.

(A uniquely named module: ``conftest`` is ambiguous when several test folders have one.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Small settings that keep the whole pipeline to a few minutes on 2 shared cores: 3 tiny
# locations (2 pre-training, 1 held out), 2 training steps of a slimmed tiny preset, short probes,
# and the finetune stage on (off by default) with 2 steps.
SMALL = [
    "data.sample.locations=2",
    "data.sample.heldout_locations=1",
    "data.sample.size_px=32",
    "data.sample.s2_dates=4",
    "data.sample.s1_dates=3",
    "model.overrides={hr_depths: [1, 1, 1, 1], vit_depth: 1, fusion_depth: 1}",
    "train.steps=2",
    "train.nproc=1",
    "train.micro_batch=2",
    "train.warmup_steps=1",
    "train.checkpoint_every=2",
    "eval.linear_epochs=5",
    "eval.seg_epochs=3",
    "finetune.enabled=true",
    "finetune.steps=2",
    "finetune.micro_batch=2",
    "finetune.warmup_steps=1",
    "finetune.probe_epochs=5",
]

PROJECT_FILES = (
    "params.yaml",
    "dvc.yaml",
    ".dvcignore",
    ".gitignore",
    ".dvc/config",
    ".dvc/.gitignore",
)


def bin_path(name: str) -> str:
    """A console script of the test interpreter's environment."""
    return str(Path(sys.executable).with_name(name))


def git(cwd: Path, *args: str) -> None:
    """Run git with a fixed identity."""
    subprocess.run(
        ["git", "-c", "user.email=ci@skysense", "-c", "user.name=ci", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def make_project(dest: Path) -> Path:
    """A fresh clone-like project: the pipeline files of this repository in a new git + DVC repo,
    with its default DVC remote in ``dest/../dvc-remote``.
    """
    dest.mkdir(parents=True)
    for name in PROJECT_FILES:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, dest / name)
    git(dest, "init", "-q")
    remote = dest.parent / "dvc-remote"
    subprocess.run(
        [bin_path("dvc"), "remote", "modify", "local", "url", str(remote)],
        cwd=dest,
        check=True,
        capture_output=True,
    )
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "project")
    return dest


def run_cli(project: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """``skysense ARGS`` in ``project`` with a project-local PREFECT_HOME."""
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_HOME", "MLFLOW_TRACKING_URI")}
    return subprocess.run(
        [bin_path("skysense"), *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
