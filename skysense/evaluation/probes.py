"""Probes on frozen features: linear (softmax or sigmoid) and k-NN, with standardisation and
cross-validation folds: leave-location-out (held-out places never seen by the probe) or k-fold by
sample with a fixed seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Standardiser:
    """Feature standardisation fitted on the training split only."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardiser:
        """Per-feature mean and std of ``x`` (N x D)."""
        return cls(x.mean(axis=0), np.maximum(x.std(axis=0), 1e-6))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``x`` standardised with the fitted mean and standard deviation, float32."""
        return ((x - self.mean) / self.std).astype(np.float32)


def kfold_indices(labels: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` (train, test) index splits by sample, stratified on ``labels`` (1-D class ids or
    any key), shuffled with ``seed``; ``k`` is capped by the number of samples.
    """
    n = len(labels)
    k = max(2, min(k, n))
    rng = np.random.default_rng(seed)
    fold_of = np.empty(n, dtype=int)
    offset = 0
    for value in np.unique(labels):
        idx = np.flatnonzero(labels == value)
        rng.shuffle(idx)
        fold_of[idx] = (np.arange(len(idx)) + offset) % k
        offset += len(idx)
    return [
        (np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f))
        for f in range(k)
        if (fold_of == f).any() and (fold_of != f).any()
    ]


def location_folds(groups: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Leave-one-location-out (train, test) index splits: each fold tests one location's samples
    with a probe fitted on the other locations only, so a probe cannot memorise a place's
    nuisance (illumination, haze, sowing dates). ``groups``: location id per sample.
    """
    groups = np.asarray(groups)
    return [(np.flatnonzero(groups != g), np.flatnonzero(groups == g)) for g in np.unique(groups)]


def cv_folds(
    labels: np.ndarray, groups: np.ndarray | None, k: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Leave-location-out folds when ``groups`` names at least two locations, else ``k``
    stratified folds by sample (:func:`kfold_indices`).
    """
    if groups is not None and len(np.unique(groups)) >= 2:
        return location_folds(groups)
    return kfold_indices(labels, k, seed)


def train_linear(
    x: np.ndarray,
    y: np.ndarray,
    n_out: int,
    *,
    multilabel: bool = False,
    epochs: int = 100,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
    seed: int = 0,
    ignore_index: int = 255,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit a linear layer (full batch, AdamW) on standardised features.

    Args:
        x: N x D features.
        y: N class ids (or N x K multi-hot when ``multilabel``).
        n_out: classes K.
        multilabel: binary cross-entropy per class instead of softmax.
        epochs: full-batch steps.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        seed: initialisation seed.
        ignore_index: label ignored in the loss (unlabelled pixels).

    Returns:
        ``(weight K x D, bias K)`` as float32 arrays.
    """
    threads = torch.get_num_threads()
    if x.size < 4_000_000:  # tiny problems: thread start-up costs more than it saves
        torch.set_num_threads(1)
    try:
        return _fit(x, y, n_out, multilabel, epochs, lr, weight_decay, seed, ignore_index)
    finally:
        torch.set_num_threads(threads)


def _fit(
    x: np.ndarray,
    y: np.ndarray,
    n_out: int,
    multilabel: bool,
    epochs: int,
    lr: float,
    weight_decay: float,
    seed: int,
    ignore_index: int,
) -> tuple[np.ndarray, np.ndarray]:
    g = torch.Generator().manual_seed(seed)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    layer = torch.nn.Linear(x.shape[1], n_out)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=g) * 0.01)
        layer.bias.zero_()
    opt = torch.optim.AdamW(layer.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn: torch.nn.Module
    if multilabel:
        yt = torch.from_numpy(np.asarray(y, dtype=np.float32))
        loss_fn = torch.nn.BCEWithLogitsLoss()
    else:
        yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
        loss_fn = torch.nn.CrossEntropyLoss(ignore_index=ignore_index)
    for _ in range(epochs):
        opt.zero_grad()
        loss = loss_fn(layer(xt), yt)
        loss.backward()
        opt.step()
    return layer.weight.detach().numpy().copy(), layer.bias.detach().numpy().copy()


def linear_scores(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Logits N x K."""
    return x @ weight.T + bias


def knn_predict(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, k: int, n_classes: int
) -> np.ndarray:
    """Cosine k-NN majority vote (ties to the nearest neighbour's class)."""
    a = train_x / np.maximum(np.linalg.norm(train_x, axis=1, keepdims=True), 1e-8)
    b = test_x / np.maximum(np.linalg.norm(test_x, axis=1, keepdims=True), 1e-8)
    sim = b @ a.T
    k = max(1, min(k, len(train_x)))
    nn_idx = np.argsort(-sim, axis=1)[:, :k]
    votes = np.zeros((len(test_x), n_classes))
    for j in range(k):
        # weight 1 plus a tiny tie-breaker favouring nearer neighbours
        np.add.at(votes, (np.arange(len(test_x)), train_y[nn_idx[:, j]]), 1.0 + 1e-3 * (k - j))
    return votes.argmax(axis=1)


def train_linear_many(
    xs: list[np.ndarray],
    ys: list[np.ndarray],
    n_out: int,
    *,
    epochs: int = 100,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
    seed: int = 0,
    ignore_index: int = 255,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fit one softmax linear layer per ``(x, y)`` problem at once, as :func:`train_linear`
    fits each alone (same initial weights, full batch, AdamW): the loss is the sum of the
    problems' mean cross-entropies and Adam is elementwise, so every layer follows its own
    problem's steps. One batched step for all the label-scarce probes' draws and folds instead
    of one Python loop per fit.

    Returns:
        ``[(weight K x D, bias K)]``, one per problem.
    """
    g, d = len(xs), xs[0].shape[1]
    n_max = max(len(x) for x in xs)
    x = np.zeros((g, n_max, d), dtype=np.float32)
    y = np.full((g, n_max), ignore_index, dtype=np.int64)
    for i, (xi, yi) in enumerate(zip(xs, ys, strict=True)):
        x[i, : len(xi)], y[i, : len(yi)] = xi, yi
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    valid = yt != ignore_index
    count = valid.sum(dim=1).clamp(min=1).float()
    target = torch.where(valid, yt, torch.zeros_like(yt))
    init = torch.randn((n_out, d), generator=torch.Generator().manual_seed(seed)) * 0.01
    weight = torch.nn.Parameter(init.T.unsqueeze(0).repeat(g, 1, 1).contiguous())  # G x D x K
    bias = torch.nn.Parameter(torch.zeros(g, 1, n_out))
    opt = torch.optim.AdamW([weight, bias], lr=lr, weight_decay=weight_decay)
    threads = torch.get_num_threads()
    if x.size < 4_000_000:
        torch.set_num_threads(1)
    try:
        for _ in range(epochs):
            opt.zero_grad()
            logits = torch.baddbmm(bias, xt, weight)  # G x N x K
            ce = torch.nn.functional.cross_entropy(
                logits.reshape(-1, n_out), target.reshape(-1), reduction="none"
            ).reshape(g, n_max)
            loss = ((ce * valid).sum(dim=1) / count).sum()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    w = weight.detach().transpose(1, 2).numpy()
    b = bias.detach()[:, 0].numpy()
    return [(w[i].copy(), b[i].copy()) for i in range(g)]
