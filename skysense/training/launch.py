"""Process launching: one process in place, or N local processes through torchrun.

* ``run_local(..., nproc=1)`` trains in this process (single-process env set for DeepSpeed).
* ``run_local(..., nproc=N)`` writes the resolved params beside the checkpoints and starts
  ``python -m torch.distributed.run --standalone --nproc_per_node N -m skysense.cli.train_worker``;
  each worker is :mod:`skysense.cli.train_worker` (an entry point: it reads the params file).
  ``OMP_NUM_THREADS`` is set to cores / N (torchrun would otherwise force 1 thread per process).
* :func:`train_into_folder` is what ``skysense train`` runs: the checkpoints folder's lock, then
  resume or a clean start (:mod:`skysense.training.run_folder`), then :func:`run_local`.
* Under an external launcher (``deepspeed --hostfile``, multi-node ``torchrun``) every rank runs
  ``python -m skysense.cli.train_worker --params P --chips D --out O``; see
  :func:`multinode_command`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from skysense.core.atomic_files import write_text_atomic
from skysense.core.errors import TrainingError
from skysense.training.engine import SELF_SET_ENV, child_env, resolve_runtime
from skysense.training.job import TrainingJob
from skysense.training.loop import train
from skysense.training.run_folder import (
    Mode,
    RunFolderPlan,
    folder_lock,
    prepare_run_folder,
    run_fingerprint,
)

WORKER_MODULE = "skysense.cli.train_worker"  # every rank's entry point
RESOLVED_PARAMS = "params.resolved.yaml"
WORKER_EXIT = 3
FAILURE_GLOB = "failed-rank*.txt"


def under_launcher() -> bool:
    """True when a launcher (torchrun, deepspeed) started this process as one rank of a job."""
    if os.environ.get(SELF_SET_ENV):  # set by this process (or its parent) for itself
        return False
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ and "MASTER_ADDR" in os.environ


def worker_command(
    params: Path, chips: Path | None, out: Path, resume: bool, export: Path | None = None
) -> list[str]:
    """Arguments after ``python -m skysense.cli.train_worker`` for every rank."""
    args = ["--params", str(params), "--out", str(out)]
    if chips is not None:
        args += ["--chips", str(chips)]
    if export is not None:
        args += ["--export", str(export)]
    if resume:
        args.append("--resume")
    return args


def torchrun_command(nproc: int, worker_args: list[str], module: str = WORKER_MODULE) -> list[str]:
    """The local multi-process command: torchrun (standalone rendezvous on a free port) running
    ``python -m module`` on every rank (the pre-training worker by default).
    """
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes",
        "1",
        "--nproc_per_node",
        str(nproc),
        "-m",
        module,
        *worker_args,
    ]


def multinode_command(
    hostfile: Path, master_addr: str, params: Path, chips: Path, out: Path
) -> list[str]:
    """The DeepSpeed launcher command for a multi-node run over a hostfile (shared file system).

    Run it on the first host of the hostfile; DeepSpeed reaches the others by password-less ssh.
    """
    return [
        "deepspeed",
        "--hostfile",
        str(hostfile),
        "--master_addr",
        master_addr,
        "--master_port",
        "29500",
        "--module",
        WORKER_MODULE,
        *worker_command(params, chips, out, resume=False),
    ]


def thread_env(nproc: int) -> dict[str, str]:
    """Environment for N local workers: CPU threads split evenly between them."""
    env = child_env()
    cores = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )
    env["OMP_NUM_THREADS"] = str(max(1, cores // nproc))
    return env


def run_local(
    job: TrainingJob,
    chips: Path | None,
    out: Path,
    *,
    nproc: int,
    resume: bool,
    show_progress: bool = True,
    export_dir: Path | None = None,
    pass_fds: tuple[int, ...] = (),
) -> None:
    """Train with ``nproc`` local processes; rank 0's results are under ``out``.

    ``export_dir`` defaults to ``out/export``; ``pass_fds`` are descriptors the torchrun process
    keeps open (the folder lock, so that it stays held while the workers run).

    Raises:
        TrainingError: the run failed (the message of the failing rank, or its exit status).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if nproc == 1 or under_launcher():
        train(job, chips, out, resume=resume, show_progress=show_progress, export_dir=export_dir)
        return
    params = out / RESOLVED_PARAMS
    # the whole resolved configuration: each worker reads it as its params file
    write_text_atomic(params, yaml.safe_dump(job.params, sort_keys=False))
    cmd = torchrun_command(nproc, worker_command(params, chips, out, resume, export_dir))
    for stale in out.glob(FAILURE_GLOB):
        stale.unlink()
    proc = subprocess.run(cmd, env=thread_env(nproc), check=False, pass_fds=pass_fds)
    if proc.returncode != 0:
        reports = sorted(out.glob(FAILURE_GLOB))
        if reports:
            detail = reports[0].read_text().strip()
        else:
            detail = (
                "a rank died without a message (killed, out of memory or crashed; "
                "see its log above)"
            )
        raise TrainingError(
            f"{nproc}-process training exited with status {proc.returncode}: {detail}. The last "
            f"good checkpoint in {out} is kept; fix the cause and rerun (it resumes from there)"
        )


def train_into_folder(
    job: TrainingJob,
    chips: Path | None,
    out: Path,
    *,
    nproc: int,
    mode: Mode = "auto",
    export_dir: Path | None = None,
    lock_wait_s: float = 0.0,
    show_progress: bool = True,
    on_plan: Callable[[RunFolderPlan], None] | None = None,
) -> RunFolderPlan:
    """Train into the checkpoints folder ``out`` as its only writer, resuming a matching run.

    Holds ``out``'s lock for the whole run, then resumes from ``out/latest`` when the folder's
    fingerprint matches this run's settings and chips, or sets the folder aside and starts clean
    (see :mod:`skysense.training.run_folder`; ``mode`` as in
    :func:`~skysense.training.run_folder.prepare_run_folder`).

    Args:
        job: the training settings (model, objective, engine, paths).
        chips: the chip folder (``None``: the job's own).
        out: the checkpoints folder this run owns.
        nproc: number of processes (1 trains in this process).
        mode: ``auto`` (resume a matching folder, set any other aside), ``resume`` or ``fresh``.
        export_dir: where the safetensors export goes (default: ``out/export``).
        lock_wait_s: how long to wait for another run holding ``out``'s lock.
        show_progress: print a progress line per logged step.
        on_plan: called with the decision before training starts (to tell the user).

    Raises:
        LockHeldError: another run holds ``out`` for longer than ``lock_wait_s``.
        TrainingError: the run failed, or ``mode="resume"`` and the folder is another run's.
    """
    out = Path(out)
    with folder_lock(out, lock_wait_s) as lock:
        fingerprint = run_fingerprint(job, chips, resolve_runtime(job.train), world_size=nproc)
        plan = prepare_run_folder(out, fingerprint, mode)
        if on_plan is not None:
            on_plan(plan)
        run_local(
            job,
            chips,
            out,
            nproc=nproc,
            resume=plan.resume,
            show_progress=show_progress,
            export_dir=export_dir,
            pass_fds=(lock.fileno(),),
        )
    return plan
