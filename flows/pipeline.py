"""The ``pipeline`` flow: sample -> validate -> chip -> train -> evaluate [-> finetune] ->
register -> promote (the encoder, then the task model when ``finetune.enabled``).

Each stage is a Prefect task that runs its DVC stage (``dvc repro --single-item <stage>`` when
``pipeline.use_dvc``; DVC skips what is up to date) or its ``skysense`` command. Validation and
chipping fan out over locations as mapped tasks on the configured task runner when out of date
(see :mod:`flows.fanout`; with DVC, ``dvc commit`` records their outputs). Transient failures (a
store or server
briefly unreachable) are retried; any other failure fails the flow with the stage's own message,
before anything is registered. One run at a time per project folder: the whole run holds the
project lock ``.skysense/pipeline.lock`` (:func:`project_lock`).

Run it with ``skysense pipeline run`` (ephemeral Prefect, no server), serve it on a schedule with
``skysense pipeline serve --cron``, or deploy it with ``prefect deploy`` (``prefect.yaml``).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from flows import environment

if __name__ == "__main__":  # run as a script, this file is the entry point: the process
    environment.configure(".")  # environment (Prefect's home first) before Prefect is imported

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows import fanout, release, reporting, stages, task_release, warm
from skysense.config import SkySenseConfig, apply_overrides, config_from_dict, load_config
from skysense.core.file_lock import FileLock

STAGES = ("sample", "validate", "chip", "train", "evaluate")
OPTIONAL_STAGES = ("finetune",)  # run when its section's ``enabled`` is true


def stages_of(cfg: SkySenseConfig) -> tuple[str, ...]:
    """The stages a run of ``cfg`` goes through, in order."""
    return STAGES + tuple(s for s in OPTIONAL_STAGES if getattr(cfg, s).enabled)


def is_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry condition: only failures that look like an unreachable store or server."""
    try:
        state.result()
    except stages.TransientStageError:
        return True
    except Exception as exc:  # noqa: BLE001 - anything else is the stage's own failure
        return isinstance(exc, (ConnectionError, TimeoutError))
    return False


@task(
    name="stage",
    task_run_name="{stage}",
    persist_result=True,
    cache_policy=NO_CACHE,
    retry_condition_fn=is_transient,
)
def run_stage(
    stage: str,
    root: str,
    use_dvc: bool,
    params: str | None,
    overrides: list[str],
    values: dict[str, Any],
) -> dict[str, Any]:
    """Run one pipeline stage; return its :class:`flows.stages.StageReport` as a dict."""
    logger = get_run_logger()
    if use_dvc:
        report = stages.run_dvc_stage(stage, root)
    else:
        report = stages.run_cli_stage(stage, root, params, overrides, values)
    logger.info(
        "stage %s: %s in %.1f s", stage, "ran" if report.ran else "up to date", report.seconds
    )
    return asdict(report)


@task(name="dvc-push", persist_result=True, cache_policy=NO_CACHE, retry_condition_fn=is_transient)
def push_outputs(root: str, remote: str, url: str) -> stages.StageReport:
    """Push every stage output to the DVC remote, so a registered model's data is retrievable."""
    return stages.dvc_push(root, remote, url)


def write_overrides_to_params(root: Path, params: Path, overrides: list[str]) -> None:
    """Apply ``--set`` overrides to the params file, as ``dvc exp run --set-param`` does.

    DVC tracks parameters through the file, so a DVC-run pipeline records overrides there.
    The file is read whole (an empty or cut-short file is an error, not defaults); the result is
    validated before it is written, atomically; a bad override leaves the file untouched. A
    missing file is written complete: the defaults with the overrides.
    """
    import yaml

    from skysense.config import dump_config
    from skysense.core.atomic_files import write_text_atomic
    from skysense.core.params_file import read_params

    path = params if params.is_absolute() else root / params
    if path.exists():
        raw, _ = read_params(path, tuple(SkySenseConfig.model_fields))
    else:
        raw = yaml.safe_load(dump_config(SkySenseConfig()))
    updated = apply_overrides(raw, overrides)
    config_from_dict(updated, str(path))
    if updated != raw or not path.exists():
        write_text_atomic(path, yaml.safe_dump(updated, sort_keys=False))


PROJECT_LOCK = Path(".skysense") / "pipeline.lock"


def project_lock(root: Path, wait_s: float = 0.0) -> FileLock:
    """The project lock: one pipeline (or ingest) run at a time in ``root``.

    Held for the whole run: params overrides, every stage (the fan-outs write outside DVC's own
    repository lock), registration and promotion. A second run waits up to ``wait_s``, then fails
    with a :class:`~skysense.core.file_lock.LockHeldError` naming ``root/.skysense/pipeline.lock``
    and
    its holder. The kernel releases it when the holder dies.
    """
    from prefect.runtime import flow_run

    run = f" (flow run {flow_run.id})" if flow_run.id else ""
    return FileLock(
        root / PROJECT_LOCK, purpose=f"the skysense pipeline in {root}{run}", wait_s=wait_s
    )


