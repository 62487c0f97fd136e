"""Downstream metrics: accuracy, macro-F1, confusion, mean average precision, mIoU (0..1)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, ignore: int | None = None
) -> np.ndarray:
    """``n x n`` counts, rows = true class, columns = predicted class."""
    t = np.asarray(y_true).reshape(-1)
    p = np.asarray(y_pred).reshape(-1)
    if ignore is not None:
        keep = t != ignore
        t, p = t[keep], p[keep]
    keep = (t >= 0) & (t < n_classes) & (p >= 0) & (p < n_classes)
    return (
        np.bincount(t[keep] * n_classes + p[keep], minlength=n_classes**2)
        .reshape(n_classes, n_classes)
        .astype(np.int64)
    )


def accuracy(cm: np.ndarray) -> float:
    """Share of correct predictions."""
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def per_class_f1(cm: np.ndarray) -> np.ndarray:
    """F1 per class (NaN for a class never present nor predicted)."""
    tp = np.diag(cm).astype(float)
    denom = cm.sum(axis=0) + cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / denom, np.nan)


def macro_f1(cm: np.ndarray) -> float:
    """Mean F1 over the classes present in the true labels."""
    present = cm.sum(axis=1) > 0
    f1 = np.nan_to_num(per_class_f1(cm))
    return float(f1[present].mean()) if present.any() else float("nan")


def per_class_iou(cm: np.ndarray) -> np.ndarray:
    """IoU per class (NaN for a class absent from truth and prediction)."""
    tp = np.diag(cm).astype(float)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(cm: np.ndarray) -> float:
    """Mean IoU over the classes present in the truth."""
    present = cm.sum(axis=1) > 0
    iou = np.nan_to_num(per_class_iou(cm))
    return float(iou[present].mean()) if present.any() else float("nan")


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of one binary label (area under the step precision-recall curve)."""
    y = np.asarray(y_true, dtype=bool)
    if not y.any():
        return float("nan")
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    hits = y[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def mean_average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Macro mAP over the labels that have at least one positive (multi-label)."""
    aps = [average_precision(y_true[:, j], scores[:, j]) for j in range(y_true.shape[1])]
    aps = [a for a in aps if np.isfinite(a)]
    return float(np.mean(aps)) if aps else float("nan")
