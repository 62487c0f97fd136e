"""``skysense finetune``: a task model fine-tuned through DeepSpeed, scored against the frozen
probe and the random-init fine-tune, logged to MLflow.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from skysense.cli.common import (
    JsonOpt,
    NoMlflowOpt,
    ParamsOpt,
    SetOpt,
    TrackingUriOpt,
    emit_json,
    fail,
    load,
    out,
    user_errors,
)
from skysense.cli.train import _stdout_to_stderr

if TYPE_CHECKING:
    from skysense.training.run_folder import Mode

LABEL_SETS = ("segmentation", "classification", "eurosat", "bigearthnet", "catalog")


def register(app: typer.Typer) -> None:
    """Add the ``finetune`` command."""

    @app.command("finetune")
    def finetune_cmd(
        export: Annotated[
            str | None,
            typer.Option(
                "--export",
                help="the encoder: an export folder or models:/NAME@ALIAS (default: paths.export)",
            ),
        ] = None,
        downstream: Annotated[
            Path | None,
            typer.Option("--downstream", help="label sets' folder (default: paths.downstream)"),
        ] = None,
        out_dir: Annotated[
            Path | None, typer.Option("--out", help="report folder (default: paths.finetune)")
        ] = None,
        task: Annotated[
            str | None,
            typer.Option("--task", help="segmentation or classification (default: finetune.task)"),
        ] = None,
        labels: Annotated[
            str | None,
            typer.Option(
                "--labels",
                help="label set: segmentation, classification (the downstream layout), eurosat "
                "(EuroSAT folders), bigearthnet (BigEarthNet-MM, multi-label) or catalog (the "
                "`labels:` rasters of the catalog's locations over their chips: --catalog, "
                "--chips, classes in finetune.classes); default: the downstream set of the task",
            ),
        ] = None,
        catalog: Annotated[
            Path | None,
            typer.Option("--catalog", help="with --labels catalog (default: paths.catalog)"),
        ] = None,
        chips: Annotated[
            Path | None,
            typer.Option("--chips", help="with --labels catalog (default: paths.chips)"),
        ] = None,
        init: Annotated[
            str,
            typer.Option("--init", help="pretrained (the encoder's weights) or random (baseline)"),
        ] = "pretrained",
        task_export: Annotated[
            Path | None,
            typer.Option(
                "--task-export",
                help="task model export (default: paths.task_model, or OUT/export with --out)",
            ),
        ] = None,
        nproc: Annotated[
            int | None,
            typer.Option("--nproc", min=1, help="local processes (default: finetune.nproc)"),
        ] = None,
        resume: Annotated[
            bool, typer.Option("--resume", help="continue OUT's checkpoints; refuse another job's")
        ] = False,
        fresh: Annotated[
            bool, typer.Option("--fresh", help="set OUT's checkpoints aside and start clean")
        ] = False,
        no_mlflow: NoMlflowOpt = False,
        tracking_uri: TrackingUriOpt = None,
        params: ParamsOpt = None,
        set_: SetOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Fine-tune the encoder with a task head (UperNet segmentation or pooled classifier)
        through the DeepSpeed engine of pre-training (ZeRO stage, precision, resume from the
        finetune section), and the same from a random-init encoder; score both and the frozen
        encoder's linear probe on held-out places.

        Writes OUT/metrics.json (miou | acc, with *_frozen, *_random, *_gain_frozen,
        *_gain_random, iou.<class>), confusion.png, prediction.png, per_class.csv/.md,
        summary.json, checkpoints under OUT/checkpoints, and the task model export
        (safetensors + config.json with class names and colours) that `skysense register
        --task-model` registers.
        """
        from skysense.config import finetune_job
        from skysense.finetuning.runner import run_finetune

        overrides = list(set_ or [])
        if task is not None:
            overrides.append(f"finetune.task={task}")
        cfg = load(params, overrides)
        if resume and fresh:
            fail("--resume and --fresh exclude each other: choose one")
        if init not in ("pretrained", "random"):
            fail(f"--init {init!r}: use pretrained or random")
        label_set = labels or cfg.finetune.task
        if label_set not in LABEL_SETS:
            fail(f"--labels {label_set!r}: use one of {', '.join(LABEL_SETS)}")
        if cfg.finetune.task == "segmentation" and label_set not in ("segmentation", "catalog"):
            fail(f"--labels {label_set} holds scene labels: use --task classification with it")
        if cfg.finetune.task == "classification" and label_set in ("segmentation", "catalog"):
            fail("--labels segmentation holds class maps: use --task segmentation with it")
        source = export or str(cfg.paths.export)
        labels_root = downstream or cfg.paths.downstream
        if label_set == "catalog":
            labels_root = chips or cfg.paths.chips
        target = out_dir or cfg.paths.finetune
        model_out = task_export or (
            out_dir / "export" if out_dir is not None else cfg.paths.task_model
        )
        mode: Mode = "resume" if resume else "fresh" if fresh else "auto"
        quiet = contextlib.ExitStack()
        if as_json:  # DeepSpeed's and the workers' prints: file descriptor 1 and sys.stdout
            quiet.enter_context(_stdout_to_stderr())
            quiet.enter_context(contextlib.redirect_stdout(sys.stderr))
        with tempfile.TemporaryDirectory(prefix="skysense-encoder-") as tmp:
            try:
                encoder_dir, encoder_version = _encoder_folder(source, Path(tmp), cfg, tracking_uri)
                job = finetune_job(
                    cfg,
                    encoder_dir,
                    labels_root,
                    init=init,
                    label_set=label_set,
                    encoder_source=source,
                    catalog=(catalog or cfg.paths.catalog) if label_set == "catalog" else None,
                )
                if encoder_version is not None:
                    job.extra["encoder_version"] = encoder_version
                with quiet:
                    report = run_finetune(
                        job,
                        target,
                        export_dir=model_out,
                        nproc=nproc or cfg.finetune.nproc,
                        mode=mode,
                    )
                run_id = None if no_mlflow else _log(cfg, report, job, tracking_uri)
            except user_errors() as exc:
                fail(str(exc), code=3 if type(exc).__name__ == "TrainingError" else None)
        m = report.metrics
        if as_json:
            emit_json(
                {
                    "metrics": m,
                    "summary": report.summary,
                    "export": str(report.export_dir),
                    "files": [str(f) for f in report.files],
                    "mlflow_run_id": run_id,
                }
            )
            return
        for key in sorted(
            k for k in m if not k.endswith(("_frozen", "_random")) and "_gain_" not in k
        ):
            extra = "".join(
                f"  {s} {m[key + '_' + s]:.4f} ({m[key + '_gain_' + s]:+.4f})"
                for s in ("frozen", "random")
                if key + "_" + s in m
            )
            out.print(f"{key:24s} {m[key]:.4f}{extra}", highlight=False)
        out.print(f"task model: {report.export_dir}; report: {target}", highlight=False)


