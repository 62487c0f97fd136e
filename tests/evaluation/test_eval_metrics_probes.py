"""Metrics on hand-computed cases; probes on features with a known structure."""

from __future__ import annotations

import numpy as np
import pytest

from skysense.config import EvalConfig
from skysense.evaluation import tasks
from skysense.evaluation.metrics import (
    accuracy,
    average_precision,
    confusion_matrix,
    macro_f1,
    mean_average_precision,
    mean_iou,
)
from skysense.evaluation.probes import kfold_indices, knn_predict
from skysense.evaluation.report import pca_rgb


def test_confusion_accuracy_f1_iou():
    cm = confusion_matrix(np.array([0, 0, 1, 1, 2, 255]), np.array([0, 1, 1, 1, 0, 2]), 3,
                          ignore=255)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    assert accuracy(cm) == pytest.approx(3 / 5)
    # F1: class0 2*1/(2+2)=0.5, class1 2*2/(3+2)=0.8, class2 0
    assert macro_f1(cm) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    # IoU: class0 1/3, class1 2/3, class2 0
    assert mean_iou(cm) == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)


def test_average_precision():
    assert average_precision(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1])) == \
        pytest.approx((1 + 2 / 3) / 2)
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