def _stage_options(cfg: SkySenseConfig) -> dict[str, Any]:
    return {"retries": cfg.pipeline.retries, "retry_delay_seconds": cfg.pipeline.retry_delay_s}


@flow(name="skysense-pipeline", log_prints=True, persist_result=True)
def pipeline(
    params_path: str = "params.yaml",
    overrides: list[str] | None = None,
    use_dvc: bool | None = None,
    run_sample: bool = True,
    promote: bool = True,
    project_root: str = ".",
    lock_wait_s: float = 0.0,
    hold_project_lock: bool = True,
) -> dict[str, Any]:
    """Build the dataset, pre-train, evaluate, register and promote the SkySense encoder.

    Args:
        params_path: the params file (relative to ``project_root``).
        overrides: ``section.key=value`` settings; with DVC they are written to the params file.
        use_dvc: run stages through ``dvc repro`` (default: ``pipeline.use_dvc``).
        run_sample: write the bundled synthetic sample first (off when ingesting real scenes).
        promote: try to promote the new challenger to champion.
        project_root: the working folder (holds ``dvc.yaml`` and ``params.yaml``).
        lock_wait_s: how long to wait for another run holding the project lock (see
            :func:`project_lock`); 0 fails at once.
        hold_project_lock: take the project lock (off only for a caller that holds it, e.g.
            the ingest flow).

    Returns:
        Summary: per-stage reports, registration, promotion, champion and links.

    Raises:
        LockHeldError: another run holds the project lock (nothing was changed).
    """
    root = Path(project_root).resolve()
    environment.configure(root)  # DVC, MLflow and GX settings for the stages (where unset)
    with project_lock(root, lock_wait_s) if hold_project_lock else contextlib.nullcontext():
        # settings read, and overrides written, only under the lock
        return _run_pipeline(
            root, Path(params_path), list(overrides or []), use_dvc, run_sample, promote
        )


def _run_pipeline(
    root: Path,
    params: Path,
    overrides: list[str],
    use_dvc: bool | None,
    run_sample: bool,
    promote: bool,
) -> dict[str, Any]:
    """The body of :func:`pipeline`, run while the project lock is held."""
    logger = get_run_logger()
    started = time.perf_counter()
    params_file = params if params.is_absolute() else root / params
    cfg = load_config(params_file if params_file.exists() else None, overrides)
    dvc = cfg.pipeline.use_dvc if use_dvc is None else use_dvc
    if dvc and params_file.resolve() != (root / "params.yaml").resolve():
        raise stages.StageFailed(
            f"{params_file}: with pipeline.use_dvc the params file must be {root / 'params.yaml'} "
            "(the file dvc.yaml's stages track); copy it there or run with --no-dvc"
        )
    if dvc and overrides:
        write_overrides_to_params(root, params, overrides)
        logger.info("wrote %d override(s) to %s for DVC", len(overrides), params_file)
    cli_overrides = [] if dvc else overrides
    stage_task = run_stage.with_options(**_stage_options(cfg))
    values = cfg.model_dump(mode="json")

    reports: list[dict[str, Any]] = []
    for stage in stages_of(cfg):
        if stage == "sample" and not run_sample:
            continue
        warm.warm_for_stage(stage)  # what the next in-process step imports, while this one runs
        if stage in fanout.FANOUT_STAGES:
            rep = fanout.run_fanout_stage(stage, root, cfg, dvc)
        else:
            rep = stage_task(
                stage,
                str(root),
                dvc,
                str(params_file) if params_file.exists() else None,
                cli_overrides,
                values,
            )
        reports.append(rep)
        if stage == "validate":
            report = reporting.read_json(root / cfg.paths.validation / "validation.json")
            create_markdown_artifact(
                key="validation-counts",
                markdown=reporting.validation_table(report),
                description="Validation counts of this run",
            )

    if dvc and cfg.pipeline.dvc_push:
        reports.append(
            asdict(
                push_outputs.with_options(**_stage_options(cfg))(
                    str(root), cfg.pipeline.dvc_remote, cfg.pipeline.dvc_remote_url
                )
            )
        )

    create_table_artifact(
        key="stage-timings",
        table=[
            {"stage": r["stage"], "ran": r["ran"], "seconds": round(r["seconds"], 2)}
            for r in reports
        ],
        description="Pipeline stages: ran or up to date, wall seconds",
    )
    outcome = release.register_and_promote(root, cfg, promote, _stage_options(cfg))
    if cfg.finetune.enabled:
        outcome["task_model"] = task_release.register_and_promote_task_model(
            root, cfg, promote, _stage_options(cfg)
        )
    summary = {
        "stages": [{k: r[k] for k in ("stage", "ran", "seconds")} for r in reports],
        "use_dvc": dvc,
        "task_runner": fanout.runner_description(cfg),
        **outcome,
        "wall_seconds": round(time.perf_counter() - started, 2),
    }
    print(
        f"pipeline done in {summary['wall_seconds']:.1f} s; champion: "
        f"v{summary.get('champion_version')}"
    )
    return summary


if __name__ == "__main__":  # pragma: no cover
    pipeline()
