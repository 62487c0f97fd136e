"""Running one fine-tuning job: in this process, or as N local ranks through torchrun.

The checkpoints folder gets ``job.json`` (the :class:`~skysense.finetuning.job.FinetuneJob`
every rank reads) and ``fingerprint.json``; a rerun into the same folder resumes from its
``latest`` checkpoint when the job is the same, and sets a folder of another job aside
(``<name>.stale-<time>``, kept), under the folder's lock: the run-folder rules of pre-training
(:mod:`skysense.training.run_folder`).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from skysense.core.atomic_files import write_text_atomic
from skysense.core.errors import TrainingError
from skysense.core.lineage import file_sha256
from skysense.finetuning.job import JOB_FILE, FinetuneJob
from skysense.finetuning.loop import engine_settings, finetune_rank
from skysense.training.engine import resolve_runtime
from skysense.training.launch import FAILURE_GLOB, thread_env, torchrun_command, under_launcher
from skysense.training.run_folder import Mode, RunFolderPlan, folder_lock, prepare_run_folder

WORKER_MODULE = "skysense.cli.finetune_worker"
FORMAT = "skysense-finetune-checkpoints/1"
#: settings that change how often checkpoints are written, not the weights
RESUME_NEUTRAL = ("checkpoint_every", "keep_checkpoints", "nproc", "enabled")


def job_fingerprint(job: FinetuneJob, world_size: int) -> dict[str, Any]:
    """What must match for a folder's checkpoints to be resumed by ``job``."""
    # the encoder by its weights' hash, not its folder: a registry version is downloaded to a
    # new temporary folder on every run, and a resumed run must still match
    settings = job.model_dump(mode="json", exclude={"encoder_export", "extra"})
    settings["finetune"] = {
        k: v for k, v in settings["finetune"].items() if k not in RESUME_NEUTRAL
    }
    weights = Path(job.encoder_export) / "model.safetensors"
    runtime = resolve_runtime(engine_settings(job))
    return {
        "format": FORMAT,
        "job": settings,
        "encoder_sha256": file_sha256(weights) if weights.is_file() else None,
        "runtime": {
            "device": runtime.device,
            "backend": runtime.backend,
            "precision": runtime.precision,
            "world_size": world_size,
        },
    }


def run_job(
    job: FinetuneJob,
    out: Path,
    *,
    nproc: int,
    resume: bool,
    export_dir: Path,
    pass_fds: tuple[int, ...] = (),
    stop_after: int | None = None,
) -> None:
    """Fine-tune with ``nproc`` local processes (in place for one); rank 0 exports to
    ``export_dir``.

    Raises:
        TrainingError: the run failed (the failing rank's message, or its exit status).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if nproc == 1 or under_launcher():
        finetune_rank(job, out, resume=resume, export_dir=export_dir, stop_after=stop_after)
        return
    job_file = out / JOB_FILE
    write_text_atomic(job_file, job.model_dump_json(indent=2))
    args = ["--job", str(job_file), "--out", str(out), "--export", str(export_dir)]
    if resume:
        args.append("--resume")
    if stop_after is not None:
        args += ["--stop-after", str(stop_after)]
    for stale in out.glob(FAILURE_GLOB):
        stale.unlink()
    proc = subprocess.run(
        torchrun_command(nproc, args, module=WORKER_MODULE),
        env=thread_env(nproc),
        check=False,
        pass_fds=pass_fds,
    )
    if proc.returncode != 0:
        reports = sorted(out.glob(FAILURE_GLOB))
        detail = (
            reports[0].read_text().strip()
            if reports
            else "a rank died without a message (killed, out of memory or crashed; see its log)"
        )
        raise TrainingError(
            f"{nproc}-process fine-tuning exited with status {proc.returncode}: {detail}. The "
            f"last good checkpoint in {out} is kept; rerun to resume from it"
        )


def finetune_into_folder(
    job: FinetuneJob,
    out: Path,
    *,
    nproc: int,
    export_dir: Path,
    mode: Mode = "auto",
    lock_wait_s: float = 0.0,
    stop_after: int | None = None,
) -> RunFolderPlan:
    """Fine-tune into the checkpoints folder ``out`` as its only writer, resuming a matching run.

    Raises:
        LockHeldError: another run holds ``out``.
        TrainingError: the run failed, or ``mode="resume"`` and ``out`` holds another job.
    """
    out = Path(out)
    with folder_lock(out, lock_wait_s) as lock:
        plan = prepare_run_folder(out, job_fingerprint(job, nproc), mode)
        run_job(
            job,
            out,
            nproc=nproc,
            resume=plan.resume,
            export_dir=export_dir,
            pass_fds=(lock.fileno(),),
            stop_after=stop_after,
        )
    return plan
