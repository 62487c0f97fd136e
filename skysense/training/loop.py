"""The pre-training loop: one call per rank, from config to checkpoints, MLflow run and export.

Every rank runs :func:`train`; rank 0 alone shows progress, logs to MLflow and writes
``train_log.csv``, ``run.json`` and the export. Each micro-step all-reduces the loss components
(one small collective): the mean goes to the log, and a non-finite value stops every rank at the
same step with a :class:`TrainingError`, before the broken step is applied, so the last good
checkpoint stays the ``latest`` one.
"""

from __future__ import annotations

import csv
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skysense.core.errors import TrainingError
from skysense.data.dataset import ChipDataset, collate_samples
from skysense.models import create_model
from skysense.models.objectives import create_pretrainer
from skysense.training import checkpoints
from skysense.training.engine import (
    build_engine,
    init_distributed,
    resolve_runtime,
    uses_activation_checkpointing,
)
from skysense.training.export import export_checkpoint
from skysense.training.job import TrainingJob
from skysense.training.live_curves import LiveCurves, curves_dir
from skysense.training.progress import TrainProgress
from skysense.training.sampling import EpochShardStream, batch_iterator
from skysense.training.schedule import ema_momentum_at
from skysense.training.teacher import update_teacher
from skysense.training.telemetry import peak_memory_bytes
from skysense.training.tracking import RunTracker

StepCallback = Callable[[int, dict[str, float]], None]


@dataclass
class TrainResult:
    """What a finished run left: steps done, per-step losses (this run), paths, MLflow run id.

    ``engine`` is the DeepSpeed engine in its final state (to evaluate or inspect in-process).
    """

    steps: int
    losses: list[float] = field(default_factory=list)
    checkpoint: Path | None = None
    export_dir: Path | None = None
    run_id: str | None = None
    engine: Any = None


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pretrainer_from_config(job: TrainingJob) -> torch.nn.Module:
    """The SkySense pre-trainer (student, EMA teacher, heads) for ``job.model`` with the
    objective of ``job.train.objective`` (``legacy`` or ``paper``).
    """
    model = create_model(job.model.preset, **job.model.overrides)
    model.set_grad_checkpointing(uses_activation_checkpointing(job))
    # ZeRO-3 gathers/reduces parameters per module: every rank must run every branch.
    model.run_all_branches = job.train.zero_stage == 3
    return create_pretrainer(model, job.train)


def chip_dataset(job: TrainingJob, chips_dir: Path, pretrainer: torch.nn.Module) -> Any:
    """The pre-training split of the chips in ``chips_dir``."""
    spec = getattr(getattr(pretrainer, "student", None), "spec", None)
    kwargs: dict[str, Any] = {"split": "pretrain", "modalities": list(job.model.modalities)}
    if spec is not None:
        kwargs["n_regions"] = spec.n_regions
    return ChipDataset(chips_dir, **kwargs)


def to_device(
    batch: dict[str, Any], device: torch.device, float_dtype: torch.dtype
) -> dict[str, Any]:
    """Move a batch's tensors to ``device``, casting floating tensors to the module dtype."""
    moved: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device, non_blocking=True)
            if value.is_floating_point():
                value = value.to(float_dtype)
        moved[key] = value
    return moved


def reduce_components(out: dict[str, Any], world_size: int) -> dict[str, float]:
    """Mean of every scalar loss component over the ranks that produced it.

    Ranks may report different components (a modality absent from one rank's batch), so the
    names are gathered first and each value is averaged over the ranks that have it.
    """
    import deepspeed.comm as dist

    local = {k: v for k, v in out.items() if isinstance(v, torch.Tensor) and v.numel() == 1}
    if world_size == 1:
        return {k: float(v.detach().float()) for k, v in local.items()}
    gathered: list[Any] = [None] * world_size
    dist.all_gather_object(gathered, sorted(local))
    names = sorted(set().union(*gathered))
    sums = torch.zeros(len(names), 2)
    for i, name in enumerate(names):
        if name in local:
            sums[i, 0] = local[name].detach().float().cpu()
            sums[i, 1] = 1.0
    dist.all_reduce(sums)
    return {n: float(sums[i, 0] / sums[i, 1]) for i, n in enumerate(names)}


