"""``skysense train``: DeepSpeed ZeRO pre-training on the chips, checkpoints and export."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from skysense.cli.common import JsonOpt, ParamsOpt, SetOpt, emit_json, fail, load, out, user_errors
from skysense.config import training_job

if TYPE_CHECKING:
    from skysense.training.run_folder import Mode


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send file descriptor 1 (DeepSpeed's logs, worker processes) to stderr for a while."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def register(app: typer.Typer) -> None:
    """Add the ``train`` command."""

    @app.command("train")
    def train_cmd(
        chips: Annotated[
            Path | None, typer.Option("--chips", help="chips folder (default: paths.chips)")
        ] = None,
        out_dir: Annotated[
            Path | None,
            typer.Option("--out", help="checkpoints folder (default: paths.checkpoints)"),
        ] = None,
        export: Annotated[
            Path | None,
            typer.Option(
                "--export",
                help="export folder (default: paths.export, or OUT/export when --out is given)",
            ),
        ] = None,
        nproc: Annotated[
            int | None,
            typer.Option("--nproc", min=1, help="local processes (default: train.nproc)"),
        ] = None,
        resume: Annotated[
            bool,
            typer.Option(
                "--resume",
                help="continue from OUT/latest; refuse when OUT holds "
                "a run of other settings or chips",
            ),
        ] = False,
        fresh: Annotated[
            bool, typer.Option("--fresh", help="set OUT aside (renamed, kept) and start clean")
        ] = False,
        lock_wait: Annotated[
            float,
            typer.Option(
                "--lock-wait",
                min=0.0,
                help="seconds to wait for another run training into OUT (default: fail at once)",
            ),
        ] = 0.0,
        params: ParamsOpt = None,
        overrides: SetOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Pre-train SkySense with DeepSpeed ZeRO (stage, precision, offload from params.yaml).

        Runs on CPU with gloo, or on GPUs with nccl, by train.device/backend (auto). Rank 0 shows
        progress and logs to MLflow; OUT gets step-* checkpoints, `latest`, run.json,
        train_log.csv and fingerprint.json, EXPORT the safetensors export.

        A rerun into the same OUT resumes from OUT/latest when OUT's fingerprint.json matches
        these settings and chips; otherwise OUT is renamed to OUT.stale-<time> (kept) and the run
        starts clean. One run at a time holds OUT (lock file .<name>.lock beside it).
        """
        import json

        cfg = load(params, overrides)
        chips_dir = chips or cfg.paths.chips
        out_path = out_dir or cfg.paths.checkpoints
        export_path = export or (out_dir / "export" if out_dir is not None else cfg.paths.export)
        n = nproc or cfg.train.nproc
        if resume and fresh:
            fail("--resume and --fresh exclude each other: choose one")
        if out_path.absolute() == export_path.absolute():
            fail(f"--export and --out are both {out_path}: the export needs its own folder")
        if not (chips_dir / "manifest.parquet").is_file():
            fail(
                f"{chips_dir / 'manifest.parquet'} not found: chip the scenes first "
                "(skysense data chip, skysense data stats) or pass --chips DIR"
            )
        from skysense.training.launch import train_into_folder

        mode: Mode = "resume" if resume else "fresh" if fresh else "auto"
        quiet = _stdout_to_stderr() if as_json else contextlib.nullcontext()
        try:
            with quiet:
                plan = train_into_folder(
                    training_job(cfg),
                    chips_dir,
                    out_path,
                    nproc=n,
                    mode=mode,
                    export_dir=export_path,
                    lock_wait_s=lock_wait,
                    show_progress=not as_json,
                    on_plan=lambda p: out.print(p.reason, soft_wrap=True, highlight=False),
                )
        except user_errors() as exc:
            fail(str(exc), code=3)
        from skysense.training.checkpoints import read_latest
        from skysense.training.tracking import read_run_id

        tag = read_latest(out_path)
        summary = {
            "checkpoint": str(out_path / tag) if tag else None,
            "export": str(export_path),
            "run_id": read_run_id(out_path),
            "nproc": n,
            "zero_stage": cfg.train.zero_stage,
            "resumed_from": plan.latest if plan.resume else None,
            "set_aside": str(plan.set_aside) if plan.set_aside else None,
        }
        export_cfg = export_path / "config.json"
        if export_cfg.is_file():
            summary["step"] = json.loads(export_cfg.read_text()).get("step")
        if as_json:
            emit_json(summary)
        else:
            out.print(
                f"trained to {summary['checkpoint']} (run {summary['run_id']}); "
                f"export in {summary['export']}"
            )
