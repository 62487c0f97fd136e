"""Metrics on hand-computed cases; probes on features with a known structure."""

from __future__ import annotations

import numpy as np
import pytest

from skysense.evaluation import tasks
from skysense.evaluation.metrics import (
    accuracy,
    average_precision,
    confusion_matrix,
    macro_f1,
    mean_average_precision,
    mean_iou,
)
from skysense.evaluation.probes import cv_folds, kfold_indices, knn_predict, location_folds
from skysense.evaluation.report import pca_rgb
from skysense.evaluation.settings import EvalConfig


def test_confusion_accuracy_f1_iou():
    cm = confusion_matrix(
        np.array([0, 0, 1, 1, 2, 255]), np.array([0, 1, 1, 1, 0, 2]), 3, ignore=255
    )
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    assert accuracy(cm) == pytest.approx(3 / 5)
    # F1: class0 2*1/(2+2)=0.5, class1 2*2/(3+2)=0.8, class2 0
    assert macro_f1(cm) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    # IoU: class0 1/3, class1 2/3, class2 0
    assert mean_iou(cm) == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)


def test_average_precision():
    assert average_precision(
        np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1])
    ) == pytest.approx((1 + 2 / 3) / 2)
    y = np.array([[1, 0], [0, 1], [1, 0]])
    s = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])
    assert mean_average_precision(y, s) == pytest.approx(1.0)


def test_folds_are_stratified_disjoint_and_seeded():
    labels = np.repeat(np.arange(3), 10)
    folds = kfold_indices(labels, 5, seed=0)
    assert len(folds) == 5
    seen = np.concatenate([test for _, test in folds])
    assert sorted(seen) == list(range(30))
    for train, test in folds:
        assert not set(train) & set(test)
        assert np.bincount(labels[test], minlength=3).tolist() == [2, 2, 2]
    again = kfold_indices(labels, 5, seed=0)
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again))


def test_location_folds_leave_each_location_out():
    groups = np.array(["a", "b", "a", "c", "b", "c", "a"])
    folds = location_folds(groups)
    assert [sorted(test.tolist()) for _, test in folds] == [[0, 2, 6], [1, 4], [3, 5]]
    for train, test in folds:
        assert set(groups[train]).isdisjoint(groups[test])
        assert len(train) + len(test) == 7
    labels = np.zeros(7, dtype=int)
    assert len(cv_folds(labels, groups, 5, 0)) == 3
    assert len(cv_folds(labels, np.array(["a"] * 7), 5, 0)) == 5  # one location: by sample
    assert len(cv_folds(labels, None, 5, 0)) == 5


def test_location_probe_does_not_reward_memorised_place_nuisance():
    """Features = a per-location offset that happens to correlate with the label in each place
    (the class mix differs by place) plus weak class signal: random k-folds by sample let the
    probe learn the place, leave-location-out does not.
    """
    rng = np.random.default_rng(3)
    n_loc, per = 4, 24
    groups = np.repeat(np.arange(n_loc), per)
    labels = np.concatenate([rng.permutation(np.arange(per) % 2) for _ in range(n_loc)])
    place = rng.normal(size=(n_loc, 32)) * 4
    feats = place[groups] + rng.normal(size=(n_loc * per, 32))
    feats[:, 0] += 0.2 * labels  # weak true signal
    # per-place label-specific nuisance: what a probe can memorise inside a place only
    flip = rng.normal(size=(n_loc, 32)) * 2
    feats += flip[groups] * labels[:, None]
    cfg = EvalConfig(linear_epochs=100)
    by_sample = tasks.classification(feats, labels, 2, cfg).metrics["linear_acc"]
    by_place = tasks.classification(feats, labels, 2, cfg, groups=groups).metrics["linear_acc"]
    assert by_sample > 0.8
    assert by_place < 0.7
    assert by_sample - by_place > 0.2


def test_mean_std_pooling_doubles_the_feature():
    import torch

    from skysense.evaluation.features import pool_embedding

    maps = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    mean = pool_embedding(maps, "mean")
    both = pool_embedding(maps, "mean_std")
    assert mean.shape == (2, 3) and both.shape == (2, 6)
    np.testing.assert_allclose(mean[0].numpy(), [1.5, 5.5, 9.5])
    np.testing.assert_allclose(both[:, :3].numpy(), mean.numpy())
    np.testing.assert_allclose(both[0, 3:].numpy(), [np.std([0, 1, 2, 3])] * 3, rtol=1e-6)
    with pytest.raises(ValueError, match="eval.pooling"):
        pool_embedding(maps, "max")


def test_probes_separate_informative_features_not_noise():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 15)
    centres = rng.normal(size=(4, 16)) * 3
    informative = centres[labels] + rng.normal(size=(60, 16))
    noise = rng.normal(size=(60, 16))
    cfg = EvalConfig(linear_epochs=100)
    good = tasks.classification(informative, labels, 4, cfg).metrics
    bad = tasks.classification(noise, labels, 4, cfg).metrics
    assert good["linear_acc"] > 0.9 and good["knn_acc"] > 0.9
    assert bad["linear_acc"] < 0.6
    assert knn_predict(informative, labels, informative[:4], 1, 4).tolist() == labels[:4].tolist()


def test_segmentation_probe_and_pca():
    rng = np.random.default_rng(1)
    masks = rng.integers(0, 3, size=(10, 8, 8))
    centres = rng.normal(size=(3, 6)) * 3
    pixels = centres[masks].transpose(0, 3, 1, 2) + 0.3 * rng.normal(size=(10, 6, 8, 8))
    result, head = tasks.segmentation(pixels, masks, 3, EvalConfig(seg_epochs=60))
    assert result.metrics["miou"] > 0.9
    assert head["weight"].shape == (3, 6) and head["mean"].shape == (6,)
    img = pca_rgb(pixels[0])
    assert img.shape == (8, 8, 3) and img.min() >= 0 and img.max() <= 1


def test_multilabel_probe_map():
    rng = np.random.default_rng(2)
    labels = (rng.random((40, 3)) < 0.4).astype(np.float32)
    labels[labels.sum(axis=1) == 0, 0] = 1
    features = labels @ rng.normal(size=(3, 8)) * 3 + 0.3 * rng.normal(size=(40, 8))
    good = tasks.multilabel(features, labels, EvalConfig(linear_epochs=100)).metrics["map"]
    noise = tasks.multilabel(rng.normal(size=(40, 8)), labels, EvalConfig(linear_epochs=100))
    assert good > 0.9 and noise.metrics["map"] < good