def state_is_finite(engine: Any, world_size: int) -> bool:
    """True when every rank's parameters (its partition under ZeRO-3) are finite; a collective."""
    import deepspeed.comm as dist

    bad = torch.zeros(1)
    for p in engine.module.parameters():
        local = getattr(p, "ds_tensor", p.data)
        if local.numel() and not torch.isfinite(local).all():
            bad += 1
            break
    if world_size > 1:
        dist.all_reduce(bad)
    return bool(bad.item() == 0)


def train(
    job: TrainingJob,
    chips_dir: Path | None,
    out_dir: Path,
    *,
    resume: bool = False,
    pretrainer: torch.nn.Module | None = None,
    dataset: Any = None,
    collate: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None,
    on_step: StepCallback | None = None,
    export: bool = True,
    export_dir: Path | None = None,
    track: bool = True,
    show_progress: bool = True,
) -> TrainResult:
    """Pre-train with DeepSpeed on this rank; every rank of the job calls it.

    Args:
        job: resolved configuration (``model`` and ``train`` sections).
        chips_dir: chips folder (manifest, shards, ``stats.json``); None when ``dataset`` given.
        out_dir: checkpoints folder (``step-*`` tags, ``latest``, ``export/``, ``run.json``).
        resume: continue from ``out_dir/latest`` exactly (weights, optimizer, lr, RNG, order).
        pretrainer: the module to train; default from ``job.model`` (SkySense pre-trainer).
        dataset: indexable samples; default the ``pretrain`` split of ``chips_dir``.
        collate: batch builder; default ``skysense.data.dataset.collate_samples``.
        on_step: called on every rank after each optimizer step with ``(step, metrics)``.
        export: write the export (safetensors + config.json) at the end.
        export_dir: where the export goes (default ``out_dir/export``).
        track: log to MLflow from rank 0.
        show_progress: rank 0 shows a progress bar.

    Raises:
        TrainingError: non-finite loss or weights, out of memory, a failed rank, or a checkpoint
            folder that already holds a run and no ``resume``.
    """
    runtime = resolve_runtime(job.train)
    rank, world_size = init_distributed(runtime)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tcfg = job.train
    if not resume and checkpoints.read_latest(out_dir) is not None:
        raise TrainingError(
            f"{out_dir} already holds checkpoints (latest: {checkpoints.read_latest(out_dir)}); "
            "pass --resume to continue that run or choose another --out"
        )
    seed_everything(tcfg.seed)  # identical initial weights on every rank
    if pretrainer is None:
        pretrainer = pretrainer_from_config(job)
    if dataset is None:
        if chips_dir is None:
            raise TrainingError(
                "no chips folder given: pass --chips DIR (see `skysense data chip`)"
            )
        dataset = chip_dataset(job, Path(chips_dir), pretrainer)
    collate_fn: Callable[[list[Any]], Any] = collate if collate is not None else collate_samples
    engine, schedule, ds_config = build_engine(pretrainer, job, runtime, world_size)
    seed_everything(tcfg.seed * 1000 + rank + 1)  # per-rank augmentation streams
    stream = EpochShardStream(len(dataset), rank, world_size, tcfg.micro_batch, tcfg.seed)
    start_step = (
        resume_from(engine, out_dir, stream, rank, out_dir / "train_log.csv") if resume else 0
    )
    feeder = EpochShardStream(len(dataset), rank, world_size, tcfg.micro_batch, tcfg.seed)
    feeder.load_state_dict(stream.state_dict())  # reads ahead with workers; `stream` = used
    batches = batch_iterator(feeder, dataset, collate_fn, tcfg.num_workers, seed=tcfg.seed + rank)
    tracker = None
    if rank == 0 and track:
        tracker = RunTracker(job, out_dir, chips_dir=chips_dir, resume=resume)
        tracker.start(ds_config, runtime)
    curves = None
    if rank == 0 and tcfg.dvclive:
        curves = LiveCurves(curves_dir(out_dir), start_step, ())
    device = engine.device
    float_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(
        runtime.precision, torch.float32
    )
    result = TrainResult(
        steps=start_step, run_id=tracker.run_id if tracker else None, engine=engine
    )
    log_rows: list[dict[str, float]] = []
    last_saved = start_step if start_step > 0 else None
    progress = TrainProgress(tcfg.steps, start_step, enabled=rank == 0 and show_progress)
    step = start_step
    try:
        with progress:
            while step < tcfg.steps:
                t0 = time.perf_counter()
                lr_used = schedule.current_lr()
                components: dict[str, float] = {}
                for _ in range(tcfg.grad_accum):
                    batch = next(batches)
                    stream.consumed += tcfg.micro_batch
                    out = engine(to_device(batch, device, float_dtype))
                    reduced = reduce_components(out, world_size)
                    if not all(np.isfinite(v) for v in reduced.values()):
                        raise TrainingError(
                            f"non-finite loss at step {step + 1} ({reduced}); stopped before "
                            "applying it. Last good checkpoint: "
                            f"{out_dir / (checkpoints.read_latest(out_dir) or 'none')}. "
                            "Lower train.lr, raise train.warmup_steps or check the chips' "
                            "stats.json"
                        )
                    engine.backward(out["loss"])
                    engine.step()
                    for k, v in reduced.items():
                        components[k] = components.get(k, 0.0) + v / tcfg.grad_accum
                step += 1
                momentum = ema_momentum_at(
                    step,
                    start=tcfg.ema_momentum[0],
                    end=tcfg.ema_momentum[1],
                    total_steps=tcfg.steps,
                )
                update_teacher(engine.module, momentum, tcfg.zero_stage)
                dt = time.perf_counter() - t0
                grad_norm = engine.get_global_grad_norm()
                metrics = {
                    **components,
                    "lr": lr_used,
                    "grad_norm": float(grad_norm) if grad_norm is not None else float("nan"),
                    "ema_momentum": momentum,
                    "samples_per_s": tcfg.micro_batch * tcfg.grad_accum * world_size / dt,
                    "step_time_s": dt,
                    "peak_memory_bytes": float(peak_memory_bytes(runtime.device)),
                    "epoch": float(stream.epoch),
                }
                result.losses.append(components["loss"])
                log_rows.append({"step": step, **metrics})
                if tracker is not None:
                    tracker.log_step(step, metrics)
                if curves is not None:
                    curves.loss_keys = tuple(components)  # every loss term of this objective
                    curves.log_step(step, metrics)
                progress.update(step, components["loss"], metrics["samples_per_s"])
                if on_step is not None:
                    on_step(step, metrics)
                if step % tcfg.checkpoint_every == 0 or step == tcfg.steps:
                    if rank == 0:  # before the checkpoint: a resume drops rows past `latest`
                        append_log(out_dir / "train_log.csv", log_rows)
                    log_rows = []
                    result.checkpoint = _save(
                        engine, out_dir, step, stream, world_size, tcfg.keep_checkpoints
                    )
                    last_saved = step
    except TrainingError:
        if tracker is not None:
            tracker.finish("FAILED")
        raise
    except torch.OutOfMemoryError as exc:
        if tracker is not None:
            tracker.finish("FAILED")
        raise TrainingError(
            f"out of memory at step {step + 1} on rank {rank}: lower train.micro_batch, raise "
            "train.zero_stage, or set train.offload_optimizer=true / "
            "activation_checkpointing=true; "
            f"last good checkpoint: {checkpoints.read_latest(out_dir)}"
        ) from exc
    except (RuntimeError, ConnectionError) as exc:
        if tracker is not None:
            tracker.finish("FAILED")
        raise TrainingError(
            f"training failed at step {step + 1} on rank {rank} ({type(exc).__name__}: {exc}); if "
            "another rank died, see its log; a collective timeout under ZeRO-3 means the ranks ran "
            "different modules (a modality branch skipped on one rank). Last good checkpoint: "
            f"{checkpoints.read_latest(out_dir)}"
        ) from exc
    result.steps = step
    if last_saved != step:
        if rank == 0:
            append_log(out_dir / "train_log.csv", log_rows)
        result.checkpoint = _save(engine, out_dir, step, stream, world_size, tcfg.keep_checkpoints)
    if result.checkpoint is None:
        tag = checkpoints.read_latest(out_dir)
        result.checkpoint = out_dir / tag if tag else None
    if export and rank == 0 and result.checkpoint is not None:
        result.export_dir = export_checkpoint(
            result.checkpoint,
            Path(export_dir) if export_dir is not None else out_dir / "export",
            pretrainer=engine.module,
            preset=job.model.preset,
            overrides=job.model.overrides,
            chips_dir=chips_dir,
            step=step,
            run_id=tracker.run_id if tracker is not None else None,
            encoder=tcfg.export_encoder,
        )
        if tracker is not None:
            tracker.log_export(result.export_dir)
    if tracker is not None:
        tracker.finish("FINISHED")
    if curves is not None:
        curves.close()
    import deepspeed.comm as dist

    dist.barrier()
    return result


