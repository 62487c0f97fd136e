"""Label-scarce probes: ``k`` labelled samples per class, on held-out places, over several draws.

Pre-trained features are worth most where labels are few (SSL4EO, SatMAE and SkySense report
label fractions of 1-10 %). For each ``k`` and each draw, every cross-validation fold (leave one
held-out place out, as :mod:`skysense.evaluation.tasks`) keeps at most ``k`` labelled samples per
class among its training places, fits the probe on them alone and predicts the tested place; the
draw's score is computed over the out-of-fold predictions of all folds. Draws are seeded by
``(eval.seed, k, draw)`` and the labelled subset depends only on the labels and places, so the
pre-trained encoder and its random-init twin are probed with the same samples: their gain is
paired draw by draw, and its spread is the spread of those paired differences.

Features are standardised with the statistics of every training-fold sample (their features, no
labels), as a user with few labels and many unlabelled chips would. Segmentation keeps ``k``
labelled chips per dominant class (all their pixels labelled).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from skysense.evaluation.metrics import accuracy, confusion_matrix, macro_f1, mean_iou
from skysense.evaluation.probes import (
    Standardiser,
    cv_folds,
    knn_predict,
    linear_scores,
    train_linear_many,
)
from skysense.evaluation.settings import EvalConfig

IGNORE = 255


def k_per_class(
    labels: np.ndarray, pool: np.ndarray, k: int, rng: np.random.Generator
) -> np.ndarray:
    """At most ``k`` indices of each class among ``pool`` (indices into ``labels``), drawn
    without replacement; a class with fewer than ``k`` samples in the pool keeps them all.
    """
    chosen = []
    for c in np.unique(labels[pool]):
        idx = pool[labels[pool] == c]
        chosen.append(rng.choice(idx, size=min(k, idx.size), replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else pool[:0]


def draw_subsets(
    labels: np.ndarray, groups: np.ndarray | None, k: int, draws: int, cfg: EvalConfig
) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """The labelled training subset of every fold for each draw: ``[draw][fold] -> (train_k,
    test)``; the same for every encoder probed with these labels and places.
    """
    folds = cv_folds(labels, groups, cfg.folds, cfg.seed)
    out = []
    for d in range(draws):
        rng = np.random.default_rng([cfg.seed, k, d])
        out.append([(k_per_class(labels, train, k, rng), test) for train, test in folds])
    return out


def classification_draws(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    cfg: EvalConfig,
    subsets: list[list[tuple[np.ndarray, np.ndarray]]],
    groups: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Linear probe and k-NN fitted on each draw's labelled subsets (every draw and fold's
    linear probe fitted in one batch, :func:`train_linear_many`).

    Returns:
        ``{"linear_acc", "macro_f1", "knn_acc"}``: one score per draw (0..1).
    """
    folds = cv_folds(labels, groups, cfg.folds, cfg.seed)
    stds = [Standardiser.fit(features[train_all]) for train_all, _ in folds]
    jobs = [(d, f) for d in range(len(subsets)) for f in range(len(folds))]
    heads = train_linear_many(
        [stds[f](features[subsets[d][f][0]]) for d, f in jobs],
        [labels[subsets[d][f][0]] for d, f in jobs],
        n_classes,
        epochs=cfg.linear_epochs,
        lr=cfg.linear_lr,
        seed=cfg.seed,
    )
    lin = np.full((len(subsets), len(labels)), -1, dtype=np.int64)
    knn = np.full((len(subsets), len(labels)), -1, dtype=np.int64)
    for (d, f), (w, b) in zip(jobs, heads, strict=True):
        train, test = subsets[d][f]
        xtr, xte = stds[f](features[train]), stds[f](features[test])
        lin[d, test] = linear_scores(xte, w, b).argmax(axis=1)
        shots = int(np.bincount(labels[train]).max())
        knn[d, test] = knn_predict(xtr, labels[train], xte, min(cfg.knn_k, shots), n_classes)
    scores: dict[str, list[float]] = {"linear_acc": [], "macro_f1": [], "knn_acc": []}
    for d in range(len(subsets)):
        tested = lin[d] >= 0
        cm = confusion_matrix(labels[tested], lin[d, tested], n_classes)
        scores["linear_acc"].append(accuracy(cm))
        scores["macro_f1"].append(macro_f1(cm))
        scores["knn_acc"].append(
            accuracy(confusion_matrix(labels[tested], knn[d, tested], n_classes))
        )
    return {k: np.asarray(v) for k, v in scores.items()}


