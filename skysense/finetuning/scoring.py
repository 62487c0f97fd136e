"""Scoring on held-out places: a task model, and the frozen-encoder linear probe it is compared to.

Both are scored on the same held-out samples with the same metrics (:mod:`skysense.evaluation.
metrics`): ``miou`` and ``pixel_acc`` (segmentation, pixels labelled 255 ignored), ``acc`` and
``macro_f1`` (scene classification), ``map`` (multi-label). The frozen probe is the one of
``skysense evaluate`` (standardised features, a linear softmax head fitted with
:func:`skysense.evaluation.probes.train_linear`), fitted here on the fine-tuning places only, so
that the three numbers (fine-tuned, frozen probe, fine-tuned from random) answer one question.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from skysense.evaluation.features import embed_samples, samples_to_batch
from skysense.evaluation.metrics import (
    accuracy,
    confusion_matrix,
    macro_f1,
    mean_average_precision,
    mean_iou,
    per_class_iou,
)
from skysense.evaluation.probes import Standardiser, linear_scores, train_linear
from skysense.finetuning.labels import IGNORE, targets
from skysense.models.skysense import SkySense
from skysense.models.task_model import TaskModel


@dataclass
class Score:
    """Metrics (0..1) of one model on the held-out samples, and what the report draws.

    Attributes:
        metrics: flat metrics; per_class_iou: IoU per class (segmentation; NaN when a class is
            absent from truth and prediction); confusion: K x K counts; predictions: per sample
            (class map ``s x s`` or class id), in the samples' order.
    """

    metrics: dict[str, float]
    confusion: np.ndarray | None = None
    per_class_iou: np.ndarray | None = None
    predictions: list[np.ndarray] = field(default_factory=list)


def score_predictions(pred: np.ndarray, truth: np.ndarray, task: str, n_classes: int) -> Score:
    """Metrics of predictions (class ids; scores for multi-label) against the truth."""
    if task == "multilabel":
        return Score(metrics={"map": mean_average_precision(truth, pred)})
    cm = confusion_matrix(truth, pred, n_classes, ignore=IGNORE if task == "segmentation" else None)
    if task == "segmentation":
        return Score(
            metrics={"miou": mean_iou(cm), "pixel_acc": accuracy(cm)},
            confusion=cm,
            per_class_iou=per_class_iou(cm),
            predictions=list(pred),
        )
    return Score(
        metrics={"acc": accuracy(cm), "macro_f1": macro_f1(cm)},
        confusion=cm,
        predictions=list(pred),
    )


@torch.no_grad()
def predict_samples(
    model: TaskModel,
    samples: Sequence[dict[str, Any]],
    stats: dict[str, Any] | None,
    modalities: Sequence[str],
    batch_size: int = 8,
) -> np.ndarray:
    """The task model's predictions: class ids (``N x s x s`` or ``N``), or ``N x K``
    probabilities for multi-label.
    """
    model.eval()
    out = []
    for i in range(0, len(samples), batch_size):
        batch = samples_to_batch(samples[i : i + batch_size], stats, modalities, "cpu")
        proba = model.predict_proba(batch)
        out.append((proba if model.task == "multilabel" else proba.argmax(dim=1)).numpy())
    return np.concatenate(out)


def score_model(
    model: TaskModel,
    samples: Sequence[dict[str, Any]],
    stats: dict[str, Any] | None,
    modalities: Sequence[str],
    n_classes: int,
) -> Score:
    """Score a task model on ``samples``."""
    pred = predict_samples(model, samples, stats, modalities)
    truth = targets(samples, model.task).numpy()
    return score_predictions(pred, truth, model.task, n_classes)


def frozen_probe(
    encoder: SkySense,
    train: Sequence[dict[str, Any]],
    heldout: Sequence[dict[str, Any]],
    stats: dict[str, Any] | None,
    modalities: Sequence[str],
    task: str,
    n_classes: int,
    *,
    epochs: int = 60,
    lr: float = 1e-2,
    seed: int = 0,
) -> Score:
    """The frozen encoder's linear probe, fitted on ``train`` and scored on ``heldout``.

    Segmentation: a per-pixel head on the per-pixel embedding; scene tasks: on the mean-pooled
    embedding (as ``skysense evaluate``).
    """
    seg = task == "segmentation"
    feats = []
    for part in (train, heldout):
        pooled, pixels = embed_samples(encoder, part, stats, modalities, keep_pixels=seg)
        if seg:
            if pixels is None:
                raise RuntimeError("embed_samples(keep_pixels=True) returned no per-pixel maps")
            d = pixels.shape[1]
            feats.append(pixels.transpose(0, 2, 3, 1).reshape(-1, d))
        else:
            feats.append(pooled)
    y_train = targets(train, task).numpy()
    truth = targets(heldout, task).numpy()
    std = Standardiser.fit(feats[0])
    w, b = train_linear(
        std(feats[0]),
        y_train.reshape(-1) if seg else y_train,
        n_classes,
        multilabel=task == "multilabel",
        epochs=epochs,
        lr=lr,
        seed=seed,
        ignore_index=IGNORE,
    )
    scores = linear_scores(std(feats[1]), w, b)
    if task == "multilabel":
        pred = scores
    elif seg:
        pred = scores.argmax(axis=1).reshape(truth.shape)
    else:
        pred = scores.argmax(axis=1)
    return score_predictions(pred, truth, task, n_classes)
