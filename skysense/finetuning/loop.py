"""The fine-tuning loop of one rank: a task model trained through the pre-training DeepSpeed engine.

It reuses :mod:`skysense.training` piece by piece: runtime resolution and process group
(``resolve_runtime``, ``init_distributed``), the engine with AdamW, warm-up + cosine lr and
layer-wise lr decay (``build_engine``: the encoder's blocks get ``layer_decay ** depth``, the head
1.0), the sharded resumable sample order (``EpochShardStream``), atomic checkpoints with every
rank's RNG state (``save_checkpoint``/``load_checkpoint``: a resumed run equals an uninterrupted
one) and the ZeRO 1-3 consolidation of the export (``consolidated_state_dict``). Rank 0 writes
``train_log.csv`` (per-step loss, accuracy, lr) and the task model export (safetensors).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skysense.core.errors import TrainingError
from skysense.core.lineage import file_sha256, git_commit, labels_version
from skysense.finetuning.job import FinetuneJob
from skysense.finetuning.labels import (
    LabelledSplit,
    class_list,
    class_weights,
    collate_labelled,
    load_label_set,
    split_by_place,
)
from skysense.finetuning.objective import FineTuner
from skysense.models import create_model
from skysense.models.export_format import WEIGHTS, load_exported
from skysense.models.task_model import TaskModel, build_task_model, write_task_export
from skysense.training import checkpoints
from skysense.training.engine import build_engine, init_distributed, resolve_runtime
from skysense.training.export import consolidated_state_dict
from skysense.training.job import TrainingJob
from skysense.training.loop import (
    append_log,
    reduce_components,
    resume_from,
    seed_everything,
    state_is_finite,
    to_device,
)
from skysense.training.sampling import EpochShardStream, batch_iterator
from skysense.training.settings import TrainConfig

LOG = "train_log.csv"
MODULE_PREFIX = "model."


@dataclass
class FinetuneResult:
    """What a finished fine-tuning rank left: steps, this run's losses, checkpoint, export."""

    steps: int
    losses: list[float] = field(default_factory=list)
    checkpoint: Path | None = None
    export_dir: Path | None = None


def engine_settings(job: FinetuneJob) -> TrainConfig:
    """The pre-training engine settings that carry the fine-tuning ones."""
    f = job.finetune
    return TrainConfig(
        zero_stage=f.zero_stage,
        precision=f.precision,
        device=f.device,
        backend=f.backend,
        nproc=f.nproc,
        micro_batch=f.micro_batch,
        grad_accum=f.grad_accum,
        steps=f.steps,
        lr=f.lr,
        min_lr=f.min_lr,
        warmup_steps=f.warmup_steps,
        weight_decay=f.weight_decay,
        grad_clip=f.grad_clip,
        layer_decay=None if f.freeze_backbone else f.layer_decay,
        torch_adam=f.torch_adam,
        checkpoint_every=f.checkpoint_every,
        keep_checkpoints=f.keep_checkpoints,
        seed=f.seed,
        activation_checkpointing=False,
    )


def load_split(job: FinetuneJob, n_regions: int) -> LabelledSplit:
    """The job's label set, split into fine-tuning and held-out places."""
    samples = load_label_set(
        job.label_set,
        job.labels_root,
        n_regions,
        catalog=job.catalog,
        classes=job.finetune.classes,
    )
    source = f"{job.labels_root} ({job.label_set})"
    classes = class_list(samples.class_names, job.finetune.classes, source)
    return split_by_place(samples, job.finetune.heldout_locations, classes, source)


def build_model(job: FinetuneJob, task: str, n_classes: int) -> tuple[TaskModel, dict[str, Any]]:
    """The task model to fine-tune (pre-trained or seeded random encoder, seeded head) and the
    encoder's export config (preset, overrides, spec, normalisation stats).
    """
    encoder, enc_config = load_exported(job.encoder_export)
    if job.init == "random":
        seed_everything(job.finetune.seed + 7919)
        encoder = create_model(enc_config["preset"], **(enc_config.get("overrides") or {}))
    encoder.train()
    encoder.run_all_branches = job.finetune.zero_stage == 3
    seed_everything(job.finetune.seed)  # the same head for pre-trained and random encoders
    f = job.finetune
    model = build_task_model(
        encoder, task, n_classes, job.modalities, channels=f.head_channels, dropout=f.head_dropout
    )
    return model, enc_config


def export_config(
    job: FinetuneJob, split: LabelledSplit, enc_config: dict[str, Any], step: int
) -> dict[str, Any]:
    """``config.json`` of the task model export (see :mod:`skysense.models.task_model`)."""
    encoder = {k: enc_config.get(k) for k in ("preset", "overrides", "spec", "stats", "format")}
    lineage = {
        k: enc_config.get(k) for k in ("data_version", "git_commit", "step", "mlflow_run_id")
    }
    weights = Path(job.encoder_export) / WEIGHTS
    lineage["checkpoint_sha256"] = file_sha256(weights) if weights.is_file() else None
    return {
        "classes": [c.name for c in split.classes],
        "colours": [list(c.colour) for c in split.classes],
        "modalities": list(job.modalities),
        "encoder": encoder,
        "encoder_lineage": lineage,
        "encoder_source": job.extra.get("encoder_source", str(job.encoder_export)),
        "init": job.init,
        "label_set": job.label_set,
        "label_version": job.label_version or label_version(job.labels_root, job.label_set),
        "heldout_locations": split.heldout_locations,
        "finetune": job.finetune.model_dump(mode="json"),
        "git_commit": git_commit(),
        "step": step,
    }