def segmentation_draws(
    pixels: np.ndarray,
    masks: np.ndarray,
    n_classes: int,
    cfg: EvalConfig,
    subsets: list[list[tuple[np.ndarray, np.ndarray]]],
    groups: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per-pixel linear head fitted on each draw's labelled chips (``subsets`` drawn on the
    chips' dominant classes, :func:`dominant_classes`; heads fitted in one batch).

    Returns:
        ``{"miou", "pixel_acc"}``: one score per draw (0..1).
    """
    n, d = pixels.shape[:2]
    x = pixels.transpose(0, 2, 3, 1).reshape(n, -1, d)
    y = masks.reshape(n, -1)
    folds = cv_folds(dominant_classes(masks, n_classes), groups, cfg.folds, cfg.seed)
    stds = [Standardiser.fit(x[train_all].reshape(-1, d)) for train_all, _ in folds]
    jobs = [(k, f) for k in range(len(subsets)) for f in range(len(folds))]
    heads = train_linear_many(
        [stds[f](x[subsets[k][f][0]].reshape(-1, d)) for k, f in jobs],
        [y[subsets[k][f][0]].reshape(-1) for k, f in jobs],
        n_classes,
        epochs=cfg.seg_epochs,
        lr=cfg.seg_lr,
        seed=cfg.seed,
        ignore_index=IGNORE,
    )
    pred = np.full((len(subsets), *y.shape), IGNORE, dtype=np.int64)
    for (k, f), (w, b) in zip(jobs, heads, strict=True):
        test = subsets[k][f][1]
        scores_ = linear_scores(stds[f](x[test].reshape(-1, d)), w, b)
        pred[k, test] = scores_.argmax(axis=1).reshape(len(test), -1)
    scores: dict[str, list[float]] = {"miou": [], "pixel_acc": []}
    for k in range(len(subsets)):
        tested = (pred[k] != IGNORE).any(axis=1)
        cm = confusion_matrix(y[tested], pred[k, tested], n_classes, ignore=IGNORE)
        scores["miou"].append(mean_iou(cm))
        scores["pixel_acc"].append(accuracy(cm))
    return {k: np.asarray(v) for k, v in scores.items()}


def dominant_classes(masks: np.ndarray, n_classes: int) -> np.ndarray:
    """The most frequent labelled class of each ``s x s`` mask (0 for an unlabelled chip)."""
    flat = masks.reshape(len(masks), -1)
    return np.array(
        [
            np.bincount(m[m != IGNORE], minlength=n_classes).argmax() if (m != IGNORE).any() else 0
            for m in flat
        ]
    )


def summarise(
    per_encoder: dict[str, dict[str, np.ndarray]], k: int | str, baseline: str = "random"
) -> dict[str, float]:
    """Flat ``metrics.json`` keys of one ``k``: ``k<k>_<metric>`` (mean over draws), ``_std``
    (spread over draws), ``_random``/``_random_std`` (the twin) and ``_gain``/``_gain_std``
    (paired difference, pre-trained minus twin).
    """
    out: dict[str, float] = {}
    mine = per_encoder["pretrained"]
    base = per_encoder.get(baseline)
    for metric, values in mine.items():
        name = f"k{k}_{metric}"
        out[name] = float(np.mean(values))
        out[f"{name}_std"] = float(np.std(values))
        if base is not None and metric in base:
            out[f"{name}_random"] = float(np.mean(base[metric]))
            out[f"{name}_random_std"] = float(np.std(base[metric]))
            gain = values - base[metric]
            out[f"{name}_gain"] = float(np.mean(gain))
            out[f"{name}_gain_std"] = float(np.std(gain))
    return out


def _per_k(
    inputs: dict[str, np.ndarray],
    target: np.ndarray,
    strata: np.ndarray,
    n_classes: int,
    cfg: EvalConfig,
    shots: Sequence[int],
    draws: int,
    groups: np.ndarray | None,
    probe,
) -> dict[int, dict[str, dict[str, np.ndarray]]]:
    """``probe`` on every encoder's inputs for each ``k``, with subsets drawn on ``strata``."""
    out: dict[int, dict[str, dict[str, np.ndarray]]] = {}
    for k in shots:
        subsets = draw_subsets(strata, groups, k, draws, cfg)
        out[k] = {
            name: probe(x, target, n_classes, cfg, subsets, groups) for name, x in inputs.items()
        }
    return out


def few_shot_table(
    features: dict[str, np.ndarray],
    labels: np.ndarray,
    n_classes: int,
    cfg: EvalConfig,
    shots: Sequence[int],
    draws: int,
    groups: np.ndarray | None = None,
) -> dict[int, dict[str, dict[str, np.ndarray]]]:
    """Classification scores per draw for every ``k`` and every encoder (``{name: N x D}``):
    ``{k: {encoder: {metric: draws}}}``; the same labelled subsets for every encoder.
    """
    return _per_k(
        features, labels, labels, n_classes, cfg, shots, draws, groups, classification_draws
    )


def few_shot_segmentation(
    pixels: dict[str, np.ndarray],
    masks: np.ndarray,
    n_classes: int,
    cfg: EvalConfig,
    shots: Sequence[int],
    draws: int,
    groups: np.ndarray | None = None,
) -> dict[int, dict[str, dict[str, np.ndarray]]]:
    """Segmentation scores per draw for every ``k`` (labelled chips per dominant class) and
    every encoder (``{name: N x D x s x s}``): ``{k: {encoder: {metric: draws}}}``.
    """
    dominant = dominant_classes(masks, n_classes)
    return _per_k(pixels, masks, dominant, n_classes, cfg, shots, draws, groups, segmentation_draws)
