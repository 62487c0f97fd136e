"""``skysense train``: DeepSpeed ZeRO pre-training on the chips, checkpoints and export."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from skysense.cli.common import JsonOpt, ParamsOpt, SetOpt, emit_json, fail, load, out, user_errors


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
        nproc: Annotated[
            int | None,
            typer.Option("--nproc", min=1, help="local processes (default: train.nproc)"),
        ] = None,
        resume: Annotated[
            bool, typer.Option("--resume", help="continue exactly from OUT/latest")
        ] = False,
        params: ParamsOpt = None,
        overrides: SetOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Pre-train SkySense with DeepSpeed ZeRO (stage, precision, offload from params.yaml).

        Runs on CPU with gloo, or on GPUs with nccl, by train.device/backend (auto). Rank 0 shows
        progress and logs to MLflow; OUT gets step-* checkpoints, `latest`, run.json and export/.
        """
        import json

        cfg = load(params, overrides)
        chips_dir = chips or cfg.paths.chips
        out_path = out_dir or cfg.paths.checkpoints
        n = nproc or cfg.train.nproc
        if not (chips_dir / "manifest.parquet").is_file():
            fail(
                f"{chips_dir / 'manifest.parquet'} not found: chip the scenes first "
                "(skysense data chip, skysense data stats) or pass --chips DIR"
            )
        from skysense.training.launch import run_local

        quiet = _stdout_to_stderr() if as_json else contextlib.nullcontext()
        try:
            with quiet:
                run_local(cfg, chips_dir, out_path, nproc=n, resume=resume, show_progress=not as_json)
        except user_errors() as exc:
            fail(str(exc), code=3)
        from skysense.training.checkpoints import read_latest
        from skysense.training.tracking import read_run_id

        tag = read_latest(out_path)
        summary = {
            "checkpoint": str(out_path / tag) if tag else None,
            "export": str(out_path / "export"),
            "run_id": read_run_id(out_path),
            "nproc": n,
            "zero_stage": cfg.train.zero_stage,
        }
        export_cfg = out_path / "export" / "config.json"
        if export_cfg.is_file():
            summary["step"] = json.loads(export_cfg.read_text()).get("step")
        if as_json:
            emit_json(summary)
        else:
            out.print(
                f"trained to {summary['checkpoint']} (run {summary['run_id']}); "
                f"export in {summary['export']}"
            )