def label_version(root: Path, label_set: str) -> str:
    """The labels' version (:func:`skysense.core.lineage.labels_version`) of the set's folder."""
    folder = Path(root) / label_set
    return labels_version(folder if folder.is_dir() else Path(root))


def finetune_rank(
    job: FinetuneJob,
    out_dir: Path,
    *,
    resume: bool = False,
    export_dir: Path | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    stop_after: int | None = None,
) -> FinetuneResult:
    """Fine-tune on this rank; every rank of the job calls it.

    Args:
        job: what to fine-tune.
        out_dir: checkpoints folder (``step-*``, ``latest``, ``train_log.csv``).
        resume: continue exactly from ``out_dir/latest``.
        export_dir: where rank 0 writes the task model (default ``out_dir/export``).
        on_step: called after each optimizer step with ``(step, metrics)``.
        stop_after: stop (after checkpointing) at this step without exporting: an interrupted
            run, for resume tests.

    Raises:
        TrainingError: non-finite loss or weights, a failed rank, or existing checkpoints
            without ``resume``.
    """
    tc = engine_settings(job)
    runtime = resolve_runtime(tc)
    rank, world_size = init_distributed(runtime)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not resume and checkpoints.read_latest(out_dir) is not None:
        raise TrainingError(
            f"{out_dir} already holds checkpoints (latest: {checkpoints.read_latest(out_dir)}); "
            "resume that run or choose another --out"
        )
    enc_probe, _ = load_exported(job.encoder_export)
    split = load_split(job, enc_probe.spec.n_regions)
    del enc_probe
    n_classes = len(split.classes)
    model, enc_config = build_model(job, split.task, n_classes)
    weights = class_weights(split.train, split.task, n_classes, job.finetune.class_weights)
    module = FineTuner(model, weights, job.finetune.flip, job.finetune.freeze_backbone)
    stats = enc_config.get("stats")
    mods = list(job.modalities)

    def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        return collate_labelled(items, stats, mods, split.task)

    engine, schedule, _ = build_engine(module, TrainingJob(train=tc), runtime, world_size)
    seed_everything(tc.seed * 1000 + rank + 1)  # per-rank flip streams
    stream = EpochShardStream(len(split.train), rank, world_size, tc.micro_batch, tc.seed)
    step = resume_from(engine, out_dir, stream, rank, out_dir / LOG) if resume else 0
    batches = batch_iterator(stream, split.train, collate, 0)
    float_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(
        runtime.precision, torch.float32
    )
    result = FinetuneResult(steps=step)
    rows: list[dict[str, float]] = []
    last_saved = step if step > 0 else None
    end = min(tc.steps, stop_after) if stop_after is not None else tc.steps
    try:
        while step < end:
            t0 = time.perf_counter()
            lr_used = schedule.current_lr()
            comps: dict[str, float] = {}
            for _ in range(tc.grad_accum):
                out = engine(to_device(next(batches), engine.device, float_dtype))
                reduced = reduce_components(out, world_size)
                if not all(np.isfinite(v) for v in reduced.values()):
                    raise TrainingError(
                        f"non-finite fine-tuning loss at step {step + 1} ({reduced}); stopped "
                        "before applying it. Lower finetune.lr or raise finetune.warmup_steps"
                    )
                engine.backward(out["loss"])
                engine.step()
                for k, v in reduced.items():
                    comps[k] = comps.get(k, 0.0) + v / tc.grad_accum
            step += 1
            dt = time.perf_counter() - t0
            metrics = {**comps, "lr": lr_used, "step_time_s": dt}
            result.losses.append(comps["loss"])
            rows.append({"step": step, **metrics})
            if on_step is not None:
                on_step(step, metrics)
            if step % tc.checkpoint_every == 0 or step == end:
                if rank == 0:
                    append_log(out_dir / LOG, rows)
                rows = []
                result.checkpoint = _save(engine, out_dir, step, stream, world_size, tc)
                last_saved = step
    except (RuntimeError, ConnectionError) as exc:
        raise TrainingError(
            f"fine-tuning failed at step {step + 1} on rank {rank} ({type(exc).__name__}: {exc}); "
            f"last good checkpoint: {checkpoints.read_latest(out_dir)}"
        ) from exc
    result.steps = step
    if last_saved != step:
        result.checkpoint = _save(engine, out_dir, step, stream, world_size, tc)
    if result.checkpoint is None:
        tag = checkpoints.read_latest(out_dir)
        result.checkpoint = out_dir / tag if tag else None
    import deepspeed.comm as dist

    if stop_after is None and rank == 0 and result.checkpoint is not None:
        state = consolidated_state_dict(result.checkpoint)
        weights_ = {
            k[len(MODULE_PREFIX) :]: v for k, v in state.items() if k.startswith(MODULE_PREFIX)
        }
        result.export_dir = write_task_export(
            model,
            export_config(job, split, enc_config, step),
            Path(export_dir) if export_dir is not None else out_dir / "export",
            state=weights_,
        )
    dist.barrier()
    return result


def _save(
    engine: Any,
    out_dir: Path,
    step: int,
    stream: EpochShardStream,
    world_size: int,
    tc: TrainConfig,
) -> Path:
    if not state_is_finite(engine, world_size):
        raise TrainingError(
            f"weights became non-finite by step {step}; not saving over the last good checkpoint "
            f"({checkpoints.read_latest(out_dir)}). Lower finetune.lr or finetune.grad_clip"
        )
    return checkpoints.save_checkpoint(
        engine, out_dir, step, {"stream": stream.state_dict()}, tc.keep_checkpoints
    )
