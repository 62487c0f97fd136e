"""Launcher command lines and thread split (no processes started)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from skysense.cli import train_worker
from skysense.training import launch


def test_torchrun_command_runs_the_worker_module_on_n_local_processes() -> None:
    args = launch.worker_command(
        Path("o/params.resolved.yaml"), Path("chips"), Path("o"), resume=True
    )
    cmd = launch.torchrun_command(2, args)
    assert cmd[1:3] == ["-m", "torch.distributed.run"]
    assert cmd[cmd.index("--nproc_per_node") + 1] == "2" and "--standalone" in cmd
    assert cmd[cmd.index("-m", 3) + 1] == "skysense.cli.train_worker"
    assert cmd[-7:] == [
        "--params",
        "o/params.resolved.yaml",
        "--out",
        "o",
        "--chips",
        "chips",
        "--resume",
    ]


def test_multinode_command_uses_the_hostfile_and_module_mode() -> None:
    cmd = launch.multinode_command(
        Path("infra/deepspeed/hostfile"),
        "10.0.0.5",
        Path("p.yaml"),
        Path("/shared/chips"),
        Path("/shared/ckpt"),
    )
    assert cmd[:3] == ["deepspeed", "--hostfile", "infra/deepspeed/hostfile"]
    assert cmd[cmd.index("--module") + 1] == "skysense.cli.train_worker"
    assert cmd[cmd.index("--master_addr") + 1] == "10.0.0.5"


def test_threads_are_split_between_local_workers() -> None:
    cores = len(os.sched_getaffinity(0))
    assert launch.thread_env(1)["OMP_NUM_THREADS"] == str(cores)
    assert launch.thread_env(cores * 2)["OMP_NUM_THREADS"] == "1"


def test_worker_accepts_the_deepspeed_launchers_local_rank(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no params.yaml here: embedded defaults
    bad = tmp_path / "params.yaml"
    bad.write_text("train:\n  zero_stage: 7\n")
    with pytest.raises(Exception, match="zero_stage"):
        train_worker.main(["--local_rank=0", "--params", str(bad), "--out", str(tmp_path / "o")])