def _save(
    engine: Any, out_dir: Path, step: int, stream: EpochShardStream, world_size: int, keep: int
) -> Path:
    if not state_is_finite(engine, world_size):
        raise TrainingError(
            f"weights became non-finite by step {step}; not saving over the last good checkpoint "
            f"({checkpoints.read_latest(out_dir)}). Lower train.lr or train.grad_clip"
        )
    return checkpoints.save_checkpoint(engine, out_dir, step, {"stream": stream.state_dict()}, keep)


def append_log(path: Path, rows: list[dict[str, float]]) -> None:
    """Append per-step metrics to ``train_log.csv`` (the DVC plot) at each checkpoint, just
    before it is saved.

    Rows after the last checkpoint of a killed run are dropped on resume (:func:`trim_log`);
    the resumed run redoes those steps and writes them again. The columns are the file's header
    once it exists (a step without some stream, e.g. no HR in its batch, leaves that cell
    empty; a column first seen later is not added), else every key of ``rows`` in order of
    first appearance: a value never lands under another column's name.
    """
    if not rows:
        return
    new = not path.exists() or path.stat().st_size == 0
    if new:
        fields = list(dict.fromkeys(k for row in rows for k in row))
    else:
        with open(path, newline="") as fh:
            fields = next(csv.reader(fh))
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerows(rows)


def resume_from(engine: Any, out_dir: Path, stream: EpochShardStream, rank: int, log: Path) -> int:
    """Resume a run from ``out_dir/latest``: drop a half-written checkpoint (rank 0), load the
    engine and the sample stream's position, and cut ``log`` back to that step (rank 0).

    Returns:
        The step the run resumes after (0 when there is no checkpoint yet).
    """
    if rank == 0:
        checkpoints.remove_partial(out_dir)
    state = checkpoints.load_checkpoint(engine, out_dir)
    step = 0
    if state is not None:
        stream.load_state_dict(state["stream"])
        step = int(state["step"])
    if rank == 0:
        trim_log(log, step)
    return step


def trim_log(path: Path, last_step: int) -> None:
    """Drop the rows of ``train_log.csv`` after ``last_step`` (the checkpoint a run resumes
    from), so that every step appears once; rewritten atomically.
    """
    if not path.is_file():
        return
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    kept = [row for row in body if row and float(row[0]) <= last_step]
    if len(kept) == len(body):
        return
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        csv.writer(fh).writerows([header, *kept])
    os.replace(tmp, path)
