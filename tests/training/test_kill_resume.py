"""A run killed with SIGKILL mid-way and resumed ends with the same weights as an uninterrupted
run of the same steps (separate processes, as in production).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import torch

from skysense.training.checkpoints import list_tags, read_latest
from skysense.training.export import consolidated_state_dict

WORKER = Path(__file__).with_name("kill_worker.py")


def _worker(out: Path, kill_at: int, resume: bool) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(WORKER.parents[2]))
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return subprocess.run(
        [sys.executable, str(WORKER), str(out), "3", str(kill_at), "1" if resume else "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    full = _worker(tmp_path / "full", kill_at=0, resume=False)
    assert full.returncode == 0, full.stderr[-3000:]
    killed = _worker(tmp_path / "killed", kill_at=5, resume=False)
    assert killed.returncode == -signal.SIGKILL
    assert read_latest(tmp_path / "killed") == "step-00000003"
    resumed = _worker(tmp_path / "killed", kill_at=0, resume=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (
        list_tags(tmp_path / "killed")
        == list_tags(tmp_path / "full")
        == ["step-00000006", "step-00000008"]
    )
    a = consolidated_state_dict(tmp_path / "full" / "step-00000008")
    b = consolidated_state_dict(tmp_path / "killed" / "step-00000008")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key  # bitwise on CPU
    log = (tmp_path / "killed" / "train_log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == [str(s) for s in range(1, 9)]
