"""``skysense finetune``: fine-tune, compare and report.

Three models are scored on the same held-out places:

1. the task model fine-tuned from the given encoder (exported: the production artefact);
2. the same fine-tuning from a seeded random-init encoder of the same preset
   (``finetune.random_baseline``): the gain of pre-training under fine-tuning;
3. the linear probe on the frozen given encoder (``finetune.frozen_probe``): what fine-tuning
   adds over the probe ``skysense evaluate`` reports.

``metrics.json`` holds flat floats in 0..1: the fine-tuned model's metrics (segmentation:
``miou``, ``pixel_acc``, ``iou.<class>``; classification: ``acc``, ``macro_f1``; multi-label:
``map``), each with ``<key>_frozen``, ``<key>_random``, ``<key>_gain_frozen`` (fine-tuned minus
probe) and ``<key>_gain_random`` (fine-tuned minus random-init fine-tuning). ``summary.json``
holds steps, seconds per step and the held-out places; PNGs and per-class tables beside them.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skysense.core.atomic_files import write_text_atomic
from skysense.evaluation.report import confusion_png, per_class_tables
from skysense.finetuning.job import FinetuneJob
from skysense.finetuning.labels import targets
from skysense.finetuning.launch import finetune_into_folder
from skysense.finetuning.loop import LOG, load_split
from skysense.finetuning.report import prediction_png
from skysense.finetuning.scoring import Score, frozen_probe, score_model
from skysense.models.export_format import load_exported
from skysense.models.task_model import load_task_model
from skysense.training.run_folder import Mode

HEADLINE = {"segmentation": "miou", "classification": "acc", "multilabel": "map"}


@dataclass
class FinetuneReport:
    """What ``skysense finetune`` produced.

    Attributes:
        metrics: the flat ``metrics.json``; files: report files; export_dir: the task model;
        summary: ``summary.json``; logs: ``train_log.csv`` of each fine-tuning (``pretrained``,
        ``random``).
    """

    metrics: dict[str, float]
    files: list[Path]
    export_dir: Path
    summary: dict[str, Any]
    logs: dict[str, Path] = field(default_factory=dict)


def _seconds_per_step(log: Path) -> float | None:
    if not log.is_file():
        return None
    with open(log, newline="") as fh:
        times = [float(r["step_time_s"]) for r in csv.DictReader(fh)]
    return float(np.median(times)) if times else None


def _class_iou(score: Score) -> np.ndarray:
    """The per-class IoU of a segmentation ``score`` (always set for segmentation)."""
    if score.per_class_iou is None:
        raise RuntimeError("segmentation scoring returned no per-class IoU")
    return score.per_class_iou


def combine(
    tuned: Score, frozen: Score | None, random: Score | None, class_names: list[str]
) -> dict[str, float]:
    """The flat metrics of :mod:`this module's docstring <skysense.finetuning.runner>`."""
    metrics: dict[str, float] = {}
    for key, value in tuned.metrics.items():
        metrics[key] = float(value)
        for suffix, other in (("frozen", frozen), ("random", random)):
            if other is not None and key in other.metrics:
                metrics[f"{key}_{suffix}"] = float(other.metrics[key])
                metrics[f"{key}_gain_{suffix}"] = float(value) - float(other.metrics[key])
    if tuned.per_class_iou is not None:
        for name, iou in zip(class_names, tuned.per_class_iou):
            if np.isfinite(iou):  # a class absent from truth and prediction has no IoU
                metrics[f"iou.{name}"] = float(iou)
    return metrics


def run_finetune(
    job: FinetuneJob,
    out_dir: Path,
    *,
    export_dir: Path | None = None,
    nproc: int = 1,
    mode: Mode = "auto",
    lock_wait_s: float = 0.0,
) -> FinetuneReport:
    """Fine-tune ``job`` (and its random-init twin), score both and the frozen probe on the
    held-out places, and write the report to ``out_dir``.

    Args:
        job: the fine-tuning job (``init`` is taken as given for the exported model).
        out_dir: report folder; checkpoints go to ``out_dir/checkpoints/{pretrained,random}``.
        export_dir: the task model export (default ``out_dir/export``).
        nproc: local processes per fine-tuning.
        mode: ``auto`` resumes a matching checkpoints folder, ``resume`` insists, ``fresh``
            sets it aside.
        lock_wait_s: how long to wait for another run holding a checkpoints folder.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    export_dir = Path(export_dir) if export_dir is not None else out_dir / "export"
    ck = out_dir / "checkpoints"
    f = job.finetune
    t0 = time.perf_counter()
    plan = finetune_into_folder(
        job,
        ck / "pretrained",
        nproc=nproc,
        export_dir=export_dir,
        mode=mode,
        lock_wait_s=lock_wait_s,
    )
    seconds = {"pretrained": time.perf_counter() - t0}
    logs = {"pretrained": ck / "pretrained" / LOG}
    random_export = None
    if f.random_baseline and job.init == "pretrained":
        t1 = time.perf_counter()
        random_export = ck / "random" / "export"
        finetune_into_folder(
            job.model_copy(update={"init": "random"}),
            ck / "random",
            nproc=nproc,
            export_dir=random_export,
            mode=mode,
            lock_wait_s=lock_wait_s,
        )
        seconds["random"] = time.perf_counter() - t1
        logs["random"] = ck / "random" / LOG

    model, config = load_task_model(export_dir)
    stats = config["encoder"].get("stats")
    mods = list(config["modalities"])
    split = load_split(job, model.encoder.spec.n_regions)
    names = [c.name for c in split.classes]
    colours = [list(c.colour) for c in split.classes]
    n = len(names)
    tuned = score_model(model, split.heldout, stats, mods, n)
    random = None
    if random_export is not None:
        random = score_model(load_task_model(random_export)[0], split.heldout, stats, mods, n)
    frozen = None
    if f.frozen_probe and job.init == "pretrained":
        encoder, _ = load_exported(job.encoder_export)
        frozen = frozen_probe(
            encoder, split.train, split.heldout, stats, mods, split.task, n,
            epochs=f.probe_epochs, lr=f.probe_lr, seed=f.seed,
        )  # fmt: skip
    metrics = combine(tuned, frozen, random, names)
    files = [out_dir / "metrics.json"]
    write_text_atomic(files[0], json.dumps(metrics, indent=2, sort_keys=True))
    head = HEADLINE[split.task]
    if tuned.confusion is not None:
        files.append(
            confusion_png(
                tuned.confusion, names, out_dir / "confusion.png",
                f"fine-tuned {split.task}, held-out places "
                f"{', '.join(split.heldout_locations) or '(every 5th sample)'}",
            )
        )  # fmt: skip
    if split.task == "segmentation":
        if tuned.confusion is None:
            raise RuntimeError("segmentation scoring returned no confusion matrix")
        confusion = tuned.confusion
        truth = targets(split.heldout, "segmentation").numpy()
        files.append(
            prediction_png(
                truth, tuned.predictions, [str(s["id"]) for s in split.heldout], names, colours,
                out_dir / "prediction.png",
                f"held-out chips: true vs fine-tuned (mIoU {metrics['miou']:.3f})",
            )
        )  # fmt: skip
        rows = [
            {
                "class": name,
                "support_px": int(confusion[i].sum()),
                "iou": float(np.nan_to_num(_class_iou(tuned)[i])),
                **(
                    {"iou_random": float(np.nan_to_num(_class_iou(random)[i]))}
                    if random is not None
                    else {}
                ),
                **(
                    {"iou_frozen": float(np.nan_to_num(_class_iou(frozen)[i]))}
                    if frozen is not None
                    else {}
                ),
            }
            for i, name in enumerate(names)
        ]
        files.extend(per_class_tables(rows, out_dir, "per_class"))
    summary = {
        "task": split.task,
        "headline": head,
        "steps": f.steps,
        "nproc": nproc,
        "seconds": seconds,
        "seconds_per_step": {k: _seconds_per_step(v) for k, v in logs.items()},
        "heldout_locations": split.heldout_locations,
        "n_train": len(split.train),
        "n_heldout": len(split.heldout),
        "classes": names,
        "resumed_from": plan.latest if plan.resume else None,
        "export": str(export_dir),
    }
    write_text_atomic(out_dir / "summary.json", json.dumps(summary, indent=2))
    files.append(out_dir / "summary.json")
    return FinetuneReport(metrics, files, export_dir, summary, logs)
