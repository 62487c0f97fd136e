"""Downstream tasks on frozen features, cross-validated leave-location-out (``groups``: the
location of each sample) or, without groups, by sample with a fixed seed.

Each returns metrics (0..1) and out-of-fold details for the report. Folds are the same for the
pre-trained encoder and its random-init twin (same labels, groups and seed), so gains compare like
with like.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from skysense.evaluation.metrics import (
    accuracy,
    confusion_matrix,
    macro_f1,
    mean_average_precision,
    mean_iou,
    per_class_f1,
    per_class_iou,
)
from skysense.evaluation.probes import (
    Standardiser,
    cv_folds,
    knn_predict,
    linear_scores,
    train_linear,
)
from skysense.evaluation.settings import EvalConfig

IGNORE = 255


@dataclass
class TaskResult:
    """Metrics of one task and what the report draws from it."""

    metrics: dict[str, float]
    confusion: np.ndarray | None = None
    per_class: dict[str, np.ndarray] = field(default_factory=dict)


def classification(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    cfg: EvalConfig,
    groups: np.ndarray | None = None,
) -> TaskResult:
    """Linear probe and k-NN, out-of-fold: leave-one-location-out when ``groups`` (location per
    sample) holds two or more locations, else ``cfg.folds`` stratified folds by sample.

    Returns:
        ``linear_acc``, ``macro_f1`` (of the linear probe), ``knn_acc``; confusion of the linear
        probe summed over folds; per-class F1.
    """
    lin_pred = np.zeros(len(labels), dtype=np.int64)
    knn_pred = np.zeros(len(labels), dtype=np.int64)
    for train, test in cv_folds(labels, groups, cfg.folds, cfg.seed):
        std = Standardiser.fit(features[train])
        xtr, xte = std(features[train]), std(features[test])
        w, b = train_linear(
            xtr, labels[train], n_classes, epochs=cfg.linear_epochs, lr=cfg.linear_lr, seed=cfg.seed
        )
        lin_pred[test] = linear_scores(xte, w, b).argmax(axis=1)
        knn_pred[test] = knn_predict(xtr, labels[train], xte, cfg.knn_k, n_classes)
    cm = confusion_matrix(labels, lin_pred, n_classes)
    return TaskResult(
        metrics={
            "linear_acc": accuracy(cm),
            "macro_f1": macro_f1(cm),
            "knn_acc": accuracy(confusion_matrix(labels, knn_pred, n_classes)),
        },
        confusion=cm,
        per_class={"f1": per_class_f1(cm), "support": cm.sum(axis=1)},
    )


def multilabel(
    features: np.ndarray, labels: np.ndarray, cfg: EvalConfig, groups: np.ndarray | None = None
) -> TaskResult:
    """Linear (sigmoid) probe for multi-label scenes; out-of-fold macro mAP (folds as
    :func:`classification`).
    """
    scores = np.zeros(labels.shape, dtype=np.float32)
    key = np.argmax(labels, axis=1)  # stratify on the first label
    for train, test in cv_folds(key, groups, cfg.folds, cfg.seed):
        std = Standardiser.fit(features[train])
        w, b = train_linear(
            std(features[train]),
            labels[train],
            labels.shape[1],
            multilabel=True,
            epochs=cfg.linear_epochs,
            lr=cfg.linear_lr,
            seed=cfg.seed,
        )
        scores[test] = linear_scores(std(features[test]), w, b)
    return TaskResult(metrics={"map": mean_average_precision(labels, scores)})


def segmentation(
    pixels: np.ndarray,
    masks: np.ndarray,
    n_classes: int,
    cfg: EvalConfig,
    groups: np.ndarray | None = None,
) -> tuple[TaskResult, dict[str, np.ndarray]]:
    """Per-pixel linear head on frozen per-pixel features; out-of-fold mIoU (leave-location-out
    with ``groups``, else stratified folds by sample).

    Args:
        pixels: N x D x s x s features.
        masks: N x s x s class ids (255 unlabelled).
        n_classes: classes of the task.
        cfg: the ``eval`` settings (folds, epochs, learning rate, seed).
        groups: location of each sample, or None.

    Returns:
        The result and the head fitted on all samples (``weight``, ``bias``, ``mean``, ``std``)
        for ``skysense predict --head``.
    """
    n, d = pixels.shape[:2]
    x = pixels.transpose(0, 2, 3, 1).reshape(n, -1, d)
    y = masks.reshape(n, -1)
    pred = np.full(y.shape, IGNORE, dtype=np.int64)
    dominant = np.array(
        [
            np.bincount(m[m != IGNORE], minlength=n_classes).argmax() if (m != IGNORE).any() else 0
            for m in y
        ]
    )
    for train, test in cv_folds(dominant, groups, cfg.folds, cfg.seed):
        xtr = x[train].reshape(-1, d)
        std = Standardiser.fit(xtr)
        w, b = train_linear(
            std(xtr),
            y[train].reshape(-1),
            n_classes,
            epochs=cfg.seg_epochs,
            lr=cfg.seg_lr,
            seed=cfg.seed,
            ignore_index=IGNORE,
        )
        pred[test] = (
            linear_scores(std(x[test].reshape(-1, d)), w, b).argmax(axis=1).reshape(len(test), -1)
        )
    cm = confusion_matrix(y, pred, n_classes, ignore=IGNORE)
    std = Standardiser.fit(x.reshape(-1, d))
    w, b = train_linear(
        std(x.reshape(-1, d)),
        y.reshape(-1),
        n_classes,
        epochs=cfg.seg_epochs,
        lr=cfg.seg_lr,
        seed=cfg.seed,
        ignore_index=IGNORE,
    )
    head = {
        "weight": w,
        "bias": b,
        "mean": std.mean.astype(np.float32),
        "std": std.std.astype(np.float32),
    }
    return TaskResult(
        metrics={"miou": mean_iou(cm), "pixel_acc": accuracy(cm)},
        confusion=cm,
        per_class={"iou": per_class_iou(cm), "support": cm.sum(axis=1)},
    ), head