def _encoder_folder(
    source: str, tmp: Path, cfg, tracking_uri: str | None
) -> tuple[Path, str | None]:
    """A local encoder export for ``source``: the folder itself, or the registered version's
    verified ``export`` artifact downloaded into ``tmp``; and the registry version, if any.
    """
    if not source.startswith("models:/"):
        return Path(source), None
    from skysense.registry.model_loading import download_verified_export
    from skysense.tracking.store import connect, resolve_tracking_uri

    client = connect(resolve_tracking_uri(tracking_uri, cfg.registry.tracking_uri))
    folder, mv = download_verified_export(source, tmp, client)
    return folder, str(mv.version)


def _log(cfg, report, job, tracking_uri: str | None) -> str:
    from skysense.finetuning.tracking import log_finetune
    from skysense.tracking.store import connect, ensure_experiment, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri, cfg.registry.tracking_uri)
    client = connect(uri)
    exp = ensure_experiment(client, cfg.finetune.experiment, cfg.registry.artifact_location, uri)
    enc_cfg_lineage: dict[str, Any] = {}
    config_file = report.export_dir / "config.json"
    if config_file.is_file():
        enc_cfg_lineage = json.loads(config_file.read_text()).get("encoder_lineage") or {}
    tags = {
        "encoder_source": str(job.extra.get("encoder_source")),
        "encoder_version": str(job.extra.get("encoder_version", "")),
        "encoder_run_id": str(enc_cfg_lineage.get("mlflow_run_id") or ""),
        "label_set": job.label_set,
        "label_version": str(job.label_version),
        "init": job.init,
    }
    return log_finetune(
        client, exp, report, {"finetune": job.finetune.model_dump(mode="json")}, tags
    )
